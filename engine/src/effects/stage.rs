//! A wasm effect as a render stage: the signal goes through the effect block by block, its
//! latency is compensated (the first frames it delays are dropped, and it is flushed at the
//! end), and its tail (a reverb's, a delay's) is kept, up to [`TAIL_CAP_SECONDS`], and given
//! out block by block like the rest of the signal (never gathered in memory).

use super::runtime::{Effect, EffectError, Instance, Limits, Runtime};
use sluice_core::render::{Block, RenderError, SignalSpec, Stage, StageReport};
use std::sync::Arc;

/// The largest block handed to an effect in one call.
pub const MAX_FRAMES: usize = 4096;
/// Below this (−120 dBFS) a tail counts as silent.
const SILENT: f32 = 1e-6;
/// The longest tail the host feeds an effect after its input ends, whatever its descriptor
/// claims (effects/ABI.md, section 2): an effect's output is at most this much longer than its
/// input. Twice the longest built-in reverb's claim, and a cathedral's ring-out to −120 dB.
pub const TAIL_CAP_SECONDS: f64 = 30.0;
/// A tail that stays silent this long (in seconds) has ended (a delay's repeats are at most
/// 2 s apart).
const QUIET_SECONDS: f64 = 2.5;

impl From<EffectError> for RenderError {
    fn from(e: EffectError) -> Self {
        RenderError::Stage {
            stage: format!("effect {}", e.effect),
            message: e.message,
        }
    }
}

pub struct EffectStage {
    rt: Runtime,
    effect: Arc<Effect>,
    /// (index, value) of the parameters the pipeline sets; the rest keep their defaults.
    params: Vec<(usize, f64)>,
    limits: Limits,
    instance: Option<(u32, usize, Instance)>,
    /// The effect's latency with the job's parameters, and the output frames still to drop.
    latency: usize,
    to_drop: usize,
    failed: Option<EffectError>,
    scratch: Vec<Vec<f32>>,
    /// The end of the stream, once `finish` has begun.
    tail: Option<Tail>,
    /// Whether the last pass's tail was still sounding when the cap cut it.
    cut: bool,
    /// Audio for the effect's data slots (with each slot's longest), and the last rate it was
    /// resampled to.
    data: Vec<(super::data::Audio, super::data::Limit)>,
    data_at: Option<(u32, Vec<Vec<Vec<f32>>>)>,
}

/// Where the flush and the ring-out after the input stand.
struct Tail {
    /// Latency frames still to feed (their output is the end of the signal: always kept).
    flush: usize,
    /// Frames still to feed in all (the flush, then the tail up to the cap).
    left: usize,
    /// Frames fed since the output was last loud.
    quiet: usize,
    /// The silent ring-out since then: given out if something loud follows or the tail runs
    /// to its end, dropped if the tail ends in silence. At most `QUIET_SECONDS` and a block.
    held: Block,
}

impl EffectStage {
    pub fn new(
        rt: Runtime,
        effect: Arc<Effect>,
        params: Vec<(usize, f64)>,
        limits: Limits,
    ) -> Self {
        EffectStage {
            rt,
            effect,
            params,
            limits,
            instance: None,
            latency: 0,
            to_drop: 0,
            failed: None,
            scratch: Vec::new(),
            tail: None,
            cut: false,
            data: Vec::new(),
            data_at: None,
        }
    }

    /// The audio for the effect's data slots, in slot order (each with its limit).
    pub fn with_data(mut self, data: Vec<(super::data::Audio, super::data::Limit)>) -> Self {
        self.data = data;
        self
    }

    /// The tail the host feeds: the descriptor's, up to the cap (in seconds).
    fn tail_seconds(&self) -> f64 {
        self.effect.descriptor.tail_seconds.min(TAIL_CAP_SECONDS)
    }

    fn run(&mut self, block: &mut Block) -> Result<(), EffectError> {
        let Some((_, _, inst)) = self.instance.as_mut() else {
            return Ok(());
        };
        let frames = block.frames();
        let mut at = 0;
        while at < frames {
            let n = (frames - at).min(inst.max_frames());
            let mut planes: Vec<&mut [f32]> = block
                .planes_mut()
                .iter_mut()
                .map(|p| &mut p[at..at + n])
                .collect();
            inst.process(&mut planes)?;
            at += n;
        }
        let drop = self.to_drop.min(frames);
        if drop > 0 {
            block.drain_front(drop);
            self.to_drop -= drop;
        }
        Ok(())
    }
}

impl Stage for EffectStage {
    fn name(&self) -> &'static str {
        "effect"
    }

    fn start(&mut self, input: &SignalSpec) -> Result<SignalSpec, RenderError> {
        let (rate, channels) = (input.sample_rate, input.channels());
        match &mut self.instance {
            Some((r, c, _)) if *r == rate && *c == channels => {}
            slot => {
                *slot = None;
                if self.data_at.as_ref().is_none_or(|(r, _)| *r != rate) {
                    let planes = super::data::at_rate(&self.data, rate)
                        .map_err(|m| EffectError::new(&self.effect.descriptor.name, m))?;
                    self.data_at = Some((rate, planes));
                }
                let data: Vec<&[Vec<f32>]> = self
                    .data_at
                    .as_ref()
                    .map(|(_, d)| d.iter().map(Vec::as_slice).collect())
                    .unwrap_or_default();
                let inst = Instance::with_data(
                    &self.rt,
                    &self.effect,
                    rate,
                    channels,
                    MAX_FRAMES,
                    self.limits,
                    &data,
                )?;
                *slot = Some((rate, channels, inst));
            }
        }
        let (_, _, inst) = self.instance.as_mut().expect("made above");
        for (i, p) in self.effect.descriptor.params.iter().enumerate() {
            let v = self
                .params
                .iter()
                .find(|(j, _)| *j == i)
                .map_or(p.default, |(_, v)| *v);
            inst.set_param(i, v)?;
        }
        // A fresh start with the job's values: what the last job left is cleared, and smoothed
        // parameters start at the job's values instead of ramping there from the defaults.
        inst.reset()?;
        self.to_drop = inst.latency()?;
        self.latency = self.to_drop;
        self.failed = None;
        self.tail = None;
        self.cut = false;
        Ok(SignalSpec {
            exact_bits: None,
            ..input.clone()
        })
    }

    fn process(&mut self, block: &mut Block) {
        if self.failed.is_some() {
            return;
        }
        if let Err(e) = self.run(block) {
            self.failed = Some(e);
        }
    }

    /// Silence through the effect, one block per call: its latency flushes the last of the
    /// signal, then its tail rings out, until `tail_seconds` (capped) or until the output has
    /// stayed silent for `QUIET_SECONDS`. What rang out silent at the very end is not kept (the
    /// signal itself always is).
    fn finish(&mut self, block: &mut Block) -> bool {
        if self.failed.is_some() {
            return false;
        }
        let Some(&(rate, channels, _)) = self.instance.as_ref() else {
            return false;
        };
        let rate = rate as usize;
        let tail = (self.tail_seconds() * rate as f64).ceil() as usize;
        let latency = self.latency;
        let mut t = self.tail.take().unwrap_or_else(|| Tail {
            flush: latency,
            left: latency + tail,
            quiet: 0,
            held: Block::new(channels),
        });
        block.reset(channels);
        let quiet_enough = t.quiet as f64 >= QUIET_SECONDS * rate as f64;
        if t.left == 0 || (t.flush == 0 && quiet_enough) {
            if t.left == 0 {
                // Fed to the end: all of it is kept. Cut by the cap while still sounding?
                self.cut = self.effect.descriptor.tail_seconds > TAIL_CAP_SECONDS && !quiet_enough;
                block.extend_from(&t.held);
            }
            return false;
        }
        let n = t.left.min(MAX_FRAMES);
        self.scratch.resize(channels, Vec::new());
        for p in &mut self.scratch {
            p.clear();
            p.resize(n, 0.0);
        }
        let mut chunk = Block::from_planes(std::mem::take(&mut self.scratch));
        if let Err(e) = self.run(&mut chunk) {
            self.failed = Some(e);
            return false;
        }
        let loud = chunk.planes().iter().flatten().any(|v| v.abs() > SILENT);
        // The chunk's first frames flush the latency; the rest (never dropped) ring out.
        let flushed = t.flush.min(n);
        let ring = n - flushed;
        t.quiet = if loud { 0 } else { t.quiet + n };
        if loud {
            std::mem::swap(block, &mut t.held);
            block.extend_from(&chunk);
            t.held.reset(channels);
        } else {
            let keep = chunk.frames() - ring;
            for ((b, h), c) in block
                .planes_mut()
                .iter_mut()
                .zip(t.held.planes_mut())
                .zip(chunk.planes())
            {
                b.extend_from_slice(&c[..keep]);
                h.extend_from_slice(&c[keep..]);
            }
        }
        self.scratch = chunk.into_planes();
        t.left -= n;
        t.flush -= flushed;
        self.tail = Some(t);
        true
    }

    fn failure(&mut self) -> Option<RenderError> {
        self.failed.take().map(RenderError::from)
    }

    fn report(&self) -> Option<StageReport> {
        let mut values = std::collections::BTreeMap::new();
        values.insert("latency_frames".into(), self.latency as f64);
        let claimed = self.effect.descriptor.tail_seconds;
        values.insert("tail_seconds".into(), self.tail_seconds());
        if claimed > TAIL_CAP_SECONDS {
            values.insert("tail_seconds_claimed".into(), claimed);
        }
        for (i, v) in &self.params {
            values.insert(self.effect.descriptor.params[*i].id.clone(), *v);
        }
        let mut warnings = Vec::new();
        if self.cut {
            warnings.push(format!(
                "its tail was still sounding when cut at {TAIL_CAP_SECONDS} s, the host's limit (its descriptor claims {claimed} s)"
            ));
        }
        Some(StageReport {
            stage: format!("effect {}", self.effect.descriptor.name),
            values,
            warnings,
        })
    }
}
