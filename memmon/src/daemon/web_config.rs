//! The endpoint's optional TLS and basic auth, configured the way Prometheus
//! exporters do it (exporter-toolkit's web config file, YAML):
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt        # relative paths: from the file's directory
//!   key_file: server.key
//!   client_auth_type: RequireAndVerifyClientCert   # optional, needs client_ca_file
//!   client_ca_file: ca.crt
//!   min_version: TLS12           # TLS12 (default) or TLS13
//! basic_auth_users:
//!   prometheus: $2y$10$...       # bcrypt hashes (htpasswd -nBC 10 "" | tr -d ':')
//! ```
//!
//! Everything is read and checked when the daemon starts (a bad file exits 2
//! before any probe loads) and again on SIGHUP (a bad file then keeps the
//! running settings).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use serde::Deserialize;
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        self, RootCertStore, ServerConfig,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
        server::WebPkiClientVerifier,
    },
};

use super::basic_auth::{Users, UsersError};

/// What the endpoint enforces.
#[derive(Clone, Default)]
pub struct WebSecurity {
    /// TLS handshake for every connection, when configured.
    pub tls: Option<TlsAcceptor>,
    /// Basic auth users (bcrypt hashes); empty = no authentication.
    pub users: Arc<Users>,
}

impl WebSecurity {
    /// Short description for the start-up line and the log.
    pub fn summary(&self) -> String {
        let transport = if self.tls.is_some() {
            "TLS"
        } else {
            "plain HTTP"
        };
        if self.users.is_empty() {
            format!("{transport}, no authentication")
        } else {
            format!("{transport}, basic auth ({} users)", self.users.len())
        }
    }
}

impl std::fmt::Debug for WebSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.summary())
    }
}

/// The file's shape; unknown keys are errors, as in exporter-toolkit.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileShape {
    tls_server_config: Option<TlsShape>,
    http_server_config: Option<HttpShape>,
    basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsShape {
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    client_auth_type: Option<String>,
    client_ca_file: Option<PathBuf>,
    min_version: Option<String>,
    max_version: Option<String>,
    cipher_suites: Option<Vec<String>>,
    prefer_server_cipher_suites: Option<bool>,
    curve_preferences: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpShape {
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

/// What is wrong with a web config file: each names the key and the fix.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    /// The file cannot be read.
    #[error(
        "cannot read the web config file {}: {source}; fix the path given to --web.config.file \
         (or `web_config_file` in the config file)",
        path.display()
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Something in the file (its path first).
    #[error("web config file {}: {source}", path.display())]
    In {
        /// The file.
        path: PathBuf,
        /// What.
        source: Box<WebConfigError>,
    },
    /// Not YAML of this shape (names the line and the key).
    #[error("{0}")]
    Yaml(#[from] serde_yaml_ng::Error),
    /// A basic_auth_users entry is unusable.
    #[error(transparent)]
    Users(#[from] UsersError),
    /// tls_server_config without a certificate or a key.
    #[error(
        "tls_server_config needs both cert_file and key_file (PEM files); remove \
         tls_server_config to serve plain HTTP"
    )]
    CertAndKey,
    /// A cert or key file cannot be read.
    #[error("{key} {}: cannot read it: {source}", path.display())]
    Unreadable {
        /// The key naming it.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not a regular file.
    #[error("{key} {}: not a regular file; point it at a PEM file", path.display())]
    NotAFile {
        /// The key naming it.
        key: &'static str,
        /// The path.
        path: PathBuf,
    },
    /// Not a PEM file of certificates, or holds none.
    #[error("{key} {}: {why}", path.display())]
    Certificates {
        /// The key naming it.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// No private key in it.
    #[error(
        "key_file {}: no usable private key ({why}); it must be a PEM private key (PKCS#8, \
         PKCS#1 or SEC1)",
        path.display()
    )]
    Key {
        /// The file.
        path: PathBuf,
        /// What rustls said.
        why: String,
    },
    /// min_version/max_version.
    #[error("{0}")]
    Version(String),
    /// rustls refused the settings.
    #[error("tls_server_config: {0}")]
    Tls(#[source] rustls::Error),
    /// The client CA cannot verify clients.
    #[error("client_ca_file {}: {why}", path.display())]
    ClientCa {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// client_auth_type needs client_ca_file, or is unknown.
    #[error("{0}")]
    ClientAuth(String),
    /// The certificate and key do not match.
    #[error(
        "cert_file {} and key_file {} do not form a usable pair: {source}",
        cert.display(),
        key.display()
    )]
    Pair {
        /// cert_file.
        cert: PathBuf,
        /// key_file.
        key: PathBuf,
        /// What rustls said.
        source: rustls::Error,
    },
}

/// Reads and checks a web config file. Errors name the file, the key and
/// the fix.
pub fn load(path: &Path) -> Result<WebSecurity, WebConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| WebConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let base = path.parent().unwrap_or_else(|| Path::new("."));
    parse(&text, base).map_err(|e| WebConfigError::In {
        path: path.to_path_buf(),
        source: Box::new(e),
    })
}

/// Parses the file's text; `base` resolves relative paths.
pub fn parse(text: &str, base: &Path) -> Result<WebSecurity, WebConfigError> {
    let shape: FileShape = if text.trim().is_empty() {
        FileShape::default()
    } else {
        serde_yaml_ng::from_str(text)?
    };
    for ignored in ignored_keys(&shape) {
        tracing::warn!("web config: `{ignored}` is not supported by memmon and is ignored");
    }
    let users = Users::new(shape.basic_auth_users.unwrap_or_default())?;
    let tls = match shape.tls_server_config {
        Some(t) => Some(tls_acceptor(&t, base)?),
        None => None,
    };
    Ok(WebSecurity {
        tls,
        users: Arc::new(users),
    })
}

fn ignored_keys(shape: &FileShape) -> Vec<&'static str> {
    let mut out = Vec::new();
    if let Some(t) = &shape.tls_server_config {
        if t.cipher_suites.is_some() {
            out.push("tls_server_config.cipher_suites");
        }
        if t.prefer_server_cipher_suites.is_some() {
            out.push("tls_server_config.prefer_server_cipher_suites");
        }
        if t.curve_preferences.is_some() {
            out.push("tls_server_config.curve_preferences");
        }
    }
    if let Some(h) = &shape.http_server_config {
        if h.http2 == Some(true) {
            out.push("http_server_config.http2");
        }
        if h.headers.is_some() {
            out.push("http_server_config.headers");
        }
    }
    out
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn tls_acceptor(t: &TlsShape, base: &Path) -> Result<TlsAcceptor, WebConfigError> {
    let (Some(cert), Some(key)) = (&t.cert_file, &t.key_file) else {
        return Err(WebConfigError::CertAndKey);
    };
    let cert_path = resolve(base, cert);
    let key_path = resolve(base, key);
    let certs = read_certs(&cert_path, "cert_file")?;
    let key = PrivateKeyDer::from_pem_file(&cert_or_key(&key_path, "key_file")?).map_err(|e| {
        WebConfigError::Key {
            path: key_path.clone(),
            why: e.to_string(),
        }
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = match versions(t)? {
        (12, 13) => &[&rustls::version::TLS13, &rustls::version::TLS12],
        (12, 12) => &[&rustls::version::TLS12],
        _ => &[&rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)
        .map_err(WebConfigError::Tls)?;
    let auth_type = t.client_auth_type.as_deref().unwrap_or("NoClientCert");
    let builder = match auth_type {
        "NoClientCert" => builder.with_no_client_auth(),
        "RequireAndVerifyClientCert" | "VerifyClientCertIfGiven" => {
            let Some(ca) = &t.client_ca_file else {
                return Err(WebConfigError::ClientAuth(format!(
                    "client_auth_type {auth_type} needs client_ca_file (the CA that signs client certificates)"
                )));
            };
            let ca_path = resolve(base, ca);
            let mut roots = RootCertStore::empty();
            for c in read_certs(&ca_path, "client_ca_file")? {
                roots.add(c).map_err(|e| WebConfigError::ClientCa {
                    path: ca_path.clone(),
                    why: e.to_string(),
                })?;
            }
            let mut vb = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            if auth_type == "VerifyClientCertIfGiven" {
                vb = vb.allow_unauthenticated();
            }
            let verifier = vb.build().map_err(|e| WebConfigError::ClientCa {
                path: ca_path.clone(),
                why: e.to_string(),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
        other => {
            return Err(WebConfigError::ClientAuth(format!(
                "client_auth_type `{other}` is not supported; use NoClientCert, \
                 VerifyClientCertIfGiven or RequireAndVerifyClientCert"
            )));
        }
    };
    let mut config =
        builder
            .with_single_cert(certs, key)
            .map_err(|source| WebConfigError::Pair {
                cert: cert_path.clone(),
                key: key_path.clone(),
                source,
            })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// (min, max) TLS minor versions: 12 or 13.
fn versions(t: &TlsShape) -> Result<(u8, u8), WebConfigError> {
    let parse = |key: &str, v: &Option<String>, default: u8| match v.as_deref() {
        None => Ok(default),
        Some("TLS12") => Ok(12),
        Some("TLS13") => Ok(13),
        Some(other) => Err(WebConfigError::Version(format!(
            "{key} `{other}` is not supported; use TLS12 or TLS13 (older versions are insecure)"
        ))),
    };
    let min = parse("min_version", &t.min_version, 12)?;
    let max = parse("max_version", &t.max_version, 13)?;
    if min > max {
        return Err(WebConfigError::Version(format!(
            "min_version TLS{min} is above max_version TLS{max}"
        )));
    }
    Ok((min, max))
}

/// Checks that a file can be read, so the error says "cannot read" rather
/// than "no key found".
fn cert_or_key(path: &Path, key: &'static str) -> Result<PathBuf, WebConfigError> {
    let meta = std::fs::metadata(path)
        .and_then(|m| std::fs::File::open(path).map(|_| m))
        .map_err(|source| WebConfigError::Unreadable {
            key,
            path: path.to_path_buf(),
            source,
        })?;
    if !meta.is_file() {
        return Err(WebConfigError::NotAFile {
            key,
            path: path.to_path_buf(),
        });
    }
    Ok(path.to_path_buf())
}

fn read_certs(
    path: &Path,
    key: &'static str,
) -> Result<Vec<CertificateDer<'static>>, WebConfigError> {
    let path = cert_or_key(path, key)?;
    let bad = |why: String| WebConfigError::Certificates {
        key,
        path: path.clone(),
        why,
    };
    let certs = CertificateDer::pem_file_iter(&path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(bad(
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_means_plain_http() {
        let w = parse("", Path::new("/")).expect("empty is fine");
        assert!(w.tls.is_none());
        assert!(w.users.is_empty());
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let err = parse(
            "basic_auth_users: {}\ntls_server_confg:\n  cert_file: a\n",
            Path::new("/"),
        )
        .expect_err("must fail");
        assert!(err.to_string().contains("tls_server_confg"), "{err}");
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn tls_needs_cert_and_key() {
        let err = parse("tls_server_config:\n  cert_file: a.crt\n", Path::new("/"))
            .expect_err("must fail");
        assert!(err.to_string().contains("key_file"), "{err}");
    }

    #[test]
    fn unreadable_cert_is_named() {
        let err = parse(
            "tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n",
            Path::new("/nonexistent-dir"),
        )
        .expect_err("must fail");
        assert!(
            err.to_string().contains("/nonexistent-dir/missing.crt"),
            "{err}"
        );
        assert!(err.to_string().contains("cannot read"), "{err}");
    }

    #[test]
    fn shipped_example_has_a_valid_shape() {
        // The example's certificate is not on this machine: parsing must get
        // as far as reading it, so every key and the bcrypt hash are valid.
        let text = include_str!("../../../deploy/web-config.example.yml");
        let err = parse(text, Path::new("/")).expect_err("no certificate here");
        assert!(
            err.to_string()
                .contains("/etc/memmon/tls/memmon.crt: cannot read"),
            "{err}"
        );
    }

    #[test]
    fn device_as_cert_is_refused() {
        let err = parse(
            "tls_server_config:\n  cert_file: /dev/zero\n  key_file: /dev/zero\n",
            Path::new("/"),
        )
        .expect_err("must fail");
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }

    #[test]
    fn bad_tls_version_is_explained() {
        let t = TlsShape {
            min_version: Some("TLS10".into()),
            ..TlsShape::default()
        };
        let err = versions(&t).expect_err("must fail");
        assert!(err.to_string().contains("TLS12 or TLS13"), "{err}");
    }
}
