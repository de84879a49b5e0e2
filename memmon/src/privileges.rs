//! Checks, before anything is loaded, that memmon may load eBPF programs,
//! and says which capabilities are missing when it may not.

use std::fs;

/// CAP_SYS_ADMIN: covers both below on any kernel.
const CAP_SYS_ADMIN: u32 = 21;
/// CAP_PERFMON (5.8+): tracing programs and perf events.
const CAP_PERFMON: u32 = 38;
/// CAP_BPF (5.8+): loading programs and creating maps.
const CAP_BPF: u32 = 39;

/// The effective capability set of this process.
fn effective_caps() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    parse_cap_eff(&status)
}

/// `CapEff:` from a /proc/PID/status text.
pub fn parse_cap_eff(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line.trim_start_matches("CapEff:").trim(), 16).ok()
}

/// Ok when the effective set allows loading the probes; otherwise the one
/// line to print, naming what is missing and how to fix it.
pub fn check() -> Result<(), PrivilegeError> {
    let caps = effective_caps().unwrap_or(0);
    missing_message(caps).map_or(Ok(()), |m| Err(PrivilegeError(m)))
}

/// The capabilities that load the probes are missing (the message names
/// them and the fix).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PrivilegeError(String);

/// The message for capability set `caps`, or `None` when it suffices.
pub fn missing_message(caps: u64) -> Option<String> {
    let has = |cap: u32| caps & (1u64 << cap) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return None;
    }
    let missing: Vec<&str> = [(CAP_BPF, "CAP_BPF"), (CAP_PERFMON, "CAP_PERFMON")]
        .into_iter()
        .filter(|(c, _)| !has(*c))
        .map(|(_, n)| n)
        .collect();
    Some(format!(
        "needs root or the capabilities CAP_BPF and CAP_PERFMON to load its eBPF probes \
         (missing: {}); run it with sudo, or grant them: \
         setcap cap_bpf,cap_perfmon,cap_sys_ptrace,cap_dac_read_search+ep /path/to/memmon",
        missing.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_bpf_perfmon_suffice() {
        assert_eq!(missing_message(u64::MAX), None);
        assert_eq!(missing_message(1 << CAP_SYS_ADMIN), None);
        assert_eq!(missing_message((1 << CAP_BPF) | (1 << CAP_PERFMON)), None);
    }

    #[test]
    fn names_what_is_missing() {
        let msg = missing_message(1 << CAP_BPF).expect("must complain");
        assert!(msg.contains("missing: CAP_PERFMON"), "{msg}");
        let msg = missing_message(0).expect("must complain");
        assert!(msg.contains("missing: CAP_BPF, CAP_PERFMON"), "{msg}");
    }

    #[test]
    fn parses_status() {
        let status = "Name:\tx\nCapEff:\t000001ffffffffff\n";
        assert_eq!(parse_cap_eff(status), Some(0x1ff_ffff_ffff));
    }
}
