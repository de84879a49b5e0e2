//! The process's file limit and how it is shared. RLIMIT_NOFILE's soft
//! limit is raised to the hard one once (systemd leaves services at 1024
//! for select(2)'s sake and asks programs that need more, and do not use
//! select, to raise it themselves); then the limit is split so no holder
//! can starve another: [`KEPT_FREE`] for what opens and closes (a /proc or
//! smaps read, the store's shard, the symbolizer's binaries) and what the
//! probes hold, a quarter for the daemon's HTTP connections (at most
//! [`MAX_CONNECTIONS`]), a quarter for cgroup usage files kept open (at
//! most [`MAX_CGROUP_FILES`]), and the rest for /proc/PID/stat files kept
//! open where the task iterator cannot run.

use std::sync::OnceLock;

/// Descriptors never handed to a holder that keeps them: the probes' maps,
/// programs and links (about 60 here, plus one perf event per CPU with
/// `--profile`), and everything opened and closed while a pass runs.
pub const KEPT_FREE: u64 = 512;

/// The most client connections the endpoint holds at once, whatever the
/// limit: a memory monitor's endpoint serves a few scrapers and people,
/// and each held connection costs a buffer (16 KiB at most, more with TLS).
pub const MAX_CONNECTIONS: usize = 512;

/// The fewest connections the cap allows (a limit so low the daemon barely
/// starts still serves a scraper).
pub const MIN_CONNECTIONS: usize = 8;

/// The most cgroup usage files kept open (two per cgroup).
pub const MAX_CGROUP_FILES: usize = 1024;

/// The process's file limit, as raised at first use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    /// The soft limit in force.
    pub soft: u64,
    /// The hard limit.
    pub hard: u64,
    /// The soft limit before it was raised (None: not raised).
    pub raised_from: Option<u64>,
}

impl Limit {
    /// Connections the daemon's endpoint holds at most.
    pub fn http_connections(&self) -> usize {
        to_usize(self.soft / 4).clamp(MIN_CONNECTIONS, MAX_CONNECTIONS)
    }

    /// Cgroup usage files kept open at most.
    pub fn cgroup_files(&self) -> usize {
        to_usize(self.soft / 4).min(MAX_CGROUP_FILES)
    }

    /// /proc/PID/stat files kept open at most (what the others leave).
    pub fn stat_files(&self) -> usize {
        to_usize(self.soft.min(1 << 20).saturating_sub(KEPT_FREE))
            .saturating_sub(self.http_connections())
            .saturating_sub(self.cgroup_files())
    }

    /// One line for the log.
    pub fn summary(&self) -> String {
        let raised = self
            .raised_from
            .map_or(String::new(), |from| format!(" (raised from {from})"));
        let open = open_descriptors().map_or(String::new(), |n| format!(", {n} open now"));
        format!(
            "file limit {}{raised}, hard {}{open}: at most {} HTTP connections, {} cgroup files \
             and {} /proc stat files kept open, {KEPT_FREE} kept free",
            self.soft,
            self.hard,
            self.http_connections(),
            self.cgroup_files(),
            self.stat_files()
        )
    }
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// The limit, raised on the first call.
pub fn limit() -> Limit {
    static LIMIT: OnceLock<Limit> = OnceLock::new();
    *LIMIT.get_or_init(raise)
}

fn raise() -> Limit {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        // Unreadable: assume systemd's service default.
        return Limit {
            soft: 1024,
            hard: 1024,
            raised_from: None,
        };
    }
    let (soft, hard) = (lim.rlim_cur, lim.rlim_max);
    if soft < hard {
        let wanted = libc::rlimit {
            rlim_cur: hard,
            rlim_max: hard,
        };
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) } == 0 {
            return Limit {
                soft: hard,
                hard,
                raised_from: Some(soft),
            };
        }
        tracing::debug!(
            "cannot raise the file limit from {soft} to {hard}: {}",
            std::io::Error::last_os_error()
        );
    }
    Limit {
        soft,
        hard,
        raised_from: None,
    }
}

/// Descriptors this process has open (/proc/self/fd).
pub fn open_descriptors() -> Option<u64> {
    let n = std::fs::read_dir("/proc/self/fd").ok()?.count();
    // The directory's own descriptor was open while it was listed.
    Some((n as u64).saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(soft: u64) -> Limit {
        Limit {
            soft,
            hard: soft,
            raised_from: None,
        }
    }

    #[test]
    fn the_shares_never_add_up_to_more_than_the_limit() {
        for soft in [16, 64, 256, 1024, 4096, 8192, 65_536, 524_288, u64::MAX] {
            let l = at(soft);
            let kept = l.http_connections() + l.cgroup_files() + l.stat_files();
            if soft >= 1024 {
                assert!(
                    kept as u64 + KEPT_FREE <= soft,
                    "{soft}: {kept} kept + {KEPT_FREE} free"
                );
            }
            assert!(l.http_connections() >= MIN_CONNECTIONS);
            assert!(l.http_connections() <= MAX_CONNECTIONS);
            assert!(l.cgroup_files() <= MAX_CGROUP_FILES);
        }
    }

    #[test]
    fn shares_at_systemds_default_and_at_the_units_limit() {
        // systemd's default soft limit: a quarter each, no stat files.
        let l = at(1024);
        assert_eq!(
            (l.http_connections(), l.cgroup_files(), l.stat_files()),
            (256, 256, 0)
        );
        // memmon.service's LimitNOFILE.
        let l = at(8192);
        assert_eq!(
            (l.http_connections(), l.cgroup_files(), l.stat_files()),
            (512, 1024, 6144)
        );
    }

    #[test]
    fn the_limit_is_raised_to_at_most_the_hard_one() {
        let l = limit();
        assert!(l.soft <= l.hard, "{l:?}");
        assert_eq!(l, limit(), "read once");
        assert!(open_descriptors().is_some_and(|n| n > 0));
    }
}
