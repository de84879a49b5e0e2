//! The memory cgroup files memmon parses itself (cgroupfs::parse): single
//! values (v1 and v2), memory.stat (v1 and v2 names), memory.events,
//! memory.oom_control, memory.pressure; and the names read from a cgroup
//! path (unit, pod uid, container id, QoS), and the path check.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memmon::cgroupfs::{CgroupRoot, Version, names, parse, with_ancestors};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = parse::parse_v2_value(&text);
    let _ = parse::parse_v1_value(&text);
    let _ = parse::stat_from_v2(&text);
    let _ = parse::stat_from_v1(&text);
    let _ = parse::v1_hierarchical_limit(&text);
    let _ = parse::events_from_v2(&text);
    let _ = parse::events_from_v1(Some(1), Some(&text));
    let _ = parse::parse_pressure(&text);
    let n = names::names(&text);
    if let Some(uid) = n.pod_uid {
        assert!(uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'));
    }
    if let Some(id) = n.container_id {
        assert_eq!(id.len(), 64);
    }
    // A path accepted by the check never leaves the root.
    let root = CgroupRoot::new("/nonexistent-root", Version::V2);
    if let Ok(dir) = root.cgroup_dir(&text) {
        assert!(dir.starts_with("/nonexistent-root"));
        assert!(!dir.components().any(|c| matches!(c, std::path::Component::ParentDir)));
    }
    assert!(with_ancestors(&text).count() <= text.len() + 1);
});
