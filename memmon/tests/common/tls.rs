//! Certificates for the TLS tests: `memmon-hostile certs DIR` (openssl).

use std::{path::Path, process::Command};

/// A CA (`ca.crt`) and a server certificate for 127.0.0.1 (`server.crt`,
/// `server.key`) in `dir`.
pub fn make_certs(dir: &Path) {
    let out = Command::new(super::hostile())
        .arg("certs")
        .arg(dir)
        .output()
        .expect("run memmon-hostile certs");
    assert!(
        out.status.success(),
        "memmon-hostile certs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
