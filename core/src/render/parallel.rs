//! A parallel branch: the signal goes through a sub-chain of stages (the wet path) and is
//! mixed with itself untouched (the dry path), `dry·(1 − mix) + wet·mix`.
//!
//! The branch's stages keep the rate and the channels and compensate their own latency (an
//! effect stage drops the frames it delays and gives them at the end), so the wet signal lines
//! up with the dry one but arrives later in the stream: the dry frames wait in a queue until
//! their wet frames come out. What the branch gives after the input ends — a reverb's or a
//! delay's tail — goes out mixed with silence, so the output is as long as the longer path.
//! Nothing but that queue (the branch's latency in frames) is held.

use super::{Block, RenderError, SignalSpec, Stage, StageReport};
use std::collections::VecDeque;

pub struct Parallel {
    mix: f32,
    branch: Vec<Box<dyn Stage>>,
    /// Per channel: dry frames waiting for their wet frames.
    dry: Vec<VecDeque<f32>>,
    wet: Block,
    /// The branch stage being finished, once the input has ended.
    finishing: usize,
    failed: Option<RenderError>,
}

impl Parallel {
    /// `mix` (0 … 1) of the output is the branch's, the rest the input's.
    pub fn new(mix: f64, branch: Vec<Box<dyn Stage>>) -> Self {
        Parallel {
            mix: mix.clamp(0.0, 1.0) as f32,
            branch,
            dry: Vec::new(),
            wet: Block::new(0),
            finishing: 0,
            failed: None,
        }
    }

    /// The branch's stages over `self.wet`, from stage `from` on; `false` if one failed.
    fn through(&mut self, from: usize) -> bool {
        for s in &mut self.branch[from..] {
            s.process(&mut self.wet);
            if let Some(e) = s.failure() {
                self.failed = Some(e);
                return false;
            }
        }
        true
    }

    /// `block` becomes the wet frames there are, each mixed with its dry frame (silence once
    /// the dry frames have run out: the branch's tail).
    fn mix_out(&mut self, block: &mut Block) {
        let channels = self.dry.len();
        let frames = self.wet.frames();
        block.reset(channels);
        let (wet_gain, dry_gain) = (self.mix, 1.0 - self.mix);
        for (c, queue) in self.dry.iter_mut().enumerate() {
            let wet = self.wet.plane(c);
            let out = block.plane_mut(c);
            out.reserve(frames);
            for &w in wet {
                let d = queue.pop_front().unwrap_or(0.0);
                out.push(d * dry_gain + w * wet_gain);
            }
        }
    }
}

impl Stage for Parallel {
    fn name(&self) -> &'static str {
        "parallel"
    }

    fn start(&mut self, input: &SignalSpec) -> Result<SignalSpec, RenderError> {
        let mut spec = input.clone();
        for s in &mut self.branch {
            spec = s.start(&spec)?;
        }
        if spec.sample_rate != input.sample_rate || spec.channels() != input.channels() {
            return Err(RenderError::Invalid(format!(
                "parallel: the branch turns {} Hz and {} channels into {} Hz and {} channels; a branch must keep the rate and the channels",
                input.sample_rate,
                input.channels(),
                spec.sample_rate,
                spec.channels()
            )));
        }
        self.dry = vec![VecDeque::new(); input.channels()];
        self.wet = Block::new(input.channels());
        self.finishing = 0;
        self.failed = None;
        // Mixed values are arbitrary floats, whatever the input's depth was.
        let mut out = input.clone();
        out.exact_bits = None;
        Ok(out)
    }

    fn process(&mut self, block: &mut Block) {
        if self.failed.is_some() {
            return;
        }
        for (queue, plane) in self.dry.iter_mut().zip(block.planes()) {
            queue.extend(plane.iter().copied());
        }
        self.wet.reset(block.channels());
        self.wet.extend_from(block);
        if self.through(0) {
            self.mix_out(block);
        }
    }

    fn finish(&mut self, block: &mut Block) -> bool {
        let channels = self.dry.len();
        while self.finishing < self.branch.len() && self.failed.is_none() {
            let i = self.finishing;
            self.wet.reset(channels);
            let more = self.branch[i].finish(&mut self.wet);
            if let Some(e) = self.branch[i].failure() {
                self.failed = Some(e);
                break;
            }
            if !self.through(i + 1) {
                break;
            }
            if !more {
                self.finishing += 1;
            }
            if !self.wet.is_empty() {
                self.mix_out(block);
                return true;
            }
        }
        // The branch has given everything: dry frames still waiting (a branch that gave fewer
        // frames than it took) go out as they are, at the dry level.
        block.reset(channels);
        if self.failed.is_none() {
            let dry_gain = 1.0 - self.mix;
            for (c, queue) in self.dry.iter_mut().enumerate() {
                block
                    .plane_mut(c)
                    .extend(queue.drain(..).map(|d| d * dry_gain));
            }
        }
        false
    }

    fn report(&self) -> Option<StageReport> {
        let mut report = StageReport {
            stage: "parallel".into(),
            ..StageReport::default()
        };
        report.values.insert("mix".into(), f64::from(self.mix));
        for r in self.branch.iter().filter_map(|s| s.report()) {
            for (k, v) in r.values {
                report.values.insert(format!("{}.{k}", r.stage), v);
            }
            report
                .warnings
                .extend(r.warnings.into_iter().map(|w| format!("{}: {w}", r.stage)));
        }
        Some(report)
    }

    fn failure(&mut self) -> Option<RenderError> {
        self.failed.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::stages::Gain;

    /// A stage that behaves as a latency-compensated effect with a tail: it holds back its last
    /// `latency` frames (so its output lags in the stream but lines up in time), and at the
    /// end gives them and then `tail` frames of 0.25, in two pieces.
    struct Late {
        latency: usize,
        tail: usize,
        held: Vec<Vec<f32>>,
        pieces: usize,
    }

    impl Stage for Late {
        fn name(&self) -> &'static str {
            "late"
        }
        fn start(&mut self, input: &SignalSpec) -> Result<SignalSpec, RenderError> {
            self.held = vec![Vec::new(); input.channels()];
            self.pieces = 0;
            Ok(input.clone())
        }
        fn process(&mut self, block: &mut Block) {
            for (h, p) in self.held.iter_mut().zip(block.planes_mut()) {
                h.append(p);
                let keep = h.len().saturating_sub(self.latency);
                *p = h.drain(..keep).collect();
            }
        }
        fn finish(&mut self, block: &mut Block) -> bool {
            self.pieces += 1;
            for (h, p) in self.held.iter_mut().zip(block.planes_mut()) {
                if self.pieces == 1 {
                    p.append(h);
                } else {
                    p.extend(std::iter::repeat_n(0.25, self.tail));
                }
            }
            self.pieces < 2
        }
    }

    /// `input` through `stage` in blocks of `block`, then its tail, as one plane per channel.
    fn run(stage: &mut dyn Stage, input: &[Vec<f32>], block: usize) -> Vec<Vec<f32>> {
        let spec = SignalSpec::with_channels(48_000, input.len());
        assert_eq!(stage.start(&spec).unwrap().channels(), input.len());
        let mut out = vec![Vec::new(); input.len()];
        let mut at = 0;
        while at < input[0].len() {
            let end = (at + block).min(input[0].len());
            let mut b = Block::from_planes(input.iter().map(|p| p[at..end].to_vec()).collect());
            stage.process(&mut b);
            assert!(stage.failure().is_none());
            for (o, p) in out.iter_mut().zip(b.planes()) {
                o.extend_from_slice(p);
            }
            at = end;
        }
        loop {
            let mut b = Block::new(input.len());
            let more = stage.finish(&mut b);
            for (o, p) in out.iter_mut().zip(b.planes()) {
                o.extend_from_slice(p);
            }
            if !more {
                break;
            }
        }
        out
    }

    fn ramp(channels: usize, frames: usize) -> Vec<Vec<f32>> {
        (0..channels)
            .map(|c| {
                (0..frames)
                    .map(|i| ((i * 7 + c * 3) % 101) as f32 / 100.0 - 0.5)
                    .collect()
            })
            .collect()
    }

    #[test]
    fn dry_and_wet_mix_in_proportion() {
        let x = ramp(2, 10_000);
        let mut p = Parallel::new(0.25, vec![Box::new(Gain::new(-6.0))]);
        let y = run(&mut p, &x, 512);
        let g = 10f32.powf(-6.0 / 20.0);
        for (yc, xc) in y.iter().zip(&x) {
            assert_eq!(yc.len(), xc.len());
            for (a, b) in yc.iter().zip(xc) {
                assert!((a - b * (0.75 + 0.25 * g)).abs() < 1e-6);
            }
        }
        let r = p.report().unwrap();
        assert_eq!(r.values["mix"], 0.25);
    }

    #[test]
    fn a_late_branch_lines_up_and_its_tail_follows() {
        let x = ramp(2, 10_000);
        for block in [1, 100, 4096] {
            let branch: Vec<Box<dyn Stage>> = vec![
                Box::new(Late {
                    latency: 300,
                    tail: 50,
                    held: Vec::new(),
                    pieces: 0,
                }),
                Box::new(Gain::new(0.0)),
                Box::new(Late {
                    latency: 7,
                    tail: 3,
                    held: Vec::new(),
                    pieces: 0,
                }),
            ];
            let mut p = Parallel::new(0.5, branch);
            let y = run(&mut p, &x, block);
            for (yc, xc) in y.iter().zip(&x) {
                // The input, whole (dry half + wet half, lined up), then the tails: the first
                // stage's 50 frames of 0.25 went through the second and third, then the third's
                // own 3 — at the wet half, with no dry left.
                assert_eq!(yc.len(), 10_000 + 53, "block {block}");
                for (a, b) in yc.iter().zip(xc) {
                    assert!((a - b).abs() < 1e-6, "block {block}: {a} for {b}");
                }
                assert!(yc[10_000..].iter().all(|v| (v - 0.125).abs() < 1e-7));
            }
        }
    }

    #[test]
    fn a_branch_that_changes_the_signal_is_refused() {
        use crate::render::resample::{Resample, ResampleQuality};
        let mut p = Parallel::new(
            0.5,
            vec![Box::new(Resample::new(44_100, ResampleQuality::default()))],
        );
        let e = p
            .start(&SignalSpec::with_channels(48_000, 2))
            .expect_err("refused");
        assert!(e.to_string().contains("a branch must keep the rate"), "{e}");
    }
}
