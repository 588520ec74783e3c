//! CPU time of the per-band metrics (`analysis::bands`) on 10 minutes of the dense master
//! (one minute generated, fed ten times), the measure of its share of the analysis:
//!
//! cargo run --release -p sluice-core --example bands_cost
use sluice_core::analysis::bands::BandMeter;
fn main() {
    let planes = sluice_core::signal::dense_master(48_000, 60.0, 2026);
    let cpu = || -> f64 {
        let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
        s.split_whitespace().next().unwrap().parse::<f64>().unwrap() / 1e9
    };
    // Best of five: the machine is shared.
    let mut best = (f64::INFINITY, f64::INFINITY);
    let mut level = None;
    for _ in 0..5 {
        let t = std::time::Instant::now();
        let c0 = cpu();
        let mut m = BandMeter::new(48_000);
        for _ in 0..10 {
            for (l, r) in planes[0].chunks(32768).zip(planes[1].chunks(32768)) {
                m.feed(l, r);
            }
        }
        let b = m.finish();
        let c = cpu() - c0;
        if c < best.1 {
            best = (t.elapsed().as_secs_f64(), c);
        }
        level = b[2].rms_dbfs;
    }
    eprintln!(
        "best of 5: {:.3} s wall, {:.3} s CPU  {:?}",
        best.0, best.1, level
    );
}
