//! Restart without loss: with the maps pinned in bpffs, a second memmon
//! picks up the counters the first one left, including those of a process
//! that exited while no memmon was running; pins of another layout are
//! replaced with a warning.

mod common;

use std::{fs, process::Command};

use common::*;

fn probes_report(pin: &PinRoot) -> serde_json::Value {
    let out = Command::new(MEMMON)
        .args([
            "snapshot",
            "--probes",
            "--json",
            "--duration",
            "0",
            "--pin-dir",
            pin.arg(),
        ])
        .output()
        .expect("run memmon");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("probes JSON")
}

#[test]
fn counts_survive_a_restart() {
    if !require_bpf("counts_survive_a_restart") {
        return;
    }
    let pin = PinRoot::new("restart");
    const N: u64 = 20_000;
    let mut w = Workload::start(&["touch", &N.to_string()]);
    let pid = w.pid;
    let rows = snapshot_json(
        &[
            "--duration",
            "2",
            "--pid",
            &pid.to_string(),
            "--pin-dir",
            pin.arg(),
        ],
        || {
            w.go();
        },
    );
    let first = field(row_for(&rows, pid), "minor_faults");
    assert!(first >= N, "first run counted {first}");
    let faults_before = probes_report(&pin)["stats"]["fault_events"]
        .as_u64()
        .expect("fault_events");
    assert!(
        faults_before >= N,
        "pinned STATS kept {faults_before} events"
    );

    // The workload exits while no memmon runs: its exit is never seen.
    w.finish();
    let out = Command::new(MEMMON)
        .args([
            "snapshot",
            "--json",
            "--duration",
            "0",
            "--pid",
            &pid.to_string(),
            "--pin-dir",
            pin.arg(),
        ])
        .output()
        .expect("run memmon");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let rows = rows.as_array().expect("array");
    let row = row_for(rows, pid);
    assert_eq!(row["exited"], true, "{row}");
    assert!(
        field(row, "minor_faults") >= first,
        "counts of a process that exited between runs were lost: {row}"
    );
    // Its entry is gone now, and the statistics kept counting up.
    let report = probes_report(&pin);
    assert_eq!(report["stats"]["proc_map_stale"], 0, "{report}");
    assert!(
        report["stats"]["fault_events"]
            .as_u64()
            .expect("fault_events")
            >= faults_before
    );
}

#[test]
fn incompatible_pins_are_replaced_with_a_warning() {
    if !require_bpf("incompatible_pins_are_replaced_with_a_warning") {
        return;
    }
    let pin = PinRoot::new("layout");
    // A first run mounts bpffs if needed and creates this build's layout.
    probes_report(&pin);
    let old = pin.0.join("v0-c8");
    fs::create_dir_all(&old).expect("mkdir in bpffs");
    let out = Command::new(MEMMON)
        .args([
            "snapshot",
            "--json",
            "--duration",
            "0",
            "--pin-dir",
            pin.arg(),
        ])
        .output()
        .expect("run memmon");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("incompatible memmon"), "{stderr}");
    assert!(!old.exists(), "old layout still there");
    let dirs: Vec<String> = fs::read_dir(&pin.0)
        .expect("pin root")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    assert!(pin.0.join(&dirs[0]).join("PROC_COUNTERS").exists());
}
