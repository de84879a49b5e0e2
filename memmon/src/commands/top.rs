//! `memmon top`: samples locally (its own probes, the same pipeline as the
//! daemon) or reads a daemon's `/api/v1/snapshot` with `--connect`, and
//! shows the frames on a terminal (ratatui) or, with `--batch`, prints them.
//! With `--profile` (local, interactive), the detail pane also shows the
//! selected process's fault stacks (`top_profile`).

use std::{
    io::Write as _,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};

use crate::{
    cli::TopArgs,
    collector::Collector,
    commands::snapshot::load_options,
    error::Fatal,
    model::Model,
    pipeline::Pipeline,
    privileges,
    probes::ProbeSet,
    sinks::top::stacks::FaultStacks,
    sinks::top::{
        batch,
        frame::{Row, TopFrame},
        render,
        state::{Action, Key, TopState, column_by_name},
    },
};

/// Where frames come from.
enum Source {
    /// memmon's own probes and model.
    Local(Box<Pipeline>),
    /// A daemon's JSON API (`host:port`).
    Remote(String),
}

impl Source {
    fn frame(&mut self, interval: Duration) -> Result<serde_json::Value, Fatal> {
        match self {
            Source::Local(p) => {
                let published = p.pass(interval);
                serde_json::to_value(&published).map_err(|e| Fatal::Other(e.into()))
            }
            Source::Remote(addr) => {
                super::daemon_client::get_json(addr, "/api/v1/snapshot").map_err(Fatal::Other)
            }
        }
    }

    /// Waits until `deadline`, draining kernel events meanwhile.
    fn idle_until(&mut self, deadline: Instant) {
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100).min(deadline - Instant::now()));
            if let Source::Local(p) = self {
                p.drain();
            }
        }
    }
}

/// Restores the terminal when dropped (also on panic: ratatui's hook).
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Runs the command.
pub fn run(args: &TopArgs) -> Result<(), Fatal> {
    if !args.interval.is_finite() || !(0.1..=3600.0).contains(&args.interval) {
        return Err(Fatal::Usage(format!(
            "--interval {} is out of range: give 0.1 to 3600 seconds",
            args.interval
        )));
    }
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
    let interval = Duration::from_secs_f64(args.interval);
    let mut profile = None;
    let mut source = match &args.connect {
        Some(url) => Source::Remote(super::daemon_client::connect_addr(url)?),
        None => {
            let mut opts = load_options(&args.probe_args)?;
            if args.profile {
                opts.stack_entries = Some(crate::probes::stack_drain::DAEMON_STACK_ENTRIES);
            }
            privileges::check().map_err(Fatal::Privileges)?;
            let mut probes = ProbeSet::load(&opts).context("loading probes")?;
            if args.profile {
                profile = Some(super::top_profile::TopProfile::start(
                    &mut probes,
                    args.profile_period,
                )?);
            }
            let model = Model::new(probes.statuses().to_vec(), crate::collector::host());
            Source::Local(Box::new(
                Pipeline::new(Collector::new(probes), model).with_task_iter(),
            ))
        }
    };
    let users = crate::collector::user_names();
    if args.batch {
        return run_batch(args, &mut source, &mut state, &users, interval);
    }
    run_tui(&mut source, &mut state, &users, interval, profile)
}

/// The selected row's pid.
fn selected_pid(state: &TopState, f: &TopFrame) -> Option<u32> {
    state.visible(f).get(state.selected).map(|r: &&Row| r.pid)
}

/// Puts the selected process's fault stacks into `f` (when `profile` is on
/// and they are not there yet for that process, or `fresh` asks).
fn place_stacks(
    profile: &mut Option<super::top_profile::TopProfile>,
    state: &TopState,
    f: &mut TopFrame,
    fresh: bool,
) {
    let Some(p) = profile else {
        return;
    };
    let pid = selected_pid(state, f);
    if fresh || pid != f.fault_stacks.as_ref().map(|s: &FaultStacks| s.pid) {
        f.fault_stacks = pid.map(|pid| p.stacks(pid));
    }
}

fn run_batch(
    args: &TopArgs,
    source: &mut Source,
    state: &mut TopState,
    users: &std::collections::HashMap<u32, String>,
    interval: Duration,
) -> Result<(), Fatal> {
    let mut i = 0u64;
    let mut out = std::io::stdout().lock();
    loop {
        let started = Instant::now();
        let frame = TopFrame::from_json(&source.frame(interval)?);
        let text = if args.json {
            batch::json(&frame, state)
        } else {
            batch::text(&frame, state, users)
        };
        if writeln!(out, "{text}").and_then(|_| out.flush()).is_err() {
            return Ok(()); // stdout closed (e.g. piped into head)
        }
        i += 1;
        if args.iterations.is_some_and(|n| i >= n) {
            return Ok(());
        }
        source.idle_until(started + interval);
    }
}

fn run_tui(
    source: &mut Source,
    state: &mut TopState,
    users: &std::collections::HashMap<u32, String>,
    interval: Duration,
    mut profile: Option<super::top_profile::TopProfile>,
) -> Result<(), Fatal> {
    let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let mut terminal =
        ratatui::try_init().context("cannot set up the terminal (is this a TTY?)")?;
    let _guard = TerminalGuard;
    let mut next_refresh = Instant::now();
    let mut frame: Option<TopFrame> = None;
    loop {
        if Instant::now() >= next_refresh {
            let mut f = TopFrame::from_json(&source.frame(interval)?);
            state.observe(&f);
            if let Some(p) = &mut profile {
                p.drain();
            }
            place_stacks(&mut profile, state, &mut f, true);
            frame = Some(f);
            next_refresh = Instant::now() + interval;
        }
        if let Some(f) = &frame {
            terminal
                .draw(|fr| render::draw(fr, f, state, users, color))
                .context("drawing")?;
        }
        let wait = next_refresh
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(100));
        if event::poll(wait).context("reading the terminal")? {
            match event::read().context("reading the terminal")? {
                Event::Key(k) if k.kind != KeyEventKind::Release => {
                    let key = match k.code {
                        KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                            Key::CtrlC
                        }
                        KeyCode::Char(c) => Key::Char(c),
                        KeyCode::Enter => Key::Enter,
                        KeyCode::Esc => Key::Esc,
                        KeyCode::Backspace => Key::Backspace,
                        KeyCode::Up => Key::Up,
                        KeyCode::Down => Key::Down,
                        _ => continue,
                    };
                    let len = frame.as_ref().map_or(0, |f| state.visible(f).len());
                    if state.on_key(key, len) == Action::Quit {
                        return Ok(());
                    }
                    if let Some(f) = &mut frame {
                        place_stacks(&mut profile, state, f, false);
                    }
                }
                // A resize redraws on the next turn.
                _ => {}
            }
        } else {
            if let Source::Local(p) = source {
                p.drain();
            }
            // Often, as the daemon does: few stacks stay live in the
            // kernel maps (see `probes::stack_drain`).
            if let Some(p) = &mut profile {
                p.drain();
            }
        }
    }
}
