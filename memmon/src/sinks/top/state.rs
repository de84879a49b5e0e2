//! The state of `memmon top` and what each key does: sort column, filter,
//! tree by cgroup, selection, detail/events/help panes. Pure: no terminal.

use std::collections::{HashMap, VecDeque};

use super::frame::{Row, TopFrame};

/// Columns, in display order: (header, sort key, width).
pub const COLUMNS: [(&str, char, u16); 15] = [
    ("PID", 'i', 7),
    ("USER", 'U', 8),
    ("COMM", 'N', 16),
    ("RSS", 'r', 9),
    ("PSS", 'p', 9),
    ("USS", 'u', 9),
    ("SWAP", 's', 9),
    ("MINFLT/s", 'f', 9),
    ("MAJFLT/s", 'F', 9),
    ("COW/s", 'c', 8),
    ("MMAP/s", 'm', 8),
    ("SLAB/s", 'l', 8),
    ("RECLAIM", 'R', 8),
    ("NUMA%", 'n', 6),
    ("OOM", 'o', 5),
];

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
    /// Per process: recent (minflt/s, majflt/s).
    pub history: HashMap<(u32, u64), VecDeque<(f64, f64)>>,
}

impl Default for TopState {
    fn default() -> Self {
        TopState {
            sort: 3,
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

/// The sort column named `key` (a header like "pss" or its letter).
pub fn column_by_name(key: &str) -> Option<usize> {
    let k = key.to_ascii_lowercase();
    COLUMNS.iter().position(|(h, c, _)| {
        h.to_ascii_lowercase().trim_end_matches("/s") == k || (k.len() == 1 && k.starts_with(*c))
    })
}

fn sort_value(r: &Row, col: usize) -> f64 {
    let b = |v: Option<u64>| v.unwrap_or(0) as f64;
    match col {
        0 => -(r.pid as f64),
        1 => -(r.uid.unwrap_or(0) as f64),
        3 => b(r.rss),
        4 => b(r.pss),
        5 => b(r.uss),
        6 => b(r.swap),
        7 => r.minflt_s,
        8 => r.majflt_s,
        9 => r.cow_s,
        10 => r.mmap_s,
        11 => r.slab_s,
        12 => r.reclaim_ms_s,
        13 => r.numa_local.unwrap_or(-1.0),
        14 => r.oom_score.unwrap_or(-1) as f64,
        _ => 0.0,
    }
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
            h.push_back((r.minflt_s, r.majflt_s));
        }
    }

    /// Rows to show: filtered, sorted (largest first; by name A–Z), and in
    /// tree mode grouped by cgroup (groups by their summed RSS).
    pub fn visible<'a>(&self, f: &'a TopFrame) -> Vec<&'a Row> {
        let needle = self.filter.to_lowercase();
        let mut rows: Vec<&Row> = f
            .rows
            .iter()
            .filter(|r| {
                needle.is_empty()
                    || r.comm.to_lowercase().contains(&needle)
                    || r.cgroup.to_lowercase().contains(&needle)
            })
            .collect();
        let col = self.sort;
        rows.sort_by(|a, b| {
            if col == 2 {
                a.comm.cmp(&b.comm).then(a.pid.cmp(&b.pid))
            } else {
                sort_value(b, col)
                    .total_cmp(&sort_value(a, col))
                    .then(a.pid.cmp(&b.pid))
            }
        });
        if self.tree {
            let mut rss: HashMap<&str, u64> = HashMap::new();
            for r in &rows {
                *rss.entry(r.cgroup.as_str()).or_default() += r.rss.unwrap_or(0);
            }
            // Stable: within a cgroup the sort order holds.
            rows.sort_by(|a, b| {
                rss[b.cgroup.as_str()]
                    .cmp(&rss[a.cgroup.as_str()])
                    .then(a.cgroup.cmp(&b.cgroup))
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
                if let Some(i) = COLUMNS.iter().position(|(_, k, _)| *k == c) {
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
        Row {
            pid,
            comm: comm.into(),
            cgroup: cgroup.into(),
            rss: Some(rss),
            pss: Some(pss),
            ..Default::default()
        }
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
    fn column_names() {
        assert_eq!(column_by_name("pss"), Some(4));
        assert_eq!(column_by_name("minflt"), Some(7));
        assert_eq!(column_by_name("nope"), None);
    }
}
