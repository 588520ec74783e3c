//! A wasm effect as a render stage: the signal goes through the effect block by block, its
//! latency is compensated (the first frames it delays are dropped, and it is flushed at the
//! end), and its tail (a reverb's, a delay's) is kept.

use super::runtime::{Effect, EffectError, Instance, Limits, Runtime};
use sluice_core::render::{Block, RenderError, SignalSpec, Stage, StageReport};
use std::sync::Arc;

/// The largest block handed to an effect in one call.
pub const MAX_FRAMES: usize = 4096;
/// Below this (−120 dBFS) a tail counts as silent.
const SILENT: f32 = 1e-6;

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
        }
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
            Some((r, c, inst)) if *r == rate && *c == channels => inst.reset()?,
            slot => {
                *slot = None;
                let inst = Instance::new(
                    &self.rt,
                    &self.effect,
                    rate,
                    channels,
                    MAX_FRAMES,
                    self.limits,
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
        self.to_drop = inst.latency()?;
        self.latency = self.to_drop;
        self.failed = None;
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

    fn finish(&mut self, block: &mut Block) -> bool {
        if self.failed.is_some() {
            return false;
        }
        let Some((rate, channels, _)) = self.instance.as_ref() else {
            return false;
        };
        // Silence through the effect: its latency flushes the last of the signal, then its
        // tail rings out, until `tail_seconds` or until the output has stayed silent for
        // longer than any gap in a tail (a delay's repeats are at most 2 s apart).
        let rate = *rate as usize;
        let tail = (self.effect.descriptor.tail_seconds * rate as f64).ceil() as usize;
        let mut flush = self.latency;
        let mut left = self.latency + tail;
        let mut quiet = 0usize;
        let mut rung = 0usize;
        let channels = *channels;
        block.reset(channels);
        while left > 0 && (flush > 0 || quiet < rate * 5 / 2) {
            let n = left.min(MAX_FRAMES);
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
            quiet = if loud { 0 } else { quiet + n };
            block.extend_from(&chunk);
            self.scratch = chunk.into_planes();
            left -= n;
            rung += n - flush.min(n);
            flush = flush.saturating_sub(n);
        }
        // What rang out silent at the very end is not kept (the signal itself always is).
        if left > 0 {
            let frames = block.frames();
            block.truncate(frames - quiet.min(rung));
        }
        false
    }

    fn failure(&mut self) -> Option<RenderError> {
        self.failed.take().map(RenderError::from)
    }

    fn report(&self) -> Option<StageReport> {
        let mut values = std::collections::BTreeMap::new();
        values.insert("latency_frames".into(), self.latency as f64);
        values.insert("tail_seconds".into(), self.effect.descriptor.tail_seconds);
        for (i, v) in &self.params {
            values.insert(self.effect.descriptor.params[*i].id.clone(), *v);
        }
        Some(StageReport {
            stage: format!("effect {}", self.effect.descriptor.name),
            values,
            warnings: Vec::new(),
        })
    }
}
