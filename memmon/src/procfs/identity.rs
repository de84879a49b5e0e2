//! Who a pid is: comm, parent, start time (the second half of the model's
//! process key) and the kernel's own fault totals, from /proc/PID/stat.

use super::{ProcRoot, ReadFailure};
pub use crate::sample::identity::Identity;

/// Reads /proc/PID/stat under `root`. This runs for every process every
/// cycle, so it reads the file into a reused buffer and parses only the
/// fields memmon uses (the procfs crate parses all 52 and allocates each).
pub fn read(root: &ProcRoot, pid: u32) -> Result<Identity, ReadFailure> {
    let path = root.pid_dir(pid).join("stat");
    let raw = std::fs::read(&path).map_err(|e| ReadFailure::from_io(pid, &path, e))?;
    parse_stat(pid, &raw).ok_or_else(|| ReadFailure::Other {
        path,
        message: "malformed stat line".into(),
    })
}

/// Parses a /proc/PID/stat line: `pid (comm) state ppid ...`. comm may hold
/// any bytes, ')' included, so it ends at the last ')'.
pub fn parse_stat(pid: u32, raw: &[u8]) -> Option<Identity> {
    let open = raw.iter().position(|&b| b == b'(')?;
    let close = raw.iter().rposition(|&b| b == b')')?;
    if close < open {
        return None;
    }
    let comm = String::from_utf8_lossy(&raw[open + 1..close]).into_owned();
    let rest = std::str::from_utf8(&raw[close + 1..]).ok()?;
    // Field n (1-based, proc(5)) is at index n - 3 after comm.
    let mut fields = rest.split_ascii_whitespace();
    let mut get = |skip: usize| -> Option<u64> { fields.nth(skip)?.parse().ok() };
    let ppid = get(1)?; // field 4
    let minflt = get(5)?; // field 10
    let majflt = get(1)?; // field 12
    let start = get(9)?; // field 22
    let vsize = get(0)?; // field 23
    let rss = get(0)?; // field 24
    Some(Identity {
        pid,
        comm,
        ppid: u32::try_from(ppid).unwrap_or(0),
        start_time_ticks: start,
        minflt,
        majflt,
        rss_pages: rss,
        vsize_bytes: vsize,
        rss_members: None,
        fresh: true,
    })
}

/// Bytes per page on this machine.
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no memory inputs.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as u64 } else { 4096 }
}

/// Clock ticks per second (USER_HZ), the unit of `start_time_ticks`.
pub fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no memory inputs.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

/// memmon's own resident bytes and CPU seconds, from /proc/self/stat
/// (zeros when unreadable).
pub fn self_usage() -> (u64, f64) {
    let Ok(raw) = std::fs::read("/proc/self/stat") else {
        return (0, 0.0);
    };
    let stat = String::from_utf8_lossy(&raw);
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return (0, 0.0);
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After comm: field 3 is index 0; utime 14, stime 15, rss 24.
    let get = |n: usize| {
        f.get(n - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let ticks = ticks_per_second() as f64;
    (
        get(24).saturating_mul(page_size()),
        (get(14) + get(15)) as f64 / ticks,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::key::boottime_ns_to_ticks;
    use std::fs;

    #[test]
    fn reads_recorded_stat() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pid_dir = dir.path().join("4242");
        fs::create_dir_all(&pid_dir).expect("mkdir");
        fs::write(
            pid_dir.join("stat"),
            include_str!("../../tests/fixtures/proc/4242/stat"),
        )
        .expect("write");
        let id = read(&ProcRoot::new(dir.path()), 4242).expect("read");
        assert_eq!(id.comm, "memmon-workload");
        assert_eq!(id.ppid, 4200);
        assert_eq!(id.start_time_ticks, 123_456);
        assert_eq!(id.minflt, 50_123);
        assert_eq!(id.majflt, 7);
        assert_eq!(id.rss_pages, 384);
        assert_eq!(id.vsize_bytes, 3_133_440);
    }

    #[test]
    fn comm_with_parens_spaces_and_bad_utf8() {
        let line = b"77 (a) (b \xff) S 1 77 77 0 -1 0 10 0 3 0 0 0 0 0 20 0 1 0 555 4096 2 18446744073709551615";
        let id = parse_stat(77, line).expect("parses");
        assert_eq!(id.comm, "a) (b \u{fffd}");
        assert_eq!(
            (id.ppid, id.minflt, id.majflt, id.start_time_ticks),
            (1, 10, 3, 555)
        );
        assert_eq!((id.vsize_bytes, id.rss_pages), (4096, 2));
        assert!(parse_stat(1, b"garbage").is_none());
        assert!(parse_stat(1, b"1 (x) S").is_none());
    }

    #[test]
    fn missing_process_is_gone() {
        let dir = tempfile::tempdir().expect("tempdir");
        match read(&ProcRoot::new(dir.path()), 1) {
            Err(ReadFailure::Gone(1)) => {}
            other => panic!("expected Gone, got {other:?}"),
        }
    }

    #[test]
    fn ticks_conversion() {
        assert_eq!(boottime_ns_to_ticks(1_234_560_000_000, 100), 123_456);
        assert_eq!(boottime_ns_to_ticks(9_999_999, 100), 0);
    }
}
