//! Per-cgroup families: `memmon_cgroup_<field>[_total]` for the admitted
//! cgroups (the rest summed as `cgroup="other"`), and `memmon_cgroup_info`
//! naming what each path carries.

use std::collections::{HashMap, HashSet};

use prometheus::proto::{MetricFamily, MetricType};

use super::encode::{RenderSettings, family, metric_type, sample};
use crate::{
    model::{
        fields::{CGROUP_FIELDS, N_CGROUP},
        published::Published,
    },
    sources::{ProcFile, Source},
};

/// Cgroups admitted to their own series (grows up to the cap; a cgroup
/// keeps its series as long as the publication holds it, so no cgroup
/// series ever moves into `other`; one the model released, gone for some
/// minutes, leaves room for a new one).
#[derive(Debug, Default)]
pub struct CgroupAdmission {
    admitted: HashSet<String>,
}

impl CgroupAdmission {
    /// Frees the places of cgroups `p` no longer holds (released).
    pub(super) fn release_absent(&mut self, p: &Published) {
        if self.admitted.len() <= p.cgroups.len()
            && p.cgroups.iter().all(|c| self.admitted.contains(&c.cgroup))
        {
            return;
        }
        let present: HashSet<&str> = p.cgroups.iter().map(|c| c.cgroup.as_str()).collect();
        self.admitted.retain(|c| present.contains(c.as_str()));
    }

    pub(super) fn label<'a>(&mut self, cgroup: &'a str, cap: usize) -> &'a str {
        if self.admitted.contains(cgroup) {
            return cgroup;
        }
        if self.admitted.len() < cap {
            self.admitted.insert(cgroup.to_string());
            return cgroup;
        }
        "other"
    }
}

/// The cgroup families and the info series.
pub(super) fn families(
    p: &Published,
    s: &RenderSettings,
    admission: &mut CgroupAdmission,
    out: &mut Vec<MetricFamily>,
) {
    // Cgroups: admitted ones by name, the rest summed as "other" (their
    // process rollups only: a sum of other cgroups' limits means nothing).
    let own_files = |f: &crate::model::fields::Field<_>| {
        f.sources.contains(&Source::Proc(ProcFile::CgroupMemory))
    };
    admission.release_absent(p);
    let mut by_label: HashMap<String, [Option<f64>; N_CGROUP]> = HashMap::new();
    for cg in &p.cgroups {
        let label = admission.label(&cg.cgroup, s.max_cgroups).to_string();
        let other = label == "other";
        let t = by_label.entry(label).or_insert([None; N_CGROUP]);
        for ((a, b), f) in t.iter_mut().zip(cg.values).zip(CGROUP_FIELDS) {
            if other && own_files(f) {
                continue;
            }
            *a = match (*a, b) {
                (Some(x), Some(y)) => Some(x + y),
                (x, y) => x.or(y),
            };
        }
    }
    let mut labels: Vec<&String> = by_label.keys().collect();
    labels.sort();
    // Fields that share a key (labeled ones) make one family.
    let mut cgroup_families: Vec<MetricFamily> = Vec::new();
    for (i, f) in CGROUP_FIELDS.iter().enumerate().filter(|(_, f)| f.metric) {
        let ty = metric_type(f.kind);
        let name = f.metric_name("cgroup");
        let pos = match cgroup_families.iter().position(|m| m.name() == name) {
            Some(pos) => pos,
            None => {
                cgroup_families.push(family(&name, f.help, ty));
                cgroup_families.len() - 1
            }
        };
        for l in &labels {
            if let Some(value) = by_label[*l][i] {
                let mut pairs = vec![("cgroup", l.as_str())];
                if let Some(extra) = f.label {
                    pairs.push(extra);
                }
                cgroup_families[pos]
                    .mut_metric()
                    .push(sample(&pairs, ty, value));
            }
        }
    }
    out.extend(cgroup_families);
    // What each admitted cgroup's path names (systemd unit, pod, container,
    // QoS class), to join on `cgroup`; one series per cgroup, so bounded by
    // max_cgroups as the others are.
    let mut info = family(
        "memmon_cgroup_info",
        "Names a cgroup path carries (systemd unit; under kubepods pod_uid, container_id, qos), always 1; absent when it names none.",
        MetricType::GAUGE,
    );
    for cg in &p.cgroups {
        let n = &cg.names;
        if admission.label(&cg.cgroup, s.max_cgroups) == "other"
            || (n.unit.is_none() && n.pod_uid.is_none() && n.container_id.is_none())
        {
            continue;
        }
        let mut pairs = vec![("cgroup", cg.cgroup.as_str())];
        for (k, v) in [
            ("unit", n.unit.as_deref()),
            ("pod_uid", n.pod_uid.as_deref()),
            ("container_id", n.container_id.as_deref()),
            ("qos", n.qos.map(|q| q.as_str())),
        ] {
            if let Some(v) = v {
                pairs.push((k, v));
            }
        }
        info.mut_metric()
            .push(sample(&pairs, MetricType::GAUGE, 1.0));
    }
    out.push(info);
}
