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
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load the probes, watch for a while, print one row per process seen.
    Snapshot(SnapshotArgs),
    /// Stream events as they happen (OOM kills), one line each.
    Events(EventsArgs),
}

/// Probe selection shared by every command that loads probes.
#[derive(Debug, Args, Clone)]
pub struct ProbeArgs {
    /// Do not attach the per-fault programs (read/write/copy-on-write
    /// split); minor faults then come from the kernel's per-task counters.
    #[arg(long)]
    pub no_fault_detail: bool,
    /// Do not attach this probe (repeatable); see `snapshot --probes`.
    #[arg(long = "disable-probe", value_name = "NAME")]
    pub disable_probe: Vec<String>,
}

/// `memmon snapshot`.
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// Seconds to watch (0: attach, read once, exit).
    #[arg(long, short = 'd', default_value_t = 1.0, value_name = "SECS")]
    pub duration: f64,
    /// Only these processes (repeatable).
    #[arg(long, short = 'p', value_name = "PID")]
    pub pid: Vec<u32>,
    /// JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
    /// List each probe with its state, events seen and map fill.
    #[arg(long)]
    pub probes: bool,
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
    /// Probe selection.
    #[command(flatten)]
    pub probe_args: ProbeArgs,
}
