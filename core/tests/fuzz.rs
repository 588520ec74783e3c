//! A mutation fuzzer for the probe, the tag readers and the decoder: real fixtures with flipped
//! bits, overwritten header fields, cuts and splices. The property: every input ends in `Ok` or
//! a typed error, never a panic, a hang or a parser failure.
//!
//! `SLUICE_FUZZ_ITERS` sets the number of mutated files (default 400, a few seconds);
//! `SLUICE_FUZZ_SEED` the seed. A long run: `SLUICE_FUZZ_ITERS=200000 cargo test --release
//! -p sluice-core --test fuzz -- --nocapture`.

mod common;
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
