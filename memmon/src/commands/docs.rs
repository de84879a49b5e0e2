//! `memmon completions SHELL` and `memmon man`: shell completion scripts
//! (clap_complete) and manual pages (clap_mangen), both generated from the
//! clap definitions in [`crate::cli`], so they never drift from the flags.

use std::{io::Write as _, path::Path};

use anyhow::Context as _;
use clap::CommandFactory as _;

use crate::{
    cli::{Cli, CompletionsArgs, ManArgs},
    error::Fatal,
};

/// The program name the scripts and pages are written for.
const BIN: &str = "memmon";

/// Prints the completion script for `args.shell` on stdout.
pub fn completions(args: &CompletionsArgs) -> Result<(), Fatal> {
    let script = completion_script(args.shell);
    std::io::stdout()
        .write_all(script.as_bytes())
        .context("writing the completion script to stdout")?;
    Ok(())
}

/// The completion script for `shell`.
pub fn completion_script(shell: clap_complete::Shell) -> String {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, BIN, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes every page into `--dir`, or prints one page on stdout.
pub fn man(args: &ManArgs) -> Result<(), Fatal> {
    let pages = man_pages().context("rendering the manual pages")?;
    if let Some(dir) = &args.dir {
        return write_pages(dir, &pages);
    }
    let wanted = match &args.command {
        None => format!("{BIN}.1"),
        Some(c) => format!("{BIN}-{c}.1"),
    };
    let Some((_, text)) = pages.iter().find(|(name, _)| *name == wanted) else {
        let names: Vec<&str> = pages
            .iter()
            .filter_map(|(n, _)| n.strip_prefix("memmon-")?.strip_suffix(".1"))
            .collect();
        return Err(Fatal::Usage(format!(
            "no manual page for command {:?}; commands: {}",
            args.command.as_deref().unwrap_or_default(),
            names.join(", ")
        )));
    };
    std::io::stdout()
        .write_all(text.as_bytes())
        .context("writing the manual page to stdout")?;
    Ok(())
}

fn write_pages(dir: &Path, pages: &[(String, String)]) -> Result<(), Fatal> {
    std::fs::create_dir_all(dir).map_err(|e| {
        Fatal::Usage(format!(
            "cannot create {}: {e} (give --dir a writable directory)",
            dir.display()
        ))
    })?;
    for (name, text) in pages {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        println!("{}", path.display());
    }
    Ok(())
}

/// Every manual page as (file name, roff text): `memmon.1` and one
/// `memmon-COMMAND.1` per visible subcommand, sorted by name.
pub fn man_pages() -> std::io::Result<Vec<(String, String)>> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut pages = Vec::new();
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        pages.push(render(sub.clone(), extra_sections(sub.get_name()))?);
    }
    pages.push(render(cmd, TOP_SECTIONS.to_string())?);
    pages.sort();
    Ok(pages)
}

fn render(cmd: clap::Command, extra: String) -> std::io::Result<(String, String)> {
    let man = clap_mangen::Man::new(cmd)
        .manual("memmon manual")
        .source(format!("memmon {}", env!("CARGO_PKG_VERSION")));
    let mut out = Vec::new();
    man.render(&mut out)?;
    out.extend_from_slice(extra.as_bytes());
    Ok((
        man.get_filename(),
        String::from_utf8_lossy(&out).into_owned(),
    ))
}

/// What `memmon.1` says beyond the flags: exit codes, files, where to look.
const TOP_SECTIONS: &str = r#".SH "EXIT STATUS"
.TP
\fB0\fR
success
.TP
\fB1\fR
runtime failure, including missing privileges (one line names the missing capabilities)
.TP
\fB2\fR
bad input: a flag, a configuration file or environment variable, a port already in use
.SH FILES
.TP
\fI/etc/memmon/memmon.toml\fR
the daemon's configuration (optional; \fBmemmon config \-\-print\-default\fR prints it)
.TP
\fI/sys/fs/bpf/memmon\fR
kernel maps pinned by the daemon, so a restart keeps counting
.TP
\fI/lib/systemd/system/memmon.service\fR
the systemd unit (Type=notify, watchdog, SIGHUP reloads)
.TP
\fI/var/lib/memmon/store\fR
the recording of every pass (the unit's \fB\-\-record\fR), read by \fBmemmon replay\fR and \fBmemmon dump\fR
.SH "SEE ALSO"
\fBmemmon\-daemon\fR(1), \fBmemmon\-snapshot\fR(1), \fBmemmon\-top\fR(1), \fBmemmon\-events\fR(1), \fBmemmon\-config\fR(1), \fBmemmon\-record\fR(1), \fBmemmon\-replay\fR(1), \fBmemmon\-dump\fR(1)
"#;

/// Per-command sections beyond the flags.
fn extra_sections(command: &str) -> String {
    match command {
        "daemon" => r#".SH CONFIGURATION
Every setting is a key in the configuration file, a flag and an environment
variable \fBMEMMON_\fIKEY\fR; a flag wins over the environment, which wins over
the file, which wins over the default. SIGHUP re-reads the file (ranking, caps,
interval, web config); SIGTERM stops and detaches the probes.
.SH ENDPOINTS
\fI/metrics\fR (Prometheus text format), \fI/api/v1/snapshot\fR, \fI/api/v1/events\fR, \fI/healthz\fR.
.SH FILES
.TP
\fI/etc/memmon/memmon.toml\fR
read when present (or \fB\-\-config\fR)
.TP
\fI/sys/fs/bpf/memmon\fR
pinned kernel maps (\fB\-\-no\-pin\fR turns pinning off)
.TP
\fI/var/lib/memmon/store\fR
with \fB\-\-record\fR: time shards of every pass (replay, dump)
.SH "SEE ALSO"
\fBmemmon\fR(1), \fBmemmon\-config\fR(1), \fBsystemctl\fR(1)
"#
        .to_string(),
        _ => ".SH \"SEE ALSO\"\n\\fBmemmon\\fR(1)\n".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_page_per_visible_command() {
        let pages = man_pages().expect("render");
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        for want in [
            "memmon.1",
            "memmon-daemon.1",
            "memmon-snapshot.1",
            "memmon-top.1",
            "memmon-events.1",
            "memmon-profile.1",
            "memmon-leaks.1",
            "memmon-config.1",
            "memmon-completions.1",
            "memmon-man.1",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        let daemon = &pages
            .iter()
            .find(|(n, _)| n == "memmon-daemon.1")
            .expect("daemon page")
            .1;
        assert!(daemon.starts_with(".ie \\n(.g .ds Aq") || daemon.contains(".TH memmon-daemon"));
        // Every daemon flag is in its page (roff escapes '-' as '\-').
        let cmd = Cli::command();
        let d = cmd.find_subcommand("daemon").expect("daemon subcommand");
        for arg in d.get_arguments().filter_map(|a| a.get_long()) {
            let roff = format!("\\-\\-{}", arg.replace('-', "\\-"));
            assert!(daemon.contains(&roff), "--{arg} not in memmon-daemon.1");
        }
    }

    #[test]
    fn bash_script_completes_every_subcommand() {
        let script = completion_script(clap_complete::Shell::Bash);
        // The word list offered after `memmon `: the first opts= line.
        let top = script
            .lines()
            .filter_map(|l| l.trim().strip_prefix("opts=\""))
            .find(|o| o.contains("--version"))
            .expect("the top-level opts= line");
        let cmd = Cli::command();
        for sub in cmd.get_subcommands() {
            let name = sub.get_name();
            assert!(
                top.split_whitespace().any(|w| w == name),
                "{name} not offered after `memmon `: {top}"
            );
            assert!(
                script.contains(&format!("memmon__subcmd__{name})")),
                "no completion case for {name}"
            );
        }
        assert!(script.contains("--top-k"));
        assert!(script.contains("complete -F _memmon"));
    }
}
