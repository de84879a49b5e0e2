//! Where it grows: the heaviest growth stacks when a profile was had,
//! otherwise which kind of memory grows — a process's anonymous memory
//! (split into the brk heap and anonymous mmaps where the syscall probes
//! ran), file mappings, shmem, swap; a cgroup's memory.stat anon, file,
//! shmem and kernel memory (slab).

use super::{Ctx, bytes, pct, size::size_series};
use crate::model::explain::{
    evidence::{c, p},
    finding::{Finding, Item, Severity},
    series,
    thresholds::{Unit, key, value},
};

/// One kind of memory and its growth over the window, bytes per second.
struct Part {
    what: &'static str,
    rate: f64,
    source: String,
}

/// Adds the "where it grows" finding when the target grew.
pub fn run(ctx: &mut Ctx) {
    let (what, pts, _) = size_series(ctx);
    let grew = series::change(&pts).unwrap_or(0.0);
    let window = ctx.window_secs();
    let growing = grew >= value(key::GROWTH_MIN) && window > 0.0;
    if !growing && ctx.ev.stacks.is_empty() {
        return;
    }
    let mut parts: Vec<Part> = Vec::new();
    let mut evidence = Vec::new();
    let mut sub = String::new();
    if ctx.ev.is_process() {
        for (w, k) in [
            ("anonymous memory", "rss_anon_bytes"),
            ("file mappings", "rss_file_bytes"),
            ("shared memory (shmem)", "rss_shmem_bytes"),
            ("swap", "swap_bytes"),
        ] {
            let i = p(k);
            if let Some(r) = series::change(&ctx.proc_series(i)).map(|d| d / window) {
                parts.push(Part {
                    what: w,
                    rate: r,
                    source: ctx.psrc(i),
                });
            }
        }
        // The anonymous growth by the call that made it (counters: their
        // change over the window).
        let counter = |ctx: &Ctx, k: &str| series::change(&ctx.proc_series(p(k)));
        let brk = counter(ctx, "brk_grow_bytes")
            .zip(counter(ctx, "brk_shrink_bytes"))
            .map(|(g, s)| (g - s) / window);
        let mmap = counter(ctx, "mmap_anon_bytes").map(|m| m / window);
        if brk.is_some() || mmap.is_some() {
            let f = |x: Option<f64>| {
                x.map_or("not measured".to_string(), |b| format!("{}/s", bytes(b)))
            };
            sub = format!(" (heap via brk {}, anonymous mmap {})", f(brk), f(mmap));
            evidence.push(Item::new(
                "heap growth via brk",
                brk,
                Unit::BytesPerSecond,
                ctx.psrc(p("brk_grow_bytes")),
            ));
            evidence.push(Item::new(
                "anonymous mmap",
                mmap,
                Unit::BytesPerSecond,
                format!(
                    "{} (mapped; munmap not netted)",
                    ctx.psrc(p("mmap_anon_bytes"))
                ),
            ));
        } else {
            ctx.pmeasured(p("brk_grow_bytes"));
        }
    } else {
        for (w, item) in [
            ("anonymous memory", "anon"),
            ("page cache (file)", "file"),
            ("shared memory (shmem)", "shmem"),
            ("kernel memory", "kernel"),
            ("unreclaimable slab", "slab_unreclaimable"),
        ] {
            let i = c("memory_stat_bytes", Some(item));
            if let Some(r) = series::change(&ctx.cg_series(i)).map(|d| d / window) {
                parts.push(Part {
                    what: w,
                    rate: r,
                    source: ctx.csrc(i),
                });
            }
        }
    }
    let total: f64 = parts.iter().map(|x| x.rate.max(0.0)).sum();
    parts.sort_by(|a, b| b.rate.total_cmp(&a.rate));
    let lead = parts.first().filter(|x| x.rate > 0.0);
    // The kinds first, then the anonymous split.
    let kinds = parts
        .iter()
        .map(|x| Item::new(x.what, Some(x.rate), Unit::BytesPerSecond, x.source.clone()));
    evidence.splice(0..0, kinds);
    let mut title = match lead {
        Some(x) if total > 0.0 && growing => format!(
            "Where it grows: {} ({} of the growth){}",
            x.what,
            pct(x.rate.max(0.0) / total),
            if x.what == "anonymous memory" {
                sub.as_str()
            } else {
                ""
            }
        ),
        _ => format!("Where {what} grows"),
    };
    let mut next = Vec::new();
    if !ctx.ev.stacks.is_empty() {
        for (i, s) in ctx.ev.stacks.iter().take(3).enumerate() {
            let frames: Vec<&str> = s.frames.iter().take(6).map(String::as_str).collect();
            evidence.push(Item::words(
                format!("growth stack {}", i + 1),
                frames.join(" < "),
                format!("sampled page-fault stacks, {:.0} {}", s.weight, s.what),
            ));
        }
        if let Some(top) = app_frame(&ctx.ev.stacks[0].frames) {
            title = format!("{title}; top growth stack in {top}");
        }
    } else if let Some(why) = &ctx.ev.stacks_missing {
        ctx.not_measured.push(format!("growth stacks: {why}"));
    }
    match ctx.ev.pid {
        Some(pid) => {
            next.push(format!(
                "memmon profile --pid {pid} --event all -d 30   (the stacks that grow it)"
            ));
            next.push(format!(
                "memmon leaks --pid {pid} -d 30   (allocations it keeps)"
            ));
        }
        None => next.push("memmon explain PID for its growing processes".into()),
    }
    ctx.findings.push(Finding {
        id: "where_it_grows".into(),
        severity: Severity::Info,
        title,
        evidence,
        next,
    });
}

/// The innermost frame of the program itself: past the language's and the
/// C library's own (`core::ptr::write_volatile`, `__memset_avx2`), else the
/// innermost.
fn app_frame(frames: &[String]) -> Option<&str> {
    const RUNTIME: [&str; 7] = [
        "core::", "std::", "alloc::", "<core::", "<std::", "<alloc::", "__",
    ];
    frames
        .iter()
        .find(|f| !RUNTIME.iter().any(|r| f.starts_with(r)) && !f.starts_with("0x"))
        .or(frames.first())
        .map(String::as_str)
}
