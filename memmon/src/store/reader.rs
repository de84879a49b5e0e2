//! Reads a store back: every shard's frames in time order, each checked
//! against its CRC. A torn frame (the end of a shard memmon was killed
//! while writing) or a corrupt one (a flipped byte) is skipped with a
//! warning naming the shard and offset; the frames after it still read. A
//! delta whose key frame is lost is skipped the same way.
//!
//! Opening reads each shard once, to index and check it, and keeps only the
//! index and an open file: a frame is read back (and checked again) when it
//! is asked for, so a day of recording is not held in memory.

use std::{
    cell::RefCell,
    fs::File,
    os::unix::fs::FileExt as _,
    path::{Path, PathBuf},
};

use serde_json::{Map, Value};

use super::{
    StoreError, delta,
    format::{self, FORMAT_VERSION, FrameFault, Kind},
    writer::list_shards,
};

/// Where a frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameRef {
    /// Index into the store's shards.
    pub shard: usize,
    /// Byte offset of its header in the shard.
    pub offset: usize,
    /// The pass's Unix time, ms.
    pub unix_ms: u64,
    /// Key or delta.
    pub kind: Kind,
    /// Its key frame's time.
    pub base_ms: u64,
    /// Bytes of the whole frame (header and payload).
    pub len: usize,
}

struct ShardData {
    path: PathBuf,
    /// Kept open: retention may remove the file while it is read.
    file: File,
}

/// The last key frame decoded: (shard, its time, its JSON).
type KeyCache = RefCell<Option<(usize, u64, Map<String, Value>)>>;

/// An opened store: its shards' frames, indexed.
pub struct Store {
    shards: Vec<ShardData>,
    /// Every readable publication frame, oldest first.
    pub frames: Vec<FrameRef>,
    /// Every readable incident frame (one post-mortem each), in the order
    /// written.
    pub incidents: Vec<FrameRef>,
    /// What was skipped, one line each (also logged).
    pub warnings: Vec<String>,
    key_cache: KeyCache,
}

/// A frame that cannot be read back: the shard and offset, and what.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// Something at a place in a shard.
    #[error("{}: frame at offset {offset}: {fault}", path.display())]
    At {
        /// The shard.
        path: PathBuf,
        /// The frame's offset.
        offset: usize,
        /// What.
        fault: FrameProblem,
    },
    /// No such frame.
    #[error("no frame {0}")]
    NoFrame(usize),
    /// No such incident frame.
    #[error("no incident frame {0}")]
    NoIncident(usize),
    /// An incident frame asked for as a publication.
    #[error("an incident frame is not a publication")]
    NotAPublication,
    /// A key frame's JSON is not an object.
    #[error("key frame is not an object")]
    NotAnObject,
    /// A delta does not apply to its key.
    #[error(transparent)]
    Patch(#[from] delta::PatchError),
}

/// What is wrong with a frame.
#[derive(Debug, thiserror::Error)]
pub enum FrameProblem {
    /// Reading it failed.
    #[error("{0}")]
    Read(#[source] std::io::Error),
    /// Its header or checksum is wrong.
    #[error("{0:?}")]
    Format(format::FrameFault),
    /// Its payload does not decompress.
    #[error("zstd: {0}")]
    Zstd(#[source] std::io::Error),
    /// Its payload is not JSON.
    #[error("JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// Its key frame is gone.
    #[error("its key frame ({0} ms) is lost; skipped")]
    KeyLost(u64),
}

impl Store {
    /// Opens the store in `dir`, reading only the shards that may hold
    /// frames between `from_ms` and `to_ms` (inclusive) when given.
    pub fn open(dir: &Path, range: Option<(u64, u64)>) -> Result<Store, StoreError> {
        if !dir.exists() {
            return Err(StoreError::Missing(dir.to_path_buf()));
        }
        let listed = list_shards(dir)?;
        let mut store = Store {
            shards: Vec::new(),
            frames: Vec::new(),
            incidents: Vec::new(),
            warnings: Vec::new(),
            key_cache: RefCell::new(None),
        };
        for (i, (path, start, _)) in listed.iter().enumerate() {
            if let Some((from, to)) = range {
                let ends = listed.get(i + 1).map_or(u64::MAX, |n| n.1);
                if *start > to || ends < from {
                    continue;
                }
            }
            let file = File::open(path).map_err(|e| StoreError::io(path, e))?;
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut &file, &mut bytes)
                .map_err(|e| StoreError::io(path, e))?;
            store.index_shard(path.clone(), file, &bytes)?;
        }
        if store.frames.is_empty() {
            return Err(StoreError::Empty(dir.to_path_buf()));
        }
        Ok(store)
    }

    fn warn(&mut self, msg: String) {
        tracing::warn!("{msg}");
        self.warnings.push(msg);
    }

    fn index_shard(&mut self, path: PathBuf, file: File, bytes: &[u8]) -> Result<(), StoreError> {
        let Some((version, writer, header)) = format::parse_shard_header(bytes) else {
            if bytes.len() < 14 && format::SHARD_MAGIC.starts_with(bytes) {
                // Created, killed before its header was whole: nothing in it.
                self.warn(format!(
                    "{}: empty shard (torn header); skipped",
                    path.display()
                ));
                return Ok(());
            }
            return Err(StoreError::NotAShard(path));
        };
        if version > FORMAT_VERSION {
            return Err(StoreError::Version {
                path,
                found: version,
                writer,
                ours: env!("CARGO_PKG_VERSION"),
                supported: FORMAT_VERSION,
            });
        }
        let shard = self.shards.len();
        let mut off = header;
        let mut warnings = Vec::new();
        while off < bytes.len() {
            match format::decode_frame(&bytes[off..]) {
                Ok((h, _)) => {
                    let list = match h.kind {
                        Kind::Incident => &mut self.incidents,
                        Kind::Key | Kind::Delta => &mut self.frames,
                    };
                    list.push(FrameRef {
                        shard,
                        offset: off,
                        unix_ms: h.unix_ms,
                        kind: h.kind,
                        base_ms: h.base_ms,
                        len: format::FRAME_HEADER + h.len as usize,
                    });
                    off += format::FRAME_HEADER + h.len as usize;
                }
                Err(fault) => {
                    let next = format::next_magic(bytes, off + 1);
                    match (fault, next) {
                        (FrameFault::Torn, None) => {
                            warnings.push(format!(
                                "{}: torn frame at offset {off} (the end of a write cut short); skipped",
                                path.display()
                            ));
                            break;
                        }
                        (FrameFault::Torn, Some(_)) => warnings.push(format!(
                            "{}: corrupt frame at offset {off} (length out of range); skipped",
                            path.display()
                        )),
                        (FrameFault::Corrupt(why), _) => warnings.push(format!(
                            "{}: corrupt frame at offset {off} ({why}); skipped",
                            path.display()
                        )),
                    }
                    match next {
                        Some(n) => off = n,
                        None => break,
                    }
                }
            }
        }
        for w in warnings {
            self.warn(w);
        }
        self.shards.push(ShardData { path, file });
        Ok(())
    }

    /// Incident frame `i`'s post-mortem (`model::incident::Incident`
    /// JSON). An error names the shard and offset.
    pub fn incident(&self, i: usize) -> Result<Value, FrameError> {
        let f = self.incidents.get(i).ok_or(FrameError::NoIncident(i))?;
        self.payload(f)
    }

    fn payload(&self, f: &FrameRef) -> Result<Value, FrameError> {
        let s = &self.shards[f.shard];
        let at = |fault: FrameProblem| FrameError::At {
            path: s.path.clone(),
            offset: f.offset,
            fault,
        };
        let mut bytes = vec![0u8; f.len];
        s.file
            .read_exact_at(&mut bytes, f.offset as u64)
            .map_err(|e| at(FrameProblem::Read(e)))?;
        let (_, payload) = format::decode_frame(&bytes).map_err(|e| at(FrameProblem::Format(e)))?;
        let json = zstd::stream::decode_all(payload).map_err(|e| at(FrameProblem::Zstd(e)))?;
        serde_json::from_slice(&json).map_err(|e| at(FrameProblem::Json(e)))
    }

    /// Frame `i`'s publication JSON (the `/api/v1/snapshot` shape). An
    /// error names the shard and offset of what could not be read.
    pub fn frame(&self, i: usize) -> Result<Value, FrameError> {
        let f = self.frames.get(i).ok_or(FrameError::NoFrame(i))?;
        let doc = match f.kind {
            Kind::Key => match self.payload(f)? {
                Value::Object(m) => m,
                _ => return Err(FrameError::NotAnObject),
            },
            Kind::Delta => {
                let mut base = self.key_for(f)?;
                delta::apply(&mut base, &self.payload(f)?)?;
                base
            }
            Kind::Incident => return Err(FrameError::NotAPublication),
        };
        Ok(delta::unkeyed(Value::Object(doc)))
    }

    fn key_for(&self, f: &FrameRef) -> Result<Map<String, Value>, FrameError> {
        if let Some((shard, ms, key)) = &*self.key_cache.borrow()
            && *shard == f.shard
            && *ms == f.base_ms
        {
            return Ok(key.clone());
        }
        let key = self
            .frames
            .iter()
            .find(|k| k.shard == f.shard && k.kind == Kind::Key && k.unix_ms == f.base_ms)
            .ok_or_else(|| FrameError::At {
                path: self.shards[f.shard].path.clone(),
                offset: f.offset,
                fault: FrameProblem::KeyLost(f.base_ms),
            })?;
        let Value::Object(m) = self.payload(key)? else {
            return Err(FrameError::NotAnObject);
        };
        *self.key_cache.borrow_mut() = Some((f.shard, f.base_ms, m.clone()));
        Ok(m)
    }

    /// The last frame at or before `unix_ms` (else the first).
    pub fn at(&self, unix_ms: u64) -> usize {
        self.frames
            .partition_point(|f| f.unix_ms <= unix_ms)
            .saturating_sub(1)
    }

    /// The frames between `from` and `to` ms (inclusive), in order.
    pub fn range(&self, from: u64, to: u64) -> impl Iterator<Item = usize> + '_ {
        self.frames
            .iter()
            .enumerate()
            .filter(move |(_, f)| f.unix_ms >= from && f.unix_ms <= to)
            .map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::writer::{Writer, WriterSettings};
    use serde_json::json;

    fn publication(ms: u64, rss: u64) -> Value {
        json!({"unix_ms": ms, "processes": [
            {"pid": 1, "start_time_ticks": 9, "comm": "idle", "rss_bytes": 4096},
            {"pid": 2, "start_time_ticks": 9, "comm": "busy", "rss_bytes": rss}]})
    }

    fn write(dir: &Path, n: u64, key_every: u32) {
        let mut w = Writer::new(WriterSettings {
            key_every,
            ..WriterSettings::new(dir.to_path_buf())
        })
        .expect("writer");
        for i in 0..n {
            w.write(1_000_000 + i * 1000, publication(1_000_000 + i * 1000, i))
                .expect("write");
        }
    }

    fn rss_of(v: &Value) -> u64 {
        v["processes"][1]["rss_bytes"].as_u64().expect("rss")
    }

    #[test]
    fn frames_read_back_in_order() {
        let d = tempfile::tempdir().expect("tmp");
        write(d.path(), 20, 7);
        let s = Store::open(d.path(), None).expect("opens");
        assert_eq!(s.frames.len(), 20);
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        for i in 0..20 {
            assert_eq!(rss_of(&s.frame(i).expect("frame")), i as u64);
        }
        assert_eq!(s.at(1_005_500), 5);
    }

    #[test]
    fn a_flipped_byte_skips_that_frame_only_and_names_shard_and_offset() {
        let d = tempfile::tempdir().expect("tmp");
        write(d.path(), 10, 100);
        let (path, _, _) = list_shards(d.path()).expect("list").remove(0);
        let mut b = std::fs::read(&path).expect("read");
        let clean = Store::open(d.path(), None).expect("opens");
        // A delta: only it is lost (a key frame takes its deltas along).
        let v = (3..10)
            .find(|&i| clean.frames[i].kind == Kind::Delta)
            .expect("a delta frame");
        let victim = clean.frames[v];
        let flip = victim.offset + format::FRAME_HEADER + 2;
        b[flip] ^= 0xff;
        std::fs::write(&path, &b).expect("write");
        let s = Store::open(d.path(), None).expect("opens");
        assert_eq!(s.frames.len(), 9);
        assert!(
            s.warnings[0].contains(&path.display().to_string())
                && s.warnings[0].contains(&format!("offset {}", victim.offset)),
            "{:?}",
            s.warnings
        );
        let rss: Vec<u64> = (0..9)
            .map(|i| rss_of(&s.frame(i).expect("frame")))
            .collect();
        let expected: Vec<u64> = (0..10).filter(|&i| i != v as u64).collect();
        assert_eq!(rss, expected);
    }

    #[test]
    fn a_torn_tail_is_skipped() {
        let d = tempfile::tempdir().expect("tmp");
        write(d.path(), 5, 100);
        let (path, _, len) = list_shards(d.path()).expect("list").remove(0);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open");
        f.set_len(len - 3).expect("truncate");
        let s = Store::open(d.path(), None).expect("opens");
        assert_eq!(s.frames.len(), 4);
        assert!(s.warnings[0].contains("torn frame"), "{:?}", s.warnings);
    }

    #[test]
    fn frames_are_read_on_demand_from_the_open_shard_even_after_retention_removes_it() {
        let d = tempfile::tempdir().expect("tmp");
        write(d.path(), 12, 5);
        let s = Store::open(d.path(), None).expect("opens");
        for (path, _, _) in list_shards(d.path()).expect("list") {
            std::fs::remove_file(path).expect("remove");
        }
        let rss: Vec<u64> = (0..12)
            .map(|i| rss_of(&s.frame(i).expect("frame")))
            .collect();
        assert_eq!(rss, (0..12).collect::<Vec<u64>>());
    }

    #[test]
    fn a_missing_store_directory_says_which_flag_to_give() {
        let d = tempfile::tempdir().expect("tmp");
        let gone = d.path().join("never-recorded");
        let e = Store::open(&gone, None).err().expect("refused");
        let text = e.to_string();
        assert!(
            text.contains(&gone.display().to_string()) && text.contains("--store DIR"),
            "{text}"
        );
    }

    #[test]
    fn a_newer_format_is_refused_with_both_versions() {
        let d = tempfile::tempdir().expect("tmp");
        let mut h = format::shard_header();
        h[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
        std::fs::write(d.path().join("memmon-0000000000001.mst"), &h).expect("write");
        let e = Store::open(d.path(), None)
            .err()
            .expect("refused")
            .to_string();
        assert!(
            e.contains(&format!("version {}", FORMAT_VERSION + 1))
                && e.contains(&format!("up to {FORMAT_VERSION}")),
            "{e}"
        );
    }
}
