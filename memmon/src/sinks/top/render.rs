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

use super::{
    batch::{cells, mib},
    frame::TopFrame,
    state::{COLUMNS, TopState},
};

/// Smallest usable terminal.
pub const MIN_WIDTH: u16 = 100;
/// Smallest usable terminal height.
pub const MIN_HEIGHT: u16 = 15;

const HELP_LINE: &str =
    "q quit  ? help  / filter  t tree  Enter detail  e events  sort: i U N r p u s f F c m l R n o";

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
    let mut constraints = vec![Constraint::Length(2), Constraint::Min(5)];
    if state.detail {
        constraints.push(Constraint::Length(12));
    }
    if state.events {
        constraints.push(Constraint::Length(7));
    }
    constraints.push(Constraint::Length(2));
    let chunks = Layout::vertical(constraints).split(area);
    draw_header(frame, chunks[0], f);
    let rows = state.visible(f);
    draw_table(frame, chunks[1], &rows, state, users, color);
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

fn draw_header(frame: &mut Frame, area: Rect, f: &TopFrame) {
    let h = &f.header;
    let psi = h
        .psi_some10
        .map_or(String::new(), |p| format!("  PSI some {p:.2}%"));
    let lines = vec![
        Line::from(format!(
            "Mem total {}  used {}  free {}  avail {}   Swap used {}{psi}   OOM kills {}",
            mib(Some(h.total)),
            mib(Some(h.used)),
            mib(Some(h.free)),
            mib(Some(h.available)),
            mib(Some(h.swap_used)),
            h.oom_kills
        )),
        Line::from(format!(
            "faults/s {:.0}  majflt/s {:.0}  swap-in/s {:.0}  swap-out/s {:.0}   processes {}",
            h.faults_s,
            h.majfaults_s,
            h.swapin_s,
            h.swapout_s,
            f.rows.len()
        )),
    ];
    frame.render_widget(Paragraph::new(lines), area);
}

fn draw_table(
    frame: &mut Frame,
    area: Rect,
    rows: &[&super::frame::Row],
    state: &TopState,
    users: &HashMap<u32, String>,
    color: bool,
) {
    let header = TRow::new(COLUMNS.iter().enumerate().map(|(i, (name, _, _))| {
        let c = Cell::from(*name);
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
        if state.tree && last_cgroup != Some(r.cgroup.as_str()) {
            last_cgroup = Some(r.cgroup.as_str());
            body.push(
                TRow::new(vec![Cell::from(format!(
                    "▸ {}",
                    if r.cgroup.is_empty() { "?" } else { &r.cgroup }
                ))])
                .style(style(color, Style::default().bold())),
            );
        }
        let row = TRow::new(cells(r, users).map(Cell::from));
        body.push(if i == state.selected {
            row.style(Style::default().add_modifier(Modifier::REVERSED))
        } else {
            row
        });
    }
    let widths: Vec<Constraint> = COLUMNS
        .iter()
        .map(|(_, _, w)| Constraint::Length(*w))
        .collect();
    frame.render_widget(
        Table::new(body, widths).header(header).column_spacing(1),
        area,
    );
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
    let t = |k: &str| r.totals.get(k).copied().unwrap_or(0.0);
    let numa: Vec<String> = r
        .numa_pages
        .iter()
        .map(|(n, p)| format!("node{n}:{p}"))
        .collect();
    let user = r.uid.map_or("-".into(), |u| {
        users.get(&u).cloned().unwrap_or_else(|| u.to_string())
    });
    let text = vec![
        Line::from(vec![
            Span::raw(format!("pid {} ", r.pid)).bold(),
            Span::raw(format!(
                "{}  user {user}",
                crate::sinks::table::printable(&r.comm)
            )),
        ]),
        Line::from(format!(
            "cgroup {}  unit {}",
            r.cgroup,
            r.unit.as_deref().unwrap_or("-")
        )),
        Line::from(format!(
            "RSS {}  PSS {}  USS {}  swap {}",
            mib(r.rss),
            mib(r.pss),
            mib(r.uss),
            mib(r.swap)
        )),
        Line::from(format!(
            "faults: minor {:.0} major {:.0} CoW {:.0}   reclaim stalls {:.0} ({:.3} s)",
            t("minor_faults"),
            t("major_faults"),
            t("cow_faults"),
            t("reclaim_stalls"),
            t("reclaim_stall_seconds")
        )),
        Line::from(format!(
            "mmaps: {:.0} calls, anon {} file {}, brk +{}",
            t("mmap_calls"),
            mib(Some(t("mmap_anon_bytes") as u64)),
            mib(Some(t("mmap_file_bytes") as u64)),
            mib(Some(t("brk_grow_bytes") as u64))
        )),
        Line::from(format!(
            "slab: {:.0} objects ({}), kmalloc {:.0}",
            t("slab_allocs"),
            mib(Some(t("slab_alloc_bytes") as u64)),
            t("kmalloc_allocs")
        )),
        Line::from(format!(
            "NUMA pages: {}   local {}",
            if numa.is_empty() {
                "-".into()
            } else {
                numa.join(" ")
            },
            r.numa_local
                .map_or("-".into(), |x| format!("{:.0}%", x * 100.0))
        )),
    ];
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
        Line::from("Enter, d    detail of the selected process"),
        Line::from("e           events: OOM kills, probe notices"),
        Line::from("↑ ↓ j k     select"),
        Line::from("sort:  i PID  U USER  N COMM  r RSS  p PSS  u USS  s SWAP"),
        Line::from("       f MINFLT/s  F MAJFLT/s  c COW/s  m MMAP/s  l SLAB/s"),
        Line::from("       R RECLAIM ms/s  n NUMA local %  o OOM score"),
        Line::from(""),
        Line::from("Rates are per second over the last refresh."),
    ];
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" help ")),
        popup,
    );
}
