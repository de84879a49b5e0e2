//! Every /proc and sysfs text memmon parses itself (the procfs crate
//! covers the rest): numa_maps, cpulists, meminfo, vmstat, swaps,
//! buddyinfo, slabinfo, PSI, /proc/PID/cgroup, cgroup paths.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memmon::procfs::{cgroup, numa, system, unit};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = numa::parse_numa_maps(&text);
    let _ = numa::parse_cpulist(&text);
    let _ = system::parse_meminfo(&text);
    let _ = system::parse_vmstat(&text);
    let _ = system::parse_swaps(&text);
    let _ = system::parse_buddyinfo(&text);
    let _ = system::top_slabs(&text, 5);
    let _ = system::parse_psi(&text);
    let _ = cgroup::parse_memory_cgroup(&text);
    let _ = unit::systemd_unit(&text);
    let _ = unit::container_id(&text);
    let _ = memmon::procfs::identity::parse_stat(1, data);
});
