//! The allocator maps as read now: slab caches, kmalloc size classes,
//! buddy allocations by order and migrate type.

use memmon_common::alloc::AllocStats;

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
