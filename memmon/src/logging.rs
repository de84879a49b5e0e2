//! How log lines look where they go: colour only on a terminal (and never
//! with `NO_COLOR` set); under systemd, when `JOURNAL_STREAM` names the
//! stderr we write to, each line starts with its syslog priority in the
//! sd-daemon form (`<4>` for a warning), which journald reads
//! (SyslogLevelPrefix=, on by default) so `journalctl -p warning` selects
//! warnings, and carries no timestamp of its own (the journal stamps every
//! line). A file or a pipe gets plain lines with timestamps.

use std::{fmt, io::IsTerminal as _};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::{
    fmt::{FmtContext, FormatEvent, FormatFields, format::Writer},
    registry::LookupSpan,
};

/// Where stderr goes, as far as the log's look is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// The journal (priority prefixes, no colour, no timestamp).
    Journal,
    /// A terminal (colour).
    Terminal,
    /// A file, a pipe, or a terminal with `NO_COLOR`: plain text.
    Plain,
}

/// The style for this process's stderr and environment.
pub fn detect() -> Style {
    let stderr = std::io::stderr();
    choose(
        std::env::var("JOURNAL_STREAM").ok().as_deref(),
        stderr_identity(),
        stderr.is_terminal(),
        std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
    )
}

/// The choice, from `JOURNAL_STREAM`'s value, stderr's (device, inode),
/// whether stderr is a terminal and whether `NO_COLOR` is set (non-empty,
/// as no-color.org asks).
pub fn choose(
    journal_stream: Option<&str>,
    stderr: Option<(u64, u64)>,
    terminal: bool,
    no_color: bool,
) -> Style {
    if let (Some(value), Some(ours)) = (journal_stream, stderr)
        && parse_journal_stream(value) == Some(ours)
    {
        return Style::Journal;
    }
    if terminal && !no_color {
        Style::Terminal
    } else {
        Style::Plain
    }
}

/// `DEV:INODE` (decimal, as systemd writes it).
fn parse_journal_stream(value: &str) -> Option<(u64, u64)> {
    let (dev, ino) = value.trim().split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

/// stderr's (st_dev, st_ino).
fn stderr_identity() -> Option<(u64, u64)> {
    use std::os::fd::AsFd as _;
    let fd = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
    let file = std::fs::File::from(fd);
    let meta = file.metadata().ok()?;
    use std::os::unix::fs::MetadataExt as _;
    Some((meta.dev(), meta.ino()))
}

/// The syslog priority of a level (sd-daemon(3)): error 3, warning 4,
/// info 6, debug and trace 7.
pub fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// A line for the journal: `<N>` then tracing's own line without its
/// timestamp.
pub struct JournalFormat<F>(pub F);

impl<S, N, F> FormatEvent<S, N> for JournalFormat<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(writer, "<{}>", priority(event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

/// Installs the global subscriber: `filter` (an env-filter directive,
/// `warn` when it does not parse), lines styled for where stderr goes.
pub fn init(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let base = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match detect() {
        Style::Journal => {
            let line = tracing_subscriber::fmt::format()
                .with_target(false)
                .with_ansi(false)
                .without_time();
            base.with_ansi(false)
                .event_format(JournalFormat(line))
                .init();
        }
        Style::Terminal => base.with_ansi(true).init(),
        Style::Plain => base.with_ansi(false).init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_journal_only_when_journal_stream_names_our_stderr() {
        let ours = Some((2049, 77));
        assert_eq!(choose(Some("2049:77"), ours, false, false), Style::Journal);
        // systemd passes it on to children whose stderr is elsewhere.
        assert_eq!(choose(Some("2049:78"), ours, false, false), Style::Plain);
        assert_eq!(choose(Some("2049:78"), ours, true, false), Style::Terminal);
        assert_eq!(choose(Some("garbage"), ours, false, false), Style::Plain);
        assert_eq!(choose(None, ours, false, false), Style::Plain);
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert_eq!(choose(None, None, true, false), Style::Terminal);
        assert_eq!(choose(None, None, true, true), Style::Plain);
        assert_eq!(choose(None, None, false, false), Style::Plain);
    }

    #[test]
    fn priorities_follow_sd_daemon() {
        assert_eq!(priority(&Level::ERROR), 3);
        assert_eq!(priority(&Level::WARN), 4);
        assert_eq!(priority(&Level::INFO), 6);
        assert_eq!(priority(&Level::DEBUG), 7);
    }
}
