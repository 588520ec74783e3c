//! An MPEG-4 audio file (M4A, ISO/IEC 14496-12 and -14) written one packet at a time: `ftyp`,
//! then the packets in one `mdat` (its 64-bit size patched at the end), then `moov` with one
//! audio track whose sample table lists every packet. Memory is four bytes per packet.
//!
//! Encoder priming and the last packet's padding are given by an edit list (`edts/elst`):
//! the presentation starts `priming` frames into the media and lasts exactly the input's
//! frames, which ffmpeg, Apple's players and Sluice's own decoder honour.

use super::EncodeError;
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::PathBuf;

/// A box: its four-character type and payload, written with its 32-bit size.
pub(crate) fn boxed(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(payload.len() + 8);
    b.extend_from_slice(&((payload.len() + 8) as u32).to_be_bytes());
    b.extend_from_slice(kind);
    b.extend_from_slice(payload);
    b
}

/// A full box: version, flags, payload.
pub(crate) fn full(kind: &[u8; 4], version: u8, flags: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(payload.len() + 4);
    p.push(version);
    p.extend_from_slice(&flags.to_be_bytes()[1..]);
    p.extend_from_slice(payload);
    boxed(kind, &p)
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// The unity matrix of `mvhd` and `tkhd`.
fn matrix() -> Vec<u8> {
    let m: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];
    m.iter().flat_map(|v| v.to_be_bytes()).collect()
}

/// An audio sample entry (`mp4a`, `alac`) of `bits`-bit samples (16 for AAC): the common
/// fields, then `extra` (the codec's configuration boxes).
pub fn audio_sample_entry(
    kind: &[u8; 4],
    channels: u16,
    bits: u16,
    rate: u32,
    extra: &[u8],
) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&[0; 6]); // reserved
    p.extend_from_slice(&1u16.to_be_bytes()); // data reference index
    p.extend_from_slice(&[0; 8]); // version, revision, vendor
    p.extend_from_slice(&channels.to_be_bytes());
    p.extend_from_slice(&bits.to_be_bytes()); // sample size
    p.extend_from_slice(&[0; 4]); // pre-defined, reserved
    // 16.16 fixed point; rates above 65535 Hz do not fit and are given as 0 (the codec's
    // configuration has the rate).
    let fixed = if rate <= 0xFFFF { rate << 16 } else { 0 };
    p.extend_from_slice(&fixed.to_be_bytes());
    p.extend_from_slice(extra);
    boxed(kind, &p)
}

/// A descriptor of ISO/IEC 14496-1 (tag, size in four 7-bit bytes, payload).
fn descriptor(tag: u8, payload: &[u8]) -> Vec<u8> {
    let n = payload.len() as u32;
    let mut d = vec![
        tag,
        0x80 | ((n >> 21) & 0x7f) as u8,
        0x80 | ((n >> 14) & 0x7f) as u8,
        0x80 | ((n >> 7) & 0x7f) as u8,
        (n & 0x7f) as u8,
    ];
    d.extend_from_slice(payload);
    d
}

/// The `esds` box of an AAC track: its AudioSpecificConfig, buffer size and bitrates.
pub fn esds(asc: &[u8], buffer_bytes: u32, max_bps: u32, avg_bps: u32) -> Vec<u8> {
    let mut dcd = vec![0x40, 0x15]; // MPEG-4 audio; audio stream, upstream 0, reserved 1
    dcd.extend_from_slice(&buffer_bytes.to_be_bytes()[1..]);
    dcd.extend_from_slice(&max_bps.to_be_bytes());
    dcd.extend_from_slice(&avg_bps.to_be_bytes());
    dcd.extend_from_slice(&descriptor(0x05, asc));
    let mut es = vec![0, 1, 0]; // ES id 1, no flags
    es.extend_from_slice(&descriptor(0x04, &dcd));
    es.extend_from_slice(&descriptor(0x06, &[0x02])); // SL config: predefined MP4
    full(b"esds", 0, 0, &descriptor(0x03, &es))
}

/// What the track says about its samples.
pub struct Track {
    /// The sample entry (`mp4a`, `alac`), whole.
    pub entry: Vec<u8>,
    /// The media timescale: the output sample rate.
    pub timescale: u32,
    /// Frames per packet (the last may hold fewer, given by `last_frames`).
    pub frames_per_packet: u32,
    /// Frames of encoder priming at the start of the media, trimmed by the edit list.
    pub priming: u64,
    /// Also give priming and padding in an `iTunSMPB` tag (Apple's gapless information,
    /// which players that ignore edit lists read): AAC's, not ALAC's.
    pub smpb: bool,
}

/// Writes the M4A: packets as they come, the index at the end.
pub struct M4aWriter {
    path: PathBuf,
    out: BufWriter<File>,
    mdat_at: u64,
    written: u64,
    sizes: Vec<u32>,
    /// Frames of each packet that differ from `frames_per_packet` (the last only).
    last_frames: Option<u32>,
    max_size: u32,
}

impl M4aWriter {
    pub fn new(file: File, path: PathBuf) -> Result<M4aWriter, EncodeError> {
        let mut out = BufWriter::with_capacity(256 * 1024, file);
        let ftyp = boxed(
            b"ftyp",
            &cat(&[b"M4A ", &0u32.to_be_bytes(), b"M4A mp42isom"]),
        );
        let io = |source| EncodeError::Io {
            path: path.clone(),
            source,
        };
        out.write_all(&ftyp).map_err(io)?;
        // `mdat` with a 64-bit size, patched when the packets are all written.
        let mdat_at = ftyp.len() as u64;
        out.write_all(&1u32.to_be_bytes()).map_err(io)?;
        out.write_all(b"mdat").map_err(io)?;
        out.write_all(&0u64.to_be_bytes()).map_err(io)?;
        Ok(M4aWriter {
            path,
            out,
            mdat_at,
            written: 0,
            sizes: Vec::new(),
            last_frames: None,
            max_size: 0,
        })
    }

    fn io(&self, source: std::io::Error) -> EncodeError {
        EncodeError::Io {
            path: self.path.clone(),
            source,
        }
    }

    pub fn packet(&mut self, data: &[u8]) -> Result<(), EncodeError> {
        self.out.write_all(data).map_err(|e| self.io(e))?;
        self.written += data.len() as u64;
        let n = data.len() as u32;
        self.sizes.push(n);
        self.max_size = self.max_size.max(n);
        Ok(())
    }

    /// The last packet holds `frames` frames rather than a whole packet's.
    pub fn last_packet_frames(&mut self, frames: u32) {
        self.last_frames = Some(frames);
    }

    pub fn packets(&self) -> usize {
        self.sizes.len()
    }

    /// The largest packet and the average bitrate (bits per second) over `seconds`.
    pub fn sizes(&self, seconds: f64) -> (u32, u32) {
        let avg = if seconds > 0.0 {
            (self.written as f64 * 8.0 / seconds) as u32
        } else {
            0
        };
        (self.max_size, avg)
    }

    /// Write the index for `track` and `frames` frames of input (what the edit list presents).
    pub fn finish(mut self, track: &Track, frames: u64) -> Result<(), EncodeError> {
        let n = self.sizes.len() as u64;
        let media = match self.last_frames {
            Some(last) if n > 0 => (n - 1) * u64::from(track.frames_per_packet) + u64::from(last),
            _ => n * u64::from(track.frames_per_packet),
        };
        // 64-bit durations where 32 bits do not hold them (version 1 boxes).
        let long = media > u64::from(u32::MAX) || frames > u64::from(u32::MAX);
        let stbl = self.sample_table(track);
        let mdia = media_box(track, &stbl, media, long);
        let trak = boxed(
            b"trak",
            &cat(&[
                &track_header(frames, long),
                &edit_list(track, frames, long),
                &mdia,
            ]),
        );
        let udta = if track.smpb {
            let padding = media.saturating_sub(track.priming + frames);
            itunes_smpb(track.priming, padding, frames)
        } else {
            Vec::new()
        };
        let moov = boxed(
            b"moov",
            &cat(&[&movie_header(track.timescale, frames, long), &trak, &udta]),
        );
        let mdat_size = 16 + self.written;
        self.out.write_all(&moov).map_err(|e| self.io(e))?;
        let path = self.path.clone();
        let io = |source| EncodeError::Io {
            path: path.clone(),
            source,
        };
        let mut file = self.out.into_inner().map_err(|e| io(e.into_error()))?;
        file.seek(SeekFrom::Start(self.mdat_at + 8)).map_err(io)?;
        file.write_all(&mdat_size.to_be_bytes()).map_err(io)?;
        file.flush().map_err(io)
    }

    /// `stbl`: the sample entry, the packets' durations and sizes, and where they are (one
    /// chunk holding every packet).
    fn sample_table(&self, track: &Track) -> Vec<u8> {
        let n = self.sizes.len() as u64;
        let mut runs: Vec<(u32, u32)> = Vec::new();
        match self.last_frames.filter(|_| n > 0) {
            Some(last) if last != track.frames_per_packet => {
                if n > 1 {
                    runs.push(((n - 1) as u32, track.frames_per_packet));
                }
                runs.push((1, last));
            }
            _ if n > 0 => runs.push((n as u32, track.frames_per_packet)),
            _ => {}
        }
        let mut stts = (runs.len() as u32).to_be_bytes().to_vec();
        for (count, delta) in runs {
            stts.extend_from_slice(&count.to_be_bytes());
            stts.extend_from_slice(&delta.to_be_bytes());
        }
        let stts = full(b"stts", 0, 0, &stts);
        let stsc = if n > 0 {
            full(
                b"stsc",
                0,
                0,
                &cat(&[
                    &1u32.to_be_bytes(),
                    &1u32.to_be_bytes(),
                    &(n as u32).to_be_bytes(),
                    &1u32.to_be_bytes(),
                ]),
            )
        } else {
            full(b"stsc", 0, 0, &0u32.to_be_bytes())
        };
        // Packets all of one size are given by that size alone: ffmpeg reads a track whose
        // one `stts` run lasts a frame (a single one-frame packet) as raw chunks sized from
        // this field, and would find no bytes in a table.
        let one_size = self
            .sizes
            .first()
            .filter(|&&f| self.sizes.iter().all(|&s| s == f));
        let mut stsz = Vec::with_capacity(8 + 4 * self.sizes.len());
        stsz.extend_from_slice(&one_size.copied().unwrap_or(0).to_be_bytes());
        stsz.extend_from_slice(&(n as u32).to_be_bytes());
        if one_size.is_none() {
            for s in &self.sizes {
                stsz.extend_from_slice(&s.to_be_bytes());
            }
        }
        let stsz = full(b"stsz", 0, 0, &stsz);
        let data_at = self.mdat_at + 16;
        let stco = if n == 0 {
            full(b"stco", 0, 0, &0u32.to_be_bytes())
        } else if data_at <= u64::from(u32::MAX) {
            full(
                b"stco",
                0,
                0,
                &cat(&[&1u32.to_be_bytes(), &(data_at as u32).to_be_bytes()]),
            )
        } else {
            full(
                b"co64",
                0,
                0,
                &cat(&[&1u32.to_be_bytes(), &data_at.to_be_bytes()]),
            )
        };
        let stsd = full(b"stsd", 0, 0, &cat(&[&1u32.to_be_bytes(), &track.entry]));
        boxed(b"stbl", &cat(&[&stsd, &stts, &stsc, &stsz, &stco]))
    }
}

/// `mdia`: the media header (`media` frames at the track's rate), the sound handler, and
/// `minf` around the sample table.
fn media_box(track: &Track, stbl: &[u8], media: u64, long: bool) -> Vec<u8> {
    let dref = full(
        b"dref",
        0,
        0,
        &cat(&[&1u32.to_be_bytes(), &full(b"url ", 0, 1, &[])]),
    );
    let minf = boxed(
        b"minf",
        &cat(&[&full(b"smhd", 0, 0, &[0; 4]), &boxed(b"dinf", &dref), stbl]),
    );
    let hdlr = full(
        b"hdlr",
        0,
        0,
        &cat(&[&[0; 4], b"soun", &[0; 12], b"SoundHandler\0"]),
    );
    let ts = track.timescale.to_be_bytes();
    let language = 0x55c4u16.to_be_bytes(); // "und"
    let mdhd = if long {
        full(
            b"mdhd",
            1,
            0,
            &cat(&[&[0; 16], &ts, &media.to_be_bytes(), &language, &[0; 2]]),
        )
    } else {
        full(
            b"mdhd",
            0,
            0,
            &cat(&[
                &[0; 8],
                &ts,
                &(media as u32).to_be_bytes(),
                &language,
                &[0; 2],
            ]),
        )
    };
    boxed(b"mdia", &cat(&[&mdhd, &hdlr, &minf]))
}

/// `edts`: the presentation is `frames` frames from `priming` on (the movie's timescale is
/// the media's).
fn edit_list(track: &Track, frames: u64, long: bool) -> Vec<u8> {
    let rate = 0x0001_0000u32.to_be_bytes();
    let elst = if long {
        full(
            b"elst",
            1,
            0,
            &cat(&[
                &1u32.to_be_bytes(),
                &frames.to_be_bytes(),
                &(track.priming as i64).to_be_bytes(),
                &rate,
            ]),
        )
    } else {
        full(
            b"elst",
            0,
            0,
            &cat(&[
                &1u32.to_be_bytes(),
                &(frames as u32).to_be_bytes(),
                &(track.priming as i32).to_be_bytes(),
                &rate,
            ]),
        )
    };
    boxed(b"edts", &elst)
}

/// The text of Apple's `iTunSMPB` tag: priming, padding and the frames presented, in hex.
pub fn smpb_text(priming: u64, padding: u64, frames: u64) -> String {
    format!(
        " 00000000 {:08X} {:08X} {frames:016X}{}",
        priming as u32,
        padding as u32,
        " 00000000".repeat(8)
    )
}

/// `udta/meta/ilst` holding the one item `----:com.apple.iTunes:iTunSMPB` (the tag writer
/// keeps it when it writes the user's tags into the same `ilst`).
fn itunes_smpb(priming: u64, padding: u64, frames: u64) -> Vec<u8> {
    let text = smpb_text(priming, padding, frames);
    let item = boxed(
        b"----",
        &cat(&[
            &full(b"mean", 0, 0, b"com.apple.iTunes"),
            &full(b"name", 0, 0, b"iTunSMPB"),
            // Type 1 (UTF-8), locale 0.
            &boxed(
                b"data",
                &cat(&[&1u32.to_be_bytes(), &[0; 4], text.as_bytes()]),
            ),
        ]),
    );
    let hdlr = full(
        b"hdlr",
        0,
        0,
        &cat(&[&[0; 4], b"mdir", b"appl", &[0; 8], &[0]]),
    );
    let meta = full(b"meta", 0, 0, &cat(&[&hdlr, &boxed(b"ilst", &item)]));
    boxed(b"udta", &meta)
}

/// `tkhd`: track 1, enabled, in the movie, lasting `frames`.
fn track_header(frames: u64, long: bool) -> Vec<u8> {
    let tail = cat(&[
        &[0; 8],                  // reserved
        &0u16.to_be_bytes(),      // layer
        &0u16.to_be_bytes(),      // alternate group
        &0x0100u16.to_be_bytes(), // volume 1.0
        &[0; 2],
        &matrix(),
        &0u32.to_be_bytes(), // width
        &0u32.to_be_bytes(), // height
    ]);
    let id = 1u32.to_be_bytes();
    if long {
        full(
            b"tkhd",
            1,
            7,
            &cat(&[&[0; 16], &id, &[0; 4], &frames.to_be_bytes(), &tail]),
        )
    } else {
        full(
            b"tkhd",
            0,
            7,
            &cat(&[&[0; 8], &id, &[0; 4], &(frames as u32).to_be_bytes(), &tail]),
        )
    }
}

/// `mvhd`: the movie at `timescale`, lasting `frames`.
fn movie_header(timescale: u32, frames: u64, long: bool) -> Vec<u8> {
    let tail = cat(&[
        &0x0001_0000u32.to_be_bytes(), // rate 1.0
        &0x0100u16.to_be_bytes(),      // volume 1.0
        &[0; 10],
        &matrix(),
        &[0; 24],
        &2u32.to_be_bytes(), // next track id
    ]);
    let ts = timescale.to_be_bytes();
    if long {
        full(
            b"mvhd",
            1,
            0,
            &cat(&[&[0; 16], &ts, &frames.to_be_bytes(), &tail]),
        )
    } else {
        full(
            b"mvhd",
            0,
            0,
            &cat(&[&[0; 8], &ts, &(frames as u32).to_be_bytes(), &tail]),
        )
    }
}
