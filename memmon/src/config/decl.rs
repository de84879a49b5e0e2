//! What a setting is (a [`Key`]), how each kind of value is read from a
//! flag, an environment variable or the file and shown back ([`Kind`]),
//! and the [`keys!`] macro that turns one declaration per setting into the
//! `Config` struct, its defaults, the key table and the typed setters.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

/// Why a value is refused; the message says what to give instead.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// The file gives another type (a string where a number goes, ...).
    #[error("expected {expected}, found {found}")]
    WrongType {
        /// What the key takes.
        expected: &'static str,
        /// What the file has.
        found: String,
    },
    /// The text is not a value of the kind.
    #[error("{0}")]
    Invalid(String),
    /// A value of the kind that memmon does not take.
    #[error("{0}")]
    OutOfRange(String),
}

/// A [`ValueError::Invalid`] from a format string.
macro_rules! invalid {
    ($($t:tt)*) => { ValueError::Invalid(format!($($t)*)) };
}

/// How a setting's flag takes its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// `--flag VALUE`.
    Value,
    /// `--flag[=BOOL]` and `--no-flag`.
    Switch,
    /// `--flag A --flag B` (or `--flag A,B`; the environment variable is a
    /// comma list).
    List,
}

/// One setting: everything but its type and default, which live in the
/// `Config` field the same declaration makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    /// Key in memmon.toml, and the `Config` field.
    pub name: &'static str,
    /// Long flag without the dashes when it is not the key with `-` for
    /// `_` (e.g. `interval` for `interval_seconds`).
    pub flag: Option<&'static str>,
    /// One line for `--help`.
    pub help: &'static str,
    /// What the default file says above the key (its doc comment).
    pub doc: &'static [&'static str],
    /// The value's placeholder in `--help`.
    pub value_name: &'static str,
    /// SIGHUP applies a changed value (else it needs a restart).
    pub reload: bool,
    /// Probe selection: also a flag of `snapshot`, `top`, `record` and
    /// `events` (without the environment variable).
    pub probe: bool,
    /// Written commented out in the default file with this value when the
    /// default is unset.
    pub example: Option<&'static str>,
    /// How the flag takes the value (from the value's [`Kind`]).
    pub shape: Shape,
}

impl Key {
    /// What a declaration leaves unsaid.
    pub const DEFAULT: Key = Key {
        name: "",
        flag: None,
        help: "",
        doc: &[],
        value_name: "VALUE",
        reload: false,
        probe: false,
        example: None,
        shape: Shape::Value,
    };

    /// The long flag, e.g. `--top-k`.
    pub fn flag(&self) -> String {
        match self.flag {
            Some(f) => format!("--{f}"),
            None => format!("--{}", self.name.replace('_', "-")),
        }
    }

    /// The environment variable, e.g. `MEMMON_TOP_K`.
    pub fn env(&self) -> String {
        format!("MEMMON_{}", self.name.to_ascii_uppercase())
    }
}

/// A value as given: by a flag or environment variable (text, one per
/// occurrence) or by the file (TOML).
#[derive(Clone, Copy, Debug)]
pub enum Given<'a> {
    /// Flag or environment values, in order.
    Text(&'a [String]),
    /// The file's value.
    Toml(&'a toml::Value),
}

/// How values of type `T` are read and shown. A kind may serve several
/// types (e.g. [`Whole`] for `usize` and `u64`).
pub trait Kind<T> {
    /// How the flag takes it.
    const SHAPE: Shape = Shape::Value;
    /// From a flag's or environment variable's text.
    fn parse(text: &str) -> Result<T, ValueError>;
    /// From the file (a string, parsed as a flag's, unless the kind says
    /// otherwise).
    fn from_toml(v: &toml::Value) -> Result<T, ValueError> {
        match v {
            toml::Value::String(s) => Self::parse(s),
            other => Err(ValueError::WrongType {
                expected: "a string",
                found: describe(other),
            }),
        }
    }
    /// From what was given (the last flag value wins).
    fn from_given(g: Given<'_>) -> Result<T, ValueError> {
        match g {
            Given::Toml(v) => Self::from_toml(v),
            Given::Text(values) => match values.last() {
                Some(t) => Self::parse(t),
                None => Err(ValueError::Invalid("no value given".into())),
            },
        }
    }
    /// As text (`config --check`, the SIGHUP comparison, `--help`).
    fn show(v: &T) -> String;
    /// As a TOML value for the default file; None when unset.
    fn toml(v: &T) -> Option<String>;
}

/// `integer 3`, `string "x"`, ... for type errors.
fn describe(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("string {s:?}"),
        toml::Value::Integer(i) => format!("integer {i}"),
        toml::Value::Float(f) => format!("float {f}"),
        toml::Value::Boolean(b) => format!("boolean {b}"),
        toml::Value::Datetime(d) => format!("date {d}"),
        toml::Value::Array(_) => "an array".into(),
        toml::Value::Table(_) => "a table".into(),
    }
}

/// A TOML string literal.
fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// An `address:port`.
pub struct Addr;
impl Kind<SocketAddr> for Addr {
    fn parse(s: &str) -> Result<SocketAddr, ValueError> {
        s.parse().map_err(|e| {
            invalid!("`{s}` is not an address:port ({e}); e.g. 127.0.0.1:9755 or [::1]:9755")
        })
    }
    fn show(v: &SocketAddr) -> String {
        v.to_string()
    }
    fn toml(v: &SocketAddr) -> Option<String> {
        Some(quote(&v.to_string()))
    }
}

/// A number (integers accepted).
pub struct Float;
impl Kind<f64> for Float {
    fn parse(s: &str) -> Result<f64, ValueError> {
        s.trim()
            .parse()
            .map_err(|_| invalid!("`{s}` is not a number"))
    }
    fn from_toml(v: &toml::Value) -> Result<f64, ValueError> {
        match v {
            toml::Value::Float(f) => Ok(*f),
            toml::Value::Integer(i) => Ok(*i as f64),
            other => Err(ValueError::WrongType {
                expected: "a number",
                found: describe(other),
            }),
        }
    }
    fn show(v: &f64) -> String {
        v.to_string()
    }
    fn toml(v: &f64) -> Option<String> {
        Some(format!("{v:?}"))
    }
}

/// A whole number, 0 or more.
pub struct Whole;
macro_rules! whole {
    ($($t:ty),*) => {$(
        impl Kind<$t> for Whole {
            fn parse(s: &str) -> Result<$t, ValueError> {
                s.trim()
                    .parse()
                    .map_err(|_| invalid!("`{s}` is not a whole number"))
            }
            fn from_toml(v: &toml::Value) -> Result<$t, ValueError> {
                match v {
                    toml::Value::Integer(i) => <$t>::try_from(*i)
                        .map_err(|_| invalid!("{i} is out of range for a whole number")),
                    other => Err(ValueError::WrongType {
                expected: "a whole number",
                found: describe(other),
            }),
                }
            }
            fn show(v: &$t) -> String {
                v.to_string()
            }
            fn toml(v: &$t) -> Option<String> {
                Some(v.to_string())
            }
        }
    )*};
}
whole!(usize, u64);

/// A whole number, or `auto` (None): memmon chooses and changes it.
pub struct Auto;
impl Kind<Option<u64>> for Auto {
    fn parse(s: &str) -> Result<Option<u64>, ValueError> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("auto") {
            return Ok(None);
        }
        t.parse()
            .map(Some)
            .map_err(|_| invalid!("`{s}` is neither a whole number nor auto"))
    }
    fn from_toml(v: &toml::Value) -> Result<Option<u64>, ValueError> {
        match v {
            toml::Value::Integer(i) => u64::try_from(*i)
                .map(Some)
                .map_err(|_| invalid!("{i} is out of range for a whole number")),
            toml::Value::String(s) => Self::parse(s),
            other => Err(ValueError::WrongType {
                expected: "a whole number or \"auto\"",
                found: describe(other),
            }),
        }
    }
    fn show(v: &Option<u64>) -> String {
        v.map_or("auto".into(), |n| n.to_string())
    }
    fn toml(v: &Option<u64>) -> Option<String> {
        Some(v.map_or(quote("auto"), |n| n.to_string()))
    }
}

/// Free text.
pub struct Text;
impl Kind<String> for Text {
    fn parse(s: &str) -> Result<String, ValueError> {
        Ok(s.to_string())
    }
    fn show(v: &String) -> String {
        v.clone()
    }
    fn toml(v: &String) -> Option<String> {
        Some(quote(v))
    }
}

/// On or off.
pub struct Switch;
impl Kind<bool> for Switch {
    const SHAPE: Shape = Shape::Switch;
    fn parse(s: &str) -> Result<bool, ValueError> {
        match s.trim() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(invalid!("`{s}` is not a boolean: give true or false")),
        }
    }
    fn from_toml(v: &toml::Value) -> Result<bool, ValueError> {
        match v {
            toml::Value::Boolean(b) => Ok(*b),
            other => Err(ValueError::WrongType {
                expected: "true or false",
                found: describe(other),
            }),
        }
    }
    fn show(v: &bool) -> String {
        v.to_string()
    }
    fn toml(v: &bool) -> Option<String> {
        Some(v.to_string())
    }
}

/// A list of names (flag repeated or comma-separated; an array in the
/// file).
pub struct Names;
impl Kind<Vec<String>> for Names {
    const SHAPE: Shape = Shape::List;
    fn parse(s: &str) -> Result<Vec<String>, ValueError> {
        Ok(s.split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect())
    }
    fn from_toml(v: &toml::Value) -> Result<Vec<String>, ValueError> {
        let toml::Value::Array(items) = v else {
            return Err(ValueError::WrongType {
                expected: "an array of names",
                found: describe(v),
            });
        };
        items
            .iter()
            .map(|i| match i {
                toml::Value::String(s) => Ok(s.clone()),
                other => Err(ValueError::WrongType {
                    expected: "a name",
                    found: describe(other),
                }),
            })
            .collect()
    }
    fn from_given(g: Given<'_>) -> Result<Vec<String>, ValueError> {
        match g {
            Given::Toml(v) => Self::from_toml(v),
            Given::Text(values) => {
                let mut out = Vec::new();
                for v in values {
                    out.extend(Self::parse(v)?);
                }
                Ok(out)
            }
        }
    }
    fn show(v: &Vec<String>) -> String {
        v.join(",")
    }
    fn toml(v: &Vec<String>) -> Option<String> {
        let items: Vec<String> = v.iter().map(|s| quote(s)).collect();
        Some(format!("[{}]", items.join(", ")))
    }
}

/// A path.
pub struct Path;
impl Kind<PathBuf> for Path {
    fn parse(s: &str) -> Result<PathBuf, ValueError> {
        Ok(PathBuf::from(s))
    }
    fn show(v: &PathBuf) -> String {
        v.display().to_string()
    }
    fn toml(v: &PathBuf) -> Option<String> {
        Some(quote(&v.display().to_string()))
    }
}
impl Kind<Option<PathBuf>> for Path {
    fn parse(s: &str) -> Result<Option<PathBuf>, ValueError> {
        Ok(Some(PathBuf::from(s)))
    }
    fn show(v: &Option<PathBuf>) -> String {
        v.as_ref()
            .map_or(String::new(), |p| p.display().to_string())
    }
    fn toml(v: &Option<PathBuf>) -> Option<String> {
        v.as_ref().map(|p| quote(&p.display().to_string()))
    }
}

/// Bytes, or a number with K/M/G/T (powers of 1024).
pub struct Size;
impl Kind<u64> for Size {
    fn parse(s: &str) -> Result<u64, ValueError> {
        parse_size(s)
    }
    fn from_toml(v: &toml::Value) -> Result<u64, ValueError> {
        match v {
            toml::Value::Integer(i) => u64::try_from(*i).map_err(|_| invalid!("{i} is not a size")),
            toml::Value::String(s) => parse_size(s),
            other => Err(ValueError::WrongType {
                expected: "a size (bytes, or text such as \"2GiB\")",
                found: describe(other),
            }),
        }
    }
    fn show(v: &u64) -> String {
        match [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")]
            .iter()
            .find(|(shift, _)| *v > 0 && v.is_multiple_of(1u64 << shift))
        {
            Some((shift, unit)) => format!("{}{unit}", v >> shift),
            None => v.to_string(),
        }
    }
    fn toml(v: &u64) -> Option<String> {
        let shown = Self::show(v);
        Some(if shown.ends_with('B') {
            quote(&shown)
        } else {
            shown
        })
    }
}

/// A duration ("24h", "7d", "90m").
pub struct Age;
impl Kind<Duration> for Age {
    fn parse(s: &str) -> Result<Duration, ValueError> {
        parse_age(s)
    }
    fn show(v: &Duration) -> String {
        humantime::format_duration(*v).to_string()
    }
    fn toml(v: &Duration) -> Option<String> {
        Some(quote(&humantime::format_duration(*v).to_string()))
    }
}

/// Parses a size: bytes, or a number with K/M/G/T (powers of 1024; KiB,
/// MB, ... accepted alike).
pub fn parse_size(s: &str) -> Result<u64, ValueError> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| invalid!("`{s}` is not a size; write e.g. 1073741824, 500MiB or 2GiB"))?;
    let mult: u64 = match unit
        .trim()
        .to_ascii_lowercase()
        .trim_end_matches('b')
        .trim_end_matches('i')
    {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => {
            return Err(invalid!(
                "`{s}`: unknown unit `{unit}`; use KiB, MiB, GiB or TiB"
            ));
        }
    };
    Ok((n * mult as f64) as u64)
}

/// Parses a duration ("24h", "7d", "90m").
pub fn parse_age(s: &str) -> Result<Duration, ValueError> {
    humantime::parse_duration(s.trim())
        .map_err(|e| invalid!("`{s}` is not a duration ({e}); write e.g. 24h, 7d or 90m"))
}

/// Declares the settings: each entry is one key, once — its doc comment
/// (the default file's comment), name (the file key and `Config` field;
/// the flag and environment variable follow from it), type, default, kind
/// (how it is read), an optional `where` check, and its [`Key`]
/// attributes (`help`, `value_name`, `reload`, `flag`, `probe`,
/// `example`). Makes `Config` (with `Default`), `key::<name>` and `KEYS`,
/// and `Config`'s typed `set`, `value_of` and `check`.
macro_rules! keys {
    ($(
        $(#[doc = $doc:literal])*
        $name:ident: $ty:ty = $default:expr; $kind:ty $(where ($check:expr))? {
            $($attr:ident: $val:expr),* $(,)?
        }
    )*) => {
        /// Every setting, as the daemon uses it (declared in
        /// `config/mod.rs`; a field's doc is the default file's comment).
        #[derive(Clone, Debug, PartialEq)]
        pub struct Config {
            $( $(#[doc = $doc])* pub $name: $ty, )*
        }

        impl Default for Config {
            fn default() -> Self {
                Config { $( $name: $default, )* }
            }
        }

        /// One constant per setting (`key::top_k`).
        #[allow(non_upper_case_globals)]
        pub mod key {
            use super::*;
            $(
                #[doc = concat!("`", stringify!($name), "`.")]
                pub const $name: &Key = &Key {
                    name: stringify!($name),
                    doc: &[$($doc),*],
                    shape: <$kind as Kind<$ty>>::SHAPE,
                    $($attr: $val,)*
                    ..Key::DEFAULT
                };
            )*
        }

        /// Every setting, in the default file's order.
        pub const KEYS: &[&Key] = &[$(key::$name),*];

        impl Config {
            /// Sets `key` from what was given; the message says why not.
            fn set(&mut self, key: &Key, given: Given<'_>) -> Result<(), ValueError> {
                match key.name {
                    $( stringify!($name) => {
                        self.$name = <$kind as Kind<$ty>>::from_given(given)?;
                    } )*
                    _ => {}
                }
                Ok(())
            }

            /// A key's value as text (for the SIGHUP comparison and
            /// `config --check`); None for a key that does not exist.
            pub fn value_of(&self, name: &str) -> Option<String> {
                match name {
                    $( stringify!($name) => Some(<$kind as Kind<$ty>>::show(&self.$name)), )*
                    _ => None,
                }
            }

            /// The value as the default file writes it (None: unset).
            fn toml_of(&self, name: &str) -> Option<String> {
                match name {
                    $( stringify!($name) => <$kind as Kind<$ty>>::toml(&self.$name), )*
                    _ => None,
                }
            }

            /// Values the types allow but memmon does not: the key and why.
            fn check(&self) -> Result<(), (&'static Key, ValueError)> {
                $( $( ($check)(&self.$name).map_err(|m: ValueError| (key::$name, m))?; )? )*
                Ok(())
            }
        }
    };
}
pub(crate) use keys;
