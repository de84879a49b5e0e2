//! Each process's published row: built from the catalog, rebuilt only
//! when something it shows changed, with its per-second rates; the
//! counting window; and the flight recorder fed from the rows.

use std::{sync::Arc, time::Instant};

use super::{
    Model, ProcessKey, ProcessView, Which, cgroups, fields, history, processes::Tracked, view,
};

/// A process's row built now, with its rates since `since` (its last row,
/// or the last publication when that row's rates were all back to 0: its
/// values did not move in between).
fn build_row(
    p: &mut Tracked,
    fault_probes: bool,
    live: &fields::LiveFields,
    now: Instant,
    since: Option<Instant>,
) -> Arc<ProcessView> {
    let settled = p.view.as_deref().is_some_and(view::rates_settled);
    let mut v = ProcessView::from_process(p, fault_probes, live);
    let now_values = fields::RATED.map(|i| v.value(i));
    if let Some((at, base)) = &p.rate_base {
        let at = match since {
            Some(since) if settled && since > *at => since,
            _ => *at,
        };
        let dt = now.saturating_duration_since(at).as_secs_f64();
        for k in 0..fields::N_RATED {
            v.rates.set(
                k,
                match (now_values[k], base[k]) {
                    (Some(a), Some(b)) if dt > 0.0 && a >= b => Some((a - b) / dt),
                    _ => None,
                },
            );
        }
    }
    p.rate_base = Some((now, now_values));
    let v = Arc::new(v);
    p.view = Some(Arc::clone(&v));
    p.dirty = false;
    v
}

impl Model {
    /// Every live process's row, with each rated counter's per-second rate
    /// since the previous call: only the processes that changed since (and
    /// those whose rates were not yet back to 0) are built again, the
    /// others keep their row (nothing is built or copied but the list of
    /// rows). Everything is built again when what the rows read changed (a
    /// probe attached or suspended, a file found missing).
    pub fn live_rows(&mut self, now: Instant) -> Vec<Arc<ProcessView>> {
        let fault_probes = self.fault_probes();
        let live = fields::LiveFields::new(&self.live());
        let inputs = (live.clone(), fault_probes);
        let since = self.rows_at.replace(now);
        if self.rows_inputs.as_ref() != Some(&inputs) {
            self.rows_inputs = Some(inputs);
            self.rows.clear();
            self.unsettled.clear();
            self.index.touched.clear();
            for p in self.processes.values_mut() {
                p.slot = None;
                if p.exited {
                    continue;
                }
                let row = build_row(p, fault_probes, &live, now, since);
                if !view::rates_settled(&row) {
                    self.unsettled.push(p.key);
                }
                p.slot = Some(self.rows.len());
                self.rows.push(row);
            }
            return self.rows.clone();
        }
        let mut keys: Vec<ProcessKey> = self.index.touched.drain().collect();
        keys.append(&mut self.unsettled);
        keys.sort_unstable();
        keys.dedup();
        for key in keys {
            let Some(p) = self.processes.get_mut(&key) else {
                continue;
            };
            if p.exited {
                if let Some(slot) = p.slot.take() {
                    self.drop_row(slot);
                }
                continue;
            }
            let row = build_row(p, fault_probes, &live, now, since);
            if !view::rates_settled(&row) {
                self.unsettled.push(key);
            }
            match p.slot {
                Some(slot) => self.rows[slot] = row,
                None => {
                    p.slot = Some(self.rows.len());
                    self.rows.push(row);
                }
            }
        }
        self.rows.clone()
    }

    /// Takes row `slot` out of the live rows (the last one takes its
    /// place, and its process is told).
    pub(super) fn drop_row(&mut self, slot: usize) {
        if slot >= self.rows.len() {
            return;
        }
        self.rows.swap_remove(slot);
        if let Some(moved) = self.rows.get(slot) {
            let key = ProcessKey {
                pid: moved.pid,
                start_time_ticks: moved.start_time_ticks,
            };
            if let Some(p) = self.processes.get_mut(&key) {
                p.slot = Some(slot);
            }
        }
    }

    /// Views of the processes `which` selects, with each rated counter's
    /// per-second rate since the previous call (the base for the next one
    /// is taken now). A process unchanged since its last row, whose rates
    /// were already 0, shares that row (nothing is built or copied). The
    /// live ones alone: [`Model::live_rows`], which visits only what
    /// changed.
    pub fn views(&mut self, which: Which, now: Instant) -> Vec<Arc<ProcessView>> {
        if which == Which::Live {
            return self.live_rows(now);
        }
        let fault_probes = self.fault_probes();
        let live = fields::LiveFields::new(&self.live());
        // What every row reads changed (a probe attached or suspended, a
        // file found missing): every row is built again.
        let inputs = (live.clone(), fault_probes);
        let rebuild_all = self.view_inputs.as_ref() != Some(&inputs);
        self.view_inputs = Some(inputs);
        let mut out = Vec::with_capacity(self.live.len());
        for p in self.processes.values_mut() {
            let keep = match which {
                Which::Live => !p.exited,
                Which::Window => p.exited || !p.window().is_zero(),
                Which::All => true,
            };
            if !keep {
                continue;
            }
            if !rebuild_all
                && !p.dirty
                && let Some(v) = &p.view
                && view::rates_settled(v)
                && let Some((at, _)) = &mut p.rate_base
            {
                *at = now;
                out.push(Arc::clone(v));
                continue;
            }
            out.push(build_row(p, fault_probes, &live, now, None));
        }
        out
    }

    /// Marks the start of a counting window: processes that already exited
    /// are dropped, and every live one's current counters become its
    /// baseline. Processes found vanished stay, with a zero baseline: their
    /// final counts were never reported.
    pub fn start_window(&mut self, now: Instant) {
        self.alloc_baseline = self.alloc.clone();
        self.processes.retain(|_, p| !p.exited || p.vanished);
        for p in self.processes.values_mut() {
            p.dirty = true;
            // Rates over the window start from its zero.
            p.rate_base = Some((now, [Some(0.0); fields::N_RATED]));
            p.baseline = (!p.vanished).then(|| Box::new(*p.counters));
            p.task_baseline = if p.vanished {
                Default::default()
            } else {
                p.task.unwrap_or_default()
            };
        }
    }

    /// The rows of the live processes the flight recorders keep
    /// ([`Model::recorded_keys`]).
    pub fn recorded_rows(&self, largest: usize) -> Vec<Arc<ProcessView>> {
        self.rows_of(self.recorded_keys(largest))
    }

    /// The rows of the (at most) `n` live processes with the largest
    /// resident set, largest first, ties by pid: `/metrics`' default
    /// ranking, read from the index instead of from every row at each
    /// scrape.
    pub fn rows_by_rss(&self, n: usize) -> Vec<Arc<ProcessView>> {
        self.rows_of(self.largest_keys(n))
    }

    /// The rows of these processes as the last [`Model::views`] built them
    /// (a process without a current row is read afresh).
    fn rows_of(&self, keys: impl IntoIterator<Item = ProcessKey>) -> Vec<Arc<ProcessView>> {
        let fault_probes = self.fault_probes();
        let mut sources = None;
        keys.into_iter()
            .filter_map(|key| self.processes.get(&key))
            .map(|p| match &p.view {
                Some(v) if !p.dirty => Arc::clone(v),
                _ => {
                    let sources =
                        sources.get_or_insert_with(|| fields::LiveFields::new(&self.live()));
                    Arc::new(ProcessView::from_process(p, fault_probes, sources))
                }
            })
            .collect()
    }

    /// Records in the flight recorder the processes of `rows` (the
    /// [`Model::recorded_rows`] of this pass) and every memory cgroup's
    /// own files; expires old samples.
    pub fn record_history(&mut self, rows: &[Arc<ProcessView>], unix_ms: u64) {
        self.last_pass_unix_ms = unix_ms;
        if !self.recorder.enabled() {
            return;
        }
        for v in rows {
            self.recorder.record(
                ProcessKey {
                    pid: v.pid,
                    start_time_ticks: v.start_time_ticks,
                },
                history::HistorySample {
                    unix_ms,
                    rss_bytes: v.whole(view::idx::RSS),
                    minor_faults: v.whole(view::idx::MINOR),
                    major_faults: v.whole(view::idx::MAJOR),
                    swap_out_pages: v.whole(view::idx::SWAP_OUT),
                    swap_bytes: v.whole(view::idx::SWAP),
                },
            );
        }
        let mut cgroups: Vec<(&String, &cgroups::CgroupState)> = self
            .cgroups
            .iter()
            .filter(|(_, c)| !c.gone && c.sample.usage.is_some())
            .collect();
        if cgroups.len() > history::MAX_CGROUPS {
            // The limited ones first (an OOM kill can only hit those),
            // then the largest.
            cgroups.sort_unstable_by_key(|(_, c)| {
                (c.limit().is_none(), std::cmp::Reverse(c.sample.usage))
            });
            cgroups.truncate(history::MAX_CGROUPS);
        }
        for (path, c) in cgroups {
            self.recorder.record_cgroup(
                path,
                history::CgroupHistorySample::from_sample(unix_ms, &c.sample),
            );
        }
        self.recorder.expire(unix_ms);
    }
}
