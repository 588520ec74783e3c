//! One frame's copy of the meters, read from [`MeterShared`] without locks.
//!
//! The buffers are allocated once (first frame) and reused; a frame copies about 6 000 atomics
//! of history, 240 of spectrum and a few dozen scalars, which is nothing at display rate.

use crate::params::{SluiceParams, TargetPreset};
use crate::shared::{
    HISTORY_LEN, LONG_HISTORY_LEN, MAX_CHANNELS, MeterShared, SPECTRUM_POINTS, STEPS_PER_SECOND,
};
use nice_plug::prelude::*;
use sluice_core::analysis::spectrum::BANDS;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

/// The time spans the loudness history can show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Span {
    TenSeconds,
    Minute,
    FiveMinutes,
    HalfHour,
    /// Everything since the meters were reset (at least 10 s, at most the long history's
    /// 6 hours): the programme always fills the width.
    #[default]
    Session,
}

impl Span {
    pub const ALL: [Span; 5] = [
        Span::TenSeconds,
        Span::Minute,
        Span::FiveMinutes,
        Span::HalfHour,
        Span::Session,
    ];

    /// The chooser's label.
    pub fn label(self) -> &'static str {
        match self {
            Span::TenSeconds => "10 s",
            Span::Minute => "1 min",
            Span::FiveMinutes => "5 min",
            Span::HalfHour => "30 min",
            Span::Session => "Session",
        }
    }

    /// Seconds across the plot for `elapsed` seconds of programme.
    pub fn seconds(self, elapsed: f64) -> f64 {
        let s = match self {
            Span::TenSeconds => 10.0,
            Span::Minute => 60.0,
            Span::FiveMinutes => 300.0,
            Span::HalfHour => 1_800.0,
            Span::Session => elapsed.max(10.0),
        };
        s.min(LONG_HISTORY_LEN as f64)
    }
}

/// Seconds the fine history (100 ms steps) holds; longer spans read the per-second one.
pub const FINE_HISTORY_SECONDS: f64 = (HISTORY_LEN as u64 / STEPS_PER_SECOND) as f64;

#[derive(Debug, Clone)]
pub struct Readings {
    pub sample_rate: f32,
    pub channels: usize,
    pub steps: u64,
    pub momentary: f32,
    pub short_term: f32,
    pub integrated: f32,
    pub max_momentary: f32,
    pub max_short_term: f32,
    pub loudness_range: f32,
    pub true_peak: f32,
    pub true_peak_channel: [f32; MAX_CHANNELS],
    pub plr: f32,
    pub correlation: f32,
    pub width: f32,
    pub target_lufs: f32,
    pub target_ceiling: f32,
    pub distance_lu: f32,
    pub over_ceiling: bool,
    pub band_share: [f32; BANDS.len()],
    /// Of all the power since the reset.
    pub band_share_long: [f32; BANDS.len()],
    pub spectrum: Vec<f32>,
    /// The loudness history in the span asked for (oldest first; shorter until that much was
    /// measured), one point per [`Self::history_point_seconds`]: momentary (per second: the
    /// second's highest) and short-term.
    pub history_momentary: Vec<f32>,
    pub history_short_term: Vec<f32>,
    pub history_point_seconds: f64,
    /// The span these points were read for (a span chosen during a frame is read on the
    /// next), its seconds across the plot, and the programme measured since the reset.
    pub history_span: Span,
    pub history_span_seconds: f64,
    pub elapsed_seconds: f64,

    pub target: TargetPreset,
    pub armed: bool,
    pub recording: bool,
    pub take_frames: u64,
    pub takes: u64,
    pub overruns: u64,
    pub dropped_frames: u64,
    pub last_take: Option<PathBuf>,
    pub last_error: Option<String>,
}

impl Default for Readings {
    fn default() -> Self {
        let nan = f32::NAN;
        Readings {
            sample_rate: 0.0,
            channels: 0,
            steps: 0,
            momentary: nan,
            short_term: nan,
            integrated: nan,
            max_momentary: nan,
            max_short_term: nan,
            loudness_range: nan,
            true_peak: nan,
            true_peak_channel: [nan; MAX_CHANNELS],
            plr: nan,
            correlation: nan,
            width: nan,
            target_lufs: nan,
            target_ceiling: nan,
            distance_lu: nan,
            over_ceiling: false,
            band_share: [nan; BANDS.len()],
            band_share_long: [nan; BANDS.len()],
            spectrum: Vec::new(),
            history_momentary: Vec::new(),
            history_short_term: Vec::new(),
            history_point_seconds: 0.1,
            history_span: Span::default(),
            history_span_seconds: 10.0,
            elapsed_seconds: 0.0,
            target: TargetPreset::Spotify,
            armed: false,
            recording: false,
            take_frames: 0,
            takes: 0,
            overruns: 0,
            dropped_frames: 0,
            last_take: None,
            last_error: None,
        }
    }
}

fn ld(v: &AtomicF32) -> f32 {
    v.load(Ordering::Relaxed)
}

impl Readings {
    /// Copies the current readings. Lock-free for the meters; the take's file name and error
    /// (written by the take writer under a mutex) are only taken when the mutex is free, else
    /// the previous frame's are kept.
    pub fn read(&mut self, s: &MeterShared, params: &SluiceParams, span: Span) {
        // Acquire on `steps` first: every value of that step is visible below.
        self.steps = s.steps.load(Ordering::Acquire);
        self.sample_rate = ld(&s.sample_rate);
        self.channels = (s.channels.load(Ordering::Relaxed) as usize).min(MAX_CHANNELS);
        self.momentary = ld(&s.momentary);
        self.short_term = ld(&s.short_term);
        self.integrated = ld(&s.integrated);
        self.max_momentary = ld(&s.max_momentary);
        self.max_short_term = ld(&s.max_short_term);
        self.loudness_range = ld(&s.loudness_range);
        self.true_peak = ld(&s.true_peak);
        for (d, v) in self
            .true_peak_channel
            .iter_mut()
            .zip(s.true_peak_channel.iter())
        {
            *d = ld(v);
        }
        self.plr = ld(&s.plr);
        self.correlation = ld(&s.correlation);
        self.width = ld(&s.width);
        for (d, v) in self.band_share.iter_mut().zip(s.band_share.iter()) {
            *d = ld(v);
        }
        for (d, v) in self
            .band_share_long
            .iter_mut()
            .zip(s.band_share_long.iter())
        {
            *d = ld(v);
        }
        self.spectrum.clear();
        self.spectrum
            .extend(s.spectrum.iter().take(SPECTRUM_POINTS).map(ld));

        self.elapsed_seconds = self.steps as f64 / STEPS_PER_SECOND as f64;
        self.history_span = span;
        self.history_span_seconds = span.seconds(self.elapsed_seconds);
        self.history_momentary.clear();
        self.history_short_term.clear();
        let (m, st, len, done, per_point) = if self.history_span_seconds <= FINE_HISTORY_SECONDS {
            (
                &s.history_momentary,
                &s.history_short_term,
                HISTORY_LEN,
                self.steps as usize,
                1.0 / STEPS_PER_SECOND as f64,
            )
        } else {
            (
                &s.long_history_momentary,
                &s.long_history_short_term,
                LONG_HISTORY_LEN,
                (self.steps / STEPS_PER_SECOND) as usize,
                1.0,
            )
        };
        self.history_point_seconds = per_point;
        let wanted = (self.history_span_seconds / per_point).round() as usize;
        let kept = done.min(wanted).min(len);
        for k in done - kept..done {
            let i = k % len;
            self.history_momentary.push(ld(&m[i]));
            self.history_short_term.push(ld(&st[i]));
        }

        // The target is the parameters' now, not the one the engine published with its last
        // step: a target chosen while the transport is stopped is measured against at once.
        // Same formulas as the engine's `publish_target`, so with audio running both agree.
        self.target = params.target.value();
        let (t, c) = params.target_levels();
        self.target_lufs = t;
        self.target_ceiling = c;
        self.distance_lu = self.integrated - t;
        self.over_ceiling = self.true_peak > c;
        self.armed = params.rec_arm.value();
        let r = &s.record;
        self.recording = r.recording.load(Ordering::Relaxed);
        self.take_frames = r.take_frames.load(Ordering::Relaxed);
        self.takes = r.takes.load(Ordering::Relaxed);
        self.overruns = r.overruns.load(Ordering::Relaxed);
        self.dropped_frames = r.dropped_frames.load(Ordering::Relaxed);
        if let Ok(t) = r.last_take.try_lock() {
            self.last_take.clone_from(&t);
        }
        if let Ok(e) = r.last_error.try_lock() {
            self.last_error.clone_from(&e);
        }
    }

    /// Seconds in the take being recorded.
    pub fn take_seconds(&self) -> f64 {
        if self.sample_rate > 0.0 {
            self.take_frames as f64 / self.sample_rate as f64
        } else {
            0.0
        }
    }
}
