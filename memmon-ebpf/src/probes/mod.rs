//! One kernel program (or a tight family) per file.

mod activity;
mod address_space;
mod cgroup_move;
mod exit;
mod fault_latency;
mod faults;
mod kill;
mod leaks;
mod major_faults;
mod numa;
mod oom;
mod page_alloc;
mod reclaim;
mod slab;
mod stack_faults;
mod stack_growth;
mod task_iter;
