//! The files a process maps (`/proc/PID/maps`), for `memmon leaks` to find
//! the allocator library it traces.

use std::path::PathBuf;

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

/// The paths of a maps text.
pub fn parse(text: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for line in text.lines() {
        // address perms offset dev inode path: the path is the sixth
        // field and may contain spaces.
        let mut rest = line;
        for _ in 0..5 {
            rest = rest.trim_start();
            rest = rest.find(' ').map_or("", |i| &rest[i..]);
        }
        let path = rest.trim();
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
    }
}
