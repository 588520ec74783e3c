//! The spill: what the stages in front of a prepass-hungry stage produce, kept in an unnamed
//! temporary file (deleted by the system when closed) so that later passes start from it
//! instead of decoding and re-running those stages. See `docs/RENDERING.md`.

use super::{Block, RenderError, SignalSpec, Source};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};

/// A finished spill: the signal at the input of shared stage `at`.
pub(crate) struct Spill {
    file: File,
    pub at: usize,
    pub spec: SignalSpec,
    pub frames: u64,
}

/// Writes blocks into a new spill; the first I/O error (a full disk) disables it, and the
/// render goes on without one.
pub(crate) struct SpillWriter {
    out: Option<BufWriter<File>>,
    at: usize,
    spec: SignalSpec,
    frames: u64,
    bytes: Vec<u8>,
}

impl SpillWriter {
    pub fn new(at: usize, spec: SignalSpec) -> Self {
        let out = match tempfile::tempfile() {
            Ok(f) => Some(BufWriter::with_capacity(1 << 20, f)),
            Err(e) => {
                tracing::warn!(
                    "no temporary file to keep the rendered signal in ({e}): each later pass decodes the source again"
                );
                None
            }
        };
        SpillWriter {
            out,
            at,
            spec,
            frames: 0,
            bytes: Vec::new(),
        }
    }

    pub fn write(&mut self, block: &Block) {
        let Some(out) = &mut self.out else {
            return;
        };
        self.bytes.clear();
        self.bytes
            .extend_from_slice(&(block.frames() as u32).to_ne_bytes());
        for p in block.planes() {
            for x in p {
                self.bytes.extend_from_slice(&x.to_ne_bytes());
            }
        }
        if let Err(e) = out.write_all(&self.bytes) {
            tracing::warn!(
                "the temporary file keeping the rendered signal failed ({e}): each later pass decodes the source again"
            );
            self.out = None;
        }
        self.frames += block.frames() as u64;
    }

    pub fn finish(self) -> Option<Spill> {
        let mut out = self.out?;
        out.flush().ok()?;
        let mut file = out.into_inner().ok()?;
        file.seek(SeekFrom::Start(0)).ok()?;
        Some(Spill {
            file,
            at: self.at,
            spec: self.spec,
            frames: self.frames,
        })
    }
}

/// Reads a spill back as a [`Source`].
pub(crate) struct SpillSource<'a> {
    spill: &'a Spill,
    reader: BufReader<&'a File>,
    buf: Vec<u8>,
}

impl<'a> SpillSource<'a> {
    pub fn new(spill: &'a Spill) -> Self {
        SpillSource {
            spill,
            reader: BufReader::with_capacity(1 << 20, &spill.file),
            buf: Vec::new(),
        }
    }
}

impl Source for SpillSource<'_> {
    fn spec(&self) -> &SignalSpec {
        &self.spill.spec
    }
    fn frames(&self) -> Option<u64> {
        Some(self.spill.frames)
    }
    fn rewind(&mut self) -> Result<(), RenderError> {
        self.reader
            .seek(SeekFrom::Start(0))
            .map_err(|e| RenderError::Invalid(format!("the temporary spill file failed: {e}")))?;
        Ok(())
    }
    fn next(&mut self, block: &mut Block) -> Result<bool, RenderError> {
        let fail = |e: std::io::Error| {
            RenderError::Invalid(format!("the temporary spill file failed: {e}"))
        };
        let mut head = [0u8; 4];
        match self.reader.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
            Err(e) => return Err(fail(e)),
        }
        let frames = u32::from_ne_bytes(head) as usize;
        let channels = self.spill.spec.channels();
        self.buf.resize(frames * channels * 4, 0);
        self.reader.read_exact(&mut self.buf).map_err(fail)?;
        block.reset(channels);
        for (c, p) in block.planes_mut().iter_mut().enumerate() {
            let bytes = &self.buf[c * frames * 4..(c + 1) * frames * 4];
            p.extend(
                bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_ne_bytes(b.try_into().expect("4 bytes"))),
            );
        }
        Ok(true)
    }
}
