//! Normalization (to a peak level, or to a loudness with a true-peak ceiling) and the
//! true-peak limiter it uses.

use super::lowpass::Lowpassed;
use super::stages::db_to_gain;
use super::{
    Block, OutputLoudness, OutputMeter, Prepass, Probe, RenderError, SignalSpec, Stage, StageReport,
};
use crate::analysis::truepeak::PeakEnvelope;
use std::collections::{BTreeMap, VecDeque};

/// A look-ahead true-peak limiter with one gain for all channels (the stereo image stays put).
///
/// For each sample the required gain is `ceiling / envelope`, where the envelope is the sample's
/// true peak (its magnitude and the 4× interpolated values on either side, see
/// [`PeakEnvelope`]). The gain curve is the minimum of the required gain over the look-ahead
/// window, released exponentially, then averaged over the look-ahead window; the audio is
/// delayed by the look-ahead, so the averaged gain at each sample is never above what any sample
/// in its window requires. The output is aligned with the input (the delay is removed) and
/// has the same length.
#[derive(Debug, Clone)]
pub struct TruePeakLimiter {
    ceiling_db: f64,
    lookahead_s: f64,
    release_s: f64,
    ceiling: f32,
    lookahead: usize,
    release: f32,
    envs: Vec<PeakEnvelope>,
    env_out: Vec<Vec<f32>>,
    /// Input samples waiting for their gain, per channel, from `delay_start`.
    delay: Vec<Vec<f32>>,
    delay_start: usize,
    /// Sliding minimum of the required gain: (index, gain).
    minq: VecDeque<(u64, f32)>,
    /// The last `lookahead + 1` released gains (a ring from `avg_at`, `avg_len` of them) and
    /// their sum.
    avg: Vec<f32>,
    avg_at: usize,
    avg_len: usize,
    avg_sum: f64,
    released: f32,
    env_index: u64,
    frames_in: u64,
    frames_out: u64,
    limited_frames: u64,
    /// The lowest gain applied so far (1 when none was below 1).
    min_gain: f32,
    /// The gains of the frames that leave in the current block (scratch).
    gains: Vec<f32>,
}

impl TruePeakLimiter {
    /// Defaults: 2 ms look-ahead, 100 ms release.
    pub fn new(ceiling_dbtp: f64) -> Self {
        Self::with_times(ceiling_dbtp, 0.002, 0.1)
    }

    pub fn with_times(ceiling_dbtp: f64, lookahead_s: f64, release_s: f64) -> Self {
        TruePeakLimiter {
            ceiling_db: ceiling_dbtp,
            lookahead_s,
            release_s,
            ceiling: 1.0,
            lookahead: 0,
            release: 0.0,
            envs: Vec::new(),
            env_out: Vec::new(),
            delay: Vec::new(),
            delay_start: 0,
            minq: VecDeque::new(),
            avg: Vec::new(),
            avg_at: 0,
            avg_len: 0,
            avg_sum: 0.0,
            released: 1.0,
            env_index: 0,
            frames_in: 0,
            frames_out: 0,
            limited_frames: 0,
            min_gain: 1.0,
            gains: Vec::new(),
        }
    }

    pub fn set_ceiling(&mut self, ceiling_dbtp: f64) {
        self.ceiling_db = ceiling_dbtp;
        self.ceiling = db_to_gain(ceiling_dbtp) as f32;
    }

    /// Frames whose gain was below 1, and the deepest reduction (dB, positive), so far.
    pub fn stats(&self) -> (u64, f64) {
        (
            self.limited_frames,
            -20.0 * f64::from(self.min_gain).log10(),
        )
    }

    /// Total delay between input and the gain's decision, in frames.
    fn latency(&self) -> usize {
        self.lookahead + PeakEnvelope::DELAY
    }

    fn run(&mut self, block: &mut Block) {
        let channels = block.channels();
        let n = block.frames();
        for c in 0..channels {
            self.env_out[c].clear();
            self.envs[c].feed(block.plane(c), self.ceiling, &mut self.env_out[c]);
            self.delay[c].extend_from_slice(block.plane(c));
        }
        block.clear();
        let l = self.lookahead as u64;
        let latency = self.latency() as u64;
        let ring = self.avg.len();
        let first_out = self.delay_start;
        self.gains.clear();
        for i in 0..n {
            // Envelope value for input index env_index - DELAY (negative ones are the start's
            // silence and need no gain).
            let peak = self.env_out.iter().map(|e| e[i]).fold(0f32, f32::max);
            let need = if peak > self.ceiling {
                self.ceiling / peak
            } else {
                1.0
            };
            let k = self.env_index;
            self.env_index += 1;
            while self.minq.back().is_some_and(|&(_, g)| g >= need) {
                self.minq.pop_back();
            }
            self.minq.push_back((k, need));
            while self.minq.front().is_some_and(|&(j, _)| j + l < k) {
                self.minq.pop_front();
            }
            let hold = self.minq.front().map_or(1.0, |&(_, g)| g);
            let released = self.released + (1.0 - self.released) * self.release;
            self.released = released.min(hold);
            // The ring's newest entry in, then (once it holds more than lookahead + 1) its
            // oldest out: the same sums in the same order as a queue.
            let mut head = self.avg_at + self.avg_len;
            if head >= ring {
                head -= ring;
            }
            self.avg[head] = self.released;
            self.avg_len += 1;
            self.avg_sum += f64::from(self.released);
            if self.avg_len > self.lookahead + 1 {
                self.avg_sum -= f64::from(self.avg[self.avg_at]);
                self.avg_at += 1;
                if self.avg_at == ring {
                    self.avg_at = 0;
                }
                self.avg_len -= 1;
            }
            // Envelope index k is input k - DELAY; the averaged gain belongs to input
            // k - DELAY - lookahead, the oldest sample in the delay line.
            if k < latency {
                continue;
            }
            let gain = (self.avg_sum / (self.lookahead + 1) as f64) as f32;
            let gain = gain.min(1.0);
            self.delay_start += 1;
            if self.frames_out >= self.frames_in {
                continue; // flushing past the end
            }
            self.frames_out += 1;
            if gain < 1.0 {
                self.limited_frames += 1;
                self.min_gain = self.min_gain.min(gain);
            }
            self.gains.push(gain);
        }
        // The frames that left, from the oldest in the delay line on, times their gains.
        let m = self.gains.len();
        for c in 0..channels {
            let out = block.plane_mut(c);
            out.extend(
                self.delay[c][first_out..first_out + m]
                    .iter()
                    .zip(&self.gains)
                    .map(|(x, g)| x * g),
            );
        }
        if self.delay_start > 65_536 {
            for d in &mut self.delay {
                d.drain(..self.delay_start);
            }
            self.delay_start = 0;
        }
    }
}

impl Stage for TruePeakLimiter {
    fn name(&self) -> &'static str {
        "limiter"
    }
    fn start(&mut self, input: &SignalSpec) -> Result<SignalSpec, RenderError> {
        if !(self.ceiling_db.is_finite() && self.ceiling_db <= 0.0) {
            return Err(RenderError::Invalid(format!(
                "true-peak ceiling {} dBTP must be 0 dBTP or lower",
                self.ceiling_db
            )));
        }
        let rate = f64::from(input.sample_rate);
        self.ceiling = db_to_gain(self.ceiling_db) as f32;
        self.lookahead = ((self.lookahead_s * rate).round() as usize).max(1);
        self.release = (1.0 - (-1.0 / (self.release_s * rate)).exp()) as f32;
        let ch = input.channels();
        self.envs = (0..ch)
            .map(|_| PeakEnvelope::new(input.sample_rate))
            .collect();
        self.env_out = vec![Vec::new(); ch];
        self.delay = vec![Vec::new(); ch];
        self.delay_start = 0;
        self.minq.clear();
        self.avg.clear();
        self.avg.resize(self.lookahead + 2, 0.0);
        self.avg_at = 0;
        self.avg_len = 0;
        self.avg_sum = 0.0;
        self.released = 1.0;
        self.env_index = 0;
        self.frames_in = 0;
        self.frames_out = 0;
        self.limited_frames = 0;
        self.min_gain = 1.0;
        let mut out = input.clone();
        out.exact_bits = None;
        Ok(out)
    }
    fn process(&mut self, block: &mut Block) {
        self.frames_in += block.frames() as u64;
        self.run(block);
    }
    fn finish(&mut self, block: &mut Block) -> bool {
        let ch = self.delay.len();
        let pending = (self.frames_in - self.frames_out) as usize;
        let mut zeros = Block::from_planes(vec![vec![0.0; self.latency()]; ch]);
        self.run(&mut zeros);
        debug_assert_eq!(zeros.frames(), pending);
        *block = zeros;
        false
    }
    fn report(&self) -> Option<StageReport> {
        Some(StageReport {
            stage: "limiter".into(),
            values: BTreeMap::from([
                ("limited_frames".into(), self.limited_frames as f64),
                ("max_reduction_db".into(), self.stats().1),
            ]),
            warnings: Vec::new(),
        })
    }
}

/// What normalization aims for.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum NormalizeTarget {
    /// The loudest sample at `dbfs`.
    Peak { dbfs: f64 },
    /// Integrated loudness at `lufs` with the true peak at or under `true_peak_dbtp`. Where the
    /// gain would pass the ceiling, the true-peak `limiter` keeps it under; with the limiter
    /// off, the gain is lowered instead and the shortfall reported.
    Loudness {
        lufs: f64,
        true_peak_dbtp: f64,
        limiter: bool,
        /// Limits on the gain, and an album's loudness to steer from.
        #[serde(default, skip_serializing_if = "GainRule::is_plain")]
        rule: GainRule,
    },
}

/// What loudness normalization may do beyond reaching its target: a largest gain, and one
/// gain for a whole album.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GainRule {
    /// The gain never exceeds this, dB (0: only ever lower; the output then stays under the
    /// target where the input is quieter than it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_gain_db: Option<f64>,
    /// Steer from this loudness instead of the input's own: an album's (all its files measured
    /// as one programme, or its loudest file's), so that every file of the album gets the same
    /// gain and their levels stay as they were. The limiter still holds each file's ceiling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_lufs: Option<f64>,
    /// The pipeline's album mode: the host measures the album (the folder a file arrived in)
    /// and sets `from_lufs` by it for each of its files. Without a measured album (a file run
    /// on its own) the file's own loudness is used, as for a single track.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub album: Option<AlbumMode>,
}

/// One gain for all the files of an album, so that their levels stay as they were.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlbumMode {
    /// The gain that brings the files, measured as one programme, to the target.
    Album,
    /// The gain that brings the loudest file to the target.
    AlbumLoudest,
}

impl AlbumMode {
    /// The name as written in pipelines and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            AlbumMode::Album => "album",
            AlbumMode::AlbumLoudest => "album-loudest",
        }
    }

    pub fn parse(s: &str) -> Option<AlbumMode> {
        match s {
            "album" => Some(AlbumMode::Album),
            "album-loudest" => Some(AlbumMode::AlbumLoudest),
            _ => None,
        }
    }
}

impl GainRule {
    pub fn is_plain(&self) -> bool {
        *self == GainRule::default()
    }
}

/// The largest gain from `lower_only` and a `max_gain_db`: the smaller of the two.
pub fn gain_limit(lower_only: bool, max_gain_db: Option<f64>) -> Option<f64> {
    match (lower_only, max_gain_db) {
        (true, m) => Some(m.map_or(0.0, |m| m.min(0.0))),
        (false, m) => m,
    }
}

/// Below this integrated loudness a signal counts as silent and is not loudness-normalized.
pub const SILENCE_LUFS: f64 = -70.0;

/// The limiter aims this far under the ceiling: true-peak meters differ in their
/// interpolation (ffmpeg's reads up to about 0.1 dB above ours on limited material, and a 4×
/// interpolator can miss up to a few tenths of a dB of the continuous peak near Nyquist), so a
/// limited output measures under the ceiling on any of them.
pub const LIMITER_MARGIN_DB: f64 = 0.2;

/// How close to the target the limiter refinement aims, LU.
const TOLERANCE_LU: f64 = 0.02;
/// Refinement passes at most (after the first measurement).
const MAX_REFINE: u32 = 6;
/// The most gain the limiter is given while the loudness is refined: a target still out of
/// reach there (its ceiling too low for it) ends with the closest output and a warning.
const MAX_LIMITED_GAIN_DB: f64 = 100.0;

/// Normalization: measures what the stages before it produce (a prepass), then applies one
/// gain, with a true-peak limiter where the loudness target needs it. With the limiter on,
/// further prepasses measure its output and correct the gain until the loudness is within
/// 0.02 LU of the target and the true peak at or under the ceiling.
#[derive(Debug, Clone)]
pub struct Normalize {
    target: NormalizeTarget,
    measured: Option<OutputLoudness>,
    gain_db: f64,
    factor: f32,
    limiter: Option<TruePeakLimiter>,
    /// The ceiling the limiter aims at (lowered if its output measured over the ceiling).
    limiter_ceiling: f64,
    refine: u32,
    /// The last refinements' gains and measured loudness (at most three, the newest last),
    /// moved with the limiter's ceiling when it comes down.
    points: Vec<(f64, f64)>,
    settled: bool,
    result: Option<OutputLoudness>,
    warnings: Vec<String>,
    /// How much further under the ceiling the output is held, dB (an encoder's overshoot,
    /// see [`Stage::correct_for_codec`]).
    lowered_db: f64,
    /// How far above the target the output is aimed, LU (what an encoder takes away).
    offset_lu: f64,
    /// Where the last limited refinement settled, to start from when corrected for a codec.
    settled_at: Option<SettledAt>,
    /// The lowest low-pass of the lossy encoders downstream, Hz (see
    /// [`Stage::expect_codec_lowpass`]).
    codec_lowpass_hz: Option<f64>,
    /// What the input measures low-passed there, and the output at the last measurement.
    input_lowpassed: Option<Lowpassed>,
    output_lowpassed: Option<Lowpassed>,
    /// The gain is set by the rule (an album's, or held at the largest gain): refinements
    /// only hold the ceiling, they do not steer to the target.
    fixed: bool,
    /// How much the largest gain took off the gain that reaches the target, dB.
    capped_db: f64,
}

/// Room held for a lossy codec's own noise over its low-pass's ringing, dB: where the
/// low-pass is expected, the low-passed signal's true peak is held this far under the aim.
/// (LAME V2 on limited acoustic material: the decoded file's true peak lies 0.2 dB over the
/// low-passed signal's.)
pub const CODEC_NOISE_DB: f64 = 0.3;

/// A prepass's probe: the loudness and peaks, and the peak after the codec's low-pass when
/// one is expected.
struct NormalizeMeter {
    meter: OutputMeter,
    lowpass: Option<super::lowpass::LowpassPeak>,
}

impl Probe for NormalizeMeter {
    fn feed(&mut self, block: &Block) {
        self.meter.feed(block);
        if let Some(l) = &mut self.lowpass {
            l.feed(block.planes());
        }
    }
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any> {
        self
    }
}

/// A limited refinement's outcome: the gain, the loudness it measured, the limiter's ceiling
/// and the loudness's slope against the gain there.
#[derive(Debug, Clone, Copy)]
struct SettledAt {
    gain_db: f64,
    lufs: f64,
    ceiling_db: f64,
    slope: f64,
}

impl Normalize {
    pub fn new(target: NormalizeTarget) -> Self {
        Normalize {
            target,
            measured: None,
            gain_db: 0.0,
            factor: 1.0,
            limiter: None,
            limiter_ceiling: 0.0,
            refine: 0,
            points: Vec::new(),
            settled: false,
            result: None,
            warnings: Vec::new(),
            lowered_db: 0.0,
            offset_lu: 0.0,
            settled_at: None,
            codec_lowpass_hz: None,
            input_lowpassed: None,
            output_lowpassed: None,
            fixed: false,
            capped_db: 0.0,
        }
    }

    /// Where the output's true peak is aimed: under the ceiling by the limiter's margin and
    /// by what an encoder downstream was found to add.
    fn aim(&self, true_peak_dbtp: f64) -> f64 {
        true_peak_dbtp - LIMITER_MARGIN_DB - self.lowered_db
    }

    /// The gain decided on, dB.
    pub fn gain_db(&self) -> f64 {
        self.gain_db
    }

    fn set_gain(&mut self, db: f64) {
        self.gain_db = db;
        self.factor = db_to_gain(db) as f32;
    }

    /// The peak the ceiling holds: the true peak, and where a codec's low-pass is expected,
    /// the low-passed signal's true peak with room for the codec's own noise.
    fn held_peak(m: &OutputLoudness, lowpassed: Option<Lowpassed>) -> f64 {
        lowpassed.map_or(m.true_peak_dbtp, |lp| {
            m.true_peak_dbtp.max(lp.true_peak_dbtp + CODEC_NOISE_DB)
        })
    }

    /// The loudness aimed at the target: where a codec's low-pass is expected, the
    /// low-passed signal's (what the decoded file will measure), else the signal's.
    fn steered_loudness(m: &OutputLoudness, lowpassed: Option<Lowpassed>) -> Option<f64> {
        lowpassed
            .and_then(|lp| lp.integrated_lufs)
            .or(m.loudness.integrated_lufs)
    }

    fn decide(&mut self, m: &OutputLoudness, lowpassed: Option<Lowpassed>) {
        let peak = Self::held_peak(m, lowpassed);
        match self.target {
            NormalizeTarget::Peak { dbfs } => {
                if m.sample_peak_dbfs.is_finite() {
                    self.set_gain(dbfs - m.sample_peak_dbfs);
                } else {
                    self.warnings
                        .push("the input is digital silence: peak normalization skipped".into());
                }
                self.settled = true;
            }
            NormalizeTarget::Loudness {
                lufs,
                true_peak_dbtp,
                limiter,
                rule,
            } => {
                let silent = !m
                    .loudness
                    .integrated_lufs
                    .is_some_and(|i| i >= SILENCE_LUFS);
                let steered = Self::steered_loudness(m, lowpassed);
                let Some(i) = steered.filter(|_| !silent) else {
                    // Silence, or a sound too short for one 400 ms block: say which.
                    self.warnings.push(if m.sample_peak_dbfs > SILENCE_LUFS {
                        format!(
                            "the input has no 400 ms block above {SILENCE_LUFS} LUFS (it is \
                             shorter than 0.4 s, or that quiet): its loudness cannot be measured, \
                             loudness normalization skipped"
                        )
                    } else {
                        format!(
                            "the input is silent (below {SILENCE_LUFS} LUFS): loudness \
                             normalization skipped"
                        )
                    });
                    self.settled = true;
                    return;
                };
                let mut gain = lufs + self.offset_lu - rule.from_lufs.unwrap_or(i);
                self.fixed = rule.from_lufs.is_some();
                if let Some(max) = rule.max_gain_db
                    && gain > max
                {
                    self.capped_db = gain - max;
                    gain = max;
                    self.fixed = true;
                }
                let aim = self.aim(true_peak_dbtp);
                if peak + gain <= aim {
                    self.set_gain(gain);
                    self.settled = true;
                } else if limiter {
                    self.set_gain(gain);
                    self.limiter_ceiling = aim;
                    let l = TruePeakLimiter::new(self.limiter_ceiling);
                    self.limiter = Some(l);
                } else {
                    let g = aim - peak;
                    self.set_gain(g);
                    self.warnings.push(format!(
                        "the loudness target {lufs:.1} LUFS needs {gain:+.2} dB, which would put the true peak at {:.2} dBTP over the {true_peak_dbtp:.1} dBTP ceiling; with the limiter off the gain is {g:+.2} dB and the output is {:.2} LU short of the target",
                        peak + gain,
                        gain - g
                    ));
                    self.settled = true;
                }
            }
        }
    }

    fn refine_with(&mut self, m: &OutputLoudness, lowpassed: Option<Lowpassed>) {
        let NormalizeTarget::Loudness {
            lufs,
            true_peak_dbtp,
            ..
        } = self.target
        else {
            self.settled = true;
            return;
        };
        self.refine += 1;
        let lufs = lufs + self.offset_lu;
        let steered = Self::steered_loudness(m, lowpassed);
        // A gain set by the rule is kept: only the ceiling is held.
        let err = if self.fixed {
            0.0
        } else {
            steered.map_or(0.0, |i| lufs - i)
        };
        let over = Self::held_peak(m, lowpassed) - self.aim(true_peak_dbtp);
        let ok = err.abs() <= TOLERANCE_LU && over <= 0.0;
        let measured = steered.unwrap_or(lufs);
        // The loudness's slope against the gain: the secant through the previous refinement
        // (the limiter gives back less than each added dB), 1 before there is one.
        let slope = match self.points.last() {
            Some(&(g0, i0)) if (self.gain_db - g0).abs() > 1e-6 => {
                ((measured - i0) / (self.gain_db - g0)).clamp(0.2, 1.0)
            }
            _ => 1.0,
        };
        tracing::debug!(
            refine = self.refine,
            gain_db = self.gain_db,
            ceiling_db = self.limiter_ceiling,
            measured_lufs = ?m.loudness.integrated_lufs,
            true_peak_dbtp = m.true_peak_dbtp,
            lowpassed = ?lowpassed,
            "normalize: limited output measured"
        );
        if ok || self.refine >= MAX_REFINE {
            if !ok {
                self.warnings.push(format!(
                    "after {} passes the limited output measures {:+.2} LU from the target and {:.2} dBTP",
                    self.refine, -err, m.true_peak_dbtp
                ));
            }
            self.settled = true;
            self.result = Some(m.clone());
            self.settled_at = self.limiter.as_ref().map(|_| SettledAt {
                gain_db: self.gain_db,
                lufs: measured,
                ceiling_db: self.limiter_ceiling,
                slope,
            });
            return;
        }
        // Over the aim: the limiter's ceiling comes down by the excess. The limiter is
        // homogeneous (gain and ceiling d dB lower give the same output d dB lower), so this
        // measurement, moved d dB down, is one under the new ceiling: the step starts there.
        self.points.push((self.gain_db, measured));
        if self.points.len() > 3 {
            self.points.remove(0);
        }
        if over > 0.0 {
            let d = over + 0.005;
            self.limiter_ceiling -= d;
            if let Some(l) = &mut self.limiter {
                l.set_ceiling(self.limiter_ceiling);
            }
            self.points.iter_mut().for_each(|p| {
                p.0 -= d;
                p.1 -= d;
            });
        }
        if !self.fixed {
            // A target the ceiling cannot allow drives the gain up without end (and a factor
            // past `f32`'s range silences the output): the limiter gets at most this much.
            let next = next_gain(&self.points, lufs, slope).min(MAX_LIMITED_GAIN_DB);
            self.set_gain(next);
        }
    }
}

/// The next gain to try for loudness `target`, from the last measurements `points` (gain,
/// loudness; the newest last) and the secant `slope` through the last two (or 1). The
/// limiter gives back less of each added dB the harder it works, so the loudness is a concave
/// function of the gain and secant steps fall short: with three measurements the gain is
/// interpolated as a quadratic function of the loudness (inverse quadratic interpolation),
/// kept between the secant step and three times it.
fn next_gain(points: &[(f64, f64)], target: f64, slope: f64) -> f64 {
    let &(g2, l2) = points.last().expect("a measurement");
    let secant = g2 + (target - l2) / slope;
    let [(g0, l0), (g1, l1), _] = points else {
        return secant;
    };
    let (g0, l0, g1, l1) = (*g0, *l0, *g1, *l1);
    let distinct = (l0 - l1).abs() > 1e-9 && (l0 - l2).abs() > 1e-9 && (l1 - l2).abs() > 1e-9;
    if !distinct {
        return secant;
    }
    let t = target;
    let iqi = g0 * (t - l1) * (t - l2) / ((l0 - l1) * (l0 - l2))
        + g1 * (t - l0) * (t - l2) / ((l1 - l0) * (l1 - l2))
        + g2 * (t - l0) * (t - l1) / ((l2 - l0) * (l2 - l1));
    let step = secant - g2;
    let (lo, hi) = if step >= 0.0 {
        (g2 + step, g2 + 3.0 * step)
    } else {
        (g2 + 3.0 * step, g2 + step)
    };
    if iqi.is_finite() {
        iqi.clamp(lo, hi)
    } else {
        secant
    }
}

impl Stage for Normalize {
    fn name(&self) -> &'static str {
        "normalize"
    }
    fn start(&mut self, input: &SignalSpec) -> Result<SignalSpec, RenderError> {
        match self.target {
            NormalizeTarget::Peak { dbfs } if !(dbfs.is_finite() && dbfs <= 0.0) => {
                return Err(RenderError::Invalid(format!(
                    "peak target {dbfs} dBFS must be 0 dBFS or lower"
                )));
            }
            NormalizeTarget::Loudness {
                lufs,
                true_peak_dbtp,
                ..
            } if !(lufs.is_finite()
                && (-70.0..=0.0).contains(&lufs)
                && true_peak_dbtp.is_finite()
                && true_peak_dbtp <= 0.0) =>
            {
                return Err(RenderError::Invalid(format!(
                    "loudness target {lufs} LUFS with ceiling {true_peak_dbtp} dBTP: the target must lie between -70 and 0 LUFS and the ceiling at 0 dBTP or lower"
                )));
            }
            _ => {}
        }
        let mut out = input.clone();
        if let Some(l) = &mut self.limiter {
            out = l.start(input)?;
        }
        if self.gain_db != 0.0 {
            out.exact_bits = None;
        }
        Ok(out)
    }
    fn prepass(&mut self, input: &SignalSpec) -> Option<Prepass> {
        if self.settled {
            return None;
        }
        let meter = Box::new(NormalizeMeter {
            meter: OutputMeter::new(input),
            lowpass: self
                .codec_lowpass_hz
                .and_then(|hz| super::lowpass::LowpassPeak::new(input, hz)),
        });
        Some(if self.measured.is_none() {
            Prepass::Input(meter)
        } else {
            Prepass::Output(meter)
        })
    }
    fn prepass_done(&mut self, probe: Box<dyn Probe>) -> Result<(), RenderError> {
        let probe = probe
            .into_any()
            .downcast::<NormalizeMeter>()
            .expect("our own probe");
        let m = probe.meter.finish();
        let lowpassed = probe.lowpass.map(super::lowpass::LowpassPeak::finish);
        if self.measured.is_none() {
            self.decide(&m, lowpassed);
            self.measured = Some(m);
            self.input_lowpassed = lowpassed;
        } else {
            self.refine_with(&m, lowpassed);
            self.output_lowpassed = lowpassed;
        }
        Ok(())
    }
    fn process(&mut self, block: &mut Block) {
        if self.factor != 1.0 {
            let g = self.factor;
            block
                .planes_mut()
                .iter_mut()
                .for_each(|p| p.iter_mut().for_each(|x| *x *= g));
        }
        if let Some(l) = &mut self.limiter {
            l.process(block);
        }
    }
    fn finish(&mut self, block: &mut Block) -> bool {
        self.limiter.as_mut().is_some_and(|l| l.finish(block))
    }
    fn loudness_target(&self) -> Option<(f64, f64)> {
        match self.target {
            NormalizeTarget::Loudness {
                lufs,
                true_peak_dbtp,
                ..
            } => Some((lufs, true_peak_dbtp)),
            NormalizeTarget::Peak { .. } => None,
        }
    }
    fn correct_for_codec(&mut self, lower_ceiling_db: f64, loudness_offset_lu: f64) -> bool {
        if self.loudness_target().is_none()
            || !(lower_ceiling_db.is_finite()
                && lower_ceiling_db >= 0.0
                && loudness_offset_lu.is_finite())
        {
            return false;
        }
        // Measured and loud enough to have been normalized: decide again from the input's
        // measurement with the lower aim (a limiter where there was none, or a lower limiter
        // ceiling), and refine the gain again so the loudness stays on target.
        let Some(m) = self.measured.clone().filter(|m| {
            m.loudness
                .integrated_lufs
                .is_some_and(|i| i >= SILENCE_LUFS)
        }) else {
            return false;
        };
        self.lowered_db += lower_ceiling_db;
        self.offset_lu += loudness_offset_lu;
        self.limiter = None;
        self.refine = 0;
        self.points.clear();
        self.settled = false;
        self.result = None;
        self.warnings.clear();
        self.output_lowpassed = None;
        self.decide(&m, self.input_lowpassed);
        // Start from where the last limited refinement settled. The limiter is homogeneous
        // (a gain and its ceiling both d dB lower give the same output d dB lower), so the
        // settled point, moved d dB down, is a measurement under the new ceiling, and the
        // output must come up by d + the offset from there along the slope found.
        if let (Some(w), Some(l)) = (self.settled_at, &mut self.limiter) {
            let d = lower_ceiling_db;
            self.limiter_ceiling = self.limiter_ceiling.min(w.ceiling_db - d);
            l.set_ceiling(self.limiter_ceiling);
            self.points = vec![(w.gain_db - d, w.lufs - d)];
            self.set_gain(w.gain_db - d + (d + loudness_offset_lu) / w.slope);
        }
        true
    }
    fn expect_codec_lowpass(&mut self, cutoff_hz: f64) -> bool {
        if self.loudness_target().is_none() || !(cutoff_hz.is_finite() && cutoff_hz > 0.0) {
            return false;
        }
        self.codec_lowpass_hz = Some(
            self.codec_lowpass_hz
                .map_or(cutoff_hz, |c| c.min(cutoff_hz)),
        );
        true
    }
    fn report(&self) -> Option<StageReport> {
        let mut values = BTreeMap::from([
            ("gain_db".to_string(), self.gain_db),
            // 1 when the true-peak limiter worked on the output, 0 when the gain was linear.
            (
                "limited".to_string(),
                f64::from(u8::from(self.limiter.is_some())),
            ),
        ]);
        if self.capped_db > 0.0 {
            values.insert("gain_capped_db".into(), self.capped_db);
        }
        if let NormalizeTarget::Loudness {
            rule: GainRule {
                from_lufs: Some(l), ..
            },
            ..
        } = self.target
        {
            values.insert("album_integrated_lufs".into(), l);
        }
        if let Some(hz) = self.codec_lowpass_hz {
            values.insert("codec_lowpass_hz".into(), hz);
            let lowpassed = self
                .output_lowpassed
                .or(self.input_lowpassed.map(|p| Lowpassed {
                    true_peak_dbtp: p.true_peak_dbtp + self.gain_db,
                    integrated_lufs: p.integrated_lufs.map(|i| i + self.gain_db),
                }));
            if let Some(p) = lowpassed {
                values.insert("codec_lowpassed_true_peak_dbtp".into(), p.true_peak_dbtp);
                if let Some(i) = p.integrated_lufs {
                    values.insert("codec_lowpassed_integrated_lufs".into(), i);
                }
            }
        }
        if self.lowered_db > 0.0 {
            values.insert("codec_ceiling_lowered_db".into(), self.lowered_db);
        }
        if self.offset_lu != 0.0 {
            values.insert("codec_loudness_offset_lu".into(), self.offset_lu);
        }
        if let Some(m) = &self.measured {
            if let Some(i) = m.loudness.integrated_lufs {
                values.insert("input_integrated_lufs".into(), i);
            }
            values.insert("input_true_peak_dbtp".into(), m.true_peak_dbtp);
            values.insert("input_sample_peak_dbfs".into(), m.sample_peak_dbfs);
        }
        if let Some(l) = &self.limiter {
            let (frames, depth) = l.stats();
            values.insert("limited_frames".into(), frames as f64);
            values.insert("limiter_max_reduction_db".into(), depth);
            values.insert("limiter_passes".into(), f64::from(self.refine));
        }
        Some(StageReport {
            stage: "normalize".into(),
            values,
            warnings: self.warnings.clone(),
        })
    }
}
