//! `/proc/PID/cgroup`: the cgroup a process is in, preferring the v1
//! memory controller's path (what memory limits and OOM kills follow) and
//! falling back to the v2 unified path.

use std::ops::ControlFlow;

use super::{ProcRoot, ReadFailure};

/// The memory cgroup path of `pid`, e.g. `/memmon-test` (v1 memory
/// controller) or the unified (v2) path when there is no v1 memory line.
pub fn memory_cgroup(root: &ProcRoot, pid: u32) -> Result<String, ReadFailure> {
    let path = root.pid_dir(pid).join("cgroup");
    let text = std::fs::read_to_string(&path).map_err(|e| ReadFailure::from_io(pid, &path, e))?;
    parse_memory_cgroup(&text).ok_or_else(|| ReadFailure::Other {
        path,
        message: "no memory or unified cgroup line".into(),
    })
}

/// The memory cgroup of `pid` while it is alive: a zombie's (or an exiting
/// task's) /proc/PID/cgroup shows the root cgroup, which would be a wrong
/// answer for a process just killed; so the path counts only when the
/// process, read after it, is not yet dead (state neither `Z` nor `X`).
pub fn memory_cgroup_of_live(root: &ProcRoot, pid: u32) -> Result<String, ReadFailure> {
    let path = memory_cgroup(root, pid)?;
    let stat = root.pid_dir(pid).join("stat");
    let text = std::fs::read(&stat).map_err(|e| ReadFailure::from_io(pid, &stat, e))?;
    // The state follows the last ')' (comm may hold any byte).
    let state = text
        .iter()
        .rposition(|b| *b == b')')
        .and_then(|i| text.get(i + 2).copied());
    match state {
        Some(b'Z' | b'X' | b'x') | None => Err(ReadFailure::Gone(pid)),
        Some(_) => Ok(path),
    }
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
    walk_cgroups(hierarchy, max_depth, usize::MAX, |path, entry| {
        if entry.file_name().to_str() == Some(leaf) {
            ControlFlow::Break(path)
        } else {
            ControlFlow::Continue(())
        }
    })
}

/// Visits the cgroup directories under `hierarchy` breadth-first, up to
/// `max_depth` levels and `max_dirs` directories, each with its path as
/// /proc/PID/cgroup shows it (`/a/b`); stops at the first `Break`.
fn walk_cgroups<T>(
    hierarchy: &std::path::Path,
    max_depth: usize,
    max_dirs: usize,
    mut visit: impl FnMut(String, &std::fs::DirEntry) -> ControlFlow<T>,
) -> Option<T> {
    let mut level = vec![std::path::PathBuf::new()];
    let mut visited = 0;
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
                visited += 1;
                if visited > max_dirs {
                    return None;
                }
                let child = rel.join(entry.file_name());
                if let ControlFlow::Break(found) =
                    visit(format!("/{}", child.to_string_lossy()), &entry)
                {
                    return Some(found);
                }
                next.push(child);
            }
        }
        if next.is_empty() {
            return None;
        }
        level = next;
    }
    None
}

/// Where the memory controller's cgroup directories are: the v1 memory
/// hierarchy when mounted, else the unified (v2) one.
pub fn memory_hierarchy() -> std::path::PathBuf {
    let v1 = std::path::Path::new("/sys/fs/cgroup/memory");
    if v1.join("memory.usage_in_bytes").exists() {
        v1.to_path_buf()
    } else {
        std::path::PathBuf::from("/sys/fs/cgroup")
    }
}

/// Directories visited at most per walk of the hierarchy.
const MAX_WALK_DIRS: usize = 100_000;
/// Deepest cgroup nesting walked.
const MAX_WALK_DEPTH: usize = 16;
/// An unknown id triggers at most one walk per this interval.
const WALK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Memory cgroup ids (kernfs ids = directory inode numbers, what the exit
/// probe reports) to paths as /proc/PID/cgroup shows them: how a process
/// that lived and died between two scans still lands in its cgroup.
#[derive(Debug, Default)]
pub struct CgroupIds {
    hierarchy: Option<std::path::PathBuf>,
    by_id: std::collections::HashMap<u64, String>,
    last_walk: Option<std::time::Instant>,
}

impl CgroupIds {
    /// Resolves ids under `hierarchy` (None: resolve nothing).
    pub fn new(hierarchy: Option<std::path::PathBuf>) -> Self {
        CgroupIds {
            hierarchy,
            ..Default::default()
        }
    }

    /// Walks the hierarchy now, whatever the time since the last walk, when
    /// one of `ids` is unknown: for rare events (a SIGKILL) whose cgroup
    /// may be younger than the last walk and whose process is gone before
    /// /proc could name it. One walk covers them all.
    pub fn refresh_for(&mut self, ids: impl IntoIterator<Item = u64>) {
        if ids.into_iter().any(|id| !self.by_id.contains_key(&id)) {
            self.walk();
        }
    }

    /// The path of cgroup `id`, walking the hierarchy again (at most once a
    /// second) when the id is new.
    pub fn resolve(&mut self, id: u64) -> Option<String> {
        if let Some(p) = self.by_id.get(&id) {
            return Some(p.clone());
        }
        if self.last_walk.is_some_and(|t| t.elapsed() < WALK_INTERVAL) {
            return None;
        }
        self.walk();
        self.by_id.get(&id).cloned()
    }

    fn walk(&mut self) {
        use std::os::unix::fs::MetadataExt as _;
        self.last_walk = Some(std::time::Instant::now());
        let Some(root) = self.hierarchy.clone() else {
            return;
        };
        self.by_id.clear();
        if let Ok(m) = std::fs::metadata(&root) {
            self.by_id.insert(m.ino(), "/".into());
        }
        let by_id = &mut self.by_id;
        walk_cgroups::<()>(&root, MAX_WALK_DEPTH, MAX_WALK_DIRS, |path, entry| {
            if let Ok(m) = entry.metadata() {
                by_id.insert(m.ino(), path);
            }
            ControlFlow::Continue(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_resolve_to_paths_under_the_hierarchy() {
        use std::os::unix::fs::MetadataExt as _;
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(dir.path().join("system.slice/cron.service")).expect("mkdir");
        let ino = |rel: &str| std::fs::metadata(dir.path().join(rel)).expect("stat").ino();
        let mut ids = CgroupIds::new(Some(dir.path().to_path_buf()));
        assert_eq!(
            ids.resolve(ino("system.slice/cron.service")).as_deref(),
            Some("/system.slice/cron.service")
        );
        assert_eq!(ids.resolve(ino("")).as_deref(), Some("/"));
        // A cgroup made after the walk is found after the walk interval.
        std::fs::create_dir(dir.path().join("late")).expect("mkdir");
        let late = ino("late");
        assert_eq!(ids.resolve(late), None, "no second walk within a second");
        ids.last_walk = None;
        assert_eq!(ids.resolve(late).as_deref(), Some("/late"));
        assert_eq!(CgroupIds::new(None).resolve(late), None);
    }

    #[test]
    fn a_dead_process_has_no_memory_cgroup() {
        let dir = tempfile::tempdir().expect("tmp");
        let proc_dir = |pid: u32, state: &str| {
            let d = dir.path().join(pid.to_string());
            std::fs::create_dir_all(&d).expect("mkdir");
            std::fs::write(d.join("cgroup"), "4:memory:/\n").expect("w");
            std::fs::write(
                d.join("stat"),
                format!("{pid} (a) b) {state} 1 1 1 0 -1 0 0 0 0 0 0 0\n"),
            )
            .expect("w");
        };
        proc_dir(10, "S");
        proc_dir(11, "Z");
        let root = ProcRoot::new(dir.path());
        assert_eq!(memory_cgroup_of_live(&root, 10).ok().as_deref(), Some("/"));
        assert!(matches!(
            memory_cgroup_of_live(&root, 11),
            Err(ReadFailure::Gone(11))
        ));
        assert!(memory_cgroup_of_live(&root, 12).is_err());
    }

    #[test]
    fn refresh_for_walks_at_once_for_an_unknown_id() {
        use std::os::unix::fs::MetadataExt as _;
        let dir = tempfile::tempdir().expect("tmp");
        let mut ids = CgroupIds::new(Some(dir.path().to_path_buf()));
        assert_eq!(ids.resolve(1), None);
        std::fs::create_dir(dir.path().join("young")).expect("mkdir");
        let young = std::fs::metadata(dir.path().join("young"))
            .expect("stat")
            .ino();
        assert_eq!(ids.resolve(young), None, "within the walk interval");
        ids.refresh_for([young]);
        assert_eq!(ids.resolve(young).as_deref(), Some("/young"));
    }

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
