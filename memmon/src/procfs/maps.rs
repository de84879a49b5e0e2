//! The files a process maps (`/proc/PID/maps`), for `memmon leaks` to find
//! the allocator library it traces, and its executable mappings, for the
//! daemon's profile to name its frames after it is gone.

use std::path::PathBuf;

use crate::sample::stacks::Mapping;

/// Reading /proc/PID/maps failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot read /proc/{pid}/maps: {source}")]
pub struct MapsError {
    pid: u32,
    #[source]
    source: std::io::Error,
}

/// The distinct file paths `pid` maps, as it sees them (inside its mount
/// namespace), in order of first mapping.
pub fn mapped_files(pid: u32) -> Result<Vec<PathBuf>, MapsError> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .map_err(|source| MapsError { pid, source })?;
    Ok(parse(&text))
}

/// `pid`'s executable file mappings.
pub fn exec_mappings(pid: u32) -> Result<Vec<Mapping>, MapsError> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .map_err(|source| MapsError { pid, source })?;
    Ok(parse_exec(&text))
}

/// The executable file mappings (`r-xp` with an absolute path) of a maps
/// text.
pub fn parse_exec(text: &str) -> Vec<Mapping> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let (range, perms, offset) = (f.next()?, f.next()?, f.next()?);
            if !perms.contains('x') {
                return None;
            }
            let path = path_of(line);
            if !path.starts_with('/') || path.ends_with(" (deleted)") {
                return None;
            }
            let (start, end) = range.split_once('-')?;
            Some(Mapping {
                start: u64::from_str_radix(start, 16).ok()?,
                end: u64::from_str_radix(end, 16).ok()?,
                offset: u64::from_str_radix(offset, 16).ok()?,
                path: PathBuf::from(path),
            })
        })
        .collect()
}

/// The path of a maps line (the sixth field, which may hold spaces).
fn path_of(line: &str) -> &str {
    let mut rest = line;
    for _ in 0..5 {
        rest = rest.trim_start();
        rest = rest.find(' ').map_or("", |i| &rest[i..]);
    }
    rest.trim()
}

/// Where `pid`'s program break is, as near as /proc tells: the end of its
/// `[heap]` mapping (the break rounded up to a page), else `start_brk`
/// (field 47 of /proc/PID/stat: no heap yet, the break is where it began).
pub fn program_break(pid: u32) -> Option<u64> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    if let Some(end) = heap_end(&maps) {
        return Some(end);
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = stat.rsplit_once(')')?.1;
    // Fields after comm start at field 3.
    after_comm.split_whitespace().nth(47 - 3)?.parse().ok()
}

/// The end address of the `[heap]` line of a maps text.
pub fn heap_end(maps: &str) -> Option<u64> {
    let line = maps.lines().find(|l| l.trim_end().ends_with("[heap]"))?;
    let range = line.split_whitespace().next()?;
    u64::from_str_radix(range.split_once('-')?.1, 16).ok()
}

/// The paths of a maps text.
pub fn parse(text: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for line in text.lines() {
        // address perms offset dev inode path: the path is the sixth
        // field and may contain spaces.
        let path = path_of(line);
        if path.starts_with('/') && !path.ends_with(" (deleted)") {
            let p = PathBuf::from(path);
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_taken_once_and_anonymous_mappings_skipped() {
        let text = "\
55d0c0a00000-55d0c0a02000 r--p 00000000 fe:01 123 /usr/bin/my prog
7f0000000000-7f0000021000 r--p 00000000 fe:01 456 /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000021000-7f0000100000 r-xp 00021000 fe:01 456 /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000200000-7f0000201000 rw-p 00000000 00:00 0 
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]
";
        assert_eq!(
            parse(text),
            vec![
                PathBuf::from("/usr/bin/my prog"),
                PathBuf::from("/usr/lib/x86_64-linux-gnu/libc.so.6")
            ]
        );
        assert_eq!(heap_end(text), None);
        assert_eq!(
            parse_exec(text),
            vec![Mapping {
                start: 0x7f0000021000,
                end: 0x7f0000100000,
                offset: 0x21000,
                path: PathBuf::from("/usr/lib/x86_64-linux-gnu/libc.so.6"),
            }]
        );
        let m = parse_exec(text);
        assert_eq!(
            Mapping::find(&m, 0x7f0000021010).map(|(_, off)| off),
            Some(0x21010)
        );
        assert!(Mapping::find(&m, 0x7f0000100000).is_none());
        let heap =
            "5600a0000000-5600a0021000 rw-p 00000000 00:00 0                          [heap]\n";
        assert_eq!(heap_end(heap), Some(0x5600a0021000));
    }
}
