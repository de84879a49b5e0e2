//! The endpoint's connection cap and each connection's deadlines. Every
//! accepted connection takes a slot; at the cap, a new connection closes
//! the one that has sent nothing for the longest among those not inside a
//! request handler, taking first those that never had a request answered
//! (an idle client, one still dribbling its request head or TLS
//! handshake: what an idle flood or slowloris holds) and only then the
//! proven ones (a scraper keeping its connection alive between scrapes);
//! when every slot is inside a request, the new one is refused. The cap
//! comes from the file limit (`crate::fd_budget`), so clients never take
//! the daemon's own descriptors. A held-back notice says the cap was
//! reached, at most once a minute.
//!
//! A connection waiting for a request head gets [`HEAD_TIMEOUT`] for it
//! (counted from its start, or for a proven client from the request's
//! first byte), and a proven client may stay silent between requests for
//! [`KEEP_ALIVE_IDLE`] (longer than the usual scrape intervals, so a
//! scraper keeps its connection from one scrape to the next).

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

/// A request head must arrive within this: from a new connection's start
/// (after its TLS handshake), or for a proven client from the first byte
/// of its next request. The connection closes otherwise.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// A proven client (a request answered on this connection) may be silent
/// this long between requests (Prometheus's own client keeps idle
/// connections 5 minutes; scrape intervals are 10 s to 1 minute).
pub const KEEP_ALIVE_IDLE: Duration = Duration::from_secs(300);

/// One connection's state, shared by its slot and its task.
struct Conn {
    /// Requests inside a handler right now.
    busy: AtomicU32,
    /// Requests answered (below 400) on this connection: a proven client.
    answered: AtomicU64,
    /// When the client last sent bytes (ms, [`now_ms`]).
    heard: AtomicU64,
    /// Since when the connection waits for a request head: its start, or
    /// its last answer (ms).
    waiting_since: AtomicU64,
    /// The first bytes since `waiting_since` (ms + 1; 0: none yet).
    head_started: AtomicU64,
    /// Told when the connection must close.
    close: Notify,
}

impl Conn {
    fn new(now: u64) -> Self {
        Conn {
            busy: AtomicU32::new(0),
            answered: AtomicU64::new(0),
            heard: AtomicU64::new(now),
            waiting_since: AtomicU64::new(now),
            head_started: AtomicU64::new(0),
            close: Notify::new(),
        }
    }

    fn idle(&self) -> bool {
        self.busy.load(Ordering::Relaxed) == 0
    }

    fn proven(&self) -> bool {
        self.answered.load(Ordering::Relaxed) > 0
    }

    /// When the wait for the next request head ends (ms); `None` while a
    /// request is inside its handler.
    fn head_deadline(&self) -> Option<u64> {
        if !self.idle() {
            return None;
        }
        let since = self.waiting_since.load(Ordering::Relaxed);
        if !self.proven() {
            return Some(since + HEAD_TIMEOUT.as_millis() as u64);
        }
        Some(match self.head_started.load(Ordering::Relaxed) {
            0 => since + KEEP_ALIVE_IDLE.as_millis() as u64,
            first => first - 1 + HEAD_TIMEOUT.as_millis() as u64,
        })
    }
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    /// By id (the first is the oldest).
    open: BTreeMap<u64, Arc<Conn>>,
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
    /// It holds a slot (after closing another connection when
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
    /// not inside a request that goes first: never answered before
    /// answered, then silent the longest, then the oldest.
    pub fn admit(self: &Arc<Self>) -> Admission {
        let mut inner = self.lock();
        let mut made_room = false;
        if inner.open.len() >= self.cap {
            let first_to_go = inner
                .open
                .iter()
                .filter(|(_, c)| c.idle())
                .min_by_key(|(id, c)| (c.proven(), c.heard.load(Ordering::Relaxed), **id))
                .map(|(id, _)| *id);
            match first_to_go.and_then(|id| inner.open.remove(&id)) {
                Some(conn) => {
                    conn.close.notify_one();
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
        let conn = Arc::new(Conn::new(now_ms()));
        inner.open.insert(id, Arc::clone(&conn));
        drop(inner);
        if made_room {
            self.say_full();
        }
        Admission::Admitted {
            ticket: Ticket {
                id,
                slots: Arc::clone(self),
                conn,
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
             closes an idle or unfinished one (those never answered first), or is refused when \
             every one is inside a request ({closed} closed, {refused} refused since the last \
             notice); next notice in a minute at the earliest",
            self.cap
        );
    }
}

/// A connection's slot, given back on drop.
pub struct Ticket {
    id: u64,
    slots: Arc<Slots>,
    conn: Arc<Conn>,
}

impl Ticket {
    /// Where the connection's reads mark that the client sent bytes.
    pub fn progress(&self) -> Progress {
        Progress(Arc::clone(&self.conn))
    }

    /// Marks the connection busy while a request is in its handler (never
    /// closed to make room).
    pub fn busy(&self) -> BusyCounter {
        BusyCounter(Arc::clone(&self.conn))
    }

    /// The wait for a request head starts again now (a TLS handshake
    /// finished: the head's time is its own).
    pub fn restart_head_wait(&self) {
        self.conn.waiting_since.store(now_ms(), Ordering::Relaxed);
        self.conn.head_started.store(0, Ordering::Relaxed);
    }

    /// Resolves when the cap closes this connection.
    pub async fn closed(&self) {
        self.conn.close.notified().await;
    }

    /// Resolves when the connection has waited too long for a request
    /// head ([`HEAD_TIMEOUT`], [`KEEP_ALIVE_IDLE`]).
    pub async fn head_timed_out(&self) {
        loop {
            let now = now_ms();
            let wait = match self.conn.head_deadline() {
                // Inside a handler: looked at again within HEAD_TIMEOUT,
                // never late, as every deadline is at least that far from
                // the answer that ends the handler.
                None => HEAD_TIMEOUT,
                Some(deadline) if deadline <= now => return,
                Some(deadline) => Duration::from_millis(deadline - now),
            };
            tokio::time::sleep(wait).await;
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.slots.lock().open.remove(&self.id);
    }
}

/// Milliseconds since the first call (the connections' clock).
fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Marks when a connection's client sends bytes.
#[derive(Clone)]
pub struct Progress(Arc<Conn>);

impl Progress {
    /// The client sent bytes just now.
    pub fn heard(&self) {
        let now = now_ms();
        self.0.heard.store(now, Ordering::Relaxed);
        if self.0.idle() {
            // The first bytes of the next request head.
            let _ = self.0.head_started.compare_exchange(
                0,
                now + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }
}

/// Counts a connection's requests in their handlers.
#[derive(Clone)]
pub struct BusyCounter(Arc<Conn>);

impl BusyCounter {
    /// Busy until the returned guard is done.
    pub fn enter(&self) -> BusyGuard {
        self.0.busy.fetch_add(1, Ordering::Relaxed);
        BusyGuard {
            conn: Arc::clone(&self.0),
            answered: false,
        }
    }
}

/// One request inside its handler.
pub struct BusyGuard {
    conn: Arc<Conn>,
    answered: bool,
}

impl BusyGuard {
    /// The request was answered with `status`: below 400, the client is
    /// proven (it speaks HTTP, and is let in).
    pub fn answered(mut self, status: u16) {
        self.answered = status < 400;
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        let c = &self.conn;
        if self.answered {
            c.answered.fetch_add(1, Ordering::Relaxed);
        }
        // The wait for the next head starts with the answer (stored before
        // the connection is idle again, so the deadline never sees an old
        // start).
        c.waiting_since.store(now_ms(), Ordering::Relaxed);
        c.head_started.store(0, Ordering::Relaxed);
        c.busy.fetch_sub(1, Ordering::Relaxed);
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
    fn a_proven_client_goes_after_every_unproven_one() {
        let slots = Slots::new(3);
        let scraper = ticket(slots.admit());
        // The scraper's request is answered; it then waits, silent, for
        // its next scrape.
        scraper.busy().enter().answered(200);
        let refused = ticket(slots.admit());
        refused.busy().enter().answered(401);
        std::thread::sleep(Duration::from_millis(5));
        // An idle client, newer and more recently heard than the scraper.
        let idle = ticket(slots.admit());
        idle.progress().heard();
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        // Unproven first (a 401 proves nothing), silent longest first.
        let _a = ticket(slots.admit());
        assert!(std::pin::pin!(refused.closed()).poll(&mut cx).is_ready());
        let _b = ticket(slots.admit());
        assert!(std::pin::pin!(idle.closed()).poll(&mut cx).is_ready());
        assert!(
            std::pin::pin!(scraper.closed()).poll(&mut cx).is_pending(),
            "the proven client is kept while unproven ones remain"
        );
        // The next one again takes an unproven one (_a).
        let _c = ticket(slots.admit());
        assert!(std::pin::pin!(scraper.closed()).poll(&mut cx).is_pending());
    }

    #[test]
    fn head_deadlines_new_and_proven_connections() {
        let head = HEAD_TIMEOUT.as_millis() as u64;
        let idle = KEEP_ALIVE_IDLE.as_millis() as u64;
        let c = Conn::new(1000);
        assert_eq!(c.head_deadline(), Some(1000 + head), "new: from its start");
        c.busy.fetch_add(1, Ordering::Relaxed);
        assert_eq!(c.head_deadline(), None, "inside a handler");
        let guard = BusyGuard {
            conn: Arc::new(Conn::new(1000)),
            answered: false,
        };
        let conn = Arc::clone(&guard.conn);
        conn.busy.fetch_add(1, Ordering::Relaxed);
        guard.answered(200);
        let since = conn.waiting_since.load(Ordering::Relaxed);
        assert_eq!(
            conn.head_deadline(),
            Some(since + idle),
            "proven: keep-alive"
        );
        Progress(Arc::clone(&conn)).heard();
        let first = conn.head_started.load(Ordering::Relaxed) - 1;
        assert_eq!(
            conn.head_deadline(),
            Some(first + head),
            "proven, a head begun: from its first byte"
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
