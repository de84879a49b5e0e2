//! The `iter/task` probe: whether this kernel lets memmon walk every task
//! in one read of a BPF task iterator (the way to 10,000 processes without
//! 10,000 preads of /proc/PID/stat). Loaded once at start, run once, and
//! unloaded; /proc stays the source of per-process counters either way.

use std::io::Read as _;

use aya::{Btf, programs::Iter};

use super::ProbeSet;

/// The iterator program in the object.
const PROGRAM: &str = "task_iter";

impl ProbeSet {
    /// Loads, runs and unloads the task iterator: the number of tasks it
    /// walked, or why the kernel refused it.
    pub fn probe_task_iter(&mut self) -> Result<usize, String> {
        let btf = Btf::from_sys_fs().map_err(|e| format!("no kernel BTF: {e}"))?;
        let program: &mut Iter = self
            .ebpf
            .program_mut(PROGRAM)
            .ok_or_else(|| format!("{PROGRAM} is not in the object"))?
            .try_into()
            .map_err(|e| format!("{e}"))?;
        program
            .load("task", &btf)
            .map_err(|e| format!("load: {}", super::loader::error_chain(&e)))?;
        let result = (|| {
            let id = program.attach().map_err(|e| format!("attach: {e}"))?;
            let link = program.take_link(id).map_err(|e| format!("link: {e}"))?;
            let mut file = link.into_file().map_err(|e| format!("open: {e}"))?;
            let mut buf = Vec::new();
            file.read_to_end(&mut buf)
                .map_err(|e| format!("read: {e}"))?;
            Ok(buf.len() / 8)
        })();
        let _ = program.unload();
        result
    }
}
