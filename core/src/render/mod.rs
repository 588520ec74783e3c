//! Rendering: composable stages over planar `f32` blocks, and the renderer that runs a decoder
//! through them into one or more encoders.
//!
//! A [`Stage`] transforms a [`Block`] in place; it may change the block's length (trimming,
//! resampling, a limiter's lookahead) and its channel count (channel mapping). Stages that must
//! see the whole signal before they can render it (loudness normalization, trimming trailing
//! silence) ask the renderer for a *prepass*: the renderer runs the deterministic chain in
//! front of the stage and feeds a [`Probe`] the stage supplied. The first such pass keeps what
//! it produced in an unnamed temporary file (the spill), so later passes and the final render
//! start from there instead of decoding again; without a spill (turned off, or the disk full)
//! every pass re-runs the chain from the source. Nothing is held in memory (see
//! `docs/RENDERING.md`).

pub use crate::block::OutputLoudness;
pub use crate::block::{Block, SignalSpec, default_layout};

/// Why rendering could not go on. Each message names the file or option at fault.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Input(#[from] crate::InputError),
    #[error(transparent)]
    Encode(#[from] crate::formats::EncodeError),
    /// An option does not make sense for this signal (a region past the end, 0 channels...).
    #[error("{0}")]
    Invalid(String),
    /// A stage failed while running (one that runs code it does not control and can report
    /// that code's failure): the render stops; the same input would fail the same way.
    #[error("{stage}: {message}")]
    Stage { stage: String, message: String },
}

/// A measurement a stage asked for, fed everything the chain in front of it produces.
pub trait Probe: Send {
    fn feed(&mut self, block: &Block);
    /// Turn into `Any` so the stage that asked can take its own probe type back.
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any>;
}

/// Wraps a prepass probe before it is fed (see [`Render::prepare_with`]).
pub type WrapProbe<'a> = dyn FnMut(Box<dyn Probe>) -> Box<dyn Probe> + 'a;

/// Where a prepass probe listens: at the stage's input (what the stages before it produce) or
/// at its output (the stage itself included, e.g. to check a limiter's effect on loudness).
pub enum Prepass {
    Input(Box<dyn Probe>),
    Output(Box<dyn Probe>),
}

/// One rendering step. Stages are deterministic: run twice over the same input after
/// [`Stage::start`], they produce the same output (prepasses rely on it).
pub trait Stage: Send {
    /// Short name for reports and errors (`gain`, `normalize`, `resample`...).
    fn name(&self) -> &'static str;
    /// Prepare for a stream of `input`; returns what the stage outputs. Called before every
    /// pass (prepass or final); it resets all running state but keeps what prepasses taught.
    fn start(&mut self, input: &SignalSpec) -> Result<SignalSpec, RenderError>;
    /// Transform `block` in place. Its length and channel count may change.
    fn process(&mut self, block: &mut Block);
    /// End of stream: `block` arrives empty (with the output channel count) and receives what
    /// the stage still holds (a resampler's or limiter's tail). Returns `true` when there is
    /// more to come: the renderer passes the block on through the stages after this one and
    /// calls again with an empty block, until `false`. A stage with a long tail (an effect's
    /// reverb) gives it in bounded pieces this way instead of in one block. The default holds
    /// nothing.
    fn finish(&mut self, block: &mut Block) -> bool {
        let _ = block;
        false
    }
    /// Before the final pass, a stage may ask for prepasses, one at a time: the renderer runs
    /// the chain and calls [`Stage::prepass_done`] with the fed probe, then asks again until
    /// this returns `None`.
    fn prepass(&mut self, input: &SignalSpec) -> Option<Prepass> {
        let _ = input;
        None
    }
    fn prepass_done(&mut self, probe: Box<dyn Probe>) -> Result<(), RenderError> {
        let _ = probe;
        Ok(())
    }
    /// What the stage did, for the report (gain applied, limiter reduction, warnings...).
    fn report(&self) -> Option<StageReport> {
        None
    }
    /// Whether the stage has failed. The stages here cannot; a stage that can leaves the block
    /// it could not process unchanged and reports the failure here, which the renderer asks
    /// after every block and at the end, stopping the pass with it.
    fn failure(&mut self) -> Option<RenderError> {
        None
    }
    /// The loudness (LUFS) and true-peak ceiling (dBTP) this stage brings its output to, if
    /// it does (loudness normalization).
    fn loudness_target(&self) -> Option<(f64, f64)> {
        None
    }
    /// Correct for a lossy encoder downstream, which changes what the stage cannot see: hold
    /// the true peak a further `lower_ceiling_db` under the ceiling (the codec's overshoot)
    /// and aim `loudness_offset_lu` above the target (what the codec takes away). Further
    /// calls add to both. The stage may ask for prepasses again. `false` when it cannot.
    fn correct_for_codec(&mut self, lower_ceiling_db: f64, loudness_offset_lu: f64) -> bool {
        let _ = (lower_ceiling_db, loudness_offset_lu);
        false
    }
    /// A lossy encoder downstream removes everything above `cutoff_hz` (its low-pass), and
    /// the band-limited signal rings over sharp peaks: a stage that holds a true-peak ceiling
    /// holds the low-passed signal's peak under it too, so that the first encode usually
    /// holds (called before [`Render::prepare`]; several calls keep the lowest cutoff).
    /// `false` when the stage holds no ceiling.
    fn expect_codec_lowpass(&mut self, cutoff_hz: f64) -> bool {
        let _ = cutoff_hz;
        false
    }
}

/// One stage's account of the render, for reports.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct StageReport {
    pub stage: String,
    /// Facts worth a line each, machine-readable (`gain_db`, `limited_frames`...).
    pub values: std::collections::BTreeMap<String, f64>,
    /// Things the user should know (silent input not normalized, shortfall...).
    pub warnings: Vec<String>,
}

/// Where the audio comes from. A source can start over, which is what prepasses need.
pub trait Source: Send {
    fn spec(&self) -> &SignalSpec;
    /// Frames in the stream, when known in advance (for progress).
    fn frames(&self) -> Option<u64>;
    /// Go back to the first frame.
    fn rewind(&mut self) -> Result<(), RenderError>;
    /// Replace `block` with the next frames; `false` at the end.
    fn next(&mut self, block: &mut Block) -> Result<bool, RenderError>;
}

/// Asked before each block a [`FileSource`] reads: a reason to stop (the host is stopping),
/// or `None` to go on.
pub type StopCheck = std::sync::Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// A file, decoded; rewinding opens it again.
pub struct FileSource {
    path: std::path::PathBuf,
    decoder: Option<crate::Decoder>,
    spec: SignalSpec,
    frames: Option<u64>,
    stop: Option<StopCheck>,
}

impl FileSource {
    pub fn open(path: &std::path::Path) -> Result<FileSource, RenderError> {
        let decoder = crate::Decoder::open(path)?;
        let info = decoder.info();
        let exact_bits = info.integer_bits();
        let spec = SignalSpec {
            sample_rate: info.sample_rate,
            layout: info.channel_layout.clone(),
            exact_bits,
        };
        Ok(FileSource {
            path: path.to_path_buf(),
            frames: info.frames,
            decoder: Some(decoder),
            spec,
            stop: None,
        })
    }
    /// Ends the read with [`InputError::Interrupted`](crate::InputError::Interrupted) at the
    /// first block `stop` gives a reason for.
    pub fn stop_when(mut self, stop: StopCheck) -> Self {
        self.stop = Some(stop);
        self
    }
    pub fn info(&self) -> Option<&crate::StreamInfo> {
        self.decoder.as_ref().map(|d| d.info())
    }
    /// The decoder the next pass reads from.
    pub fn decoder(&self) -> Option<&crate::Decoder> {
        self.decoder.as_ref()
    }
    /// The Broadcast Wave `bext` chunk of a WAV source (from the decoder's own chunk walk).
    pub fn bext(&self) -> Option<&crate::Bext> {
        self.decoder
            .as_ref()
            .and_then(|d| d.riff_scan())
            .and_then(|r| r.bext.as_ref())
    }
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Source for FileSource {
    fn spec(&self) -> &SignalSpec {
        &self.spec
    }
    fn frames(&self) -> Option<u64> {
        self.frames
    }
    fn rewind(&mut self) -> Result<(), RenderError> {
        if self.decoder.as_ref().is_none_or(|d| d.frames_decoded() > 0) {
            self.decoder = Some(crate::Decoder::open(&self.path)?);
        }
        Ok(())
    }
    fn next(&mut self, block: &mut Block) -> Result<bool, RenderError> {
        let Some(d) = self.decoder.as_mut() else {
            return Ok(false);
        };
        if let Some(reason) = self.stop.as_ref().and_then(|s| s()) {
            return Err(crate::InputError::Interrupted {
                path: self.path.clone(),
                reason,
            }
            .into());
        }
        match d.next_block()? {
            Some(b) => {
                block.copy_from_decoded(b);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

/// Audio held in memory (tests, and short takes).
pub struct MemorySource {
    spec: SignalSpec,
    planes: Vec<Vec<f32>>,
    pos: usize,
    block: usize,
}

impl MemorySource {
    /// `planes` at `sample_rate`, handed out `block` frames at a time.
    pub fn new(sample_rate: u32, planes: Vec<Vec<f32>>, block: usize) -> Self {
        MemorySource {
            spec: SignalSpec::with_channels(sample_rate, planes.len()),
            planes,
            pos: 0,
            block: block.max(1),
        }
    }
    pub fn with_spec(mut self, spec: SignalSpec) -> Self {
        assert_eq!(spec.channels(), self.planes.len());
        self.spec = spec;
        self
    }
}

impl Source for MemorySource {
    fn spec(&self) -> &SignalSpec {
        &self.spec
    }
    fn frames(&self) -> Option<u64> {
        Some(self.planes.first().map_or(0, Vec::len) as u64)
    }
    fn rewind(&mut self) -> Result<(), RenderError> {
        self.pos = 0;
        Ok(())
    }
    fn next(&mut self, block: &mut Block) -> Result<bool, RenderError> {
        let len = self.planes.first().map_or(0, Vec::len);
        if self.pos >= len {
            return Ok(false);
        }
        let end = (self.pos + self.block).min(len);
        block.reset(self.planes.len());
        for (d, s) in block.planes_mut().iter_mut().zip(&self.planes) {
            d.extend_from_slice(&s[self.pos..end]);
        }
        self.pos = end;
        Ok(true)
    }
}

/// How far a render has come, for progress bars.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// 1 for the first pass over the source; prepasses come before the final pass.
    pub pass: u32,
    /// `true` on the pass that writes the outputs.
    pub final_pass: bool,
    /// Source frames consumed in this pass, and the total when known.
    pub frames: u64,
    pub total: Option<u64>,
}

/// Measures an output's loudness and peaks as blocks go by.
pub struct OutputMeter {
    loudness: crate::analysis::loudness::LoudnessMeter,
    peaks: Vec<crate::analysis::truepeak::TruePeakMeter>,
}

impl OutputMeter {
    pub fn new(spec: &SignalSpec) -> Self {
        OutputMeter {
            loudness: crate::analysis::loudness::LoudnessMeter::for_layout(
                spec.sample_rate,
                &spec.layout,
            ),
            peaks: (0..spec.channels())
                .map(|_| crate::analysis::truepeak::TruePeakMeter::new(spec.sample_rate))
                .collect(),
        }
    }
    pub fn feed(&mut self, block: &Block) {
        self.loudness.feed(&block.slices());
        for (m, p) in self.peaks.iter_mut().zip(block.planes()) {
            m.feed(p);
        }
    }
    pub fn finish(self) -> OutputLoudness {
        let sample = self
            .peaks
            .iter()
            .map(|m| m.sample_peak())
            .fold(0.0, f64::max);
        let tp = self
            .peaks
            .into_iter()
            .map(|m| m.finish())
            .fold(0.0, f64::max);
        OutputLoudness {
            loudness: self.loudness.summary(None),
            true_peak_dbtp: 20.0 * tp.log10(),
            sample_peak_dbfs: 20.0 * sample.log10(),
        }
    }
}

impl Probe for OutputMeter {
    fn feed(&mut self, block: &Block) {
        OutputMeter::feed(self, block);
    }
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any> {
        self
    }
}

/// One output of a render: the stages only it has (dither for its bit depth...), then its
/// encoder.
#[derive(Default)]
pub struct OutputChain {
    pub stages: Vec<Box<dyn Stage>>,
    /// Measure what reaches the encoder ([`OutputLoudness`]).
    pub measure: bool,
}

/// What one output received in the final pass.
#[derive(Debug, Clone, Default)]
pub struct OutputResult {
    pub frames: u64,
    pub spec: Option<SignalSpec>,
    pub loudness: Option<OutputLoudness>,
}

/// A render: a source, the stages every output shares, and the outputs.
pub struct Render<'a> {
    pub source: &'a mut dyn Source,
    pub stages: Vec<Box<dyn Stage>>,
    pub outputs: Vec<OutputChain>,
    passes: u32,
    spill: Option<spill::Spill>,
    spill_enabled: bool,
}

type Chain<'c> = Vec<&'c mut Box<dyn Stage>>;

/// An output's first stage that asks for a prepass at its input: the output, the stage, its
/// probe, and the channel widths after each stage in front of it.
type FirstAsk = (usize, usize, Box<dyn Probe>, Vec<usize>);

impl<'a> Render<'a> {
    pub fn new(
        source: &'a mut dyn Source,
        stages: Vec<Box<dyn Stage>>,
        outputs: Vec<OutputChain>,
    ) -> Self {
        Render {
            source,
            stages,
            outputs,
            passes: 0,
            spill: None,
            spill_enabled: true,
        }
    }

    /// Whether prepasses keep what the stages in front of them produce in a temporary file,
    /// so later passes start from there instead of decoding again (on by default; off, every
    /// pass re-runs the whole chain from the source).
    pub fn set_spill(&mut self, on: bool) {
        self.spill_enabled = on;
    }

    /// Configure every stage and run the prepasses they ask for; returns the signal each
    /// output will receive (to create the encoders with).
    pub fn prepare(
        &mut self,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<SignalSpec>, RenderError> {
        self.prepare_with(progress, &mut |p| p)
    }

    /// [`Render::prepare`], each prepass probe passed through `wrap` before the pass feeds it.
    /// The core measures on the calling thread; a caller that may spawn threads (the host)
    /// wraps each probe in one that measures on a thread of its own, so a prepass decodes and
    /// resamples while its probe measures. The wrapper must feed the inner probe every block
    /// in order, and its `into_any` must give back the inner probe's (after the last block).
    pub fn prepare_with(
        &mut self,
        progress: &mut dyn FnMut(Progress),
        wrap: &mut WrapProbe<'_>,
    ) -> Result<Vec<SignalSpec>, RenderError> {
        for i in 0..self.stages.len() {
            self.settle(None, i, progress, wrap)?;
        }
        self.first_output_passes(progress, wrap)?;
        for o in 0..self.outputs.len() {
            for j in 0..self.outputs[o].stages.len() {
                self.settle(Some(o), j, progress, wrap)?;
            }
        }
        (0..self.outputs.len())
            .map(|o| {
                let mut spec = self.source.spec().clone();
                let (main, outs) = (&mut self.stages, &mut self.outputs);
                for s in main.iter_mut().chain(outs[o].stages.iter_mut()) {
                    spec = s.start(&spec)?;
                }
                Ok(spec)
            })
            .collect()
    }

    fn stage_mut(&mut self, out: Option<usize>, at: usize) -> &mut Box<dyn Stage> {
        match out {
            None => &mut self.stages[at],
            Some(o) => &mut self.outputs[o].stages[at],
        }
    }

    /// Run the prepasses stage `at` asks for until it is satisfied.
    fn settle(
        &mut self,
        out: Option<usize>,
        at: usize,
        progress: &mut dyn FnMut(Progress),
        wrap: &mut WrapProbe<'_>,
    ) -> Result<(), RenderError> {
        // Bound the conversation: a stage that keeps asking is a bug, not a reason to hang.
        for _ in 0..16 {
            if out.is_none() {
                if self.settle_shared(at, progress, wrap)? {
                    continue;
                }
                return Ok(());
            }
            let o = out.expect("shared stages settle above");
            // An output's prepass starts where the final pass will: from the spill the shared
            // stages left, when there is one, else from the source.
            let (spill, base, mut spec) = self.pass_start(self.stages.len());
            let front: Chain = self.stages[base..]
                .iter_mut()
                .chain(self.outputs[o].stages[..at].iter_mut())
                .collect();
            for s in front {
                match s.start(&spec) {
                    Ok(next) => spec = next,
                    Err(e) => {
                        self.put_back(spill);
                        return Err(e);
                    }
                }
            }
            let Some(req) = self.outputs[o].stages[at].prepass(&spec) else {
                self.put_back(spill);
                return Ok(());
            };
            let (mut probe, inclusive) = match req {
                Prepass::Input(p) => (wrap(p), false),
                Prepass::Output(p) => (wrap(p), true),
            };
            self.passes += 1;
            let pass = self.passes;
            tracing::debug!(
                pass,
                stage = self.outputs[o].stages[at].name(),
                output = o,
                from_spill = spill.is_some(),
                "measuring pass"
            );
            let mut spill_source = spill.as_ref().map(spill::SpillSource::new);
            let source = reader(&mut spill_source, &mut *self.source);
            let mut chain: Chain = self.stages[base..]
                .iter_mut()
                .chain(self.outputs[o].stages[..at + usize::from(inclusive)].iter_mut())
                .collect();
            let ran = run_chain(
                source,
                &mut chain,
                &mut |b| probe.feed(b),
                Tick {
                    progress,
                    pass,
                    final_pass: false,
                },
            );
            drop(spill_source);
            self.put_back(spill);
            ran?;
            self.outputs[o].stages[at].prepass_done(probe)?;
        }
        Err(RenderError::Invalid(format!(
            "the {} stage asked for too many passes",
            self.stage_mut(out, at).name()
        )))
    }

    /// Where a pass through the shared stages up to `at` starts: the spill in front of `at`
    /// when there is one (taken out of `self`; the caller puts back what should stay), its
    /// position, and the signal there. A spill further on stays where it is: the stages in
    /// front of it are settled, so what it holds is still what they produce (a stage behind
    /// it, corrected for a codec, asks for passes again and starts from it).
    fn pass_start(&mut self, at: usize) -> (Option<spill::Spill>, usize, SignalSpec) {
        let (base, spec) = self.pass_origin(at);
        let spill = if self.spill.as_ref().is_some_and(|s| s.at <= at) {
            self.spill.take()
        } else {
            None
        };
        (spill, base, spec)
    }

    /// Where [`Render::pass_start`] would start, without taking the spill: its position and
    /// the signal there.
    fn pass_origin(&self, at: usize) -> (usize, SignalSpec) {
        match self.spill.as_ref().filter(|s| s.at <= at) {
            Some(s) => (s.at, s.spec.clone()),
            None => (0, self.source.spec().clone()),
        }
    }

    /// Before the outputs' stages settle one by one: where an output's first stage that asks
    /// for passes listens at its input (a normalize step in each output's chain measures what
    /// arrives), one pass through the shared stages keeps their signal (the spill) and feeds
    /// every such probe, each through its output's stages in front of it. The passes after
    /// it, and the final pass, start from that spill.
    fn first_output_passes(
        &mut self,
        progress: &mut dyn FnMut(Progress),
        wrap: &mut WrapProbe<'_>,
    ) -> Result<(), RenderError> {
        let end = self.stages.len();
        if !self.spill_enabled || self.spill.as_ref().is_some_and(|s| s.at >= end) {
            return Ok(());
        }
        // The signal at the end of the shared stages, then each output's first request.
        let (base, mut spec) = self.pass_origin(end);
        for s in &mut self.stages[base..] {
            spec = s.start(&spec)?;
        }
        let mut asks: Vec<FirstAsk> = Vec::new();
        for (o, out) in self.outputs.iter_mut().enumerate() {
            let mut ospec = spec.clone();
            let mut widths = Vec::new();
            for (at, stage) in out.stages.iter_mut().enumerate() {
                match stage.prepass(&ospec) {
                    Some(Prepass::Input(p)) => {
                        asks.push((o, at, wrap(p), widths));
                        break;
                    }
                    Some(Prepass::Output(_)) => break,
                    None => {}
                }
                ospec = stage.start(&ospec)?;
                widths.push(ospec.channels());
            }
        }
        if asks.is_empty() {
            return Ok(());
        }
        let (spill, base, _) = self.pass_start(end);
        let mut writer = spill::SpillWriter::new(end, spec);
        self.passes += 1;
        let pass = self.passes;
        tracing::debug!(
            pass,
            outputs = asks.len(),
            from_spill = spill.is_some(),
            "measuring pass for the outputs' first steps"
        );
        let mut spill_source = spill.as_ref().map(spill::SpillSource::new);
        let source = reader(&mut spill_source, &mut *self.source);
        let (stages, outputs) = (&mut self.stages, &mut self.outputs);
        let mut scratch = Block::default();
        let mut chain: Chain = stages[base..].iter_mut().collect();
        let ran = run_chain(
            source,
            &mut chain,
            &mut |b| {
                writer.write(b);
                for (o, at, probe, _) in asks.iter_mut() {
                    let front = &mut outputs[*o].stages[..*at];
                    if front.is_empty() {
                        probe.feed(b);
                        continue;
                    }
                    scratch.clone_from(b);
                    for s in front.iter_mut() {
                        s.process(&mut scratch);
                    }
                    probe.feed(&scratch);
                }
            },
            Tick {
                progress,
                pass,
                final_pass: false,
            },
        );
        drop(spill_source);
        if let Err(e) = ran {
            self.put_back(spill);
            return Err(e);
        }
        // The tails of the stages in front of each probe.
        for (o, at, probe, widths) in asks.iter_mut() {
            drain_tails(
                &mut self.outputs[*o].stages[..*at],
                &|i| widths[i],
                &mut |tail| {
                    if !tail.is_empty() {
                        probe.feed(tail);
                    }
                    true
                },
            );
        }
        match writer.finish() {
            Some(new) => self.spill = Some(new),
            None => {
                // Not kept (the disk full): every pass reads the source, as without a spill.
                self.spill_enabled = false;
                self.put_back(spill);
            }
        }
        for (o, at, probe, _) in asks {
            self.outputs[o].stages[at].prepass_done(probe)?;
        }
        Ok(())
    }

    /// Give back a spill [`Render::pass_start`] took (nothing to do when it took none).
    fn put_back(&mut self, spill: Option<spill::Spill>) {
        if spill.is_some() {
            self.spill = spill;
        }
    }

    /// One prepass for shared stage `at`, from the spill when there is one in front of it;
    /// an input prepass also leaves a spill at `at`. `false` when the stage asks for nothing.
    fn settle_shared(
        &mut self,
        at: usize,
        progress: &mut dyn FnMut(Progress),
        wrap: &mut WrapProbe<'_>,
    ) -> Result<bool, RenderError> {
        let (spill, base, mut spec) = self.pass_start(at);
        for s in &mut self.stages[base..at] {
            spec = s.start(&spec)?;
        }
        let Some(req) = self.stages[at].prepass(&spec) else {
            self.put_back(spill);
            return Ok(false);
        };
        // The stage will change what it produces: a spill behind it no longer holds what the
        // stages in front of that spill give.
        if self.spill.as_ref().is_some_and(|s| s.at > at) {
            self.spill = None;
        }
        let (mut probe, inclusive) = match req {
            Prepass::Input(p) => (wrap(p), false),
            Prepass::Output(p) => (wrap(p), true),
        };
        // An input prepass at a new position leaves its signal for the passes after it.
        let mut writer = (!inclusive && self.spill_enabled && (spill.is_none() || base < at))
            .then(|| spill::SpillWriter::new(at, spec.clone()));
        self.passes += 1;
        let pass = self.passes;
        tracing::debug!(
            pass,
            stage = self.stages[at].name(),
            from_spill = spill.is_some(),
            keeps_spill = writer.is_some(),
            "measuring pass"
        );
        let mut spill_source = spill.as_ref().map(spill::SpillSource::new);
        let source = reader(&mut spill_source, &mut *self.source);
        let mut chain: Chain = self.stages[base..at + usize::from(inclusive)]
            .iter_mut()
            .collect();
        run_chain(
            source,
            &mut chain,
            &mut |b| {
                probe.feed(b);
                if let Some(w) = &mut writer {
                    w.write(b);
                }
            },
            Tick {
                progress,
                pass,
                final_pass: false,
            },
        )?;
        drop(spill_source);
        match writer.and_then(spill::SpillWriter::finish) {
            Some(new) => self.spill = Some(new),
            None => self.put_back(spill),
        }
        self.stages[at].prepass_done(probe)?;
        Ok(true)
    }

    /// The final pass: every block goes through the shared stages, then each output's stages,
    /// then to that output's encoder. Encoders are not finished here (the caller finishes
    /// them, e.g. after giving them the measured loudness).
    pub fn run(
        &mut self,
        encoders: &mut [Box<dyn crate::formats::Encoder>],
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<OutputResult>, RenderError> {
        let all: Vec<usize> = (0..self.outputs.len()).collect();
        self.run_outputs(&all, encoders, progress)
    }

    /// The loudness target and true-peak ceiling output `o` is brought to (by its own stages
    /// or the shared ones), if any.
    pub fn loudness_target(&self, o: usize) -> Option<(f64, f64)> {
        self.outputs[o]
            .stages
            .iter()
            .rev()
            .chain(self.stages.iter().rev())
            .find_map(|s| s.loudness_target())
    }

    /// Correct output `o` for its lossy encoder (see [`Stage::correct_for_codec`]): the
    /// nearest stage in front of the encoder that holds a loudness target does. Then run
    /// [`Render::prepare`] again, and [`Render::run_outputs`] for `o`. A shared stage corrects
    /// every output rendered after this.
    pub fn correct_for_codec(&mut self, o: usize, lower_ceiling_db: f64, offset_lu: f64) -> bool {
        self.loudness_stage(o)
            .is_some_and(|s| s.correct_for_codec(lower_ceiling_db, offset_lu))
    }

    /// The stage nearest in front of output `o`'s encoder that holds a loudness target.
    fn loudness_stage(&mut self, o: usize) -> Option<&mut Box<dyn Stage>> {
        let (shared, outs) = (&mut self.stages, &mut self.outputs);
        outs[o]
            .stages
            .iter_mut()
            .rev()
            .chain(shared.iter_mut().rev())
            .find(|s| s.loudness_target().is_some())
    }

    /// Tell the stage that holds output `o`'s true-peak ceiling (as
    /// [`Render::correct_for_codec`] finds it) that its encoder low-passes at `cutoff_hz`
    /// (see [`Stage::expect_codec_lowpass`]). Before [`Render::prepare`].
    pub fn expect_codec_lowpass(&mut self, o: usize, cutoff_hz: f64) -> bool {
        self.loudness_stage(o)
            .is_some_and(|s| s.expect_codec_lowpass(cutoff_hz))
    }

    /// [`Render::run`] for the outputs in `set` only (in that order; `encoders` holds one per
    /// output in `set`): an output rendered again after [`Render::correct_for_codec`]. It starts
    /// from the spill, when there is one, so the source is not decoded again.
    pub fn run_outputs(
        &mut self,
        set: &[usize],
        encoders: &mut [Box<dyn crate::formats::Encoder>],
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<OutputResult>, RenderError> {
        assert_eq!(encoders.len(), set.len(), "one encoder per output");
        // With a spill, the stages in front of it already ran (deterministically) in a
        // prepass: the final pass starts from what they produced.
        let (spill, base, mut spec) = self.pass_start(self.stages.len());
        for s in &mut self.stages[base..] {
            spec = s.start(&spec)?;
        }
        let mut results = Vec::with_capacity(set.len());
        let mut meters = Vec::new();
        for &o in set {
            let o = &mut self.outputs[o];
            let mut ospec = spec.clone();
            for s in &mut o.stages {
                ospec = s.start(&ospec)?;
            }
            meters.push(o.measure.then(|| OutputMeter::new(&ospec)));
            results.push(OutputResult {
                frames: 0,
                spec: Some(ospec),
                loudness: None,
            });
        }
        self.passes += 1;
        let pass = self.passes;
        let mut spill_source = spill.as_ref().map(spill::SpillSource::new);
        let source = reader(&mut spill_source, &mut *self.source);
        let mut scratch = Block::default();
        let mut failure: Option<crate::formats::EncodeError> = None;
        let outputs = &mut self.outputs;
        let mut sink = |b: &Block| {
            if failure.is_some() {
                return;
            }
            for (o, &at) in set.iter().enumerate() {
                let out = &mut outputs[at];
                // Only an output with stages of its own needs a copy to change.
                let block = if out.stages.is_empty() {
                    b
                } else {
                    scratch.clone_from(b);
                    for s in &mut out.stages {
                        s.process(&mut scratch);
                    }
                    &scratch
                };
                deliver(
                    block,
                    &mut encoders[o],
                    &mut meters[o],
                    &mut results[o],
                    &mut failure,
                );
            }
        };
        let mut chain: Chain = self.stages[base..].iter_mut().collect();
        run_chain(
            source,
            &mut chain,
            &mut sink,
            Tick {
                progress,
                pass,
                final_pass: true,
            },
        )?;
        // Kept for an output rendered again (see `lower_ceiling`).
        drop(spill_source);
        self.put_back(spill);
        // The outputs' own tails.
        for (o, &at) in set.iter().enumerate() {
            let channels = results[o].spec.as_ref().map_or(0, SignalSpec::channels);
            drain_tails(&mut self.outputs[at].stages, &|_| channels, &mut |tail| {
                deliver(
                    tail,
                    &mut encoders[o],
                    &mut meters[o],
                    &mut results[o],
                    &mut failure,
                );
                failure.is_none()
            });
        }
        if let Some(e) = failure {
            return Err(e.into());
        }
        for (r, m) in results.iter_mut().zip(meters) {
            r.loudness = m.map(OutputMeter::finish);
        }
        Ok(results)
    }

    /// The reports of every stage that has something to say.
    pub fn reports(&self) -> Vec<StageReport> {
        self.stages
            .iter()
            .chain(self.outputs.iter().flat_map(|o| o.stages.iter()))
            .filter_map(|s| s.report())
            .collect()
    }

    /// The reports of the shared stages.
    pub fn shared_reports(&self) -> Vec<StageReport> {
        self.stages.iter().filter_map(|s| s.report()).collect()
    }

    /// The reports of the stages only output `o` has.
    pub fn output_reports(&self, o: usize) -> Vec<StageReport> {
        self.outputs[o]
            .stages
            .iter()
            .filter_map(|s| s.report())
            .collect()
    }

    /// Passes over the source so far.
    pub fn passes(&self) -> u32 {
        self.passes
    }
}

fn deliver(
    b: &Block,
    enc: &mut Box<dyn crate::formats::Encoder>,
    meter: &mut Option<OutputMeter>,
    result: &mut OutputResult,
    failure: &mut Option<crate::formats::EncodeError>,
) {
    if b.is_empty() || failure.is_some() {
        return;
    }
    if let Some(m) = meter {
        m.feed(b);
    }
    result.frames += b.frames() as u64;
    if let Err(e) = enc.write(b) {
        *failure = Some(e);
    }
}

/// One pass: rewind the source, start every stage, push every block through, flush the tails
/// in order (each stage's tail, piece by piece, goes through the stages after it), and hand
/// every non-empty result to `sink`.
/// How a pass reports its progress: the caller's callback, the pass's number, and whether it
/// is the final one.
struct Tick<'p> {
    progress: &'p mut dyn FnMut(Progress),
    pass: u32,
    final_pass: bool,
}

/// The tails `stages` give after the stream (a limiter's delay line, a resampler's filter),
/// piece by piece, each through the stages after it, into `sink` (which says whether to go
/// on). `width(i)` is the channel count stage `i` gives.
fn drain_tails(
    stages: &mut [Box<dyn Stage>],
    width: &dyn Fn(usize) -> usize,
    sink: &mut dyn FnMut(&Block) -> bool,
) {
    for i in 0..stages.len() {
        let mut tail = Block::new(width(i));
        loop {
            tail.reset(width(i));
            let more = stages[i].finish(&mut tail);
            // `finish` emits with the stage's output width; later stages may change it.
            for s in &mut stages[i + 1..] {
                s.process(&mut tail);
            }
            if !sink(&tail) {
                return;
            }
            if !more {
                break;
            }
        }
    }
}

/// What a pass reads: the spill when it starts from one, else the source.
fn reader<'s>(
    spill: &'s mut Option<spill::SpillSource<'_>>,
    source: &'s mut dyn Source,
) -> &'s mut dyn Source {
    match spill {
        Some(s) => s,
        None => source,
    }
}

fn run_chain(
    source: &mut dyn Source,
    chain: &mut Chain,
    sink: &mut dyn FnMut(&Block),
    tick: Tick<'_>,
) -> Result<(), RenderError> {
    source.rewind()?;
    let total = source.frames();
    let mut spec = source.spec().clone();
    let mut widths = Vec::with_capacity(chain.len());
    for s in chain.iter_mut() {
        spec = s.start(&spec)?;
        widths.push(spec.channels());
    }
    let mut block = Block::new(source.spec().channels());
    let mut frames = 0u64;
    while source.next(&mut block)? {
        frames += block.frames() as u64;
        for s in chain.iter_mut() {
            s.process(&mut block);
            if let Some(e) = s.failure() {
                return Err(e);
            }
        }
        if !block.is_empty() {
            sink(&block);
        }
        (tick.progress)(Progress {
            pass: tick.pass,
            final_pass: tick.final_pass,
            frames,
            total,
        });
    }
    for i in 0..chain.len() {
        loop {
            block.reset(widths[i]);
            let more = chain[i].finish(&mut block);
            if let Some(e) = chain[i].failure() {
                return Err(e);
            }
            for s in chain[i + 1..].iter_mut() {
                s.process(&mut block);
                if let Some(e) = s.failure() {
                    return Err(e);
                }
            }
            if !block.is_empty() {
                sink(&block);
            }
            if !more {
                break;
            }
        }
    }
    Ok(())
}
pub mod analyze;
pub mod dither;
pub mod lowpass;
pub mod matching;
pub mod normalize;
pub mod parallel;
pub mod resample;
mod spill;
pub mod stages;
pub mod steps;
pub mod stretch;
