//! What the programs need to know about this kernel, found at load: the
//! BTF offsets of the structures they read (`btf_offsets`) and the places
//! of the tracepoint fields that moved between kernels (`tracefs`), and
//! the check that the fields read at fixed places are where memmon reads
//! them.

use std::path::Path;

use memmon_common::{KernelConfig, layouts::TracepointOffsets};

use super::{
    btf_offsets::{self, BtfError},
    tracefs,
};

/// `uname -r`, for messages.
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown kernel".into())
}

/// A tracepoint's record is not laid out as memmon reads it: the probe
/// stays off with this reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// A field read at an offset found at load is missing.
    #[error("tracepoint {category}:{name} has no field `{field}` on this kernel ({release})")]
    NoField {
        /// Tracepoint category.
        category: &'static str,
        /// Tracepoint name.
        name: &'static str,
        /// The field.
        field: &'static str,
        /// `uname -r`.
        release: String,
    },
    /// A field read at a fixed offset is elsewhere.
    #[error(
        "tracepoint {category}:{name} has `{field}` at offset {got}, memmon reads it at {want}: \
         this kernel's record layout ({release}) is not supported yet"
    )]
    Moved {
        /// Tracepoint category.
        category: &'static str,
        /// Tracepoint name.
        name: &'static str,
        /// The field.
        field: &'static str,
        /// Its offset here.
        got: u32,
        /// The offset memmon reads.
        want: u32,
        /// `uname -r`.
        release: String,
    },
    /// A field read at a fixed offset is missing.
    #[error(
        "tracepoint {category}:{name} has no field `{field}` on this kernel ({release}); \
         its record holds only: {holds}"
    )]
    Missing {
        /// Tracepoint category.
        category: &'static str,
        /// Tracepoint name.
        name: &'static str,
        /// The field.
        field: &'static str,
        /// `uname -r`.
        release: String,
        /// The fields the record has.
        holds: String,
    },
}

/// Everything read from the kernel's BTF at load (opened once: a kernel
/// before 6.16 parses it whole).
pub(super) struct FromBtf {
    /// The programs' configuration (task and cgroup offsets, tracepoint
    /// layouts).
    pub config: KernelConfig,
    /// The raw rss_stat program's offsets.
    pub rss: memmon_common::RssOffsets,
    /// The OOM programs' offsets.
    pub oom: memmon_common::OomOffsets,
    /// The raw kill_signal program can run.
    pub raw_kill: bool,
    /// The task iterator's offsets, or why they are missing.
    pub task_iter: Result<memmon_common::task_iter::TaskIterOffsets, BtfError>,
}

/// BTF offsets and tracepoint layout for the running kernel: the programs'
/// configuration, the raw rss_stat program's offsets (unknown before 6.2
/// or without BTF: the classic tracepoint runs), the OOM programs'
/// (unknown without BTF: OOM kills are recorded without the kernel's
/// constraint), whether the raw kill_signal program can run, and the task
/// iterator's offsets.
pub(super) fn from_btf(tracefs: &Path) -> FromBtf {
    let mut out = FromBtf {
        config: KernelConfig::unknown(),
        rss: memmon_common::RssOffsets::unknown(),
        oom: memmon_common::OomOffsets::unknown(),
        raw_kill: false,
        task_iter: Err(BtfError::Unreadable("not read".into())),
    };
    match btf_offsets::kernel_btf() {
        Ok(btf) => {
            match btf_offsets::resolve(&btf) {
                Ok(task) => out.config.task = task,
                Err(e) => tracing::warn!("{e}"),
            }
            match btf_offsets::resolve_cgroup(&btf) {
                Ok(cgroup) => out.config.cgroup = cgroup,
                Err(e) => tracing::info!("OOM events will not name the memory cgroup: {e}"),
            }
            out.task_iter = btf_offsets::resolve_task_iter(&btf);
            match btf_offsets::resolve_rss(&btf) {
                Ok(rss) => out.rss = rss,
                Err(e) => tracing::debug!("rss_stat stays a classic tracepoint: {e}"),
            }
            match btf_offsets::resolve_oom(&btf) {
                Ok(oom) => out.oom = oom,
                Err(e) => tracing::info!("OOM kills will not say which limit was hit: {e}"),
            }
            // The raw kill program reads the target's pid, comm and memory
            // cgroup through these offsets.
            out.raw_kill = out.config.task.valid == 1
                && out.config.cgroup.valid == 1
                && btf_offsets::signal_generate_is_raw_readable(&btf)
                    .map_err(|e| {
                        tracing::info!(
                            "kill_signal stays a classic tracepoint (no target cgroup): {e}"
                        )
                    })
                    .is_ok();
        }
        Err(e) => {
            tracing::warn!("{e}");
            out.task_iter = Err(e);
        }
    }
    out.config.exit_group_dead_offset =
        tracefs::field_offset(tracefs, "sched", "sched_process_exit", "group_dead").unwrap_or(0);
    out.config.tp = tracepoint_offsets(tracefs);
    out
}

/// The tracepoint fields whose place moved between kernels, from this
/// kernel's formats (the built-in layout where a format cannot be read).
pub(super) fn tracepoint_offsets(tracefs: &Path) -> TracepointOffsets {
    let mut tp = TracepointOffsets::default_layout();
    let field = |category: &str, event: &str, name: &str| {
        tracefs::field_offset(tracefs, category, event, name)
    };
    if let (Some(s), Some(f), Some(r)) = (
        field("migrate", "mm_migrate_pages", "succeeded"),
        field("migrate", "mm_migrate_pages", "failed"),
        field("migrate", "mm_migrate_pages", "reason"),
    ) {
        (tp.migrate_succeeded, tp.migrate_failed, tp.migrate_reason) = (s, f, r);
    }
    if let (Some(req), Some(alloc)) = (
        field("kmem", "kmem_cache_alloc", "bytes_req"),
        field("kmem", "kmem_cache_alloc", "bytes_alloc"),
    ) {
        tp.slab_req = req;
        tp.slab_alloc = alloc;
        tp.slab_name = field("kmem", "kmem_cache_alloc", "name").unwrap_or(0);
    }
    // All or none: a format without one of them keeps the probe off (see
    // check_fixed_layout), so the built-in layout is never misread.
    if let (Some(sig), Some(code), Some(comm), Some(pid), Some(group), Some(result)) = (
        field("signal", "signal_generate", "sig"),
        field("signal", "signal_generate", "code"),
        field("signal", "signal_generate", "comm"),
        field("signal", "signal_generate", "pid"),
        field("signal", "signal_generate", "group"),
        field("signal", "signal_generate", "result"),
    ) {
        (tp.signal_sig, tp.signal_code, tp.signal_comm) = (sig, code, comm);
        (tp.signal_pid, tp.signal_group, tp.signal_result) = (pid, group, result);
    }
    tp
}

/// Checks a tracepoint's fields that memmon reads at fixed offsets against
/// this kernel's format file, and that the fields read at offsets found at
/// load ([`memmon_common::layouts::READ_AT_LOAD`]) exist.
pub(super) fn check_fixed_layout(
    tracefs: &Path,
    category: &'static str,
    name: &'static str,
) -> Result<(), LayoutError> {
    if let Some((_, _, fields)) = memmon_common::layouts::READ_AT_LOAD
        .iter()
        .find(|(c, n, _)| *c == category && *n == name)
        && let Some(field) = fields
            .iter()
            .find(|f| tracefs::field_offset(tracefs, category, name, f).is_none())
    {
        return Err(LayoutError::NoField {
            category,
            name,
            field,
            release: kernel_release(),
        });
    }
    let Some((_, _, fields)) = memmon_common::layouts::FIXED
        .iter()
        .find(|(c, n, _)| *c == category && *n == name)
    else {
        return Ok(());
    };
    for (field, want) in fields.iter() {
        match tracefs::field_offset(tracefs, category, name, field) {
            Some(got) if got == *want => {}
            Some(got) => {
                return Err(LayoutError::Moved {
                    category,
                    name,
                    field,
                    got,
                    want: *want,
                    release: kernel_release(),
                });
            }
            None => {
                return Err(LayoutError::Missing {
                    category,
                    name,
                    field,
                    release: kernel_release(),
                    holds: tracefs::field_names(tracefs, category, name).join(", "),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::catalog::Attach;

    fn kernel(release: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tracefs")
            .join(release)
    }

    /// Every kernel whose formats are recorded: 6.18 (the host) and the
    /// vm-test matrix (5.10, 6.1, 6.12).
    const RECORDED: &[&str] = &["linux-6.18", "linux-6.12", "linux-6.1", "linux-5.10"];

    #[test]
    fn fixed_layouts_match_every_recorded_kernel_but_5_10_oom() {
        for release in RECORDED {
            for (category, name, _) in memmon_common::layouts::FIXED {
                let checked = check_fixed_layout(&kernel(release), category, name);
                if *release == "linux-5.10" && (*category, *name) == ("oom", "mark_victim") {
                    // 5.10's record holds only the victim's pid: the probe
                    // is refused with that reason rather than misread.
                    let e = checked.expect_err("5.10 mark_victim has no comm");
                    assert!(e.to_string().contains("has no field `comm`"), "{e}");
                    assert!(e.to_string().ends_with("its record holds only: pid"), "{e}");
                } else if let Err(e) = checked {
                    panic!("{release}: {e}");
                }
            }
        }
    }

    #[test]
    fn moved_fields_are_read_from_the_kernel() {
        let new = tracepoint_offsets(&kernel("linux-6.18"));
        assert_eq!(new, TracepointOffsets::default_layout());
        for release in ["linux-6.1", "linux-5.10"] {
            let old = tracepoint_offsets(&kernel(release));
            assert_eq!(
                (
                    old.migrate_succeeded,
                    old.migrate_failed,
                    old.migrate_reason
                ),
                (8, 16, 52),
                "{release}"
            );
            assert_eq!(
                (old.slab_name, old.slab_req, old.slab_alloc),
                (0, 24, 32),
                "{release}"
            );
        }
        // 6.12: mm_migrate_pages has large_folio_split (reason at 60, as
        // on 6.18), kmem_cache_alloc no name yet.
        let mid = tracepoint_offsets(&kernel("linux-6.12"));
        assert_eq!(
            (
                mid.migrate_succeeded,
                mid.migrate_failed,
                mid.migrate_reason
            ),
            (8, 16, 60)
        );
        assert_eq!((mid.slab_name, mid.slab_req, mid.slab_alloc), (0, 24, 32));
    }

    #[test]
    fn every_recorded_matrix_kernel_has_each_tracepoint_memmon_attaches() {
        // The matrix fixtures (recorded by `cargo xtask vm-test --kernel
        // all`) hold every tracepoint of the catalog; 6.18's (the host's)
        // holds the ones whose layout memmon checks.
        for release in ["linux-5.10", "linux-6.1", "linux-6.12"] {
            for spec in crate::probes::catalog::PROBES {
                if let Attach::Tracepoint { category, name }
                | Attach::RawTracepoint { category, name } = spec.attach
                {
                    let format = kernel(release)
                        .join("events")
                        .join(category)
                        .join(name)
                        .join("format");
                    let text = std::fs::read_to_string(&format)
                        .unwrap_or_else(|e| panic!("{}: {e}", format.display()));
                    assert!(
                        text.contains(&format!("name: {name}\n")),
                        "{}",
                        format.display()
                    );
                }
            }
        }
    }

    #[test]
    fn signal_generate_fields_are_found_or_the_probe_is_refused() {
        let tp = tracepoint_offsets(&kernel("linux-6.18"));
        assert_eq!(
            (
                tp.signal_sig,
                tp.signal_comm,
                tp.signal_pid,
                tp.signal_result
            ),
            (8, 20, 36, 44)
        );
        check_fixed_layout(&kernel("linux-6.18"), "signal", "signal_generate")
            .expect("6.18 layout");
        check_fixed_layout(&kernel("linux-6.1"), "signal", "signal_generate").expect("6.1 layout");
        let dir = tempfile::tempdir().expect("tmp");
        let ev = dir.path().join("events/signal/signal_generate");
        std::fs::create_dir_all(&ev).expect("mkdir");
        std::fs::write(
            ev.join("format"),
            "format:\n\tfield:int sig;\toffset:8;\tsize:4;\tsigned:1;\n",
        )
        .expect("write");
        let err = check_fixed_layout(dir.path(), "signal", "signal_generate").expect_err("no code");
        assert!(err.to_string().contains("no field `code`"), "{err}");
    }

    #[test]
    fn a_moved_fixed_field_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().expect("tmp");
        let ev = dir.path().join("events/kmem/kmalloc");
        std::fs::create_dir_all(&ev).expect("mkdir");
        std::fs::write(
            ev.join("format"),
            "format:\n\tfield:size_t bytes_req;\toffset:20;\tsize:8;\tsigned:0;\n",
        )
        .expect("write");
        let err = check_fixed_layout(dir.path(), "kmem", "kmalloc").expect_err("moved");
        assert!(
            err.to_string().contains("`bytes_req` at offset 20"),
            "{err}"
        );
    }
}
