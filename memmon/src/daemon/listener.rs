//! The endpoint's accept loop and connections, made to hold against idle
//! and hostile clients: a connection cap below the file limit that lets
//! proven clients stay (`conn_cap`), a deadline for the TLS handshake, for
//! each request head and for the silence between a proven client's
//! requests (`conn_cap`'s, not hyper's: hyper's header timer also runs
//! between keep-alive requests, which would close a scraper's connection
//! between two scrapes), and for a write the client does not read
//! (`stall_io`), a cap on the head's size, and a backoff with one notice a
//! minute when accept(2) itself fails (out of descriptors, out of memory)
//! instead of a spin with a warning per failure.

use std::{io, sync::Arc, time::Duration};

use hyper::{server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
};

use super::{
    conn_cap::{Admission, Slots, Ticket},
    http::{HttpState, handle},
    stall_io::StallGuard,
};
use crate::log_limit::LineBudget;

pub use super::conn_cap::{HEAD_TIMEOUT, KEEP_ALIVE_IDLE};

/// A TLS handshake must finish within this.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A response the client does not read for this long closes its connection.
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest request head (request line and headers) answered; a larger
/// one gets 431 and the connection closes.
pub const MAX_HEAD_BYTES: usize = 8192;

/// Headers a request may carry.
const MAX_HEADERS: usize = 64;

/// The connection's read buffer (hyper's minimum is 8 KiB).
const MAX_BUF_BYTES: usize = 16 * 1024;

/// The first wait after accept(2) fails for lack of a resource, doubled up
/// to [`BACKOFF_MAX`] while it keeps failing.
const BACKOFF_FIRST: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The reply to a connection refused at the cap (every slot inside a
/// request), written without waiting on a plain-HTTP endpoint.
const BUSY_REPLY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\
    Content-Type: text/plain\r\nContent-Length: 53\r\nConnection: close\r\n\r\n\
    memmon: every connection slot is busy; retry shortly\n";

/// The socket send buffer each connection asks for (the kernel doubles it
/// and stops growing it): without it, loopback autotuning lets each client
/// that asks and never reads park up to 4 MiB of answers in the kernel,
/// 2 GiB across the cap. 256 KiB in flight still sends a 20 MiB snapshot
/// in under 10 s at a 100 ms round trip.
pub const SEND_BUFFER: libc::c_int = 128 * 1024;

/// Connections the kernel queues before memmon accepts them (std's 128
/// overflows under a reconnecting flood, and a scraper's SYN dropped then
/// waits a second to be sent again). Not descriptors: the queue holds no
/// file of memmon's.
pub const BACKLOG: i32 = 1024;

/// Sets the listening socket's accept queue to [`BACKLOG`] (listen(2) again
/// on a listening socket only changes its backlog).
pub fn set_backlog(listener: &std::net::TcpListener) -> io::Result<()> {
    use std::os::fd::AsRawFd as _;
    // SAFETY: a valid listening socket of ours.
    if unsafe { libc::listen(listener.as_raw_fd(), BACKLOG) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Serves until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    state: Arc<HttpState>,
    slots: Arc<Slots>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff: Option<Duration> = None;
    let mut failures = LineBudget::new(Duration::from_secs(60), 1);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => break,
        };
        let stream = match accepted {
            Ok((s, _)) => {
                backoff = None;
                s
            }
            Err(e) if per_connection(&e) => {
                tracing::debug!("accept: {e}");
                continue;
            }
            Err(e) => {
                let wait = backoff.map_or(BACKOFF_FIRST, |d| (d * 2).min(BACKOFF_MAX));
                backoff = Some(wait);
                let now = std::time::Instant::now();
                let earlier = failures.summary(now);
                if failures.note(now) {
                    let earlier = earlier.map_or(String::new(), |n| {
                        format!(" ({n} more failures before this)")
                    });
                    tracing::warn!(
                        "HTTP: accept failed: {e}{earlier}; waiting up to {BACKOFF_MAX:?} between \
                         tries while it fails; next notice in a minute at the earliest"
                    );
                }
                tokio::select! {
                    () = tokio::time::sleep(wait) => continue,
                    _ = shutdown.changed() => break,
                }
            }
        };
        match slots.admit() {
            Admission::Admitted { ticket, made_room } => {
                limit_send_buffer(&stream);
                tokio::spawn(connection(stream, Arc::clone(&state), ticket));
                if made_room {
                    // Let the closed connection go before the next accept,
                    // so descriptors never run past the cap.
                    tokio::task::yield_now().await;
                }
            }
            Admission::Refused => {
                if state.web().tls.is_none() {
                    // Best effort, never waited for: the socket's buffer is
                    // empty, so this is written whole.
                    let _ = stream.try_write(BUSY_REPLY);
                }
            }
        }
    }
}

/// Sets the connection's send buffer to [`SEND_BUFFER`] (best effort).
fn limit_send_buffer(stream: &TcpStream) {
    use std::os::fd::AsRawFd as _;
    let size = SEND_BUFFER;
    // SAFETY: a valid socket of ours and an int option value.
    let r = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&raw const size).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        tracing::debug!("SO_SNDBUF: {}", io::Error::last_os_error());
    }
}

/// accept(2) errors about one connection (gone before it was accepted),
/// not about the daemon: retried at once.
fn per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    ) || e.raw_os_error() == Some(libc::EPROTO)
        || e.raw_os_error() == Some(libc::EPERM)
}

/// The HTTP/1.1 settings every connection gets.
fn builder() -> http1::Builder {
    let mut b = http1::Builder::new();
    b.keep_alive(true)
        .timer(TokioTimer::new())
        // The connection's own deadlines instead (`conn_cap`).
        .header_read_timeout(None)
        .max_header_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS)
        .max_buf_size(MAX_BUF_BYTES);
    b
}

/// Serves one connection (after the TLS handshake when TLS is on) until
/// it ends or the cap closes it.
async fn connection(stream: TcpStream, state: Arc<HttpState>, ticket: Ticket) {
    let web = state.web();
    let users = Arc::clone(&web.users);
    let busy = ticket.busy();
    let svc = service_fn(move |req| {
        let guard = busy.enter();
        let reply = handle(req, Arc::clone(&state), Arc::clone(&users));
        async move {
            let Ok(resp) = reply.await;
            guard.answered(resp.status().as_u16());
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    let io = StallGuard::new(stream, WRITE_STALL_TIMEOUT).marking(ticket.progress());
    let served = async {
        let result = match web.tls {
            Some(acceptor) => {
                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
                    Ok(Ok(tls)) => {
                        ticket.restart_head_wait();
                        builder().serve_connection(TokioIo::new(tls), svc).await
                    }
                    Ok(Err(e)) => {
                        tracing::debug!("TLS handshake failed: {e}");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(
                            "TLS handshake not finished in {TLS_HANDSHAKE_TIMEOUT:?}: closed"
                        );
                        return;
                    }
                }
            }
            None => builder().serve_connection(TokioIo::new(io), svc).await,
        };
        if let Err(e) = result {
            tracing::debug!("connection: {e}");
        }
    };
    tokio::select! {
        () = served => {}
        () = ticket.closed() => tracing::debug!("connection closed to make room at the cap"),
        () = ticket.head_timed_out() => tracing::debug!("no request head in time: closed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_errors_back_off_and_connection_errors_do_not() {
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        let enfile = io::Error::from_raw_os_error(libc::ENFILE);
        let enobufs = io::Error::from_raw_os_error(libc::ENOBUFS);
        let enomem = io::Error::from_raw_os_error(libc::ENOMEM);
        for e in [&emfile, &enfile, &enobufs, &enomem] {
            assert!(!per_connection(e), "{e}");
        }
        let aborted = io::Error::from_raw_os_error(libc::ECONNABORTED);
        assert!(per_connection(&aborted));
        assert!(per_connection(&io::Error::from_raw_os_error(libc::EPROTO)));
    }

    #[test]
    fn the_busy_reply_is_well_formed() {
        let text = std::str::from_utf8(BUSY_REPLY).expect("ascii");
        let (head, body) = text.split_once("\r\n\r\n").expect("head end");
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|n| n.parse().ok())
            .expect("length");
        assert_eq!(len, body.len());
    }
}
