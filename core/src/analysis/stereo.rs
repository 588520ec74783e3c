//! Stereo image of the front pair (the first two channels when they are left and right).
//!
//! - **correlation** — Pearson correlation of left and right over the file (+1 mono, 0
//!   unrelated, −1 one side inverted), and the lowest value over 400 ms windows that are above
//!   −60 dBFS (where a phase problem is heard);
//! - **width** — side energy over mid plus side energy, with mid = (L+R)/2 and side = (L−R)/2:
//!   0 for mono, 0.5 for unrelated channels of equal level, 1 for inverted channels; also
//!   given as side-to-mid ratio in dB;
//! - **balance** — right energy over left energy in dB (positive: the right side is louder).

use super::{AnalysisReport, Analyzer};
use serde::Serialize;

#[derive(Debug, Clone, Default)]
pub struct StereoMeter {
    ll: f64,
    rr: f64,
    lr: f64,
    window: usize,
    filled: usize,
    w: [f64; 3],
    min_corr: Option<f64>,
}

/// Correlation of left and right from their sums of squares and cross product; `None` when
/// either side is silent.
pub fn correlation(ll: f64, rr: f64, lr: f64) -> Option<f64> {
    (ll > 0.0 && rr > 0.0).then(|| (lr / (ll * rr).sqrt()).clamp(-1.0, 1.0))
}

/// Width (side energy over mid plus side) from the same sums; `None` for silence.
pub fn width(ll: f64, rr: f64, lr: f64) -> Option<f64> {
    let mid = (ll + rr + 2.0 * lr) / 4.0;
    let side = (ll + rr - 2.0 * lr) / 4.0;
    (ll + rr > 0.0).then(|| (side / (mid + side)).clamp(0.0, 1.0))
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Stereo {
    pub correlation: Option<f64>,
    /// Lowest correlation of any 400 ms window above −60 dBFS.
    pub correlation_min: Option<f64>,
    /// 0 (mono) .. 0.5 (unrelated) .. 1 (inverted).
    pub width: Option<f64>,
    pub side_to_mid_db: Option<f64>,
    /// Right over left energy, dB.
    pub balance_db: Option<f64>,
}

impl StereoMeter {
    pub fn new(rate: u32) -> Self {
        StereoMeter {
            window: (rate as usize * 2).div_ceil(5),
            ..Default::default()
        }
    }

    /// Feed the left and right channels.
    pub fn feed(&mut self, l: &[f32], r: &[f32]) {
        let mut at = 0;
        while at < l.len() {
            let take = (self.window - self.filled).min(l.len() - at);
            let (mut ll, mut rr, mut lr) = (0.0f64, 0.0f64, 0.0f64);
            for (&a, &b) in l[at..at + take].iter().zip(&r[at..at + take]) {
                let (a, b) = (f64::from(a), f64::from(b));
                ll += a * a;
                rr += b * b;
                lr += a * b;
            }
            self.ll += ll;
            self.rr += rr;
            self.lr += lr;
            self.w[0] += ll;
            self.w[1] += rr;
            self.w[2] += lr;
            self.filled += take;
            at += take;
            if self.filled == self.window {
                let [wl, wr, wlr] = self.w;
                let floor = self.window as f64 * 1e-6; // −60 dBFS mean square
                if wl > floor && wr > floor {
                    let c = wlr / (wl * wr).sqrt();
                    self.min_corr = Some(self.min_corr.map_or(c, |m: f64| m.min(c)));
                }
                self.w = [0.0; 3];
                self.filled = 0;
            }
        }
    }

    pub fn finish(self) -> Stereo {
        Stereo::from_sums(self.ll, self.rr, self.lr, self.min_corr)
    }
}

impl Stereo {
    /// The section from the file's Σ left², Σ right², Σ left·right and the lowest 400 ms
    /// correlation (also what [`super::bands::BandMeter`] measures beside its bands).
    pub fn from_sums(ll: f64, rr: f64, lr: f64, correlation_min: Option<f64>) -> Stereo {
        let mid = (ll + rr + 2.0 * lr) / 4.0;
        let side = (ll + rr - 2.0 * lr) / 4.0;
        Stereo {
            correlation: correlation(ll, rr, lr),
            correlation_min,
            width: width(ll, rr, lr),
            side_to_mid_db: (mid > 0.0 && side > 0.0).then(|| 10.0 * (side / mid).log10()),
            balance_db: (ll > 0.0 && rr > 0.0).then(|| 10.0 * (rr / ll).log10()),
        }
    }
}

pub(super) struct StereoA(pub(super) StereoMeter, pub(super) usize, pub(super) usize);

impl Analyzer for StereoA {
    fn feed(&mut self, planes: &[&[f32]]) {
        self.0.feed(planes[self.1], planes[self.2]);
    }
    fn finish(self: Box<Self>, r: &mut AnalysisReport) {
        r.stereo = Some(Some(self.0.finish()));
    }
    fn cost(&self) -> f64 {
        4.0
    }
    fn name(&self) -> &'static str {
        "stereo"
    }
}
