//! Tempo (BPM) estimation for whole files, streaming, at any sample rate from 8 to 384 kHz.
//!
//! # Method
//!
//! **Onset-strength envelope** (computed while feeding; the only thing kept is this envelope,
//! ~100 `f32` per second, so a 3-hour file holds ~4 MB):
//!
//! * The input is decimated by an integer factor `D = ⌊rate / 8000⌋` with a box filter (sum of
//!   `D` samples), giving a rate in 8–16 kHz. Aliasing is harmless here: only band energies
//!   and their rises are used, and only 0–4 kHz is analysed at every input rate, which is what
//!   makes the result rate-independent.
//! * STFT with a Hann window of ~30 ms (the power of two nearest: 256 samples at 8–11 kHz)
//!   and a hop of ~10 ms (`round(rate / 100)`), i.e. ~100 envelope frames per second — fine
//!   enough for 4 % tempo precision via the comb refinement below, coarse enough to be cheap.
//!   Two consecutive real frames share one complex FFT (real and imaginary parts).
//! * Power is summed in 1/3-octave bands from 50 Hz to 4 kHz (bins below 50 Hz are ignored:
//!   a steady sub-bass tone beats with its own mirror image there), ~18 bands, and compressed
//!   as `ln(1 + E / (10⁻⁴ · peak))`, where `peak` is the frame power's running maximum with a
//!   2 s release: a log (level-independent) response for
//!   events within 40 dB of the recent peak, fading to linear below, so faint hi-hats count
//!   less than the backbeat and low-level noise hardly counts at all. The onset strength is
//!   the half-wave-rectified rise of these log band energies over the maximum of the previous
//!   four frames (40 ms), summed over bands: spectral flux with a max-filtered reference, which
//!   ignores the fast frame-to-frame flicker of steady tones.
//!
//! **Periodicity** (at [`TempoAnalyzer::finish`]): the envelope is cut into 12 s windows
//! overlapping by half (so slow tempo drift does not smear the result), and the mean-removed,
//! unbiased, per-window-normalised autocorrelation `A(τ)` is averaged over the windows, for
//! lags up to 4 s. `A` is 1 when the envelope repeats exactly.
//!
//! **Low-band (kick) envelope**, computed from the same transforms at no extra FFT cost: the
//! power of the bins between 50 (the first analysed bin) and 150 Hz, compressed against its own
//! running peak in the same way, and its rise over the previous four frames. Normalised to its
//! own peak, a kick drum counts as much here as a clap does in the broadband envelope, where
//! claps, snares and open hats span many bands and a deep kick only two or three.
//!
//! **Preferred range and prior.** [`TempoAnalyzer::with_range`] takes a preferred range
//! (`new` uses [`DEFAULT_RANGE`], 78–200 BPM); the prior is 1 inside it and falls off outside
//! as a half-normal in octaves (σ = 0.5 octave: ×0.61 half an octave out, ×0.14 an octave
//! out). Results lie in 60–200 BPM, widened to the preferred range if it reaches beyond.
//!
//! **Octave / metrical-level resolution**, done on purpose rather than by the prior alone:
//!
//! 1. Reference pulse: the maximum of `prior(T) · A(60/T)` over the allowed tempi. Every period
//!    is then refined (±3 %) by maximising the mean of `A` over its first (up to 8) multiples,
//!    which gives a precision far below one frame.
//! 2. Family: the ×2/3 relative replaces the reference if the comb over its multiples is
//!    higher by 10 % (this catches dotted figures such as a drum-and-bass kick; the margin
//!    keeps ties, e.g. a 3-beat lag in a kick-on-every-beat groove, from switching); the ×3/2
//!    relative replaces it when its comb reaches 97 % of the reference's: at a near tie the
//!    faster pulse is the beat (a 170 BPM song whose accents fall every three beats reads
//!    113.5 otherwise).
//! 3. Level: the relatives ×{1/3, 1/2, 1, 2, 3} inside the allowed tempi are scored with
//!    `prior · √(A/A_max) · even · (1 − sub)`, from the envelope folded modulo the period
//!    (per window, ±1-frame peak hold against timing jitter):
//!    * `even`: at the next slower level (×1/2, or ×1/3 when `A` at three periods beats two
//!      and four), the strength of the phase where this level's off-beats fall, relative to the
//!      strongest phase. Low means this level's beats alternate strong/weak: it is a
//!      subdivision. Only asked when the slower level is itself in range (else 1).
//!    * **kick evidence**: `kick(T)` is the same measure on the *low-band* envelope folded at
//!      two beats, times the low band's own autocorrelation at one beat — near 1 when a kick
//!      lands on every beat (four-on-the-floor), 0 when there is no low-band pulse. `even` is
//!      at least `kick(T)`: a kick on every beat is the strongest evidence of the beat there
//!      is, whatever the claps and off-beat hats do to the broadband accents.
//!    * `sub`: the `even` measure at this level's half (and thirds), and `kick` at double
//!      tempo: strong events between the beats mean the faster level is an equally good beat.
//!      Only asked when that faster level is in range (else 0).
//!
//!    In words: the beat is the fastest level whose beats carry comparable accents, as in a
//!    kick/snare backbeat or a kick on every beat, with hi-hat subdivisions clearly weaker.
//! 4. Into the range: a winner outside the preferred range moves by an octave (×2 below it, ×½
//!    above) into it when that level has comparable evidence: its own autocorrelation at least
//!    10 % of the strongest level's and a confidence (below) at least 80 % of the winner's.
//!    This is what reports half-time grooves (kick on 1, snare only on 3) at the notated
//!    tempo: their signal is that of a groove at half the tempo, so only the range decides.
//! 5. Confidence: the largest `A` at 1–4 beat periods (how exactly the onset pattern repeats).
//! 6. Runner-up: the best-scoring other level of step 3 (usually ×2 or ×½) is reported as
//!    `alternative_bpm`, with `alternative_confidence` = confidence × (its score / the
//!    reported level's score), capped at the confidence.
//!
//! # Undefined results
//!
//! `finish` returns `None` for input shorter than 6 s (six beats at 60 BPM: the ×2 period used
//! for the level decision then still overlaps itself over ≥ 4 s; at most a few beats are a
//! guess), when no window has onsets (silence, a steady tone: envelope variance below 0.05,
//! i.e. a standard deviation under ~0.2 nepers of summed band rise per frame),
//! and when the confidence is below a floor that falls with the file's length as the
//! autocorrelation of noise does: 0.25 for one 12 s window, 0.25·√(2/(windows+1)) beyond, down
//! to 0.1 (0.18 at 24 s, 0.125 at 48 s, 0.1 from about a minute). White noise measures
//! 0.04–0.13 at 6–12 s, 0.035–0.054 (white, pink, brown) at 30 s and 0.016–0.020 at 3 minutes;
//! a steady sine below 0.15; the synthetic drum patterns of the tests 0.55–0.99; a 170 BPM
//! metal song with blast beats (Frets on Fire's "Armygeddon") 0.17, which the fixed 0.25 of
//! earlier versions reported as no tempo at all.
//!
//! # Tuning and measured accuracy
//!
//! Chosen from principles: window/hop/bands (standard onset-detection values), the 12 s
//! windows, the 50–150 Hz low band. Tuned on the synthetic test set (`cases()` in
//! `core/tests/tempo.rs`, and said so): the −40 dB knee (−70 dB made faint hi-hats as strong as
//! the backbeat, doubling slow ballads; −20 dB lost the quiet beats), the √ on the periodicity
//! term (levels with almost no periodicity of their own must not win on `even`/`sub` alone),
//! the 0.05 variance floor (a 30 Hz sine passed 10⁻³), the 10 % family margin (an exact tie
//! flipped a 126 BPM house loop to 84), and the default range and the two move thresholds:
//! lower edges 60 / 70 / 78 BPM gave 34 / 34 / 37 of 41 on the tuned set, an upper edge of
//! 180 instead of 200 halved a 184 BPM drum-and-bass and a 190 BPM rock groove, and a move
//! threshold of 30 % instead of 10 % of the strongest autocorrelation left the half-time
//! grooves at their felt half tempo (34 / 41). The upper edge is 200 (the allowed maximum) so
//! nothing is halved by default: every miss an outside test found was at half tempo.
//!
//! Tuned on real material (`host/benches/tempo.py`, and said so): the ×3/2 margin of 97 %
//! (it was 110 %, as the ×2/3 one still is). On the 8 band recordings of Frets on Fire's song
//! packs (metal and rock at 95–190 BPM, truth: their charts) and 25 LMMS demo projects rendered
//! by LMMS (electronic, house, reggae, chiptune, rock at 87–200 BPM, truth: the projects'
//! tempo), the ×3/2 relative's comb was 99–109 % of the reference's in the five readings at
//! two thirds of the truth, and at most 54 % where the reference was right; near ties of the
//! ×2/3 relative (96–99 %) were all wrong. Those five became right (songs 6 → 7 of 8, renders
//! 20 → 23 of 25; librosa: 4 of 8 and 15 of 25); the synthetic sets below did not change.
//!
//! Measured (synthetic grooves: kick, snare/clap, hats with velocity variation and timing
//! jitter, bass lines, chords and pads, some noise; 60–190 BPM; four-on-the-floor house and
//! techno at 120–175, rock, funk, swing, waltz, drum and bass, and half-time grooves counted
//! against the notated tempo):
//! * tuned set: 37 of 41 within 4 % of the notated tempo, 41 of 41 within octave tolerance
//!   (×⅓, ½, 2, 3). Misses: a 64.5 BPM ballad and a 67 BPM swung-sixteenth hip-hop groove
//!   moved to double tempo, a 96 BPM half-time rock groove at double, and a 133 BPM "half
//!   notes loud" groove at half (its quarter notes are faint hats: too little evidence to
//!   move); for all four the notated tempo is the `alternative_bpm`.
//! * held-out set (never tuned on): 31 of 34 within 4 %, 34 of 34 within octave tolerance;
//!   misses: a 90 BPM funk groove at double, a 145 BPM "half notes loud" groove at half (as
//!   above) and a 165 BPM half-time groove at half (82.5 is inside the default range); again
//!   the notated tempo is the alternative in all three.
//! * four-on-the-floor with a faint kick and loud claps at 120–174 (its own test): 5 of 5,
//!   the half-tempo runner-up at 0.13–0.63 of the confidence; without the kick evidence 4 of
//!   5 (174 read as 87) and the runner-up at 0.38–1.0.
//!
//! Known limitations: half-time grooves whose half tempo lies inside the preferred range are
//! reported at that half tempo, and slow grooves (below 78 BPM) with a clear double-time
//! subdivision at double tempo — the signal alone cannot tell these apart; set the range
//! (e.g. 60–120 for ballads, 100–200 for fast half-time material) when the style is known, or
//! read `alternative_bpm`. A steady sine below ~25 Hz, which a 30 ms window cannot separate
//! from its mirror image, can flicker exactly periodically and yield a spurious tempo; the
//! variance floor and the 40 ms flux reference remove this above ~25 Hz.

use std::sync::Arc;

use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};

/// Lowest rate the input is decimated to (Hz); the decimated rate lies in `[8 kHz, 16 kHz)`.
const DECIMATED_MIN_RATE: u32 = 8_000;
/// Onset-envelope frame rate target (frames per second).
const ENVELOPE_RATE: f64 = 100.0;
/// Analysis window length target in seconds (rounded to a power of two in samples).
const WINDOW_SECONDS: f64 = 0.03;
/// Upper edge of the analysed spectrum; the same for every input rate.
const TOP_HZ: f64 = 4_000.0;
/// The flux compares each frame with the maximum of this many previous frames (40 ms).
const REFERENCE_FRAMES: usize = 4;
/// Lowest analysed frequency; bins below it are ignored.
const BAND_BASE_HZ: f64 = 50.0;
/// Bands per octave.
const BANDS_PER_OCTAVE: f64 = 3.0;
/// Knee of the log compression relative to the running peak power: -40 dB.
const KNEE: f32 = 1.0e-4;
/// Absolute floor of the compression reference (power; a full-scale sine is 1): -100 dB.
const ABS_FLOOR: f32 = 1.0e-10;
/// Release time of the peak tracker.
const PEAK_RELEASE_SECONDS: f64 = 2.0;

/// Reported tempo range.
const MIN_BPM: f64 = 60.0;
const MAX_BPM: f64 = 200.0;
/// Shortest input analysed, in seconds.
const MIN_SECONDS: f64 = 6.0;
/// Autocorrelation window and hop (seconds).
const ACF_WINDOW_SECONDS: f64 = 12.0;
/// Longest lag inspected (seconds): 3 s (20 BPM) plus room for refinement.
const MAX_LAG_SECONDS: f64 = 4.0;
/// Default preferred tempo range (BPM) of [`TempoAnalyzer::new`].
pub const DEFAULT_RANGE: (f64, f64) = (DEFAULT_LO, DEFAULT_HI);
const DEFAULT_LO: f64 = 78.0;
const DEFAULT_HI: f64 = 200.0;
/// Fall-off of the tempo prior outside the preferred range: a half-normal in octaves with
/// this standard deviation.
const PRIOR_OCTAVES: f64 = 0.5;
/// The low band (kick drums, bass) of the second onset envelope, Hz; the lower edge is
/// raised to the first analysed bin (≥ 50 Hz).
const LOW_BAND_HZ: (f64, f64) = (40.0, 150.0);
/// The ×2/3 relative (slower) must beat the reference comb by this factor to replace it...
const FAMILY_MARGIN: f64 = 1.1;
/// ...and the ×3/2 relative (faster) must reach this share of it: a near tie is the faster
/// pulse, whose comb's multiples include every other one of the slower's.
const FASTER_FAMILY_MARGIN: f64 = 0.97;
/// Moving a reading into the preferred range: the new level's autocorrelation must be at least
/// this share of the strongest level's...
const MOVE_PULSE: f64 = 0.1;
/// ...and its confidence at least this share of the reading's.
const MOVE_CONFIDENCE: f64 = 0.8;
/// Below this confidence the tempo of a file of one autocorrelation window (up to 12 s) is
/// undefined (`None`); longer files, see [`min_confidence`].
const MIN_CONFIDENCE: f64 = 0.25;
/// The least confidence of a long file (see [`min_confidence`]): noise of 3 minutes measures
/// 0.016–0.020, of 30 s 0.035–0.054.
const LONG_MIN_CONFIDENCE: f64 = 0.1;
/// Variance floor of the onset envelope per window (its unit is nepers of rise per frame):
/// below it a window has no onsets (silence, steady tones).
const VARIANCE_FLOOR: f64 = 5.0e-2;
/// The same for the low-band envelope (one band, not a sum of ~18).
const LOW_VARIANCE_FLOOR: f64 = 5.0e-3;

/// Beats per minute and how sure the estimator is.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Tempo {
    /// Beats per minute, in 60..=200 (or the preferred range, if it reaches beyond), after
    /// octave resolution
    pub bpm: f64,
    /// 0..=1, how clearly one periodicity dominates
    pub confidence: f64,
    /// The runner-up metrical level (usually ×2 or ×½ of `bpm`), when there is one in range.
    pub alternative_bpm: Option<f64>,
    /// Its confidence, on the same scale as `confidence` and at most `confidence`.
    pub alternative_confidence: Option<f64>,
}

/// Streaming tempo estimator. Feed mono samples (the caller mixes channels down by averaging) in
/// blocks of any size.
pub struct TempoAnalyzer {
    decim: usize,
    decim_scale: f32,
    /// Input samples of the decimation group in progress (fewer than `decim`).
    part: Vec<f32>,
    /// Decimated samples not yet consumed by framing; frames start at `pos`.
    buf: Vec<f32>,
    pos: usize,
    n_fft: usize,
    hop: usize,
    frame_rate: f64,
    window: Vec<f32>,
    /// Band edges as FFT bin indices: band `b` is bins `edges[b]..edges[b + 1]`.
    edges: Vec<usize>,
    fft: Arc<dyn Fft<f32>>,
    fft_buf: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    /// A windowed frame sits in the real part of `fft_buf`, waiting for a partner.
    pending: bool,
    /// Running peak of the frame power (slow release), the reference of the log compression.
    peak: f32,
    peak_decay: f32,
    /// The last `REFERENCE_FRAMES` log band energies, newest first.
    prev: Vec<[f32; REFERENCE_FRAMES]>,
    cur: [Vec<f32>; 2],
    /// The onset-strength envelope, one value per frame.
    env: Vec<f32>,
    /// Bins `low.0..low.1` form the low band.
    low: (usize, usize),
    /// Running peak of the low-band power, and its last `REFERENCE_FRAMES` log energies.
    low_peak: f32,
    low_prev: [f32; REFERENCE_FRAMES],
    low_cur: [f32; 2],
    /// The low-band onset envelope (kick drums), one value per frame.
    env_low: Vec<f32>,
    /// Preferred tempo range (BPM).
    range: (f64, f64),
}

impl TempoAnalyzer {
    /// A new analyzer for `sample_rate` Hz input (8 000..=384 000), preferring tempi in
    /// [`DEFAULT_RANGE`] (78–200 BPM).
    pub fn new(sample_rate: u32) -> Self {
        Self::with_range(sample_rate, DEFAULT_LO, DEFAULT_HI)
    }

    /// A new analyzer preferring tempi in `lo_bpm..=hi_bpm`: a reading outside the range is
    /// moved into it by octaves (×2, ×½, or ×3, ×⅓) when that level has comparable evidence.
    /// The range is widened to at least an octave (around its geometric centre) and clamped to
    /// 30–300 BPM; results also lie in 60–200 BPM unless the range reaches beyond.
    pub fn with_range(sample_rate: u32, lo_bpm: f64, hi_bpm: f64) -> Self {
        let range = preferred_range(lo_bpm, hi_bpm);
        let sr = sample_rate.clamp(
            DECIMATED_MIN_RATE,
            *crate::formats::limits::SAMPLE_RATES.end(),
        );
        let decim = (sr / DECIMATED_MIN_RATE).max(1) as usize;
        let fs = f64::from(sr) / decim as f64;
        let n_fft = 1usize << (fs * WINDOW_SECONDS).log2().round() as u32;
        let hop = (fs / ENVELOPE_RATE).round() as usize;
        let frame_rate = fs / hop as f64;
        let window = (0..n_fft)
            .map(|i| {
                let x = std::f64::consts::PI * i as f64 / n_fft as f64;
                (x.sin() * x.sin()) as f32
            })
            .collect();
        let bin = |hz: f64| (hz * n_fft as f64 / fs).round() as usize;
        let top = bin(TOP_HZ).min(n_fft / 2);
        // Bins below 50 Hz are left out: there a steady tone's positive- and negative-frequency
        // lobes overlap and beat from frame to frame, a fake periodic onset pattern.
        let first = ((BAND_BASE_HZ * n_fft as f64 / fs).ceil() as usize).max(1);
        let mut edges = vec![first];
        let mut j = 0.0;
        loop {
            let hz = BAND_BASE_HZ * 2f64.powf(j / BANDS_PER_OCTAVE);
            j += 1.0;
            let b = bin(hz).min(top);
            if b > *edges.last().unwrap() {
                edges.push(b);
            }
            if b >= top {
                break;
            }
        }
        let bands = edges.len() - 1;
        let fft = FftPlanner::new().plan_fft_forward(n_fft);
        let scratch = vec![Complex::default(); fft.get_inplace_scratch_len()];
        TempoAnalyzer {
            decim,
            decim_scale: 1.0 / decim as f32,
            part: Vec::with_capacity(decim),
            buf: Vec::new(),
            pos: 0,
            n_fft,
            hop,
            frame_rate,
            window,
            edges,
            fft,
            fft_buf: vec![Complex::default(); n_fft],
            scratch,
            pending: false,
            peak: 0.0,
            peak_decay: (-1.0 / (PEAK_RELEASE_SECONDS * frame_rate)).exp() as f32,
            prev: vec![[0.0; REFERENCE_FRAMES]; bands],
            cur: [vec![0.0; bands], vec![0.0; bands]],
            env: Vec::new(),
            low: (
                first,
                ((LOW_BAND_HZ.1 * n_fft as f64 / fs).round() as usize + 1)
                    .max(first + 1)
                    .min(n_fft / 2),
            ),
            low_peak: 0.0,
            low_prev: [0.0; REFERENCE_FRAMES],
            low_cur: [0.0; 2],
            env_low: Vec::new(),
            range,
        }
    }

    /// Feeds mono samples.
    pub fn feed(&mut self, mono: &[f32]) {
        // Bounded chunks keep the decimated buffer small whatever the caller's block size.
        for chunk in mono.chunks(self.decim * 4096) {
            self.decimate(chunk);
            self.frames();
        }
    }

    /// Ends the stream and estimates the tempo; `None` when it is undefined.
    pub fn finish(mut self) -> Option<Tempo> {
        if self.pending {
            self.process_pending(false);
        }
        estimate(&self.env, &self.env_low, self.frame_rate, self.range)
    }
    /// Ends the stream and hands back the two onset envelopes (broadband, low band) and their
    /// frame rate, for [`estimate_envelopes`]: the tempo bench's tuning loop
    /// (`core/examples/tempo_eval.rs`) decodes each file once and re-estimates from these.
    #[doc(hidden)]
    pub fn finish_envelopes(mut self) -> (Vec<f32>, Vec<f32>, f64) {
        if self.pending {
            self.process_pending(false);
        }
        (self.env, self.env_low, self.frame_rate)
    }

    fn decimate(&mut self, mut x: &[f32]) {
        let d = self.decim;
        if !self.part.is_empty() {
            let take = (d - self.part.len()).min(x.len());
            self.part.extend_from_slice(&x[..take]);
            x = &x[take..];
            if self.part.len() < d {
                return;
            }
            let v = group_sum(&self.part) * self.decim_scale;
            self.buf.push(v);
            self.part.clear();
        }
        let chunks = x.chunks_exact(d);
        let rest = chunks.remainder();
        let scale = self.decim_scale;
        self.buf.extend(chunks.map(|c| group_sum(c) * scale));
        self.part.extend_from_slice(rest);
    }

    fn frames(&mut self) {
        while self.buf.len() - self.pos >= self.n_fft {
            let pending = self.pending;
            let frame = &self.buf[self.pos..self.pos + self.n_fft];
            for ((z, &s), &w) in self.fft_buf.iter_mut().zip(frame).zip(&self.window) {
                if pending {
                    z.im = s * w;
                } else {
                    *z = Complex::new(s * w, 0.0);
                }
            }
            self.pos += self.hop;
            if pending {
                self.process_pending(true);
            } else {
                self.pending = true;
            }
        }
        if self.pos >= 8192 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }

    /// Transforms the frame(s) in `fft_buf` (one in the real part, a second in the imaginary
    /// part when `two`) and appends their onset strengths.
    fn process_pending(&mut self, two: bool) {
        self.pending = false;
        self.fft
            .process_with_scratch(&mut self.fft_buf, &mut self.scratch);
        let n = self.n_fft;
        // Power of a full-scale sine's peak bin under a Hann window is (n/4)²; normalise to 1,
        // and the ¼ of the two-real-FFT split is folded in too.
        let norm = 16.0 / (n as f32 * n as f32) * 0.25;
        let bands = self.edges.len() - 1;
        for b in 0..bands {
            let (mut ex, mut ey) = (0f32, 0f32);
            for k in self.edges[b]..self.edges[b + 1] {
                let z = self.fft_buf[k];
                let c = self.fft_buf[n - k];
                let (sr, di) = (z.re + c.re, z.im - c.im);
                let (dr, si) = (z.re - c.re, z.im + c.im);
                ex += sr * sr + di * di;
                ey += dr * dr + si * si;
            }
            self.cur[0][b] = norm * ex;
            self.cur[1][b] = norm * ey;
        }
        let (mut lx, mut ly) = (0f32, 0f32);
        for k in self.low.0..self.low.1 {
            let z = self.fft_buf[k];
            let c = self.fft_buf[n - k];
            let (sr, di) = (z.re + c.re, z.im - c.im);
            let (dr, si) = (z.re - c.re, z.im + c.im);
            lx += sr * sr + di * di;
            ly += dr * dr + si * si;
        }
        self.low_cur = [norm * lx, norm * ly];
        for f in 0..if two { 2 } else { 1 } {
            let total: f32 = self.cur[f].iter().sum();
            self.peak = total.max(self.peak * self.peak_decay);
            let scale = 1.0 / (KNEE * self.peak).max(ABS_FLOOR);
            let mut flux = 0f32;
            for (hist, &e) in self.prev.iter_mut().zip(&self.cur[f]) {
                let c = (scale * e).ln_1p();
                let reference = hist.iter().copied().fold(0f32, f32::max);
                flux += (c - reference).max(0.0);
                hist.rotate_right(1);
                hist[0] = c;
            }
            self.env.push(flux);
            // The low band on its own, against its own running peak: a kick counts as much
            // here as a clap does in the broadband envelope.
            let e = self.low_cur[f];
            self.low_peak = e.max(self.low_peak * self.peak_decay);
            let c = (e / (KNEE * self.low_peak).max(ABS_FLOOR)).ln_1p();
            let reference = self.low_prev.iter().copied().fold(0f32, f32::max);
            self.low_prev.rotate_right(1);
            self.low_prev[0] = c;
            self.env_low.push((c - reference).max(0.0));
        }
    }
}

/// Sum of one decimation group, in a fixed order (so block boundaries cannot change it).
#[inline]
fn group_sum(g: &[f32]) -> f32 {
    let mut acc = [0f32; 4];
    let chunks = g.chunks_exact(4);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..4 {
            acc[i] += c[i];
        }
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for &v in rest {
        s += v;
    }
    s
}

/// Autocorrelation of the envelope, lags `0..=max_lag` frames: mean-removed, unbiased and
/// normalised per window (1 at lag 0), averaged over 12 s windows that overlap by half; and
/// the number of windows averaged. `None` when no window has onsets.
fn autocorrelation(env: &[f32], frame_rate: f64, floor: f64) -> Option<(Vec<f64>, usize)> {
    let len = env.len();
    let win = ((ACF_WINDOW_SECONDS * frame_rate).round() as usize).min(len);
    let max_lag = ((MAX_LAG_SECONDS * frame_rate).round() as usize).min(win / 2);
    let n = (win + max_lag + 1).next_power_of_two();
    let fft = FftPlanner::<f64>::new().plan_fft_forward(n);
    let ifft = FftPlanner::<f64>::new().plan_fft_inverse(n);
    let segs = segments(len, win);
    let mut acc = vec![0f64; max_lag + 1];
    let mut used = 0usize;
    let mut buf = vec![Complex::<f64>::default(); n];
    for s in 0..segs {
        let start = segment_start(len, win, segs, s);
        let seg = &env[start..start + win];
        let mean = seg.iter().map(|&v| f64::from(v)).sum::<f64>() / win as f64;
        for (i, z) in buf.iter_mut().enumerate() {
            *z = Complex::new(seg.get(i).map_or(0.0, |&v| f64::from(v) - mean), 0.0);
        }
        fft.process(&mut buf);
        for z in buf.iter_mut() {
            *z = Complex::new(z.norm_sqr(), 0.0);
        }
        ifft.process(&mut buf);
        let var = buf[0].re / n as f64 / win as f64;
        // Silent or steady stretches have no onsets to correlate: leave them out.
        if var < floor {
            continue;
        }
        used += 1;
        for (lag, a) in acc.iter_mut().enumerate() {
            // Unbiased: each lag is normalised by its own overlap length.
            let r = buf[lag].re / n as f64 / (win - lag) as f64;
            *a += r / var;
        }
    }
    if used == 0 {
        return None;
    }
    for a in acc.iter_mut() {
        *a /= used as f64;
    }
    Some((acc, used))
}

/// The least confidence reported as a tempo, after averaging `windows` autocorrelation
/// windows: [`MIN_CONFIDENCE`] for one, falling with the square root of the number of
/// independent (half-overlapping) windows, as the autocorrelation of noise does, to
/// [`LONG_MIN_CONFIDENCE`].
fn min_confidence(windows: usize) -> f64 {
    (MIN_CONFIDENCE * (2.0 / (windows + 1) as f64).sqrt())
        .clamp(LONG_MIN_CONFIDENCE, MIN_CONFIDENCE)
}

/// Linear interpolation of `a` at fractional lag `x` (0 outside).
fn interp(a: &[f64], x: f64) -> f64 {
    if x < 0.0 {
        return 0.0;
    }
    let i = x.floor() as usize;
    if i + 1 >= a.len() {
        return if i < a.len() { a[i] } else { 0.0 };
    }
    let f = x - i as f64;
    a[i] * (1.0 - f) + a[i + 1] * f
}

/// Peak of `a` within ±3 % of lag `p`.
fn peak_near(a: &[f64], p: f64) -> f64 {
    let lo = (p * 0.97).floor().max(1.0) as usize;
    let hi = ((p * 1.03).ceil() as usize).min(a.len() - 1);
    if lo > hi {
        return 0.0;
    }
    a[lo..=hi].iter().copied().fold(f64::MIN, f64::max)
}

/// The preferred range as used: finite, ordered, within 30–300 BPM, at least an octave wide.
fn preferred_range(lo: f64, hi: f64) -> (f64, f64) {
    if !(lo.is_finite() && hi.is_finite() && lo > 0.0 && hi > 0.0) {
        return DEFAULT_RANGE;
    }
    let (lo, hi) = (lo.min(hi).clamp(30.0, 300.0), lo.max(hi).clamp(30.0, 300.0));
    if hi / lo >= 2.0 {
        return (lo, hi);
    }
    let c = (lo * hi)
        .sqrt()
        .clamp(30.0 * 2f64.sqrt(), 300.0 / 2f64.sqrt());
    (c / 2f64.sqrt(), c * 2f64.sqrt())
}

/// Tempo prior (unnormalised): 1 inside the preferred range, a half-normal in octaves
/// (σ = [`PRIOR_OCTAVES`]) outside it.
fn prior(bpm: f64, range: (f64, f64)) -> f64 {
    let d = if bpm < range.0 {
        (range.0 / bpm).log2()
    } else if bpm > range.1 {
        (bpm / range.1).log2()
    } else {
        0.0
    };
    let z = d / PRIOR_OCTAVES;
    (-0.5 * z * z).exp()
}

/// Local maximum of the envelope over ±1 frame: absorbs ±10 ms timing jitter when folding.
fn held(env: &[f32]) -> Vec<f32> {
    (0..env.len())
        .map(|n| {
            let lo = n.saturating_sub(1);
            let hi = (n + 1).min(env.len() - 1);
            env[lo..=hi].iter().copied().fold(0f32, f32::max)
        })
        .collect()
}

/// How strong the events at fractions `fracs` of the period `p` (frames) are compared with the
/// strongest phase ("the beat"): the envelope is folded modulo `p` over each ACF window, and the
/// profile value at each fraction (minimum over `fracs`), above the profile's floor, is divided
/// by the peak above the floor. Windows are weighted by their peak-to-floor contrast.
fn phase_ratio(held: &[f32], frame_rate: f64, p: f64, fracs: &[f64]) -> f64 {
    let len = held.len();
    let win = ((ACF_WINDOW_SECONDS * frame_rate).round() as usize).min(len);
    let segs = segments(len, win);
    let nb = (p.round() as usize).max(4);
    let (mut num, mut den) = (0.0, 0.0);
    let mut sum = vec![0f64; nb];
    let mut cnt = vec![0usize; nb];
    for s in 0..segs {
        let start = segment_start(len, win, segs, s);
        sum.fill(0.0);
        cnt.fill(0);
        for (i, &v) in held[start..start + win].iter().enumerate() {
            let ph = i as f64 / p;
            let b = (((ph - ph.floor()) * nb as f64) as usize).min(nb - 1);
            sum[b] += f64::from(v);
            cnt[b] += 1;
        }
        let prof: Vec<f64> = sum
            .iter()
            .zip(&cnt)
            .map(|(s, &c)| if c > 0 { s / c as f64 } else { 0.0 })
            .collect();
        let mut on = 0;
        for (i, &v) in prof.iter().enumerate() {
            if v > prof[on] {
                on = i;
            }
        }
        let top = prof[on];
        let min = prof.iter().copied().fold(f64::MAX, f64::min);
        if top - min <= 0.0 {
            continue;
        }
        let mut r = f64::MAX;
        for &f in fracs {
            let b0 = (on as f64 + f * nb as f64).round() as usize % nb;
            let v = prof[b0]
                .max(prof[(b0 + 1) % nb])
                .max(prof[(b0 + nb - 1) % nb]);
            r = r.min((v - min) / (top - min));
        }
        num += r * (top - min);
        den += top - min;
    }
    if den > 0.0 { num / den } else { 0.0 }
}

fn segments(len: usize, win: usize) -> usize {
    if len <= win {
        1
    } else {
        (len - win).div_ceil(win / 2) + 1
    }
}

fn segment_start(len: usize, win: usize, segs: usize, s: usize) -> usize {
    if segs == 1 {
        0
    } else {
        ((len - win) as f64 * s as f64 / (segs - 1) as f64).round() as usize
    }
}

/// Period (frames) near `p` (±3 %) maximising the mean autocorrelation over its multiples.
fn refine(a: &[f64], p: f64) -> (f64, f64) {
    let max_lag = (a.len() - 1) as f64;
    let kmax = ((max_lag / (p * 1.03)).floor() as usize).clamp(1, 8);
    let mut best = (f64::MIN, p);
    for i in -60..=60 {
        let q = p * (1.0 + f64::from(i) * 0.0005);
        let c = (1..=kmax).map(|k| interp(a, q * k as f64)).sum::<f64>() / kmax as f64;
        if c > best.0 {
            best = (c, q);
        }
    }
    (best.1, best.0)
}

/// Whether a metrical level is an allowed answer (within `bounds`, with 3 % slack for the
/// search).
fn allowed(bpm: f64, bounds: (f64, f64)) -> bool {
    (bounds.0 * 0.97..=bounds.1 * 1.03).contains(&bpm)
}

/// Metrical relatives of the reference pulse that are candidates for the beat.
const RELATIVES: [f64; 5] = [1.0 / 3.0, 0.5, 1.0, 2.0, 3.0];

/// The estimate of [`TempoAnalyzer::finish`] from envelopes kept by
/// [`TempoAnalyzer::finish_envelopes`], with the preferred range `range` (as `with_range`).
#[doc(hidden)]
pub fn estimate_envelopes(
    env: &[f32],
    env_low: &[f32],
    frame_rate: f64,
    range: (f64, f64),
) -> Option<Tempo> {
    estimate(env, env_low, frame_rate, preferred_range(range.0, range.1))
}

fn estimate(env: &[f32], env_low: &[f32], frame_rate: f64, range: (f64, f64)) -> Option<Tempo> {
    if (env.len() as f64) < MIN_SECONDS * frame_rate {
        return None;
    }
    let (a, windows) = autocorrelation(env, frame_rate, VARIANCE_FLOOR)?;
    // The low band's own periodicity; `None` when it has no onsets (no kick, no bass).
    let a_low = autocorrelation(env_low, frame_rate, LOW_VARIANCE_FLOOR).map(|(a, _)| a);
    let bounds = (MIN_BPM.min(range.0), MAX_BPM.max(range.1));
    let lag_of = |bpm: f64| 60.0 * frame_rate / bpm;
    let bpm_of = |lag: f64| 60.0 * frame_rate / lag;

    // 1. Reference pulse: the prior-weighted autocorrelation maximum over the allowed range.
    let steps = 400;
    let mut reference = (f64::MIN, bounds.0);
    for i in 0..=steps {
        let bpm = bounds.0 * (bounds.1 / bounds.0).powf(f64::from(i) / f64::from(steps));
        let score = prior(bpm, range) * interp(&a, lag_of(bpm));
        if score > reference.0 {
            reference = (score, bpm);
        }
    }
    let (mut p_ref, mut c_ref) = refine(&a, lag_of(reference.1));

    // 2. Family: a ×2/3 or ×3/2 relative replaces the reference only if the comb over its
    // multiples is better supported (e.g. a dotted-quarter kick figure picked first).
    let p0 = p_ref;
    for (r, margin) in [(2.0 / 3.0, FAMILY_MARGIN), (1.5, FASTER_FAMILY_MARGIN)] {
        let (p, c) = refine(&a, p0 / r);
        if c > margin * c_ref {
            (p_ref, c_ref) = (p, c);
        }
    }

    // 3. Metrical level: score the allowed duple/triple relatives of the reference.
    let held_low = held(env_low);
    let held = held(env);
    // Kick on every beat of period `q`: low-band onsets at both halves of `2q`, as strong as
    // the low band's periodicity at `q`.
    let kick = |q: f64| match &a_low {
        Some(al) => {
            phase_ratio(&held_low, frame_rate, 2.0 * q, &[0.5]) * peak_near(al, q).clamp(0.0, 1.0)
        }
        None => 0.0,
    };
    let cands: Vec<(f64, f64)> = RELATIVES
        .iter()
        .map(|&r| refine(&a, p_ref / r).0)
        .filter(|&p| allowed(bpm_of(p), bounds))
        .map(|p| (p, peak_near(&a, p)))
        .collect();
    let strongest = cands.iter().map(|c| c.1).fold(0.0, f64::max);
    let mut scored: Vec<(f64, f64)> = Vec::new();
    for &(p, pulse) in &cands {
        if pulse <= 0.0 {
            continue;
        }
        let bpm = bpm_of(p);
        // Grouping of this level into the next slower one: triple when the autocorrelation at
        // three periods beats those at two and four.
        let triple = peak_near(&a, 3.0 * p) > peak_near(&a, 2.0 * p).max(peak_near(&a, 4.0 * p));
        let (group, fracs): (f64, &[f64]) = if triple {
            (3.0, &[1.0 / 3.0, 2.0 / 3.0])
        } else {
            (2.0, &[0.5])
        };
        // Are this level's beats even (else it is a subdivision of the slower level)? Only
        // asked when the slower level is itself an allowed answer. A kick on every beat makes
        // them even whatever the broadband accents say.
        let even = if allowed(bpm / group, bounds) {
            phase_ratio(&held, frame_rate, group * p, fracs).max(kick(p))
        } else {
            1.0
        };
        // Are its subdivisions weak (else the faster level is as good a beat)? Only asked for
        // subdivisions that are allowed answers; a kick on every half-period counts too.
        let mut sub = 0.0f64;
        if allowed(2.0 * bpm, bounds) {
            sub = sub.max(phase_ratio(&held, frame_rate, p, &[0.5]).max(kick(p / 2.0)));
        }
        if allowed(3.0 * bpm, bounds) {
            sub = sub.max(phase_ratio(&held, frame_rate, p, &[1.0 / 3.0, 2.0 / 3.0]));
        }
        let score =
            prior(bpm, range) * (pulse / strongest).sqrt() * even.max(0.0) * (1.0 - sub).max(0.0);
        scored.push((score, p));
    }
    scored.sort_by(|x, y| y.0.total_cmp(&x.0));
    let best = scored.first().copied().unwrap_or((0.0, p_ref));

    // 4. Precise period and confidence.
    let conf_of = |p: f64| {
        [1.0, 2.0, 3.0, 4.0]
            .iter()
            .map(|&m| peak_near(&a, m * p))
            .fold(0.0, f64::max)
            .min(1.0)
    };
    let (mut p, _) = refine(&a, best.1);
    // 5. Into the preferred range: a level outside it moves by an octave (×2 or ×½) into it
    // when that level has comparable evidence: a periodicity of its own (the autocorrelation
    // at its period at least `MOVE_PULSE` of the strongest level's) and a confidence at least
    // `MOVE_CONFIDENCE` of this one's.
    let bpm0 = bpm_of(p);
    if !(range.0..=range.1).contains(&bpm0) {
        let r = if bpm0 < range.0 { 2.0 } else { 0.5 };
        let (q, _) = refine(&a, p / r);
        let pulse = peak_near(&a, q);
        if (range.0 * 0.97..=range.1 * 1.03).contains(&bpm_of(q))
            && allowed(bpm_of(q), bounds)
            && pulse >= MOVE_PULSE * strongest
            && conf_of(q) >= MOVE_CONFIDENCE * conf_of(p)
        {
            p = q;
        }
    }
    let confidence = conf_of(p);
    if confidence < min_confidence(windows) {
        return None;
    }
    let bpm = bpm_of(p).clamp(bounds.0, bounds.1);
    let best = scored
        .iter()
        .find(|c| (c.1 / p - 1.0).abs() <= 0.1)
        .copied()
        .unwrap_or(best);
    // 6. Runner-up: the best other level (not the reported tempo); its confidence is the
    // reported one scaled by the ratio of the level scores.
    let alternative = scored
        .iter()
        .find(|c| c.0 > 0.0 && (c.1 / p - 1.0).abs() > 0.1)
        .map(|&(score, q)| {
            let (q, _) = refine(&a, q);
            let ratio = if best.0 > 0.0 {
                (score / best.0).min(1.0)
            } else {
                0.0
            };
            (bpm_of(q).clamp(bounds.0, bounds.1), confidence * ratio)
        });
    Some(Tempo {
        bpm,
        confidence,
        alternative_bpm: alternative.map(|t| t.0),
        alternative_confidence: alternative.map(|t| t.1),
    })
}
