//! Typed reads of the allocator maps: slab caches by name, kmalloc size
//! classes, and buddy allocations by order and migrate type.

use aya::maps::{HashMap, MapData, PerCpuArray};
use memmon_common::{
    alloc::{AllocStats, MIGRATE_TYPES, PAGE_ALLOC_SLOTS, PAGE_ORDERS, SlabKey},
    names::probe,
};

use super::ProbeSet;
pub use crate::sample::alloc::AllocSample;

impl ProbeSet {
    /// The allocator maps, or None when none of those probes is attached.
    pub fn read_alloc(&self) -> Option<AllocSample> {
        if ![probe::SLAB_ALLOC, probe::KMALLOC, probe::PAGE_ALLOC]
            .iter()
            .any(|p| self.is_attached(p))
        {
            return None;
        }
        let mut out = AllocSample::default();
        if let Some(map) = self.ebpf.map(memmon_common::names::SLAB_CACHES)
            && let Ok(map) = HashMap::<&MapData, SlabKey, AllocStats>::try_from(map)
        {
            out.slab_caches = map
                .iter()
                .filter_map(Result::ok)
                .map(|(k, v)| (crate::sample::comm_string(&k.name), v))
                .collect();
            out.slab_caches.sort_by(|a, b| a.0.cmp(&b.0));
        }
        if let Some(map) = self.ebpf.map(memmon_common::names::KMALLOC_CLASSES)
            && let Ok(map) = HashMap::<&MapData, u64, AllocStats>::try_from(map)
        {
            out.kmalloc_classes = map.iter().filter_map(Result::ok).collect();
            out.kmalloc_classes.sort_by_key(|(c, _)| *c);
        }
        out.page_allocs = vec![vec![0; MIGRATE_TYPES as usize]; PAGE_ORDERS as usize];
        if let Some(map) = self.ebpf.map(memmon_common::names::PAGE_ALLOCS)
            && let Ok(arr) = PerCpuArray::<&MapData, u64>::try_from(map)
        {
            for slot in 0..PAGE_ALLOC_SLOTS {
                if let Ok(values) = arr.get(&slot, 0) {
                    let (o, m) = (
                        (slot / MIGRATE_TYPES) as usize,
                        (slot % MIGRATE_TYPES) as usize,
                    );
                    out.page_allocs[o][m] = values.iter().sum();
                }
            }
        }
        Some(out)
    }
}
