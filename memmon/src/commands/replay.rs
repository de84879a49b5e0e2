//! `memmon replay`: `memmon top` over a recording. The frames come from
//! the store instead of a live pass and are drawn by the same code
//! (`sinks/top`); left/right step a frame, Home/End go to the ends, `g`
//! reads a time (RFC 3339, Unix seconds, "10m ago") and jumps to it.

use anyhow::Context as _;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};

use crate::{
    cli::ReplayArgs,
    clock::unix_ms,
    error::Fatal,
    sinks::top::{
        frame::TopFrame,
        render,
        state::{Action, Key, TopState, column_by_name},
    },
    store::{reader::Store, time},
};

/// Restores the terminal when dropped.
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// The frame at `i` (or the nearest readable one in direction `step`),
/// with its banner.
fn load(store: &Store, mut i: usize, step: isize, note: &str) -> (usize, TopFrame) {
    let n = store.frames.len();
    let mut skipped = Vec::new();
    loop {
        match store.frame(i) {
            Ok(v) => {
                let mut f = TopFrame::from_json(&v);
                let mut banner = format!(
                    "replay {}  frame {}/{}  ←/→ step  Home/End  g go to time",
                    time::format(store.frames[i].unix_ms),
                    i + 1,
                    n
                );
                if !skipped.is_empty() {
                    banner.push_str(&format!(
                        "  [{} unreadable frame(s) skipped]",
                        skipped.len()
                    ));
                }
                if !note.is_empty() {
                    banner.push_str(&format!("  [{note}]"));
                }
                f.banner = Some(banner);
                return (i, f);
            }
            Err(e) => {
                tracing::warn!("{e}");
                skipped.push(e);
                let next = i as isize + if step == 0 { 1 } else { step };
                if next < 0 || next as usize >= n || skipped.len() >= n {
                    let f = TopFrame {
                        banner: Some(format!("replay: frame unreadable: {}", skipped[0])),
                        ..Default::default()
                    };
                    return (i, f);
                }
                i = next as usize;
            }
        }
    }
}

/// Runs the command.
pub fn run(args: &ReplayArgs) -> Result<(), Fatal> {
    let store = Store::open(&args.store, None).map_err(|e| Fatal::Usage(e.to_string()))?;
    let mut state = TopState::default();
    if let Some(key) = &args.sort {
        state.sort = column_by_name(key).ok_or_else(|| {
            Fatal::Usage(format!(
                "--sort {key}: unknown column; use one of: {}",
                crate::sinks::columns::names().join(", ")
            ))
        })?;
    }
    if let Some(f) = &args.filter {
        state.filter = f.clone();
    }
    let start = match &args.at {
        Some(t) => {
            let ms = time::parse(t, unix_ms()).map_err(|m| Fatal::Usage(format!("--at {m}")))?;
            store.at(ms)
        }
        None => 0,
    };
    let users = crate::collector::user_names();
    let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let mut terminal =
        ratatui::try_init().context("cannot set up the terminal (is this a TTY?)")?;
    let _guard = TerminalGuard;
    let (mut i, mut frame) = load(&store, start, 1, "");
    state.observe(&frame);
    // Some(text): reading a time after `g`.
    let mut goto: Option<String> = None;
    loop {
        if let Some(text) = &goto {
            frame.banner = Some(format!(
                "go to time (RFC 3339, Unix seconds, 10m ago): {text}_"
            ));
        }
        terminal
            .draw(|fr| render::draw(fr, &frame, &state, &users, color))
            .context("drawing")?;
        let Event::Key(k) = event::read().context("reading the terminal")? else {
            continue;
        };
        if k.kind == KeyEventKind::Release {
            continue;
        }
        let ctrl_c = k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
        if let Some(text) = goto.as_mut() {
            match k.code {
                _ if ctrl_c => return Ok(()),
                KeyCode::Char(c) => text.push(c),
                KeyCode::Backspace => {
                    text.pop();
                }
                KeyCode::Esc => {
                    goto = None;
                    (i, frame) = load(&store, i, 0, "");
                }
                KeyCode::Enter => {
                    let note;
                    match time::parse(text, unix_ms()) {
                        Ok(ms) => {
                            i = store.at(ms);
                            note = String::new();
                        }
                        Err(e) => note = e.to_string(),
                    }
                    goto = None;
                    (i, frame) = load(&store, i, 1, &note);
                    state.observe(&frame);
                }
                _ => {}
            }
            continue;
        }
        let moved = match k.code {
            KeyCode::Left => Some((i.saturating_sub(1), -1)),
            KeyCode::Right => Some(((i + 1).min(store.frames.len() - 1), 1)),
            KeyCode::Home => Some((0, 1)),
            KeyCode::End => Some((store.frames.len() - 1, -1)),
            KeyCode::Char('g') if !state.editing_filter => {
                goto = Some(String::new());
                continue;
            }
            _ => None,
        };
        if let Some((to, step)) = moved {
            (i, frame) = load(&store, to, step, "");
            state.observe(&frame);
            continue;
        }
        let key = match k.code {
            _ if ctrl_c => Key::CtrlC,
            KeyCode::Char(c) => Key::Char(c),
            KeyCode::Enter => Key::Enter,
            KeyCode::Esc => Key::Esc,
            KeyCode::Backspace => Key::Backspace,
            KeyCode::Up => Key::Up,
            KeyCode::Down => Key::Down,
            _ => continue,
        };
        let len = state.visible(&frame).len();
        if state.on_key(key, len) == Action::Quit {
            return Ok(());
        }
    }
}
