//! HTTP basic auth against bcrypt hashes from the web config file. A bcrypt
//! check costs tens of milliseconds by design, so a credential that passed
//! is remembered (the exact header value, per user) and later scrapes with
//! it cost a comparison. Unknown users cost a bcrypt check too, so timing
//! does not tell which users exist.

use std::{
    collections::{BTreeMap, HashMap},
    str::FromStr,
    sync::Mutex,
};

use base64::Engine as _;

/// A bcrypt hash of a password nobody knows, checked for unknown users.
const DECOY_HASH: &str = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

/// The configured users and the credentials that already passed.
#[derive(Debug, Default)]
pub struct Users {
    hashes: BTreeMap<String, String>,
    passed: Mutex<HashMap<String, String>>,
}

/// What a request's Authorization header earned.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// No users configured, or the credential is right.
    Allowed,
    /// Missing, malformed or wrong credential.
    Denied,
}

/// An unusable basic_auth_users entry.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// Basic auth cannot carry a ':' in a user name.
    #[error("basic_auth_users: user name `{0}` contains ':', which basic auth cannot carry")]
    Colon(String),
    /// The password is not a bcrypt hash.
    #[error(
        "basic_auth_users: the password of `{user}` is not a bcrypt hash ({source}); make one \
         with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`"
    )]
    NotBcrypt {
        /// The user.
        user: String,
        /// What bcrypt said.
        source: bcrypt::BcryptError,
    },
}

impl Users {
    /// Checks that every hash is a bcrypt hash.
    pub fn new(hashes: BTreeMap<String, String>) -> Result<Self, UsersError> {
        for (user, hash) in &hashes {
            if user.contains(':') {
                return Err(UsersError::Colon(user.clone()));
            }
            bcrypt::HashParts::from_str(hash).map_err(|source| UsersError::NotBcrypt {
                user: user.clone(),
                source,
            })?;
        }
        Ok(Users {
            hashes,
            passed: Mutex::default(),
        })
    }

    /// No users: the endpoint is open.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// How many users.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether this Authorization header value may pass without a bcrypt
    /// check (no users, or it passed before).
    pub fn cached(&self, header: Option<&str>) -> Option<Verdict> {
        if self.is_empty() {
            return Some(Verdict::Allowed);
        }
        let header = header?;
        let (user, _) = decode(header)?;
        let passed = self.passed.lock().ok()?;
        let prev = passed.get(&user)?;
        constant_time_eq(prev.as_bytes(), header.as_bytes()).then_some(Verdict::Allowed)
    }

    /// The full check (blocking: bcrypt). Remembers a credential that passes.
    pub fn check(&self, header: Option<&str>) -> Verdict {
        if let Some(v) = self.cached(header) {
            return v;
        }
        let Some((user, password)) = header.and_then(decode) else {
            return Verdict::Denied;
        };
        let (hash, known) = match self.hashes.get(&user) {
            Some(h) => (h.as_str(), true),
            None => (DECOY_HASH, false),
        };
        let ok = bcrypt::verify(password.as_bytes(), hash).unwrap_or(false) && known;
        if !ok {
            return Verdict::Denied;
        }
        if let (Ok(mut passed), Some(h)) = (self.passed.lock(), header) {
            passed.insert(user, h.to_string());
        }
        Verdict::Allowed
    }
}

/// `Basic base64(user:password)` → (user, password).
fn decode(header: &str) -> Option<(String, String)> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(user: &str, password: &str) -> String {
        let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {b}")
    }

    fn users() -> Users {
        // Cost 4 keeps the unit test fast; the daemon accepts any cost.
        let hash = bcrypt::hash("s3cret", 4).expect("hashing works");
        Users::new(BTreeMap::from([("prometheus".to_string(), hash)])).expect("valid")
    }

    #[test]
    fn no_users_means_open() {
        let u = Users::default();
        assert_eq!(u.check(None), Verdict::Allowed);
    }

    #[test]
    fn right_password_passes_and_is_remembered() {
        let u = users();
        let h = header("prometheus", "s3cret");
        assert_eq!(u.cached(Some(&h)), None);
        assert_eq!(u.check(Some(&h)), Verdict::Allowed);
        assert_eq!(u.cached(Some(&h)), Some(Verdict::Allowed));
    }

    #[test]
    fn wrong_password_unknown_user_and_garbage_are_denied() {
        let u = users();
        assert_eq!(u.check(None), Verdict::Denied);
        assert_eq!(
            u.check(Some(&header("prometheus", "nope"))),
            Verdict::Denied
        );
        assert_eq!(u.check(Some(&header("root", "s3cret"))), Verdict::Denied);
        assert_eq!(u.check(Some("Basic !!!")), Verdict::Denied);
        assert_eq!(u.check(Some("Bearer abc")), Verdict::Denied);
        // A remembered credential does not open the door to another one.
        assert_eq!(
            u.check(Some(&header("prometheus", "s3cret"))),
            Verdict::Allowed
        );
        assert_eq!(u.cached(Some(&header("prometheus", "s3cret2"))), None);
    }

    #[test]
    fn decoy_hash_is_a_bcrypt_hash() {
        assert!(bcrypt::HashParts::from_str(DECOY_HASH).is_ok());
        assert_eq!(bcrypt::verify("", DECOY_HASH).ok(), Some(false));
    }

    #[test]
    fn plain_text_password_in_config_is_rejected() {
        let err = Users::new(BTreeMap::from([("a".to_string(), "hunter2".to_string())]))
            .expect_err("must fail");
        assert!(err.to_string().contains("bcrypt"), "{err}");
    }
}
