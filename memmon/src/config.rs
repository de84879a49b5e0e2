//! The daemon's configuration: built-in defaults, overridden by the config
//! file (/etc/memmon/memmon.toml unless --config says otherwise), then by
//! environment variables (MEMMON_<KEY>), then by flags. Unknown keys, wrong
//! types and bad values are errors naming the file, line and key.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use serde::Deserialize;

/// Default config file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/memmon/memmon.toml";
/// Default listen address: loopback, port 9755 — in the Prometheus exporter
/// range (9100–9999) and not used by any well-known exporter (node 9100,
/// process 9256, ebpf 9435, ...).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9755";

/// One setting: its config-file key, flag and environment variable, and
/// whether SIGHUP applies a change. Every error message, the SIGHUP check
/// and the tests that bind the clap flags and the file's keys read this
/// table, so a key is named the same way everywhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    /// Key in memmon.toml.
    pub name: &'static str,
    /// Flag of `memmon daemon`.
    pub flag: &'static str,
    /// Environment variable.
    pub env: &'static str,
    /// SIGHUP applies a changed value (else it needs a restart).
    pub reload: bool,
}

const fn key(name: &'static str, flag: &'static str, env: &'static str, reload: bool) -> Key {
    Key {
        name,
        flag,
        env,
        reload,
    }
}

/// Every setting.
pub const KEYS: &[Key] = &[
    key("listen", "--listen", "MEMMON_LISTEN", false),
    key(
        "interval_seconds",
        "--interval",
        "MEMMON_INTERVAL_SECONDS",
        true,
    ),
    key("top_k", "--top-k", "MEMMON_TOP_K", true),
    key("top_by", "--top-by", "MEMMON_TOP_BY", true),
    key("max_cgroups", "--max-cgroups", "MEMMON_MAX_CGROUPS", true),
    key(
        "fault_detail",
        "--fault-detail",
        "MEMMON_FAULT_DETAIL",
        false,
    ),
    key(
        "alloc_detail",
        "--alloc-detail",
        "MEMMON_ALLOC_DETAIL",
        false,
    ),
    key(
        "disabled_probes",
        "--disable-probe",
        "MEMMON_DISABLED_PROBES",
        false,
    ),
    key("pin", "--pin", "MEMMON_PIN", false),
    key("pin_dir", "--pin-dir", "MEMMON_PIN_DIR", false),
    key(
        "history_seconds",
        "--history",
        "MEMMON_HISTORY_SECONDS",
        false,
    ),
    key(
        "web_config_file",
        "--web.config.file",
        "MEMMON_WEB_CONFIG_FILE",
        true,
    ),
    key("proc_root", "--proc-root", "MEMMON_PROC_ROOT", false),
    key("cgroup_root", "--cgroup-root", "MEMMON_CGROUP_ROOT", false),
    key("record", "--record", "MEMMON_RECORD", false),
    key(
        "record_max_bytes",
        "--record-max-bytes",
        "MEMMON_RECORD_MAX_BYTES",
        false,
    ),
    key(
        "record_max_age",
        "--record-max-age",
        "MEMMON_RECORD_MAX_AGE",
        false,
    ),
    key(
        "probe_cpu_budget",
        "--probe-cpu-budget",
        "MEMMON_PROBE_CPU_BUDGET",
        true,
    ),
    key("profile", "--profile", "MEMMON_PROFILE", false),
    key(
        "profile_period",
        "--profile-period",
        "MEMMON_PROFILE_PERIOD",
        false,
    ),
];

/// Default `profile_period`: one fault stack sampled per this many page
/// faults on a CPU (a prime, so a loop that faults in strides of a power
/// of two is not sampled in lockstep).
pub const DEFAULT_PROFILE_PERIOD: u64 = 997;

/// The key named `name` (every name used in this file is in [`KEYS`]; a
/// test checks it).
pub fn key_named(name: &str) -> Key {
    KEYS.iter()
        .copied()
        .find(|k| k.name == name)
        .unwrap_or(Key {
            name: "?",
            flag: "?",
            env: "?",
            reload: false,
        })
}

/// Ranking keys for the top-K per-process series.
pub const TOP_BY_KEYS: &[&str] = &["rss", "pss", "fault_rate", "swap", "major_faults"];

/// Every setting, as the daemon uses it.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Address the HTTP endpoint listens on.
    pub listen: SocketAddr,
    /// Seconds between samples.
    pub interval_seconds: f64,
    /// Processes exported with their own series.
    pub top_k: usize,
    /// What ranks them.
    pub top_by: String,
    /// Cgroups exported with their own series (the rest fold into `other`).
    pub max_cgroups: usize,
    /// Attach the per-fault programs (read/write/CoW split; costs ~5%).
    pub fault_detail: bool,
    /// Attach the per-allocation programs (slab, kmalloc, buddy).
    pub alloc_detail: bool,
    /// Probes not to attach.
    pub disabled_probes: Vec<String>,
    /// Pin the cumulative maps so restarts keep counting.
    pub pin: bool,
    /// Where to pin them.
    pub pin_dir: PathBuf,
    /// Seconds of per-process history kept for the OOM flight recorder.
    pub history_seconds: u64,
    /// Exporter-toolkit style web config (TLS, basic auth), if any.
    pub web_config_file: Option<PathBuf>,
    /// The proc filesystem read (normally /proc).
    pub proc_root: PathBuf,
    /// Where cgroup filesystems are mounted (normally /sys/fs/cgroup).
    pub cgroup_root: PathBuf,
    /// The store directory, when recording.
    pub record: Option<PathBuf>,
    /// Bytes the store keeps.
    pub record_max_bytes: u64,
    /// Age the store keeps.
    pub record_max_age: std::time::Duration,
    /// Share of one core the probes may take before the detail probes are
    /// suspended (0: no budget).
    pub probe_cpu_budget: f64,
    /// Keep a rolling window of sampled page-fault stacks for
    /// /api/v1/profile.
    pub profile: bool,
    /// Page faults per sampled stack (per CPU) when `profile` is on.
    pub profile_period: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 9755))),
            interval_seconds: 1.0,
            top_k: 50,
            top_by: "rss".into(),
            max_cgroups: 200,
            fault_detail: false,
            alloc_detail: false,
            disabled_probes: Vec::new(),
            pin: true,
            pin_dir: PathBuf::from(crate::probes::pins::DEFAULT_PIN_ROOT),
            history_seconds: 300,
            web_config_file: None,
            proc_root: PathBuf::from("/proc"),
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            record: None,
            record_max_bytes: crate::store::writer::DEFAULT_MAX_BYTES,
            record_max_age: crate::store::writer::DEFAULT_MAX_AGE,
            probe_cpu_budget: 0.01,
            profile: false,
            profile_period: DEFAULT_PROFILE_PERIOD,
        }
    }
}

/// The file's shape: every key optional, unknown keys rejected.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    listen: Option<String>,
    interval_seconds: Option<f64>,
    top_k: Option<usize>,
    top_by: Option<String>,
    max_cgroups: Option<usize>,
    fault_detail: Option<bool>,
    alloc_detail: Option<bool>,
    disabled_probes: Option<Vec<String>>,
    pin: Option<bool>,
    pin_dir: Option<PathBuf>,
    history_seconds: Option<u64>,
    web_config_file: Option<PathBuf>,
    proc_root: Option<PathBuf>,
    cgroup_root: Option<PathBuf>,
    record: Option<PathBuf>,
    record_max_bytes: Option<SizeValue>,
    record_max_age: Option<String>,
    probe_cpu_budget: Option<f64>,
    profile: Option<bool>,
    profile_period: Option<u64>,
}

/// A size in the file: bytes, or text with a unit ("1GiB").
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum SizeValue {
    Bytes(u64),
    Text(String),
}

/// Parses a size: bytes, or a number with K/M/G/T (powers of 1024; KiB,
/// MB, ... accepted alike).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size; write e.g. 1073741824, 500MiB or 2GiB"))?;
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
            return Err(format!(
                "`{s}`: unknown unit `{unit}`; use KiB, MiB, GiB or TiB"
            ));
        }
    };
    Ok((n * mult as f64) as u64)
}

/// Parses a duration ("24h", "7d", "90m").
pub fn parse_age(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("`{s}` is not a duration ({e}); write e.g. 24h, 7d or 90m"))
}

/// Settings given as flags or environment variables (clap merges the two,
/// flag first); `None` leaves the file's or the default value.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// --listen / MEMMON_LISTEN.
    pub listen: Option<String>,
    /// --interval / MEMMON_INTERVAL_SECONDS.
    pub interval_seconds: Option<f64>,
    /// --top-k / MEMMON_TOP_K.
    pub top_k: Option<usize>,
    /// --top-by / MEMMON_TOP_BY.
    pub top_by: Option<String>,
    /// --max-cgroups / MEMMON_MAX_CGROUPS.
    pub max_cgroups: Option<usize>,
    /// --fault-detail / MEMMON_FAULT_DETAIL.
    pub fault_detail: Option<bool>,
    /// --alloc-detail / MEMMON_ALLOC_DETAIL.
    pub alloc_detail: Option<bool>,
    /// --disable-probe (repeatable) / MEMMON_DISABLED_PROBES (comma list).
    pub disabled_probes: Option<Vec<String>>,
    /// --no-pin / MEMMON_PIN=false.
    pub pin: Option<bool>,
    /// --pin-dir / MEMMON_PIN_DIR.
    pub pin_dir: Option<PathBuf>,
    /// --history / MEMMON_HISTORY_SECONDS.
    pub history_seconds: Option<u64>,
    /// --web.config.file / MEMMON_WEB_CONFIG_FILE.
    pub web_config_file: Option<PathBuf>,
    /// --proc-root / MEMMON_PROC_ROOT.
    pub proc_root: Option<PathBuf>,
    /// --cgroup-root / MEMMON_CGROUP_ROOT.
    pub cgroup_root: Option<PathBuf>,
    /// --record / MEMMON_RECORD.
    pub record: Option<PathBuf>,
    /// --record-max-bytes / MEMMON_RECORD_MAX_BYTES.
    pub record_max_bytes: Option<String>,
    /// --record-max-age / MEMMON_RECORD_MAX_AGE.
    pub record_max_age: Option<String>,
    /// --probe-cpu-budget / MEMMON_PROBE_CPU_BUDGET.
    pub probe_cpu_budget: Option<f64>,
    pub profile: Option<bool>,
    pub profile_period: Option<u64>,
}

/// A configuration error: where and what, with the fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

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
        Err(e) => {
            return Err(ConfigError(format!(
                "cannot read config file {}: {e}",
                file_path.display()
            )));
        }
    };
    let mut c = Config::default();
    let from_file = |key: &str, msg: String| {
        ConfigError(format!("{}: key `{key}`: {msg}", file_path.display()))
    };
    if let Some(l) = &file.listen {
        c.listen = parse_listen(l).map_err(|m| from_file("listen", m))?;
    }
    apply(&mut c.interval_seconds, file.interval_seconds);
    apply(&mut c.top_k, file.top_k);
    apply(&mut c.top_by, file.top_by.clone());
    apply(&mut c.max_cgroups, file.max_cgroups);
    apply(&mut c.fault_detail, file.fault_detail);
    apply(&mut c.alloc_detail, file.alloc_detail);
    apply(&mut c.disabled_probes, file.disabled_probes.clone());
    apply(&mut c.pin, file.pin);
    apply(&mut c.pin_dir, file.pin_dir.clone());
    apply(&mut c.proc_root, file.proc_root.clone());
    apply(&mut c.cgroup_root, file.cgroup_root.clone());
    apply(&mut c.probe_cpu_budget, file.probe_cpu_budget);
    apply(&mut c.profile, file.profile);
    apply(&mut c.profile_period, file.profile_period);
    apply(&mut c.history_seconds, file.history_seconds);
    if file.web_config_file.is_some() {
        c.web_config_file = file.web_config_file.clone();
    }
    if file.record.is_some() {
        c.record = file.record.clone();
    }
    match &file.record_max_bytes {
        Some(SizeValue::Bytes(b)) => c.record_max_bytes = *b,
        Some(SizeValue::Text(t)) => {
            c.record_max_bytes = parse_size(t).map_err(|m| from_file("record_max_bytes", m))?
        }
        None => {}
    }
    if let Some(a) = &file.record_max_age {
        c.record_max_age = parse_age(a).map_err(|m| from_file("record_max_age", m))?;
    }
    validate(&c).map_err(|(key, m)| from_file(key, m))?;

    let from_flag = |name: &str, msg: String| {
        let k = key_named(name);
        ConfigError(format!("{} (or {}): {msg}", k.flag, k.env))
    };
    if let Some(l) = &overrides.listen {
        c.listen = parse_listen(l).map_err(|m| from_flag("listen", m))?;
    }
    apply(&mut c.interval_seconds, overrides.interval_seconds);
    apply(&mut c.top_k, overrides.top_k);
    apply(&mut c.top_by, overrides.top_by.clone());
    apply(&mut c.max_cgroups, overrides.max_cgroups);
    apply(&mut c.fault_detail, overrides.fault_detail);
    apply(&mut c.alloc_detail, overrides.alloc_detail);
    apply(&mut c.disabled_probes, overrides.disabled_probes.clone());
    apply(&mut c.pin, overrides.pin);
    apply(&mut c.pin_dir, overrides.pin_dir.clone());
    apply(&mut c.proc_root, overrides.proc_root.clone());
    apply(&mut c.cgroup_root, overrides.cgroup_root.clone());
    apply(&mut c.probe_cpu_budget, overrides.probe_cpu_budget);
    apply(&mut c.profile, overrides.profile);
    apply(&mut c.profile_period, overrides.profile_period);
    apply(&mut c.history_seconds, overrides.history_seconds);
    if overrides.web_config_file.is_some() {
        c.web_config_file = overrides.web_config_file.clone();
    }
    if overrides.record.is_some() {
        c.record = overrides.record.clone();
    }
    if let Some(b) = &overrides.record_max_bytes {
        c.record_max_bytes = parse_size(b).map_err(|m| from_flag("record_max_bytes", m))?;
    }
    if let Some(a) = &overrides.record_max_age {
        c.record_max_age = parse_age(a).map_err(|m| from_flag("record_max_age", m))?;
    }
    validate(&c).map_err(|(key, m)| from_flag(key, m))?;
    Ok(c)
}

fn apply<T>(slot: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *slot = v;
    }
}

fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|e| {
        format!("`{s}` is not an address:port ({e}); e.g. 127.0.0.1:9755 or [::1]:9755")
    })
}

/// Checks values the types allow but memmon does not: (key, message).
fn validate(c: &Config) -> Result<(), (&'static str, String)> {
    if !(c.interval_seconds.is_finite() && (0.05..=3600.0).contains(&c.interval_seconds)) {
        return Err((
            "interval_seconds",
            format!(
                "{} is out of range: give 0.05 to 3600 seconds",
                c.interval_seconds
            ),
        ));
    }
    if !(1..=10_000).contains(&c.top_k) {
        return Err((
            "top_k",
            format!("{} is out of range: give 1 to 10000", c.top_k),
        ));
    }
    if !TOP_BY_KEYS.contains(&c.top_by.as_str()) {
        return Err((
            "top_by",
            format!(
                "`{}` is not a ranking key; use one of {}",
                c.top_by,
                TOP_BY_KEYS.join(", ")
            ),
        ));
    }
    if !(1..=100_000).contains(&c.max_cgroups) {
        return Err((
            "max_cgroups",
            format!("{} is out of range: give 1 to 100000", c.max_cgroups),
        ));
    }
    if c.record_max_bytes < (1 << 20) {
        return Err((
            "record_max_bytes",
            format!(
                "{} bytes is too small: give at least 1MiB",
                c.record_max_bytes
            ),
        ));
    }
    if c.record_max_age < std::time::Duration::from_secs(60) {
        return Err((
            "record_max_age",
            format!(
                "{} is too short: give at least 1m",
                humantime::format_duration(c.record_max_age)
            ),
        ));
    }
    if !(c.probe_cpu_budget.is_finite() && (0.0..=1.0).contains(&c.probe_cpu_budget)) {
        return Err((
            "probe_cpu_budget",
            format!(
                "{} is out of range: give a share of one core from 0 (no budget) to 1, e.g. 0.01 for 1%",
                c.probe_cpu_budget
            ),
        ));
    }
    if !(1..=1_000_000_000).contains(&c.profile_period) {
        return Err((
            "profile_period",
            format!(
                "{} is out of range: give the page faults per sampled stack, 1 to 1000000000 \
                 (default {DEFAULT_PROFILE_PERIOD})",
                c.profile_period
            ),
        ));
    }
    for p in &c.disabled_probes {
        if crate::probes::catalog::find(p).is_none() {
            let known: Vec<&str> = crate::probes::catalog::PROBES
                .iter()
                .map(|p| p.name.name())
                .collect();
            return Err((
                "disabled_probes",
                format!("no probe named `{p}`; known probes: {}", known.join(", ")),
            ));
        }
    }
    Ok(())
}

impl Config {
    /// A key's value as text (for the SIGHUP comparison and `config
    /// --check`).
    pub fn value_of(&self, name: &str) -> Option<String> {
        Some(match name {
            "listen" => self.listen.to_string(),
            "interval_seconds" => self.interval_seconds.to_string(),
            "top_k" => self.top_k.to_string(),
            "top_by" => self.top_by.clone(),
            "max_cgroups" => self.max_cgroups.to_string(),
            "fault_detail" => self.fault_detail.to_string(),
            "alloc_detail" => self.alloc_detail.to_string(),
            "disabled_probes" => self.disabled_probes.join(","),
            "pin" => self.pin.to_string(),
            "pin_dir" => self.pin_dir.display().to_string(),
            "history_seconds" => self.history_seconds.to_string(),
            "web_config_file" => self
                .web_config_file
                .as_ref()
                .map_or(String::new(), |p| p.display().to_string()),
            "proc_root" => self.proc_root.display().to_string(),
            "cgroup_root" => self.cgroup_root.display().to_string(),
            "record" => self
                .record
                .as_ref()
                .map_or(String::new(), |p| p.display().to_string()),
            "record_max_bytes" => self.record_max_bytes.to_string(),
            "record_max_age" => humantime::format_duration(self.record_max_age).to_string(),
            "probe_cpu_budget" => self.probe_cpu_budget.to_string(),
            "profile" => self.profile.to_string(),
            "profile_period" => self.profile_period.to_string(),
            _ => return None,
        })
    }

    /// Keys whose value differs from `other`'s and that SIGHUP cannot apply.
    pub fn needs_restart(&self, other: &Config) -> Vec<Key> {
        KEYS.iter()
            .copied()
            .filter(|k| !k.reload && self.value_of(k.name) != other.value_of(k.name))
            .collect()
    }
}

/// Parses the TOML text of `path`; errors carry file:line and the key.
pub fn parse_file(text: &str, path: &Path) -> Result<FileConfig, ConfigError> {
    toml::from_str::<FileConfig>(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        let key = line
            .and_then(|l| text.lines().nth(l - 1))
            .and_then(|l| l.split('=').next())
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty() && !k.starts_with('['));
        let msg = e.message().trim().to_string();
        match (line, key) {
            (Some(l), Some(k)) => ConfigError(format!("{}:{l}: key `{k}`: {msg}", path.display())),
            (Some(l), None) => ConfigError(format!("{}:{l}: {msg}", path.display())),
            _ => ConfigError(format!("{}: {msg}", path.display())),
        }
    })
}

/// The default configuration as a commented TOML file.
pub fn default_toml() -> String {
    let d = Config::default();
    format!(
        r#"# memmon daemon configuration ({DEFAULT_CONFIG_PATH}).
# Every key is optional; each is also a flag (--key-name) and an
# environment variable (MEMMON_KEY_NAME). Precedence: flag > env > file > default.

# HTTP endpoint (/metrics, /api/v1/snapshot, /api/v1/events, /healthz).
# Loopback by default; 9755 is in the exporter range and used by no
# well-known exporter.
listen = "{listen}"

# Seconds between samples of the kernel maps and /proc.
interval_seconds = {interval:.1}

# Processes exported with their own series, and what ranks them
# (one of: {keys}). All processes are also summed per cgroup.
top_k = {top_k}
top_by = "{top_by}"

# Cgroups exported with their own series; the rest are summed as "other".
max_cgroups = {max_cgroups}

# Per-fault programs: read/write/copy-on-write split and real-time RSS.
# They cost a few percent of a pure page-fault storm; off by default.
fault_detail = {fault_detail}

# Per-allocation programs: mmap/munmap/mremap/brk syscalls, slab caches,
# kmalloc size classes, buddy allocator, per process. Syscall tracepoints
# put every syscall on the slow path and the allocator ones run on every
# kernel allocation; off by default.
alloc_detail = {alloc_detail}

# Probes not to attach (see `memmon snapshot --probes`).
disabled_probes = []

# Pin the cumulative kernel maps so a restart keeps counting.
pin = {pin}
pin_dir = "{pin_dir}"

# Seconds of per-process history kept for the OOM flight recorder.
history_seconds = {history}

# Exporter-toolkit style web config file (TLS certificate, basic auth).
# web_config_file = "/etc/memmon/web.yml"

# The proc filesystem to read (the host's, with the host's pids).
proc_root = "{proc_root}"

# Where cgroup filesystems are mounted (v1 memory/ below it, or v2).
cgroup_root = "{cgroup_root}"

# Record every pass (all processes and cgroups) into a local store that
# `memmon replay` and `memmon dump` read; off unless set (the shipped
# systemd unit records into /var/lib/memmon/store).
# record = "/var/lib/memmon/store"

# What the store keeps: total size (bytes or 500MiB, 2GiB) and age (24h,
# 7d); the oldest shards are removed first.
record_max_bytes = "{max_bytes}MiB"
record_max_age = "{max_age}"
# Share of one core memmon's kernel programs may take (the kernel's BPF
# run-time statistics measure it). Above it for 3 passes, the detail
# probes (fault_detail, alloc_detail) are suspended, said once in the log
# and /api/v1/events, and attached again once the system's fault rate has
# halved and a cool-down (20 s, doubling) has passed. 0: no budget.
probe_cpu_budget = {probe_cpu_budget}

# Continuous page-fault profile, served as gzipped pprof on
# /api/v1/profile?seconds=N[&pid=P|&cgroup=PATH] (what Parca and Pyroscope
# scrape): one stack sampled every profile_period page faults on a CPU
# (a perf software event; ~1000 keeps the cost on a fault storm well under
# the one-shot `memmon profile`'s period of 64), the last 60 s kept in
# memory (at most 16384 distinct stacks). Off by default.
profile = {profile}
profile_period = {profile_period}
"#,
        listen = d.listen,
        interval = d.interval_seconds,
        keys = TOP_BY_KEYS.join(", "),
        top_k = d.top_k,
        top_by = d.top_by,
        max_cgroups = d.max_cgroups,
        fault_detail = d.fault_detail,
        alloc_detail = d.alloc_detail,
        pin = d.pin,
        pin_dir = d.pin_dir.display(),
        history = d.history_seconds,
        proc_root = d.proc_root.display(),
        cgroup_root = d.cgroup_root.display(),
        max_bytes = d.record_max_bytes >> 20,
        max_age = humantime::format_duration(d.record_max_age),
        probe_cpu_budget = d.probe_cpu_budget,
        profile = d.profile,
        profile_period = d.profile_period,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("memmon.toml");
        std::fs::write(&path, text).expect("write");
        load(Some(&path), &Overrides::default())
    }

    #[test]
    fn default_file_parses_to_defaults() {
        assert_eq!(
            load_text(&default_toml()).expect("default parses"),
            Config::default()
        );
    }

    #[test]
    fn wrong_type_names_line_and_key() {
        let err = load_text("listen = \"127.0.0.1:1\"\ntop_k = \"many\"\n").expect_err("must fail");
        assert!(err.0.contains("memmon.toml:2: key `top_k`"), "{err}");
    }

    #[test]
    fn unknown_key_names_line() {
        let err = load_text("\n\nlisten_port = 3\n").expect_err("must fail");
        assert!(err.0.contains(":3:"), "{err}");
        assert!(err.0.contains("listen_port"), "{err}");
    }

    #[test]
    fn bad_value_names_key() {
        let err = load_text("top_by = \"color\"\n").expect_err("must fail");
        assert!(err.0.contains("key `top_by`"), "{err}");
        let err = load_text("listen = \"nowhere\"\n").expect_err("must fail");
        assert!(err.0.contains("key `listen`"), "{err}");
    }

    #[test]
    fn flags_override_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.toml");
        std::fs::write(&path, "top_k = 7\ninterval_seconds = 2.0\n").expect("write");
        let o = Overrides {
            top_k: Some(9),
            ..Default::default()
        };
        let c = load(Some(&path), &o).expect("loads");
        assert_eq!((c.top_k, c.interval_seconds), (9, 2.0));
        let err = load(
            Some(&path),
            &Overrides {
                top_k: Some(0),
                ..Default::default()
            },
        )
        .expect_err("0 rejected");
        assert!(err.0.contains("--top-k"), "{err}");
    }

    #[test]
    fn every_key_is_a_flag_an_env_var_and_a_file_key() {
        use clap::CommandFactory as _;
        let cli = crate::cli::Cli::command();
        let daemon = cli
            .get_subcommands()
            .find(|c| c.get_name() == "daemon")
            .expect("daemon subcommand");
        for k in KEYS {
            let arg = daemon
                .get_arguments()
                .find(|a| a.get_long().map(|l| format!("--{l}")) == Some(k.flag.to_string()))
                .unwrap_or_else(|| panic!("{}: no flag {}", k.name, k.flag));
            assert_eq!(
                arg.get_env().and_then(|e| e.to_str()),
                Some(k.env),
                "{}: env",
                k.name
            );
            assert!(Config::default().value_of(k.name).is_some(), "{}", k.name);
            assert!(
                default_toml().contains(k.name),
                "{} not in the default file",
                k.name
            );
        }
        // The file accepts exactly these keys: serde names them all when
        // one is unknown.
        let err = load_text("no_such_key = 1\n").expect_err("unknown key");
        for k in KEYS {
            assert!(
                err.0.contains(&format!("`{}`", k.name)),
                "{}: {err}",
                k.name
            );
        }
    }

    #[test]
    fn errors_name_the_real_flag() {
        let err = load(
            None,
            &Overrides {
                interval_seconds: Some(0.0),
                ..Default::default()
            },
        )
        .expect_err("0 rejected");
        assert!(
            err.0.starts_with("--interval (or MEMMON_INTERVAL_SECONDS)"),
            "{err}"
        );
    }

    #[test]
    fn restart_keys_are_named() {
        let a = Config::default();
        let b = Config {
            top_k: 3,
            history_seconds: 10,
            listen: "127.0.0.1:1".parse().expect("addr"),
            ..Config::default()
        };
        let names: Vec<&str> = a.needs_restart(&b).iter().map(|k| k.name).collect();
        assert_eq!(names, vec!["listen", "history_seconds"]);
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        let err = load(
            Some(Path::new("/nonexistent/memmon.toml")),
            &Overrides::default(),
        )
        .expect_err("must fail");
        assert!(err.0.contains("/nonexistent/memmon.toml"), "{err}");
    }
}
