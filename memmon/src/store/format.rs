//! The on-disk layout. A shard is one file, `memmon-<unix ms>.mst`:
//!
//!     shard header   "MEMMONST" | format version u32 | len u16 | memmon version
//!     frame*         "MMFR" | kind u8 | 0 0 0 | unix_ms u64 | base_ms u64 |
//!                    len u32 | crc32c u32 | zstd payload (len bytes)
//!
//! Little endian. The CRC (crc32c) covers the frame header before it and the
//! payload, so a flipped byte anywhere in a frame is caught; the reader then
//! looks for the next "MMFR" whose CRC holds. A key frame's payload is the
//! whole publication (JSON, processes and cgroups keyed by identity), a
//! delta frame's a patch against the key frame at `base_ms` (`delta.rs`),
//! an incident frame's one post-mortem (`model::incident::Incident` JSON;
//! `unix_ms` is the kill's, `base_ms` the pass's that completed it).
//! Version 1 is the first; version 2 adds incident frames (kind 2). A
//! reader reads every version up to its own; an older memmon refuses a
//! newer shard by name rather than take its incident frames for corrupt
//! ones.

/// Shard file magic.
pub const SHARD_MAGIC: &[u8; 8] = b"MEMMONST";
/// Frame magic.
pub const FRAME_MAGIC: &[u8; 4] = b"MMFR";
/// The format this memmon writes (and the newest it reads).
pub const FORMAT_VERSION: u32 = 2;
/// Bytes of a frame header.
pub const FRAME_HEADER: usize = 32;
/// Shard file name suffix.
pub const SHARD_SUFFIX: &str = ".mst";
/// Largest frame payload accepted (a corrupt length beyond it is not read).
pub const MAX_PAYLOAD: u32 = 256 << 20;

/// A frame's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The whole publication.
    Key,
    /// A patch against a key frame.
    Delta,
    /// One post-mortem, apart from the publications.
    Incident,
}

/// A frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Key or delta.
    pub kind: Kind,
    /// The pass's Unix time, ms.
    pub unix_ms: u64,
    /// Delta: the key frame's `unix_ms` (key: its own).
    pub base_ms: u64,
    /// Payload bytes.
    pub len: u32,
    /// crc32c of the header's first 28 bytes and the payload.
    pub crc: u32,
}

/// The shard header's bytes.
pub fn shard_header() -> Vec<u8> {
    let v = env!("CARGO_PKG_VERSION").as_bytes();
    let mut out = Vec::with_capacity(14 + v.len());
    out.extend_from_slice(SHARD_MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(v.len() as u16).to_le_bytes());
    out.extend_from_slice(v);
    out
}

/// Parses a shard header: (format version, writer's memmon version, header
/// length); None when `b` does not start with one.
pub fn parse_shard_header(b: &[u8]) -> Option<(u32, String, usize)> {
    if b.len() < 14 || &b[..8] != SHARD_MAGIC {
        return None;
    }
    let version = u32::from_le_bytes(b[8..12].try_into().ok()?);
    let n = u16::from_le_bytes(b[12..14].try_into().ok()?) as usize;
    let writer = String::from_utf8_lossy(b.get(14..14 + n)?).into_owned();
    Some((version, writer, 14 + n))
}

/// A whole frame's bytes (header and payload).
pub fn encode_frame(kind: Kind, unix_ms: u64, base_ms: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_HEADER + payload.len());
    out.extend_from_slice(FRAME_MAGIC);
    out.push(match kind {
        Kind::Key => 0,
        Kind::Delta => 1,
        Kind::Incident => 2,
    });
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&unix_ms.to_le_bytes());
    out.extend_from_slice(&base_ms.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&out), payload);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Why a frame at some offset cannot be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameFault {
    /// The file ends inside the frame (a write cut short).
    Torn,
    /// Bad magic, kind, length or checksum.
    Corrupt(&'static str),
}

/// Reads the frame at the start of `b`: its header and payload.
pub fn decode_frame(b: &[u8]) -> Result<(FrameHeader, &[u8]), FrameFault> {
    if b.len() < FRAME_HEADER {
        return if FRAME_MAGIC.starts_with(&b[..b.len().min(4)]) {
            Err(FrameFault::Torn)
        } else {
            Err(FrameFault::Corrupt("bad frame magic"))
        };
    }
    if &b[..4] != FRAME_MAGIC {
        return Err(FrameFault::Corrupt("bad frame magic"));
    }
    let kind = match b[4] {
        0 => Kind::Key,
        1 => Kind::Delta,
        2 => Kind::Incident,
        _ => return Err(FrameFault::Corrupt("unknown frame kind")),
    };
    let u64_at = |i: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[i..i + 8]);
        u64::from_le_bytes(a)
    };
    let u32_at = |i: usize| {
        let mut a = [0u8; 4];
        a.copy_from_slice(&b[i..i + 4]);
        u32::from_le_bytes(a)
    };
    let h = FrameHeader {
        kind,
        unix_ms: u64_at(8),
        base_ms: u64_at(16),
        len: u32_at(24),
        crc: u32_at(28),
    };
    if h.len > MAX_PAYLOAD {
        return Err(FrameFault::Corrupt("frame length out of range"));
    }
    let end = FRAME_HEADER + h.len as usize;
    if b.len() < end {
        // A torn write, or a corrupt length: the CRC cannot say which, and
        // the reader resynchronises past it either way.
        return Err(FrameFault::Torn);
    }
    let payload = &b[FRAME_HEADER..end];
    if crc32c::crc32c_append(crc32c::crc32c(&b[..28]), payload) != h.crc {
        return Err(FrameFault::Corrupt("checksum mismatch"));
    }
    Ok((h, payload))
}

/// The offset of the next frame magic in `b` at or after `from`.
pub fn next_magic(b: &[u8], from: usize) -> Option<usize> {
    b.get(from..)?
        .windows(4)
        .position(|w| w == FRAME_MAGIC)
        .map(|i| from + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trips_and_every_flipped_byte_is_caught() {
        let f = encode_frame(Kind::Delta, 5, 3, b"payload bytes");
        let (h, p) = decode_frame(&f).expect("decodes");
        assert_eq!(
            (h.kind, h.unix_ms, h.base_ms, p),
            (Kind::Delta, 5, 3, &b"payload bytes"[..])
        );
        for i in 0..f.len() {
            let mut g = f.clone();
            g[i] ^= 0x10;
            assert!(decode_frame(&g).is_err(), "flip at {i} not caught");
        }
        assert_eq!(decode_frame(&f[..f.len() - 1]), Err(FrameFault::Torn));
        assert_eq!(decode_frame(&f[..10]), Err(FrameFault::Torn));
    }

    #[test]
    fn shard_header_names_its_version() {
        let h = shard_header();
        let (v, w, n) = parse_shard_header(&h).expect("parses");
        assert_eq!(
            (v, w.as_str(), n),
            (FORMAT_VERSION, env!("CARGO_PKG_VERSION"), h.len())
        );
        assert!(parse_shard_header(b"MEMMONSX\x01\0\0\0\0\0").is_none());
    }
}
