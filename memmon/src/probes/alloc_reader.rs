//! Typed reads of the allocator maps: slab caches by name, kmalloc size
//! classes, and buddy allocations by order and migrate type.

use aya::maps::{HashMap, MapData, PerCpuArray};
use memmon_common::alloc::{AllocStats, MIGRATE_TYPES, PAGE_ALLOC_SLOTS, PAGE_ORDERS, SlabKey};

use super::ProbeSet;

/// The allocator maps as read now (cumulative since the probes attached).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AllocSample {
    /// Per slab cache name.
    pub slab_caches: Vec<(String, AllocStats)>,
    /// Per kmalloc size class (bytes).
    pub kmalloc_classes: Vec<(u64, AllocStats)>,
    /// Page allocations: [order][migrate type].
    pub page_allocs: Vec<Vec<u64>>,
}

impl AllocSample {
    /// `self - earlier` (caches/classes absent before count from zero).
    pub fn since(&self, earlier: &AllocSample) -> AllocSample {
        let sub = |a: &AllocStats, b: Option<&AllocStats>| {
            let b = b.copied().unwrap_or_default();
            AllocStats {
                allocs: a.allocs.saturating_sub(b.allocs),
                frees: a.frees.saturating_sub(b.frees),
                bytes_req: a.bytes_req.saturating_sub(b.bytes_req),
                bytes_alloc: a.bytes_alloc.saturating_sub(b.bytes_alloc),
            }
        };
        AllocSample {
            slab_caches: self
                .slab_caches
                .iter()
                .map(|(n, a)| {
                    (
                        n.clone(),
                        sub(
                            a,
                            earlier
                                .slab_caches
                                .iter()
                                .find(|(m, _)| m == n)
                                .map(|(_, s)| s),
                        ),
                    )
                })
                .collect(),
            kmalloc_classes: self
                .kmalloc_classes
                .iter()
                .map(|(c, a)| {
                    (
                        *c,
                        sub(
                            a,
                            earlier
                                .kmalloc_classes
                                .iter()
                                .find(|(d, _)| d == c)
                                .map(|(_, s)| s),
                        ),
                    )
                })
                .collect(),
            page_allocs: self
                .page_allocs
                .iter()
                .enumerate()
                .map(|(o, row)| {
                    row.iter()
                        .enumerate()
                        .map(|(m, v)| {
                            v.saturating_sub(
                                earlier
                                    .page_allocs
                                    .get(o)
                                    .and_then(|r| r.get(m))
                                    .copied()
                                    .unwrap_or(0),
                            )
                        })
                        .collect()
                })
                .collect(),
        }
    }
}

impl ProbeSet {
    /// The allocator maps, or None when none of those probes is attached.
    pub fn read_alloc(&self) -> Option<AllocSample> {
        if !["slab_alloc", "kmalloc", "page_alloc"]
            .iter()
            .any(|p| self.is_attached(p))
        {
            return None;
        }
        let mut out = AllocSample::default();
        if let Some(map) = self.ebpf.map("SLAB_CACHES")
            && let Ok(map) = HashMap::<&MapData, SlabKey, AllocStats>::try_from(map)
        {
            out.slab_caches = map
                .iter()
                .filter_map(Result::ok)
                .map(|(k, v)| (crate::model::comm_string(&k.name), v))
                .collect();
            out.slab_caches.sort_by(|a, b| a.0.cmp(&b.0));
        }
        if let Some(map) = self.ebpf.map("KMALLOC_CLASSES")
            && let Ok(map) = HashMap::<&MapData, u64, AllocStats>::try_from(map)
        {
            out.kmalloc_classes = map.iter().filter_map(Result::ok).collect();
            out.kmalloc_classes.sort_by_key(|(c, _)| *c);
        }
        out.page_allocs = vec![vec![0; MIGRATE_TYPES as usize]; PAGE_ORDERS as usize];
        if let Some(map) = self.ebpf.map("PAGE_ALLOCS")
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
