//! A profile: named stacks merged (same frames → one stack), weights summed,
//! sorted heaviest first, with the totals the outputs need (all weight,
//! weight in one-frame stacks: a binary without frame pointers). Pure: fed
//! `sample::stacks::NamedSample`s; text, folded, pprof and SVG read it.

use std::collections::HashMap;

use crate::sample::stacks::{Frame, NamedSample, StackEvent};

/// One merged stack.
#[derive(Clone, Debug, PartialEq)]
pub struct ProfileStack {
    /// Process (tgid); 0 when stacks of several processes were merged.
    pub tgid: u32,
    /// Frames, innermost first.
    pub frames: Vec<Frame>,
    /// Weight (faults or bytes).
    pub weight: i64,
    /// Samples or allocations behind it.
    pub count: u64,
    /// Change of the weight over the window (resident; 0 otherwise).
    pub growth: i64,
}

/// A profile of one event.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// What the weights measure.
    pub event: StackEvent,
    /// Sample period (faults: faults per sample; leaks: 1 in N tracked);
    /// with an adaptive period, the one in force at the end.
    pub period: u64,
    /// With an adaptive period: the fewest and most faults one sample of
    /// the profile stands for, when they differ.
    pub periods: Option<(u64, u64)>,
    /// The page-fault event was open one time slot in this many (1:
    /// always); `period` then includes the closed slots.
    pub slots: u64,
    /// Seconds sampled.
    pub duration_secs: f64,
    /// Stacks, heaviest first.
    pub stacks: Vec<ProfileStack>,
}

impl Profile {
    /// Merges `samples` of `event` (other events are left out).
    pub fn build(
        event: StackEvent,
        period: u64,
        duration_secs: f64,
        samples: &[NamedSample],
    ) -> Profile {
        let mut merged: HashMap<(u32, Vec<Frame>), (i64, u64, i64)> = HashMap::new();
        for s in samples.iter().filter(|s| s.event == event) {
            let e = merged.entry((s.tgid, s.frames.clone())).or_default();
            e.0 = e.0.saturating_add(s.weight);
            e.1 += s.count;
            e.2 = e.2.saturating_add(s.growth);
        }
        let mut stacks: Vec<ProfileStack> = merged
            .into_iter()
            .filter(|(_, (w, _, g))| *w != 0 || *g != 0)
            .map(|((tgid, frames), (weight, count, growth))| ProfileStack {
                tgid,
                frames,
                weight,
                count,
                growth,
            })
            .collect();
        stacks.sort_by(|a, b| {
            b.weight
                .cmp(&a.weight)
                .then_with(|| a.frames.cmp(&b.frames))
        });
        Profile {
            event,
            period,
            periods: None,
            slots: 1,
            duration_secs,
            stacks,
        }
    }

    /// The same, its samples taken at periods from `lo` to `hi` faults
    /// (an adaptive period). When they are equal, that one period is the
    /// profile's: every sample shown stood for it, whatever the period in
    /// force at the end (a process boosted before its first sample).
    pub fn with_periods(mut self, periods: Option<(u64, u64)>) -> Profile {
        match periods {
            Some((lo, hi)) if lo == hi => {
                self.period = lo;
                self.periods = None;
            }
            other => self.periods = other,
        }
        self
    }

    /// The same, sampled with the event open one time slot in `slots`.
    pub fn with_slots(mut self, slots: u64) -> Profile {
        self.slots = slots.max(1);
        self
    }

    /// Sum of all weights.
    pub fn total(&self) -> i64 {
        self.stacks.iter().map(|s| s.weight).sum()
    }

    /// Weight of the stacks that have a single user frame and no kernel
    /// frame: their binary has no frame pointers (or the walk was lost).
    pub fn one_frame_weight(&self) -> (usize, i64) {
        let one: Vec<&ProfileStack> = self
            .stacks
            .iter()
            .filter(|s| s.frames.iter().filter(|f| !f.kernel).count() <= 1)
            .collect();
        (one.len(), one.iter().map(|s| s.weight).sum())
    }

    /// Share of the total weight of stacks with a frame named `function`
    /// (or `path::function`).
    pub fn share_through(&self, function: &str) -> f64 {
        let total = self.total();
        if total <= 0 {
            return 0.0;
        }
        let w: i64 = self
            .stacks
            .iter()
            .filter(|s| s.frames.iter().any(|f| names_function(&f.name, function)))
            .map(|s| s.weight)
            .sum();
        w as f64 / total as f64
    }
}

/// True when frame `name` is `function` or ends in `::function`.
pub fn names_function(name: &str, function: &str) -> bool {
    name == function
        || name
            .strip_suffix(function)
            .is_some_and(|head| head.ends_with("::"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(name: &str) -> Frame {
        Frame {
            name: name.into(),
            module: None,
            kernel: false,
            symbolized: true,
        }
    }

    fn sample(frames: &[&str], weight: i64) -> NamedSample {
        NamedSample {
            event: StackEvent::Faults,
            tgid: 7,
            frames: frames.iter().map(|f| frame(f)).collect(),
            weight,
            count: 1,
            growth: 0,
        }
    }

    #[test]
    fn equal_stacks_merge_and_the_heaviest_comes_first() {
        let p = Profile::build(
            StackEvent::Faults,
            64,
            1.0,
            &[
                sample(&["touch_delta", "main"], 64),
                sample(&["touch_gamma", "main"], 64),
                sample(&["touch_gamma", "main"], 64),
                sample(&["lonely"], 64),
            ],
        );
        assert_eq!(p.stacks.len(), 3);
        assert_eq!(p.stacks[0].frames[0].name, "touch_gamma");
        assert_eq!(p.stacks[0].weight, 128);
        assert_eq!(p.stacks[0].count, 2);
        assert_eq!(p.total(), 256);
        assert!((p.share_through("touch_gamma") - 0.5).abs() < 1e-9);
        assert_eq!(p.one_frame_weight(), (1, 64));
    }

    #[test]
    fn one_period_shown_is_the_profiles_period_and_a_range_is_kept() {
        let samples = [sample(&["leak", "main"], 13)];
        // Every sample stood for 13 faults while the plan ended at 260:
        // the profile names 13, not the plan's period.
        let one =
            Profile::build(StackEvent::Resident, 260, 1.0, &samples).with_periods(Some((13, 13)));
        assert_eq!((one.period, one.periods), (13, None));
        let range =
            Profile::build(StackEvent::Resident, 260, 1.0, &samples).with_periods(Some((13, 260)));
        assert_eq!((range.period, range.periods), (260, Some((13, 260))));
        let unknown = Profile::build(StackEvent::Resident, 260, 1.0, &samples).with_periods(None);
        assert_eq!((unknown.period, unknown.periods), (260, None));
    }
}

/// Live allocations grouped by (process, stack hash): bytes and count,
/// only those at least `min_age_ns` old at `now_ns`, scaled by `rate` (one
/// in `rate` was tracked). Returns (tgid, stack hash, bytes, allocations).
pub fn group_live(
    allocs: &[memmon_common::stacks::LiveAlloc],
    now_ns: u64,
    min_age_ns: u64,
    rate: u64,
) -> Vec<(u32, u64, i64, u64)> {
    let rate = rate.max(1);
    let mut by: HashMap<(u32, u64), (u64, u64)> = HashMap::new();
    for a in allocs {
        if now_ns.saturating_sub(a.time_ns) < min_age_ns {
            continue;
        }
        let e = by.entry((a.tgid, a.stack)).or_default();
        e.0 = e.0.saturating_add(a.size);
        e.1 += 1;
    }
    let mut out: Vec<(u32, u64, i64, u64)> = by
        .into_iter()
        .map(|((tgid, stack), (bytes, n))| {
            let scaled = bytes.saturating_mul(rate);
            (
                tgid,
                stack,
                i64::try_from(scaled).unwrap_or(i64::MAX),
                n.saturating_mul(rate),
            )
        })
        .collect();
    out.sort_by_key(|e| std::cmp::Reverse(e.2));
    out
}

#[cfg(test)]
mod live_tests {
    use memmon_common::stacks::LiveAlloc;

    #[test]
    fn young_allocations_are_left_out_and_the_rest_scaled() {
        let a = |size, time_ns, stack| LiveAlloc {
            size,
            time_ns,
            stack,
            tgid: 9,
            _pad: 0,
        };
        let got = super::group_live(
            &[
                a(100, 1_000, 1),
                a(50, 2_000, 1),
                a(10, 9_500, 1),
                a(7, 1_000, 2),
            ],
            10_000,
            1_000,
            4,
        );
        assert_eq!(got, vec![(9, 1, 600, 8), (9, 2, 28, 4)]);
    }
}
