//! The endpoint's connection cap: every accepted connection takes a slot;
//! at the cap, a new connection closes the one that has sent nothing for
//! the longest among those not inside a request handler (an idle
//! keep-alive connection, or a client still sending its request head or
//! TLS handshake: what an idle or slowloris client holds; a scraper that
//! just sent its request is the last to go), or is refused when every slot
//! is busy. The cap comes
//! from the file limit (`crate::fd_budget`), so clients never take the daemon's
//! own descriptors. A held-back notice says the cap was reached, at most
//! once a minute.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::Notify;

use crate::log_limit::LineBudget;

/// One open connection as the cap sees it.
struct Slot {
    /// Requests inside a handler right now.
    busy: Arc<AtomicU32>,
    /// When the client last sent bytes ([`Progress`]).
    heard: Arc<AtomicU64>,
    /// Told when the connection must close.
    close: Arc<Notify>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    /// By id (the first is the oldest).
    open: BTreeMap<u64, Slot>,
    /// Connections closed to make room, since the last notice.
    closed: u64,
    /// Connections refused (every slot busy), since the last notice.
    refused: u64,
}

/// The slots of every open connection.
pub struct Slots {
    cap: usize,
    inner: Mutex<Inner>,
    notice: Mutex<LineBudget>,
}

/// What happened to a new connection.
pub enum Admission {
    /// It holds a slot (after closing the oldest idle connection when
    /// `made_room`).
    Admitted { ticket: Ticket, made_room: bool },
    /// Every slot is inside a request: close it now.
    Refused,
}

impl Slots {
    /// Slots for at most `cap` connections.
    pub fn new(cap: usize) -> Arc<Slots> {
        Arc::new(Slots {
            cap: cap.max(1),
            inner: Mutex::new(Inner::default()),
            notice: Mutex::new(LineBudget::new(Duration::from_secs(60), 1)),
        })
    }

    /// The cap.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Connections holding a slot.
    pub fn open(&self) -> usize {
        self.lock().open.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Gives a new connection a slot, closing at the cap the connection
    /// not inside a request that has been silent the longest (the oldest
    /// of those silent as long).
    pub fn admit(self: &Arc<Self>) -> Admission {
        let mut inner = self.lock();
        let mut made_room = false;
        if inner.open.len() >= self.cap {
            let quietest = inner
                .open
                .iter()
                .filter(|(_, s)| s.busy.load(Ordering::Relaxed) == 0)
                .min_by_key(|(id, s)| (s.heard.load(Ordering::Relaxed), **id))
                .map(|(id, _)| *id);
            match quietest.and_then(|id| inner.open.remove(&id)) {
                Some(slot) => {
                    slot.close.notify_one();
                    inner.closed += 1;
                    made_room = true;
                }
                None => {
                    inner.refused += 1;
                    drop(inner);
                    self.say_full();
                    return Admission::Refused;
                }
            }
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let busy = Arc::new(AtomicU32::new(0));
        let heard = Arc::new(AtomicU64::new(now_ms()));
        let close = Arc::new(Notify::new());
        inner.open.insert(
            id,
            Slot {
                busy: Arc::clone(&busy),
                heard: Arc::clone(&heard),
                close: Arc::clone(&close),
            },
        );
        drop(inner);
        if made_room {
            self.say_full();
        }
        Admission::Admitted {
            ticket: Ticket {
                id,
                slots: Arc::clone(self),
                busy,
                heard,
                close,
            },
            made_room,
        }
    }

    /// The notice, at most once a minute, with what the cap did since.
    fn say_full(&self) {
        let mut notice = self.notice.lock().unwrap_or_else(|p| p.into_inner());
        if !notice.note(Instant::now()) {
            return;
        }
        drop(notice);
        let (closed, refused) = {
            let mut inner = self.lock();
            (
                std::mem::take(&mut inner.closed),
                std::mem::take(&mut inner.refused),
            )
        };
        tracing::warn!(
            "HTTP: the connection cap ({}, from the file limit) is reached: each new connection \
             closes the oldest idle or unfinished one, or is refused when every one is inside a \
             request ({closed} closed, {refused} refused since the last notice); next notice in a \
             minute at the earliest",
            self.cap
        );
    }
}

/// A connection's slot, given back on drop.
pub struct Ticket {
    id: u64,
    slots: Arc<Slots>,
    busy: Arc<AtomicU32>,
    heard: Arc<AtomicU64>,
    close: Arc<Notify>,
}

impl Ticket {
    /// Where the connection's reads mark that the client sent bytes.
    pub fn progress(&self) -> Progress {
        Progress(Arc::clone(&self.heard))
    }

    /// Marks the connection busy while the guard lives (a request in its
    /// handler: never closed to make room).
    pub fn busy(&self) -> BusyCounter {
        BusyCounter(Arc::clone(&self.busy))
    }

    /// Resolves when the cap closes this connection.
    pub async fn closed(&self) {
        self.close.notified().await;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.slots.lock().open.remove(&self.id);
    }
}

/// Milliseconds since the first call (a clock for [`Progress`]).
fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Marks when a connection's client last sent bytes.
#[derive(Clone)]
pub struct Progress(Arc<AtomicU64>);

impl Progress {
    /// The client sent bytes just now.
    pub fn heard(&self) {
        self.0.store(now_ms(), Ordering::Relaxed);
    }
}

/// Counts a connection's requests in their handlers.
#[derive(Clone)]
pub struct BusyCounter(Arc<AtomicU32>);

impl BusyCounter {
    /// Busy until the returned guard drops.
    pub fn enter(&self) -> BusyGuard {
        self.0.fetch_add(1, Ordering::Relaxed);
        BusyGuard(Arc::clone(&self.0))
    }
}

/// One request inside its handler.
pub struct BusyGuard(Arc<AtomicU32>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(a: Admission) -> Ticket {
        match a {
            Admission::Admitted { ticket, .. } => ticket,
            Admission::Refused => panic!("refused"),
        }
    }

    #[test]
    fn the_oldest_idle_connection_makes_room_and_busy_ones_stay() {
        let slots = Slots::new(3);
        let a = ticket(slots.admit());
        let b = ticket(slots.admit());
        let c = ticket(slots.admit());
        assert_eq!(slots.open(), 3);
        // a is inside a handler: b, the oldest of the silent ones, goes.
        let _in_handler = a.busy().enter();
        let d = match slots.admit() {
            Admission::Admitted { ticket, made_room } => {
                assert!(made_room);
                ticket
            }
            Admission::Refused => panic!("refused with idle slots"),
        };
        assert_eq!(slots.open(), 3);
        {
            let mut closed = std::pin::pin!(b.closed());
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            assert!(
                closed.as_mut().poll(&mut cx).is_ready(),
                "b was told to close"
            );
        }
        // Every slot busy: refused.
        let _c_busy = c.busy().enter();
        let _d_busy = d.busy().enter();
        assert!(matches!(slots.admit(), Admission::Refused));
        // A slot given back is free again.
        drop(b);
        assert_eq!(slots.open(), 3);
        drop(c);
        assert_eq!(slots.open(), 2);
        let _e = ticket(slots.admit());
        assert_eq!(slots.open(), 3);
    }

    #[test]
    fn the_client_silent_the_longest_goes_first() {
        let slots = Slots::new(2);
        let a = ticket(slots.admit());
        let b = ticket(slots.admit());
        std::thread::sleep(Duration::from_millis(5));
        // a, the older, just sent bytes: b, silent since it connected, goes.
        a.progress().heard();
        let _c = ticket(slots.admit());
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(
            std::pin::pin!(b.closed()).poll(&mut cx).is_ready(),
            "b closed"
        );
        assert!(
            std::pin::pin!(a.closed()).poll(&mut cx).is_pending(),
            "a kept"
        );
    }

    #[test]
    fn a_busy_guard_counts_until_dropped() {
        let slots = Slots::new(1);
        let a = ticket(slots.admit());
        let g1 = a.busy().enter();
        let g2 = a.busy().enter();
        assert!(matches!(slots.admit(), Admission::Refused));
        drop(g1);
        assert!(matches!(slots.admit(), Admission::Refused));
        drop(g2);
        assert!(matches!(slots.admit(), Admission::Admitted { .. }));
    }
}
