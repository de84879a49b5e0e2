//! Typed ids of the per-cgroup fields sinks read by name ([`cg::USAGE`],
//! ...): each is found in [`CGROUP_FIELDS`] at compile time, so a
//! misspelt key or label fails the build instead of showing `-`.

use super::{
    fields::{CGROUP_FIELDS, CgroupReader, Field, N_CGROUP},
    published::CgroupView,
    view::str_eq,
};

/// A per-cgroup field, by its place in [`CGROUP_FIELDS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CgroupId(usize);

impl CgroupId {
    /// The field `key` (with label value `label`, for labeled ones), found
    /// at compile time.
    pub const fn of(key: &str, label: Option<&str>) -> CgroupId {
        let mut i = 0;
        while i < N_CGROUP {
            let f = &CGROUP_FIELDS[i];
            let label_matches = match (f.label, label) {
                (Some((_, have)), Some(want)) => str_eq(have, want),
                (None, None) => true,
                _ => false,
            };
            if label_matches && str_eq(f.key, key) {
                return CgroupId(i);
            }
            i += 1;
        }
        panic!("no such per-cgroup field")
    }

    /// Its place in [`CGROUP_FIELDS`] (and in `CgroupView::values`).
    pub const fn index(self) -> usize {
        self.0
    }

    /// The catalog entry.
    pub fn field(self) -> &'static Field<CgroupReader> {
        &CGROUP_FIELDS[self.0]
    }

    /// Its value in a cgroup of `/api/v1/snapshot` (a reader of the JSON,
    /// such as `top --connect`): `cgroup[key]`, or `cgroup[key][label]`.
    pub fn in_json(self, cgroup: &serde_json::Value) -> Option<f64> {
        let f = self.field();
        let v = cgroup.get(f.key)?;
        match f.label {
            Some((_, label)) => v.get(label)?.as_f64(),
            None => v.as_f64(),
        }
    }
}

impl CgroupView {
    /// The value of field `id` (None: not measured).
    pub fn value(&self, id: CgroupId) -> Option<f64> {
        self.values[id.0]
    }
}

/// The ids sinks read by name.
pub mod cg {
    use super::CgroupId;

    /// memory_usage_bytes.
    pub const USAGE: CgroupId = CgroupId::of("memory_usage_bytes", None);
    /// memory_limit_bytes{limit="max"}.
    pub const LIMIT_MAX: CgroupId = CgroupId::of("memory_limit_bytes", Some("max"));
    /// memory_limit_bytes{limit="effective_max"}: its own or an ancestor's.
    pub const LIMIT_EFFECTIVE_MAX: CgroupId =
        CgroupId::of("memory_limit_bytes", Some("effective_max"));
    /// memory_working_set_bytes.
    pub const WORKING_SET: CgroupId = CgroupId::of("memory_working_set_bytes", None);
    /// memory_unreclaimable_bytes.
    pub const UNRECLAIMABLE: CgroupId = CgroupId::of("memory_unreclaimable_bytes", None);
    /// memory_swap_bytes.
    pub const SWAP: CgroupId = CgroupId::of("memory_swap_bytes", None);
    /// memory_events{event="oom_kill"}.
    pub const OOM_KILLS: CgroupId = CgroupId::of("memory_events", Some("oom_kill"));
    /// oom_forecast_seconds.
    pub const OOM_FORECAST: CgroupId = CgroupId::of("oom_forecast_seconds", None);
    /// processes.
    pub const PROCESSES: CgroupId = CgroupId::of("processes", None);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_their_fields_and_read_the_json_back() {
        assert_eq!(cg::USAGE.field().key, "memory_usage_bytes");
        assert_eq!(cg::OOM_KILLS.field().label, Some(("event", "oom_kill")));
        let mut values = [None; N_CGROUP];
        values[cg::USAGE.0] = Some(4096.0);
        values[cg::LIMIT_EFFECTIVE_MAX.0] = Some(8192.0);
        let view = CgroupView {
            cgroup: "/a".into(),
            names: Default::default(),
            gone: false,
            oom_candidate: None,
            values,
        };
        assert_eq!(view.value(cg::USAGE), Some(4096.0));
        assert_eq!(view.value(cg::SWAP), None);
        let json = serde_json::to_value(&view).expect("serializes");
        assert_eq!(cg::USAGE.in_json(&json), Some(4096.0));
        assert_eq!(cg::LIMIT_EFFECTIVE_MAX.in_json(&json), Some(8192.0));
        assert_eq!(cg::LIMIT_MAX.in_json(&json), None);
    }
}
