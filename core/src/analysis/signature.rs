//! A track's signature: the loudness-normalised figures a reference library keeps of a track
//! (tonal balance, band levels, dynamics, stereo image, per band), the feature vector made
//! from them, and similarity between vectors.
//!
//! **Signature.** Everything level-dependent is taken relative to the track's integrated
//! loudness, so that a quiet master and a loud one of the same mix read the same: the tonal
//! curve (the long-term spectrum in 29 third-octave bands, 25 Hz to 16 kHz, dB re the
//! integrated loudness), the five bands' RMS levels (dB re the integrated loudness), crest and
//! short-term spread per band, PLR, crest factor, loudness range, the highest short-term
//! loudness over the integrated, and the stereo image (width and correlation overall and per
//! band, balance). The absolute loudness and the 1/12-octave spectrum are kept beside them
//! (for level matching and for the matching EQ), not in the vector. See docs/MASTERING.md.
//!
//! **Feature vector** ([`FEATURE_VERSION`] 2, [`dimensions`]): 66 named dimensions in five
//! groups — tonal (29), energy distribution (5), dynamics (14), stereo (13), character (5:
//! onset density, attack time, transient rise, harmonic-to-noise ratio, THD). Each dimension is
//! its figure divided by a *scale* (the difference that is about as audible as another
//! dimension's: 3 dB of a third-octave band, 2 dB of a band level or of PLR, 0.1 of width,
//! 0.2 of correlation...) and by the square root of its group's size, so that each group
//! weighs the same in a distance, however many dimensions it has. There is no padding.
//!
//! **Similarity** ([`nearest`]) is the cosine of the vectors after the mean of the compared set
//! is taken away from each (a cosine of raw figures, all of one sign, would find every track
//! alike): 1 for the same shape of difference from the set's average, 0 for unrelated, −1 for
//! opposite. Vectors of tracks at any sample rate compare: the tonal bands stop at 16 kHz, and
//! a band a file cannot hold (above 0.45 of its rate) takes the level of the highest band it
//! has.

use super::spectrum::{BANDS, LtasPoint};
use super::{AnalysisReport, Section};
use serde::{Deserialize, Serialize};

/// The version of [`Signature`]'s figures: a library built with another version is measured
/// again before it is compared.
pub const SIGNATURE_VERSION: u32 = 2;
/// The version of the feature vector's dimensions (names, scales, order).
pub const FEATURE_VERSION: u32 = 2;
/// The shortest track that makes a signature, seconds (the loudness range and the bands'
/// spread need 3 s windows).
pub const MIN_SECONDS: f64 = 3.0;

/// The sections a signature is made of.
pub const SECTIONS: [Section; 6] = [
    Section::Loudness,
    Section::Levels,
    Section::Spectrum,
    Section::Stereo,
    Section::Bands,
    Section::Character,
];

/// The centres of the tonal curve's third-octave bands, Hz.
pub use super::spectrum::THIRD_OCTAVES as TONAL_CENTRES;

/// Lowest level a relative figure takes (dB re the integrated loudness): silence in a band.
const FLOOR_DB: f64 = -80.0;

/// Why a signature could not be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SignatureError {
    #[error("it is silent (no loudness above the gates)")]
    Silent,
    #[error("it is {seconds:.1} s long; a signature needs at least {MIN_SECONDS} s")]
    TooShort { seconds: f64 },
    #[error("the analysis has no {0} section")]
    Missing(&'static str),
}

/// One band's figures in a signature.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BandSignature {
    /// RMS level, dB re the integrated loudness.
    pub level_db: f64,
    pub crest_db: f64,
    /// Short-term spread (10th to 95th percentile over 3 s windows), dB; 0 when undefined.
    pub spread_db: f64,
    /// 0 mono .. 0.5 unrelated .. 1 inverted.
    pub width: f64,
    /// +1 mono .. −1 inverted (1 for a silent band).
    pub correlation: f64,
}

/// The figures a reference library keeps of a track (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    pub version: u32,
    pub sample_rate: u32,
    pub duration_seconds: f64,
    pub integrated_lufs: f64,
    /// 0 when the track is too steady for a range.
    pub loudness_range_lu: f64,
    /// Peak-to-loudness ratio (true peak − integrated), LU.
    pub plr_lu: f64,
    /// Peak over RMS of the samples, dB.
    pub crest_db: f64,
    /// Highest short-term loudness − integrated, LU.
    pub max_short_term_lu: f64,
    pub width: f64,
    pub correlation: f64,
    /// Right over left, dB.
    pub balance_db: f64,
    /// Per band of [`BANDS`], low to high.
    pub bands: Vec<BandSignature>,
    /// Third-octave levels at [`TONAL_CENTRES`], dB re the integrated loudness.
    pub tonal_db: Vec<f64>,
    /// The 1/12-octave long-term spectrum (dB re a full-scale sine), for the matching EQ.
    pub ltas: Vec<LtasPoint>,
    /// Transients and harmonics (see [`super::character`]); the defaults stand for a figure
    /// the track does not have: no onsets (attack 0 ms, rise 0 dB), no harmonic frame (HNR
    /// −40 dB), no partial (THD 0.1 %).
    #[serde(default)]
    pub onset_density: f64,
    #[serde(default)]
    pub attack_ms: f64,
    #[serde(default)]
    pub transient_db: f64,
    #[serde(default)]
    pub hnr_db: f64,
    #[serde(default)]
    pub thd_percent: f64,
}

impl Signature {
    /// The signature of an analysed track: its report must hold the [`SECTIONS`].
    pub fn from_report(r: &AnalysisReport) -> Result<Signature, SignatureError> {
        let loudness = r
            .loudness
            .as_ref()
            .ok_or(SignatureError::Missing("loudness"))?;
        let levels = r.levels.as_ref().ok_or(SignatureError::Missing("levels"))?;
        let spectrum = r
            .spectrum
            .as_ref()
            .ok_or(SignatureError::Missing("spectrum"))?;
        let bands = r.bands.as_ref().ok_or(SignatureError::Missing("bands"))?;
        let stereo = r.stereo.as_ref().ok_or(SignatureError::Missing("stereo"))?;
        let character = r
            .character
            .as_ref()
            .ok_or(SignatureError::Missing("character"))?;
        let seconds = r.stream.duration_seconds.unwrap_or(0.0);
        if seconds < MIN_SECONDS {
            return Err(SignatureError::TooShort { seconds });
        }
        let lufs = loudness
            .summary
            .integrated_lufs
            .filter(|l| l.is_finite())
            .ok_or(SignatureError::Silent)?;
        let rel = |db: Option<f64>| db.map_or(FLOOR_DB, |d| (d - lufs).max(FLOOR_DB));
        let band_figures = bands
            .iter()
            .map(|b| BandSignature {
                level_db: rel(b.rms_dbfs),
                crest_db: b.crest_db.unwrap_or(0.0),
                spread_db: b.spread_db.unwrap_or(0.0),
                width: b.width.unwrap_or(0.0),
                correlation: b.correlation.unwrap_or(1.0),
            })
            .collect();
        let (width, correlation, balance_db) = match stereo {
            Some(s) => (
                s.width.unwrap_or(0.0),
                s.correlation.unwrap_or(1.0),
                s.balance_db.unwrap_or(0.0),
            ),
            None => (0.0, 1.0, 0.0),
        };
        Ok(Signature {
            version: SIGNATURE_VERSION,
            sample_rate: r.stream.sample_rate,
            duration_seconds: seconds,
            integrated_lufs: lufs,
            loudness_range_lu: loudness.summary.loudness_range_lu.unwrap_or(0.0),
            plr_lu: loudness.plr_lu.unwrap_or(0.0),
            crest_db: levels.crest_factor_db.unwrap_or(0.0),
            max_short_term_lu: loudness
                .summary
                .max_short_term_lufs
                .map_or(0.0, |m| m - lufs),
            width,
            correlation,
            balance_db,
            bands: band_figures,
            tonal_db: tonal_curve(&spectrum.third_octave, r.stream.sample_rate)
                .into_iter()
                .map(rel)
                .collect(),
            ltas: spectrum.ltas.clone(),
            onset_density: character.onset_density,
            attack_ms: character.attack_ms.unwrap_or(0.0),
            transient_db: character.transient_db.unwrap_or(0.0),
            hnr_db: character.hnr_db.unwrap_or(-40.0),
            thd_percent: character.thd_percent.unwrap_or(0.1),
        })
    }

    /// The feature vector ([`FEATURE_VERSION`]), in the order of [`dimensions`].
    pub fn features(&self) -> Vec<f32> {
        let mut v = Vec::with_capacity(DIMENSIONS);
        let mut push = |group: Group, x: f64, scale: f64| {
            v.push((x / scale / group.weight_divisor()) as f32);
        };
        for &d in &self.tonal_db {
            push(Group::Tonal, d, 3.0);
        }
        for b in &self.bands {
            push(Group::Energy, b.level_db, 2.0);
        }
        push(Group::Dynamics, self.loudness_range_lu, 3.0);
        push(Group::Dynamics, self.plr_lu, 2.0);
        push(Group::Dynamics, self.crest_db, 2.0);
        push(Group::Dynamics, self.max_short_term_lu, 2.0);
        for b in &self.bands {
            push(Group::Dynamics, b.crest_db, 2.0);
        }
        for b in &self.bands {
            push(Group::Dynamics, b.spread_db, 3.0);
        }
        push(Group::Stereo, self.width, 0.1);
        push(Group::Stereo, self.correlation, 0.2);
        push(Group::Stereo, self.balance_db, 2.0);
        for b in &self.bands {
            push(Group::Stereo, b.width, 0.1);
        }
        for b in &self.bands {
            push(Group::Stereo, b.correlation, 0.2);
        }
        push(Group::Character, self.onset_density, 1.0);
        push(Group::Character, self.attack_ms, 5.0);
        push(Group::Character, self.transient_db, 3.0);
        push(Group::Character, self.hnr_db, 3.0);
        push(Group::Character, thd_db(self.thd_percent), 6.0);
        debug_assert_eq!(v.len(), DIMENSIONS);
        v
    }
}

/// The tonal curve (dB re a full-scale sine) from a spectrum's third-octave levels: a band
/// above 0.45 of `rate`, or missing, takes the level of the highest band below it that has
/// one; silence reads `None`.
pub fn tonal_curve(third_octave: &[LtasPoint], rate: u32) -> Vec<Option<f64>> {
    let reach = 0.45 * f64::from(rate);
    let mut out: Vec<Option<f64>> = Vec::with_capacity(TONAL_CENTRES.len());
    for (k, &c) in TONAL_CENTRES.iter().enumerate() {
        let (_, hi) = super::spectrum::third_octave_edges(k);
        let held = third_octave
            .iter()
            .find(|p| p.hz == c)
            .filter(|_| hi <= reach)
            .map(|p| p.db);
        let last = out.last().copied().flatten();
        out.push(held.or(last));
    }
    out.into_iter().map(|d| d.filter(|&d| d > -199.0)).collect()
}

/// THD as a level, dB (floored at −60: 0.1 %).
fn thd_db(percent: f64) -> f64 {
    20.0 * (percent / 100.0).max(1e-3).log10()
}

/// The groups of the feature vector (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    Tonal,
    Energy,
    Dynamics,
    Stereo,
    Character,
}

impl Group {
    fn size(self) -> usize {
        match self {
            Group::Tonal => TONAL_CENTRES.len(),
            Group::Energy => BANDS.len(),
            Group::Dynamics => 4 + 2 * BANDS.len(),
            Group::Stereo => 3 + 2 * BANDS.len(),
            Group::Character => 5,
        }
    }
    fn weight_divisor(self) -> f64 {
        (self.size() as f64).sqrt()
    }
    fn name(self) -> &'static str {
        match self {
            Group::Tonal => "tonal",
            Group::Energy => "energy",
            Group::Dynamics => "dynamics",
            Group::Stereo => "stereo",
            Group::Character => "character",
        }
    }
}

/// Dimensions of the feature vector.
pub const DIMENSIONS: usize = 29 + 5 + 14 + 13 + 5;

/// One dimension of the feature vector: its name, group, unit and scale.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Dimension {
    pub name: String,
    pub group: &'static str,
    pub unit: &'static str,
    /// The figure is divided by this (and by the square root of the group's size).
    pub scale: f64,
}

/// The feature vector's dimensions, in order.
pub fn dimensions() -> Vec<Dimension> {
    let mut d = Vec::with_capacity(DIMENSIONS);
    let mut push = |g: Group, name: String, unit, scale| {
        d.push(Dimension {
            name,
            group: g.name(),
            unit,
            scale,
        })
    };
    for c in TONAL_CENTRES {
        push(Group::Tonal, format!("tonal_{c}_hz"), "dB re LUFS", 3.0);
    }
    for (b, _, _) in BANDS {
        push(Group::Energy, format!("{b}_level"), "dB re LUFS", 2.0);
    }
    push(Group::Dynamics, "loudness_range".into(), "LU", 3.0);
    push(Group::Dynamics, "plr".into(), "LU", 2.0);
    push(Group::Dynamics, "crest".into(), "dB", 2.0);
    push(Group::Dynamics, "max_short_term".into(), "LU re LUFS", 2.0);
    for (b, _, _) in BANDS {
        push(Group::Dynamics, format!("{b}_crest"), "dB", 2.0);
    }
    for (b, _, _) in BANDS {
        push(Group::Dynamics, format!("{b}_spread"), "dB", 3.0);
    }
    push(Group::Stereo, "width".into(), "", 0.1);
    push(Group::Stereo, "correlation".into(), "", 0.2);
    push(Group::Stereo, "balance".into(), "dB", 2.0);
    for (b, _, _) in BANDS {
        push(Group::Stereo, format!("{b}_width"), "", 0.1);
    }
    for (b, _, _) in BANDS {
        push(Group::Stereo, format!("{b}_correlation"), "", 0.2);
    }
    push(Group::Character, "onset_density".into(), "1/s", 1.0);
    push(Group::Character, "attack".into(), "ms", 5.0);
    push(Group::Character, "transient_rise".into(), "dB", 3.0);
    push(Group::Character, "hnr".into(), "dB", 3.0);
    push(Group::Character, "thd".into(), "dB", 6.0);
    d
}

/// The cosine of two vectors; 0 when either is all zeros.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa > 0.0 && bb > 0.0 {
        ab / (aa * bb).sqrt()
    } else {
        0.0
    }
}

/// The mean of `vectors` (each of `dims` values, laid end to end).
pub fn mean(vectors: &[f32], dims: usize) -> Vec<f32> {
    let n = vectors.len() / dims.max(1);
    let mut sum = vec![0f64; dims];
    for v in vectors.chunks_exact(dims) {
        for (s, &x) in sum.iter_mut().zip(v) {
            *s += f64::from(x);
        }
    }
    sum.into_iter()
        .map(|s| if n > 0 { (s / n as f64) as f32 } else { 0.0 })
        .collect()
}

/// The `top` vectors of `vectors` (each of `dims` values, laid end to end) most similar to
/// `query`, centred on `centre` (the compared set's mean, [`mean`]): `(index, similarity)`,
/// most similar first; ties keep the earlier index first.
pub fn nearest(
    query: &[f32],
    vectors: &[f32],
    dims: usize,
    centre: &[f32],
    top: usize,
) -> Vec<(usize, f64)> {
    let mut n = Nearest::new(query, centre, top);
    for (i, v) in vectors.chunks_exact(dims).enumerate() {
        n.offer(i as u64, v);
    }
    n.finish()
        .into_iter()
        .map(|(i, s)| (i as usize, s))
        .collect()
}

/// The running `top` of vectors offered one by one, by their centred cosine with a query
/// (see [`nearest`]): for a library read in pieces.
#[derive(Debug, Clone)]
pub struct Nearest {
    q: Vec<f32>,
    centre: Vec<f32>,
    qq: f32,
    top: usize,
    best: Vec<(u64, f64)>,
}

impl Nearest {
    pub fn new(query: &[f32], centre: &[f32], top: usize) -> Nearest {
        let q: Vec<f32> = query.iter().zip(centre).map(|(x, m)| x - m).collect();
        Nearest {
            qq: q.iter().map(|x| x * x).sum(),
            q,
            centre: centre.to_vec(),
            top,
            best: Vec::with_capacity(top + 1),
        }
    }

    /// Offers vector `v` (the query's length) under `id`.
    #[inline]
    pub fn offer(&mut self, id: u64, v: &[f32]) {
        let (mut qv, mut vv) = (0f32, 0f32);
        for ((&x, &m), &y) in v.iter().zip(&self.centre).zip(&self.q) {
            let c = x - m;
            qv += c * y;
            vv += c * c;
        }
        let s = if self.qq > 0.0 && vv > 0.0 {
            f64::from(qv) / (f64::from(self.qq) * f64::from(vv)).sqrt()
        } else {
            0.0
        };
        if self.best.len() < self.top || self.best.last().is_some_and(|&(_, w)| s > w) {
            let at = self.best.partition_point(|&(_, w)| w >= s);
            self.best.insert(at, (id, s));
            self.best.truncate(self.top);
        }
    }

    /// `(id, similarity)`, most similar first.
    pub fn finish(self) -> Vec<(u64, f64)> {
        self.best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dimensions_match_the_vector() {
        let d = dimensions();
        assert_eq!(d.len(), DIMENSIONS);
        let mut names: Vec<&str> = d.iter().map(|d| d.name.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), DIMENSIONS, "names are unique");
        for g in [
            Group::Tonal,
            Group::Energy,
            Group::Dynamics,
            Group::Stereo,
            Group::Character,
        ] {
            assert_eq!(d.iter().filter(|x| x.group == g.name()).count(), g.size());
        }
    }

    #[test]
    fn nearest_orders_by_centred_cosine() {
        // Three 2-d vectors around a centre: the query points the way of the first.
        let vectors = [2.0, 1.0, 0.0, 1.0, 1.0, 3.0];
        let centre = mean(&vectors, 2);
        assert_eq!(centre, vec![1.0, 5.0 / 3.0]);
        let got = nearest(&[3.0, 0.0], &vectors, 2, &centre, 2);
        assert_eq!(got[0].0, 0);
        assert_eq!(got[1].0, 1);
        assert!(got[0].1 > 0.9 && got[0].1 <= 1.0 + 1e-9, "{got:?}");
        assert!((cosine(&[1.0, 0.0], &[0.0, 2.0])).abs() < 1e-12);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 2.0]), 0.0);
        assert!(nearest(&[1.0, 1.0], &[], 2, &[0.0, 0.0], 3).is_empty());
    }

    #[test]
    fn tonal_curve_holds_the_last_band_past_its_reach() {
        let pts: Vec<LtasPoint> = TONAL_CENTRES
            .iter()
            .enumerate()
            .map(|(k, &hz)| LtasPoint {
                hz,
                db: -30.0 - k as f64,
            })
            .collect();
        let t = tonal_curve(&pts, 32_000);
        assert_eq!(t[0], Some(-30.0));
        assert_eq!(t[27], Some(-57.0));
        // 16 kHz's band reaches past 0.45 × 32 kHz: it holds 12.5 kHz's level.
        assert_eq!(t[28], t[27]);
        let silent = [LtasPoint {
            hz: 25.0,
            db: -200.0,
        }];
        assert!(tonal_curve(&silent, 48_000).iter().all(Option::is_none));
    }
}
