//! The real-time meter engine: everything the plugin measures, fed planar blocks on the audio
//! thread. It knows nothing about nice-plug, so it is tested in-process; the plugin calls
//! [`Engine::process`] once per block.
//!
//! All memory is allocated in [`Engine::new`] (called from `activate`, for the rate, the layout
//! and the host's largest block); [`Engine::process`] and [`Engine::reset`] never allocate, lock
//! or make system calls (tests run them under `assert_no_alloc`).
//!
//! What is measured, on the 100 ms steps of BS.1770 (every figure is published at the end of
//! each step):
//! - loudness with the core's K-weighting filter: momentary (400 ms) and short-term (3 s), their
//!   maxima, integrated and loudness range ([`LiveLoudness`], on the core's filter and gating);
//! - true peak per channel with the core's oversampling meter, and sample peak, since the reset;
//!   the loudest sample of the last step, for bars;
//! - RMS per channel over 400 ms, and over everything since the reset;
//! - PLR = true peak − integrated loudness;
//! - stereo (first two channels): correlation over 400 ms and since the reset, width;
//! - the spectrum ([`spectrum`]).

pub mod loudness;
pub mod spectrum;

use crate::shared::{HISTORY_LEN, LONG_HISTORY_LEN, MAX_CHANNELS, MeterShared, STEPS_PER_SECOND};
pub use loudness::LiveLoudness;
use loudness::M_STEPS;
use sluice_core::analysis::stereo;
use sluice_core::analysis::truepeak::TruePeakMeter;
use spectrum::LiveSpectrum;
use std::sync::Arc;
use std::sync::atomic::Ordering;

fn db(power_or_amplitude: f64, amplitude: bool) -> f32 {
    if power_or_amplitude > 0.0 {
        let k = if amplitude { 20.0 } else { 10.0 };
        (k * power_or_amplitude.log10()) as f32
    } else {
        f32::NEG_INFINITY
    }
}

/// Per-step sums of the raw (unweighted) signal.
#[derive(Clone, Copy, Default)]
struct RawStep {
    sq: [f64; MAX_CHANNELS],
    lr: f64,
    peak: [f32; MAX_CHANNELS],
}

pub struct Engine {
    channels: usize,
    step_frames: usize,
    loud: LiveLoudness,
    true_peak: Vec<TruePeakMeter>,
    /// The true peak (linear) of each channel since the reset: the meters above are emptied
    /// at every step, for the step's own peak.
    true_peak_session: [f64; MAX_CHANNELS],
    /// Raw sums of the last 4 steps, a ring, and of the step in progress.
    raw: [RawStep; M_STEPS],
    raw_now: RawStep,
    /// The highest momentary loudness of the second in progress (for the long history).
    second_max_m: f32,
    max_m: f64,
    max_s: f64,
    sample_peak: [f32; MAX_CHANNELS],
    total_sq: [f64; MAX_CHANNELS],
    total_lr: f64,
    total_frames: u64,
    spectrum: LiveSpectrum,
    target: (f32, f32),
    shared: Arc<MeterShared>,
}

impl Engine {
    /// An engine for `rate` Hz and these BS.1770 channel weights (1 for front channels, 1.41
    /// for surrounds, 0 for the LFE), fed blocks of at most `max_block` frames.
    pub fn new(rate: u32, weights: &[f64], max_block: usize, shared: Arc<MeterShared>) -> Self {
        let loud = LiveLoudness::new(rate, weights, max_block);
        let channels = loud.channels();
        let step_frames = loud.step_frames();
        shared.sample_rate.store(rate as f32, Ordering::Relaxed);
        shared.channels.store(channels as u32, Ordering::Relaxed);
        let mut engine = Engine {
            channels,
            step_frames,
            loud,
            true_peak: (0..channels).map(|_| TruePeakMeter::new(rate)).collect(),
            true_peak_session: [0.0; MAX_CHANNELS],
            raw: [RawStep::default(); M_STEPS],
            raw_now: RawStep::default(),
            second_max_m: f32::NAN,
            max_m: f64::NEG_INFINITY,
            max_s: f64::NEG_INFINITY,
            sample_peak: [0.0; MAX_CHANNELS],
            total_sq: [0.0; MAX_CHANNELS],
            total_lr: 0.0,
            total_frames: 0,
            spectrum: LiveSpectrum::new(rate, channels.min(2)),
            target: (f32::NAN, f32::NAN),
            shared,
        };
        engine.reset();
        engine
    }

    pub fn shared(&self) -> &Arc<MeterShared> {
        &self.shared
    }

    /// The delivery target to compare with: (integrated LUFS, true-peak ceiling dBTP).
    pub fn set_target(&mut self, lufs: f32, ceiling: f32) {
        if (lufs, ceiling) != self.target {
            self.target = (lufs, ceiling);
            self.publish_target();
        }
    }

    /// Clears every meter (allocation-free).
    pub fn reset(&mut self) {
        self.loud.reset();
        for t in &mut self.true_peak {
            t.reset();
        }
        self.true_peak_session = [0.0; MAX_CHANNELS];
        self.raw = [RawStep::default(); M_STEPS];
        self.raw_now = RawStep::default();
        self.second_max_m = f32::NAN;
        self.max_m = f64::NEG_INFINITY;
        self.max_s = f64::NEG_INFINITY;
        self.sample_peak = [0.0; MAX_CHANNELS];
        self.total_sq = [0.0; MAX_CHANNELS];
        self.total_lr = 0.0;
        self.total_frames = 0;
        self.spectrum.reset();
        let s = &*self.shared;
        let nan = f32::NAN;
        for v in [
            &s.momentary,
            &s.short_term,
            &s.integrated,
            &s.max_momentary,
            &s.max_short_term,
            &s.loudness_range,
            &s.true_peak,
            &s.sample_peak,
            &s.rms_integrated,
            &s.plr,
            &s.correlation,
            &s.correlation_integrated,
            &s.width,
            &s.distance_lu,
        ] {
            v.store(nan, Ordering::Relaxed);
        }
        for arr in [
            &s.true_peak_channel,
            &s.sample_peak_channel,
            &s.peak_now_channel,
            &s.rms_channel,
            &s.spectrum,
            &s.band_share,
            &s.band_share_long,
        ] {
            for v in arr.iter() {
                v.store(nan, Ordering::Relaxed);
            }
        }
        s.over_ceiling.store(false, Ordering::Relaxed);
        s.steps.store(0, Ordering::Release);
    }

    /// Measure one block: one slice per channel, all the same length (at most `max_block`).
    pub fn process(&mut self, planes: &[&[f32]]) {
        if self.shared.reset_request.swap(false, Ordering::AcqRel) {
            self.reset();
        }
        let ch = self.channels.min(planes.len());
        let len = planes.first().map_or(0, |p| p.len());
        let mut at = 0;
        while at < len {
            let take = self.loud.room().min(len - at);
            let seg = |c: usize| &planes[c][at..at + take];
            let segs: [&[f32]; MAX_CHANNELS] =
                std::array::from_fn(|c| if c < ch { seg(c) } else { &[][..] });
            // K-weighted energy first; the step ends after the raw sums below.
            let step_end = self.loud.feed_step(&segs[..ch]);
            for c in 0..ch {
                let x = seg(c);
                let (sq, peak) = x.iter().fold((0.0f64, 0.0f32), |(s, p), &v| {
                    (s + f64::from(v) * f64::from(v), p.max(v.abs()))
                });
                self.raw_now.sq[c] += sq;
                self.raw_now.peak[c] = self.raw_now.peak[c].max(peak);
                self.true_peak[c].feed(x);
            }
            if ch >= 2 {
                self.raw_now.lr += seg(0)
                    .iter()
                    .zip(seg(1))
                    .map(|(&l, &r)| f64::from(l) * f64::from(r))
                    .sum::<f64>();
            }
            let sub: [&[f32]; 2] = [seg(0), if ch >= 2 { seg(1) } else { seg(0) }];
            self.spectrum.feed(&sub[..ch.min(2)]);
            at += take;
            if let Some((ml, sl)) = step_end {
                self.finish_step(ml, sl);
            }
        }
    }

    fn finish_step(&mut self, ml: f64, sl: f64) {
        let k = self.loud.step_count() as usize - 1;
        self.raw[k % M_STEPS] = self.raw_now;
        self.raw_now = RawStep::default();
        for c in 0..self.channels {
            self.total_sq[c] += self.raw[k % M_STEPS].sq[c];
            self.sample_peak[c] = self.sample_peak[c].max(self.raw[k % M_STEPS].peak[c]);
        }
        self.total_lr += self.raw[k % M_STEPS].lr;
        self.total_frames += self.step_frames as u64;
        if ml >= -70.0 {
            self.max_m = self.max_m.max(ml);
        }
        if sl >= -70.0 {
            self.max_s = self.max_s.max(sl);
        }
        self.publish(ml, sl);
    }

    fn publish(&mut self, ml: f64, sl: f64) {
        let s = &*self.shared;
        let gated = |l: f64| if l >= -70.0 { l as f32 } else { f32::NAN };
        let defined = |l: f64| if l.is_finite() { l as f32 } else { f32::NAN };
        s.momentary.store(gated(ml), Ordering::Relaxed);
        s.short_term.store(gated(sl), Ordering::Relaxed);
        s.max_momentary
            .store(defined(self.max_m), Ordering::Relaxed);
        s.max_short_term
            .store(defined(self.max_s), Ordering::Relaxed);
        let integrated = self.loud.integrated();
        s.integrated
            .store(integrated.map_or(f32::NAN, |v| v as f32), Ordering::Relaxed);
        s.loudness_range.store(
            self.loud.range().map_or(f32::NAN, |v| v as f32),
            Ordering::Relaxed,
        );
        let mut tp_max = 0.0f64;
        let mut tp_step = 0.0f64;
        let mut sp_max = 0.0f32;
        let step_count = self.loud.step_count();
        let steps_in_window = (step_count as usize).min(M_STEPS);
        for c in 0..self.channels {
            let (step_peak, _) = self.true_peak[c].take_peaks();
            tp_step = tp_step.max(step_peak);
            self.true_peak_session[c] = self.true_peak_session[c].max(step_peak);
            let tp = self.true_peak_session[c];
            tp_max = tp_max.max(tp);
            sp_max = sp_max.max(self.sample_peak[c]);
            s.true_peak_channel[c].store(db(tp, true), Ordering::Relaxed);
            s.sample_peak_channel[c]
                .store(db(f64::from(self.sample_peak[c]), true), Ordering::Relaxed);
            let last = self.raw[(step_count as usize - 1) % M_STEPS].peak[c];
            s.peak_now_channel[c].store(db(f64::from(last), true), Ordering::Relaxed);
            let sq: f64 = self.raw[..steps_in_window].iter().map(|r| r.sq[c]).sum();
            let rms = sq / (steps_in_window * self.step_frames) as f64;
            s.rms_channel[c].store(db(rms, false), Ordering::Relaxed);
        }
        let tp_db = db(tp_max, true);
        s.true_peak.store(tp_db, Ordering::Relaxed);
        s.sample_peak
            .store(db(f64::from(sp_max), true), Ordering::Relaxed);
        let total_sq: f64 = self.total_sq[..self.channels].iter().sum();
        s.rms_integrated.store(
            db(
                total_sq / (self.total_frames as f64 * self.channels as f64),
                false,
            ),
            Ordering::Relaxed,
        );
        s.plr.store(
            integrated.map_or(f32::NAN, |i| tp_db - i as f32),
            Ordering::Relaxed,
        );
        if self.channels >= 2 {
            let (ll, rr, lr) = self.raw[..steps_in_window]
                .iter()
                .fold((0.0, 0.0, 0.0), |(a, b, c), r| {
                    (a + r.sq[0], b + r.sq[1], c + r.lr)
                });
            let nan = |v: Option<f64>| v.map_or(f32::NAN, |v| v as f32);
            s.correlation
                .store(nan(stereo::correlation(ll, rr, lr)), Ordering::Relaxed);
            s.correlation_integrated.store(
                nan(stereo::correlation(
                    self.total_sq[0],
                    self.total_sq[1],
                    self.total_lr,
                )),
                Ordering::Relaxed,
            );
            s.width
                .store(nan(stereo::width(ll, rr, lr)), Ordering::Relaxed);
        }
        self.spectrum.publish(s);
        let k = (step_count as usize - 1) % HISTORY_LEN;
        s.history_momentary[k].store(gated(ml), Ordering::Relaxed);
        s.history_short_term[k].store(gated(sl), Ordering::Relaxed);
        s.history_true_peak[k].store(db(tp_step, true), Ordering::Relaxed);
        // f32::max keeps the number when one side is NaN.
        self.second_max_m = self.second_max_m.max(gated(ml));
        if step_count.is_multiple_of(STEPS_PER_SECOND) {
            let j = (step_count / STEPS_PER_SECOND - 1) as usize % LONG_HISTORY_LEN;
            s.long_history_momentary[j].store(self.second_max_m, Ordering::Relaxed);
            s.long_history_short_term[j].store(gated(sl), Ordering::Relaxed);
            self.second_max_m = f32::NAN;
        }
        self.publish_target();
        self.shared.steps.store(step_count, Ordering::Release);
    }

    fn publish_target(&self) {
        let s = &*self.shared;
        let (t, ceiling) = self.target;
        s.target_lufs.store(t, Ordering::Relaxed);
        s.target_ceiling.store(ceiling, Ordering::Relaxed);
        let i = s.integrated.load(Ordering::Relaxed);
        s.distance_lu.store(i - t, Ordering::Relaxed);
        let tp = s.true_peak.load(Ordering::Relaxed);
        s.over_ceiling.store(tp > ceiling, Ordering::Relaxed);
    }
}
