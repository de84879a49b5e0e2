//! `memmon-hostile`: a hostile HTTP client for the endpoint's tests and
//! `cargo xtask bench --only hostile-clients`. It runs one attack on
//! loopback for a bounded time while two well-behaved scrapers fetch
//! `/metrics` beside it (one keeping its connection alive, as Prometheus
//! does, one on a new connection per scrape) and the daemon's
//! descriptors, sockets and RSS are sampled from /proc; it prints one JSON
//! report.
//!
//! usage: memmon-hostile ADDR DAEMON_PID ATTACK CONNECTIONS SECONDS [--tls-ca PEM]
//!        memmon-hostile certs DIR   (a CA and a certificate for 127.0.0.1)
//!
//! ATTACK (CONNECTIONS clients, at most the file limit less 64, each
//! reconnecting 1 s after the daemon closes it, until SECONDS have
//! passed):
//!   none        no attacker: the scrapers alone for SECONDS (a baseline)
//!   idle        connect and send nothing
//!   slowloris   send a request head one byte a second, never ending it
//!   big-head    a request with 64 KiB of headers, again and again
//!   big-line    a request line of 64 KiB, again and again
//!   profile     GET /api/v1/profile?seconds=60 on a keep-alive connection, again and again
//!   no-read     pipeline 64 GET /api/v1/snapshot and never read the answers
//!   tls-stall   send the first bytes of a TLS ClientHello and stall
//!
//! With `--tls-ca`, the scraper speaks TLS (the daemon's certificate signed
//! by that CA, for 127.0.0.1).

mod attacks;
mod certs;
mod watch;

use std::{process::ExitCode, time::Duration};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("memmon-hostile: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> Result<serde_json::Value, String> {
    if let [cmd, dir] = args
        && cmd == "certs"
    {
        certs::make(std::path::Path::new(dir))?;
        return Ok(serde_json::json!({ "certs": dir }));
    }
    let usage = "usage: memmon-hostile ADDR DAEMON_PID ATTACK CONNECTIONS SECONDS [--tls-ca PEM]";
    let [addr, pid, attack, n, seconds, rest @ ..] = args else {
        return Err(usage.into());
    };
    let pid: u32 = pid
        .parse()
        .map_err(|_| format!("DAEMON_PID {pid}: not a pid\n{usage}"))?;
    let n: usize = n
        .parse()
        .map_err(|_| format!("CONNECTIONS {n}: not a number\n{usage}"))?;
    let seconds: f64 = seconds
        .parse()
        .map_err(|_| format!("SECONDS {seconds}: not a number\n{usage}"))?;
    let attack = attacks::Attack::parse(attack)
        .ok_or_else(|| format!("unknown ATTACK {attack}\n{usage}"))?;
    let tls_ca = match rest {
        [] => None,
        [flag, path] if flag == "--tls-ca" => Some(std::path::PathBuf::from(path)),
        _ => return Err(usage.into()),
    };
    // The attackers never take the scrapers' descriptors: under a low
    // hard limit (a shell's `ulimit -n 1024`) there are fewer of them.
    let clients = n.min(raise_file_limit().saturating_sub(OWN_FILES));
    let duration = Duration::from_secs_f64(seconds);
    let scraper = watch::Scraper::start(addr.clone(), pid, tls_ca.as_deref())?;
    let attack_report = attacks::run(addr, attack, clients, duration)?;
    let watched = scraper.finish();
    Ok(serde_json::json!({
        "attack": attack.name(),
        "connections": clients,
        "connections_asked": n,
        "seconds": seconds,
        "attacker": attack_report,
        "daemon": watched,
    }))
}

/// Descriptors kept from the attackers: the scrapers' connections, the
/// runtime's, the /proc reads and the standard streams.
const OWN_FILES: usize = 64;

/// Thousands of connections need more than the usual 1024 descriptors:
/// the soft limit raised to the hard one, and what it is then.
fn raise_file_limit() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        let hard = lim.rlim_max;
        lim.rlim_cur = hard;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
            return usize::try_from(hard).unwrap_or(usize::MAX);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX)
}
