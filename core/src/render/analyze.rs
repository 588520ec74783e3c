//! The analysis tap: a stage that leaves the signal as it is and measures it at its position in
//! the chain, so `analyze` after `normalize` reports the normalized signal and a job that
//! analyses and renders decodes its source once.
//!
//! The stage runs the analyzers [`crate::analysis::plan`] makes for the signal arriving at it
//! (its rate and channel layout, which the stages in front may have changed). Every pass that
//! runs through the tap measures it afresh; the report of the last complete pass is the one
//! kept (the final pass, or the prepass that left a spill behind the tap: either way the signal
//! the outputs were made from). [`AnalysisTap`] hands the report to whoever built the stage,
//! after the render.

use super::{Block, RenderError, SignalSpec, Stage};
use crate::StreamInfo;
use crate::analysis::{AnalysisOptions, AnalysisReport, Analyzer};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The report an [`Analyze`] stage made, collected after the render.
#[derive(Clone, Default)]
pub struct AnalysisTap(Arc<Mutex<Option<AnalysisReport>>>);

impl AnalysisTap {
    /// The report of the last complete pass through the stage, if one ran.
    pub fn take(&self) -> Option<AnalysisReport> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// A stage that measures the signal passing through it (see the module docs).
pub struct Analyze {
    opts: AnalysisOptions,
    path: PathBuf,
    source: StreamInfo,
    frames_hint: Option<u64>,
    info: Option<StreamInfo>,
    analyzers: Vec<Box<dyn Analyzer>>,
    fed: u64,
    out: AnalysisTap,
}

impl Analyze {
    /// A tap measuring what `opts` asks for; the report names `path`, the source file.
    /// `source` is the source file's stream: the report's
    /// format facts are its, with the rate, channels and length of the signal the tap saw.
    /// `frames_hint` is the length the tap will see when it is known in advance (the source's,
    /// with no stage in front that changes it): the waveform's buckets are then spread over it
    /// from the start.
    pub fn new(
        opts: AnalysisOptions,
        path: PathBuf,
        source: StreamInfo,
        frames_hint: Option<u64>,
    ) -> (Analyze, AnalysisTap) {
        let out = AnalysisTap::default();
        (
            Analyze {
                opts,
                path,
                source,
                frames_hint,
                info: None,
                analyzers: Vec::new(),
                fed: 0,
                out: out.clone(),
            },
            out,
        )
    }
}

/// `source`'s stream facts with the rate and channel layout of `spec` (the signal at the tap).
fn stream_at(source: &StreamInfo, spec: &SignalSpec, frames: Option<u64>) -> StreamInfo {
    let mut info = source.clone();
    if info.channel_layout != spec.layout {
        info.layout_name = match spec.channels() {
            1 => Some("mono".into()),
            2 if spec.layout == ["FL", "FR"] => Some("stereo".into()),
            _ => None,
        };
        info.channel_layout = spec.layout.clone();
    }
    info.channels = spec.channels() as u32;
    info.sample_rate = spec.sample_rate;
    info.frames = frames;
    info.duration_seconds = frames.map(|f| f as f64 / f64::from(spec.sample_rate.max(1)));
    info
}

impl Stage for Analyze {
    fn name(&self) -> &'static str {
        "analyze"
    }

    fn start(&mut self, input: &SignalSpec) -> Result<SignalSpec, RenderError> {
        let info = stream_at(&self.source, input, self.frames_hint);
        self.analyzers = crate::analysis::plan(&info, &self.opts);
        self.info = Some(info);
        self.fed = 0;
        Ok(input.clone())
    }

    fn process(&mut self, block: &mut Block) {
        if block.is_empty() {
            return;
        }
        let planes = block.slices();
        for a in &mut self.analyzers {
            a.feed(&planes);
        }
        self.fed += block.frames() as u64;
    }

    fn finish(&mut self, _block: &mut Block) -> bool {
        let Some(mut info) = self.info.take() else {
            return false;
        };
        info.frames = Some(self.fed);
        info.frames_source = Some(crate::FrameCountSource::Decoded);
        info.duration_seconds = Some(self.fed as f64 / f64::from(info.sample_rate.max(1)));
        let report = crate::analysis::conclude_stream(
            self.path.clone(),
            info,
            std::mem::take(&mut self.analyzers),
            &self.opts,
        );
        *self.out.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(report);
        false
    }
}

/// The report's stream for a tap: `source`, the source as it was read to the end (format facts,
/// truncation, warnings), with the rate, channels and length of the signal the tap measured
/// (`analysed`).
pub fn measured(source: &StreamInfo, analysed: &StreamInfo) -> StreamInfo {
    let mut info = source.clone();
    info.sample_rate = analysed.sample_rate;
    info.channels = analysed.channels;
    info.channel_layout = analysed.channel_layout.clone();
    info.layout_name = analysed.layout_name.clone();
    info.frames = analysed.frames;
    info.frames_source = analysed.frames_source;
    info.duration_seconds = analysed.duration_seconds;
    info
}
