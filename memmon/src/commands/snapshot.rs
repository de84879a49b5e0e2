//! `memmon snapshot`: load the probes, watch for a window, print every
//! process (like `top -b -n1`: its memory now and the window's rates,
//! largest first by `--sort`) as a table or JSON, or with `--probes` the
//! probe states.

use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::{
    cli::{ProbeArgs, SnapshotArgs},
    clock,
    collector::{Collector, Reads},
    error::Fatal,
    model::{Model, ProcessView, Which},
    pipeline::Pipeline,
    privileges,
    probes::{LoadOptions, ProbeSet, catalog},
    procfs::cost_guard::GuardSettings,
    sinks::{alloc_report, columns, json, probes_report, system_table, table},
};

/// How often exit events are drained during the window.
const DRAIN_INTERVAL: Duration = Duration::from_millis(100);
/// Longest window accepted (a day).
const MAX_DURATION_SECS: f64 = 86_400.0;

/// Runs the command.
pub fn run(args: &SnapshotArgs) -> Result<(), Fatal> {
    if !args.duration.is_finite() || args.duration < 0.0 || args.duration > MAX_DURATION_SECS {
        return Err(Fatal::Usage(format!(
            "--duration {} is out of range: give seconds from 0 to {MAX_DURATION_SECS}",
            args.duration
        )));
    }
    let sort = match &args.sort {
        Some(key) => columns::by_name(key).ok_or_else(|| {
            Fatal::Usage(format!(
                "--sort {key}: unknown column; use one of: {}",
                columns::names().join(", ")
            ))
        })?,
        None => columns::by_name("rss").unwrap_or(0),
    };
    if args.cgroups {
        // No memory controller there: say so before any probe loads, not
        // an empty table after the window.
        let mount = args
            .cgroup_root
            .as_deref()
            .unwrap_or(std::path::Path::new(crate::collector::DEFAULT_CGROUP_ROOT));
        if let Err(e) = crate::cgroupfs::CgroupRoot::detect_at(mount) {
            return Err(match args.cgroup_root {
                Some(_) => Fatal::Usage(format!("--cgroup-root: {e}")),
                None => Fatal::Other(anyhow::anyhow!("--cgroups: {e}")),
            });
        }
    }
    let mut opts = load_options(&args.probe_args)?;
    opts.pin_root = args.pin_dir.clone();
    privileges::check().map_err(Fatal::Privileges)?;
    let probes = ProbeSet::load(&opts).context("loading probes")?;
    for status in probes.statuses() {
        if let crate::probes::ProbeState::Unavailable { reason } = &status.state
            && !catalog::is_optional(&status.name)
        {
            eprintln!("memmon: probe {} unavailable: {reason}", status.name);
        }
    }
    let model = Model::new(probes.statuses().to_vec(), crate::collector::host());
    // The memory of what is shown is read once, at the end: up to a
    // quarter second of reads.
    let mut collector = Collector::new(probes).with_guard(GuardSettings {
        cpu_share: 0.25,
        ..GuardSettings::default()
    });
    if let Some(dir) = &args.cgroup_root {
        collector = collector.with_cgroup_root(dir);
    }
    let mut pipeline = Pipeline::new(collector, model);
    pipeline.sample(&Reads::default());
    pipeline.model.start_window(clock::now().instant);
    super::stop_signal::install();
    eprintln!("memmon: probes attached; watching for {} s", args.duration);

    let deadline = Instant::now() + Duration::from_secs_f64(args.duration);
    loop {
        let now = Instant::now();
        if now >= deadline || super::stop_signal::requested() {
            break;
        }
        std::thread::sleep(DRAIN_INTERVAL.min(deadline - now));
        pipeline.drain();
    }
    // The last sample: the memory of the live processes this command will
    // show (and the system view), and the memory cgroups if they are shown.
    pipeline.sample(&Reads {
        cgroups: args.cgroups,
        memory: Some(Duration::from_secs(1)),
        only: (!args.pid.is_empty()).then(|| args.pid.iter().copied().collect()),
    });
    let model = &mut pipeline.model;
    let which = if args.active {
        Which::Window
    } else {
        Which::All
    };

    if args.slab || args.buddy {
        let window = model.alloc_window();
        let Some(window) = window else {
            return Err(Fatal::Usage(
                "--slab/--buddy need the allocation probes (slab_alloc, kmalloc, page_alloc); \
                 they are not attached (see --probes)"
                    .into(),
            ));
        };
        let buddyinfo = model
            .system()
            .map(|s| s.sample.buddyinfo.clone())
            .unwrap_or_default();
        let out = match (args.slab, args.json) {
            (true, true) => alloc_report::slab_json(&window),
            (true, false) => alloc_report::slab_table(&window),
            (false, true) => alloc_report::buddy_json(&window, &buddyinfo),
            (false, false) => alloc_report::buddy_table(&window, &buddyinfo),
        };
        println!("{out}");
        return Ok(());
    }
    if args.system {
        let out = match model.system() {
            Some(view) if args.json => serde_json::to_string_pretty(view).unwrap_or_default(),
            Some(view) => system_table::render(view),
            None => "no system view".into(),
        };
        println!("{out}");
        return Ok(());
    }

    if args.probes {
        let out = if args.json {
            probes_report::to_json(model.probes(), model.stats())
        } else {
            probes_report::render(model.probes(), model.stats())
        };
        println!("{out}");
        return Ok(());
    }
    if args.cgroups {
        let published = crate::model::published::Published::from_model(model, clock::now());
        if args.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&published.cgroups).unwrap_or_default()
            );
        } else {
            print!("{}", crate::sinks::cgroup_table::render(&published.cgroups));
        }
        return Ok(());
    }
    let views = model
        .views(which, clock::now().instant)
        .into_iter()
        .map(std::sync::Arc::unwrap_or_clone)
        .collect();
    let rows = select_rows(views, &args.pid, &columns::COLUMNS[sort]);
    if args.json {
        println!("{}", json::rows_to_json(&rows));
    } else {
        print!("{}", table::render(&rows, &crate::collector::user_names()));
    }
    Ok(())
}

/// Validated probe options from the shared flags (the daemon's probe
/// keys, on the one-shot commands' defaults).
pub fn load_options(args: &ProbeArgs) -> Result<LoadOptions, Fatal> {
    let base = LoadOptions::default();
    let mut c = crate::config::Config {
        fault_detail: base.fault_detail,
        alloc_detail: base.alloc_detail,
        ..Default::default()
    };
    args.overrides()
        .apply(&mut c)
        .map_err(|e| Fatal::Usage(e.to_string()))?;
    Ok(LoadOptions {
        fault_detail: c.fault_detail,
        alloc_detail: c.alloc_detail,
        disabled: c.disabled_probes.into_iter().collect(),
        ..base
    })
}

/// Filters by `pids` (reporting those not found on stderr) and sorts the
/// largest first by `col`.
fn select_rows(mut rows: Vec<ProcessView>, pids: &[u32], col: &columns::Col) -> Vec<ProcessView> {
    if !pids.is_empty() {
        rows.retain(|r| pids.contains(&r.pid));
        for pid in pids {
            if !rows.iter().any(|r| r.pid == *pid) {
                eprintln!(
                    "memmon: pid {pid} not found (it is not running, and did not exit in the window)"
                );
            }
        }
    }
    rows.sort_by(|a, b| {
        if col.what == columns::What::Comm {
            a.comm.cmp(&b.comm).then(a.pid.cmp(&b.pid))
        } else {
            columns::sort_value(b, col)
                .total_cmp(&columns::sort_value(a, col))
                .then(a.pid.cmp(&b.pid))
        }
    });
    rows
}
