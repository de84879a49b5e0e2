//! Drawing `memmon top`: header, process table, optional detail and events
//! panes, probe status and help line; a message when the terminal is too
//! small; no colors under NO_COLOR.

use std::collections::HashMap;

use ratatui::{
    Frame,
    layout::{Constraint, Layout, Rect},
    style::{Modifier, Style, Stylize as _},
    text::{Line, Span},
    widgets::{Block, Borders, Cell, Clear, Paragraph, Row as TRow, Sparkline, Table, Wrap},
};

use crate::{
    model::fields::PROCESS_FIELDS,
    sinks::columns::{COLUMNS, cell, cut_left, format_value, printable},
};

use super::{
    batch::size,
    frame::TopFrame,
    state::{TopState, cgroup_of},
};

/// Smallest usable terminal.
pub const MIN_WIDTH: u16 = 100;
/// Smallest usable terminal height.
pub const MIN_HEIGHT: u16 = 15;

const HELP_LINE: &str = "q quit  ? help  / filter  t tree  K kernel threads  Enter detail  e events  sort: i U N r p u s f F c m R n o";

fn style(color: bool, s: Style) -> Style {
    if color { s } else { Style::default() }
}

/// Draws one screen.
pub fn draw(
    frame: &mut Frame,
    f: &TopFrame,
    state: &TopState,
    users: &HashMap<u32, String>,
    color: bool,
) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let msg = format!(
            "terminal too small ({}x{}); memmon top needs at least {MIN_WIDTH}x{MIN_HEIGHT}. Press q to quit.",
            area.width, area.height
        );
        frame.render_widget(Paragraph::new(msg).wrap(Wrap { trim: true }), area);
        return;
    }
    let header_lines = if f.banner.is_some() { 3 } else { 2 };
    let mut constraints = vec![Constraint::Length(header_lines), Constraint::Min(5)];
    let stacks = state.detail && f.fault_stacks.is_some();
    if state.detail {
        constraints.push(Constraint::Length(12));
    }
    if stacks {
        constraints.push(Constraint::Length(1 + super::stacks::SHOWN as u16));
    }
    if state.events {
        constraints.push(Constraint::Length(7));
    }
    constraints.push(Constraint::Length(2));
    let chunks = Layout::vertical(constraints).split(area);
    draw_header(frame, chunks[0], f, state);
    let rows = state.visible(f);
    draw_table(frame, chunks[1], f, &rows, state, users, color);
    let mut next = 2;
    if state.detail {
        draw_detail(
            frame,
            chunks[next],
            rows.get(state.selected).copied(),
            state,
            users,
        );
        next += 1;
    }
    if stacks {
        draw_stacks(
            frame,
            chunks[next],
            f.fault_stacks.as_ref(),
            rows.get(state.selected).map(|r| r.pid),
        );
        next += 1;
    }
    if state.events {
        let lines: Vec<Line> = f
            .events
            .iter()
            .rev()
            .take(5)
            .map(|e| Line::from(e.as_str()))
            .collect();
        frame.render_widget(
            Paragraph::new(lines).block(Block::default().borders(Borders::TOP).title(" events ")),
            chunks[next],
        );
        next += 1;
    }
    let status = if state.editing_filter {
        format!("filter: {}_", state.filter)
    } else if !state.filter.is_empty() {
        format!("{}   [filter: {}]", f.probes, state.filter)
    } else {
        f.probes.clone()
    };
    frame.render_widget(
        Paragraph::new(vec![
            Line::from(status),
            Line::from(HELP_LINE).style(style(color, Style::default().dim())),
        ]),
        chunks[next],
    );
    if state.help {
        draw_help(frame, area);
    }
}

fn draw_header(frame: &mut Frame, area: Rect, f: &TopFrame, state: &TopState) {
    let h = &f.header;
    let psi = h
        .psi_some10
        .map_or(String::new(), |p| format!("  PSI some {p:.2}%"));
    let mut lines: Vec<Line> = f.banner.iter().map(|b| Line::from(b.as_str())).collect();
    lines.extend([
        Line::from(format!(
            "Mem total {}  used {}  free {}  avail {}   Swap used {}{psi}   OOM kills {}",
            size(Some(h.total)),
            size(Some(h.used)),
            size(Some(h.free)),
            size(Some(h.available)),
            size(Some(h.swap_used)),
            h.oom_kills
        )),
        Line::from(format!(
            "faults/s {:.0}  majflt/s {:.0}  swap-in/s {:.0}  swap-out/s {:.0}   processes {}  kernel threads {} ({})",
            h.faults_s,
            h.majfaults_s,
            h.swapin_s,
            h.swapout_s,
            f.rows.len() - f.kernel_threads(),
            f.kernel_threads(),
            if state.kernel_threads {
                "shown, K hides"
            } else {
                "hidden, K shows"
            }
        )),
    ]);
    frame.render_widget(Paragraph::new(lines), area);
}

fn draw_table(
    frame: &mut Frame,
    area: Rect,
    f: &TopFrame,
    rows: &[&super::frame::Row],
    state: &TopState,
    users: &HashMap<u32, String>,
    color: bool,
) {
    let header = TRow::new(COLUMNS.iter().enumerate().map(|(i, col)| {
        let c = Cell::from(col.header);
        if i == state.sort {
            c.style(style(
                color,
                Style::default().add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
            ))
        } else {
            c
        }
    }))
    .style(style(color, Style::default().reversed()));
    let visible = area.height.saturating_sub(1) as usize;
    let first = state.selected.saturating_sub(visible.saturating_sub(1));
    let mut last_cgroup: Option<&str> = None;
    let mut body = Vec::new();
    for (i, r) in rows.iter().enumerate().skip(first).take(visible) {
        let cg = cgroup_of(r);
        if state.tree && last_cgroup != Some(cg) {
            last_cgroup = Some(cg);
            // Cut from the left: the distinguishing tail stays.
            let width = usize::from(area.width.saturating_sub(2)).max(8);
            let numbers = f.cgroups.get(cg).map(group_numbers).unwrap_or_default();
            let name_width = width.saturating_sub(numbers.chars().count() + 3).max(8);
            let text = format!(
                "▸ {}{numbers}",
                if cg.is_empty() {
                    "?".to_string()
                } else {
                    cut_left(&printable(cg), name_width)
                }
            );
            body.push(
                TRow::new(spread(&text).into_iter().map(Cell::from))
                    .style(style(color, Style::default().bold())),
            );
        }
        let row = TRow::new(COLUMNS.iter().map(|c| Cell::from(cell(r, c, users))));
        body.push(if i == state.selected {
            row.style(Style::default().add_modifier(Modifier::REVERSED))
        } else {
            row
        });
    }
    let widths: Vec<Constraint> = COLUMNS
        .iter()
        .map(|c| Constraint::Length(c.width + 1))
        .collect();
    frame.render_widget(
        // No spacing between columns (each is one wider instead), so a
        // group row's text can run across them (see `spread`).
        Table::new(body, widths).header(header).column_spacing(0),
        area,
    );
}

/// `text` cut into the table's columns (each `width + 1` wide), so a
/// group row reads as one line across the whole table.
fn spread(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::with_capacity(COLUMNS.len());
    let mut at = 0;
    for (i, c) in COLUMNS.iter().enumerate() {
        let w = if i + 1 == COLUMNS.len() {
            chars.len().saturating_sub(at)
        } else {
            usize::from(c.width) + 1
        };
        let end = (at + w).min(chars.len());
        out.push(chars[at.min(end)..end].iter().collect());
        at = end;
    }
    out
}

/// A tree group's own numbers: usage / limit (share), working set, and the
/// OOM forecast when there is one.
pub fn group_numbers(c: &super::frame::CgroupRow) -> String {
    let Some(usage) = c.usage else {
        return String::new();
    };
    let mut s = format!("  usage {}", size(Some(usage)));
    if let Some(limit) = c.limit.filter(|l| *l > 0) {
        s.push_str(&format!(
            " / {} ({:.0}%)",
            size(Some(limit)),
            usage as f64 * 100.0 / limit as f64
        ));
    }
    if let Some(ws) = c.working_set {
        s.push_str(&format!("  ws {}", size(Some(ws))));
    }
    if let Some(secs) = c.oom_forecast_seconds {
        s.push_str(&format!("  OOM in {}", duration(secs)));
    }
    s
}

/// Seconds as `42s`, `7m`, `3h`.
fn duration(secs: f64) -> String {
    if secs < 120.0 {
        format!("{secs:.0}s")
    } else if secs < 7200.0 {
        format!("{:.0}m", secs / 60.0)
    } else {
        format!("{:.0}h", secs / 3600.0)
    }
}

fn draw_detail(
    frame: &mut Frame,
    area: Rect,
    row: Option<&super::frame::Row>,
    state: &TopState,
    users: &HashMap<u32, String>,
) {
    let block = Block::default().borders(Borders::TOP).title(" detail ");
    let Some(r) = row else {
        frame.render_widget(Paragraph::new("no process selected").block(block), area);
        return;
    };
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(inner);
    let numa: Vec<String> = r
        .numa_pages
        .iter()
        .flatten()
        .map(|(n, p)| format!("node{n}:{p}"))
        .collect();
    let user = r.uid.map_or("-".into(), |u| {
        users.get(&u).cloned().unwrap_or_else(|| u.to_string())
    });
    let mut text = vec![
        Line::from(vec![
            Span::raw(format!("pid {} ", r.pid)).bold(),
            Span::raw(format!("{}  user {user}", printable(&r.comm))),
        ]),
        Line::from(format!(
            "cgroup {}  unit {}",
            printable(cgroup_of(r)),
            r.unit.as_deref().unwrap_or("-")
        )),
    ];
    if !numa.is_empty() {
        text.push(Line::from(format!("NUMA pages: {}", numa.join(" "))));
    }
    // Every measured field of the catalog, three to a line.
    let known: Vec<String> = PROCESS_FIELDS
        .iter()
        .enumerate()
        .filter_map(|(i, f)| {
            let v = r.value(i)?;
            Some(format!("{} {}", f.key, format_value(Some(v), f.unit)))
        })
        .collect();
    for chunk in known.chunks(3) {
        text.push(Line::from(chunk.join("  ")));
    }
    frame.render_widget(Paragraph::new(text), left);
    let hist = state.history.get(&(r.pid, r.start_time_ticks));
    let minor: Vec<u64> = hist
        .map(|h| h.iter().map(|(m, _)| *m as u64).collect())
        .unwrap_or_default();
    let major: Vec<u64> = hist
        .map(|h| h.iter().map(|(_, m)| *m as u64).collect())
        .unwrap_or_default();
    let [top, bottom] =
        Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(right);
    frame.render_widget(
        Sparkline::default()
            .block(Block::default().title("minor faults/s"))
            .data(&minor),
        top,
    );
    frame.render_widget(
        Sparkline::default()
            .block(Block::default().title("major faults/s"))
            .data(&major),
        bottom,
    );
}

/// The selected process's fault stacks (computed for the selection at the
/// last refresh or key).
fn draw_stacks(
    frame: &mut Frame,
    area: Rect,
    stacks: Option<&super::stacks::FaultStacks>,
    selected: Option<u32>,
) {
    let Some(st) = stacks.filter(|s| Some(s.pid) == selected) else {
        frame.render_widget(
            Paragraph::new("fault stacks: at the next refresh").block(
                Block::default()
                    .borders(Borders::TOP)
                    .title(" fault stacks "),
            ),
            area,
        );
        return;
    };
    let title = format!(
        " fault stacks of pid {}, last {} s: share, faults, leaf < callers ",
        st.pid, st.seconds
    );
    let lines: Vec<Line> = st
        .text(usize::from(area.width))
        .into_iter()
        .map(Line::from)
        .collect();
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::TOP).title(title)),
        area,
    );
}

fn draw_help(frame: &mut Frame, area: Rect) {
    let w = 70.min(area.width);
    let h = 20.min(area.height);
    let popup = Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    );
    let lines = vec![
        Line::from("memmon top — keys"),
        Line::from(""),
        Line::from("q, Ctrl-C   quit (the terminal is restored)"),
        Line::from("?           this help"),
        Line::from("/           filter by command or cgroup (Enter keeps, Esc clears)"),
        Line::from("t           group by cgroup"),
        Line::from("K           show or hide kernel threads (hidden at start)"),
        Line::from("Enter, d    detail of the selected process"),
        Line::from("e           events: OOM kills, probe notices"),
        Line::from("↑ ↓ j k     select"),
        Line::from("sort:  i PID  U USER  N COMM  r RSS  p PSS  u USS  s SWAP"),
        Line::from("       f MINFLT/s  F MAJFLT/s  c COW/s  m MMAP/s  l SLAB/s"),
        Line::from("       R RECLAIM ms/s  n NUMA local %  o OOM score"),
        Line::from(""),
        Line::from("Rates are per second over the last refresh; - is a value not measured"),
        Line::from("(its probe is not attached, or the kernel lacks its /proc file)."),
    ];
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" help ")),
        popup,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_row_runs_across_the_columns_and_says_usage_against_limit() {
        let row = super::super::frame::CgroupRow {
            usage: Some(120 << 20),
            limit: Some(256 << 20),
            working_set: Some(100 << 20),
            oom_forecast_seconds: Some(300.0),
        };
        let text = format!(
            "▸ /process_api/fa4d1c2e3b/worker.scope{}",
            group_numbers(&row)
        );
        assert!(
            text.ends_with("usage 120M / 256M (47%)  ws 100M  OOM in 5m"),
            "{text}"
        );
        let cells = spread(&text);
        assert_eq!(cells.len(), COLUMNS.len());
        assert_eq!(cells.concat(), text, "nothing lost between columns");
    }
}
