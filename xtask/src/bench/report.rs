//! BENCHMARKS.md: machine, kernel, command, then one table per benchmark.

use std::{fmt::Write as _, process::Command};

use super::Section;
use crate::cmd;

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let kernel = cmd::output(Command::new("uname").arg("-r")).unwrap_or_default();
    let date =
        cmd::output(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"])).unwrap_or_default();
    format!(
        "- machine: {cpu}, {cores} cores, {:.1} GiB\n- kernel: {}\n- date: {}\n",
        mem_kib as f64 / 1024.0 / 1024.0,
        kernel.trim(),
        date.trim()
    )
}

/// The whole file.
pub fn render(sections: &[Section], quick: bool) -> String {
    let mut out = String::from("# memmon benchmarks\n\n");
    let _ = writeln!(
        out,
        "Produced by `cargo xtask bench{}` (as root). Only ratios measured in the same run are compared.\n",
        if quick {
            " --quick` (smoke run, one round: not for the record"
        } else {
            ""
        }
    );
    out.push_str(&machine());
    for s in sections {
        out.push_str(&section(s, None));
    }
    out
}

/// One section, from its `## ` heading on; `rerun` notes a section re-run
/// alone (`--only`) after the rest of the file.
fn section(s: &Section, rerun: Option<&str>) -> String {
    let mut out = String::new();
    let _ = write!(out, "\n## {}\n\n{}\n\n", s.title, s.what);
    if let Some(how) = rerun {
        let _ = write!(out, "{how}\n\n");
    }
    let _ = writeln!(out, "| {} |", s.header.join(" | "));
    let _ = writeln!(
        out,
        "|{}|",
        s.header.iter().map(|_| "---").collect::<Vec<_>>().join("|")
    );
    for r in &s.rows {
        let _ = writeln!(out, "| {} |", r.join(" | "));
    }
    for n in &s.notes {
        let _ = write!(out, "\n{n}\n");
    }
    out
}

/// `existing` with `sections` (re-run alone by `--only ONLY`) in place of
/// the sections of the same number, or appended.
pub fn merge(existing: &str, sections: &[Section], only: &str) -> String {
    let date =
        cmd::output(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"])).unwrap_or_default();
    let mut blocks: Vec<String> = existing
        .split("\n## ")
        .enumerate()
        .map(|(i, b)| {
            if i == 0 {
                b.to_string()
            } else {
                format!("\n## {b}")
            }
        })
        .collect();
    for s in sections {
        let how = format!(
            "Re-run alone on {} by `cargo xtask bench --only {only}`.",
            date.trim()
        );
        let text = section(s, Some(&how));
        let number = s.title.split_whitespace().next().unwrap_or("");
        let family = |b: &str| {
            let digits: String = number.chars().take_while(char::is_ascii_digit).collect();
            !digits.is_empty()
                && b.strip_prefix("\n## ")
                    .and_then(|h| h.strip_prefix(digits.as_str()))
                    .is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_digit()))
        };
        match blocks
            .iter()
            .position(|b| b.starts_with(&format!("\n## {number} ")))
        {
            Some(i) => blocks[i] = text,
            // A new sub-section (11b.) goes after the last of its number.
            None => match blocks.iter().rposition(|b| family(b)) {
                Some(i) => blocks.insert(i + 1, text),
                None => blocks.push(text),
            },
        }
    }
    blocks.concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(title: &str) -> Section {
        Section {
            title: title.into(),
            what: "w".into(),
            header: vec!["a"],
            rows: vec![vec!["1".into()]],
            notes: Vec::new(),
        }
    }

    #[test]
    fn merge_replaces_by_number_and_puts_a_new_sub_section_after_its_family() {
        let existing = "# b\n\n## 1. one\n\nx\n\n## 11. old\n\ny\n\n## 12. twelve\n\nz\n";
        let out = merge(existing, &[s("11. new"), s("11b. guest")], "stacks");
        let heads: Vec<&str> = out.lines().filter(|l| l.starts_with("## ")).collect();
        assert_eq!(
            heads,
            ["## 1. one", "## 11. new", "## 11b. guest", "## 12. twelve"]
        );
        assert!(!out.contains("\ny\n"));
    }
}
