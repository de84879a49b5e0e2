//! The system field catalog: every system-wide number memmon reports under
//! a kernel name — /proc/meminfo fields, /proc/vmstat counters, per-node
//! numastat counters and node meminfo — declared once, with where it is
//! read, the `/metrics` family it joins and whether the model keeps its
//! per-second rate (the system forecast's gauges are listed beside the
//! forecast, `system::FORECAST_FIELDS`). `/metrics`, the
//! model's `rates`, `snapshot --system` and `memmon top`'s header derive
//! from it, and reach a field by its typed id ([`sys::MEM_TOTAL`]), never
//! by its name: a misspelt id does not build.
//!
//! Adding a system field: one entry in [`SYSTEM_FIELDS`] (and an id in
//! [`sys`] if code reads it by name).

use std::collections::BTreeMap;

use super::{fields::Kind, view::str_eq};
use crate::sample::system::SystemSample;

/// Where a system field is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SystemSource {
    /// /proc/meminfo (bytes; counts kept as they are).
    Meminfo,
    /// /proc/vmstat.
    Vmstat,
    /// A node's numastat (`/sys/devices/system/node/nodeN/numastat`).
    Numastat,
    /// A node's meminfo (bytes).
    NodeMeminfo,
}

impl SystemSource {
    /// The object `/api/v1/snapshot`'s `system` holds these values in
    /// (per node: under `nodes`).
    pub fn json_key(self) -> &'static str {
        match self {
            SystemSource::Meminfo => "meminfo",
            SystemSource::Vmstat => "vmstat",
            SystemSource::Numastat | SystemSource::NodeMeminfo => "nodes",
        }
    }

    /// Per NUMA node (a `node` label).
    pub fn per_node(self) -> bool {
        matches!(self, SystemSource::Numastat | SystemSource::NodeMeminfo)
    }
}

/// A `/metrics` family system fields join.
#[derive(Debug, PartialEq)]
pub struct Family {
    /// Metric name.
    pub name: &'static str,
    /// HELP text.
    pub help: &'static str,
    /// Counter or gauge.
    pub kind: Kind,
    /// The label that carries the field's name (None: one field only).
    pub label: Option<&'static str>,
}

/// `memmon_system_memory_bytes{field}`.
pub const MEMINFO_BYTES: Family = Family {
    name: "memmon_system_memory_bytes",
    help: "System memory by /proc/meminfo field.",
    kind: Kind::Gauge,
    label: Some("field"),
};
/// `memmon_system_vmstat_total{counter}`.
pub const VMSTAT_TOTAL: Family = Family {
    name: "memmon_system_vmstat_total",
    help: "System memory counters from /proc/vmstat (faults, swap, OOM kills, migration, THP, reclaim), by counter.",
    kind: Kind::Counter,
    label: Some("counter"),
};
/// `memmon_node_numa_events_total{node,counter}`.
pub const NUMA_EVENTS: Family = Family {
    name: "memmon_node_numa_events_total",
    help: "Per-node numastat counters.",
    kind: Kind::Counter,
    label: Some("counter"),
};
/// `memmon_node_memory_free_bytes{node}`.
pub const NODE_FREE: Family = Family {
    name: "memmon_node_memory_free_bytes",
    help: "Free memory per NUMA node.",
    kind: Kind::Gauge,
    label: None,
};

/// One system field.
#[derive(Debug)]
pub struct SystemField {
    /// The kernel's name (meminfo field, vmstat or numastat counter).
    pub name: &'static str,
    /// Where it is read.
    pub source: SystemSource,
    /// The `/metrics` family it joins (None: not exported).
    pub family: Option<&'static Family>,
    /// The model keeps its per-second rate (`system.rates`).
    pub rate: bool,
}

const fn meminfo(name: &'static str) -> SystemField {
    SystemField {
        name,
        source: SystemSource::Meminfo,
        family: Some(&MEMINFO_BYTES),
        rate: false,
    }
}

const fn vmstat(name: &'static str) -> SystemField {
    SystemField {
        name,
        source: SystemSource::Vmstat,
        family: Some(&VMSTAT_TOTAL),
        rate: true,
    }
}

const fn numastat(name: &'static str) -> SystemField {
    SystemField {
        name,
        source: SystemSource::Numastat,
        family: Some(&NUMA_EVENTS),
        rate: false,
    }
}

/// Every system field, in export order.
pub const SYSTEM_FIELDS: &[SystemField] = &[
    meminfo("MemTotal"),
    meminfo("MemFree"),
    meminfo("MemAvailable"),
    meminfo("Buffers"),
    meminfo("Cached"),
    meminfo("SwapTotal"),
    meminfo("SwapFree"),
    meminfo("AnonPages"),
    meminfo("Shmem"),
    meminfo("Slab"),
    meminfo("SReclaimable"),
    meminfo("SUnreclaim"),
    meminfo("PageTables"),
    meminfo("AnonHugePages"),
    meminfo("Hugetlb"),
    meminfo("Dirty"),
    meminfo("Writeback"),
    vmstat("pgfault"),
    vmstat("pgmajfault"),
    vmstat("pswpin"),
    vmstat("pswpout"),
    vmstat("oom_kill"),
    vmstat("pgmigrate_success"),
    vmstat("numa_hit"),
    vmstat("numa_miss"),
    vmstat("numa_foreign"),
    vmstat("numa_local"),
    vmstat("numa_other"),
    vmstat("numa_pages_migrated"),
    vmstat("thp_fault_alloc"),
    vmstat("thp_fault_fallback"),
    vmstat("pgscan_direct"),
    vmstat("pgsteal_direct"),
    vmstat("allocstall_normal"),
    vmstat("allocstall_movable"),
    numastat("numa_hit"),
    numastat("numa_miss"),
    numastat("numa_foreign"),
    numastat("interleave_hit"),
    numastat("local_node"),
    numastat("other_node"),
    SystemField {
        name: "MemFree",
        source: SystemSource::NodeMeminfo,
        family: Some(&NODE_FREE),
        rate: false,
    },
];

/// A system field, by its place in [`SYSTEM_FIELDS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SystemId(usize);

impl SystemId {
    /// The field `name` of `source`, found at compile time (a name not in
    /// the catalog fails the build).
    pub const fn of(source: SystemSource, name: &str) -> SystemId {
        let mut i = 0;
        while i < SYSTEM_FIELDS.len() {
            let f = &SYSTEM_FIELDS[i];
            if f.source as u8 == source as u8 && str_eq(f.name, name) {
                return SystemId(i);
            }
            i += 1;
        }
        panic!("no such system field")
    }

    /// Every field's id, in catalog order.
    pub fn all() -> impl Iterator<Item = SystemId> {
        (0..SYSTEM_FIELDS.len()).map(SystemId)
    }

    /// The catalog entry.
    pub fn field(self) -> &'static SystemField {
        &SYSTEM_FIELDS[self.0]
    }

    /// The kernel's name.
    pub fn name(self) -> &'static str {
        self.field().name
    }

    /// Its value in a per-machine reading (None for per-node fields, or
    /// when the kernel does not have it).
    pub fn in_sample(self, sample: &SystemSample) -> Option<u64> {
        match self.field().source {
            SystemSource::Meminfo => sample.meminfo.get(self.name()).copied(),
            SystemSource::Vmstat => sample.vmstat.get(self.name()).copied(),
            SystemSource::Numastat | SystemSource::NodeMeminfo => None,
        }
    }

    /// Its value in a node's reading (per-node fields).
    pub fn in_node(self, node: &BTreeMap<String, u64>) -> Option<u64> {
        node.get(self.name()).copied()
    }

    /// Its value in `/api/v1/snapshot`'s `system` object (per-machine
    /// fields; a reader of the JSON, such as `top --connect`).
    pub fn in_json(self, system: &serde_json::Value) -> Option<f64> {
        system
            .get(self.field().source.json_key())?
            .get(self.name())?
            .as_f64()
    }

    /// Its rate in `/api/v1/snapshot`'s `system` object.
    pub fn rate_in_json(self, system: &serde_json::Value) -> Option<f64> {
        system.get("rates")?.get(self.name())?.as_f64()
    }
}

/// The ids code reads by name.
pub mod sys {
    use super::{SystemId, SystemSource::*};

    /// meminfo MemTotal.
    pub const MEM_TOTAL: SystemId = SystemId::of(Meminfo, "MemTotal");
    /// meminfo MemFree.
    pub const MEM_FREE: SystemId = SystemId::of(Meminfo, "MemFree");
    /// meminfo MemAvailable.
    pub const MEM_AVAILABLE: SystemId = SystemId::of(Meminfo, "MemAvailable");
    /// meminfo Buffers.
    pub const BUFFERS: SystemId = SystemId::of(Meminfo, "Buffers");
    /// meminfo Cached.
    pub const CACHED: SystemId = SystemId::of(Meminfo, "Cached");
    /// meminfo SwapTotal.
    pub const SWAP_TOTAL: SystemId = SystemId::of(Meminfo, "SwapTotal");
    /// meminfo SwapFree.
    pub const SWAP_FREE: SystemId = SystemId::of(Meminfo, "SwapFree");
    /// meminfo Slab.
    pub const SLAB: SystemId = SystemId::of(Meminfo, "Slab");
    /// meminfo SReclaimable.
    pub const S_RECLAIMABLE: SystemId = SystemId::of(Meminfo, "SReclaimable");
    /// meminfo SUnreclaim.
    pub const S_UNRECLAIM: SystemId = SystemId::of(Meminfo, "SUnreclaim");
    /// meminfo AnonHugePages.
    pub const ANON_HUGE_PAGES: SystemId = SystemId::of(Meminfo, "AnonHugePages");
    /// meminfo Hugetlb.
    pub const HUGETLB: SystemId = SystemId::of(Meminfo, "Hugetlb");
    /// vmstat pgfault.
    pub const PGFAULT: SystemId = SystemId::of(Vmstat, "pgfault");
    /// vmstat pgmajfault.
    pub const PGMAJFAULT: SystemId = SystemId::of(Vmstat, "pgmajfault");
    /// vmstat pswpin.
    pub const PSWPIN: SystemId = SystemId::of(Vmstat, "pswpin");
    /// vmstat pswpout.
    pub const PSWPOUT: SystemId = SystemId::of(Vmstat, "pswpout");
    /// A node's numastat numa_hit.
    pub const NODE_NUMA_HIT: SystemId = SystemId::of(Numastat, "numa_hit");
    /// A node's numastat numa_miss.
    pub const NODE_NUMA_MISS: SystemId = SystemId::of(Numastat, "numa_miss");
    /// A node's numastat numa_foreign.
    pub const NODE_NUMA_FOREIGN: SystemId = SystemId::of(Numastat, "numa_foreign");
    /// A node's numastat local_node.
    pub const NODE_LOCAL: SystemId = SystemId::of(Numastat, "local_node");
    /// A node's numastat other_node.
    pub const NODE_OTHER: SystemId = SystemId::of(Numastat, "other_node");
    /// A node's free memory.
    pub const NODE_MEM_FREE: SystemId = SystemId::of(NodeMeminfo, "MemFree");
}

/// The vmstat counters whose rates the model keeps.
pub fn rated() -> impl Iterator<Item = &'static SystemField> {
    SYSTEM_FIELDS
        .iter()
        .filter(|f| f.rate && f.source == SystemSource::Vmstat)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::system::SystemView;

    #[test]
    fn names_are_unique_per_source_and_one_field_families_hold_one() {
        for (i, a) in SYSTEM_FIELDS.iter().enumerate() {
            for b in &SYSTEM_FIELDS[i + 1..] {
                assert!(
                    !(a.source == b.source && a.name == b.name),
                    "{:?} {} twice",
                    a.source,
                    a.name
                );
            }
            if let Some(f) = a.family.filter(|f| f.label.is_none()) {
                let n = SYSTEM_FIELDS.iter().filter(|b| b.family == Some(f)).count();
                assert_eq!(n, 1, "{} has no label for its fields", f.name);
            }
        }
        assert_eq!(sys::PGFAULT.name(), "pgfault");
        assert_eq!(sys::NODE_MEM_FREE.field().source, SystemSource::NodeMeminfo);
    }

    #[test]
    fn json_readers_find_what_the_view_serializes() {
        let mut sample = crate::sample::system::SystemSample::default();
        sample.meminfo.insert("MemTotal".into(), 1000);
        sample.vmstat.insert("pgfault".into(), 7);
        let v = SystemView::next(None, sample, std::time::Instant::now());
        let json = serde_json::to_value(&v).expect("serializes");
        assert_eq!(v.value(sys::MEM_TOTAL), Some(1000));
        assert_eq!(sys::MEM_TOTAL.in_json(&json), Some(1000.0));
        assert_eq!(sys::PGFAULT.in_json(&json), Some(7.0));
        assert_eq!(sys::MEM_FREE.in_json(&json), None);
    }
}
