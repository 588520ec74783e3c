//! A mutation fuzzer for the probe, the tag readers and the decoder: real fixtures with flipped
//! bits, overwritten header fields, cuts and splices. The property: every input ends in `Ok` or
//! a typed error, never a panic, a hang or a parser failure.
//!
//! `SLUICE_FUZZ_ITERS` sets the number of mutated files (default 400, a few seconds);
//! `SLUICE_FUZZ_SEED` the seed. A long run: `SLUICE_FUZZ_ITERS=200000 cargo test --release
//! -p sluice-core --test fuzz -- --nocapture`.
//!
//! The [`structured`] targets below (one per container) go further: they parse each fixture's
//! structure and set its header fields, by meaning, to boundary and absurd values, in a process
//! whose address space is limited to 1 GiB. `regressions_replay` reads every input kept in
//! `fixtures/regressions/`. See docs/FUZZING.md.

mod common;
#[path = "common/forge.rs"]
mod forge;
use common::fixture;
use sluice_core::signal::Rng;
use sluice_core::{Decoder, InfoOptions, InputError};
use std::time::{Duration, Instant};

const SEEDS: &[&str] = &[
    "source.wav",
    "bwf_v2.wav",
    "riff_info.wav",
    "rf64.wav",
    "surround51.wav",
    "f32.wav",
    "source.aiff",
    "source.aifc",
    "tagged.flac",
    "tagged.mp3",
    "tagged.ogg",
    "aac.m4a",
    "alac.m4a",
];

fn mutate(rng: &mut Rng, data: &mut Vec<u8>) {
    let n = 1 + (rng.next_u64() % 4) as usize;
    for _ in 0..n {
        let len = data.len().max(1);
        // Most structure is near the start: bias positions to the first 4 KB.
        let pos = if rng.next_u64().is_multiple_of(4) {
            (rng.next_u64() as usize) % len
        } else {
            (rng.next_u64() as usize) % len.min(4096)
        };
        match rng.next_u64() % 7 {
            0 => {
                if let Some(b) = data.get_mut(pos) {
                    *b ^= 1 << (rng.next_u64() % 8);
                }
            }
            1 => {
                if let Some(b) = data.get_mut(pos) {
                    *b = rng.next_u64() as u8;
                }
            }
            2 => {
                // A size field gone wrong.
                let v: [u8; 4] = match rng.next_u64() % 4 {
                    0 => [0xFF; 4],
                    1 => [0; 4],
                    2 => [0x7F, 0xFF, 0xFF, 0xFF],
                    _ => (rng.next_u64() as u32).to_le_bytes(),
                };
                for (k, b) in v.iter().enumerate() {
                    if let Some(x) = data.get_mut(pos + k) {
                        *x = *b;
                    }
                }
            }
            3 => data.truncate(pos),
            4 => {
                let extra: Vec<u8> = (0..(rng.next_u64() % 64))
                    .map(|_| rng.next_u64() as u8)
                    .collect();
                let at = pos.min(data.len());
                data.splice(at..at, extra);
            }
            5 => {
                // Repeat a slice (duplicated chunks, repeated headers).
                let start = pos.min(data.len());
                let end = (start + (rng.next_u64() % 256) as usize).min(data.len());
                let piece = data[start..end].to_vec();
                data.splice(start..start, piece);
            }
            _ => {
                let end = (pos + (rng.next_u64() % 512) as usize).min(data.len());
                data.drain(pos.min(end)..end);
            }
        }
    }
}

#[test]
fn mutated_fixtures_never_panic() {
    let iters: usize = std::env::var("SLUICE_FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(400);
    let seed: u64 = std::env::var("SLUICE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED);
    let originals: Vec<(String, Vec<u8>)> = SEEDS
        .iter()
        .map(|n| (n.to_string(), std::fs::read(fixture(n)).unwrap()))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(seed);
    let (mut ok, mut typed) = (0usize, 0usize);
    let mut slowest = Duration::ZERO;
    for i in 0..iters {
        let (name, orig) = &originals[i % originals.len()];
        let mut data = orig.clone();
        mutate(&mut rng, &mut data);
        // Keep the extension of the original: the worst case is a broken file with the right name.
        let path = dir.path().join(format!("m{}", name));
        std::fs::write(&path, &data).unwrap();
        let t0 = Instant::now();
        let result = std::panic::catch_unwind(|| {
            let info = sluice_core::info(&path, &InfoOptions::default());
            let mut frames = 0u64;
            if let Ok(mut d) = Decoder::open(&path) {
                // Bounded: a header claiming hours must not make the test decode hours.
                while let Ok(Some(b)) = d.next_block() {
                    frames += b.frames() as u64;
                    if frames > 50_000_000 {
                        break;
                    }
                }
            }
            info
        });
        let took = t0.elapsed();
        slowest = slowest.max(took);
        match result {
            Err(_) => panic!(
                "panic on mutation {i} of {name} (seed {seed}); the input is at {}",
                {
                    let keep =
                        std::env::temp_dir().join(format!("sluice-fuzz-crash-{seed}-{i}-{name}"));
                    std::fs::write(&keep, &data).unwrap();
                    keep.display().to_string()
                }
            ),
            Ok(Ok(_)) => ok += 1,
            Ok(Err(InputError::ParserFailure {
                detail, component, ..
            })) => {
                let keep = std::env::temp_dir().join(format!("sluice-fuzz-pf-{seed}-{i}-{name}"));
                std::fs::write(&keep, &data).unwrap();
                panic!(
                    "{component} parser panicked on mutation {i} of {name}: {detail} (input kept at {})",
                    keep.display()
                );
            }
            Ok(Err(e)) => {
                assert_eq!(e.path(), path.as_path());
                typed += 1
            }
        }
        assert!(
            took < Duration::from_secs(10),
            "mutation {i} of {name} took {took:?}"
        );
    }
    eprintln!("fuzz: {iters} inputs, {ok} read, {typed} typed errors, slowest {slowest:?}");
}

/// Structure-aware fuzzing. Each target parses its container's fixtures (RIFF chunks, AIFF
/// chunks, FLAC metadata blocks and frame headers, MPEG frame headers and the Xing/LAME and
/// ID3v2 headers, Ogg pages and the Vorbis headers, MP4 boxes) into named header fields, then
/// sets one to three of them to values chosen by what the field means (a rate, a channel count,
/// a size, a count...): the edges of what Sluice supports, the edges of the field's width,
/// powers of two, the original value ± 1, absurd values, random ones. Checksums that would
/// hide a mutation from the parser (Ogg page CRCs, FLAC frame CRCs, the LAME tag CRC) are
/// recomputed. Some inputs first get a coherent structural change (an ADPCM `fmt `, a 64-bit
/// MP4 box size, `stco` turned into `co64`) or a rebuilt FLAC frame header.
///
/// Every input goes through `info` with a full decode and a `Decoder` pass, in a process whose
/// address space is limited to 1 GiB (a header that makes Sluice allocate from its word
/// aborts the run), and must end in `Ok` (with a rate and channel count Sluice supports) or a
/// typed error naming the file: no panic, no parser failure (also not as a tag warning), no
/// input over 10 s. An input running for two minutes aborts the run as a hang.
mod structured {
    use super::common::fixture;
    use super::forge::{crc8_flac, crc16_flac, crc32_ogg, extended, limit_address_space};
    use sluice_core::formats::limits;
    use sluice_core::signal::Rng;
    use sluice_core::{Decoder, InfoOptions, InputError};
    use std::cell::{Cell, RefCell};
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex, Once};
    use std::time::{Duration, Instant};

    /// Mutated inputs per target when `SLUICE_FUZZ_ITERS` is not set.
    const DEFAULT_ITERS: usize = 120;
    /// The most one input may take.
    const SLOW: Duration = Duration::from_secs(10);
    /// An input running this long is a hang: the run aborts, leaving the input on disk.
    const HANG: Duration = Duration::from_secs(120);

    /// The targets share one address space and the time limit: they run one at a time.
    static SERIAL: Mutex<()> = Mutex::new(());

    thread_local! {
        /// Where the last panic on this thread happened (`crate-version/src/file.rs:line:col`).
        static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
        /// Whether this thread is reading a fuzzed input.
        static IN_CHECK: Cell<bool> = const { Cell::new(false) };
    }

    /// A panic hook that notes where each panic happened, so a failure names the line that
    /// panicked (a parser failure's message alone does not), and that prints a panic inside a
    /// fuzzed input in full (with its backtrace) only the first time that line panics.
    fn note_panics() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            let default = std::panic::take_hook();
            let seen = Mutex::new(BTreeSet::new());
            std::panic::set_hook(Box::new(move |info| {
                let at = info.location().map_or_else(String::new, |l| {
                    // Registry paths shortened to `crate-version/src/...`.
                    let file = l.file();
                    let file = file
                        .find("/registry/src/")
                        .and_then(|i| file[i + 14..].split_once('/'))
                        .map_or(file, |(_, rest)| rest);
                    format!("{file}:{}:{}", l.line(), l.column())
                });
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(at.clone()));
                let first = seen.lock().map_or(true, |mut s| s.insert(at));
                if first || !IN_CHECK.with(Cell::get) {
                    default(info);
                }
            }));
        });
    }

    /// The process's peak address space (VmPeak), for the summary.
    fn vm_peak() -> String {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmPeak:"))
                    .map(|l| l["VmPeak:".len()..].trim().to_string())
            })
            .unwrap_or_else(|| "?".into())
    }

    // ---- Fields ---------------------------------------------------------------------------

    /// Where a header field lives and how it is stored.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Loc {
        /// `n` bytes, little endian, at a byte offset.
        Le(usize, usize),
        /// `n` bytes, big endian.
        Be(usize, usize),
        /// `width` bits starting `bit` bits after the most significant bit of byte `at`
        /// (MSB-first bit order).
        Bits(usize, u32, u32),
        /// An ID3v2 syncsafe integer: 4 bytes of 7 bits.
        Syncsafe(usize),
        /// An IEEE 754 80-bit extended float, big endian (AIFF's sample rate).
        Ext80(usize),
    }

    impl Loc {
        fn at(self) -> usize {
            match self {
                Loc::Le(a, _)
                | Loc::Be(a, _)
                | Loc::Bits(a, _, _)
                | Loc::Syncsafe(a)
                | Loc::Ext80(a) => a,
            }
        }

        fn end(self) -> usize {
            match self {
                Loc::Le(a, n) | Loc::Be(a, n) => a + n,
                Loc::Bits(a, bit, w) => a + (bit + w).div_ceil(8) as usize,
                Loc::Syncsafe(a) => a + 4,
                Loc::Ext80(a) => a + 10,
            }
        }

        fn width(self) -> u32 {
            match self {
                Loc::Le(_, n) | Loc::Be(_, n) => 8 * n as u32,
                Loc::Bits(_, _, w) => w,
                Loc::Syncsafe(_) => 28,
                Loc::Ext80(_) => 80,
            }
        }

        fn read(self, d: &[u8]) -> u64 {
            let Some(b) = d.get(self.at()..self.end()) else {
                return 0;
            };
            match self {
                Loc::Le(..) => b.iter().rev().fold(0, |a, &x| a << 8 | u64::from(x)),
                Loc::Be(..) => b.iter().fold(0, |a, &x| a << 8 | u64::from(x)),
                Loc::Bits(_, bit, w) => (0..w).fold(0, |a, i| {
                    let k = (bit + i) as usize;
                    a << 1 | u64::from(b[k / 8] >> (7 - k % 8) & 1)
                }),
                Loc::Syncsafe(_) => b.iter().fold(0, |a, &x| a << 7 | u64::from(x & 0x7F)),
                Loc::Ext80(_) => 0,
            }
        }

        /// Stores the low `width` bits of `v`.
        fn write(self, d: &mut [u8], v: u64) {
            let (at, end) = (self.at(), self.end());
            let Some(b) = d.get_mut(at..end) else {
                return;
            };
            match self {
                Loc::Le(_, n) => {
                    for (k, x) in b.iter_mut().enumerate().take(n) {
                        *x = (v >> (8 * k)) as u8;
                    }
                }
                Loc::Be(_, n) => {
                    for (k, x) in b.iter_mut().enumerate() {
                        *x = (v >> (8 * (n - 1 - k))) as u8;
                    }
                }
                Loc::Bits(_, bit, w) => {
                    for i in 0..w {
                        let k = (bit + i) as usize;
                        let mask = 1u8 << (7 - k % 8);
                        if v >> (w - 1 - i) & 1 == 1 {
                            b[k / 8] |= mask;
                        } else {
                            b[k / 8] &= !mask;
                        }
                    }
                }
                Loc::Syncsafe(_) => {
                    for (k, x) in b.iter_mut().enumerate() {
                        *x = (v >> (7 * (3 - k))) as u8 & 0x7F;
                    }
                }
                Loc::Ext80(_) => {}
            }
        }
    }

    /// What a field means; it picks the boundary values tried.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
    enum Kind {
        /// A sample rate (in Hz, or a timescale that is one).
        Rate,
        Channels,
        /// Bits per sample.
        Bits,
        /// A length in bytes (a chunk, box, block or tag size, an offset).
        Size,
        /// A number of things (frames, entries, samples).
        Count,
        /// A time or position (granule position, duration, delay).
        Time,
        /// A code (a format tag, a type, an index, flags): its own list and random values.
        Code,
    }

    const RATES: &[u64] = &[
        0,
        1,
        7_999,
        8_000,
        11_025,
        22_050,
        44_100,
        48_000,
        65_535,
        65_536,
        96_000,
        192_000,
        384_000,
        384_001,
        655_350,
        705_600,
        1 << 20,
        1_778_428_996,
        4_000_000_000,
        u32::MAX as u64,
    ];
    const CHANNELS: &[u64] = &[
        0,
        1,
        2,
        3,
        6,
        7,
        8,
        9,
        16,
        64,
        255,
        256,
        30_000,
        65_535,
        1 << 20,
        u32::MAX as u64,
    ];
    const BITS: &[u64] = &[
        0, 1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 20, 24, 25, 31, 32, 33, 48, 63, 64, 65, 128,
        255, 256, 65_535,
    ];
    const SIZES: &[u64] = &[
        0,
        1,
        2,
        3,
        4,
        7,
        8,
        9,
        15,
        16,
        17,
        255,
        256,
        4_096,
        65_535,
        65_536,
        0x7FFF_FFFF,
        0x8000_0000,
        0xFFFF_FFF0,
        0xFFFF_FFFE,
        0xFFFF_FFFF,
        1 << 32,
        (1 << 32) + 8,
        1 << 40,
        1 << 62,
        1 << 63,
        u64::MAX - 7,
        u64::MAX,
    ];
    const COUNTS: &[u64] = &[
        0,
        1,
        2,
        3,
        255,
        256,
        4_096,
        65_535,
        65_536,
        1 << 20,
        (1 << 20) + 1,
        1 << 24,
        1 << 30,
        0x7FFF_FFFF,
        0x8000_0000,
        0xFFFF_FFFF,
        (1 << 36) - 1,
        1 << 36,
        1 << 62,
        i64::MAX as u64,
        u64::MAX,
    ];
    const TIMES: &[u64] = &[
        0,
        1,
        2,
        576,
        1_024,
        1_152,
        2_112,
        4_095,
        4_096,
        44_100,
        0x7FFF_FFFF,
        0x8000_0000,
        0xFFFF_FFFF,
        1 << 32,
        1 << 62,
        i64::MAX as u64,
        1 << 63,
        u64::MAX - 1,
        u64::MAX,
    ];

    /// One header field of a parsed file.
    #[derive(Clone, Debug)]
    struct Field {
        name: String,
        loc: Loc,
        kind: Kind,
        /// Values that mean something for this field (format tags, box types, the bytes left
        /// to the end of the file).
        extra: Vec<u64>,
        /// Stored shifted left by this many bits (16.16 fixed point).
        shift: u32,
        /// Stored minus this (FLAC's channels − 1).
        bias: u64,
        /// A checksum: when it is written, the container's repair leaves it alone.
        raw: bool,
    }

    fn field(name: impl Into<String>, loc: Loc, kind: Kind) -> Field {
        Field {
            name: name.into(),
            loc,
            kind,
            extra: Vec::new(),
            shift: 0,
            bias: 0,
            raw: false,
        }
    }

    impl Field {
        fn with(mut self, v: &[u64]) -> Self {
            self.extra.extend_from_slice(v);
            self
        }
        /// A size whose exact fit is `room` bytes.
        fn room(self, room: usize) -> Self {
            let r = room as u64;
            self.with(&[r, r.wrapping_sub(1), r + 1, r + 2, r / 2])
        }
        fn shifted(mut self, s: u32) -> Self {
            self.shift = s;
            self
        }
        fn biased(mut self, b: u64) -> Self {
            self.bias = b;
            self
        }
        fn checksum(mut self) -> Self {
            self.raw = true;
            self
        }
    }

    fn fourcc(b: &[u8; 4]) -> u64 {
        u64::from(u32::from_be_bytes(*b))
    }

    fn le(d: &[u8], at: usize, n: usize) -> u64 {
        Loc::Le(at, n).read(d)
    }

    fn be(d: &[u8], at: usize, n: usize) -> u64 {
        Loc::Be(at, n).read(d)
    }

    /// A named span of the file a rebuild or a repair needs (a FLAC frame, the LAME tag).
    #[derive(Clone, Debug)]
    struct Mark {
        what: &'static str,
        start: usize,
        end: usize,
    }

    /// A file's header fields and marks.
    #[derive(Clone, Debug, Default)]
    struct Parsed {
        fields: Vec<Field>,
        marks: Vec<Mark>,
    }

    impl Parsed {
        /// Drops the fields that do not lie inside a file of `len` bytes.
        fn within(mut self, len: usize) -> Self {
            self.fields.retain(|f| f.loc.end() <= len);
            self
        }
    }

    /// A value for `f` (whose stored value is `orig`), before shift and bias.
    fn value(rng: &mut Rng, f: &Field, orig: u64) -> u64 {
        let width = f.loc.width() - f.shift;
        let max = if width >= 64 {
            u64::MAX
        } else {
            (1u64 << width) - 1
        };
        let list: &[u64] = match f.kind {
            Kind::Rate => RATES,
            Kind::Channels => CHANNELS,
            Kind::Bits => BITS,
            Kind::Size => SIZES,
            Kind::Count => COUNTS,
            Kind::Time => TIMES,
            Kind::Code => &[],
        };
        let orig = (orig >> f.shift).wrapping_add(f.bias);
        let r = rng.next_u64();
        match r % 16 {
            0..=5 if !list.is_empty() => list[(r >> 8) as usize % list.len()],
            0..=7 if !f.extra.is_empty() => f.extra[(r >> 8) as usize % f.extra.len()],
            8 => orig.wrapping_add(1),
            9 => orig.wrapping_sub(1),
            10 => orig.wrapping_mul(2),
            11 => orig / 2,
            12 => max - (r >> 8) % 2,
            13 => (1u64 << ((r >> 8) % u64::from(width))).wrapping_sub((r >> 16) % 2),
            14 => (max >> 1) + (r >> 8) % 2,
            _ => rng.next_u64() & max,
        }
    }

    /// Writes `v` (a value of the field's meaning) into the field; returns the value as it
    /// now reads (`v` cut to the field's width).
    fn store(d: &mut [u8], f: &Field, v: u64) -> u64 {
        if let Loc::Ext80(at) = f.loc {
            if let Some(b) = d.get_mut(at..at + 10) {
                b.copy_from_slice(&extended(v as f64));
            }
            return v;
        }
        let width = f.loc.width() - f.shift;
        let vmax = if width >= 64 {
            u64::MAX
        } else {
            (1u64 << width) - 1
        };
        let stored = v.wrapping_sub(f.bias) & vmax;
        f.loc.write(d, stored << f.shift);
        stored.wrapping_add(f.bias)
    }

    /// An 80-bit extended float worth trying as AIFF's sample rate, and its description.
    fn ext80_value(rng: &mut Rng) -> ([u8; 10], String) {
        const FLOATS: &[f64] = &[
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.0,
            -0.0,
            0.5,
            1.0,
            7_999.4,
            7_999.5,
            8_000.0,
            44_100.0,
            384_000.0,
            384_000.49,
            384_000.5,
            384_001.0,
            1.78e9,
            4_294_967_295.0,
            4_294_967_296.0,
            1e12,
            1e300,
            1e-300,
            f64::MIN_POSITIVE,
            -44_100.0,
            -1e300,
        ];
        // (sign and exponent, mantissa): encodings no f64 makes.
        const RAW: &[(u16, u64)] = &[
            (0x7FFF, 0),                     // infinity without the integer bit
            (0x7FFF, 0x4000_0000_0000_0000), // NaN without the integer bit
            (0xFFFF, u64::MAX),              // negative NaN
            (0x0000, 1),                     // the smallest denormal
            (0x0000, 0x8000_0000_0000_0000), // zero exponent with the integer bit
            (0x0001, 0),                     // an unnormal zero
            (0x400E, 0x2C44_0000_0000_0000), // 44100 with the integer bit cleared
            (0x7FFE, u64::MAX),              // the largest finite value
            (0x8000, 0),                     // negative zero
            (0x401E, 0xFFFF_FFFF_0000_0000), // just under 2^32
            (0x3FFE, 0x8000_0000_0000_0000), // 0.5
        ];
        let r = rng.next_u64();
        let (e, m) = match r % 4 {
            0 | 1 => {
                let v = FLOATS[(r >> 8) as usize % FLOATS.len()];
                return (extended(v), format!("{v:e}"));
            }
            2 => RAW[(r >> 8) as usize % RAW.len()],
            _ => (rng.next_u64() as u16, rng.next_u64()),
        };
        let mut b = [0u8; 10];
        b[0..2].copy_from_slice(&e.to_be_bytes());
        b[2..10].copy_from_slice(&m.to_be_bytes());
        (b, format!("raw {e:#06x}:{m:#018x}"))
    }

    // ---- Checksums ------------------------------------------------------------------------

    /// CRC-16 of the LAME tag: polynomial 0x8005 reflected (0xA001), initial value 0.
    fn crc16_lame(bytes: &[u8]) -> u16 {
        bytes.iter().fold(0u16, |mut c, &b| {
            c ^= u16::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0xA001
                } else {
                    c >> 1
                };
            }
            c
        })
    }

    // ---- WAV / RF64 -----------------------------------------------------------------------

    const WAV_TAGS: &[u64] = &[
        0, 1, 2, 3, 6, 7, 0x11, 0x50, 0x55, 0x161, 0x2000, 0xFFFE, 0xFFFF,
    ];

    /// The chunks of a RIFF/RF64 WAVE file: (header position, id, declared size).
    fn wav_chunks(d: &[u8]) -> Vec<(usize, [u8; 4], u64)> {
        let mut out = Vec::new();
        if d.get(8..12) != Some(&b"WAVE"[..]) {
            return out;
        }
        let mut ds64_data = None;
        let mut p = 12usize;
        while p + 8 <= d.len() && out.len() < 256 {
            let id: [u8; 4] = d[p..p + 4].try_into().unwrap();
            let size = le(d, p + 4, 4);
            out.push((p, id, size));
            if &id == b"ds64" {
                ds64_data = Some(le(d, p + 16, 8));
            }
            let len = match (&id, size, ds64_data) {
                (b"data", 0xFFFF_FFFF, Some(n)) => n,
                _ => size,
            };
            let next = p as u64 + 8 + len + (len & 1);
            if next > d.len() as u64 {
                break;
            }
            p = next as usize;
        }
        out
    }

    fn wav_fields(d: &[u8]) -> Parsed {
        let len = d.len();
        let mut f = vec![
            field("RIFF size", Loc::Le(4, 4), Kind::Size).room(len.saturating_sub(8)),
            field("RIFF id", Loc::Be(0, 4), Kind::Code).with(&[
                fourcc(b"RIFF"),
                fourcc(b"RF64"),
                fourcc(b"BW64"),
                fourcc(b"RIFX"),
            ]),
        ];
        for (p, id, size) in wav_chunks(d) {
            let name = String::from_utf8_lossy(&id).trim_end().to_string();
            let q = p + 8;
            let size = size as usize;
            f.push(
                field(format!("{name} chunk size"), Loc::Le(p + 4, 4), Kind::Size)
                    .room(len.saturating_sub(q)),
            );
            match &id {
                b"fmt " if size >= 16 => {
                    let tag = le(d, q, 2);
                    let (rate, align) = (le(d, q + 4, 4), le(d, q + 12, 2));
                    f.push(field("fmt format tag", Loc::Le(q, 2), Kind::Code).with(WAV_TAGS));
                    f.push(field("fmt channels", Loc::Le(q + 2, 2), Kind::Channels));
                    f.push(field("fmt sample rate", Loc::Le(q + 4, 4), Kind::Rate));
                    f.push(
                        field("fmt byte rate", Loc::Le(q + 8, 4), Kind::Count).with(&[
                            rate * align,
                            rate * align + 1,
                            rate,
                        ]),
                    );
                    f.push(
                        field("fmt block align", Loc::Le(q + 12, 2), Kind::Count).with(&[
                            1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 256, 512, 1_024, 2_048,
                        ]),
                    );
                    f.push(field("fmt bits per sample", Loc::Le(q + 14, 2), Kind::Bits));
                    if size >= 18 {
                        f.push(field("fmt cbSize", Loc::Le(q + 16, 2), Kind::Size).room(size - 18));
                    }
                    if size >= 20 {
                        f.push(match tag {
                            0xFFFE => field("fmt valid bits", Loc::Le(q + 18, 2), Kind::Bits),
                            _ => field("fmt samples per block", Loc::Le(q + 18, 2), Kind::Count)
                                .with(&[2, 500, 505, 1_017, 2_041]),
                        });
                    }
                    if tag == 0xFFFE && size >= 40 {
                        f.push(
                            field("fmt channel mask", Loc::Le(q + 20, 4), Kind::Code).with(&[
                                0,
                                1,
                                3,
                                4,
                                0x3F,
                                0x63F,
                                0x3_FFFF,
                                0x8000_0000,
                                0xFFFF_FFFF,
                            ]),
                        );
                        f.push(
                            field("fmt sub-format tag", Loc::Le(q + 24, 2), Kind::Code)
                                .with(WAV_TAGS),
                        );
                        f.push(field(
                            "fmt sub-format GUID bytes 2-7",
                            Loc::Be(q + 26, 6),
                            Kind::Code,
                        ));
                        f.push(
                            field(
                                "fmt sub-format GUID bytes 8-15",
                                Loc::Be(q + 32, 8),
                                Kind::Code,
                            )
                            .with(&[0x8000_00AA_0038_9B71, 0]),
                        );
                    }
                    if tag == 2 && size >= 24 {
                        f.push(field(
                            "fmt ADPCM coefficient count",
                            Loc::Le(q + 20, 2),
                            Kind::Count,
                        ));
                        f.push(
                            field(
                                "fmt ADPCM first coefficient",
                                Loc::Le(q + 22, 2),
                                Kind::Code,
                            )
                            .with(&[0, 0x7FFF, 0x8000, 0xFFFF]),
                        );
                    }
                }
                b"ds64" => {
                    f.push(field("ds64 RIFF size", Loc::Le(q, 8), Kind::Size).room(len - 8));
                    f.push(field("ds64 data size", Loc::Le(q + 8, 8), Kind::Size).room(len));
                    f.push(field("ds64 sample count", Loc::Le(q + 16, 8), Kind::Count));
                    f.push(field("ds64 table length", Loc::Le(q + 24, 4), Kind::Count));
                }
                b"fact" => f.push(field("fact sample count", Loc::Le(q, 4), Kind::Count)),
                b"bext" if size >= 422 => {
                    f.push(
                        field("bext version", Loc::Le(q + 346, 2), Kind::Code)
                            .with(&[0, 1, 2, 3, 0xFFFF]),
                    );
                    f.push(field(
                        "bext time reference",
                        Loc::Le(q + 338, 8),
                        Kind::Time,
                    ));
                    for (k, what) in ["loudness value", "loudness range", "max true peak"]
                        .iter()
                        .enumerate()
                    {
                        f.push(
                            field(
                                format!("bext {what}"),
                                Loc::Le(q + 412 + 2 * k, 2),
                                Kind::Code,
                            )
                            .with(&[0, 0x7FFF, 0x8000, 0xFFFF]),
                        );
                    }
                }
                b"LIST" if d.get(q..q + 4) == Some(&b"INFO"[..]) => {
                    let end = (q + size).min(len);
                    let mut s = q + 4;
                    while s + 8 <= end && f.len() < 400 {
                        let sub = String::from_utf8_lossy(&d[s..s + 4]).to_string();
                        let n = le(d, s + 4, 4) as usize;
                        f.push(
                            field(
                                format!("LIST/INFO/{sub} size"),
                                Loc::Le(s + 4, 4),
                                Kind::Size,
                            )
                            .room(end.saturating_sub(s + 8)),
                        );
                        s = s.saturating_add(8 + n + (n & 1));
                    }
                }
                _ => {}
            }
        }
        Parsed {
            fields: f,
            marks: Vec::new(),
        }
        .within(len)
    }

    /// `d` with the chunk at `p` (header included, `old` bytes long) replaced by `chunk`, the
    /// RIFF (or ds64) size following.
    fn wav_replace_chunk(d: &[u8], p: usize, old: usize, chunk: &[u8]) -> Vec<u8> {
        let delta = chunk.len() as i64 - old as i64;
        let mut out = d.to_vec();
        let riff = le(d, 4, 4);
        if riff == 0xFFFF_FFFF {
            if let Some((q, _, _)) = wav_chunks(d).into_iter().find(|c| &c.1 == b"ds64") {
                Loc::Le(q + 8, 8).write(&mut out, (le(d, q + 8, 8) as i64 + delta) as u64);
            }
        } else {
            Loc::Le(4, 4).write(&mut out, (riff as i64 + delta) as u64);
        }
        out.splice(p..p + old, chunk.iter().copied());
        out
    }

    /// A 16-bit PCM `fmt ` rewritten as IMA ADPCM (`ms == false`) or Microsoft ADPCM, with a
    /// coherent block size: the PCM data is then decoded as ADPCM blocks.
    fn wav_to_adpcm(ms: bool, d: &[u8]) -> Option<Vec<u8>> {
        let (p, _, size) = wav_chunks(d).into_iter().find(|c| &c.1 == b"fmt ")?;
        let q = p + 8;
        if size < 16 || le(d, q, 2) != 1 || le(d, q + 14, 2) != 16 {
            return None;
        }
        let ch = le(d, q + 2, 2).clamp(1, 8);
        let rate = le(d, q + 4, 4);
        let align = 256 * ch;
        let per_block = if ms {
            (align - 7 * ch) * 2 / ch + 2
        } else {
            (align - 4 * ch) * 2 / ch + 1
        };
        let mut fmt = Vec::new();
        let push = |v: &mut Vec<u8>, x: u64, n: usize| v.extend_from_slice(&x.to_le_bytes()[..n]);
        push(&mut fmt, if ms { 2 } else { 0x11 }, 2);
        push(&mut fmt, ch, 2);
        push(&mut fmt, rate, 4);
        push(&mut fmt, rate * align / per_block, 4);
        push(&mut fmt, align, 2);
        push(&mut fmt, 4, 2);
        push(&mut fmt, if ms { 32 } else { 2 }, 2);
        push(&mut fmt, per_block, 2);
        if ms {
            push(&mut fmt, 7, 2);
            for c in [
                256i16, 0, 512, -256, 0, 0, 192, 64, 240, 0, 460, -208, 392, -232,
            ] {
                fmt.extend_from_slice(&c.to_le_bytes());
            }
        }
        let mut chunk = b"fmt ".to_vec();
        chunk.extend_from_slice(&(fmt.len() as u32).to_le_bytes());
        chunk.extend_from_slice(&fmt);
        Some(wav_replace_chunk(d, p, 8 + size as usize, &chunk))
    }

    fn wav_ima(_: &mut Rng, d: &[u8]) -> Option<Vec<u8>> {
        wav_to_adpcm(false, d)
    }

    fn wav_ms(_: &mut Rng, d: &[u8]) -> Option<Vec<u8>> {
        wav_to_adpcm(true, d)
    }

    // ---- AIFF / AIFF-C --------------------------------------------------------------------

    fn aiff_fields(d: &[u8]) -> Parsed {
        let len = d.len();
        let aifc = d.get(8..12) == Some(&b"AIFC"[..]);
        let types: Vec<u64> = [
            b"NONE", b"none", b"sowt", b"twos", b"raw ", b"in24", b"in32", b"fl32", b"FL32",
            b"fl64", b"FL64", b"alaw", b"ulaw", b"ALAW", b"ULAW", b"ima4", b"MAC3", b"Qclp",
        ]
        .iter()
        .map(|t| fourcc(t))
        .chain([0, 0xFFFF_FFFF])
        .collect();
        let mut f = vec![
            field("FORM size", Loc::Be(4, 4), Kind::Size).room(len.saturating_sub(8)),
            field("FORM type", Loc::Be(8, 4), Kind::Code).with(&[
                fourcc(b"AIFF"),
                fourcc(b"AIFC"),
                fourcc(b"WAVE"),
                0,
            ]),
        ];
        let mut p = 12usize;
        while p + 8 <= len && f.len() < 200 {
            let id = String::from_utf8_lossy(&d[p..p + 4]).to_string();
            let size = be(d, p + 4, 4) as usize;
            let q = p + 8;
            f.push(field(format!("{id} chunk size"), Loc::Be(p + 4, 4), Kind::Size).room(len - q));
            match id.as_str() {
                "COMM" => {
                    f.push(field("COMM channels", Loc::Be(q, 2), Kind::Channels));
                    f.push(field("COMM frames", Loc::Be(q + 2, 4), Kind::Count));
                    f.push(field("COMM sample size", Loc::Be(q + 6, 2), Kind::Bits));
                    f.push(field("COMM sample rate", Loc::Ext80(q + 8), Kind::Rate));
                    if aifc && size >= 22 {
                        f.push(
                            field("COMM compression type", Loc::Be(q + 18, 4), Kind::Code)
                                .with(&types),
                        );
                    }
                    if aifc && size >= 23 {
                        f.push(
                            field(
                                "COMM compression name length",
                                Loc::Be(q + 22, 1),
                                Kind::Size,
                            )
                            .room(size - 23),
                        );
                    }
                }
                "SSND" => {
                    f.push(
                        field("SSND offset", Loc::Be(q, 4), Kind::Size)
                            .room(size.saturating_sub(8)),
                    );
                    f.push(field("SSND block size", Loc::Be(q + 4, 4), Kind::Count));
                }
                "COMT" => {
                    f.push(field("COMT comment count", Loc::Be(q, 2), Kind::Count));
                    f.push(field("COMT first timestamp", Loc::Be(q + 2, 4), Kind::Time));
                    f.push(
                        field("COMT first marker", Loc::Be(q + 6, 2), Kind::Code)
                            .with(&[0, 1, 0xFFFF]),
                    );
                    f.push(
                        field("COMT first text length", Loc::Be(q + 8, 2), Kind::Size)
                            .room(size.saturating_sub(10)),
                    );
                }
                "FVER" => f.push(field("FVER timestamp", Loc::Be(q, 4), Kind::Code).with(&[
                    0xA280_5140,
                    0,
                    0xFFFF_FFFF,
                ])),
                _ => {}
            }
            p = q + size + (size & 1);
        }
        Parsed {
            fields: f,
            marks: Vec::new(),
        }
        .within(len)
    }

    // ---- FLAC -----------------------------------------------------------------------------

    /// The frames from `start` on, found by their sync code and CRC-16: (start, end).
    fn flac_frames(d: &[u8], mut start: usize) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut crc = 0u16;
        let mut k = start;
        while k + 4 <= d.len() {
            let sync = d[k + 2] == 0xFF && d[k + 3] & 0xFE == 0xF8;
            if k >= start + 6 && sync && be(d, k, 2) == u64::from(crc) {
                out.push((start, k + 2));
                start = k + 2;
                crc = 0;
                k = start;
                continue;
            }
            crc = crc16_flac(crc, d[k]);
            k += 1;
        }
        if d.len() >= start + 6 {
            let crc = d[start..d.len() - 2]
                .iter()
                .fold(0u16, |c, &b| crc16_flac(c, b));
            if be(d, d.len() - 2, 2) == u64::from(crc) {
                out.push((start, d.len()));
            }
        }
        out
    }

    fn flac_fields(d: &[u8]) -> Parsed {
        let len = d.len();
        let mut f = Vec::new();
        let mut marks = Vec::new();
        if !d.starts_with(b"fLaC") {
            return Parsed::default();
        }
        let mut p = 4usize;
        for _ in 0..64 {
            if p + 4 > len {
                break;
            }
            let ty = d[p] & 0x7F;
            let last = d[p] & 0x80 != 0;
            let blen = be(d, p + 1, 3) as usize;
            let b = match ty {
                0 => "STREAMINFO",
                1 => "PADDING",
                2 => "APPLICATION",
                3 => "SEEKTABLE",
                4 => "VORBIS_COMMENT",
                5 => "CUESHEET",
                6 => "PICTURE",
                _ => "metadata",
            };
            f.push(field(
                format!("{b} last-block flag"),
                Loc::Bits(p, 0, 1),
                Kind::Code,
            ));
            f.push(
                field(format!("{b} block type"), Loc::Bits(p, 1, 7), Kind::Code)
                    .with(&[0, 1, 2, 3, 4, 5, 6, 7, 126, 127]),
            );
            f.push(
                field(format!("{b} block length"), Loc::Be(p + 1, 3), Kind::Size)
                    .room(len - p - 4)
                    .with(&[34, 18]),
            );
            let q = p + 4;
            match ty {
                0 => {
                    let sizes = [15, 16, 4_096, 4_608, 16_384, 32_768, 65_535];
                    f.push(
                        field("STREAMINFO min block size", Loc::Be(q, 2), Kind::Count).with(&sizes),
                    );
                    f.push(
                        field("STREAMINFO max block size", Loc::Be(q + 2, 2), Kind::Count)
                            .with(&sizes),
                    );
                    f.push(field(
                        "STREAMINFO min frame size",
                        Loc::Be(q + 4, 3),
                        Kind::Size,
                    ));
                    f.push(field(
                        "STREAMINFO max frame size",
                        Loc::Be(q + 7, 3),
                        Kind::Size,
                    ));
                    f.push(field(
                        "STREAMINFO sample rate",
                        Loc::Bits(q + 10, 0, 20),
                        Kind::Rate,
                    ));
                    f.push(
                        field(
                            "STREAMINFO channels",
                            Loc::Bits(q + 12, 4, 3),
                            Kind::Channels,
                        )
                        .biased(1),
                    );
                    f.push(
                        field(
                            "STREAMINFO bits per sample",
                            Loc::Bits(q + 12, 7, 5),
                            Kind::Bits,
                        )
                        .biased(1),
                    );
                    f.push(field(
                        "STREAMINFO total samples",
                        Loc::Bits(q + 13, 4, 36),
                        Kind::Count,
                    ));
                    f.push(field(
                        "STREAMINFO MD5 (first 8 bytes)",
                        Loc::Be(q + 18, 8),
                        Kind::Code,
                    ));
                }
                3 => {
                    let n = blen / 18;
                    for k in [0, n.saturating_sub(1)]
                        .into_iter()
                        .collect::<BTreeSet<_>>()
                    {
                        let s = q + 18 * k;
                        f.push(field(
                            format!("SEEKTABLE point {k} sample"),
                            Loc::Be(s, 8),
                            Kind::Count,
                        ));
                        f.push(field(
                            format!("SEEKTABLE point {k} offset"),
                            Loc::Be(s + 8, 8),
                            Kind::Size,
                        ));
                        f.push(field(
                            format!("SEEKTABLE point {k} samples"),
                            Loc::Be(s + 16, 2),
                            Kind::Count,
                        ));
                    }
                }
                4 => {
                    let v = le(d, q, 4) as usize;
                    f.push(
                        field("VORBIS_COMMENT vendor length", Loc::Le(q, 4), Kind::Size)
                            .room(blen.saturating_sub(4)),
                    );
                    f.push(field(
                        "VORBIS_COMMENT comment count",
                        Loc::Le(q + 4 + v, 4),
                        Kind::Count,
                    ));
                    f.push(field(
                        "VORBIS_COMMENT first comment length",
                        Loc::Le(q + 8 + v, 4),
                        Kind::Size,
                    ));
                }
                6 => {
                    f.push(field("PICTURE type", Loc::Be(q, 4), Kind::Code).with(&[
                        0,
                        3,
                        20,
                        21,
                        0xFFFF_FFFF,
                    ]));
                    f.push(field("PICTURE MIME length", Loc::Be(q + 4, 4), Kind::Size));
                    let m = be(d, q + 4, 4) as usize;
                    f.push(field(
                        "PICTURE description length",
                        Loc::Be(q + 8 + m, 4),
                        Kind::Size,
                    ));
                    let s = q + 12 + m + be(d, q + 8 + m, 4) as usize;
                    for (k, what) in ["width", "height", "depth", "colours"].iter().enumerate() {
                        f.push(field(
                            format!("PICTURE {what}"),
                            Loc::Be(s + 4 * k, 4),
                            Kind::Count,
                        ));
                    }
                    f.push(
                        field("PICTURE data length", Loc::Be(s + 16, 4), Kind::Size)
                            .room((q + blen).saturating_sub(s + 20)),
                    );
                }
                _ => {}
            }
            p = q + blen;
            if last {
                break;
            }
        }
        for (start, end) in flac_frames(d, p) {
            marks.push(Mark {
                what: "frame",
                start,
                end,
            });
        }
        Parsed { fields: f, marks }.within(len)
    }

    /// A FLAC frame header's fields.
    #[derive(Clone, Debug)]
    struct FrameHeader {
        reserved: u8,
        variable: u8,
        block_size: u8,
        rate: u8,
        channels: u8,
        sample_size: u8,
        reserved2: u8,
        number: u64,
        block_extra: u64,
        rate_extra: u64,
    }

    impl FrameHeader {
        /// The header at the start of `b` and its length (the CRC-8 included).
        fn parse(b: &[u8]) -> Option<(FrameHeader, usize)> {
            if b.len() < 6 || b[0] != 0xFF || b[1] & 0xFC != 0xF8 {
                return None;
            }
            let n = match b[4] {
                x if x < 0x80 => 1,
                0xFF => return None,
                x => x.leading_ones() as usize,
            };
            if n == 1 && b[4] >= 0x80 {
                return None;
            }
            let mut number = u64::from(if n == 1 { b[4] } else { b[4] & (0x7F >> n) });
            for k in 1..n {
                number = number << 6 | u64::from(*b.get(4 + k)? & 0x3F);
            }
            let mut p = 4 + n;
            let mut h = FrameHeader {
                reserved: b[1] >> 1 & 1,
                variable: b[1] & 1,
                block_size: b[2] >> 4,
                rate: b[2] & 0xF,
                channels: b[3] >> 4,
                sample_size: b[3] >> 1 & 7,
                reserved2: b[3] & 1,
                number,
                block_extra: 0,
                rate_extra: 0,
            };
            let bs_len = match h.block_size {
                6 => 1,
                7 => 2,
                _ => 0,
            };
            h.block_extra = be(b, p, bs_len);
            p += bs_len;
            let sr_len = match h.rate {
                12 => 1,
                13 | 14 => 2,
                _ => 0,
            };
            h.rate_extra = be(b, p, sr_len);
            p += sr_len;
            (p < b.len()).then_some((h, p + 1))
        }

        fn bytes(&self) -> Vec<u8> {
            let mut b = vec![
                0xFF,
                0xF8 | (self.reserved & 1) << 1 | (self.variable & 1),
                self.block_size << 4 | (self.rate & 0xF),
                self.channels << 4 | (self.sample_size & 7) << 1 | (self.reserved2 & 1),
            ];
            let v = self.number;
            if v < 0x80 {
                b.push(v as u8);
            } else {
                // The "UTF-8" coding: n bytes hold 7 - n + 6 (n - 1) bits (36 in 7 bytes).
                let n = (2..=7u32)
                    .find(|&n| n == 7 || v < 1u64 << (7 - n + 6 * (n - 1)))
                    .unwrap();
                let first = (0xFF00u16 >> n) as u8 | ((v >> (6 * (n - 1))) as u8 & (0x7F >> n));
                b.push(first);
                for k in (0..n - 1).rev() {
                    b.push(0x80 | (v >> (6 * k)) as u8 & 0x3F);
                }
            }
            match self.block_size {
                6 => b.push(self.block_extra as u8),
                7 => b.extend_from_slice(&(self.block_extra as u16).to_be_bytes()),
                _ => {}
            }
            match self.rate {
                12 => b.push(self.rate_extra as u8),
                13 | 14 => b.extend_from_slice(&(self.rate_extra as u16).to_be_bytes()),
                _ => {}
            }
            b.push(crc8_flac(&b));
            b
        }
    }

    /// One frame's header rebuilt with one or two of its fields changed, the CRC-8 and the
    /// frame's CRC-16 recomputed.
    fn flac_frame_header(rng: &mut Rng, d: &[u8], parsed: &Parsed) -> Option<(Vec<u8>, String)> {
        let frames: Vec<&Mark> = parsed.marks.iter().filter(|m| m.what == "frame").collect();
        if frames.is_empty() {
            return None;
        }
        let k = if rng.next_u64().is_multiple_of(2) {
            0
        } else {
            rng.next_u64() as usize % frames.len()
        };
        let m = frames[k];
        let (mut h, hlen) = FrameHeader::parse(d.get(m.start..m.end)?)?;
        if hlen + 2 > m.end - m.start {
            return None;
        }
        let pick = |rng: &mut Rng, l: &[u64]| l[rng.next_u64() as usize % l.len()];
        let mut what = Vec::new();
        for _ in 0..1 + rng.next_u64() % 2 {
            let r = rng.next_u64() % 9;
            match r {
                0 => {
                    h.block_size = (rng.next_u64() % 16) as u8;
                    h.block_extra = match h.block_size {
                        6 => pick(rng, &[0, 1, 15, 16, 127, 255]),
                        7 => pick(rng, &[0, 1, 15, 16, 4_095, 4_096, 32_767, 65_534, 65_535]),
                        _ => 0,
                    };
                    what.push(format!(
                        "block size code {} ({})",
                        h.block_size, h.block_extra
                    ));
                }
                1 => {
                    h.rate = (rng.next_u64() % 16) as u8;
                    h.rate_extra = match h.rate {
                        12 => pick(rng, &[0, 1, 7, 8, 44, 255]),
                        13 => pick(rng, &[0, 1, 7_999, 8_000, 44_100, 65_535]),
                        14 => pick(rng, &[0, 1, 799, 800, 4_410, 38_400, 38_401, 65_535]),
                        _ => 0,
                    };
                    what.push(format!("rate code {} ({})", h.rate, h.rate_extra));
                }
                2 => {
                    h.channels = (rng.next_u64() % 16) as u8;
                    what.push(format!("channel assignment {}", h.channels));
                }
                3 => {
                    h.sample_size = (rng.next_u64() % 8) as u8;
                    what.push(format!("sample size code {}", h.sample_size));
                }
                4 => {
                    h.variable ^= 1;
                    what.push(format!("blocking strategy {}", h.variable));
                }
                5 => {
                    h.number = pick(
                        rng,
                        &[0, 1, 2, 21, 22, 0x7FFF_FFFF, 0x8000_0000, (1 << 36) - 1],
                    );
                    what.push(format!("coded number {}", h.number));
                }
                6 => {
                    h.number = rng.next_u64() & ((1 << 36) - 1);
                    what.push(format!("coded number {}", h.number));
                }
                7 => {
                    h.reserved ^= 1;
                    what.push("reserved bit 1".into());
                }
                _ => {
                    h.reserved2 ^= 1;
                    what.push("reserved bit 2".into());
                }
            }
        }
        let mut frame = h.bytes();
        frame.extend_from_slice(&d[m.start + hlen..m.end - 2]);
        let crc = frame.iter().fold(0u16, |c, &b| crc16_flac(c, b));
        frame.extend_from_slice(&crc.to_be_bytes());
        let mut out = d[..m.start].to_vec();
        out.extend_from_slice(&frame);
        out.extend_from_slice(&d[m.end..]);
        Some((out, format!("frame {k} header: {}", what.join(", "))))
    }

    // ---- MP3 ------------------------------------------------------------------------------

    /// The length of the MPEG-1/2/2.5 Layer III frame whose header starts `h`.
    fn mpa_len(h: &[u8]) -> Option<usize> {
        if h.len() < 4 || h[0] != 0xFF || h[1] & 0xE0 != 0xE0 {
            return None;
        }
        let (ver, layer) = (h[1] >> 3 & 3, h[1] >> 1 & 3);
        let (bri, sri, pad) = (
            (h[2] >> 4) as usize,
            (h[2] >> 2 & 3) as usize,
            (h[2] >> 1 & 1) as usize,
        );
        if ver == 1 || layer != 1 || bri == 0 || bri == 15 || sri == 3 {
            return None;
        }
        const BR1: [usize; 15] = [
            0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
        ];
        const BR2: [usize; 15] = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];
        const SR: [usize; 3] = [44_100, 48_000, 32_000];
        let (br, sr, k) = match ver {
            3 => (BR1[bri], SR[sri], 144),
            2 => (BR2[bri], SR[sri] / 2, 72),
            _ => (BR2[bri], SR[sri] / 4, 72),
        };
        Some(k * br * 1000 / sr + pad)
    }

    fn mp3_fields(d: &[u8]) -> Parsed {
        let len = d.len();
        let mut f = Vec::new();
        let mut marks = Vec::new();
        let mut audio = 0usize;
        if d.starts_with(b"ID3") && len >= 10 {
            let major = d[3];
            f.push(
                field("ID3v2 major version", Loc::Be(3, 1), Kind::Code).with(&[2, 3, 4, 5, 0xFF]),
            );
            f.push(field("ID3v2 revision", Loc::Be(4, 1), Kind::Code).with(&[0, 1, 0xFF]));
            f.push(
                field("ID3v2 flags", Loc::Be(5, 1), Kind::Code)
                    .with(&[0, 0x80, 0x40, 0x20, 0x10, 0xC0, 0xF0, 0xFF]),
            );
            f.push(field("ID3v2 size", Loc::Syncsafe(6), Kind::Size).room(len - 10));
            f.push(
                field("ID3v2 size (raw bytes)", Loc::Be(6, 4), Kind::Code).with(&[
                    0x7F7F_7F7F,
                    0xFFFF_FFFF,
                    0x8080_8080,
                    0x0000_0080,
                ]),
            );
            let size = Loc::Syncsafe(6).read(d) as usize;
            audio = 10 + size + if d[5] & 0x10 != 0 { 10 } else { 0 };
            let mut p = 10usize;
            while p + 10 <= audio.min(len) && f.len() < 200 {
                if d[p] == 0 {
                    break;
                }
                let id = String::from_utf8_lossy(&d[p..p + 4]).to_string();
                let (loc, n) = if major >= 4 {
                    (Loc::Syncsafe(p + 4), Loc::Syncsafe(p + 4).read(d))
                } else {
                    (Loc::Be(p + 4, 4), be(d, p + 4, 4))
                };
                f.push(field(format!("ID3 {id} frame size"), loc, Kind::Size).room(audio - p - 10));
                f.push(
                    field(
                        format!("ID3 {id} frame flags"),
                        Loc::Be(p + 8, 2),
                        Kind::Code,
                    )
                    .with(&[0, 0x80, 0x40, 0x20, 0xE0, 0x8000, 0xFFFF]),
                );
                if id.starts_with('T') || id == "APIC" || id == "COMM" {
                    f.push(
                        field(
                            format!("ID3 {id} text encoding"),
                            Loc::Be(p + 10, 1),
                            Kind::Code,
                        )
                        .with(&[0, 1, 2, 3, 4, 0xFF]),
                    );
                }
                p += 10 + n as usize;
            }
        }
        let mut frames = Vec::new();
        let mut p = audio;
        while frames.len() < 100_000 {
            match d.get(p..).and_then(mpa_len) {
                Some(l) => {
                    frames.push(p);
                    p += l;
                }
                None => break,
            }
        }
        let chosen: BTreeSet<usize> = [0, 1, frames.len() / 2, frames.len().saturating_sub(1)]
            .into_iter()
            .filter(|&k| k < frames.len())
            .collect();
        for k in chosen {
            let h = frames[k];
            let n = if k == 0 {
                "first frame".to_string()
            } else {
                format!("frame {k}")
            };
            let bits =
                |name: &str, bit, w| field(format!("{n} {name}"), Loc::Bits(h, bit, w), Kind::Code);
            f.push(bits("sync", 0, 11).with(&[0x7FF, 0x7FE, 0]));
            f.push(bits("version", 11, 2));
            f.push(bits("layer", 13, 2));
            f.push(bits("protection bit", 15, 1));
            f.push(bits("bitrate index", 16, 4));
            f.push(bits("sample rate index", 20, 2));
            f.push(bits("padding bit", 22, 1));
            f.push(bits("channel mode", 24, 2));
            f.push(bits("mode extension", 26, 2));
            f.push(bits("emphasis", 30, 2));
        }
        if let Some(&h) = frames.first() {
            let mpeg1 = d[h + 1] >> 3 & 3 == 3;
            let mono = d[h + 3] >> 6 == 3;
            let x = h
                + 4
                + match (mpeg1, mono) {
                    (true, false) => 32,
                    (true, true) | (false, false) => 17,
                    (false, true) => 9,
                };
            if matches!(d.get(x..x + 4), Some(b"Xing") | Some(b"Info")) {
                f.push(field("Xing tag id", Loc::Be(x, 4), Kind::Code).with(&[
                    fourcc(b"Xing"),
                    fourcc(b"Info"),
                    fourcc(b"VBRI"),
                    0,
                ]));
                f.push(field("Xing flags", Loc::Be(x + 4, 4), Kind::Code).with(&[
                    0,
                    1,
                    2,
                    3,
                    5,
                    7,
                    0xF,
                    0xFFFF_FFFF,
                ]));
                let flags = be(d, x + 4, 4);
                let mut y = x + 8;
                if flags & 1 != 0 {
                    f.push(field("Xing frame count", Loc::Be(y, 4), Kind::Count));
                    y += 4;
                }
                if flags & 2 != 0 {
                    f.push(field("Xing byte count", Loc::Be(y, 4), Kind::Size).room(len - h));
                    y += 4;
                }
                if flags & 4 != 0 {
                    f.push(field("Xing TOC first entry", Loc::Be(y, 1), Kind::Code));
                    f.push(field("Xing TOC last entry", Loc::Be(y + 99, 1), Kind::Code));
                    y += 100;
                }
                if flags & 8 != 0 {
                    f.push(field("Xing quality", Loc::Be(y, 4), Kind::Code));
                    y += 4;
                }
                let l = y;
                if d.get(l..l + 4) == Some(&b"LAME"[..]) {
                    f.push(field("LAME encoder id", Loc::Be(l, 4), Kind::Code).with(&[
                        fourcc(b"LAME"),
                        fourcc(b"Lavf"),
                        fourcc(b"Lavc"),
                        0,
                    ]));
                    f.push(field(
                        "LAME revision and VBR method",
                        Loc::Be(l + 9, 1),
                        Kind::Code,
                    ));
                    f.push(field("LAME peak", Loc::Be(l + 11, 4), Kind::Code).with(&[
                        0,
                        1 << 23,
                        0x7FFF_FFFF,
                        0xFFFF_FFFF,
                    ]));
                    f.push(field("LAME radio gain", Loc::Be(l + 15, 2), Kind::Code));
                    f.push(field(
                        "LAME audiophile gain",
                        Loc::Be(l + 17, 2),
                        Kind::Code,
                    ));
                    f.push(field(
                        "LAME encoder delay",
                        Loc::Bits(l + 21, 0, 12),
                        Kind::Time,
                    ));
                    f.push(field("LAME padding", Loc::Bits(l + 21, 12, 12), Kind::Time));
                    f.push(
                        field("LAME music length", Loc::Be(l + 28, 4), Kind::Size).room(len - h),
                    );
                    f.push(
                        field("LAME tag CRC", Loc::Be(l + 34, 2), Kind::Code)
                            .with(&[0])
                            .checksum(),
                    );
                    marks.push(Mark {
                        what: "lame",
                        start: h,
                        end: l + 34,
                    });
                }
            }
        }
        Parsed { fields: f, marks }.within(len)
    }

    /// Recomputes the LAME tag's CRC (unless the mutation set it).
    fn mp3_repair(d: &mut [u8], parsed: &Parsed, written: &[Field]) {
        if written.iter().any(|f| f.raw) {
            return;
        }
        for m in parsed.marks.iter().filter(|m| m.what == "lame") {
            if m.end + 2 <= d.len() {
                let crc = crc16_lame(&d[m.start..m.end]);
                d[m.end..m.end + 2].copy_from_slice(&crc.to_be_bytes());
            }
        }
    }

    // ---- Ogg Vorbis -----------------------------------------------------------------------

    fn ogg_fields(d: &[u8]) -> Parsed {
        let len = d.len();
        let mut f = Vec::new();
        // Pages, and the first three packets' starts with the end of the page each starts in.
        let mut packets: Vec<(usize, usize)> = Vec::new();
        let mut in_packet = false;
        let mut p = 0usize;
        let mut k = 0;
        while p + 27 <= len && &d[p..p + 4] == b"OggS" && k < 10_000 {
            let n = d[p + 26] as usize;
            let body = p + 27 + n;
            if body > len {
                break;
            }
            let lacing = &d[p + 27..body];
            let end = (body + lacing.iter().map(|&x| x as usize).sum::<usize>()).min(len);
            let pg = format!("page {k}");
            f.push(
                field(format!("{pg} version"), Loc::Be(p + 4, 1), Kind::Code).with(&[0, 1, 0xFF]),
            );
            f.push(
                field(format!("{pg} header type"), Loc::Be(p + 5, 1), Kind::Code)
                    .with(&[0, 1, 2, 3, 4, 5, 6, 7, 0xFF]),
            );
            f.push(field(
                format!("{pg} granule position"),
                Loc::Le(p + 6, 8),
                Kind::Time,
            ));
            f.push(
                field(
                    format!("{pg} serial number"),
                    Loc::Le(p + 14, 4),
                    Kind::Code,
                )
                .with(&[0, 1_234_567, 1_234_568, 0xFFFF_FFFF]),
            );
            f.push(field(
                format!("{pg} sequence number"),
                Loc::Le(p + 18, 4),
                Kind::Count,
            ));
            f.push(field(format!("{pg} CRC"), Loc::Le(p + 22, 4), Kind::Code).checksum());
            f.push(field(
                format!("{pg} segment count"),
                Loc::Be(p + 26, 1),
                Kind::Count,
            ));
            if n > 0 {
                f.push(field(
                    format!("{pg} first lacing value"),
                    Loc::Be(p + 27, 1),
                    Kind::Size,
                ));
                f.push(field(
                    format!("{pg} last lacing value"),
                    Loc::Be(body - 1, 1),
                    Kind::Size,
                ));
            }
            let mut at = body;
            for &l in lacing {
                if !in_packet && packets.len() < 3 {
                    packets.push((at, end));
                }
                in_packet = l == 255;
                at += l as usize;
            }
            p = end;
            k += 1;
        }
        let fits = |(at, end): (usize, usize), n: usize| at + n <= end;
        if let Some(&(v, end)) = packets.first()
            && fits((v, end), 30)
        {
            f.push(
                field(
                    "Vorbis identification packet type",
                    Loc::Be(v, 1),
                    Kind::Code,
                )
                .with(&[1, 3, 5, 0]),
            );
            f.push(
                field("Vorbis version", Loc::Le(v + 7, 4), Kind::Code).with(&[0, 1, 0xFFFF_FFFF]),
            );
            f.push(field("Vorbis channels", Loc::Be(v + 11, 1), Kind::Channels));
            f.push(field("Vorbis sample rate", Loc::Le(v + 12, 4), Kind::Rate));
            for (i, what) in ["maximum", "nominal", "minimum"].iter().enumerate() {
                f.push(
                    field(
                        format!("Vorbis {what} bitrate"),
                        Loc::Le(v + 16 + 4 * i, 4),
                        Kind::Code,
                    )
                    .with(&[0, 0xFFFF_FFFF, 0x7FFF_FFFF, 0x8000_0000, 160_000]),
                );
            }
            f.push(
                field(
                    "Vorbis blocksize 1 exponent",
                    Loc::Bits(v + 28, 0, 4),
                    Kind::Code,
                )
                .with(&[0, 5, 6, 8, 11, 13, 14, 15]),
            );
            f.push(
                field(
                    "Vorbis blocksize 0 exponent",
                    Loc::Bits(v + 28, 4, 4),
                    Kind::Code,
                )
                .with(&[0, 5, 6, 8, 11, 13, 14, 15]),
            );
            f.push(field(
                "Vorbis identification framing bit",
                Loc::Bits(v + 29, 7, 1),
                Kind::Code,
            ));
        }
        if let Some(&(c, end)) = packets.get(1)
            && fits((c, end), 11)
        {
            let v = le(d, c + 7, 4) as usize;
            f.push(
                field("Vorbis comment packet type", Loc::Be(c, 1), Kind::Code).with(&[1, 3, 5, 0]),
            );
            f.push(field("Vorbis vendor length", Loc::Le(c + 7, 4), Kind::Size).room(end - c - 11));
            if fits((c, end), 19 + v) {
                f.push(field(
                    "Vorbis comment count",
                    Loc::Le(c + 11 + v, 4),
                    Kind::Count,
                ));
                f.push(field(
                    "Vorbis first comment length",
                    Loc::Le(c + 15 + v, 4),
                    Kind::Size,
                ));
            }
        }
        if let Some(&(s, end)) = packets.get(2)
            && fits((s, end), 16)
        {
            f.push(
                field("Vorbis setup packet type", Loc::Be(s, 1), Kind::Code).with(&[1, 3, 5, 0]),
            );
            f.push(field(
                "Vorbis codebook count - 1",
                Loc::Be(s + 7, 1),
                Kind::Count,
            ));
            f.push(
                field("Vorbis first codebook sync", Loc::Le(s + 8, 3), Kind::Code)
                    .with(&[0x56_4342]),
            );
            f.push(field(
                "Vorbis first codebook dimensions",
                Loc::Le(s + 11, 2),
                Kind::Count,
            ));
            f.push(field(
                "Vorbis first codebook entries",
                Loc::Le(s + 13, 3),
                Kind::Count,
            ));
        }
        Parsed {
            fields: f,
            marks: Vec::new(),
        }
        .within(len)
    }

    /// Recomputes the CRC of every page, as its header now declares it (except a page whose
    /// CRC the mutation set).
    fn ogg_repair(d: &mut [u8], _: &Parsed, written: &[Field]) {
        let keep: Vec<usize> = written
            .iter()
            .filter(|f| f.raw)
            .map(|f| f.loc.at())
            .collect();
        let mut p = 0usize;
        while p + 27 <= d.len() {
            if &d[p..p + 4] != b"OggS" {
                p += 1;
                continue;
            }
            let body = p + 27 + d[p + 26] as usize;
            if body > d.len() {
                break;
            }
            let end =
                (body + d[p + 27..body].iter().map(|&x| x as usize).sum::<usize>()).min(d.len());
            if !keep.contains(&(p + 22)) {
                let crc = crc32_ogg(
                    crc32_ogg(crc32_ogg(0, &d[p..p + 22]), &[0; 4]),
                    &d[p + 26..end],
                );
                d[p + 22..p + 26].copy_from_slice(&crc.to_le_bytes());
            }
            p = end.max(p + 1);
        }
    }

    // ---- MP4 ------------------------------------------------------------------------------

    /// One box: where it starts, its header length (8, or 16 with a 64-bit size), where it
    /// ends, its type and the indices of its ancestors in the walk.
    #[derive(Clone, Debug)]
    struct Mp4Box {
        pos: usize,
        header: usize,
        end: usize,
        kind: [u8; 4],
        parents: Vec<usize>,
    }

    fn mp4_walk(d: &[u8], start: usize, end: usize, parents: &[usize], out: &mut Vec<Mp4Box>) {
        let mut p = start;
        while p + 8 <= end && out.len() < 2_000 && parents.len() < 12 {
            let size32 = be(d, p, 4);
            let kind: [u8; 4] = d[p + 4..p + 8].try_into().unwrap();
            let (size, header) = match size32 {
                0 => ((end - p) as u64, 8),
                1 if p + 16 <= end => (be(d, p + 8, 8), 16),
                1 => return,
                s => (s, 8),
            };
            if size < header as u64 || size > (end - p) as u64 {
                return;
            }
            let bend = p + size as usize;
            let idx = out.len();
            out.push(Mp4Box {
                pos: p,
                header,
                end: bend,
                kind,
                parents: parents.to_vec(),
            });
            let body = p + header;
            let parent_kind = parents.last().map(|&i| out[i].kind);
            let children = match &kind {
                b"moov" | b"trak" | b"mdia" | b"minf" | b"stbl" | b"edts" | b"dinf" | b"udta"
                | b"ilst" | b"mvex" | b"sinf" | b"wave" => Some(body),
                b"meta" if d.get(body + 4..body + 8) == Some(&b"hdlr"[..]) => Some(body),
                b"meta" => Some(body + 4),
                b"stsd" | b"dref" => Some(body + 8),
                _ if parent_kind == Some(*b"stsd") => Some(body + 28),
                _ if parent_kind == Some(*b"ilst") => Some(body),
                _ => None,
            };
            if let Some(c) = children {
                let mut with = parents.to_vec();
                with.push(idx);
                mp4_walk(d, c, bend, &with, out);
            }
            p = bend;
        }
    }

    fn mp4_boxes(d: &[u8]) -> Vec<Mp4Box> {
        let mut out = Vec::new();
        mp4_walk(d, 0, d.len(), &[], &mut out);
        out
    }

    const MP4_TYPES: &[&[u8; 4]] = &[
        b"moov",
        b"trak",
        b"mdia",
        b"minf",
        b"stbl",
        b"stsd",
        b"stts",
        b"stsz",
        b"stz2",
        b"stsc",
        b"stco",
        b"co64",
        b"ctts",
        b"mdat",
        b"free",
        b"skip",
        b"udta",
        b"meta",
        b"ilst",
        b"edts",
        b"elst",
        b"mdhd",
        b"mvhd",
        b"tkhd",
        b"hdlr",
        b"mp4a",
        b"alac",
        b"esds",
        b"moof",
        b"mvex",
        b"wave",
        b"uuid",
        b"\0\0\0\0",
    ];

    fn esds_walk(d: &[u8], mut p: usize, end: usize, depth: usize, f: &mut Vec<Field>) {
        while p + 2 <= end && depth < 4 && f.len() < 400 {
            let tag = d[p];
            let n = format!("esds descriptor {tag:#04x}");
            f.push(
                field(format!("{n} tag"), Loc::Be(p, 1), Kind::Code).with(&[3, 4, 5, 6, 0, 0xFF]),
            );
            let mut len = 0usize;
            let mut k = 1;
            while p + k < end && k <= 4 {
                let b = d[p + k];
                len = len << 7 | (b & 0x7F) as usize;
                k += 1;
                if b & 0x80 == 0 {
                    break;
                }
            }
            f.push(
                field(
                    format!("{n} length"),
                    Loc::Bits(p + k - 1, 1, 7),
                    Kind::Size,
                )
                .room(end.saturating_sub(p + k)),
            );
            if k == 5 {
                f.push(
                    field(
                        format!("{n} length (4 bytes)"),
                        Loc::Be(p + 1, 4),
                        Kind::Code,
                    )
                    .with(&[
                        0x8080_8080,
                        0xFFFF_FFFF,
                        0x8080_8000,
                        0xFFFF_FF7F,
                    ]),
                );
            }
            let body = p + k;
            let bend = (body + len).min(end);
            match tag {
                3 => {
                    f.push(
                        field("esds ES flags", Loc::Be(body + 2, 1), Kind::Code)
                            .with(&[0, 0x80, 0x40, 0x20, 0xE0]),
                    );
                    let flags = d.get(body + 2).copied().unwrap_or(0);
                    let mut c = body + 3;
                    if flags & 0x80 != 0 {
                        c += 2;
                    }
                    if flags & 0x40 != 0 {
                        c += 1 + d.get(c).copied().unwrap_or(0) as usize;
                    }
                    if flags & 0x20 != 0 {
                        c += 2;
                    }
                    esds_walk(d, c, bend, depth + 1, f);
                }
                4 => {
                    f.push(
                        field("esds object type indication", Loc::Be(body, 1), Kind::Code).with(&[
                            0x40, 0x66, 0x67, 0x68, 0x69, 0x6B, 0x6C, 0xA5, 0xA6, 0xDD, 0xE1, 0,
                            0xFF,
                        ]),
                    );
                    f.push(
                        field("esds stream type", Loc::Be(body + 1, 1), Kind::Code)
                            .with(&[0x15, 0x14, 0x11, 0, 0xFF]),
                    );
                    f.push(field("esds buffer size", Loc::Be(body + 2, 3), Kind::Size));
                    f.push(field("esds max bitrate", Loc::Be(body + 5, 4), Kind::Count));
                    f.push(field(
                        "esds average bitrate",
                        Loc::Be(body + 9, 4),
                        Kind::Count,
                    ));
                    esds_walk(d, body + 13, bend, depth + 1, f);
                }
                5 => {
                    let asc = |name: &str, bit, w| {
                        field(
                            format!("AudioSpecificConfig {name}"),
                            Loc::Bits(body, bit, w),
                            Kind::Code,
                        )
                    };
                    f.push(asc("object type", 0, 5).with(&[0, 1, 2, 3, 4, 5, 6, 22, 23, 29, 31]));
                    f.push(asc("frequency index", 5, 4));
                    f.push(asc("channel configuration", 9, 4));
                    f.push(asc("frame length flag", 13, 1));
                    f.push(asc("depends on core coder", 14, 1));
                    f.push(asc("extension flag", 15, 1));
                }
                _ => {}
            }
            p = bend.max(p + 1);
        }
    }

    fn mp4_fields(d: &[u8]) -> Parsed {
        let len = d.len();
        let boxes = mp4_boxes(d);
        let types: Vec<u64> = MP4_TYPES.iter().map(|t| fourcc(t)).collect();
        let mut f = Vec::new();
        for b in &boxes {
            let path = b
                .parents
                .iter()
                .map(|&i| &boxes[i].kind)
                .chain([&b.kind])
                .map(|k| String::from_utf8_lossy(k).to_string())
                .collect::<Vec<_>>()
                .join("/");
            let parent_end = b.parents.last().map_or(len, |&i| boxes[i].end);
            let room = parent_end - b.pos;
            f.push(
                field(format!("{path} size"), Loc::Be(b.pos, 4), Kind::Size)
                    .room(room)
                    .with(&[1]),
            );
            if b.header == 16 {
                f.push(
                    field(
                        format!("{path} 64-bit size"),
                        Loc::Be(b.pos + 8, 8),
                        Kind::Size,
                    )
                    .room(room),
                );
            }
            f.push(field(format!("{path} type"), Loc::Be(b.pos + 4, 4), Kind::Code).with(&types));
            let q = b.pos + b.header;
            let v1 = d.get(q) == Some(&1);
            let parent_kind = b.parents.last().map(|&i| boxes[i].kind);
            let full = |f: &mut Vec<Field>| {
                f.push(
                    field(format!("{path} version"), Loc::Be(q, 1), Kind::Code)
                        .with(&[0, 1, 2, 0xFF]),
                )
            };
            match &b.kind {
                b"mvhd" | b"mdhd" => {
                    full(&mut f);
                    let (ts, dur, w) = if v1 {
                        (q + 20, q + 24, 8)
                    } else {
                        (q + 12, q + 16, 4)
                    };
                    let k = if &b.kind == b"mdhd" {
                        Kind::Rate
                    } else {
                        Kind::Time
                    };
                    f.push(field(format!("{path} timescale"), Loc::Be(ts, 4), k));
                    f.push(field(
                        format!("{path} duration"),
                        Loc::Be(dur, w),
                        Kind::Time,
                    ));
                }
                b"tkhd" => {
                    full(&mut f);
                    let (dur, w) = if v1 { (q + 28, 8) } else { (q + 20, 4) };
                    f.push(field(
                        format!("{path} duration"),
                        Loc::Be(dur, w),
                        Kind::Time,
                    ));
                }
                b"hdlr" => f.push(
                    field(format!("{path} handler"), Loc::Be(q + 8, 4), Kind::Code).with(&[
                        fourcc(b"soun"),
                        fourcc(b"vide"),
                        fourcc(b"meta"),
                        fourcc(b"mdir"),
                        0,
                    ]),
                ),
                b"ftyp" => f.push(field("ftyp major brand", Loc::Be(q, 4), Kind::Code).with(&[
                    fourcc(b"M4A "),
                    fourcc(b"isom"),
                    fourcc(b"qt  "),
                    fourcc(b"mp42"),
                    fourcc(b"3gp5"),
                    0,
                ])),
                b"elst" => {
                    full(&mut f);
                    f.push(field(
                        format!("{path} entry count"),
                        Loc::Be(q + 4, 4),
                        Kind::Count,
                    ));
                    let w = if v1 { 8 } else { 4 };
                    f.push(field(
                        format!("{path} segment duration"),
                        Loc::Be(q + 8, w),
                        Kind::Time,
                    ));
                    f.push(
                        field(
                            format!("{path} media time"),
                            Loc::Be(q + 8 + w, w),
                            Kind::Time,
                        )
                        .with(&[0, 1_024, 2_112, u64::MAX, 0xFFFF_FFFF]),
                    );
                    f.push(
                        field(
                            format!("{path} media rate"),
                            Loc::Be(q + 8 + 2 * w, 4),
                            Kind::Code,
                        )
                        .with(&[0x0001_0000, 0, 0x0002_0000, 0xFFFF_0000]),
                    );
                }
                b"stsd" | b"dref" => f.push(field(
                    format!("{path} entry count"),
                    Loc::Be(q + 4, 4),
                    Kind::Count,
                )),
                _ if parent_kind == Some(*b"stsd") => {
                    f.push(
                        field(
                            format!("{path} sound version"),
                            Loc::Be(q + 8, 2),
                            Kind::Code,
                        )
                        .with(&[0, 1, 2, 0xFFFF]),
                    );
                    f.push(field(
                        format!("{path} channel count"),
                        Loc::Be(q + 16, 2),
                        Kind::Channels,
                    ));
                    f.push(field(
                        format!("{path} sample size"),
                        Loc::Be(q + 18, 2),
                        Kind::Bits,
                    ));
                    f.push(
                        field(
                            format!("{path} compression id"),
                            Loc::Be(q + 20, 2),
                            Kind::Code,
                        )
                        .with(&[0, 0xFFFE, 0xFFFF]),
                    );
                    f.push(field(
                        format!("{path} packet size"),
                        Loc::Be(q + 22, 2),
                        Kind::Size,
                    ));
                    f.push(
                        field(
                            format!("{path} sample rate"),
                            Loc::Be(q + 24, 4),
                            Kind::Rate,
                        )
                        .shifted(16),
                    );
                }
                b"alac" => {
                    // The magic cookie (ALACSpecificConfig) after version and flags.
                    let c = q + 4;
                    let cookie = |name: &str, at, n, k| {
                        field(format!("ALAC cookie {name}"), Loc::Be(c + at, n), k)
                    };
                    f.push(cookie("frame length", 0, 4, Kind::Count).with(&[
                        4_096,
                        4_097,
                        1 << 20,
                        (1 << 20) + 1,
                    ]));
                    f.push(cookie("compatible version", 4, 1, Kind::Code).with(&[0, 1, 0xFF]));
                    f.push(cookie("bit depth", 5, 1, Kind::Bits));
                    f.push(cookie("rice history mult (pb)", 6, 1, Kind::Code).with(&[0, 40, 0xFF]));
                    f.push(
                        cookie("rice initial history (mb)", 7, 1, Kind::Code).with(&[0, 10, 0xFF]),
                    );
                    f.push(
                        cookie("rice parameter limit (kb)", 8, 1, Kind::Code)
                            .with(&[0, 14, 31, 0xFF]),
                    );
                    f.push(cookie("channels", 9, 1, Kind::Channels));
                    f.push(cookie("max run", 10, 2, Kind::Count));
                    f.push(cookie("max frame bytes", 12, 4, Kind::Size));
                    f.push(cookie("average bitrate", 16, 4, Kind::Count));
                    f.push(cookie("sample rate", 20, 4, Kind::Rate));
                }
                b"esds" => esds_walk(d, q + 4, b.end, 0, &mut f),
                b"stts" | b"stsc" | b"stco" | b"co64" | b"ctts" => {
                    let (w, entry) = match &b.kind {
                        b"stsc" => (4, 12),
                        b"co64" => (8, 8),
                        b"stco" => (4, 4),
                        _ => (4, 8),
                    };
                    let n = be(d, q + 4, 4) as usize;
                    f.push(
                        field(
                            format!("{path} entry count"),
                            Loc::Be(q + 4, 4),
                            Kind::Count,
                        )
                        .with(&[n as u64 + 1, (n as u64).wrapping_sub(1)]),
                    );
                    for k in [0, n.saturating_sub(1)]
                        .into_iter()
                        .collect::<BTreeSet<_>>()
                    {
                        let e = q + 8 + k * entry;
                        let kind = if b.kind.starts_with(b"co") || &b.kind == b"stco" {
                            Kind::Size
                        } else {
                            Kind::Count
                        };
                        f.push(
                            field(format!("{path} entry {k} first word"), Loc::Be(e, w), kind)
                                .room(len),
                        );
                        if entry > w {
                            f.push(field(
                                format!("{path} entry {k} second word"),
                                Loc::Be(e + w, 4),
                                Kind::Count,
                            ));
                        }
                        if entry == 12 {
                            f.push(
                                field(
                                    format!("{path} entry {k} description index"),
                                    Loc::Be(e + 8, 4),
                                    Kind::Code,
                                )
                                .with(&[0, 1, 2, 0xFFFF_FFFF]),
                            );
                        }
                    }
                }
                b"stsz" => {
                    let n = be(d, q + 8, 4) as usize;
                    f.push(field(
                        format!("{path} sample size"),
                        Loc::Be(q + 4, 4),
                        Kind::Size,
                    ));
                    f.push(
                        field(
                            format!("{path} sample count"),
                            Loc::Be(q + 8, 4),
                            Kind::Count,
                        )
                        .with(&[n as u64 + 1, (n as u64).wrapping_sub(1)]),
                    );
                    for k in [0, n.saturating_sub(1)]
                        .into_iter()
                        .collect::<BTreeSet<_>>()
                    {
                        f.push(
                            field(
                                format!("{path} entry {k}"),
                                Loc::Be(q + 12 + 4 * k, 4),
                                Kind::Size,
                            )
                            .room(len),
                        );
                    }
                }
                _ => {}
            }
        }
        Parsed {
            fields: f,
            marks: Vec::new(),
        }
        .within(len)
    }

    /// `d` with box `i` replaced by `new` (whose chunk offsets the caller has already moved by
    /// the change in length): its ancestors' sizes and every other chunk offset follow.
    fn mp4_replace(d: &[u8], boxes: &[Mp4Box], i: usize, new: &[u8]) -> Vec<u8> {
        let b = &boxes[i];
        let delta = new.len() as i64 - (b.end - b.pos) as i64;
        let mut out = d.to_vec();
        for &a in &b.parents {
            let a = &boxes[a];
            let loc = if a.header == 16 {
                Loc::Be(a.pos + 8, 8)
            } else {
                Loc::Be(a.pos, 4)
            };
            let v = loc.read(d);
            if v != 0 {
                loc.write(&mut out, (v as i64 + delta) as u64);
            }
        }
        if mp4_moves_media(boxes, i) {
            for (k, c) in boxes.iter().enumerate() {
                let w = match &c.kind {
                    b"stco" => 4,
                    b"co64" => 8,
                    _ => continue,
                };
                if k == i {
                    continue;
                }
                let q = c.pos + c.header;
                let n = (be(d, q + 4, 4) as usize).min((c.end - q).saturating_sub(8) / w);
                for e in 0..n {
                    let loc = Loc::Be(q + 8 + e * w, w);
                    loc.write(&mut out, (loc.read(d) as i64 + delta) as u64);
                }
            }
        }
        out.splice(b.pos..b.end, new.iter().copied());
        out
    }

    /// Whether box `i` lies before the media data (so changing its length moves the data).
    fn mp4_moves_media(boxes: &[Mp4Box], i: usize) -> bool {
        boxes
            .iter()
            .find(|b| &b.kind == b"mdat")
            .is_some_and(|m| boxes[i].pos < m.pos)
    }

    /// One box's size turned into the 64-bit form (size 1 and a `largesize`), the file kept
    /// coherent.
    fn mp4_largesize(rng: &mut Rng, d: &[u8]) -> Option<Vec<u8>> {
        let boxes = mp4_boxes(d);
        let cands: Vec<usize> = (0..boxes.len())
            .filter(|&i| boxes[i].header == 8 && be(d, boxes[i].pos, 4) != 0)
            .collect();
        let i = *cands.get(rng.next_u64() as usize % cands.len().max(1))?;
        let b = &boxes[i];
        let mut new = vec![0, 0, 0, 1];
        new.extend_from_slice(&b.kind);
        new.extend_from_slice(&((b.end - b.pos + 8) as u64).to_be_bytes());
        new.extend_from_slice(&d[b.pos + 8..b.end]);
        if matches!(&b.kind, b"stco" | b"co64") && mp4_moves_media(&boxes, i) {
            let w = if &b.kind == b"stco" { 4 } else { 8 };
            let n = (be(&new, 20, 4) as usize).min((new.len() - 24) / w);
            for e in 0..n {
                let loc = Loc::Be(24 + e * w, w);
                let v = loc.read(&new);
                loc.write(&mut new, v + 8);
            }
        }
        Some(mp4_replace(d, &boxes, i, &new))
    }

    /// `stco` rewritten as `co64` with the same chunk offsets, the file kept coherent.
    fn mp4_co64(_: &mut Rng, d: &[u8]) -> Option<Vec<u8>> {
        let boxes = mp4_boxes(d);
        let i = boxes.iter().position(|b| &b.kind == b"stco")?;
        let b = &boxes[i];
        let q = b.pos + b.header;
        let n = (be(d, q + 4, 4) as usize).min((b.end - q).saturating_sub(8) / 4);
        let delta = if mp4_moves_media(&boxes, i) {
            4 * n as u64
        } else {
            0
        };
        let mut new = Vec::new();
        new.extend_from_slice(&((16 + 8 * n) as u32).to_be_bytes());
        new.extend_from_slice(b"co64");
        new.extend_from_slice(&d[q..q + 8]);
        for e in 0..n {
            new.extend_from_slice(&(be(d, q + 8 + 4 * e, 4) + delta).to_be_bytes());
        }
        Some(mp4_replace(d, &boxes, i, &new))
    }

    // ---- Targets --------------------------------------------------------------------------

    type Reshape = fn(&mut Rng, &[u8]) -> Option<Vec<u8>>;
    type Rebuild = fn(&mut Rng, &[u8], &Parsed) -> Option<(Vec<u8>, String)>;
    type Repair = fn(&mut [u8], &Parsed, &[Field]);

    /// One container's fuzzing target.
    struct Target {
        name: &'static str,
        fixtures: &'static [&'static str],
        parse: fn(&[u8]) -> Parsed,
        /// Coherent structural changes made before the fields are read.
        reshape: &'static [(&'static str, Reshape)],
        /// Rebuilt structures (which may change length), made after the field writes.
        rebuild: Option<Rebuild>,
        /// Checksums recomputed after the mutation.
        repair: Option<Repair>,
    }

    /// The outcome of one input.
    enum Outcome {
        Read,
        Typed(&'static str),
        Bad(String),
    }

    fn typed_ok(e: &InputError, path: &Path) -> Result<&'static str, String> {
        let msg = e.to_string();
        if matches!(e, InputError::ParserFailure { .. }) {
            return Err(format!("parser failure: {msg}"));
        }
        if e.path() != path || !msg.contains(&path.display().to_string()) {
            return Err(format!("the error does not name the file: {msg}"));
        }
        Ok(e.kind())
    }

    /// The property, for one file: `info` with a full decode and a `Decoder` pass end in a
    /// supported stream or a typed error naming the file, without a panic.
    fn check(path: &Path) -> Outcome {
        LAST_PANIC.with(|p| p.borrow_mut().take());
        IN_CHECK.with(|c| c.set(true));
        let outcome = check_inner(path);
        IN_CHECK.with(|c| c.set(false));
        match outcome {
            Outcome::Bad(why) => {
                let at = LAST_PANIC.with(|p| p.borrow_mut().take());
                Outcome::Bad(match at {
                    Some(at) => format!("{why} (panicked at {at})"),
                    None => why,
                })
            }
            o => o,
        }
    }

    fn check_inner(path: &Path) -> Outcome {
        let result = std::panic::catch_unwind(|| {
            let info = sluice_core::info(path, &InfoOptions { decode: true });
            let mut pass = Ok(0usize);
            match Decoder::open(path) {
                Ok(mut d) => {
                    let mut frames = 0u64;
                    loop {
                        match d.next_block() {
                            Ok(Some(b)) => {
                                frames += b.frames() as u64;
                                pass = pass.map(|c: usize| c.max(b.channels()));
                                // Bounded: a header claiming hours must not make this decode hours.
                                if frames > 50_000_000 {
                                    break;
                                }
                            }
                            Ok(None) => break,
                            Err(e) => {
                                pass = Err(e);
                                break;
                            }
                        }
                    }
                }
                Err(e) => pass = Err(e),
            }
            (info, pass)
        });
        let (info, pass) = match result {
            Ok(r) => r,
            Err(p) => {
                let msg = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                return Outcome::Bad(format!("panic: {msg}"));
            }
        };
        match &pass {
            Err(e) => {
                if let Err(why) = typed_ok(e, path) {
                    return Outcome::Bad(format!("decoder pass: {why}"));
                }
            }
            Ok(c) if *c > *limits::CHANNELS.end() as usize => {
                return Outcome::Bad(format!("decoder pass: a block of {c} channels"));
            }
            Ok(_) => {}
        }
        match info {
            Ok(i) => {
                let s = &i.stream;
                if !limits::SAMPLE_RATES.contains(&s.sample_rate)
                    || !limits::CHANNELS.contains(&s.channels)
                {
                    return Outcome::Bad(format!(
                        "accepted a stream outside the limits: {} Hz, {} channels",
                        s.sample_rate, s.channels
                    ));
                }
                if let Some(w) = s.warnings.iter().find(|w| w.contains("parser failed")) {
                    return Outcome::Bad(format!("parser failure as a warning: {w}"));
                }
                Outcome::Read
            }
            Err(e) => match typed_ok(&e, path) {
                Ok(kind) => Outcome::Typed(kind),
                Err(why) => Outcome::Bad(why),
            },
        }
    }

    fn env_u64(name: &str) -> Option<u64> {
        std::env::var(name).ok().and_then(|s| s.parse().ok())
    }

    /// One mutated input of `t` from `base` (parsed as `parsed`), with its description.
    fn mutate(rng: &mut Rng, t: &Target, base: &[u8], parsed: &Parsed) -> (Vec<u8>, Vec<String>) {
        let mut desc = Vec::new();
        let mut data = base.to_vec();
        let mut reparsed = None;
        if !t.reshape.is_empty() && rng.next_u64().is_multiple_of(5) {
            let (name, f) = t.reshape[rng.next_u64() as usize % t.reshape.len()];
            if let Some(d) = f(rng, &data) {
                data = d;
                desc.push(name.to_string());
                reparsed = Some((t.parse)(&data));
            }
        }
        let parsed = reparsed.as_ref().unwrap_or(parsed);
        let rebuild_only = t.rebuild.is_some() && rng.next_u64().is_multiple_of(4);
        let mut written: Vec<Field> = Vec::new();
        if !rebuild_only && !parsed.fields.is_empty() {
            let n = match rng.next_u64() % 20 {
                0..=11 => 1,
                12..=16 => 2,
                _ => 3,
            };
            for _ in 0..n {
                // Now and then, every field of one meaning at once (the channel count in
                // stsd and in the ALAC cookie, say): a coherent lie gets past cross-checks.
                let coherent =
                    [Kind::Rate, Kind::Channels, Kind::Bits][rng.next_u64() as usize % 3];
                let group: Vec<&Field> = parsed
                    .fields
                    .iter()
                    .filter(|f| f.kind == coherent)
                    .collect();
                if rng.next_u64().is_multiple_of(8) && group.len() > 1 {
                    let list = match coherent {
                        Kind::Rate => RATES,
                        Kind::Channels => CHANNELS,
                        _ => BITS,
                    };
                    let v = list[rng.next_u64() as usize % list.len()];
                    for f in group {
                        let _ = store(&mut data, f, v);
                        written.push(f.clone());
                    }
                    desc.push(format!("every {coherent:?} field = {v}"));
                    continue;
                }
                let f = &parsed.fields[rng.next_u64() as usize % parsed.fields.len()];
                if let Loc::Ext80(at) = f.loc {
                    let (b, what) = ext80_value(rng);
                    if let Some(x) = data.get_mut(at..at + 10) {
                        x.copy_from_slice(&b);
                    }
                    desc.push(format!("{} = {what}", f.name));
                } else {
                    let v = value(rng, f, f.loc.read(&data));
                    let v = store(&mut data, f, v);
                    desc.push(format!("{} = {v} ({v:#x})", f.name));
                }
                written.push(f.clone());
            }
        }
        if let Some(rebuild) = t.rebuild
            && (rebuild_only || rng.next_u64().is_multiple_of(8))
            && let Some((d, what)) = rebuild(rng, &data, parsed)
        {
            data = d;
            desc.push(what);
        }
        if let Some(repair) = t.repair {
            repair(&mut data, parsed, &written);
        }
        (data, desc)
    }

    fn run(t: &Target, index: u64) {
        limit_address_space();
        note_panics();
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let iters = env_u64("SLUICE_FUZZ_ITERS").map_or(DEFAULT_ITERS, |n| n as usize);
        let seed = env_u64("SLUICE_FUZZ_SEED").unwrap_or(0x5EED);
        let mut rng = Rng::new(seed ^ (index + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let seeds: Vec<(&str, Vec<u8>, Parsed)> = t
            .fixtures
            .iter()
            .map(|n| {
                let b = std::fs::read(fixture(n)).unwrap();
                let p = (t.parse)(&b);
                assert!(
                    p.fields.len() >= 8,
                    "{n}: only {} fields parsed",
                    p.fields.len()
                );
                (*n, b, p)
            })
            .collect();
        // The input being read is kept at a fixed place: if the run aborts (an allocation
        // beyond the limit, a hang), it and its description are left there.
        let dir = std::env::temp_dir().join(format!("sluice-sfuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let started = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let epoch = Instant::now();
        let watchdog = {
            let (started, stop, dir, name) = (started.clone(), stop.clone(), dir.clone(), t.name);
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(200));
                    let s = started.load(Ordering::Relaxed);
                    if s > 0 && epoch.elapsed().as_millis() as u64 - s > HANG.as_millis() as u64 {
                        eprintln!(
                            "structured {name}: an input has run for {HANG:?}: it is in {}",
                            dir.display()
                        );
                        std::process::abort();
                    }
                }
            })
        };
        let mut kinds: BTreeMap<&'static str, usize> = BTreeMap::new();
        let mut fields_hit = BTreeSet::new();
        let mut read = 0usize;
        // Failures by what went wrong (the message without the file name): how many, and the
        // first few inputs kept.
        let mut bad: BTreeMap<String, (usize, Vec<String>)> = BTreeMap::new();
        let mut slowest = (Duration::ZERO, String::new());
        for i in 0..iters {
            let (name, base, parsed) = &seeds[i % seeds.len()];
            let (data, desc) = mutate(&mut rng, t, base, parsed);
            for d in &desc {
                fields_hit.insert(d.split(['=', ':']).next().unwrap_or(d).trim().to_string());
            }
            let what = format!("{name}: {}", desc.join("; "));
            let path = dir.join(format!("{}-{name}", t.name));
            std::fs::write(dir.join(format!("{}.txt", t.name)), &what).unwrap();
            std::fs::write(&path, &data).unwrap();
            started.store(epoch.elapsed().as_millis().max(1) as u64, Ordering::Relaxed);
            let t0 = Instant::now();
            let outcome = check(&path);
            let took = t0.elapsed();
            started.store(0, Ordering::Relaxed);
            if took > slowest.0 {
                slowest = (took, what.clone());
            }
            let problem = match outcome {
                Outcome::Read => {
                    read += 1;
                    None
                }
                Outcome::Typed(k) => {
                    *kinds.entry(k).or_default() += 1;
                    None
                }
                Outcome::Bad(why) => Some(why),
            };
            let problem = problem.or_else(|| (took > SLOW).then(|| format!("took {took:?}")));
            if let Some(why) = problem {
                let sig = why.replace(&path.display().to_string(), "<file>");
                let (n, kept) = bad.entry(sig).or_default();
                *n += 1;
                if kept.len() < 3 {
                    let keep = std::env::temp_dir()
                        .join(format!("sluice-sfuzz-{}-{seed}-{i}-{name}", t.name));
                    std::fs::write(&keep, &data).unwrap();
                    eprintln!(
                        "structured {}: input {i} ({what}): {why}; kept at {}",
                        t.name,
                        keep.display()
                    );
                    kept.push(format!("input {i} ({what}) kept at {}", keep.display()));
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        watchdog.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let typed: usize = kinds.values().sum();
        let failures: usize = bad.values().map(|b| b.0).sum();
        eprintln!(
            "structured {}: {iters} inputs (seed {seed}) from {}; {} distinct fields or changes; \
             {read} read, {typed} typed errors {kinds:?}, {failures} failures ({} distinct); \
             slowest {:.3?} ({}); peak address space {}",
            t.name,
            t.fixtures.join(", "),
            fields_hit.len(),
            bad.len(),
            slowest.0,
            slowest.1,
            vm_peak(),
        );
        let report: Vec<String> = bad
            .iter()
            .map(|(sig, (n, kept))| format!("{n} × {sig}\n    {}", kept.join("\n    ")))
            .collect();
        assert!(
            bad.is_empty(),
            "structured {}: {failures} failures, {} distinct:\n{}",
            t.name,
            bad.len(),
            report.join("\n")
        );
    }

    #[test]
    fn wav() {
        run(
            &Target {
                name: "wav",
                fixtures: &[
                    "source.wav",
                    "rf64.wav",
                    "extensible_s24.wav",
                    "f32.wav",
                    "surround51.wav",
                    "bwf_v2.wav",
                    "riff_info.wav",
                    "u8.wav",
                ],
                parse: wav_fields,
                reshape: &[
                    ("fmt rewritten as IMA ADPCM", wav_ima),
                    ("fmt rewritten as MS ADPCM", wav_ms),
                ],
                rebuild: None,
                repair: None,
            },
            0,
        );
    }

    #[test]
    fn aiff() {
        run(
            &Target {
                name: "aiff",
                fixtures: &["source.aiff", "source.aifc"],
                parse: aiff_fields,
                reshape: &[],
                rebuild: None,
                repair: None,
            },
            1,
        );
    }

    #[test]
    fn flac() {
        run(
            &Target {
                name: "flac",
                fixtures: &["tagged.flac", "s24.flac"],
                parse: flac_fields,
                reshape: &[],
                rebuild: Some(flac_frame_header),
                repair: None,
            },
            2,
        );
    }

    #[test]
    fn mp3() {
        run(
            &Target {
                name: "mp3",
                fixtures: &["tagged.mp3"],
                parse: mp3_fields,
                reshape: &[],
                rebuild: None,
                repair: Some(mp3_repair),
            },
            3,
        );
    }

    #[test]
    fn ogg() {
        run(
            &Target {
                name: "ogg",
                fixtures: &["tagged.ogg"],
                parse: ogg_fields,
                reshape: &[],
                rebuild: None,
                repair: Some(ogg_repair),
            },
            4,
        );
    }

    #[test]
    fn mp4() {
        run(
            &Target {
                name: "mp4",
                fixtures: &["aac.m4a", "alac.m4a"],
                parse: mp4_fields,
                reshape: &[
                    ("a box given a 64-bit size", mp4_largesize),
                    ("stco rewritten as co64", mp4_co64),
                ],
                rebuild: None,
                repair: None,
            },
            5,
        );
    }

    /// Regression files whose panic is inside symphonia, past anything Sluice reads of the
    /// header itself: the replay accepts `parser_failure` for them (the panic is caught; the
    /// error names the file) until symphonia is fixed. Each with where it panics.
    const KNOWN_UPSTREAM: &[(&str, &str)] = &[(
        "ogg-vorbis-codebook-dimensions-255-lookup1-assert.ogg",
        "symphonia-format-ogg 0.6.1 mappings/vorbis.rs:728, lookup1_values' assert on a codebook \
         whose dimensions overflow (value + 1)^dimensions",
    )];

    /// Every input kept in `fixtures/regressions/` still holds the property.
    #[test]
    fn regressions_replay() {
        limit_address_space();
        note_panics();
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let dir = fixture("regressions");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != "README.md"))
            .collect();
        files.sort();
        let mut bad = Vec::new();
        for p in &files {
            let t0 = Instant::now();
            let upstream = KNOWN_UPSTREAM
                .iter()
                .find(|(name, _)| p.file_name().is_some_and(|n| n == *name));
            match check(p) {
                // A panic inside symphonia that Sluice cannot head off from the header (see
                // KNOWN_UPSTREAM): caught, a clear error naming the file, the process unharmed.
                Outcome::Bad(why)
                    if upstream.is_some()
                        && why.contains("parser failure")
                        && why.contains(&p.display().to_string()) =>
                {
                    eprintln!(
                        "{}: known upstream panic, caught ({})",
                        p.display(),
                        upstream.unwrap().1
                    );
                }
                Outcome::Bad(why) => bad.push(format!("{}: {why}", p.display())),
                _ if t0.elapsed() > SLOW => {
                    bad.push(format!("{}: took {:?}", p.display(), t0.elapsed()))
                }
                _ => {}
            }
        }
        eprintln!(
            "regressions: {} files replayed, {} failing",
            files.len(),
            bad.len()
        );
        assert!(bad.is_empty(), "{}", bad.join("\n"));
    }
}
