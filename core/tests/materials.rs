//! The benches' material generators are what they say: the dense master is loud, near full
//! scale, with inter-sample peaks over 0 dBTP and wide-band energy; the acoustic material has
//! a wide loudness range and stays clear of full scale; both are stereo and not dual mono.

use sluice_core::render::{Block, OutputMeter, SignalSpec};
use sluice_core::signal::{acoustic, dense_master};

fn measure(planes: &[Vec<f32>], rate: u32) -> sluice_core::render::OutputLoudness {
    let mut m = OutputMeter::new(&SignalSpec::with_channels(rate, planes.len()));
    m.feed(&Block::from_planes(planes.to_vec()));
    m.finish()
}

fn correlation(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        ab += f64::from(x) * f64::from(y);
        aa += f64::from(x) * f64::from(x);
        bb += f64::from(y) * f64::from(y);
    }
    ab / (aa * bb).sqrt()
}

#[test]
fn the_dense_master_is_loud_limited_and_over_full_scale_between_samples() {
    let rate = 48_000;
    let p = dense_master(rate, 12.0, 7);
    assert_eq!(p.len(), 2);
    assert_eq!(
        p,
        dense_master(rate, 12.0, 7),
        "seeded: the same every time"
    );
    let m = measure(&p, rate);
    let i = m.loudness.integrated_lufs.unwrap();
    assert!((-11.0..=-5.0).contains(&i), "integrated {i}");
    assert!(
        m.sample_peak_dbfs <= 0.0 && m.sample_peak_dbfs > -0.1,
        "{}",
        m.sample_peak_dbfs
    );
    assert!(
        m.true_peak_dbtp > m.sample_peak_dbfs + 0.05,
        "true peak {}",
        m.true_peak_dbtp
    );
    let c = correlation(&p[0], &p[1]);
    assert!((0.5..0.995).contains(&c), "correlation {c}");
}

#[test]
fn the_acoustic_material_has_a_wide_range_in_a_room() {
    let rate = 48_000;
    let p = acoustic(rate, 32.0, 7);
    assert_eq!(p, acoustic(rate, 32.0, 7), "seeded: the same every time");
    let m = measure(&p, rate);
    assert!(m.sample_peak_dbfs < -0.5, "peak {}", m.sample_peak_dbfs);
    let lra = m.loudness.loudness_range_lu.unwrap();
    assert!(lra > 8.0, "loudness range {lra}");
    let c = correlation(&p[0], &p[1]);
    assert!(c < 0.95, "correlation {c}");
}
