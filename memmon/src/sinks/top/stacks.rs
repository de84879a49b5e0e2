//! The fault stacks of `memmon top --profile`'s detail pane: the selected
//! process's heaviest page-fault stacks over the sampled window, each as
//! its share, its faults (samples × period) and its innermost user frames
//! (leaf first, then callers). Stacks that show the same frames are one
//! line: the kernel's frame-pointer walk stops early at a user stack page
//! it cannot read without faulting (e.g. one NUMA balancing has just made
//! PROT_NONE), so one call path also arrives cut short at several depths,
//! and those would otherwise be identical lines each with part of the
//! path's share.

use std::collections::HashMap;

use crate::{model::profile::Profile, sample::stacks::Frame};

/// Stacks shown.
pub const SHOWN: usize = 5;
/// Frames shown per stack (leaf and callers).
const FRAMES: usize = 4;

/// One stack line.
#[derive(Clone, Debug, PartialEq)]
pub struct StackLine {
    /// Faults (samples × period).
    pub faults: i64,
    /// Share of the process's sampled faults.
    pub share: f64,
    /// Innermost user frames, leaf first.
    pub frames: Vec<String>,
}

/// The selected process's top fault stacks.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultStacks {
    /// Whose.
    pub pid: u32,
    /// Seconds the samples cover.
    pub seconds: u64,
    /// Faults per sample.
    pub period: u64,
    /// All the process's sampled faults.
    pub total: i64,
    /// Heaviest first, at most [`SHOWN`].
    pub lines: Vec<StackLine>,
}

impl FaultStacks {
    /// The top stacks of `profile` (one process's), heaviest first, the
    /// stacks that show the same frames merged into one line.
    pub fn from_profile(pid: u32, seconds: u64, profile: &Profile) -> FaultStacks {
        let total = profile.total();
        let mut merged: Vec<(Vec<String>, i64)> = Vec::new();
        let mut index: HashMap<Vec<String>, usize> = HashMap::new();
        for s in &profile.stacks {
            let frames = shown_frames(&s.frames);
            match index.get(&frames) {
                Some(&i) => merged[i].1 += s.weight,
                None => {
                    index.insert(frames.clone(), merged.len());
                    merged.push((frames, s.weight));
                }
            }
        }
        merged.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let lines = merged
            .into_iter()
            .take(SHOWN)
            .map(|(frames, faults)| StackLine {
                faults,
                share: if total > 0 {
                    faults as f64 / total as f64
                } else {
                    0.0
                },
                frames,
            })
            .collect();
        FaultStacks {
            pid,
            seconds,
            period: profile.period,
            total,
            lines,
        }
    }

    /// The pane's text lines, `width` columns wide at most.
    pub fn text(&self, width: usize) -> Vec<String> {
        if self.lines.is_empty() {
            return vec![format!(
                "no page fault sampled in the last {} s (one in {} faults is)",
                self.seconds, self.period
            )];
        }
        self.lines
            .iter()
            .map(|l| {
                let line = format!(
                    "{:5.1}% {:>9}  {}",
                    l.share * 100.0,
                    l.faults,
                    l.frames.join(" < ")
                );
                line.chars().take(width).collect()
            })
            .collect()
    }
}

/// What a line shows of a stack: its innermost [`FRAMES`] user frames, or
/// when it has none, its innermost kernel frame or `[unknown]`.
fn shown_frames(frames: &[Frame]) -> Vec<String> {
    let user: Vec<String> = frames
        .iter()
        .filter(|f| !f.kernel)
        .take(FRAMES)
        .map(|f| f.name.clone())
        .collect();
    if !user.is_empty() {
        return user;
    }
    // A fault with no user stack walked (lost, or a kernel thread): say so
    // rather than show nothing.
    frames
        .first()
        .map(|f| vec![format!("[kernel] {}", f.name)])
        .unwrap_or_else(|| vec!["[unknown]".into()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::stacks::{NamedSample, StackEvent};

    fn f(name: &str, kernel: bool) -> Frame {
        Frame {
            name: name.into(),
            module: None,
            kernel,
            symbolized: true,
        }
    }

    #[test]
    fn leaf_first_user_frames_with_shares() {
        let s = |frames, weight| NamedSample {
            event: StackEvent::Faults,
            tgid: 7,
            frames,
            weight,
            count: 1,
            growth: 0,
        };
        let p = Profile::build(
            StackEvent::Faults,
            64,
            60.0,
            &[
                s(
                    vec![
                        f("clear_page", true),
                        f("touch_gamma", false),
                        f("main", false),
                    ],
                    90,
                ),
                s(vec![f("touch_delta", false), f("main", false)], 10),
                s(vec![], 0),
            ],
        );
        let st = FaultStacks::from_profile(7, 60, &p);
        assert_eq!(st.total, 100);
        assert_eq!(st.lines[0].frames, vec!["touch_gamma", "main"]);
        let text = st.text(80);
        assert!(text[0].starts_with(" 90.0%"), "{text:?}");
        assert!(text[0].ends_with("touch_gamma < main"), "{text:?}");
        assert_eq!(text.len(), 2);
    }

    /// One call path whose walk the kernel cut short at different depths
    /// (seen in the 6.1 guest with NUMA balancing: 12, 9 and 4 frames of
    /// touch_gamma's path) is one line with the path's whole share; a walk
    /// cut inside the shown frames shows fewer frames and stays apart.
    #[test]
    fn stacks_that_show_the_same_frames_are_one_line() {
        let path = [
            "core::ptr::write_volatile",
            "memmon_workload::touch",
            "memmon_workload::touch_gamma",
            "memmon_workload::run",
            "memmon_workload::main",
            "core::ops::function::FnOnce::call_once",
            "std::rt::lang_start_internal",
            "main",
        ];
        let s = |depth: usize, weight| NamedSample {
            event: StackEvent::Faults,
            tgid: 7,
            frames: path[..depth].iter().map(|n| f(n, false)).collect(),
            weight,
            count: 1,
            growth: 0,
        };
        let delta = NamedSample {
            frames: vec![
                f("core::ptr::write_volatile", false),
                f("memmon_workload::touch", false),
                f("memmon_workload::touch_delta", false),
                f("memmon_workload::run", false),
            ],
            ..s(0, 100)
        };
        let p = Profile::build(
            StackEvent::Faults,
            64,
            60.0,
            &[s(8, 484), s(6, 80), s(4, 317), s(2, 19), delta],
        );
        assert_eq!(p.stacks.len(), 5, "the profile keeps every stack");
        let st = FaultStacks::from_profile(7, 60, &p);
        assert_eq!(st.total, 1000);
        let got: Vec<(i64, usize)> = st
            .lines
            .iter()
            .map(|l| (l.faults, l.frames.len()))
            .collect();
        assert_eq!(got, vec![(881, 4), (100, 4), (19, 2)], "{:?}", st.lines);
        assert_eq!(st.lines[0].frames[2], "memmon_workload::touch_gamma");
        assert!((st.lines[0].share - 0.881).abs() < 1e-9);
        assert!(st.text(200)[0].starts_with(" 88.1%"), "{:?}", st.text(200));
    }

    #[test]
    fn nothing_sampled_says_so() {
        let p = Profile::build(StackEvent::Faults, 997, 60.0, &[]);
        let text = FaultStacks::from_profile(1, 60, &p).text(200);
        assert!(text[0].contains("one in 997"), "{text:?}");
    }
}
