//! The fault stacks of `memmon top --profile`'s detail pane: the selected
//! process's heaviest page-fault stacks over the sampled window, each as
//! its share, its faults (samples × period) and its innermost user frames
//! (leaf first, then callers).

use crate::model::profile::Profile;

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
    /// The top stacks of `profile` (one process's), heaviest first.
    pub fn from_profile(pid: u32, seconds: u64, profile: &Profile) -> FaultStacks {
        let total = profile.total();
        let lines = profile
            .stacks
            .iter()
            .take(SHOWN)
            .map(|s| {
                let user: Vec<String> = s
                    .frames
                    .iter()
                    .filter(|f| !f.kernel)
                    .take(FRAMES)
                    .map(|f| f.name.clone())
                    .collect();
                let frames = if user.is_empty() {
                    // A fault with no user stack walked (lost, or a kernel
                    // thread): say so rather than show nothing.
                    s.frames
                        .first()
                        .map(|f| vec![format!("[kernel] {}", f.name)])
                        .unwrap_or_else(|| vec!["[unknown]".into()])
                } else {
                    user
                };
                StackLine {
                    faults: s.weight,
                    share: if total > 0 {
                        s.weight as f64 / total as f64
                    } else {
                        0.0
                    },
                    frames,
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::stacks::{Frame, NamedSample, StackEvent};

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

    #[test]
    fn nothing_sampled_says_so() {
        let p = Profile::build(StackEvent::Faults, 997, 60.0, &[]);
        let text = FaultStacks::from_profile(1, 60, &p).text(200);
        assert!(text[0].contains("one in 997"), "{text:?}");
    }
}
