//! Appends frames to time shards in the store directory. A shard is created
//! new (never reopened, never rewritten) when memmon starts, after a write
//! error, and when it spans `shard_span` or holds `shard_bytes`; its first
//! frame is a key frame, then one every `key_every` frames. Retention
//! removes whole shards, oldest first, beyond `max_bytes` in total or once
//! all their frames are older than `max_age`.

use std::{
    fs::File,
    io::Write as _,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use serde_json::{Map, Value};

use super::{
    StoreError, delta,
    format::{self, Kind, SHARD_SUFFIX},
};

/// Where and how much to keep.
#[derive(Clone, Debug, PartialEq)]
pub struct WriterSettings {
    /// The store directory.
    pub dir: PathBuf,
    /// Total bytes kept (oldest shards removed beyond it).
    pub max_bytes: u64,
    /// Age kept.
    pub max_age: Duration,
    /// A key frame every this many frames.
    pub key_every: u32,
    /// zstd level.
    pub level: i32,
}

impl WriterSettings {
    /// Defaults for `dir`: 1 GiB, 24 h.
    pub fn new(dir: PathBuf) -> Self {
        WriterSettings {
            dir,
            max_bytes: DEFAULT_MAX_BYTES,
            max_age: DEFAULT_MAX_AGE,
            key_every: 300,
            level: 3,
        }
    }

    /// A shard's time span: an hour, less when the age kept is short.
    fn shard_span(&self) -> Duration {
        (self.max_age / 8).clamp(Duration::from_secs(10), Duration::from_secs(3600))
    }

    /// A shard's size cap: an eighth of the total (so retention by size
    /// removes a small part at a time).
    fn shard_bytes(&self) -> u64 {
        (self.max_bytes / 8).clamp(16 << 10, 256 << 20)
    }
}

/// Default `record_max_bytes`.
pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;
/// Default `record_max_age`.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// How often written frames are flushed to the device (fdatasync); a
/// kill -9 loses nothing written, a power cut at most this much.
const SYNC_EVERY: Duration = Duration::from_secs(5);

struct Shard {
    path: PathBuf,
    file: File,
    bytes: u64,
    started_ms: u64,
    synced: Instant,
}

/// The shard being written and the key frame deltas refer to.
pub struct Writer {
    settings: WriterSettings,
    shard: Option<Shard>,
    key: Option<(u64, Map<String, Value>)>,
    since_key: u32,
    frames: u64,
}

/// The shard file for a start time.
pub fn shard_name(unix_ms: u64) -> String {
    format!("memmon-{unix_ms:013}{SHARD_SUFFIX}")
}

/// A shard's start time from its file name.
pub fn shard_start(path: &Path) -> Option<u64> {
    path.file_name()?
        .to_str()?
        .strip_prefix("memmon-")?
        .strip_suffix(SHARD_SUFFIX)?
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// The store's shards, oldest first, with their sizes.
pub fn list_shards(dir: &Path) -> Result<Vec<(PathBuf, u64, u64)>, StoreError> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))? {
        let Ok(e) = e else { continue };
        let path = e.path();
        if let Some(start) = shard_start(&path) {
            let len = e.metadata().map_or(0, |m| m.len());
            out.push((path, start, len));
        }
    }
    out.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    Ok(out)
}

impl Writer {
    /// A writer into `settings.dir` (created if missing).
    pub fn new(settings: WriterSettings) -> Result<Self, StoreError> {
        std::fs::create_dir_all(&settings.dir).map_err(|e| StoreError::io(&settings.dir, e))?;
        Ok(Writer {
            settings,
            shard: None,
            key: None,
            since_key: 0,
            frames: 0,
        })
    }

    /// The settings.
    pub fn settings(&self) -> &WriterSettings {
        &self.settings
    }

    /// Appends one publication (its JSON) taken at `unix_ms`. On an error
    /// the shard is closed; the next frame starts a new one.
    pub fn write(&mut self, unix_ms: u64, publication: Value) -> Result<(), StoreError> {
        let Value::Object(doc) = delta::keyed(publication) else {
            return Ok(());
        };
        let rotate = self.shard.as_ref().is_none_or(|s| {
            unix_ms.saturating_sub(s.started_ms) >= self.settings.shard_span().as_millis() as u64
                || s.bytes >= self.settings.shard_bytes()
        });
        if rotate {
            self.shard = None;
            self.key = None;
            self.open_shard(unix_ms)?;
            self.retain(unix_ms);
        }
        let key_due = self.key.is_none() || self.since_key >= self.settings.key_every;
        let (kind, base_ms, json) = match (&self.key, key_due) {
            (Some((base, key)), false) => (
                Kind::Delta,
                *base,
                serde_json::to_vec(&delta::diff(key, &doc).unwrap_or(Value::Object(Map::new()))),
            ),
            _ => (Kind::Key, unix_ms, serde_json::to_vec(&doc)),
        };
        let json = json.map_err(|e| StoreError::io(&self.settings.dir, e.into()))?;
        let payload = zstd::bulk::compress(&json, self.settings.level)
            .map_err(|e| StoreError::io(&self.settings.dir, e))?;
        let frame = format::encode_frame(kind, unix_ms, base_ms, &payload);
        let Some(shard) = self.shard.as_mut() else {
            return Ok(());
        };
        if let Err(e) = shard.file.write_all(&frame) {
            let path = shard.path.clone();
            self.shard = None;
            self.key = None;
            return Err(StoreError::io(&path, e));
        }
        shard.bytes += frame.len() as u64;
        if shard.synced.elapsed() >= SYNC_EVERY {
            let _ = shard.file.sync_data();
            shard.synced = Instant::now();
        }
        if kind == Kind::Key {
            self.key = Some((unix_ms, doc));
            self.since_key = 1;
        } else {
            self.since_key += 1;
        }
        self.frames += 1;
        if self.frames.is_multiple_of(60) {
            self.retain(unix_ms);
        }
        Ok(())
    }

    fn open_shard(&mut self, unix_ms: u64) -> Result<(), StoreError> {
        let dir = &self.settings.dir;
        let mut path = dir.join(shard_name(unix_ms));
        let mut n = 1;
        while path.exists() {
            path = dir.join(format!("memmon-{unix_ms:013}.{n}{SHARD_SUFFIX}"));
            n += 1;
        }
        let opened = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .and_then(|mut f| f.write_all(&format::shard_header()).map(|_| f));
        match opened {
            Ok(file) => {
                self.shard = Some(Shard {
                    bytes: format::shard_header().len() as u64,
                    path,
                    file,
                    started_ms: unix_ms,
                    synced: Instant::now(),
                });
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                Err(StoreError::io(&path, e))
            }
        }
    }

    /// Removes the oldest shards beyond the size or age kept (never the
    /// one being written).
    fn retain(&mut self, now_ms: u64) {
        let Ok(shards) = list_shards(&self.settings.dir) else {
            return;
        };
        let current = self.shard.as_ref().map(|s| s.path.clone());
        let mut total: u64 = shards.iter().map(|s| s.2).sum();
        let oldest_kept = now_ms.saturating_sub(self.settings.max_age.as_millis() as u64);
        for (i, (path, _, len)) in shards.iter().enumerate() {
            if Some(path) == current.as_ref() {
                break;
            }
            // A shard's frames end where the next shard starts.
            let ends = shards.get(i + 1).map_or(now_ms, |n| n.1);
            if total <= self.settings.max_bytes && ends >= oldest_kept {
                break;
            }
            match std::fs::remove_file(path) {
                Ok(()) => {
                    tracing::debug!("store: removed {} (retention)", path.display());
                    total = total.saturating_sub(*len);
                }
                Err(e) => {
                    tracing::warn!("store: cannot remove {}: {e}", path.display());
                    break;
                }
            }
        }
    }
}
