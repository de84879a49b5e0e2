//! A minimal client of the daemon's JSON API for the commands that
//! `--connect` (`top`, `explain`, `incidents`, `explain --oom`): one
//! HTTP/1.1 GET, `Connection: close`, the body parsed as JSON; a non-200
//! answer is an error carrying the daemon's own text (which names the fix).

use std::{
    io::{Read as _, Write as _},
    time::Duration,
};

use anyhow::Context as _;

use crate::error::Fatal;

/// The daemon's default address (the packaged service's `listen`).
pub const DEFAULT_URL: &str = "http://127.0.0.1:9755";

/// A daemon's answer that is not 200: its status and text.
#[derive(Debug, thiserror::Error)]
#[error("daemon at {addr} answered {status}: {text}")]
pub struct Refused {
    /// host:port.
    pub addr: String,
    /// HTTP status code.
    pub status: u16,
    /// Its body, trimmed.
    pub text: String,
}

/// GET `path` (with its query) from the daemon at `addr`, as JSON. A
/// non-200 answer is a [`Refused`] with the daemon's status and body.
pub fn get_json(addr: &str, path: &str) -> anyhow::Result<serde_json::Value> {
    let mut s = std::net::TcpStream::connect(addr)
        .with_context(|| format!("cannot connect to memmon daemon at {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .context("reading the daemon's answer")?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("malformed HTTP answer")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .context("malformed HTTP status line")?;
    let body = &raw[split + 4..];
    if status != 200 {
        return Err(Refused {
            addr: addr.to_string(),
            status,
            text: String::from_utf8_lossy(body).trim().to_string(),
        }
        .into());
    }
    let route = path.split('?').next().unwrap_or(path);
    serde_json::from_slice(body).with_context(|| format!("the daemon's {route} is not JSON"))
}

/// `http://host:port[/...]` or `host:port` → `host:port`.
pub fn connect_addr(url: &str) -> Result<String, Fatal> {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let addr = rest.split('/').next().unwrap_or("");
    if addr.is_empty() || !addr.contains(':') {
        return Err(Fatal::Usage(format!(
            "--connect {url}: give the daemon's address as http://HOST:PORT (e.g. http://127.0.0.1:9755)"
        )));
    }
    Ok(addr.to_string())
}

/// `s` percent-encoded for a query value (unreserved characters and `/`
/// kept).
pub fn query_value(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
