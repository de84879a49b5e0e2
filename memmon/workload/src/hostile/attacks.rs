//! The attacks: each of N clients loops (connect, misbehave, see how the
//! daemon ends it, wait 1 s, again) until the deadline, on one tokio thread.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
    time::timeout,
};

/// One way to misbehave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attack {
    /// No attack: the scrapers alone (the unattacked baseline).
    None,
    Idle,
    Slowloris,
    BigHead,
    BigLine,
    Profile,
    NoRead,
    TlsStall,
}

impl Attack {
    const ALL: [(Attack, &'static str); 8] = [
        (Attack::None, "none"),
        (Attack::Idle, "idle"),
        (Attack::Slowloris, "slowloris"),
        (Attack::BigHead, "big-head"),
        (Attack::BigLine, "big-line"),
        (Attack::Profile, "profile"),
        (Attack::NoRead, "no-read"),
        (Attack::TlsStall, "tls-stall"),
    ];

    pub fn parse(s: &str) -> Option<Attack> {
        Self::ALL.iter().find(|(_, n)| *n == s).map(|(a, _)| *a)
    }

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(a, _)| *a == self)
            .map_or("?", |(_, n)| n)
    }
}

/// What the clients saw.
#[derive(Default)]
struct Tally {
    connects: u64,
    connect_errors: u64,
    /// Connections the daemon ended (EOF or reset).
    closed_by_daemon: u64,
    /// How long those lived, ms.
    lifetimes_ms: Vec<u64>,
    /// Response status codes (0: no status line before the end).
    statuses: BTreeMap<u16, u64>,
}

/// Bytes of padding in big-head and big-line.
const PAD: usize = 64 * 1024;

/// Runs `attack` with `n` clients for `duration`: the tally as JSON.
pub fn run(
    addr: &str,
    attack: Attack,
    n: usize,
    duration: Duration,
) -> Result<serde_json::Value, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio: {e}"))?;
    let tally = Arc::new(Mutex::new(Tally::default()));
    let deadline = Instant::now() + duration;
    let n = if attack == Attack::None {
        std::thread::sleep(duration);
        0
    } else {
        n
    };
    rt.block_on(async {
        let mut clients = tokio::task::JoinSet::new();
        for i in 0..n {
            let (addr, tally) = (addr.to_string(), Arc::clone(&tally));
            clients.spawn(async move {
                // Spread the first connects over the first 200 ms.
                tokio::time::sleep(Duration::from_micros(
                    (i as u64 * 200_000) / n.max(1) as u64,
                ))
                .await;
                client(&addr, attack, deadline, &tally).await;
            });
        }
        // Every client stops at the deadline; a stuck one is cut off.
        let _ = timeout(duration + Duration::from_secs(5), async {
            while clients.join_next().await.is_some() {}
        })
        .await;
        clients.abort_all();
    });
    let t = tally.lock().map_err(|_| "tally poisoned")?;
    let mut lifetimes = t.lifetimes_ms.clone();
    lifetimes.sort_unstable();
    let pick = |q: f64| {
        (!lifetimes.is_empty())
            .then(|| lifetimes[((lifetimes.len() - 1) as f64 * q).round() as usize])
    };
    Ok(serde_json::json!({
        "connects": t.connects,
        "connect_errors": t.connect_errors,
        "closed_by_daemon": t.closed_by_daemon,
        "lifetime_ms_median": pick(0.5),
        "lifetime_ms_max": pick(1.0),
        "statuses": t.statuses.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
    }))
}

fn note(tally: &Mutex<Tally>, f: impl FnOnce(&mut Tally)) {
    if let Ok(mut t) = tally.lock() {
        f(&mut t);
    }
}

/// One client's loop until the deadline.
async fn client(addr: &str, attack: Attack, deadline: Instant, tally: &Mutex<Tally>) {
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        let stream = match timeout(left, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(_)) => {
                note(tally, |t| t.connect_errors += 1);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(_) => return,
        };
        note(tally, |t| t.connects += 1);
        let started = Instant::now();
        let left = deadline.saturating_duration_since(started);
        // Err: the deadline came first (the connection is still held).
        if timeout(left, misbehave(stream, attack, tally))
            .await
            .is_ok()
        {
            let lived = started.elapsed().as_millis() as u64;
            note(tally, |t| {
                t.closed_by_daemon += 1;
                t.lifetimes_ms.push(lived);
            });
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Misbehaves on one connection until the daemon ends it, counting the
/// statuses of the responses seen.
async fn misbehave(mut s: TcpStream, attack: Attack, tally: &Mutex<Tally>) {
    let seen = |status: u16| note(tally, |t| *t.statuses.entry(status).or_default() += 1);
    match attack {
        Attack::None | Attack::Idle => drain(&mut s).await,
        Attack::Slowloris => {
            let head = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
            let mut buf = [0u8; 1024];
            for byte in head.iter().chain(std::iter::repeat(&b'a')) {
                if s.write_all(&[*byte]).await.is_err() {
                    return;
                }
                // A byte a second, and see whether the daemon answered.
                match timeout(Duration::from_secs(1), s.read(&mut buf)).await {
                    Err(_) => {}
                    Ok(Ok(0)) | Ok(Err(_)) => return,
                    Ok(Ok(k)) => {
                        seen(status_of(&buf[..k]));
                        return drain(&mut s).await;
                    }
                }
            }
        }
        Attack::BigHead | Attack::BigLine => {
            let request = if attack == Attack::BigHead {
                let mut r = String::from("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n");
                let mut i = 0;
                while r.len() < PAD {
                    r.push_str(&format!("X-Pad-{i}: {}\r\n", "p".repeat(60)));
                    i += 1;
                }
                r + "\r\n"
            } else {
                format!(
                    "GET /metrics?{} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                    "q".repeat(PAD)
                )
            };
            // The daemon may answer and close before it has read it all.
            let (mut rd, mut wr) = s.into_split();
            let writer = tokio::spawn(async move {
                let _ = wr.write_all(request.as_bytes()).await;
                wr
            });
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(k) = rd.read(&mut buf).await {
                if k == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..k]);
            }
            writer.abort();
            seen(status_of(&got));
        }
        Attack::Profile => loop {
            let req = b"GET /api/v1/profile?seconds=60 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
            if s.write_all(req).await.is_err() {
                return;
            }
            match read_response(&mut s).await {
                Some(status) => seen(status),
                None => return,
            }
        },
        Attack::NoRead => {
            let one = b"GET /api/v1/snapshot HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
            let many: Vec<u8> = one.iter().copied().cycle().take(one.len() * 64).collect();
            if s.write_all(&many).await.is_err() {
                return;
            }
            // Never read: poke once a second until the daemon has gone.
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if s.write_all(b"\r\n").await.is_err() {
                    return;
                }
            }
        }
        Attack::TlsStall => {
            // A handshake record header announcing 512 bytes, and 4 of them.
            if s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc])
                .await
                .is_err()
            {
                return;
            }
            drain(&mut s).await;
        }
    }
}

/// Reads until EOF or an error.
async fn drain(s: &mut TcpStream) {
    let mut buf = [0u8; 4096];
    while let Ok(k) = s.read(&mut buf).await {
        if k == 0 {
            return;
        }
    }
}

/// The status code of a response's first line (0 when there is none).
fn status_of(bytes: &[u8]) -> u16 {
    std::str::from_utf8(&bytes[..bytes.len().min(64)])
        .ok()
        .and_then(|t| t.strip_prefix("HTTP/1.1 "))
        .and_then(|t| t.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Reads one response with a Content-Length body: its status, or None when
/// the connection ended first.
async fn read_response(s: &mut TcpStream) -> Option<u16> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    let text = String::from_utf8_lossy(&head);
    let length: usize = text
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())
                .flatten()
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    s.read_exact(&mut body).await.ok()?;
    Some(status_of(&head))
}
