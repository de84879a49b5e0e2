//! TIME arguments of `replay` and `dump`: RFC 3339 (`2026-12-02T03:00:00Z`,
//! also with a space and without the zone, read as UTC), a Unix time in
//! seconds, `now`, or relative (`10m ago`, `1h30m ago`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A TIME argument that is none of the forms.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum TimeError {
    /// `... ago` with a bad duration.
    #[error("`{text}`: {source}; write e.g. `10m ago` or `1h30m ago`")]
    Relative {
        /// The argument.
        text: String,
        /// What humantime said.
        source: humantime::DurationError,
    },
    /// Not a time at all.
    #[error(
        "`{text}` is not a time ({source}); give RFC 3339 (2026-12-02T03:00:00Z), Unix seconds, \
         or `10m ago`"
    )]
    NotATime {
        /// The argument.
        text: String,
        /// What humantime said.
        source: humantime::TimestampError,
    },
}

/// Parses `s` into Unix ms; `now_ms` anchors relative times.
pub fn parse(s: &str, now_ms: u64) -> Result<u64, TimeError> {
    let t = s.trim();
    if t == "now" {
        return Ok(now_ms);
    }
    if let Some(rel) = t.strip_suffix("ago") {
        let d = humantime::parse_duration(rel.trim()).map_err(|source| TimeError::Relative {
            text: s.to_string(),
            source,
        })?;
        return Ok(now_ms.saturating_sub(d.as_millis() as u64));
    }
    if let Ok(secs) = t.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Ok((secs * 1000.0) as u64);
    }
    let when = humantime::parse_rfc3339_weak(t).map_err(|source| TimeError::NotATime {
        text: s.to_string(),
        source,
    })?;
    Ok(when
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64))
}

/// Unix ms as RFC 3339 (UTC, seconds).
pub fn format(unix_ms: u64) -> String {
    humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + Duration::from_millis(unix_ms))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_parses() {
        let now = 1_764_644_400_000; // 2025-12-02T03:00:00Z
        assert_eq!(parse("2025-12-02T03:00:00Z", 0), Ok(now));
        assert_eq!(parse("2025-12-02 03:00:00", 0), Ok(now));
        assert_eq!(parse("1764644400", 0), Ok(now));
        assert_eq!(parse("10m ago", now), Ok(now - 600_000));
        assert_eq!(parse("now", now), Ok(now));
        assert!(
            parse("yesterday", now)
                .expect_err("not a time")
                .to_string()
                .contains("RFC 3339")
        );
        assert_eq!(format(now), "2025-12-02T03:00:00Z");
    }
}
