//! The state of `memmon top` and what each key does: sort column, filter,
//! tree by cgroup, selection, detail/events/help panes. Pure: no terminal.

use std::collections::{HashMap, VecDeque};

use super::frame::{Row, TopFrame};
use crate::{
    model::view::idx,
    sinks::columns::{COLUMNS, What, sort_value},
};

pub use crate::sinks::columns::by_name as column_by_name;

/// Samples kept per process for the sparklines.
const HISTORY: usize = 60;

/// What the key asked for.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Keep going.
    Continue,
    /// Leave.
    Quit,
}

/// A key, terminal-independent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    /// A character.
    Char(char),
    /// Enter.
    Enter,
    /// Escape.
    Esc,
    /// Backspace.
    Backspace,
    /// Up arrow.
    Up,
    /// Down arrow.
    Down,
    /// Ctrl-C.
    CtrlC,
}

/// The view's state.
#[derive(Debug)]
pub struct TopState {
    /// Sort column index in COLUMNS.
    pub sort: usize,
    /// Filter text (comm or cgroup, case-insensitive).
    pub filter: String,
    /// Typing a filter.
    pub editing_filter: bool,
    /// Grouped by cgroup.
    pub tree: bool,
    /// Selected row index (in the visible rows).
    pub selected: usize,
    /// Detail pane open.
    pub detail: bool,
    /// Events pane open.
    pub events: bool,
    /// Full help open.
    pub help: bool,
    /// Kernel threads shown (hidden by default, `K` toggles, as in htop).
    pub kernel_threads: bool,
    /// Per process: recent (minflt/s, majflt/s).
    pub history: HashMap<(u32, u64), VecDeque<(f64, f64)>>,
}

impl Default for TopState {
    fn default() -> Self {
        TopState {
            sort: column_by_name("rss").unwrap_or(0),
            kernel_threads: false,
            filter: String::new(),
            editing_filter: false,
            tree: false,
            selected: 0,
            detail: false,
            events: false,
            help: false,
            history: HashMap::new(),
        }
    }
}

/// A row's memory cgroup ("" when unknown).
pub fn cgroup_of(r: &Row) -> &str {
    r.cgroup.as_deref().unwrap_or("")
}

impl TopState {
    /// Records the frame's rates for the sparklines.
    pub fn observe(&mut self, f: &TopFrame) {
        let live: std::collections::HashSet<(u32, u64)> =
            f.rows.iter().map(|r| (r.pid, r.start_time_ticks)).collect();
        self.history.retain(|k, _| live.contains(k));
        for r in &f.rows {
            let h = self.history.entry((r.pid, r.start_time_ticks)).or_default();
            if h.len() == HISTORY {
                h.pop_front();
            }
            h.push_back((
                r.rate(idx::MINOR).unwrap_or(0.0),
                r.rate(idx::MAJOR).unwrap_or(0.0),
            ));
        }
    }

    /// Rows to show: filtered, sorted (largest first; by name A–Z), and in
    /// tree mode grouped by cgroup (groups by their summed RSS).
    pub fn visible<'a>(&self, f: &'a TopFrame) -> Vec<&'a Row> {
        let needle = self.filter.to_lowercase();
        let mut rows: Vec<&Row> = f
            .rows
            .iter()
            .filter(|r| self.kernel_threads || !r.is_kernel_thread())
            .filter(|r| {
                needle.is_empty()
                    || r.comm.to_lowercase().contains(&needle)
                    || cgroup_of(r).to_lowercase().contains(&needle)
            })
            .collect();
        let col = &COLUMNS[self.sort.min(COLUMNS.len() - 1)];
        rows.sort_by(|a, b| {
            if col.what == What::Comm {
                a.comm.cmp(&b.comm).then(a.pid.cmp(&b.pid))
            } else {
                sort_value(b, col)
                    .total_cmp(&sort_value(a, col))
                    .then(a.pid.cmp(&b.pid))
            }
        });
        if self.tree {
            // Groups by the cgroup's own usage where it was read, else by
            // the summed RSS of its processes.
            let mut rss: HashMap<&str, u64> = HashMap::new();
            for r in &rows {
                *rss.entry(cgroup_of(r)).or_default() += r.whole(idx::RSS).unwrap_or(0);
            }
            for (cg, total) in rss.iter_mut() {
                if let Some(u) = f.cgroups.get(*cg).and_then(|c| c.usage) {
                    *total = u;
                }
            }
            // Stable: within a cgroup the sort order holds.
            rows.sort_by(|a, b| {
                rss[cgroup_of(b)]
                    .cmp(&rss[cgroup_of(a)])
                    .then(cgroup_of(a).cmp(cgroup_of(b)))
            });
        }
        rows
    }

    /// Applies a key; `visible_len` bounds the selection.
    pub fn on_key(&mut self, key: Key, visible_len: usize) -> Action {
        if self.editing_filter {
            match key {
                Key::Enter => self.editing_filter = false,
                Key::Esc => {
                    self.editing_filter = false;
                    self.filter.clear();
                }
                Key::Backspace => {
                    self.filter.pop();
                }
                Key::Char(c) => self.filter.push(c),
                Key::CtrlC => return Action::Quit,
                _ => {}
            }
            self.selected = 0;
            return Action::Continue;
        }
        match key {
            Key::Char('q') | Key::CtrlC => return Action::Quit,
            Key::Char('?') => self.help = !self.help,
            Key::Char('/') => {
                self.editing_filter = true;
                self.filter.clear();
            }
            Key::Char('t') => self.tree = !self.tree,
            Key::Char('K') => self.kernel_threads = !self.kernel_threads,
            Key::Char('e') => self.events = !self.events,
            Key::Enter | Key::Char('d') => self.detail = !self.detail,
            Key::Esc => {
                self.detail = false;
                self.help = false;
                self.filter.clear();
            }
            Key::Up | Key::Char('k') => self.selected = self.selected.saturating_sub(1),
            Key::Down | Key::Char('j') => {
                self.selected = (self.selected + 1).min(visible_len.saturating_sub(1));
            }
            Key::Char(c) => {
                if let Some(i) = COLUMNS.iter().position(|col| col.letter == c) {
                    self.sort = i;
                    self.selected = 0;
                }
            }
            _ => {}
        }
        Action::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pid: u32, comm: &str, cgroup: &str, rss: u64, pss: u64) -> Row {
        let mut r = Row {
            pid,
            comm: comm.into(),
            cgroup: Some(cgroup.into()),
            ..Default::default()
        };
        r.values.set(idx::RSS, Some(rss as f64));
        r.values.set(idx::PSS, Some(pss as f64));
        r.values.set(idx::VM, Some(1.0));
        r
    }

    fn frame() -> TopFrame {
        TopFrame {
            rows: vec![
                row(1, "init", "/", 10, 5),
                row(2, "db", "/db", 30, 1),
                row(3, "web", "/web", 20, 40),
            ],
            ..TopFrame::default()
        }
    }

    #[test]
    fn sorts_filters_and_groups() {
        let f = frame();
        let mut s = TopState::default();
        let pids = |s: &TopState| s.visible(&f).iter().map(|r| r.pid).collect::<Vec<_>>();
        assert_eq!(pids(&s), vec![2, 3, 1], "RSS by default");
        s.on_key(Key::Char('p'), 3);
        assert_eq!(pids(&s), vec![3, 1, 2], "by PSS");
        s.on_key(Key::Char('/'), 3);
        for c in "WE".chars() {
            s.on_key(Key::Char(c), 3);
        }
        s.on_key(Key::Enter, 3);
        assert_eq!(pids(&s), vec![3], "filter is case-insensitive");
        s.on_key(Key::Esc, 1);
        s.on_key(Key::Char('t'), 3);
        s.on_key(Key::Char('r'), 3);
        assert_eq!(pids(&s), vec![2, 3, 1]);
        assert_eq!(s.on_key(Key::Char('q'), 3), Action::Quit);
    }

    #[test]
    fn selection_stays_in_range() {
        let mut s = TopState::default();
        for _ in 0..10 {
            s.on_key(Key::Down, 3);
        }
        assert_eq!(s.selected, 2);
        s.on_key(Key::Up, 3);
        assert_eq!(s.selected, 1);
    }

    #[test]
    fn kernel_threads_hide_behind_k() {
        let mut f = frame();
        let mut kthread = row(9, "kworker/0:1", "/", 0, 0);
        kthread.values.set(idx::VM, Some(0.0));
        f.rows.push(kthread);
        let mut s = TopState::default();
        assert_eq!(s.visible(&f).len(), 3, "hidden by default");
        assert_eq!(f.kernel_threads(), 1);
        s.on_key(Key::Char('K'), 3);
        assert_eq!(s.visible(&f).len(), 4);
    }
}
