//! Reading the configuration: defaults, then the file (errors name the
//! file, line and key), then the flag and environment values (errors name
//! the real flag and variable); each stage checked.

use std::path::{Path, PathBuf};

use super::{Config, DEFAULT_CONFIG_PATH, Given, KEYS, Key, ValueError};

/// A configuration error: where and what, with the fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not TOML (the place and key where the parser stopped).
    #[error("{at}: {msg}")]
    Syntax {
        /// `file:line: key `k`` as far as known.
        at: String,
        /// What the parser said.
        msg: String,
    },
    /// A key memmon does not have.
    #[error("{at}: unknown key `{name}`; the keys are {known}")]
    UnknownKey {
        /// `file:line`.
        at: String,
        /// The key.
        name: String,
        /// Every key, in backticks.
        known: String,
    },
    /// A key's value in the file.
    #[error("{at}: key `{key}`: {source}")]
    File {
        /// `file:line`.
        at: String,
        /// The key.
        key: &'static str,
        /// What is wrong.
        source: ValueError,
    },
    /// A flag's or environment variable's value.
    #[error("{flag}{}: {source}", env.as_ref().map(|e| format!(" (or {e})")).unwrap_or_default())]
    Flag {
        /// The real flag.
        flag: String,
        /// Its variable, where the value may come from it.
        env: Option<String>,
        /// What is wrong.
        source: ValueError,
    },
}

/// Settings given as flags or environment variables (clap merges the two,
/// flag first); a key not given keeps the file's or the default value.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    given: Vec<(&'static Key, Vec<String>)>,
    /// The values may come from environment variables (the daemon's):
    /// errors name both.
    env: bool,
}

impl Overrides {
    /// No values; errors will name the variable too when `env`.
    pub fn new(env: bool) -> Overrides {
        Overrides {
            given: Vec::new(),
            env,
        }
    }

    /// `key` given these values (flag occurrences, or the variable's text).
    pub fn set(&mut self, key: &'static Key, values: Vec<String>) {
        self.given.retain(|(k, _)| k.name != key.name);
        self.given.push((key, values));
    }

    /// Adds `other`'s values.
    pub fn extend(&mut self, other: Overrides) {
        self.env |= other.env;
        for (k, v) in other.given {
            self.set(k, v);
        }
    }

    /// Applies the values to `c`, then checks it; errors name the flag.
    pub fn apply(&self, c: &mut Config) -> Result<(), ConfigError> {
        for (key, values) in &self.given {
            c.set(key, Given::Text(values))
                .map_err(|m| self.error(key, m))?;
        }
        c.check().map_err(|(key, m)| self.error(key, m))
    }

    fn error(&self, key: &Key, source: ValueError) -> ConfigError {
        ConfigError::Flag {
            flag: key.flag(),
            env: self.env.then(|| key.env()),
            source,
        }
    }
}

/// The keys a config file sets, with their values and lines.
#[derive(Clone, Debug, Default)]
pub struct FileConfig {
    values: Vec<(&'static Key, toml::Value, Option<usize>)>,
}

/// Loads the effective configuration. `path`: the file named by --config
/// (must exist) or None for the default path (may be absent).
pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
    let (file_path, required) = match path {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
    };
    let file = match std::fs::read_to_string(&file_path) {
        Ok(text) => parse_file(&text, &file_path)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => FileConfig::default(),
        Err(source) => {
            return Err(ConfigError::Read {
                path: file_path,
                source,
            });
        }
    };
    let mut c = Config::default();
    let at = |line: Option<usize>| match line {
        Some(l) => format!("{}:{l}", file_path.display()),
        None => file_path.display().to_string(),
    };
    for (key, value, line) in &file.values {
        c.set(key, Given::Toml(value))
            .map_err(|source| ConfigError::File {
                at: at(*line),
                key: key.name,
                source,
            })?;
    }
    c.check().map_err(|(key, source)| {
        let line = file
            .values
            .iter()
            .find(|(k, _, _)| k.name == key.name)
            .and_then(|(_, _, l)| *l);
        ConfigError::File {
            at: at(line),
            key: key.name,
            source,
        }
    })?;
    overrides.apply(&mut c)?;
    Ok(c)
}

/// Parses the TOML text of `path` into the keys it sets; errors carry
/// file:line and the key.
pub fn parse_file(text: &str, path: &Path) -> Result<FileConfig, ConfigError> {
    let table = toml::from_str::<toml::Table>(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        let key = line
            .and_then(|l| text.lines().nth(l - 1))
            .and_then(|l| l.split('=').next())
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty() && !k.starts_with('['));
        let msg = e.message().trim().to_string();
        let at = match (line, key) {
            (Some(l), Some(k)) => format!("{}:{l}: key `{k}`", path.display()),
            (Some(l), None) => format!("{}:{l}", path.display()),
            _ => path.display().to_string(),
        };
        ConfigError::Syntax { at, msg }
    })?;
    let mut values = Vec::new();
    for (name, value) in table {
        let line = line_of(text, &name);
        let Some(key) = KEYS.iter().copied().find(|k| k.name == name) else {
            let known: Vec<String> = KEYS.iter().map(|k| format!("`{}`", k.name)).collect();
            let at = match line {
                Some(l) => format!("{}:{l}", path.display()),
                None => path.display().to_string(),
            };
            return Err(ConfigError::UnknownKey {
                at,
                name,
                known: known.join(", "),
            });
        };
        values.push((key, value, line));
    }
    // In the file's order, so the first bad line is the one reported.
    values.sort_by_key(|(_, _, line)| line.unwrap_or(usize::MAX));
    Ok(FileConfig { values })
}

/// The line (1-based) where top-level key `name` is set.
fn line_of(text: &str, name: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            let l = l
                .strip_prefix(name)
                .or_else(|| l.strip_prefix(&format!("\"{name}\"")));
            l.is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}
