//! `memmon-hostile certs DIR`: a CA (`ca.crt`) and a server certificate
//! for 127.0.0.1 (`server.crt`, `server.key`) made by openssl in DIR, for
//! the TLS tests and the TLS attacks of the benchmark.

use std::{path::Path, process::Command};

/// Makes them in `dir`.
pub fn make(dir: &Path) -> Result<(), String> {
    let sh = |args: &[&str]| -> Result<(), String> {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .map_err(|e| format!("cannot run openssl: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let ca = ["-keyout", "ca.key", "-out", "ca.crt", "-days", "2"];
    sh(&[
        &["req", "-x509"][..],
        &ec,
        &ca,
        &["-subj", "/CN=memmon test CA"],
    ]
    .concat())?;
    let server = ["-keyout", "server.key", "-out", "server.csr"];
    sh(&[&["req"][..], &ec, &server, &["-subj", "/CN=127.0.0.1"]].concat())?;
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n")
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    sh(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ])
}
