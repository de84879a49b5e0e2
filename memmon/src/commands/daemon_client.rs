//! A minimal client of the daemon's JSON API for `top --connect` and
//! `explain --connect`: one HTTP/1.1 GET, `Connection: close`.

use std::{
    io::{Read as _, Write as _},
    time::Duration,
};

use anyhow::Context as _;

use crate::error::Fatal;

/// GET `path` (with its query) from the daemon at `addr`, as JSON. A
/// non-200 answer is an error carrying the daemon's status line and body.
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
    if !head.starts_with("HTTP/1.1 200") {
        anyhow::bail!(
            "daemon at {addr} answered {}: {}",
            head.lines().next().unwrap_or(""),
            String::from_utf8_lossy(&raw[split + 4..]).trim()
        );
    }
    let route = path.split('?').next().unwrap_or(path);
    serde_json::from_slice(&raw[split + 4..])
        .with_context(|| format!("the daemon's {route} is not JSON"))
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
