//! tracefs: find (or mount) it, and read tracepoint record layouts from its
//! `format` files.

use std::{fs, path::PathBuf};

/// Where tracefs is usually mounted.
const TRACEFS: &str = "/sys/kernel/tracing";
/// Older location, under debugfs.
const DEBUGFS_TRACING: &str = "/sys/kernel/debug/tracing";

/// tracefs is missing and could not be mounted.
#[derive(Debug, thiserror::Error)]
#[error(
    "tracefs is not mounted and mounting it failed ({0}); run: mount -t tracefs nodev {TRACEFS}"
)]
pub struct TracefsError(#[source] std::io::Error);

/// The tracefs root, mounting it at /sys/kernel/tracing when it is missing
/// and we are allowed to. Errors name the fix.
pub fn ensure_mounted() -> Result<PathBuf, TracefsError> {
    for root in [TRACEFS, DEBUGFS_TRACING] {
        if fs::metadata(format!("{root}/events")).is_ok() {
            return Ok(PathBuf::from(root));
        }
    }
    let target = c"/sys/kernel/tracing";
    // SAFETY: constant NUL-terminated strings; mount(2) has no other inputs.
    let rc = unsafe {
        libc::mount(
            c"nodev".as_ptr(),
            target.as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc == 0 && fs::metadata(format!("{TRACEFS}/events")).is_ok() {
        tracing::info!("mounted tracefs at {TRACEFS}");
        return Ok(PathBuf::from(TRACEFS));
    }
    Err(TracefsError(std::io::Error::last_os_error()))
}

/// Offset of `field` in the record of tracepoint `category:name`, from its
/// format file; `None` when the tracepoint or the field does not exist.
pub fn field_offset(
    root: &std::path::Path,
    category: &str,
    name: &str,
    field: &str,
) -> Option<u32> {
    let text =
        fs::read_to_string(root.join("events").join(category).join(name).join("format")).ok()?;
    parse_field_offset(&text, field)
}

/// Names of the fields in the record of tracepoint `category:name` after
/// the common header (`common_*`), in record order; empty when it has no
/// format file.
pub fn field_names(root: &std::path::Path, category: &str, name: &str) -> Vec<String> {
    fs::read_to_string(root.join("events").join(category).join(name).join("format"))
        .map(|text| parse_field_names(&text))
        .unwrap_or_default()
}

/// The non-common field names of a tracepoint format.
pub fn parse_field_names(format: &str) -> Vec<String> {
    format
        .lines()
        .filter_map(|l| l.trim().strip_prefix("field:"))
        .filter_map(|decl| decl.split(';').next()?.split_whitespace().last())
        .map(|n| n.split('[').next().unwrap_or(n).to_string())
        .filter(|n| !n.starts_with("common_"))
        .collect()
}

/// Parses `field:TYPE NAME; offset:N; ...` lines of a tracepoint format.
pub fn parse_field_offset(format: &str, field: &str) -> Option<u32> {
    for line in format.lines() {
        let line = line.trim();
        let Some(decl) = line.strip_prefix("field:") else {
            continue;
        };
        let mut parts = decl.split(';');
        let Some(decl) = parts.next() else { continue };
        let decl_name = decl
            .split_whitespace()
            .last()
            .map(|n| n.split('[').next().unwrap_or(n));
        if decl_name != Some(field) {
            continue;
        }
        for part in parts {
            if let Some(off) = part.trim().strip_prefix("offset:") {
                return off.trim().parse().ok();
            }
        }
    }
    None
}

/// True when tracepoint `category:name` exists on this kernel.
pub fn exists(root: &std::path::Path, category: &str, name: &str) -> bool {
    root.join("events")
        .join(category)
        .join(name)
        .join("id")
        .exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXIT_FORMAT: &str =
        include_str!("../../tests/fixtures/tracefs/sched_process_exit.format");

    #[test]
    fn finds_group_dead_offset() {
        assert_eq!(parse_field_offset(EXIT_FORMAT, "group_dead"), Some(32));
        assert_eq!(parse_field_offset(EXIT_FORMAT, "pid"), Some(24));
        assert_eq!(parse_field_offset(EXIT_FORMAT, "comm"), Some(8));
        assert_eq!(parse_field_offset(EXIT_FORMAT, "nope"), None);
        assert_eq!(parse_field_names(EXIT_FORMAT)[..2], ["comm", "pid"]);
    }
}
