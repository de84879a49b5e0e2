//! The local store of every sample (`memmon daemon --record DIR`, `memmon
//! record DIR`), read by `memmon replay` and `memmon dump`. Each pass's
//! publication (its `/api/v1/snapshot` JSON: processes, cgroups, system
//! view, probe states, events) is one frame, appended to time shards that
//! are never rewritten:
//! - `format`: the versioned shard header and the checksummed frame header;
//! - `delta`: a frame as a JSON patch against its shard's last key frame;
//! - `writer`: shards, rotation, retention by age and size, disk-full;
//! - `recorder`: the writer's own thread behind a bounded channel, so a slow
//!   disk never delays a pass or a scrape;
//! - `reader`: the frames back, skipping torn or corrupt ones with a warning;
//! - `time`: the TIME arguments (RFC 3339, Unix seconds, "10m ago").

pub mod delta;
pub mod format;
pub mod reader;
pub mod recorder;
pub mod time;
pub mod writer;

/// A store error: the file and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: std::path::PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The shard was written by a newer memmon in a format this one cannot read.
    #[error(
        "{path}: store format version {found} (written by memmon {writer}); this memmon {ours} reads versions up to {supported}: upgrade memmon to read it"
    )]
    Version {
        /// The shard.
        path: std::path::PathBuf,
        /// Its format version.
        found: u32,
        /// The memmon version that wrote it.
        writer: String,
        /// This memmon's version.
        ours: &'static str,
        /// The newest format this memmon reads.
        supported: u32,
    },
    /// Not a memmon store shard.
    #[error("{0}: not a memmon store shard (bad magic)")]
    NotAShard(std::path::PathBuf),
    /// Nothing recorded.
    #[error("{0}: no recorded frames (is this the directory given to --record?)")]
    Empty(std::path::PathBuf),
    /// The store directory does not exist.
    #[error(
        "no store at {0}: the directory does not exist; give --store DIR, the directory `memmon record DIR` or `memmon daemon --record DIR` writes (the packaged service records into /var/lib/memmon/store)"
    )]
    Missing(std::path::PathBuf),
}

impl StoreError {
    /// An I/O error on `path`.
    pub fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
