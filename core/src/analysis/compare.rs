//! A track against a target: a reference, or a profile built from several (a genre, a folder).
//!
//! A [`Profile`] holds, for every figure of a [`Signature`], the mean and the spread (standard
//! deviation) over its references; one reference is a profile of one, with no spread.
//! [`compare`] gives each figure's difference from the target's mean, the tolerance it is held
//! to, whether it is inside, and recommendations worded for a person at a [`Level`].
//!
//! **Level matching.** The five bands' levels are compared after the track is level-matched to
//! the target: the median of the five differences is taken away from each (reported as
//! `level_offset_db`), so one band out of balance reads as that band and not as the other four
//! the other way. The loudness itself is a figure of its own.
//!
//! **Tolerance.** A figure is inside when its difference is within
//! `max(k × spread, floor)`: `k` is 2, 1.5 and 1 at the gentle, suggestive and assertive
//! levels, and the floor (what a person hears as a difference even against one reference, or
//! a profile of identical tracks) is per kind of figure and level (see [`Kind::floor`]). The
//! levels differ in tolerance and in wording; the measured facts (the differences) are the
//! same at every level.

use super::signature::{BandSignature, Signature, TONAL_CENTRES};
use super::spectrum::{BANDS, LtasPoint};
use serde::{Deserialize, Serialize};

/// How readily differences become recommendations, and how they are worded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Gentle,
    #[default]
    Suggestive,
    Assertive,
}

impl Level {
    pub const ALL: [Level; 3] = [Level::Gentle, Level::Suggestive, Level::Assertive];

    pub fn name(self) -> &'static str {
        match self {
            Level::Gentle => "gentle",
            Level::Suggestive => "suggestive",
            Level::Assertive => "assertive",
        }
    }

    pub fn parse(s: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.name() == s)
    }

    /// How many spreads a figure may be from the mean.
    fn spreads(self) -> f64 {
        match self {
            Level::Gentle => 2.0,
            Level::Suggestive => 1.5,
            Level::Assertive => 1.0,
        }
    }
}

/// Kinds of figures, for their tolerance floors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    BandLevel,
    Loudness,
    Range,
    Peak,
    Width,
    Correlation,
    Balance,
    Attack,
    Onsets,
    Hnr,
}

impl Kind {
    /// The least tolerance at each level (gentle, suggestive, assertive).
    fn floor(self, level: Level) -> f64 {
        let [g, s, a] = match self {
            Kind::BandLevel => [2.5, 1.5, 1.0],
            Kind::Loudness => [3.0, 2.0, 1.0],
            Kind::Range => [4.0, 3.0, 2.0],
            Kind::Peak => [3.0, 2.0, 1.5],
            Kind::Width => [0.12, 0.08, 0.05],
            Kind::Correlation => [0.3, 0.2, 0.15],
            Kind::Balance => [2.0, 1.5, 1.0],
            Kind::Attack => [8.0, 5.0, 3.0],
            Kind::Onsets => [1.5, 1.0, 0.6],
            Kind::Hnr => [6.0, 4.0, 3.0],
        };
        match level {
            Level::Gentle => g,
            Level::Suggestive => s,
            Level::Assertive => a,
        }
    }
}

/// Mean and spread (population standard deviation) of a figure over a profile's references.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Stat {
    pub mean: f64,
    pub spread: f64,
}

impl Stat {
    fn of(values: impl Iterator<Item = f64>) -> Stat {
        let v: Vec<f64> = values.collect();
        if v.is_empty() {
            return Stat::default();
        }
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
        Stat {
            mean,
            spread: var.sqrt(),
        }
    }
}

/// One band of a profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BandProfile {
    pub name: String,
    pub low_hz: f64,
    pub high_hz: f64,
    /// RMS level, dB re the integrated loudness.
    pub level_db: Stat,
    pub crest_db: Stat,
    pub spread_db: Stat,
    pub width: Stat,
    pub correlation: Stat,
}

/// One point of a profile's tonal curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TonalStat {
    pub hz: f64,
    /// dB re the integrated loudness.
    pub mean_db: f64,
    pub spread_db: f64,
}

/// The mean and spread of every figure over some references (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// What it is, for sentences: "genre techno", "reference 'Night Drive'".
    pub name: String,
    pub references: usize,
    pub integrated_lufs: Stat,
    pub loudness_range_lu: Stat,
    pub plr_lu: Stat,
    pub crest_db: Stat,
    pub max_short_term_lu: Stat,
    pub width: Stat,
    pub correlation: Stat,
    pub balance_db: Stat,
    pub bands: Vec<BandProfile>,
    #[serde(default)]
    pub onset_density: Stat,
    #[serde(default)]
    pub attack_ms: Stat,
    #[serde(default)]
    pub transient_db: Stat,
    #[serde(default)]
    pub hnr_db: Stat,
    #[serde(default)]
    pub thd_percent: Stat,
    pub tonal: Vec<TonalStat>,
    /// The references' long-term spectra averaged (each taken relative to its loudness, then
    /// put at the mean loudness), for the matching EQ.
    pub ltas: Vec<LtasPoint>,
}

impl Profile {
    /// The profile of `signatures` (`None` when there are none).
    pub fn from_signatures<'a>(
        name: impl Into<String>,
        signatures: impl IntoIterator<Item = &'a Signature>,
    ) -> Option<Profile> {
        let s: Vec<&Signature> = signatures.into_iter().collect();
        if s.is_empty() {
            return None;
        }
        let stat = |f: &dyn Fn(&Signature) -> f64| Stat::of(s.iter().map(|x| f(x)));
        let band = |b: usize, f: &dyn Fn(&BandSignature) -> f64| {
            Stat::of(s.iter().filter_map(|x| x.bands.get(b)).map(f))
        };
        let bands = BANDS
            .iter()
            .enumerate()
            .map(|(b, &(name, low_hz, high_hz))| BandProfile {
                name: name.to_string(),
                low_hz,
                high_hz,
                level_db: band(b, &|x| x.level_db),
                crest_db: band(b, &|x| x.crest_db),
                spread_db: band(b, &|x| x.spread_db),
                width: band(b, &|x| x.width),
                correlation: band(b, &|x| x.correlation),
            })
            .collect();
        let tonal = TONAL_CENTRES
            .iter()
            .enumerate()
            .map(|(k, &hz)| {
                let st = Stat::of(s.iter().filter_map(|x| x.tonal_db.get(k).copied()));
                TonalStat {
                    hz,
                    mean_db: st.mean,
                    spread_db: st.spread,
                }
            })
            .collect();
        let loudness = stat(&|x| x.integrated_lufs);
        Some(Profile {
            name: name.into(),
            references: s.len(),
            integrated_lufs: loudness,
            loudness_range_lu: stat(&|x| x.loudness_range_lu),
            plr_lu: stat(&|x| x.plr_lu),
            crest_db: stat(&|x| x.crest_db),
            max_short_term_lu: stat(&|x| x.max_short_term_lu),
            width: stat(&|x| x.width),
            correlation: stat(&|x| x.correlation),
            balance_db: stat(&|x| x.balance_db),
            bands,
            onset_density: stat(&|x| x.onset_density),
            attack_ms: stat(&|x| x.attack_ms),
            transient_db: stat(&|x| x.transient_db),
            hnr_db: stat(&|x| x.hnr_db),
            thd_percent: stat(&|x| x.thd_percent),
            tonal,
            ltas: mean_ltas(&s, loudness.mean),
        })
    }
}

/// The references' spectra on the common 1/12-octave grid, each relative to its loudness,
/// averaged in dB where they have the point, and put at `lufs`. When the references are of
/// one sample rate the result is that rate's grid, its last point (cut at the Nyquist
/// frequency) included, so the matching EQ knows the rate it was measured at; across rates a
/// file's last point is left out.
fn mean_ltas(s: &[&Signature], lufs: f64) -> Vec<LtasPoint> {
    let one_rate = s.windows(2).all(|w| w[0].sample_rate == w[1].sample_rate);
    let mut acc: Vec<(f64, f64, usize)> = Vec::new();
    for x in s {
        let full = if one_rate {
            x.ltas.len()
        } else {
            x.ltas
                .len()
                .saturating_sub(1)
                .max(usize::from(x.ltas.len() == 1))
        };
        for (k, p) in x.ltas.iter().take(full).enumerate() {
            if acc.len() <= k {
                acc.push((p.hz, 0.0, 0));
            }
            let a = &mut acc[k];
            a.1 += p.db.max(-200.0) - x.integrated_lufs;
            a.2 += 1;
        }
    }
    acc.into_iter()
        .filter(|a| a.2 > 0)
        .map(|(hz, sum, n)| LtasPoint {
            hz,
            db: (sum / n as f64 + lufs).max(-200.0),
        })
        .collect()
}

/// One band against the target.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct BandDelta {
    pub name: String,
    pub low_hz: f64,
    pub high_hz: f64,
    /// The track's level, dB re its integrated loudness.
    pub track_db: f64,
    pub target_db: f64,
    pub target_spread_db: f64,
    /// Track − target after level matching, dB.
    pub delta_db: f64,
    pub tolerance_db: f64,
    pub inside: bool,
}

/// One other figure against the target.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct MetricDelta {
    pub name: String,
    #[serde(deserialize_with = "crate::interned::name")]
    pub unit: crate::interned::Name,
    pub track: f64,
    pub target: f64,
    pub target_spread: f64,
    pub delta: f64,
    pub tolerance: f64,
    pub inside: bool,
}

/// One point of the tonal curves, level-matched (the track's curve moved by the level offset).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct TonalDelta {
    pub hz: f64,
    pub track_db: f64,
    pub target_db: f64,
    pub target_spread_db: f64,
    /// What the point is held to at the comparison's level (as a band level is).
    pub tolerance_db: f64,
}

/// Something to do, for a person.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Recommendation {
    /// The band or figure it is about (`low_mid`, `plr`, `low_width`...).
    pub subject: String,
    /// The measured difference it answers (the same at every level).
    pub delta: f64,
    pub text: String,
}

/// A track against a target (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Comparison {
    pub target: String,
    pub references: usize,
    pub level: Level,
    /// The level match: the median of the bands' differences, taken away from each, dB.
    pub level_offset_db: f64,
    pub bands: Vec<BandDelta>,
    pub metrics: Vec<MetricDelta>,
    pub tonal: Vec<TonalDelta>,
    pub recommendations: Vec<Recommendation>,
}

fn tolerance(kind: Kind, spread: f64, level: Level) -> f64 {
    (level.spreads() * spread).max(kind.floor(level))
}

/// Where an EQ move on each band goes.
const BAND_PLACES: [&str; 5] = [
    "a low shelf below 200 Hz",
    "a broad bell around 300 Hz",
    "a broad bell around 1 kHz",
    "a broad bell around 3.5 kHz",
    "a high shelf above 6 kHz",
];

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Each band's level against the target's, after the median offset between them (a track
/// louder overall is not louder in every band); the advice for each band outside its
/// tolerance added to `recommendations`.
fn band_deltas(
    track: &Signature,
    target: &Profile,
    diffs: &[f64],
    offset: f64,
    level: Level,
    recommendations: &mut Vec<Recommendation>,
) -> Vec<BandDelta> {
    let who = &target.name;
    target
        .bands
        .iter()
        .zip(&track.bands)
        .zip(diffs)
        .enumerate()
        .map(|(i, ((t, b), d))| {
            let delta = d - offset;
            let tol = tolerance(Kind::BandLevel, t.level_db.spread, level);
            let inside = delta.abs() <= tol;
            if !inside {
                recommendations.push(band_advice(&t.name, i, delta, tol, who, level));
            }
            BandDelta {
                name: t.name.clone(),
                low_hz: t.low_hz,
                high_hz: t.high_hz,
                track_db: b.level_db,
                target_db: t.level_db.mean,
                target_spread_db: t.level_db.spread,
                delta_db: delta,
                tolerance_db: tol,
                inside,
            }
        })
        .collect()
}

/// The track's loudness, dynamics, stereo image, onsets and harmonicity against the
/// target's; the advice for each outside its tolerance added to `recommendations`.
fn metric_deltas(
    track: &Signature,
    target: &Profile,
    level: Level,
    recommendations: &mut Vec<Recommendation>,
) -> Vec<MetricDelta> {
    let who = &target.name;
    let mut metrics = Vec::new();
    let mut metric = |name: &str, unit, kind, value: f64, stat: Stat| {
        let delta = value - stat.mean;
        let tol = tolerance(kind, stat.spread, level);
        let inside = delta.abs() <= tol;
        if !inside && let Some(text) = metric_advice(name, delta, value, stat.mean, tol, who, level)
        {
            recommendations.push(Recommendation {
                subject: name.to_string(),
                delta,
                text,
            });
        }
        metrics.push(MetricDelta {
            name: name.to_string(),
            unit,
            track: value,
            target: stat.mean,
            target_spread: stat.spread,
            delta,
            tolerance: tol,
            inside,
        });
    };
    metric(
        "loudness",
        "LUFS",
        Kind::Loudness,
        track.integrated_lufs,
        target.integrated_lufs,
    );
    metric(
        "loudness_range",
        "LU",
        Kind::Range,
        track.loudness_range_lu,
        target.loudness_range_lu,
    );
    metric("plr", "LU", Kind::Peak, track.plr_lu, target.plr_lu);
    metric("crest", "dB", Kind::Peak, track.crest_db, target.crest_db);
    metric("width", "", Kind::Width, track.width, target.width);
    metric(
        "correlation",
        "",
        Kind::Correlation,
        track.correlation,
        target.correlation,
    );
    metric(
        "balance",
        "dB",
        Kind::Balance,
        track.balance_db,
        target.balance_db,
    );
    for (b, t) in track.bands.iter().zip(&target.bands) {
        metric(
            &format!("{}_width", t.name),
            "",
            Kind::Width,
            b.width,
            t.width,
        );
    }
    metric(
        "onset_density",
        "1/s",
        Kind::Onsets,
        track.onset_density,
        target.onset_density,
    );
    metric(
        "attack",
        "ms",
        Kind::Attack,
        track.attack_ms,
        target.attack_ms,
    );
    metric("hnr", "dB", Kind::Hnr, track.hnr_db, target.hnr_db);
    if let (Some(b), Some(t)) = (track.bands.first(), target.bands.first()) {
        metric(
            "low_correlation",
            "",
            Kind::Correlation,
            b.correlation,
            t.correlation,
        );
    }
    metrics
}

/// `track` against `target` at `level`.
pub fn compare(track: &Signature, target: &Profile, level: Level) -> Comparison {
    let diffs: Vec<f64> = track
        .bands
        .iter()
        .zip(&target.bands)
        .map(|(b, t)| b.level_db - t.level_db.mean)
        .collect();
    let offset = median(diffs.clone());
    let mut recommendations = Vec::new();
    let bands = band_deltas(track, target, &diffs, offset, level, &mut recommendations);
    let metrics = metric_deltas(track, target, level, &mut recommendations);
    let tonal = target
        .tonal
        .iter()
        .zip(&track.tonal_db)
        .map(|(t, &d)| TonalDelta {
            hz: t.hz,
            track_db: d - offset,
            target_db: t.mean_db,
            target_spread_db: t.spread_db,
            tolerance_db: tolerance(Kind::BandLevel, t.spread_db, level),
        })
        .collect();
    Comparison {
        target: target.name.clone(),
        references: target.references,
        level,
        level_offset_db: offset,
        bands,
        metrics,
        tonal,
        recommendations,
    }
}

/// A band out of its tolerance: the fact, then the move, worded for the level.
fn band_advice(
    band: &str,
    index: usize,
    delta: f64,
    tol: f64,
    who: &str,
    level: Level,
) -> Recommendation {
    let (dir, verb) = if delta > 0.0 {
        ("over", "cut")
    } else {
        ("under", "boost")
    };
    let place = BAND_PLACES.get(index).copied().unwrap_or("an EQ");
    let fact = format!(
        "{} {:+.1} dB {dir} the {who}'s mean, outside its ±{tol:.1} dB",
        band.replace('_', "-"),
        delta
    );
    let amount = delta.abs();
    let text = match level {
        Level::Gentle => format!(
            "{fact}: if it is not intended, consider a gentle {verb} of {:.1}–{amount:.1} dB with {place}",
            amount / 2.0
        ),
        Level::Suggestive => format!("{fact}: a {verb} of about {amount:.1} dB with {place}"),
        Level::Assertive => {
            let mut v = verb.to_string();
            v[..1].make_ascii_uppercase();
            format!("{fact}: {v} {amount:.1} dB with {place}")
        }
    };
    Recommendation {
        subject: band.to_string(),
        delta,
        text,
    }
}

/// A figure out of its tolerance: the fact and what it suggests, worded for the level; `None`
/// for figures that only inform.
fn metric_advice(
    name: &str,
    delta: f64,
    value: f64,
    target: f64,
    tol: f64,
    who: &str,
    level: Level,
) -> Option<String> {
    let over = delta > 0.0;
    let (fact, gentle, firm) = match name {
        "loudness" => (
            format!(
                "loudness {value:.1} LUFS, {:.1} LU {} the {who}'s {target:.1} (±{tol:.1})",
                delta.abs(),
                if over { "over" } else { "under" }
            ),
            "loudness is best set last, by the normalize step or the limiter",
            if over {
                "lower the level into the limiter"
            } else {
                "raise the level into the limiter (normalize to the target)"
            },
        ),
        "loudness_range" => (
            format!("loudness range {value:.1} LU against the {who}'s {target:.1} (±{tol:.1})"),
            if over {
                "it is more dynamic than the target; some compression would bring it closer"
            } else {
                "it is less dynamic than the target; less compression would bring it closer"
            },
            if over {
                "compress the programme more (slower, broader compression)"
            } else {
                "compress less or automate less"
            },
        ),
        "plr" | "crest" => (
            format!(
                "{} {value:.1} {} against the {who}'s {target:.1} (±{tol:.1})",
                if name == "plr" {
                    "peak-to-loudness ratio"
                } else {
                    "crest factor"
                },
                if name == "plr" { "LU" } else { "dB" }
            ),
            if over {
                "it keeps more peak headroom than the target, which is limited harder"
            } else {
                "it is limited or clipped harder than the target"
            },
            if over {
                "limit harder if the genre asks for it"
            } else {
                "ease the limiter or the clipper"
            },
        ),
        "width" | "correlation" => (
            format!("stereo {name} {value:.2} against the {who}'s {target:.2} (±{tol:.2})"),
            if (name == "width") == over {
                "the image is wider than the target's"
            } else {
                "the image is narrower than the target's"
            },
            if (name == "width") == over {
                "narrow the image (less side)"
            } else {
                "widen the image (more side)"
            },
        ),
        "balance" => (
            format!("balance {value:+.1} dB (right over left) against the {who}'s {target:+.1}"),
            "one side is louder than the target's",
            if over {
                "bring the right side down"
            } else {
                "bring the left side down"
            },
        ),
        "low_width" | "low_correlation" if (name == "low_width") == over => (
            format!(
                "low band {} {value:.2} against the {who}'s {target:.2} (±{tol:.2})",
                if name == "low_width" {
                    "width"
                } else {
                    "correlation"
                }
            ),
            "the low end is less mono than the target's",
            "make the low end mono below about 120 Hz (a high-pass on the side signal)",
        ),
        "attack" => (
            format!("median attack {value:.1} ms against the {who}'s {target:.1} (±{tol:.1})"),
            if over {
                "the transients are softer than the target's (a compressor's fast attack or a limiter takes them)"
            } else {
                "the transients are sharper than the target's"
            },
            if over {
                "let the transients through: a slower compressor attack, less limiting, or a transient shaper"
            } else {
                "soften the transients: a faster compressor attack or gentle clipping"
            },
        ),
        n if n.ends_with("_width") => (
            format!(
                "{} width {value:.2} against the {who}'s {target:.2} (±{tol:.2})",
                n.trim_end_matches("_width").replace('_', "-")
            ),
            if over {
                "this band is wider than the target's"
            } else {
                "this band is narrower than the target's"
            },
            if over {
                "narrow this band (less side in it)"
            } else {
                "widen this band (more side in it)"
            },
        ),
        _ => return None,
    };
    Some(match level {
        Level::Gentle => format!("{fact}: {gentle}"),
        Level::Suggestive => format!("{fact}: {gentle}; {firm}"),
        Level::Assertive => format!("{fact}: {firm}"),
    })
}
