//! The writer on its own thread. The sampler hands each publication over a
//! bounded channel and never waits: when the disk is slow and the channel
//! is full, that frame is dropped and counted. A write error (disk full) is
//! logged once; recording resumes, in a new shard, when a write succeeds.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc::{SyncSender, TrySendError},
    },
    thread::JoinHandle,
};

use super::{
    StoreError,
    writer::{Writer, WriterSettings},
};
use crate::model::published::Published;

/// Publications waiting for the disk, at most.
const QUEUE: usize = 16;

/// The recording thread's handle.
pub struct Recorder {
    tx: Option<SyncSender<Arc<Published>>>,
    thread: Option<JoinHandle<()>>,
    dropped: Arc<AtomicU64>,
}

impl Recorder {
    /// Starts recording into `settings.dir` (created if missing).
    pub fn start(settings: WriterSettings) -> Result<Recorder, StoreError> {
        let mut writer = Writer::new(settings)?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<Arc<Published>>(QUEUE);
        let thread = std::thread::Builder::new()
            .name("memmon-recorder".into())
            .spawn(move || {
                let mut failing = false;
                for p in rx {
                    match writer.write_publication(&p) {
                        Ok(()) if failing => {
                            tracing::warn!(
                                "store: recording into {} again",
                                writer.settings().dir.display()
                            );
                            failing = false;
                        }
                        Ok(()) => {}
                        Err(e) if !failing => {
                            tracing::error!(
                                "store: cannot write: {e}; recording paused until writes succeed again (frames meanwhile are lost; free space or raise record_max_bytes' filesystem)"
                            );
                            failing = true;
                        }
                        Err(_) => {}
                    }
                }
            })
            .map_err(|e| StoreError::io(std::path::Path::new("memmon-recorder"), e))?;
        Ok(Recorder {
            tx: Some(tx),
            thread: Some(thread),
            dropped: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Hands over a publication without waiting.
    pub fn offer(&self, p: Arc<Published>) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(p) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if n == 1 || n.is_multiple_of(100) {
                    tracing::warn!("store: the disk is behind; {n} frames not recorded so far");
                }
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Frames dropped because the writer was behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for Recorder {
    /// Writes what is queued, then stops the thread.
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
