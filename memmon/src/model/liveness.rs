//! Which sources are live as the model knows it: the attached probes, the
//! /proc files this kernel has, whether the task iterator or the memory
//! cgroups' files are read, and every source found missing (each with what
//! goes unreported).

use std::collections::BTreeSet;

use super::Model;
use crate::sources::{Live, ProcFile};

impl Model {
    /// Which sources are live: attached probes, and the /proc files this
    /// kernel has (numa_maps only where there are two or more nodes).
    pub fn live(&self) -> Live {
        let mut missing_files = self.missing_files.clone();
        if self
            .system
            .as_ref()
            .is_none_or(|s| s.sample.nodes.len() < 2)
        {
            missing_files.insert(ProcFile::NumaMaps);
        }
        if !self.cgroupfs_live {
            missing_files.insert(ProcFile::CgroupMemory);
        }
        if self.task_iter {
            // Not read: the iterator gives the same values.
            missing_files.insert(ProcFile::Stat);
        }
        Live {
            probes: self
                .probes
                .iter()
                .filter(|p| p.is_attached())
                .map(|p| p.name.clone())
                .collect(),
            missing_files,
            task_iter: self.task_iter,
        }
    }

    /// Sources found missing so far, each with what goes unreported.
    pub fn missing_sources(&self) -> &BTreeSet<String> {
        &self.missing_sources
    }
}
