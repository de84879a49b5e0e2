//! Command-line flags (clap). Parsed here, validated by each command.

use clap::{Args, Parser, Subcommand};

/// Live memory monitor for Linux: eBPF probes joined with procfs.
#[derive(Debug, Parser)]
#[command(name = "memmon", version, about, propagate_version = true)]
pub struct Cli {
    /// Log filter (error, warn, info, debug, trace or a tracing directive).
    #[arg(long, global = true, env = "MEMMON_LOG", default_value = "warn")]
    pub log: String,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// memmon's commands.
// Parsed once per run: the daemon's many flags make its variant large, and
// that costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load the probes, watch for a while, print one row per process seen.
    Snapshot(SnapshotArgs),
    /// Stream events as they happen (OOM kills), one line each.
    Events(EventsArgs),
    /// Run as a service: keep the model current and serve /metrics and the
    /// JSON API (loopback :9755 by default).
    Daemon(DaemonArgs),
    /// Sample the stacks that make processes grow (page faults, brk, mmap)
    /// and print them as a table, folded stacks, pprof or an SVG flame graph.
    Profile(ProfileArgs),
    /// Leak suspects: memory still resident by the stack that first touched
    /// it (sampled page faults checked in /proc/PID/pagemap, any allocator),
    /// or with --exact the allocator's outstanding allocations (uprobes).
    Leaks(LeaksArgs),
    /// Configuration helpers.
    Config(ConfigArgs),
    /// A live terminal view of memory per process (or batch frames).
    Top(TopArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(CompletionsArgs),
    /// Write the manual pages (memmon.1, memmon-daemon.1, ...).
    Man(ManArgs),
    /// Record every pass's full model (processes, cgroups, system view,
    /// probes, events) into a local store, as `daemon --record` does.
    Record(RecordArgs),
    /// `memmon top` over a recording: step with left/right, `g` jumps to a time.
    Replay(ReplayArgs),
    /// Rows from a recording for scripts: JSON lines, CSV or OpenMetrics
    /// (for `promtool tsdb create-blocks-from openmetrics`).
    Dump(DumpArgs),
    /// The post-mortems of OOM kills and userspace SIGKILLs, from a
    /// running daemon or a recording.
    Incidents(IncidentsArgs),
    /// What is wrong with a process's or cgroup's memory: findings, worst
    /// first, with their evidence and what to do (live, from a daemon, or
    /// from a recording). Exit status: 0 nothing at warning or worse, 3 a
    /// warning, 4 critical (1 and 2: runtime and usage errors).
    Explain(ExplainArgs),
}

/// `memmon incidents`.
#[derive(Debug, Args)]
pub struct IncidentsArgs {
    /// Read a running daemon's API (http://HOST:PORT) [default: the local
    /// daemon at http://127.0.0.1:9755 when it answers, else the store at
    /// /var/lib/memmon/store].
    #[arg(long, value_name = "URL", conflicts_with = "store")]
    pub connect: Option<String>,
    /// Read a recording (the directory `memmon record DIR` or `memmon
    /// daemon --record DIR` writes).
    #[arg(long, value_name = "DIR")]
    pub store: Option<std::path::PathBuf>,
    /// Only incidents at or after this time: RFC 3339, Unix seconds, or
    /// relative ("1h ago").
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// Only incidents at or before this time.
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
    /// One JSON object per incident, per line.
    #[arg(long)]
    pub json: bool,
}

/// `memmon explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The process to explain.
    #[arg(value_name = "PID", conflicts_with_all = ["cgroup", "unit"])]
    pub pid: Option<u32>,
    /// A memory cgroup instead (its path, e.g. /system.slice/foo.service,
    /// or under /sys/fs/cgroup).
    #[arg(long, value_name = "PATH", conflicts_with = "unit")]
    pub cgroup: Option<String>,
    /// The memory cgroup of this systemd unit instead (e.g. nginx.service).
    #[arg(long, value_name = "NAME")]
    pub unit: Option<String>,
    /// Live: seconds to watch with memmon's own probes.
    #[arg(long, short = 'd', default_value_t = 10.0, value_name = "SECS")]
    pub duration: f64,
    /// Live: seconds between samples.
    #[arg(long, short = 'i', default_value_t = 1.0, value_name = "SECS")]
    pub interval: f64,
    /// Ask a running daemon instead (its recent history; with its
    /// --profile, its growth stacks): http://HOST:PORT.
    #[arg(long, value_name = "URL", conflicts_with = "store")]
    pub connect: Option<String>,
    /// Explain from a recording instead (`memmon record`, `daemon --record`).
    #[arg(long, value_name = "DIR")]
    pub store: Option<std::path::PathBuf>,
    /// With --store: the time to explain (RFC 3339, Unix seconds, `10m ago`)
    /// [default: the end of the recording].
    #[arg(long, value_name = "TIME", requires = "store")]
    pub at: Option<String>,
    /// With --store or --connect: how much history before that time to
    /// judge (e.g. 2m, 90s).
    #[arg(long, value_name = "DURATION", default_value = "2m")]
    pub window: String,
    /// JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Print the thresholds table and exit.
    #[arg(long)]
    pub thresholds: bool,
    /// Live, for a process: also sample its page-fault stacks and show the
    /// heaviest as where it grows.
    #[arg(long, conflicts_with_all = ["connect", "store"])]
    pub profile: bool,
    /// With --profile: one stack sampled per N page faults on a CPU.
    #[arg(long, value_name = "N", default_value_t = 67, requires = "profile")]
    pub profile_period: u64,
    /// The post-mortem of a kill instead: `latest` or its id, as `memmon
    /// incidents` lists it (from --connect, --store, or else the local
    /// daemon or the packaged store).
    #[arg(long, value_name = "latest|ID", conflicts_with_all = ["pid", "cgroup", "unit", "at", "window", "thresholds", "profile"])]
    pub oom: Option<String>,
    /// Probe selection (live).
    #[command(flatten)]
    pub probe_args: ProbeArgs,
}

/// Where the store is, for `replay` and `dump`.
pub const DEFAULT_STORE: &str = "/var/lib/memmon/store";

/// `memmon record`.
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// The store directory (created if missing).
    #[arg(value_name = "DIR")]
    pub dir: std::path::PathBuf,
    /// Seconds between samples.
    #[arg(long, short = 'i', default_value_t = 1.0, value_name = "SECS")]
    pub interval: f64,
    /// Total size kept, oldest shards removed first (e.g. 1GiB, 500MiB).
    #[arg(long, default_value = "1GiB", value_name = "SIZE")]
    pub max_bytes: String,
    /// Age kept (e.g. 24h, 7d).
    #[arg(long, default_value = "24h", value_name = "DURATION")]
    pub max_age: String,
    /// Stop after SECS (default: until Ctrl-C or SIGTERM).
    #[arg(long, short = 'd', value_name = "SECS")]
    pub duration: Option<f64>,
    /// Probe selection.
    #[command(flatten)]
    pub probe_args: ProbeArgs,
}

/// `memmon replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The store directory.
    #[arg(long, default_value = DEFAULT_STORE, value_name = "DIR")]
    pub store: std::path::PathBuf,
    /// Start at this time: RFC 3339, Unix seconds, or relative ("10m ago")
    /// [default: the oldest frame].
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Sort column, as in `memmon top --sort` [default: rss].
    #[arg(long, value_name = "KEY")]
    pub sort: Option<String>,
    /// Only processes whose command or cgroup contains TEXT.
    #[arg(long, value_name = "TEXT")]
    pub filter: Option<String>,
}

/// `memmon dump`'s output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DumpFormat {
    /// One JSON object per process and frame, per line.
    Json,
    /// A header line, then one row per process and frame.
    Csv,
    /// OpenMetrics text with timestamps (promtool backfill).
    Openmetrics,
}

/// `memmon dump`.
#[derive(Debug, Args)]
pub struct DumpArgs {
    /// The store directory.
    #[arg(long, default_value = DEFAULT_STORE, value_name = "DIR")]
    pub store: std::path::PathBuf,
    /// From this time: RFC 3339, Unix seconds, or relative ("1h ago").
    #[arg(long, value_name = "TIME")]
    pub from: String,
    /// To this time [default: now].
    #[arg(long, value_name = "TIME", default_value = "now")]
    pub to: String,
    /// Only this process.
    #[arg(long, value_name = "PID", conflicts_with_all = ["cgroup", "comm"])]
    pub pid: Option<u32>,
    /// Only processes in this memory cgroup or below it.
    #[arg(long, value_name = "PATH", conflicts_with = "comm")]
    pub cgroup: Option<String>,
    /// Only processes with this command name.
    #[arg(long, value_name = "NAME")]
    pub comm: Option<String>,
    /// Catalog fields to print (comma-separated JSON keys, e.g.
    /// rss_bytes,pss_bytes,minor_faults_per_second) [default: every field].
    #[arg(long, value_delimiter = ',', value_name = "KEYS")]
    pub fields: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "json")]
    pub format: DumpFormat,
}

/// `memmon completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

/// `memmon man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write one page per command (memmon.1, memmon-daemon.1, ...) into DIR
    /// instead of printing one page on stdout.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<std::path::PathBuf>,
    /// The command whose page to print (e.g. daemon) [default: memmon.1].
    #[arg(value_name = "COMMAND", conflicts_with = "dir")]
    pub command: Option<String>,
}

/// `memmon top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// Seconds between refreshes.
    #[arg(long, short = 'i', default_value_t = 1.0, value_name = "SECS")]
    pub interval: f64,
    /// Read a running daemon's API instead of loading probes
    /// (http://HOST:PORT).
    #[arg(long, value_name = "URL")]
    pub connect: Option<String>,
    /// Print frames on stdout instead of the interactive view.
    #[arg(long, short = 'b')]
    pub batch: bool,
    /// Frames to print in batch mode (default: until interrupted).
    #[arg(long, short = 'n', value_name = "N")]
    pub iterations: Option<u64>,
    /// Sort column (rss, pss, uss, swap, minflt, majflt, cow, mmap, slab,
    /// reclaim, oom, pid, comm, user) [default: rss].
    #[arg(long, value_name = "KEY")]
    pub sort: Option<String>,
    /// Only processes whose command or cgroup contains TEXT.
    #[arg(long, value_name = "TEXT")]
    pub filter: Option<String>,
    /// JSON lines in batch mode.
    #[arg(long, requires = "batch")]
    pub json: bool,
    /// Sample page-fault stacks (one per --profile-period faults on a CPU)
    /// and show the selected process's heaviest ones in the detail pane.
    #[arg(long, conflicts_with_all = ["connect", "batch"])]
    pub profile: bool,
    /// With --profile: one stack sampled per N page faults on a CPU.
    #[arg(long, value_name = "N", default_value_t = crate::config::DEFAULT_PROFILE_PERIOD, requires = "profile")]
    pub profile_period: u64,
    /// Probe selection (local mode).
    #[command(flatten)]
    pub probe_args: ProbeArgs,
}

/// `memmon daemon`: every setting is also a config-file key and an
/// environment variable (precedence: flag > env > file > default); the
/// flags are made from the key declarations in `config/mod.rs`.
#[derive(Debug, Args, Clone)]
pub struct DaemonArgs {
    /// Config file [default: /etc/memmon/memmon.toml, if present].
    #[arg(long, env = "MEMMON_CONFIG", value_name = "PATH")]
    pub config: Option<std::path::PathBuf>,
    /// Probe selection: the one-shot commands' flags, with variables.
    #[command(flatten)]
    pub probe_args: crate::config::DaemonProbeArgs,
    /// Every other setting.
    #[command(flatten)]
    pub settings: crate::config::DaemonSettings,
}

impl DaemonArgs {
    /// The flag/env settings as config overrides.
    pub fn overrides(&self) -> crate::config::Overrides {
        let mut o = self.probe_args.overrides();
        o.extend(self.settings.overrides());
        o
    }
}

/// `memmon config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Print the default configuration file (with comments).
    #[arg(long)]
    pub print_default: bool,
    /// Check a config file (and the MEMMON_* environment) and print the
    /// effective settings.
    #[arg(long, value_name = "PATH")]
    pub check: Option<std::path::PathBuf>,
}

/// Probe selection shared by every command that loads probes: the
/// daemon's probe keys as flags (`config::ProbeArgs`).
pub use crate::config::ProbeArgs;

/// `memmon snapshot`.
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// Seconds to watch (0: attach, read once, exit).
    #[arg(long, short = 'd', default_value_t = 1.0, value_name = "SECS")]
    pub duration: f64,
    /// Only these processes (repeatable); each is reported, idle or not.
    #[arg(long, short = 'p', value_name = "PID")]
    pub pid: Vec<u32>,
    /// Only processes with events in the window (and those that exited).
    #[arg(long)]
    pub active: bool,
    /// Largest first by this column: rss, pss, uss, swap, minflt, majflt,
    /// cow, mmap, slab, reclaim, numa%, oom, pid, comm, user [default: rss].
    #[arg(long, value_name = "KEY")]
    pub sort: Option<String>,
    /// JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
    /// List each probe with its state, events seen and map fill.
    #[arg(long)]
    pub probes: bool,
    /// The memory cgroups instead: usage against limit, working set,
    /// unreclaimable, swap, OOM kills, the OOM forecast, processes.
    #[arg(long, conflicts_with_all = ["probes", "system", "slab", "buddy"])]
    pub cgroups: bool,
    /// With --cgroups: where cgroup filesystems are mounted [default:
    /// /sys/fs/cgroup] (v1 `memory/` below it, or the v2 unified hierarchy).
    #[arg(long, env = "MEMMON_CGROUP_ROOT", value_name = "DIR")]
    pub cgroup_root: Option<std::path::PathBuf>,
    /// The system view instead: meminfo, vmstat rates, swap devices, buddy
    /// free blocks, top slab caches, THP, memory PSI, per-node NUMA.
    #[arg(long, conflicts_with_all = ["probes", "slab", "buddy"])]
    pub system: bool,
    /// Slab allocations in the window instead: per cache (allocs, frees,
    /// bytes) and per kmalloc size class (requested vs allocated).
    #[arg(long, conflicts_with_all = ["probes", "buddy"])]
    pub slab: bool,
    /// Buddy-allocator activity in the window instead: allocations per
    /// order and migrate type, next to /proc/buddyinfo free blocks.
    #[arg(long, conflicts_with = "probes")]
    pub buddy: bool,
    /// Share the cumulative kernel maps pinned under this bpffs directory
    /// (as the daemon does under /sys/fs/bpf/memmon): counts survive
    /// restarts, and processes that exited meanwhile are still reported.
    #[arg(long, value_name = "DIR")]
    pub pin_dir: Option<std::path::PathBuf>,
    /// Probe selection.
    #[command(flatten)]
    pub probe_args: ProbeArgs,
}

/// `memmon events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
    /// Stop after SECS (default: until Ctrl-C or SIGTERM).
    #[arg(long, short = 'd', value_name = "SECS")]
    pub duration: Option<f64>,
    /// Where cgroup filesystems are mounted [default: /sys/fs/cgroup] (v1
    /// `memory/` below it, or the v2 unified hierarchy): the memory cgroup
    /// ids of kills are resolved to paths there.
    #[arg(long, env = "MEMMON_CGROUP_ROOT", value_name = "DIR")]
    pub cgroup_root: Option<std::path::PathBuf>,
    /// Probe selection.
    #[command(flatten)]
    pub probe_args: ProbeArgs,
}

/// What `memmon profile` samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProfileEvent {
    /// Page faults (perf software event, one sample per --period faults).
    Faults,
    /// Program-break growth (brk), bytes per stack.
    Brk,
    /// Bytes mmap'ed and not yet munmap'ed, per stack.
    Mmap,
    /// All three, one table each (text only).
    All,
}

/// Output formats of `memmon profile` and `memmon leaks`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProfileFormat {
    /// A table of the heaviest stacks.
    Text,
    /// Folded stacks (flamegraph.pl / inferno input).
    Folded,
    /// pprof protobuf (go tool pprof, Pyroscope, Grafana).
    Pprof,
    /// An SVG flame graph.
    Svg,
}

/// `memmon profile`.
#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// Sample only this process (repeatable).
    #[arg(long, short = 'p', value_name = "PID", conflicts_with = "cgroup")]
    pub pid: Vec<u32>,
    /// Sample only the processes of this cgroup v2 (a path under
    /// /sys/fs/cgroup, or relative to it).
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<std::path::PathBuf>,
    /// Seconds to sample (default: until Ctrl-C or SIGTERM).
    #[arg(long, short = 'd', value_name = "SECS")]
    pub duration: Option<f64>,
    /// What to sample.
    #[arg(long, value_enum, default_value = "faults")]
    pub event: ProfileEvent,
    /// One sample every N page faults on a CPU while the event is open
    /// (each weighs N × --slots). The default, a prime near 256, keeps the
    /// stack walks to ~12 ns a fault.
    #[arg(long, value_name = "N", default_value_t = 251)]
    pub period: u64,
    /// The page-fault event is open one 100 ms slot in K and closed for
    /// the others, each sample then standing for K times its period: an
    /// open event costs every fault of the machine ~30–40 ns, sampled or
    /// not, so the default 4 quarters that; 1 keeps it open all the time
    /// (exact counts of short runs).
    #[arg(long, value_name = "K", default_value_t = 4)]
    pub slots: u64,
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value = "text")]
    pub format: ProfileFormat,
    /// Write the output to FILE instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
    /// Stacks in the text table.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub top: usize,
}

/// The allocator `memmon leaks` traces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Allocator {
    /// jemalloc or tcmalloc when the process maps one, else libc.
    Auto,
    /// glibc or musl malloc (libc.so).
    Libc,
    /// libjemalloc.so.
    Jemalloc,
    /// libtcmalloc*.so.
    Tcmalloc,
}

/// `memmon leaks`.
#[derive(Debug, Args)]
pub struct LeaksArgs {
    /// The process to watch (repeatable; --exact takes one).
    #[arg(long, short = 'p', value_name = "PID", conflicts_with = "cgroup")]
    pub pid: Vec<u32>,
    /// Watch the processes of this cgroup v2 (a path under /sys/fs/cgroup,
    /// or relative to it; not with --exact).
    #[arg(long, value_name = "PATH", conflicts_with = "exact")]
    pub cgroup: Option<std::path::PathBuf>,
    /// Seconds to watch (default: until Ctrl-C or SIGTERM).
    #[arg(long, short = 'd', value_name = "SECS")]
    pub duration: Option<f64>,
    /// Trace the allocator's malloc family and free with uprobes instead
    /// (exact sizes and call stacks of the tracked allocations; every call
    /// traps, so the process slows down many times).
    #[arg(long)]
    pub exact: bool,
    /// Resident mode: one fault sampled per N on a CPU at the start; the
    /// period then follows the fault rate (1 for a slow leak, larger in a
    /// fault storm).
    #[arg(long, value_name = "N", default_value_t = 31, conflicts_with = "exact")]
    pub period: u64,
    /// Resident mode: seconds between two checks of the sampled pages
    /// (and between two period choices).
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 1.0,
        conflicts_with = "exact"
    )]
    pub interval: f64,
    /// --exact: track one allocation in N (outstanding bytes and counts are
    /// scaled by N); 1 tracks every allocation. The uprobes still fire on
    /// every call: sampling saves the map updates and stack walks.
    #[arg(long, value_name = "N", default_value_t = 16, requires = "exact")]
    pub sample_rate: u64,
    /// --exact: report only allocations at least SECS old when tracing ends.
    #[arg(long, value_name = "SECS", default_value_t = 0.0, requires = "exact")]
    pub min_age: f64,
    /// --exact: the allocator to trace.
    #[arg(long, value_enum, default_value = "auto", requires = "exact")]
    pub allocator: Allocator,
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value = "text")]
    pub format: ProfileFormat,
    /// Write the output to FILE instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
    /// Stacks in the text table.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub top: usize,
}
