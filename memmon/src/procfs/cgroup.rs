//! `/proc/PID/cgroup`: the cgroup a process is in, preferring the v1
//! memory controller's path (what memory limits and OOM kills follow) and
//! falling back to the v2 unified path.

use std::io::ErrorKind;

use super::{ProcRoot, ReadFailure};

/// The memory cgroup path of `pid`, e.g. `/memmon-test` (v1 memory
/// controller) or the unified (v2) path when there is no v1 memory line.
pub fn memory_cgroup(root: &ProcRoot, pid: u32) -> Result<String, ReadFailure> {
    let path = root.pid_dir(pid).join("cgroup");
    let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
        ErrorKind::NotFound => ReadFailure::Gone(pid),
        ErrorKind::PermissionDenied => ReadFailure::Denied(path.clone()),
        _ if e.raw_os_error() == Some(libc::ESRCH) => ReadFailure::Gone(pid),
        _ => ReadFailure::Other {
            path: path.clone(),
            message: e.to_string(),
        },
    })?;
    parse_memory_cgroup(&text).ok_or_else(|| ReadFailure::Other {
        path,
        message: "no memory or unified cgroup line".into(),
    })
}

/// Parses `ID:CONTROLLERS:PATH` lines.
pub fn parse_memory_cgroup(text: &str) -> Option<String> {
    let mut unified = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if controllers.split(',').any(|c| c == "memory") {
            return Some(path.to_string());
        }
        if id == "0" && controllers.is_empty() {
            unified = Some(path.to_string());
        }
    }
    unified
}

/// The path (relative to `hierarchy`, with a leading `/`) of the cgroup
/// directory named `leaf`, searched breadth-first up to `max_depth` levels;
/// `None` when absent. Resolves the memory-cgroup name an OOM event carries
/// when the victim is already gone from /proc.
pub fn find_by_name(hierarchy: &std::path::Path, leaf: &str, max_depth: usize) -> Option<String> {
    if leaf.is_empty() || leaf.contains('/') {
        return None;
    }
    let mut level = vec![std::path::PathBuf::new()];
    for _ in 0..max_depth {
        let mut next = Vec::new();
        for rel in &level {
            let Ok(entries) = std::fs::read_dir(hierarchy.join(rel)) else {
                continue;
            };
            for entry in entries.flatten() {
                if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let child = rel.join(entry.file_name());
                if entry.file_name().to_str() == Some(leaf) {
                    return Some(format!("/{}", child.display()));
                }
                next.push(child);
            }
        }
        level = next;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefers_the_v1_memory_controller() {
        let root = ProcRoot::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/proc"));
        assert_eq!(
            memory_cgroup(&root, 4242).ok().as_deref(),
            Some("/memmon-oom-test")
        );
        assert!(matches!(
            memory_cgroup(&root, 999_999),
            Err(ReadFailure::Gone(999_999))
        ));
    }

    #[test]
    fn finds_a_cgroup_directory_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("a/b/victim")).expect("mkdir");
        assert_eq!(
            find_by_name(dir.path(), "victim", 4).as_deref(),
            Some("/a/b/victim")
        );
        assert_eq!(find_by_name(dir.path(), "victim", 2), None);
        assert_eq!(find_by_name(dir.path(), "../etc", 4), None);
    }

    #[test]
    fn falls_back_to_unified() {
        assert_eq!(
            parse_memory_cgroup("0::/user.slice\n").as_deref(),
            Some("/user.slice")
        );
        assert_eq!(parse_memory_cgroup("garbage\n"), None);
    }
}
