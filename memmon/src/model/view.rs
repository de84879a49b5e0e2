//! The flat per-process record every sink shows: identity, then one value
//! per catalog field ([`super::fields::PROCESS_FIELDS`]) and one rate per
//! rated counter. Its JSON form (keys from the catalog) is the same in
//! `/api/v1/snapshot`, `snapshot --json` and `top --batch --json`, and
//! `memmon top --connect` reads it back with [`ProcessView::from_json`].

use std::collections::BTreeMap;

use serde::{Serialize, ser::SerializeMap as _};
use serde_json::Value;

use super::{
    fields::{self, N_PROCESS, PROCESS_FIELDS, ProcessCtx},
    process::{Process, fault_counts},
};

/// Index of the field `key` in [`PROCESS_FIELDS`], at compile time (a
/// wrong key fails to build).
pub const fn field_index(key: &str) -> usize {
    let mut i = 0;
    while i < N_PROCESS {
        if str_eq(PROCESS_FIELDS[i].key, key) {
            return i;
        }
        i += 1;
    }
    panic!("no such per-process field")
}

/// String equality usable in `const` items (field and threshold lookups).
pub const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Field indexes the model and sinks use by name.
pub mod idx {
    use super::field_index;
    /// rss_bytes.
    pub const RSS: usize = field_index("rss_bytes");
    /// pss_bytes.
    pub const PSS: usize = field_index("pss_bytes");
    /// uss_bytes.
    pub const USS: usize = field_index("uss_bytes");
    /// swap_bytes.
    pub const SWAP: usize = field_index("swap_bytes");
    /// vm_bytes.
    pub const VM: usize = field_index("vm_bytes");
    /// faults.
    pub const FAULTS: usize = field_index("faults");
    /// minor_faults.
    pub const MINOR: usize = field_index("minor_faults");
    /// major_faults.
    pub const MAJOR: usize = field_index("major_faults");
    /// swap_out_pages.
    pub const SWAP_OUT: usize = field_index("swap_out_pages");
    /// oom_score.
    pub const OOM_SCORE: usize = field_index("oom_score");
}

/// Numbers, 8 bytes each: NaN stands for "not measured" (None), so 49
/// fields are 392 bytes instead of 784 (a row's rates, explain's history
/// points; a row's values are [`CompactSlots`]).
#[derive(Clone, Copy, Debug)]
pub struct Slots<const N: usize>([f64; N]);

impl<const N: usize> Slots<N> {
    /// Every slot unmeasured.
    pub const NONE: Self = Slots([f64::NAN; N]);

    /// Slot `i` (None: not measured, or out of range).
    pub fn get(&self, i: usize) -> Option<f64> {
        self.0.get(i).copied().filter(|v| !v.is_nan())
    }

    /// Sets slot `i` (a NaN is stored as not measured; out of range is
    /// ignored).
    pub fn set(&mut self, i: usize, v: Option<f64>) {
        if let Some(slot) = self.0.get_mut(i) {
            *slot = v.unwrap_or(f64::NAN);
        }
    }

    /// From one option per slot.
    pub fn from_options(values: [Option<f64>; N]) -> Self {
        const { assert!(N <= 128, "CompactSlots holds up to 128 slots") };
        Slots(values.map(|v| v.unwrap_or(f64::NAN)))
    }

    /// Every slot in order.
    pub fn iter(&self) -> impl Iterator<Item = Option<f64>> + '_ {
        (0..N).map(|i| self.get(i))
    }
}

/// A process row's numbers, only the measured ones stored: a bit per slot
/// says which are, and the values follow in slot order. An idle process
/// measures about half of the catalog (no probe counted anything for it),
/// so its row holds ~200 bytes of numbers instead of a slot per field
/// (10,000 rows are held at once). Up to 128 slots.
#[derive(Clone, Debug, Default)]
pub struct CompactSlots<const N: usize> {
    present: u128,
    values: Vec<f64>,
}

impl<const N: usize> CompactSlots<N> {
    /// Every slot unmeasured.
    pub const NONE: Self = CompactSlots {
        present: 0,
        values: Vec::new(),
    };

    /// Where slot `i`'s value sits among the stored ones.
    fn rank(&self, i: usize) -> usize {
        const { assert!(N <= 128, "CompactSlots holds up to 128 slots") };
        (self.present & ((1u128 << i) - 1)).count_ones() as usize
    }

    /// Slot `i` (None: not measured, or out of range).
    pub fn get(&self, i: usize) -> Option<f64> {
        if i >= N || self.present & (1 << i) == 0 {
            return None;
        }
        self.values.get(self.rank(i)).copied()
    }

    /// Sets slot `i` (a NaN is stored as not measured; out of range is
    /// ignored).
    pub fn set(&mut self, i: usize, v: Option<f64>) {
        if i >= N {
            return;
        }
        let at = self.rank(i);
        let held = self.present & (1 << i) != 0;
        match v.filter(|v| !v.is_nan()) {
            Some(v) if held => self.values[at] = v,
            Some(v) => {
                self.values.insert(at, v);
                self.present |= 1 << i;
            }
            None if held => {
                self.values.remove(at);
                self.present &= !(1 << i);
            }
            None => {}
        }
    }

    /// From one option per slot (stored in one allocation of the measured
    /// ones).
    pub fn from_options(values: [Option<f64>; N]) -> Self {
        let measured = values.iter().flatten().filter(|v| !v.is_nan()).count();
        let mut out = CompactSlots {
            present: 0,
            values: Vec::with_capacity(measured),
        };
        for (i, v) in values.into_iter().enumerate() {
            if let Some(v) = v.filter(|v| !v.is_nan()) {
                out.present |= 1 << i;
                out.values.push(v);
            }
        }
        out
    }

    /// Every slot in order.
    pub fn iter(&self) -> impl Iterator<Item = Option<f64>> + '_ {
        (0..N).map(|i| self.get(i))
    }
}

impl<const N: usize> PartialEq for CompactSlots<N> {
    /// Equal when the same slots are measured, with the same values.
    fn eq(&self, other: &Self) -> bool {
        self.present == other.present
            && self
                .values
                .iter()
                .zip(&other.values)
                .all(|(a, b)| a.to_bits() == b.to_bits())
    }
}

impl<const N: usize> Default for Slots<N> {
    fn default() -> Self {
        Self::NONE
    }
}

impl<const N: usize> PartialEq for Slots<N> {
    /// Equal when every slot is, two unmeasured slots included.
    fn eq(&self, other: &Self) -> bool {
        self.0
            .iter()
            .zip(other.0.iter())
            .all(|(a, b)| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()))
    }
}

/// True when a row's rates are what an unchanged process would get again:
/// 0 for every rated value it has (None where it has no value). Such a row
/// can be published again as it is.
pub fn rates_settled(v: &ProcessView) -> bool {
    fields::RATED
        .iter()
        .zip(v.rates.iter())
        .all(|(&i, rate)| match v.value(i) {
            Some(_) => rate == Some(0.0),
            None => rate.is_none(),
        })
}

/// One process's row.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessView {
    /// Process id.
    pub pid: u32,
    /// Command name.
    pub comm: String,
    /// Start time in clock ticks since boot (0 when unknown).
    pub start_time_ticks: u64,
    /// Parent pid, when known.
    pub ppid: Option<u32>,
    /// The process exited during the window.
    pub exited: bool,
    /// Memory cgroup path, when known.
    pub cgroup: Option<String>,
    /// Owner uid, when known.
    pub uid: Option<u32>,
    /// systemd unit (from the cgroup path), when any.
    pub unit: Option<String>,
    /// Container id (from the cgroup path), when any.
    pub container_id: Option<String>,
    /// Resident pages per NUMA node (4 KiB units), when read.
    pub numa_pages: Option<BTreeMap<u32, u64>>,
    /// One value per catalog field (None: not measured or not known).
    pub values: CompactSlots<N_PROCESS>,
    /// Per-second rates of the rated counters over the last pass, one per
    /// [`fields::RATED`] slot (None before a second reading); read and set
    /// them by field index with [`ProcessView::rate`] and
    /// [`ProcessView::set_rate`].
    pub rates: Slots<{ fields::N_RATED }>,
}

impl Default for ProcessView {
    fn default() -> Self {
        ProcessView {
            pid: 0,
            comm: String::new(),
            start_time_ticks: 0,
            ppid: None,
            exited: false,
            cgroup: None,
            uid: None,
            unit: None,
            container_id: None,
            numa_pages: None,
            values: CompactSlots::NONE,
            rates: Slots::NONE,
        }
    }
}

impl ProcessView {
    /// The window's view of `p`; `fault_probes`: fault counts come from the
    /// per-fault probes (else from the task counters); fields without a
    /// live source are None.
    pub fn from_process(p: &Process, fault_probes: bool, live: &fields::LiveFields) -> Self {
        let w = p.window();
        let (minor, major) =
            fault_counts(&w, p.task.map(|t| t.since(p.task_baseline)), fault_probes);
        let ctx = ProcessCtx { p, w, minor, major };
        ProcessView {
            pid: p.key.pid,
            comm: p.comm.clone(),
            start_time_ticks: p.key.start_time_ticks,
            ppid: p.ppid,
            exited: p.exited,
            cgroup: p.cgroup.clone(),
            uid: p.uid,
            unit: p.unit.clone(),
            container_id: p.container_id.clone(),
            numa_pages: p
                .numa
                .as_ref()
                .filter(|_| !p.exited && live.numa_maps)
                .map(|n| n.pages.clone()),
            values: CompactSlots::from_options(fields::read_process(&ctx, live)),
            rates: Slots::NONE,
        }
    }

    /// The value of field `i`.
    pub fn value(&self, i: usize) -> Option<f64> {
        self.values.get(i)
    }

    /// The value of field `i` as a whole number.
    pub fn whole(&self, i: usize) -> Option<u64> {
        self.value(i).map(|v| v as u64)
    }

    /// The rate of field `i`.
    pub fn rate(&self, i: usize) -> Option<f64> {
        let slot = fields::RATE_SLOT.get(i)?;
        self.rates.get(*slot)
    }

    /// Sets the rate of field `i` (ignored for a field without a rate).
    pub fn set_rate(&mut self, i: usize, rate: Option<f64>) {
        if let Some(slot) = fields::RATE_SLOT.get(i) {
            self.rates.set(*slot, rate);
        }
    }

    /// The value (or rate) by JSON key, e.g. `rss_bytes` or
    /// `minor_faults_per_second`.
    pub fn by_key(&self, key: &str) -> Option<f64> {
        if let Some(base) = key.strip_suffix("_per_second") {
            return fields::process_field(base).and_then(|i| self.rate(i));
        }
        fields::process_field(key).and_then(|i| self.value(i))
    }

    /// A kernel thread: no address space.
    pub fn is_kernel_thread(&self) -> bool {
        self.value(idx::VM) == Some(0.0)
    }

    /// Reads a row back from its JSON form (`memmon top --connect`); None
    /// when it has no pid.
    pub fn from_json(v: &Value) -> Option<ProcessView> {
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let mut out = ProcessView {
            pid: u32::try_from(v.get("pid")?.as_u64()?).ok()?,
            comm: text("comm").unwrap_or_default(),
            start_time_ticks: v
                .get("start_time_ticks")
                .and_then(Value::as_u64)
                .unwrap_or(0),
            ppid: v
                .get("ppid")
                .and_then(Value::as_u64)
                .and_then(|p| u32::try_from(p).ok()),
            exited: v.get("exited").and_then(Value::as_bool).unwrap_or(false),
            cgroup: text("cgroup"),
            uid: v
                .get("uid")
                .and_then(Value::as_u64)
                .and_then(|u| u32::try_from(u).ok()),
            unit: text("unit"),
            container_id: text("container_id"),
            numa_pages: v.get("numa_pages").and_then(Value::as_object).map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.parse().ok()?, v.as_u64()?)))
                    .collect()
            }),
            ..Default::default()
        };
        for (i, f) in PROCESS_FIELDS.iter().enumerate() {
            out.values.set(i, v.get(f.key).and_then(Value::as_f64));
            if f.rate {
                out.set_rate(i, v.get(f.rate_key()).and_then(Value::as_f64));
            }
        }
        Some(out)
    }
}

/// A number for JSON: whole units as integers, others as floats, unknown
/// as null.
pub fn json_number(v: Option<f64>, integral: bool) -> Value {
    match v {
        Some(x) if integral && x >= 0.0 && x.fract() == 0.0 && x < 1.8e19 => Value::from(x as u64),
        Some(x) if integral && x < 0.0 && x.fract() == 0.0 => Value::from(x as i64),
        Some(x) => serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number),
        None => Value::Null,
    }
}

impl Serialize for ProcessView {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("pid", &self.pid)?;
        m.serialize_entry("comm", &self.comm)?;
        m.serialize_entry("start_time_ticks", &self.start_time_ticks)?;
        m.serialize_entry("ppid", &self.ppid)?;
        m.serialize_entry("exited", &self.exited)?;
        m.serialize_entry("cgroup", &self.cgroup)?;
        m.serialize_entry("uid", &self.uid)?;
        m.serialize_entry("unit", &self.unit)?;
        m.serialize_entry("container_id", &self.container_id)?;
        m.serialize_entry("numa_pages", &self.numa_pages)?;
        for (i, f) in PROCESS_FIELDS.iter().enumerate() {
            m.serialize_entry(f.key, &json_number(self.value(i), f.unit.integral()))?;
            if f.rate {
                m.serialize_entry(&f.rate_key(), &json_number(self.rate(i), false))?;
            }
        }
        m.end()
    }
}

/// Every key a process object carries in JSON, in order.
pub fn json_keys() -> Vec<String> {
    let mut keys: Vec<String> = [
        "pid",
        "comm",
        "start_time_ticks",
        "ppid",
        "exited",
        "cgroup",
        "uid",
        "unit",
        "container_id",
        "numa_pages",
    ]
    .map(String::from)
    .to_vec();
    for f in PROCESS_FIELDS {
        keys.push(f.key.to_string());
        if f.rate {
            keys.push(f.rate_key());
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_counter_reaches_a_catalog_field() {
        // A counter the probes fill but no field reads would never be
        // shown: set each slot of ProcCounters alone and see a field move.
        let key = super::super::ProcessKey {
            pid: 1,
            start_time_ticks: 1,
        };
        // Every probe a field names attached, every /proc file present.
        let probes = PROCESS_FIELDS
            .iter()
            .flat_map(|f| f.sources)
            .filter_map(|s| match s {
                crate::sources::Source::Probe(p) => Some(p.to_string()),
                _ => None,
            })
            .collect();
        let everything = crate::sources::Live {
            probes,
            task_iter: true,
            ..Default::default()
        };
        let live = fields::LiveFields::new(&everything);
        let base = ProcessView::from_process(&Process::new(key, "x".into()), true, &live);
        for slot in 0..memmon_common::ProcCounters::LEN {
            let mut p = Process::new(key, "x".into());
            p.counters.as_mut_slice()[slot] = 1_000_000;
            let v = ProcessView::from_process(&p, true, &live);
            assert_ne!(
                v.values, base.values,
                "ProcCounters slot {slot} is read by no field of model/fields.rs"
            );
        }
    }

    /// Compact slots hold only what was measured, in any order of sets,
    /// and read back as a slot per field would.
    #[test]
    fn compact_slots_read_back_what_was_set() {
        let mut c = CompactSlots::<100>::NONE;
        let mut dense = [None; 100];
        for (i, v) in [(99, 1.5), (3, 2.0), (64, 0.0), (50, -7.0), (3, 4.0)] {
            c.set(i, Some(v));
            dense[i] = Some(v);
        }
        c.set(50, None);
        dense[50] = None;
        c.set(7, Some(f64::NAN));
        c.set(100, Some(1.0));
        assert_eq!(c.iter().collect::<Vec<_>>(), dense.to_vec());
        assert_eq!(c.values.len(), 3, "only the measured are stored");
        assert_eq!(c, CompactSlots::from_options(dense));
        assert_ne!(c, CompactSlots::NONE);
    }

    #[test]
    fn json_round_trips_and_keeps_unknown_null() {
        let mut v = ProcessView {
            pid: 7,
            comm: "a\"b".into(),
            ..Default::default()
        };
        v.values.set(idx::RSS, Some(4096.0));
        v.set_rate(idx::MINOR, Some(2.5));
        let j = serde_json::to_value(&v).expect("serializes");
        assert_eq!(j["rss_bytes"].as_u64(), Some(4096));
        assert!(j["pss_bytes"].is_null());
        assert_eq!(j["minor_faults_per_second"].as_f64(), Some(2.5));
        let keys: Vec<String> = j.as_object().expect("object").keys().cloned().collect();
        let mut want = json_keys();
        let mut got = keys.clone();
        want.sort();
        got.sort();
        assert_eq!(got, want);
        assert_eq!(ProcessView::from_json(&j), Some(v));
    }
}
