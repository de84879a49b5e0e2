//! `snapshot --slab` and `snapshot --buddy`: allocator activity in the
//! window, as tables or JSON.

use std::fmt::Write as _;

use memmon_common::alloc::MIGRATE_TYPE_NAMES;
use serde_json::json;

use crate::sample::{alloc::AllocSample, system::BuddyZone};

/// Slab caches (busiest first) and kmalloc size classes.
pub fn slab_table(w: &AllocSample) -> String {
    let mut caches: Vec<_> = w
        .slab_caches
        .iter()
        .filter(|(_, s)| s.allocs + s.frees > 0)
        .collect();
    caches.sort_by(|a, b| b.1.allocs.cmp(&a.1.allocs).then(a.0.cmp(&b.0)));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<28} {:>12} {:>12} {:>14}",
        "CACHE", "ALLOCS", "FREES", "BYTES"
    );
    for (name, s) in caches {
        let _ = writeln!(
            out,
            "{:<28} {:>12} {:>12} {:>14}",
            name, s.allocs, s.frees, s.bytes_alloc
        );
    }
    let _ = writeln!(
        out,
        "\n{:>10} {:>12} {:>14} {:>14} {:>8}",
        "KMALLOC", "ALLOCS", "REQUESTED", "ALLOCATED", "WASTE%"
    );
    for (class, s) in w.kmalloc_classes.iter().filter(|(_, s)| s.allocs > 0) {
        let waste = if s.bytes_alloc > 0 {
            100.0 * (s.bytes_alloc.saturating_sub(s.bytes_req)) as f64 / s.bytes_alloc as f64
        } else {
            0.0
        };
        let _ = writeln!(
            out,
            "{:>10} {:>12} {:>14} {:>14} {:>7.1}%",
            class, s.allocs, s.bytes_req, s.bytes_alloc, waste
        );
    }
    out
}

/// The same as JSON.
pub fn slab_json(w: &AllocSample) -> String {
    let caches: Vec<_> = w
        .slab_caches
        .iter()
        .filter(|(_, s)| s.allocs + s.frees > 0)
        .map(|(name, s)| json!({"cache": name, "allocs": s.allocs, "frees": s.frees, "bytes_requested": s.bytes_req, "bytes_allocated": s.bytes_alloc}))
        .collect();
    let classes: Vec<_> = w
        .kmalloc_classes
        .iter()
        .filter(|(_, s)| s.allocs > 0)
        .map(|(c, s)| json!({"size_class": c, "allocs": s.allocs, "bytes_requested": s.bytes_req, "bytes_allocated": s.bytes_alloc, "waste_bytes": s.bytes_alloc.saturating_sub(s.bytes_req)}))
        .collect();
    serde_json::to_string_pretty(&json!({"caches": caches, "kmalloc": classes})).unwrap_or_default()
}

/// Allocations per order and migrate type, with free blocks per order.
pub fn buddy_table(w: &AllocSample, buddy: &[BuddyZone]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "allocations are estimates: the page_alloc probe runs part of the time, its counts scaled (see --probes)"
    );
    let _ = write!(out, "{:>5}", "ORDER");
    for name in MIGRATE_TYPE_NAMES.iter().take(5) {
        let _ = write!(out, " {name:>12}");
    }
    let _ = writeln!(out, " {:>14}", "FREE BLOCKS");
    for (order, row) in w.page_allocs.iter().enumerate() {
        let _ = write!(out, "{order:>5}");
        for v in row.iter().take(5) {
            let _ = write!(out, " {v:>12}");
        }
        let free: u64 = buddy.iter().filter_map(|z| z.free_blocks.get(order)).sum();
        let _ = writeln!(out, " {free:>14}");
    }
    out
}

/// The same as JSON.
pub fn buddy_json(w: &AllocSample, buddy: &[BuddyZone]) -> String {
    let orders: Vec<_> = w
        .page_allocs
        .iter()
        .enumerate()
        .map(|(order, row)| {
            let by_type: serde_json::Map<String, serde_json::Value> = row
                .iter()
                .enumerate()
                .map(|(m, v)| (MIGRATE_TYPE_NAMES.get(m).copied().unwrap_or("?").to_string(), json!(v)))
                .collect();
            let free: u64 = buddy.iter().filter_map(|z| z.free_blocks.get(order)).sum();
            json!({"order": order, "allocs": row.iter().sum::<u64>(), "by_migrate_type": by_type, "free_blocks": free})
        })
        .collect();
    serde_json::to_string_pretty(&json!({"orders": orders, "buddyinfo": buddy})).unwrap_or_default()
}
