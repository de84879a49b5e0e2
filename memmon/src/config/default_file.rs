//! The default configuration as a commented TOML file (`memmon config
//! --print-default`, the packages' /etc/memmon/memmon.toml): each key's
//! doc as its comment, then the key at its default.

use std::fmt::Write as _;

use super::{Config, DEFAULT_CONFIG_PATH, KEYS};

/// The default configuration as a commented TOML file.
pub fn default_toml() -> String {
    let d = Config::default();
    let mut out = format!(
        "# memmon daemon configuration ({DEFAULT_CONFIG_PATH}).\n\
         # Every key is optional; each is also a flag (--key-name) and an\n\
         # environment variable (MEMMON_KEY_NAME). Precedence: flag > env > file > default.\n"
    );
    for k in KEYS {
        out.push('\n');
        for line in k.doc {
            let line = line.strip_prefix(' ').unwrap_or(line);
            let _ = writeln!(out, "# {line}");
        }
        match (d.toml_of(k.name), k.example) {
            (Some(v), _) => {
                let _ = writeln!(out, "{} = {v}", k.name);
            }
            (None, Some(example)) => {
                let _ = writeln!(out, "# {} = {example}", k.name);
            }
            (None, None) => {
                let _ = writeln!(out, "# {} =", k.name);
            }
        }
    }
    out
}
