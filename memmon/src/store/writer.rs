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

use std::sync::Arc;

use crate::model::{ProcessView, published::Published};

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

/// The key frame deltas refer to: its time, its JSON (without `processes`
/// when `views` holds them) and, for publications, its process rows (an
/// unchanged row is compared, not serialized).
struct Key {
    unix_ms: u64,
    doc: Map<String, Value>,
    views: Option<std::collections::HashMap<RowKey, Arc<ProcessView>>>,
    /// Its compressed size.
    payload_len: usize,
}

/// A process row's identity: pid and start time.
type RowKey = (u32, u64);

/// A delta larger than this share of its key frame makes the next frame a
/// key frame: rows that changed once since the key (a process that warmed
/// up, then went idle) would otherwise ride along in every delta until
/// the next scheduled key, costing bytes and the CPU to serialize them.
const REKEY_SHARE: usize = 4;

/// The shard being written and the key frame deltas refer to.
pub struct Writer {
    settings: WriterSettings,
    shard: Option<Shard>,
    key: Option<Key>,
    since_key: u32,
    frames: u64,
    /// The last delta outgrew [`REKEY_SHARE`].
    rekey: bool,
    /// Ids of the incidents written, of those the publications still carry.
    written: std::collections::HashSet<String>,
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
            rekey: false,
            written: Default::default(),
        })
    }

    /// The settings.
    pub fn settings(&self) -> &WriterSettings {
        &self.settings
    }

    /// Appends one publication (its JSON) taken at `unix_ms`. On an error
    /// the shard is closed; the next frame starts a new one.
    pub fn write(&mut self, unix_ms: u64, publication: Value) -> Result<(), StoreError> {
        self.write_inner(unix_ms, publication, None)
    }

    /// Appends a publication: rows equal to the key frame's are compared,
    /// never serialized (what keeps 1,000 idle processes cheap).
    pub fn write_publication(&mut self, p: &Published) -> Result<(), StoreError> {
        // Its incidents not written yet first, each once as its own frame:
        // one lost with a failed write goes with the next publication.
        for i in &p.incident_records {
            if !self.written.contains(&i.id) {
                self.write_incident(p.unix_ms, i)?;
            }
        }
        self.written
            .retain(|id| p.incident_records.iter().any(|i| &i.id == id));
        let rest = p.clone_without_processes();
        let rest = serde_json::to_value(&rest).map_err(|e| self.encode_error(e))?;
        self.write_inner(p.unix_ms, rest, Some(&p.processes))
    }

    /// Appends one post-mortem as an incident frame, at the pass `pass_ms`
    /// that carries it (the kill's own time is in the frame's `base_ms`
    /// and in the incident).
    pub fn write_incident(
        &mut self,
        pass_ms: u64,
        i: &crate::model::incident::Incident,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_vec(i).map_err(|e| self.encode_error(e))?;
        let payload = zstd::bulk::compress(&json, self.settings.level)
            .map_err(|e| StoreError::io(&self.settings.dir, e))?;
        let frame = format::encode_frame(Kind::Incident, pass_ms, i.unix_ms, &payload);
        if self.shard.is_none() {
            self.key = None;
            self.open_shard(pass_ms)?;
            self.retain(pass_ms);
        }
        // A post-mortem is the one record an operator looks for after a
        // crash: on the device at once.
        self.append(&frame, true)?;
        self.written.insert(i.id.clone());
        Ok(())
    }

    fn encode_error(&self, e: serde_json::Error) -> StoreError {
        StoreError::io(&self.settings.dir, e.into())
    }

    fn write_inner(
        &mut self,
        unix_ms: u64,
        publication: Value,
        views: Option<&[Arc<ProcessView>]>,
    ) -> Result<(), StoreError> {
        let Value::Object(mut doc) = delta::keyed(publication) else {
            return Ok(());
        };
        if views.is_some() {
            doc.remove("processes");
        }
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
        let mut key_due =
            self.key.is_none() || self.rekey || self.since_key >= self.settings.key_every;
        // A key frame most rows differ from (the first pass has no rates
        // yet) would make every delta carry every row: start a new one.
        if let (
            Some(views),
            Some(Key {
                views: Some(old), ..
            }),
        ) = (views, &self.key)
            && views
                .iter()
                .filter(|v| !same_row(old.get(&row_key(v)), v))
                .count()
                * 2
                > views.len()
        {
            key_due = true;
        }
        let (kind, base_ms, json) = match (&self.key, key_due) {
            (Some(key), false) => {
                let mut patch = match delta::diff(&key.doc, &doc) {
                    Some(Value::Object(m)) => m,
                    _ => Map::new(),
                };
                if let (Some(views), Some(old)) = (views, &key.views)
                    && let Some(procs) =
                        process_patch(views, old).map_err(|e| self.encode_error(e))?
                {
                    let p = patch
                        .entry("p")
                        .or_insert_with(|| Value::Object(Map::new()));
                    if let Value::Object(p) = p {
                        p.insert("processes".into(), procs);
                    }
                }
                (
                    Kind::Delta,
                    key.unix_ms,
                    serde_json::to_vec(&Value::Object(patch)),
                )
            }
            _ => {
                let mut full = doc.clone();
                if let Some(views) = views {
                    let mut m = Map::new();
                    for v in views {
                        m.insert(
                            key_string(row_key(v)),
                            serde_json::to_value(v).map_err(|e| self.encode_error(e))?,
                        );
                    }
                    full.insert("processes".into(), Value::Object(m));
                }
                (Kind::Key, unix_ms, serde_json::to_vec(&full))
            }
        };
        let json = json.map_err(|e| self.encode_error(e))?;
        let payload = zstd::bulk::compress(&json, self.settings.level)
            .map_err(|e| StoreError::io(&self.settings.dir, e))?;
        let frame = format::encode_frame(kind, unix_ms, base_ms, &payload);
        self.append(&frame, false)?;
        if kind == Kind::Key {
            self.key = Some(Key {
                unix_ms,
                doc,
                views: views.map(|vs| vs.iter().map(|v| (row_key(v), Arc::clone(v))).collect()),
                payload_len: payload.len(),
            });
            self.since_key = 1;
            self.rekey = false;
        } else {
            self.since_key += 1;
            self.rekey = self
                .key
                .as_ref()
                .is_some_and(|k| payload.len() * REKEY_SHARE > k.payload_len);
        }
        self.frames += 1;
        if self.frames.is_multiple_of(60) {
            self.retain(unix_ms);
        }
        Ok(())
    }

    /// Appends a whole frame to the open shard (none open: nothing is
    /// written), flushed to the device when `sync` or every
    /// [`SYNC_EVERY`]. On an error the shard is closed; the next frame
    /// starts a new one.
    fn append(&mut self, frame: &[u8], sync: bool) -> Result<(), StoreError> {
        let Some(shard) = self.shard.as_mut() else {
            return Ok(());
        };
        if let Err(e) = shard.file.write_all(frame) {
            let path = shard.path.clone();
            self.shard = None;
            self.key = None;
            return Err(StoreError::io(&path, e));
        }
        shard.bytes += frame.len() as u64;
        if sync || shard.synced.elapsed() >= SYNC_EVERY {
            let _ = shard.file.sync_data();
            shard.synced = Instant::now();
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

/// True when `v` equals the key frame's row (the same shared row, most
/// often: an unchanged process publishes its row again).
fn same_row(old: Option<&Arc<ProcessView>>, v: &Arc<ProcessView>) -> bool {
    old.is_some_and(|o| Arc::ptr_eq(o, v) || **o == **v)
}

/// A process row's identity.
fn row_key(v: &ProcessView) -> RowKey {
    (v.pid, v.start_time_ticks)
}

/// A process's key in frames (`delta::keyed`'s).
fn key_string((pid, start): RowKey) -> String {
    format!("{pid}:{start}")
}

/// The patch of the `processes` object: rows that differ from the key
/// frame's (whole), rows gone.
fn process_patch(
    views: &[Arc<ProcessView>],
    old: &std::collections::HashMap<RowKey, Arc<ProcessView>>,
) -> Result<Option<Value>, serde_json::Error> {
    let mut set = Map::new();
    let mut now = std::collections::HashSet::with_capacity(views.len());
    for v in views {
        let k = row_key(v);
        if !same_row(old.get(&k), v) {
            set.insert(key_string(k), serde_json::to_value(v)?);
        }
        now.insert(k);
    }
    let del: Vec<Value> = old
        .keys()
        .filter(|k| !now.contains(*k))
        .map(|k| Value::String(key_string(*k)))
        .collect();
    if set.is_empty() && del.is_empty() {
        return Ok(None);
    }
    let mut out = Map::new();
    if !set.is_empty() {
        out.insert("s".into(), Value::Object(set));
    }
    if !del.is_empty() {
        out.insert("d".into(), Value::Array(del));
    }
    Ok(Some(Value::Object(out)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::view::idx;

    /// A process row with only its RSS set.
    fn row(pid: u32, rss: f64) -> ProcessView {
        let mut v = ProcessView {
            pid,
            start_time_ticks: 5,
            comm: format!("p{pid}"),
            ..Default::default()
        };
        v.values.set(idx::RSS, Some(rss));
        v
    }

    #[test]
    fn publications_read_back_whole_and_idle_rows_stay_out_of_deltas() {
        let d = tempfile::tempdir().expect("tmp");
        let mut w = Writer::new(WriterSettings::new(d.path().to_path_buf())).expect("writer");
        for i in 0..4u64 {
            let mut processes: Vec<ProcessView> = (1..=50).map(|p| row(p, 4096.0)).collect();
            processes.push(row(99, (i << 20) as f64));
            if i == 3 {
                processes.remove(0); // pid 1 exits
            }
            let p = Published {
                unix_ms: 1000 + i,
                processes: processes.into_iter().map(Arc::new).collect(),
                ..Default::default()
            };
            w.write_publication(&p).expect("write");
        }
        let s = crate::store::reader::Store::open(d.path(), None).expect("opens");
        assert_eq!(s.frames.len(), 4);
        for i in 0..4 {
            let f = s.frame(i).expect("frame");
            let procs = f["processes"].as_array().expect("processes");
            assert_eq!(procs.len(), if i == 3 { 50 } else { 51 });
            let busy = procs.iter().find(|p| p["pid"] == 99).expect("pid 99");
            assert_eq!(busy["rss_bytes"].as_u64(), Some((i as u64) << 20));
            let back = ProcessView::from_json(busy).expect("row");
            assert_eq!(back.value(idx::RSS), Some(((i as u64) << 20) as f64));
        }
        // A delta with one busy row is far smaller than the key frame.
        let shard = std::fs::read(&list_shards(d.path()).expect("list")[0].0).expect("read");
        let len = |f: &crate::store::reader::FrameRef| {
            format::decode_frame(&shard[f.offset..])
                .expect("frame")
                .1
                .len()
        };
        assert!(
            len(&s.frames[1]) * 2 < len(&s.frames[0]),
            "{} vs {}",
            len(&s.frames[1]),
            len(&s.frames[0])
        );
    }

    #[test]
    fn a_delta_that_outgrows_a_quarter_of_its_key_makes_the_next_frame_a_key() {
        let d = tempfile::tempdir().expect("tmp");
        let mut w = Writer::new(WriterSettings::new(d.path().to_path_buf())).expect("writer");
        // 200 rows; at the second pass 80 of them change once (too few for
        // the "most rows differ" rule), then stay.
        for i in 0..4u64 {
            let processes = (1..=200u32)
                .map(|p| {
                    let warmed = i >= 1 && p <= 80;
                    row(
                        p,
                        if warmed {
                            8192.0 + f64::from(p)
                        } else {
                            4096.0
                        },
                    )
                })
                .map(Arc::new)
                .collect();
            let p = Published {
                unix_ms: 1000 + i,
                processes,
                ..Default::default()
            };
            w.write_publication(&p).expect("write");
        }
        let s = crate::store::reader::Store::open(d.path(), None).expect("opens");
        let kinds: Vec<format::Kind> = s.frames.iter().map(|f| f.kind).collect();
        use format::Kind::{Delta, Key};
        assert_eq!(kinds, vec![Key, Delta, Key, Delta]);
        for i in 0..4 {
            let f = s.frame(i).expect("frame");
            let p80 = f["processes"]
                .as_array()
                .and_then(|ps| ps.iter().find(|p| p["pid"] == 80))
                .expect("pid 80");
            let want = if i >= 1 { 8192 + 80 } else { 4096 };
            assert_eq!(p80["rss_bytes"].as_u64(), Some(want), "frame {i}");
        }
    }
}
