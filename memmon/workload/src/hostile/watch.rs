//! The well-behaved side of an attack, on a thread of its own: a scraper
//! that fetches `/metrics` every 250 ms on a new connection (plain or TLS)
//! with a generous hang guard, and the daemon's descriptors, sockets, RSS
//! and CPU time read from /proc/PID.

use std::{
    io::{Read as _, Write as _},
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

/// The scraper and sampler thread.
pub struct Scraper {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<serde_json::Value>,
}

/// What the thread saw.
#[derive(Default)]
struct Seen {
    latencies_ms: Vec<f64>,
    failures: Vec<String>,
    fds_max: u64,
    sockets_max: u64,
    rss_kib_start: u64,
    rss_kib_max: u64,
}

impl Scraper {
    /// Starts scraping `addr` and sampling `pid` (TLS when `ca` is given).
    pub fn start(addr: String, pid: u32, ca: Option<&Path>) -> Result<Scraper, String> {
        let tls = match ca {
            Some(path) => Some(Arc::new(client_config(path)?)),
            None => None,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let cpu_start = cpu_ticks(pid);
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut seen = Seen {
                rss_kib_start: rss_kib(pid).unwrap_or(0),
                ..Seen::default()
            };
            while !flag.load(Ordering::Relaxed) {
                sample(pid, &mut seen);
                let t = Instant::now();
                match scrape(&addr, tls.as_ref()) {
                    Ok(()) => seen.latencies_ms.push(t.elapsed().as_secs_f64() * 1000.0),
                    Err(e) => seen.failures.push(e),
                }
                sample(pid, &mut seen);
                std::thread::sleep(EVERY);
            }
            let cpu = match (cpu_start, cpu_ticks(pid)) {
                (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / ticks_per_second()),
                _ => None,
            };
            report(&seen, cpu, started.elapsed())
        });
        Ok(Scraper { stop, thread })
    }

    /// Stops and returns the report.
    pub fn finish(self) -> serde_json::Value {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .unwrap_or_else(|_| serde_json::json!({"error": "the scraper thread panicked"}))
    }
}

fn report(seen: &Seen, cpu_seconds: Option<f64>, wall: Duration) -> serde_json::Value {
    let mut l = seen.latencies_ms.clone();
    l.sort_by(f64::total_cmp);
    // Nearest rank.
    let q = |p: f64| {
        (!l.is_empty()).then(|| l[((p * l.len() as f64).ceil() as usize).clamp(1, l.len()) - 1])
    };
    serde_json::json!({
        "scrapes_ok": l.len(),
        "scrape_failures": seen.failures,
        "scrape_ms_p50": q(0.5),
        "scrape_ms_p99": q(0.99),
        "scrape_ms_max": l.last(),
        "fds_max": seen.fds_max,
        "sockets_max": seen.sockets_max,
        "rss_kib_start": seen.rss_kib_start,
        "rss_kib_max": seen.rss_kib_max,
        "cpu_seconds": cpu_seconds,
        "wall_seconds": wall.as_secs_f64(),
    })
}

/// One GET /metrics on a new connection; Ok when it answered 200 in full.
fn scrape(addr: &str, tls: Option<&Arc<ClientConfig>>) -> Result<(), String> {
    let tcp = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    tcp.set_read_timeout(Some(HANG_GUARD))
        .and_then(|()| tcp.set_write_timeout(Some(HANG_GUARD)))
        .map_err(|e| format!("timeouts: {e}"))?;
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut raw = Vec::new();
    match tls {
        Some(config) => {
            let name = ServerName::try_from("127.0.0.1").map_err(|e| e.to_string())?;
            let conn = rustls::ClientConnection::new(Arc::clone(config), name)
                .map_err(|e| format!("TLS: {e}"))?;
            let mut s = rustls::StreamOwned::new(conn, tcp);
            s.write_all(request.as_bytes())
                .map_err(|e| format!("send: {e}"))?;
            // A peer that closes without close_notify still sent it all.
            if let Err(e) = s.read_to_end(&mut raw)
                && e.kind() != std::io::ErrorKind::UnexpectedEof
            {
                return Err(format!("read: {e}"));
            }
        }
        None => {
            let mut s = tcp;
            s.write_all(request.as_bytes())
                .map_err(|e| format!("send: {e}"))?;
            s.read_to_end(&mut raw).map_err(|e| format!("read: {e}"))?;
        }
    }
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no response head in {} bytes", raw.len()))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("status: {}", head.lines().next().unwrap_or("")));
    }
    if !body.contains("memmon_") {
        return Err(format!("no memmon series in a {} byte body", body.len()));
    }
    Ok(())
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
