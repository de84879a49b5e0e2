//! Where the counters' floors (`sinks::prometheus::counter_floor`) outlive the daemon:
//! `counters.json` in the state directory (`$STATE_DIRECTORY`, which
//! systemd sets from the unit's StateDirectory=, else /var/lib/memmon),
//! written whole and renamed into place before each /metrics answer leaves,
//! so whatever a scraper saw is on disk first, whenever the daemon dies.
//! The file names the boot it was written in and the pin directory whose
//! maps the counts came from: after a reboot the kernel's counts start
//! over, and so do the floors; a daemon on other pins (or with `--no-pin`,
//! which keeps nothing) uses none. A state directory that cannot
//! be written is said once; the daemon then runs without floors.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::sinks::prometheus::counter_floor::Floors;

/// The file's name in the state directory.
pub const FILE: &str = "counters.json";

/// The state directory when systemd names none.
pub const DEFAULT_DIR: &str = "/var/lib/memmon";

#[derive(Serialize, Deserialize)]
struct OnDisk {
    boot_id: String,
    /// The pin directory whose maps the counts came from.
    pin_dir: PathBuf,
    floors: Floors,
}

/// The floors and where they are kept.
pub struct CounterState {
    path: Option<PathBuf>,
    boot_id: String,
    pin_dir: PathBuf,
    /// The floors (applied to every /metrics answer).
    pub floors: Floors,
    said: bool,
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

impl CounterState {
    /// Loads the floors of this boot and these pins (`pin_dir`) from the
    /// state directory (none when the file is missing, unreadable, or from
    /// another boot or other pins).
    pub fn load(pin_dir: &Path) -> CounterState {
        let dir = std::env::var_os("STATE_DIRECTORY")
            // systemd may list several, separated by ':'.
            .and_then(|v| {
                v.to_str()
                    .and_then(|s| s.split(':').next().map(PathBuf::from))
            })
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR));
        Self::load_from(&dir, pin_dir)
    }

    /// Same from `dir`.
    pub fn load_from(dir: &Path, pin_dir: &Path) -> CounterState {
        let boot_id = boot_id();
        let path = dir.join(FILE);
        let floors = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<OnDisk>(&bytes) {
                Ok(d) if d.boot_id == boot_id && d.pin_dir == pin_dir => {
                    tracing::info!(
                        "counters continue from {} ({} series)",
                        path.display(),
                        d.floors.series.len()
                    );
                    d.floors.carried_over()
                }
                Ok(_) => {
                    tracing::info!(
                        "{}: from an earlier boot or other pins; counters start over",
                        path.display()
                    );
                    Floors::default()
                }
                Err(e) => {
                    tracing::warn!("{}: unreadable ({e}); counters start over", path.display());
                    Floors::default()
                }
            },
            Err(_) => Floors::default(),
        };
        CounterState {
            path: Some(path),
            boot_id,
            pin_dir: pin_dir.to_path_buf(),
            floors,
            said: false,
        }
    }

    /// Writes the floors (a temporary file renamed over the old one).
    pub fn save(&mut self) {
        let Some(path) = &self.path else {
            return;
        };
        let disk = OnDisk {
            boot_id: self.boot_id.clone(),
            pin_dir: self.pin_dir.clone(),
            floors: std::mem::take(&mut self.floors),
        };
        let result = serde_json::to_vec(&disk)
            .map_err(std::io::Error::other)
            .and_then(|bytes| write_atomically(path, &bytes));
        self.floors = disk.floors;
        if let Err(e) = result
            && !self.said
        {
            self.said = true;
            tracing::warn!(
                "cannot keep counters in {} ({e}): after a restart they may start over; give \
                 the daemon a writable state directory (StateDirectory= in its unit, or \
                 STATE_DIRECTORY)",
                path.display()
            );
        }
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    // No fsync: a kill -9 keeps what was written; a power cut is a reboot,
    // after which the floors start over anyway.
    drop(f);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::prometheus::counter_floor::Entry;

    #[test]
    fn floors_survive_a_save_and_load_in_the_same_boot() {
        let dir = tempfile::tempdir().expect("tmp");
        let pins = Path::new("/sys/fs/bpf/memmon-i26-unit");
        let mut s = CounterState::load_from(dir.path(), pins);
        assert!(s.floors.series.is_empty());
        s.floors.series.insert(
            "memmon_kills_total{cause=sigkill}".into(),
            Entry {
                exported: 7.0,
                offset: 0.0,
                seen_ms: 1,
            },
        );
        s.save();
        let again = CounterState::load_from(dir.path(), pins);
        let e = &again.floors.series["memmon_kills_total{cause=sigkill}"];
        assert_eq!((e.exported, e.offset), (7.0, 7.0), "carried over");
        // Other pins: ignored.
        assert!(
            CounterState::load_from(dir.path(), Path::new("/elsewhere"))
                .floors
                .series
                .is_empty()
        );
        // Another boot's file: ignored.
        let text = std::fs::read_to_string(dir.path().join(FILE)).expect("file");
        std::fs::write(
            dir.path().join(FILE),
            text.replace(&boot_id(), "another-boot"),
        )
        .expect("write");
        assert!(
            CounterState::load_from(dir.path(), pins)
                .floors
                .series
                .is_empty()
        );
    }
}
