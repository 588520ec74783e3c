//! Times as people read them: the one clock formatter of the workspace (`sluice info`, the
//! plugin's take counter, the pictures' axes and captions).

/// `[h:]m:ss[.f…]`: `seconds` as a clock with `decimals` (0 to 3) of a second, counted down to
/// the shown precision (a clock never shows a time not yet reached; a float a hair under a
/// round value, like 2.3 held as 2.2999…, still reads 2.3). Hours appear past the hour, or
/// always with `hours` (for a column of times that reaches past it). Negative or non-finite
/// times read as zero.
pub fn clock(seconds: f64, decimals: u32, hours: bool) -> String {
    let decimals = decimals.min(3);
    let unit = 10u64.pow(decimals);
    let s = if seconds.is_finite() {
        seconds.max(0.0)
    } else {
        0.0
    };
    // Relative slack of a few ULPs, so representation error does not drop a digit.
    let units = (s * unit as f64 * (1.0 + 4.0 * f64::EPSILON)).floor() as u64;
    let (whole, frac) = (units / unit, units % unit);
    let (h, m, sec) = (whole / 3600, whole / 60 % 60, whole % 60);
    let mut out = if h > 0 || hours {
        format!("{h}:{m:02}:{sec:02}")
    } else {
        format!("{m}:{sec:02}")
    };
    if decimals > 0 {
        out.push_str(&format!(".{frac:0width$}", width = decimals as usize));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::clock;

    #[test]
    fn clocks_count_down_to_their_precision() {
        assert_eq!(clock(0.0, 1, false), "0:00.0");
        assert_eq!(clock(61.26, 1, false), "1:01.2");
        assert_eq!(clock(-3.0, 1, false), "0:00.0");
        assert_eq!(clock(f64::NAN, 0, false), "0:00");
        assert_eq!(clock(3599.99, 1, false), "59:59.9");
        assert_eq!(clock(3600.0, 3, false), "1:00:00.000");
        assert_eq!(clock(2.3, 3, false), "0:02.300");
        assert_eq!(clock(0.1 + 0.2, 1, false), "0:00.3");
        assert_eq!(clock(300.0, 0, true), "0:05:00");
        assert_eq!(clock(7325.5, 0, false), "2:02:05");
        assert_eq!(clock(1.0 / 3.0, 3, false), "0:00.333");
    }
}
