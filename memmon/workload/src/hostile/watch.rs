//! The well-behaved side of an attack, on threads of their own: two
//! scrapers fetch `/metrics` every 250 ms (plain or TLS) with a generous
//! hang guard — one as Prometheus does, keeping its connection alive from
//! one scrape to the next (a request that fails on the reused connection
//! before any answer is sent again once on a new one, as Go's HTTP client
//! does), one on a new connection per scrape — and a sampler reads the
//! daemon's descriptors, sockets, RSS and CPU time from /proc/PID.

use std::{
    io::{BufRead as _, BufReader, Read, Write},
    net::TcpStream,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use tokio_rustls::rustls::{
    self, ClientConfig, RootCertStore,
    pki_types::{CertificateDer, ServerName, pem::PemObject as _},
};

/// A scrape that takes longer than this counts as failed (a guard against
/// a hang, not a latency target).
const HANG_GUARD: Duration = Duration::from_secs(60);

/// Between scrapes.
const EVERY: Duration = Duration::from_millis(250);

/// Between samples of the daemon's /proc files.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// The scrapers and the sampler.
pub struct Scraper {
    stop: Arc<AtomicBool>,
    keep_alive: JoinHandle<serde_json::Value>,
    fresh: JoinHandle<serde_json::Value>,
    sampler: JoinHandle<serde_json::Value>,
}

/// What a scraper saw.
#[derive(Default)]
struct Scrapes {
    latencies_ms: Vec<f64>,
    failures: Vec<String>,
    /// Connections opened (the keep-alive scraper's first included).
    connections: u64,
    /// Requests sent again because the kept connection was closed.
    resent: u64,
}

/// What the sampler saw.
#[derive(Default)]
struct Seen {
    fds_max: u64,
    sockets_max: u64,
    rss_kib_start: u64,
    rss_kib_max: u64,
}

/// A connection to the daemon, plain or TLS.
trait Conn: Read + Write + Send {}
impl<T: Read + Write + Send> Conn for T {}

impl Scraper {
    /// Starts scraping `addr` and sampling `pid` (TLS when `ca` is given).
    pub fn start(addr: String, pid: u32, ca: Option<&Path>) -> Result<Scraper, String> {
        let tls = match ca {
            Some(path) => Some(Arc::new(client_config(path)?)),
            None => None,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let keep_alive = {
            let (flag, addr, tls) = (Arc::clone(&stop), addr.clone(), tls.clone());
            std::thread::spawn(move || scrape_loop(&flag, &addr, tls.as_ref(), true))
        };
        let fresh = {
            let (flag, addr, tls) = (Arc::clone(&stop), addr.clone(), tls.clone());
            std::thread::spawn(move || {
                // Half a period after the other: the two rarely meet.
                std::thread::sleep(EVERY / 2);
                scrape_loop(&flag, &addr, tls.as_ref(), false)
            })
        };
        let sampler = {
            let flag = Arc::clone(&stop);
            let cpu_start = cpu_ticks(pid);
            std::thread::spawn(move || {
                let started = Instant::now();
                let mut seen = Seen {
                    rss_kib_start: rss_kib(pid).unwrap_or(0),
                    ..Seen::default()
                };
                while !flag.load(Ordering::Relaxed) {
                    sample(pid, &mut seen);
                    std::thread::sleep(SAMPLE_EVERY);
                }
                let cpu = match (cpu_start, cpu_ticks(pid)) {
                    (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / ticks_per_second()),
                    _ => None,
                };
                serde_json::json!({
                    "fds_max": seen.fds_max,
                    "sockets_max": seen.sockets_max,
                    "rss_kib_start": seen.rss_kib_start,
                    "rss_kib_max": seen.rss_kib_max,
                    "cpu_seconds": cpu,
                    "wall_seconds": started.elapsed().as_secs_f64(),
                })
            })
        };
        Ok(Scraper {
            stop,
            keep_alive,
            fresh,
            sampler,
        })
    }

    /// Stops and returns the report: the sampler's figures, with each
    /// scraper's under `keep_alive` and `fresh`.
    pub fn finish(self) -> serde_json::Value {
        self.stop.store(true, Ordering::Relaxed);
        let panicked = |what: &str| serde_json::json!({ "error": format!("the {what} panicked") });
        let mut report = self.sampler.join().unwrap_or_else(|_| panicked("sampler"));
        report["keep_alive"] = self
            .keep_alive
            .join()
            .unwrap_or_else(|_| panicked("keep-alive scraper"));
        report["fresh"] = self
            .fresh
            .join()
            .unwrap_or_else(|_| panicked("fresh-connection scraper"));
        report
    }
}

/// Scrapes every [`EVERY`] until `stop`: the scraper's report.
fn scrape_loop(
    stop: &AtomicBool,
    addr: &str,
    tls: Option<&Arc<ClientConfig>>,
    keep_alive: bool,
) -> serde_json::Value {
    let mut seen = Scrapes::default();
    let mut conn: Option<BufReader<Box<dyn Conn>>> = None;
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        let result = if keep_alive {
            scrape_kept(&mut conn, addr, tls, &mut seen)
        } else {
            seen.connections += 1;
            connect(addr, tls)
                .and_then(|c| scrape_on(&mut BufReader::new(c), addr, false))
                .map(|_| ())
        };
        match result {
            Ok(()) => seen.latencies_ms.push(t.elapsed().as_secs_f64() * 1000.0),
            Err(e) => seen.failures.push(e.message),
        }
        std::thread::sleep(EVERY);
    }
    report(&seen)
}

/// One scrape on the kept connection (opened when there is none). A
/// request that fails on a reused connection before any answer (the
/// daemon closed it meanwhile) is sent again once on a new one.
fn scrape_kept(
    conn: &mut Option<BufReader<Box<dyn Conn>>>,
    addr: &str,
    tls: Option<&Arc<ClientConfig>>,
    seen: &mut Scrapes,
) -> Result<(), Failure> {
    if let Some(c) = conn.as_mut() {
        match scrape_on(c, addr, true) {
            Ok(close) => {
                if close {
                    *conn = None;
                }
                return Ok(());
            }
            Err(f) if !f.before_answer => {
                *conn = None;
                return Err(f);
            }
            Err(_) => {
                *conn = None;
                seen.resent += 1;
            }
        }
    }
    seen.connections += 1;
    let c = conn.insert(BufReader::new(connect(addr, tls)?));
    match scrape_on(c, addr, true) {
        Ok(close) => {
            if close {
                *conn = None;
            }
            Ok(())
        }
        Err(f) => {
            *conn = None;
            Err(f)
        }
    }
}

/// Why a scrape failed, and whether it failed before any answer.
struct Failure {
    message: String,
    before_answer: bool,
}

impl Failure {
    fn before_answer(m: impl Into<String>) -> Self {
        Failure {
            message: m.into(),
            before_answer: true,
        }
    }

    fn after(m: impl Into<String>) -> Self {
        Failure {
            message: m.into(),
            before_answer: false,
        }
    }
}

/// A new connection to `addr` (TLS when `tls` is given; the handshake
/// happens with the first request).
fn connect(addr: &str, tls: Option<&Arc<ClientConfig>>) -> Result<Box<dyn Conn>, Failure> {
    let tcp = TcpStream::connect(addr).map_err(|e| Failure::after(format!("connect: {e}")))?;
    tcp.set_read_timeout(Some(HANG_GUARD))
        .and_then(|()| tcp.set_write_timeout(Some(HANG_GUARD)))
        .and_then(|()| tcp.set_nodelay(true))
        .map_err(|e| Failure::after(format!("socket options: {e}")))?;
    Ok(match tls {
        Some(config) => {
            let name =
                ServerName::try_from("127.0.0.1").map_err(|e| Failure::after(e.to_string()))?;
            let c = rustls::ClientConnection::new(Arc::clone(config), name)
                .map_err(|e| Failure::after(format!("TLS: {e}")))?;
            Box::new(rustls::StreamOwned::new(c, tcp))
        }
        None => Box::new(tcp),
    })
}

/// One GET /metrics on `conn`: Ok when it answered 200 in full with
/// memmon's series, with whether the connection is to be closed after it.
fn scrape_on(
    conn: &mut BufReader<Box<dyn Conn>>,
    addr: &str,
    keep_alive: bool,
) -> Result<bool, Failure> {
    let close = if keep_alive { "keep-alive" } else { "close" };
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: {close}\r\n\r\n");
    let w = conn.get_mut();
    w.write_all(request.as_bytes())
        .and_then(|()| w.flush())
        .map_err(|e| Failure::before_answer(format!("send: {e}")))?;
    let mut status = String::new();
    match conn.read_line(&mut status) {
        Ok(0) => return Err(Failure::before_answer("closed before an answer")),
        Ok(_) => {}
        Err(e) => return Err(Failure::before_answer(format!("read: {e}"))),
    }
    if !status.starts_with("HTTP/1.1 200") {
        return Err(Failure::after(format!("status: {}", status.trim_end())));
    }
    let (mut length, mut closes) = (None, !keep_alive);
    loop {
        let mut line = String::new();
        conn.read_line(&mut line)
            .map_err(|e| Failure::after(format!("read: {e}")))?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            let v = v.trim();
            if k.eq_ignore_ascii_case("content-length") {
                length = v.parse::<usize>().ok();
            } else if k.eq_ignore_ascii_case("connection") && v.eq_ignore_ascii_case("close") {
                closes = true;
            }
        }
    }
    let length = length.ok_or_else(|| Failure::after("no Content-Length"))?;
    let mut body = vec![0u8; length];
    conn.read_exact(&mut body)
        .map_err(|e| Failure::after(format!("body: {e}")))?;
    if !body.windows(7).any(|w| w == b"memmon_") {
        return Err(Failure::after(format!(
            "no memmon series in a {length} byte body"
        )));
    }
    Ok(closes)
}

fn report(seen: &Scrapes) -> serde_json::Value {
    let mut l = seen.latencies_ms.clone();
    l.sort_by(f64::total_cmp);
    // Nearest rank.
    let q = |p: f64| {
        (!l.is_empty()).then(|| l[((p * l.len() as f64).ceil() as usize).clamp(1, l.len()) - 1])
    };
    serde_json::json!({
        "scrapes_ok": l.len(),
        "scrape_failures": seen.failures,
        "connections": seen.connections,
        "resent": seen.resent,
        "scrape_ms_p50": q(0.5),
        "scrape_ms_p99": q(0.99),
        "scrape_ms_max": l.last(),
        "scrape_ms": seen.latencies_ms,
    })
}

fn client_config(ca: &Path) -> Result<ClientConfig, String> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| format!("{}: {e}", ca.display()))? {
        let cert = cert.map_err(|e| format!("{}: {e}", ca.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{}: {e}", ca.display()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn sample(pid: u32, seen: &mut Seen) {
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        let (mut fds, mut sockets) = (0, 0);
        for e in dir.flatten() {
            fds += 1;
            if std::fs::read_link(e.path())
                .is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
            {
                sockets += 1;
            }
        }
        seen.fds_max = seen.fds_max.max(fds);
        seen.sockets_max = seen.sockets_max.max(sockets);
    }
    if let Some(rss) = rss_kib(pid) {
        seen.rss_kib_max = seen.rss_kib_max.max(rss);
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no inputs.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}
