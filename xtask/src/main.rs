//! memmon's developer tasks. Each command does the set-up it needs first,
//! idempotently, so it works on a fresh machine:
//!
//! - `setup`: Debian packages, the eBPF toolchain, bpf-linker, tracefs.
//! - `build [--release]`: build memmon with its eBPF object embedded.
//! - `run [--release] -- ARGS`: build, then run `memmon ARGS`.
//! - `test`: fmt check, clippy, unit tests, root integration tests, fuzz,
//!   and the focused integration tests in a qemu guest.
//! - `bench`: the benchmarks, written to BENCHMARKS.md.
//! - `fuzz`: the cargo-fuzz targets of memmon's own parsers.
//! - `vm-test`: the integration tests in a qemu guest (Debian's 5.10, 6.1
//!   or 6.12 kernel, or all three in turn; two NUMA nodes); `--systemd`:
//!   the packaged unit under a real systemd.
//! - `dist [--check]`: the .deb, the release tarball and the OCI image in
//!   target/dist/; `--check` installs the .deb here, checks it, purges it.

mod bench;
mod cmd;
mod dist;
mod fuzz;
mod image;
mod k8s;
mod kernels;
mod package_test;
mod packages;
mod setup;
mod test;
mod toolchain;
mod totals;
mod vm_systemd;
mod vm_test;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "memmon developer tasks")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what is missing (packages, eBPF toolchain, bpf-linker) and
    /// mount tracefs. A second run does nothing.
    Setup,
    /// Build memmon with its kernel programs embedded.
    Build {
        /// Optimised build.
        #[arg(long)]
        release: bool,
    },
    /// Build, then run `memmon ARGS`.
    Run {
        /// Optimised build.
        #[arg(long)]
        release: bool,
        /// Arguments for memmon.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// fmt check, clippy -D warnings, unit tests, root integration tests,
    /// a short fuzz run, then the focused subset in a qemu guest (vm-test).
    Test {
        /// Skip the qemu guest lane (a quicker loop while developing).
        #[arg(long)]
        no_vm: bool,
        /// Extra arguments for the integration test run (e.g. a test name).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run every fuzz target (or the named ones) for a while.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        seconds: u32,
        /// Targets (default: all).
        targets: Vec<String>,
    },
    /// Run the root integration tests in a qemu guest: a Debian stock
    /// kernel, 2 vCPUs, 2 NUMA nodes, TCG.
    VmTest {
        /// Every integration test binary (default: the focused subset:
        /// numa_two_nodes, fault_latency, faults, oom).
        #[arg(long)]
        all: bool,
        /// Kernel to boot: 5.10, 6.1 or 6.12 (Debian's, fetched into
        /// .tools/kernels on first use), `all` (the three in turn, then the
        /// kernel table), or the path of an image [default: 6.1].
        #[arg(long, value_name = "VERSION|all|PATH")]
        kernel: Option<String>,
        /// Instead: the packaged unit under a real systemd (PID 1) in a
        /// debootstrapped Debian 12 guest: install the .deb, start (READY=1),
        /// probes attached, reload, watchdog restart, restart keeps
        /// counters, stop detaches.
        #[arg(long, conflicts_with_all = ["all", "kernel"])]
        systemd: bool,
        /// Test name filters passed to every test binary.
        filters: Vec<String>,
    },
    /// Release build, then target/dist/: memmon_VERSION_ARCH.deb,
    /// memmon-VERSION-x86_64-linux.tar.gz and the OCI image archive
    /// memmon-VERSION.oci.tar (tag memmon:VERSION).
    Dist {
        /// Skip the container image.
        #[arg(long)]
        no_image: bool,
        /// Then (root) install the .deb here, check man, completions,
        /// conffile and unit, purge it; inspect the image; validate the
        /// Kubernetes manifests.
        #[arg(long)]
        check: bool,
    },
    /// Benchmark 13's measurement on this machine, written as JSON (what
    /// `bench --only kills` runs inside its qemu guest).
    #[command(hide = true)]
    KillLatency {
        /// Release memmon binary.
        #[arg(long)]
        memmon: std::path::PathBuf,
        /// Release memmon-workload binary.
        #[arg(long)]
        workload: std::path::PathBuf,
        /// kill -9s to time.
        #[arg(long)]
        sigkills: usize,
        /// OOM kills to time.
        #[arg(long)]
        ooms: usize,
        /// Where the JSON goes.
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Run the benchmarks and write BENCHMARKS.md.
    Bench {
        /// Fewer rounds and smaller sizes (a smoke run; not for the record:
        /// BENCHMARKS.md is left alone, the sections go to
        /// target/BENCHMARKS.quick.md).
        #[arg(long)]
        quick: bool,
        /// Run only these groups (repeatable): faults, syscalls, startup,
        /// daemon, churn, cgroups, stacks, stacks-guest (bcc's memleak in
        /// the qemu guest), store, scale, kills, cgroups-daemon; their
        /// sections replace theirs in BENCHMARKS.md.
        #[arg(long, value_name = "GROUP")]
        only: Vec<String>,
        /// Another memmon binary (e.g. main's release build from a worktree
        /// of main) measured beside this build, interleaved, where the
        /// daemon's cost is (daemon: §4; scale: 1,000 and 10,000 processes
        /// of §12): the "before" of a change, from the same run.
        #[arg(long, value_name = "MEMMON")]
        baseline: Option<std::path::PathBuf>,
    },
    /// The qemu guest's half of `bench --only stacks-guest` (run there).
    #[command(hide = true)]
    StacksGuestInner {
        out: std::path::PathBuf,
        pairs: u64,
        rounds: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Task::Setup => setup::run(true).map(|_| ()),
        Task::Build { release } => {
            setup::run(false).and_then(|env| cmd::build_memmon(&env, release))
        }
        Task::Run { release, args } => setup::run(false).and_then(|env| {
            cmd::build_memmon(&env, release)?;
            cmd::run_memmon(release, &args)
        }),
        Task::Test { no_vm, args } => {
            setup::run(false).and_then(|env| test::run(&env, &args, !no_vm))
        }
        Task::Fuzz { seconds, targets } => {
            setup::run(false).and_then(|env| fuzz::run(&env, seconds, &targets))
        }
        Task::VmTest { systemd: true, .. } => setup::run(false).and_then(|env| {
            let artifacts = dist::run(&env, true)?;
            let (_, failed) = vm_systemd::run(&artifacts.deb)?;
            if failed > 0 {
                anyhow::bail!("{failed} failed in the systemd guest (target/vm-systemd)");
            }
            Ok(())
        }),
        Task::VmTest {
            all,
            kernel,
            filters,
            ..
        } => vm_test::parse_kernels(kernel.as_deref()).and_then(|kernels| {
            let env = setup::run(false)?;
            let totals = vm_test::run(
                &env,
                &vm_test::Options {
                    all,
                    kernels,
                    filters,
                },
            )?;
            if totals.failed > 0 {
                anyhow::bail!("{} failed in the guest", totals.failed);
            }
            Ok(())
        }),
        Task::Dist { no_image, check } => setup::run(false).and_then(|env| {
            let artifacts = dist::run(&env, no_image)?;
            if check {
                let o = package_test::run_checks(&artifacts)?;
                println!(
                    "package: {} passed, {} failed, {} skipped",
                    o.passed,
                    o.failures.len(),
                    o.skipped.len()
                );
                for why in &o.skipped {
                    println!("package: skipped {why}");
                }
                if !o.failures.is_empty() {
                    anyhow::bail!("package checks failed: {}", o.failures.join("; "));
                }
            }
            Ok(())
        }),
        Task::StacksGuestInner { out, pairs, rounds } => {
            bench::stacks_guest_inner(&out, pairs, rounds)
        }
        Task::KillLatency {
            memmon,
            workload,
            sigkills,
            ooms,
            out,
        } => bench::kills::measure(&memmon, &workload, sigkills, ooms).and_then(|run| {
            std::fs::write(&out, run.to_json().to_string())
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", out.display()))
        }),
        Task::Bench {
            quick,
            only,
            baseline,
        } => setup::run(false).and_then(|env| bench::run(&env, quick, &only, baseline)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}
