//! A minimal HTTP/1.1 GET for the benchmarks (loopback only).

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    time::Duration,
};

use anyhow::Context as _;

/// GET `path` from `addr`: the body.
pub fn get(addr: &str, path: &str) -> anyhow::Result<String> {
    let mut s = TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").context("malformed response")?;
    anyhow::ensure!(
        head.starts_with("HTTP/1.1 200"),
        "{addr}{path}: {}",
        head.lines().next().unwrap_or("")
    );
    Ok(body.to_string())
}
