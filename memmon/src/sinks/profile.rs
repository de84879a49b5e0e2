//! `memmon profile` / `memmon leaks` as text: a top-N table of stacks
//! (weight, share, the innermost named frames), and folded stacks (one line
//! per stack, root first, `;`-separated, then the weight: flamegraph.pl and
//! inferno's input). Kernel frames carry the `_[k]` suffix flamegraph.pl
//! colours as kernel.

use std::fmt::Write as _;

use crate::{model::profile::Profile, sample::stacks::StackEvent};

/// A weight as the event's unit reads (bytes in KiB/MiB, faults as is).
pub fn weight_text(event: StackEvent, weight: i64) -> String {
    match event {
        StackEvent::Faults => format!("{weight}"),
        _ => {
            let w = weight as f64;
            if w.abs() >= 1024.0 * 1024.0 {
                format!("{:.1} MiB", w / (1024.0 * 1024.0))
            } else if w.abs() >= 1024.0 {
                format!("{:.1} KiB", w / 1024.0)
            } else {
                format!("{weight} B")
            }
        }
    }
}

/// The period as the outputs name it: `64`, or `7 to 997 (adaptive)`.
pub fn period_text(profile: &Profile) -> String {
    match profile.periods {
        Some((lo, hi)) => format!("{lo} to {hi} (adaptive)"),
        None => profile.period.to_string(),
    }
}

/// Where a profile's samples come from and what its numbers mean, in
/// words: the first line of the table, the `#` header of the folded
/// stacks, the comments of the pprof.
pub fn describe(profile: &Profile) -> (String, String) {
    let p = profile.period;
    match (profile.event, profile.periods) {
        (StackEvent::Faults, None) if profile.slots > 1 => (
            format!(
                "source: perf software event page-faults, open one 100 ms slot in {k} (an open \
                 event costs every fault); each sampled stack stands for {p} faults: the period \
                 times the time sampled over the time the event was open",
                k = profile.slots
            ),
            format!(
                "weight: page faults (samples x {p}), every kind of fault (first touch, copy-on-write, file)"
            ),
        ),
        (StackEvent::Faults, None) => (
            format!(
                "source: perf software event page-faults, one stack sampled per {p} faults on a CPU"
            ),
            format!(
                "weight: page faults (samples x {p}), every kind of fault (first touch, copy-on-write, file)"
            ),
        ),
        (StackEvent::Faults, Some((lo, hi))) => (
            format!(
                "source: perf software event page-faults, one stack sampled per {lo} to {hi} faults \
                 (adaptive: the period follows the machine's fault rate, processes whose memory \
                 grows are sampled more often, and above 100,000 faults a second the event is \
                 open one 100 ms slot in 2 to 8, its samples counting the closed slots' faults; \
                 {p} for the others at the end)"
            ),
            "weight: page faults (each sample times the faults it stood for), every kind of \
             fault (first touch, copy-on-write, file)"
                .into(),
        ),
        (StackEvent::Resident, periods) => (
            match periods {
                Some((lo, hi)) => format!(
                    "source: page-fault samples (perf page-faults; the pages held were sampled \
                     one per {lo} to {hi} faults: the period adapts to the fault rate and to each \
                     process's growth, and each page weighs the faults its sample stood for; {p} \
                     at the end), each page checked in /proc/PID/pagemap; no allocator is traced"
                ),
                None => format!(
                    "source: page-fault samples (perf page-faults, one per {p} faults on a CPU; \
                     each sampled page weighs the period it was taken with), each page checked \
                     in /proc/PID/pagemap; no allocator is traced"
                ),
            },
            "weight: bytes of private anonymous memory still resident or swapped, credited to \
             the stack whose fault touched them first; memory touched before sampling started \
             is not seen"
                .into(),
        ),
        (StackEvent::Leaks, _) => (
            format!(
                "source: uprobes on the allocator's malloc family and free (--exact), one allocation in {p} tracked"
            ),
            format!("weight: bytes allocated and not freed (tracked allocations x {p})"),
        ),
        (StackEvent::Brk, _) => (
            "source: syscalls:sys_exit_brk, every call".into(),
            "weight: bytes the program break grew (every call weighed)".into(),
        ),
        (StackEvent::Mmap, _) => (
            "source: syscalls:sys_enter/exit_mmap and sys_enter_munmap, every call".into(),
            "weight: bytes mapped and not unmapped (every call weighed)".into(),
        ),
    }
}

/// The frames shown for a stack in the table: innermost user frames first
/// (kernel frames are in the folded, pprof and SVG outputs).
const TABLE_FRAMES: usize = 6;

/// The top `n` stacks as a table.
pub fn table(profile: &Profile, n: usize) -> String {
    let mut out = String::new();
    let total = profile.total();
    let what = match profile.event {
        StackEvent::Faults => "page faults",
        StackEvent::Brk => "of program break growth",
        StackEvent::Mmap => "still mapped",
        StackEvent::Leaks => "outstanding",
        StackEvent::Resident => "resident",
    };
    let _ = writeln!(
        out,
        "{} {what} in {} stacks over {:.1}s (period {})",
        weight_text(profile.event, total),
        profile.stacks.len(),
        profile.duration_secs,
        period_text(profile)
    );
    let (source, meaning) = describe(profile);
    let _ = writeln!(out, "{source}\n{meaning}");
    let (one, one_weight) = profile.one_frame_weight();
    if one > 0 {
        let _ = writeln!(
            out,
            "{one} one-frame stacks hold {} ({:.1}%): their code has no frame pointers, so \
             only the innermost frame is known",
            weight_text(profile.event, one_weight),
            share(one_weight, total) * 100.0
        );
    }
    let count_head = match profile.event {
        StackEvent::Leaks => "ALLOCS",
        StackEvent::Resident => "PAGES",
        _ => "SAMPLES",
    };
    let resident = profile.event == StackEvent::Resident;
    let weight_head = if resident { "RESIDENT" } else { "WEIGHT" };
    let growth_head = if resident {
        format!(" {:>12} {:>6}", "GROWTH", "+-")
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "{weight_head:>12} {:>6}{growth_head} {count_head:>8} {:>7}  STACK (innermost first)",
        "SHARE", "PID"
    );
    // brk and mmap weigh every call: there is no sample count to show.
    let counted = matches!(
        profile.event,
        StackEvent::Faults | StackEvent::Leaks | StackEvent::Resident
    );
    for s in profile.stacks.iter().take(n) {
        let user: Vec<&str> = s
            .frames
            .iter()
            .filter(|f| !f.kernel)
            .take(TABLE_FRAMES)
            .map(|f| f.name.as_str())
            .collect();
        let frames = if user.is_empty() {
            s.frames
                .first()
                .map(|f| format!("{}_[k]", f.name))
                .unwrap_or_else(|| "[no stack]".into())
        } else {
            user.join(" <- ")
        };
        // A stack's estimate rests on its sampled pages: its relative
        // standard error is about 1/sqrt(pages).
        let growth = if resident {
            let err = if s.count > 0 {
                format!("{:.0}%", 100.0 / (s.count as f64).sqrt())
            } else {
                "-".into()
            };
            format!(" {:>12} {err:>6}", weight_text(profile.event, s.growth))
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "{:>12} {:>5.1}%{growth} {:>8} {:>7}  {frames}",
            weight_text(profile.event, s.weight),
            share(s.weight, total) * 100.0,
            if counted {
                s.count.to_string()
            } else {
                "-".into()
            },
            s.tgid
        );
    }
    out
}

fn share(w: i64, total: i64) -> f64 {
    if total <= 0 {
        0.0
    } else {
        w as f64 / total as f64
    }
}

/// Folded stacks, one line each (stacks with a negative net weight, which
/// munmap can leave, are left out: flame graphs need counts).
pub fn folded_lines(profile: &Profile) -> Vec<String> {
    profile
        .stacks
        .iter()
        .filter(|s| s.weight > 0)
        .map(|s| {
            let mut names: Vec<String> = s
                .frames
                .iter()
                .rev()
                .map(|f| {
                    let name = f.name.replace([';', ' '], "_");
                    if f.kernel {
                        format!("{name}_[k]")
                    } else {
                        name
                    }
                })
                .collect();
            if names.is_empty() {
                names.push("[no stack]".into());
            }
            format!("{} {}", names.join(";"), s.weight)
        })
        .collect()
}

/// The folded stacks as one text, after a `#` header naming the source,
/// the period and the weight (flamegraph.pl and inferno skip it: it ends
/// in no number).
pub fn folded(profile: &Profile) -> String {
    let (source, meaning) = describe(profile);
    let mut out = format!(
        "# memmon {}, period {}; {source}; {meaning}.\n",
        profile.event.name(),
        period_text(profile)
    );
    out.push_str(&folded_lines(profile).join("\n"));
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::stacks::{Frame, NamedSample};

    fn frame(name: &str, kernel: bool) -> Frame {
        Frame {
            name: name.into(),
            module: None,
            kernel,
            symbolized: true,
        }
    }

    #[test]
    fn folded_lines_are_root_first_with_kernel_frames_marked() {
        let p = Profile::build(
            StackEvent::Faults,
            64,
            1.0,
            &[NamedSample {
                event: StackEvent::Faults,
                tgid: 1,
                frames: vec![
                    frame("clear_page", true),
                    frame("touch gamma", false),
                    frame("main", false),
                ],
                weight: 128,
                count: 2,
                growth: 0,
            }],
        );
        let folded = folded(&p);
        let (head, body) = folded.split_once('\n').expect("a header line");
        assert!(
            head.starts_with("# memmon faults, period 64; source: perf"),
            "{head}"
        );
        assert!(
            head.ends_with('.'),
            "the header must not end in a number: {head}"
        );
        assert_eq!(body, "main;touch_gamma;clear_page_[k] 128\n");
        let table = table(&p, 5);
        assert!(table.starts_with("128 page faults in 1 stacks"), "{table}");
        assert!(table.contains("touch gamma <- main"), "{table}");
    }

    #[test]
    fn byte_weights_read_in_binary_units() {
        assert_eq!(weight_text(StackEvent::Leaks, 64 << 20), "64.0 MiB");
        assert_eq!(weight_text(StackEvent::Mmap, 1536), "1.5 KiB");
        assert_eq!(weight_text(StackEvent::Brk, 12), "12 B");
        assert_eq!(weight_text(StackEvent::Faults, 12), "12");
    }
}
