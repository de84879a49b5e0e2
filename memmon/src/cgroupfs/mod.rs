//! Reader of the memory controller's files, cgroup v2 (unified) and v1
//! (`memory` controller), with a swappable root like [`crate::procfs`]'s:
//! usage, peak, swap, limits, `memory.stat` (v1 names mapped onto v2's),
//! events, PSI, and the derived working set and unreclaimable memory, one
//! plain [`CgroupSample`] per cgroup, every field an `Option`.
//!
//! Semantics, the same on v1 and v2: usage, peak, swap, `memory.stat` and
//! `events` are hierarchical (the cgroup and everything below it);
//! `events_local` (v2 only) counts the cgroup itself. A file the kernel
//! does not have (no `memory.peak` before 5.19, no PSI, no swap
//! accounting) leaves its fields `None` and is named in the sample's
//! `missing`; a cgroup removed mid-read is [`CgroupRead::Gone`].
//!
//! Cost: reading `memory.stat` makes the kernel flush its per-cpu stats, so
//! [`Detail::Usage`] reads only usage and swap, and [`CgroupReader`] reads
//! the full detail (peak, limits, events, PSI, memory.stat) of a cgroup only
//! when its usage moved or its interval is due, carrying the last full
//! detail forward in between; its usage files stay open and are re-read
//! with pread (see `cargo xtask bench --only cgroups` for the figures).

pub mod names;
pub mod parse;

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    io::ErrorKind,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use serde::Serialize;

pub use crate::sample::cgroup::{
    CgroupSample, Detail, Limits, MemoryEvents, MemoryStat, Missing, Pressure, Version,
};

/// Where the memory cgroups are, and which interface they speak.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupRoot {
    dir: PathBuf,
    version: Version,
}

/// The memory controller cannot be found or a path is not a cgroup path.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// Neither a v1 memory hierarchy nor a v2 one with the memory
    /// controller under `mount`.
    #[error(
        "no memory cgroup controller under {mount}: expected {mount}/memory/memory.usage_in_bytes \
         (cgroup v1) or \"memory\" in {mount}/cgroup.controllers (cgroup v2); mount one \
         (`mount -t cgroup2 none {mount}`) or point --cgroup-root at where it is mounted"
    )]
    NoMemoryController {
        /// The directory searched.
        mount: String,
    },
    /// The directory to search cannot be read.
    #[error(
        "cannot read {mount}: {why}; point --cgroup-root at where the cgroup filesystems are \
         mounted (default /sys/fs/cgroup)"
    )]
    Unreadable {
        /// The directory given.
        mount: String,
        /// The error.
        why: String,
    },
    /// A cgroup path with `..`, `.` or a NUL, which could leave the root.
    #[error("{0:?} is not a cgroup path (it must be /a/b without . or .. components)")]
    BadPath(String),
}

impl CgroupRoot {
    /// The memory controller under `/sys/fs/cgroup`.
    pub fn detect() -> Result<Self, CgroupError> {
        Self::detect_at("/sys/fs/cgroup")
    }

    /// The memory controller under `mount`: a v1 `memory` hierarchy at
    /// `mount/memory` wins (on hybrid systems the unified hierarchy has no
    /// memory controller), then `mount` itself as v2, then `mount` as a v1
    /// memory hierarchy, then `mount/unified` as v2.
    pub fn detect_at(mount: impl Into<PathBuf>) -> Result<Self, CgroupError> {
        let mount = mount.into();
        if let Err(e) = std::fs::read_dir(&mount) {
            return Err(CgroupError::Unreadable {
                mount: mount.display().to_string(),
                why: e.to_string(),
            });
        }
        let v1 = |d: &Path| d.join("memory.usage_in_bytes").exists();
        let v2 = |d: &Path| {
            std::fs::read_to_string(d.join("cgroup.controllers"))
                .is_ok_and(|t| t.split_whitespace().any(|c| c == "memory"))
        };
        let candidates = [
            (mount.join("memory"), Version::V1),
            (mount.clone(), Version::V2),
            (mount.clone(), Version::V1),
            (mount.join("unified"), Version::V2),
        ];
        candidates
            .into_iter()
            .find(|(d, v)| match v {
                Version::V1 => v1(d),
                Version::V2 => v2(d),
            })
            .map(|(dir, version)| CgroupRoot { dir, version })
            .ok_or_else(|| CgroupError::NoMemoryController {
                mount: mount.display().to_string(),
            })
    }

    /// A hierarchy at `dir` read as `version`, without checking (tests).
    pub fn new(dir: impl Into<PathBuf>, version: Version) -> Self {
        CgroupRoot {
            dir: dir.into(),
            version,
        }
    }

    /// The hierarchy's directory (e.g. `/sys/fs/cgroup/memory`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// v1 or v2.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The directory of `cgroup` (a path as /proc/PID/cgroup shows it).
    pub fn cgroup_dir(&self, cgroup: &str) -> Result<PathBuf, CgroupError> {
        let rel = cgroup.trim_matches('/');
        if cgroup.contains('\0')
            || rel
                .split('/')
                .any(|c| c == ".." || c == "." || (c.is_empty() && !rel.is_empty()))
        {
            return Err(CgroupError::BadPath(cgroup.to_string()));
        }
        Ok(if rel.is_empty() {
            self.dir.clone()
        } else {
            self.dir.join(rel)
        })
    }

    /// Reads one cgroup at `detail` (every file opened, read, closed).
    pub fn read(&self, cgroup: &str, detail: Detail) -> Result<CgroupRead, CgroupError> {
        self.read_with(cgroup, detail, None)
    }

    /// Reads one cgroup; the usage files through `cache` (kept open and
    /// re-read with pread) when given.
    fn read_with(
        &self,
        cgroup: &str,
        detail: Detail,
        cache: Option<&mut OpenFiles>,
    ) -> Result<CgroupRead, CgroupError> {
        let dir = self.cgroup_dir(cgroup)?;
        let is_root = dir == self.dir;
        let mut r = FileReader {
            dir: &dir,
            missing: Vec::new(),
            gone: false,
            cache,
        };
        let mut s = CgroupSample {
            path: normalize(cgroup),
            version: Some(self.version),
            detail,
            ..CgroupSample::default()
        };
        let full = detail == Detail::Full;
        match self.version {
            // The v2 root has no page counters, limits or events files.
            Version::V2 => {
                if !is_root {
                    s.usage = r.value(FILE_V2_CURRENT, parse::parse_v2_value);
                    // No memory.current in a cgroup that exists: the
                    // memory controller may not be enabled here (udev's
                    // own cgroup under systemd). Then no memory file is
                    // there to read: one reason, not one per file.
                    if s.usage.is_none()
                        && !r.gone
                        && r.missing.iter().any(|m| m.file == FILE_V2_CURRENT)
                        && !memory_enabled(&dir)
                    {
                        s.missing = vec![Missing {
                            file: FILE_V2_CURRENT,
                            why: NO_CONTROLLER.to_string(),
                        }];
                        s.derive();
                        return Ok(CgroupRead::Sample(Box::new(s)));
                    }
                    s.swap = r.value(FILE_V2_SWAP, parse::parse_v2_value);
                }
                if full && !is_root {
                    s.peak = r.value("memory.peak", parse::parse_v2_value);
                    s.events = r.text("memory.events").map(|t| parse::events_from_v2(&t));
                    s.events_local = r
                        .text("memory.events.local")
                        .map(|t| parse::events_from_v2(&t));
                    s.limits = Some(Limits {
                        max: r.value("memory.max", parse::parse_v2_value),
                        high: r.value("memory.high", parse::parse_v2_value),
                        low: r.value("memory.low", parse::parse_v2_value),
                        min: r.value("memory.min", parse::parse_v2_value),
                        swap_max: r.value("memory.swap.max", parse::parse_v2_value),
                        ..Limits::default()
                    });
                }
                if full {
                    s.pressure = r
                        .text("memory.pressure")
                        .and_then(|t| parse::parse_pressure(&t));
                    s.stat = r.text("memory.stat").map(|t| parse::stat_from_v2(&t));
                }
            }
            Version::V1 => {
                s.usage = r.value(FILE_V1_USAGE, parse::parse_v1_value);
                let memsw = r.value(FILE_V1_MEMSW, parse::parse_v1_value);
                s.swap = memsw.zip(s.usage).map(|(sw, u)| sw.saturating_sub(u));
                if full {
                    s.peak = r.value("memory.max_usage_in_bytes", parse::parse_v1_value);
                    let failcnt = r.value("memory.failcnt", parse::parse_v1_value);
                    let oom = r.text("memory.oom_control");
                    if failcnt.is_some() || oom.is_some() {
                        s.events = Some(parse::events_from_v1(failcnt, oom.as_deref()));
                    }
                    let stat_text = r.text("memory.stat");
                    s.limits = Some(Limits {
                        max: r.value("memory.limit_in_bytes", parse::parse_v1_value),
                        soft: r.value("memory.soft_limit_in_bytes", parse::parse_v1_value),
                        memsw_max: r.value("memory.memsw.limit_in_bytes", parse::parse_v1_value),
                        effective_max: stat_text.as_deref().and_then(parse::v1_hierarchical_limit),
                        ..Limits::default()
                    });
                    let kernel = r.value("memory.kmem.usage_in_bytes", parse::parse_v1_value);
                    s.stat = stat_text.map(|t| MemoryStat {
                        kernel,
                        ..parse::stat_from_v1(&t)
                    });
                }
            }
        }
        if r.gone {
            return Ok(CgroupRead::Gone);
        }
        s.missing = r.missing;
        s.derive();
        Ok(CgroupRead::Sample(Box::new(s)))
    }
}

/// Why a v2 cgroup without the memory controller has no memory files.
const NO_CONTROLLER: &str = "the memory controller is not enabled in this cgroup (its parent's \
                             cgroup.subtree_control lacks `memory`); the kernel charges its \
                             processes to the nearest ancestor that has it";

/// Whether `dir`'s `cgroup.controllers` lists `memory` (v2); a file that
/// cannot be read says nothing, so it counts as enabled.
fn memory_enabled(dir: &Path) -> bool {
    match std::fs::read_to_string(dir.join("cgroup.controllers")) {
        Ok(list) => list.split_whitespace().any(|c| c == "memory"),
        Err(_) => true,
    }
}

const FILE_V2_CURRENT: &str = "memory.current";
const FILE_V2_SWAP: &str = "memory.swap.current";
const FILE_V1_USAGE: &str = "memory.usage_in_bytes";
const FILE_V1_MEMSW: &str = "memory.memsw.usage_in_bytes";
/// The files read every pass: kept open by [`CgroupReader`].
const USAGE_FILES: [&str; 4] = [FILE_V2_CURRENT, FILE_V2_SWAP, FILE_V1_USAGE, FILE_V1_MEMSW];

/// `/a/b` with one leading slash, no trailing one.
fn normalize(cgroup: &str) -> String {
    format!("/{}", cgroup.trim_matches('/'))
}

/// One cgroup's usage files, open (re-read from offset 0 with pread: the
/// kernel regenerates a seq file read at offset 0).
#[derive(Debug, Default)]
struct OpenFiles {
    files: Vec<(&'static str, std::fs::File)>,
}

impl OpenFiles {
    fn read(&mut self, dir: &Path, file: &'static str) -> std::io::Result<String> {
        use std::os::unix::fs::FileExt as _;
        let f = match self.files.iter().position(|(n, _)| *n == file) {
            Some(i) => &self.files[i].1,
            None => {
                let f = std::fs::File::open(dir.join(file))?;
                self.files.push((file, f));
                &self.files[self.files.len() - 1].1
            }
        };
        let mut buf = [0u8; 64];
        let mut n = 0;
        loop {
            let got = f.read_at(&mut buf[n..], n as u64)?;
            n += got;
            if got == 0 || n == buf.len() {
                break;
            }
        }
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    }
}

/// Reads files of one cgroup directory, noting what is missing and
/// whether the cgroup went away.
struct FileReader<'a> {
    dir: &'a Path,
    missing: Vec<Missing>,
    gone: bool,
    cache: Option<&'a mut OpenFiles>,
}

impl FileReader<'_> {
    fn text(&mut self, file: &'static str) -> Option<String> {
        if self.gone {
            return None;
        }
        let read = match self.cache.as_mut() {
            Some(cache) if USAGE_FILES.contains(&file) => cache.read(self.dir, file),
            _ => std::fs::read_to_string(self.dir.join(file)),
        };
        match read {
            Ok(t) => Some(t),
            // ENODEV: the file was open when its cgroup was removed.
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => {
                self.gone = true;
                None
            }
            Err(e) if e.kind() == ErrorKind::NotFound && !self.dir.is_dir() => {
                self.gone = true;
                None
            }
            Err(e) => {
                let why = if e.kind() == ErrorKind::NotFound {
                    "not provided by this kernel or configuration".to_string()
                } else {
                    e.to_string()
                };
                self.missing.push(Missing { file, why });
                None
            }
        }
    }

    fn value(
        &mut self,
        file: &'static str,
        parse: fn(&str) -> Result<Option<u64>, parse::BadValue>,
    ) -> Option<u64> {
        let text = self.text(file)?;
        match parse(&text) {
            Ok(v) => v,
            Err(e) => {
                self.missing.push(Missing {
                    file,
                    why: e.to_string(),
                });
                None
            }
        }
    }
}

/// The outcome of reading one cgroup.
#[derive(Clone, Debug, PartialEq)]
pub enum CgroupRead {
    /// What was read.
    Sample(Box<CgroupSample>),
    /// The cgroup was removed before or during the read.
    Gone,
}

/// `cgroup`, then each ancestor up to and including `/`.
pub fn with_ancestors(cgroup: &str) -> impl Iterator<Item = String> + '_ {
    let trimmed = cgroup.trim_matches('/');
    let mut next = Some(trimmed);
    std::iter::from_fn(move || {
        let cur = next?;
        next = if cur.is_empty() {
            None
        } else {
            Some(cur.rsplit_once('/').map_or("", |(p, _)| p))
        };
        Some(format!("/{cur}"))
    })
}

/// When [`CgroupReader`] reads a cgroup's full detail.
#[derive(Clone, Debug)]
pub struct DetailPolicy {
    /// Full detail at least this often (the second reads of cgroups first
    /// seen together are spread over half an interval, so later passes
    /// share the cost).
    pub interval: Duration,
    /// ... and whenever usage moved since the last full read by more than
    /// this share of it (0.01 = 1%) ...
    pub usage_moved_share: f64,
    /// ... and by more than this many bytes (both: small cgroups that
    /// wobble by a few pages do not pay for memory.stat every pass).
    pub usage_moved_bytes: u64,
    /// Usage files kept open at most (two per cgroup; beyond, a cgroup's
    /// files are opened and closed at each read); by default their share
    /// of RLIMIT_NOFILE (`crate::fd_budget`).
    pub max_open_files: usize,
}

impl Default for DetailPolicy {
    fn default() -> Self {
        DetailPolicy {
            interval: Duration::from_secs(30),
            usage_moved_share: 0.01,
            usage_moved_bytes: 1 << 20,
            max_open_files: crate::fd_budget::limit().cgroup_files(),
        }
    }
}

#[derive(Clone, Debug)]
struct FullRead {
    at: Instant,
    sample: CgroupSample,
}

/// One pass over a set of cgroups.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CgroupScan {
    /// Each cgroup read, by path; ancestors included.
    pub samples: Vec<CgroupSample>,
    /// Cgroups that were gone when read.
    pub gone: Vec<String>,
    /// Problems said for the first time in this reader's life (a missing
    /// file, a bad path), each with what goes unreported.
    pub notices: Vec<String>,
    /// Cgroups read at full detail in this pass.
    pub full_reads: usize,
    /// Cgroups read at usage detail (full detail carried forward).
    pub usage_reads: usize,
    /// Time spent, seconds.
    pub seconds: f64,
}

/// Reads the cgroups holding processes and their ancestors each pass,
/// with the cost guard: full detail only when due (see [`DetailPolicy`]),
/// the last full detail carried forward otherwise.
#[derive(Debug)]
pub struct CgroupReader {
    root: CgroupRoot,
    policy: DetailPolicy,
    last_full: HashMap<String, FullRead>,
    open: HashMap<String, OpenFiles>,
    said: HashSet<String>,
}

impl CgroupReader {
    /// A reader of `root` with `policy`.
    pub fn new(root: CgroupRoot, policy: DetailPolicy) -> Self {
        CgroupReader {
            root,
            policy,
            last_full: HashMap::new(),
            open: HashMap::new(),
            said: HashSet::new(),
        }
    }

    /// The hierarchy read.
    pub fn root(&self) -> &CgroupRoot {
        &self.root
    }

    /// Reads `cgroups` (paths as /proc/PID/cgroup shows them) and all
    /// their ancestors, each once, parents before children.
    pub fn scan<'a>(&mut self, cgroups: impl IntoIterator<Item = &'a str>) -> CgroupScan {
        let started = Instant::now();
        let mut scan = CgroupScan::default();
        let mut paths = BTreeSet::new();
        for cg in cgroups {
            if let Err(e) = self.root.cgroup_dir(cg) {
                self.say(&mut scan, e.to_string());
                continue;
            }
            paths.extend(with_ancestors(cg));
        }
        let mut effective: HashMap<String, Option<u64>> = HashMap::new();
        for path in paths {
            let now = Instant::now();
            let mut due = self
                .last_full
                .get(&path)
                .is_none_or(|f| now.duration_since(f.at) >= self.policy.interval);
            let cacheable = self.open.contains_key(&path)
                || 2 * (self.open.len() + 1) <= self.policy.max_open_files;
            let cache = if cacheable {
                Some(self.open.entry(path.clone()).or_default())
            } else {
                None
            };
            let mut read =
                self.root
                    .read_with(&path, if due { Detail::Full } else { Detail::Usage }, cache);
            // Usage moved since the last full read: read it all now.
            if let (Ok(CgroupRead::Sample(s)), Some(f), false) =
                (&read, self.last_full.get(&path), due)
                && self.moved(f.sample.usage, s.usage)
            {
                due = true;
                read = self.root.read(&path, Detail::Full);
            }
            let mut s = match read {
                Ok(CgroupRead::Sample(s)) => s,
                Ok(CgroupRead::Gone) => {
                    self.last_full.remove(&path);
                    self.open.remove(&path);
                    scan.gone.push(path);
                    continue;
                }
                Err(e) => {
                    self.say(&mut scan, e.to_string());
                    continue;
                }
            };
            if due {
                scan.full_reads += 1;
                s.detail_age_ms = Some(0);
                // A cgroup's first full read counts as made up to half an
                // interval earlier (by its path's hash): many cgroups seen
                // at once then come due in different passes.
                let at = match self.last_full.get(&path) {
                    Some(_) => now,
                    None => now
                        .checked_sub(spread(&path, self.policy.interval))
                        .unwrap_or(now),
                };
                self.last_full.insert(
                    path.clone(),
                    FullRead {
                        at,
                        sample: (*s).clone(),
                    },
                );
            } else if let Some(f) = self.last_full.get(&path) {
                scan.usage_reads += 1;
                let (usage, swap, missing) = (s.usage, s.swap, std::mem::take(&mut s.missing));
                *s = CgroupSample {
                    usage,
                    swap,
                    missing,
                    detail: Detail::Usage,
                    detail_age_ms: Some(
                        u64::try_from(now.duration_since(f.at).as_millis()).unwrap_or(u64::MAX),
                    ),
                    ..f.sample.clone()
                };
                s.derive();
            }
            // v2: the smallest memory.max on the path to the root (parents
            // come first in the sorted set).
            if self.root.version == Version::V2 {
                let parent = with_ancestors(&path).nth(1);
                let inherited = parent.and_then(|p| effective.get(&p).copied().flatten());
                let own = s.limits.as_ref().and_then(|l| l.max);
                let eff = match (own, inherited) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                effective.insert(path.clone(), eff);
                if let Some(l) = s.limits.as_mut() {
                    l.effective_max = eff;
                }
            }
            for m in &s.missing {
                let key = format!("{}: {}", m.file, m.why);
                if !self.said.contains(&key) {
                    scan.notices.push(format!(
                        "cgroup {} {}: {}: {} not reported",
                        path,
                        m.file,
                        m.why,
                        what_goes_missing(m.file)
                    ));
                    self.said.insert(key);
                }
            }
            scan.samples.push(*s);
        }
        let seen: HashSet<&str> = scan.samples.iter().map(|s| s.path.as_str()).collect();
        self.last_full.retain(|p, _| seen.contains(p.as_str()));
        self.open.retain(|p, _| seen.contains(p.as_str()));
        scan.seconds = started.elapsed().as_secs_f64();
        scan
    }

    fn moved(&self, then: Option<u64>, now: Option<u64>) -> bool {
        match (then, now) {
            (Some(a), Some(b)) => {
                let d = a.abs_diff(b);
                d > self.policy.usage_moved_bytes
                    && (d as f64) > (a as f64) * self.policy.usage_moved_share
            }
            _ => false,
        }
    }

    fn say(&mut self, scan: &mut CgroupScan, text: String) {
        if self.said.insert(text.clone()) {
            scan.notices.push(text);
        }
    }
}

/// A point in `[0, interval)` picked by `path`'s hash.
fn spread(path: &str, interval: Duration) -> Duration {
    use std::hash::{BuildHasher as _, BuildHasherDefault, DefaultHasher};
    let h = BuildHasherDefault::<DefaultHasher>::default().hash_one(path);
    let ms = u64::try_from(interval.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    Duration::from_millis(h % ms)
}

/// What goes unreported without `file`.
pub fn what_goes_missing(file: &str) -> &'static str {
    match file {
        "memory.current" | "memory.usage_in_bytes" => "usage, working set",
        "memory.peak" | "memory.max_usage_in_bytes" => "peak usage",
        "memory.swap.current" | "memory.memsw.usage_in_bytes" => "swap usage",
        "memory.max" | "memory.limit_in_bytes" => "the hard limit",
        "memory.high" => "the high (throttling) limit",
        "memory.low" | "memory.min" => "memory protection",
        "memory.swap.max" | "memory.memsw.limit_in_bytes" => "the swap limit",
        "memory.soft_limit_in_bytes" => "the soft limit",
        "memory.stat" => "memory.stat items, working set, unreclaimable memory",
        "memory.kmem.usage_in_bytes" => "kernel memory",
        "memory.events" | "memory.events.local" | "memory.failcnt" | "memory.oom_control" => {
            "memory events"
        }
        "memory.pressure" => "memory pressure (PSI)",
        _ => "its values",
    }
}

#[cfg(test)]
mod tests;
