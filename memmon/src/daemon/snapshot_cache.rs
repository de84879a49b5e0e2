//! `/api/v1/snapshot`'s body, made once per publication and one at a time:
//! the JSON of every process (megabytes with thousands of them) is
//! serialized, and gzipped when asked, on a blocking thread for the first
//! request after a pass, and every later request is handed the same bytes.
//! Requests that arrive while a body is being made wait for it (and take
//! it: it is newer than their arrival) instead of making their own, so a
//! flood of snapshot requests, or clients that ask and never read, cost at
//! most one serialization at a time, and never the endpoint's own thread,
//! which keeps answering /metrics.

use std::time::Instant;

use bytes::Bytes;
use tokio::sync::Mutex;

use crate::model::published::{Published, Shared, latest};

/// Which publication a body belongs to.
type Key = (u64, u64);

fn key(p: &Published) -> Key {
    (p.samples_total, p.unix_ms)
}

/// The bodies of the latest publication asked for.
#[derive(Default)]
pub struct SnapshotCache {
    inner: Mutex<Option<Bodies>>,
}

struct Bodies {
    key: Key,
    /// When its making started.
    started: Instant,
    json: Result<Bytes, String>,
    gzip: Option<Bytes>,
}

impl SnapshotCache {
    /// The JSON of the latest publication, gzipped when `gzip` (and large
    /// enough): (body, gzipped). Err: serialization failed.
    pub async fn body(&self, shared: &Shared, gzip: bool) -> Result<(Bytes, bool), String> {
        let asked = Instant::now();
        let mut inner = self.inner.lock().await;
        let p = latest(shared);
        let fresh = inner
            .as_ref()
            .is_some_and(|b| b.key == key(&p) || b.started >= asked);
        if !fresh {
            let started = Instant::now();
            let key = key(&p);
            let json = tokio::task::spawn_blocking(move || {
                serde_json::to_vec(&*p)
                    .map(Bytes::from)
                    .map_err(|e| e.to_string())
            })
            .await
            .unwrap_or_else(|e| Err(format!("serializing the snapshot failed: {e}")));
            *inner = Some(Bodies {
                key,
                started,
                json,
                gzip: None,
            });
        }
        let Some(bodies) = inner.as_mut() else {
            return Err("no snapshot body".into());
        };
        let json = bodies.json.clone()?;
        if !gzip || json.len() < super::gzip::MIN_BYTES {
            return Ok((json, false));
        }
        if bodies.gzip.is_none() {
            let plain = json.clone();
            bodies.gzip = tokio::task::spawn_blocking(move || super::gzip::gzip(&plain))
                .await
                .ok()
                .flatten()
                .map(Bytes::from);
        }
        Ok(match &bodies.gzip {
            Some(z) => (z.clone(), true),
            None => (json, false),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, RwLock};

    use super::*;

    fn publish(shared: &Shared, n: u64) {
        let p = Published {
            samples_total: n,
            unix_ms: n * 1000,
            ..Published::default()
        };
        *shared.write().expect("lock") = Arc::new(p);
    }

    #[tokio::test]
    async fn one_body_per_publication_and_a_new_one_after_a_pass() {
        let shared: Shared = Arc::new(RwLock::new(Arc::new(Published::default())));
        publish(&shared, 1);
        let cache = SnapshotCache::default();
        let (a, zipped) = cache.body(&shared, false).await.expect("json");
        assert!(!zipped);
        let (b, _) = cache.body(&shared, false).await.expect("json");
        assert_eq!(
            a.as_ptr(),
            b.as_ptr(),
            "the same bytes, not serialized again"
        );
        let v: serde_json::Value = serde_json::from_slice(&a).expect("valid JSON");
        assert_eq!(v["samples_total"], 1);
        publish(&shared, 2);
        let (c, _) = cache.body(&shared, false).await.expect("json");
        let v: serde_json::Value = serde_json::from_slice(&c).expect("valid JSON");
        assert_eq!(v["samples_total"], 2, "a new publication, a new body");
        let (z, zipped) = cache.body(&shared, true).await.expect("gzip");
        if c.len() >= super::super::gzip::MIN_BYTES {
            assert!(zipped && z.starts_with(&[0x1f, 0x8b]), "gzip magic");
        } else {
            assert!(!zipped && z == c, "small bodies go plain");
        }
    }
}
