//! Counting test results: cargo test's `test result:` lines and the
//! tests' skip records (`$MEMMON_SKIP_LOG`), for the host lanes and the
//! guests alike.

/// Passed/failed/skipped totals over cargo test's `test result:` lines
/// and the tests' skip records.
#[derive(Default)]
pub struct Totals {
    /// Tests passed.
    pub passed: u64,
    /// Tests failed.
    pub failed: u64,
    /// Tests that skipped (libtest counted them as passed; they are taken
    /// out of `passed`).
    pub skipped: u64,
}

/// What the tests' `skip` helper reads: the file it appends to.
pub const SKIP_LOG_ENV: &str = "MEMMON_SKIP_LOG";

impl Totals {
    /// Adds one line of cargo test output (other lines are ignored).
    pub fn add_line(&mut self, line: &str) {
        let Some(rest) = line.strip_prefix("test result: ") else {
            return;
        };
        let num = |word: &str| {
            rest.split(';')
                .find_map(|part| part.trim().strip_suffix(word).map(str::trim))
                .and_then(|n| n.rsplit(' ').next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        };
        self.passed += num("passed");
        self.failed += num("failed");
    }

    /// Counts the skip records in `log` (one `TEST<TAB>REASON` line each)
    /// as skipped instead of passed; returns them.
    pub fn add_skips(&mut self, log: &str) -> Vec<(String, String)> {
        let skips: Vec<(String, String)> = log
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let (test, reason) = l.split_once('\t').unwrap_or((l, ""));
                (test.to_string(), reason.to_string())
            })
            .collect();
        let n = skips.len() as u64;
        self.skipped += n;
        self.passed = self.passed.saturating_sub(n);
        skips
    }

    /// The same for the guest's skip log: returns its lines.
    pub fn count_skips<'a>(&mut self, text: &'a str) -> Vec<&'a str> {
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        self.skipped += lines.len() as u64;
        self.passed = self.passed.saturating_sub(lines.len() as u64);
        lines
    }

    /// `N passed, N failed, N skipped`.
    pub fn summary(&self) -> String {
        format!(
            "{} passed, {} failed, {} skipped",
            self.passed, self.failed, self.skipped
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_cargo_result_lines() {
        let mut t = Totals::default();
        t.add_line("test result: ok. 37 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.02s");
        t.add_line(
            "test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out",
        );
        t.add_line("running 3 tests");
        assert_eq!((t.passed, t.failed), (39, 1));
        let skips = t.add_skips("oom\tprobe oom_kill unavailable: no field comm\n\n");
        assert_eq!(
            skips,
            vec![(
                "oom".into(),
                "probe oom_kill unavailable: no field comm".into()
            )]
        );
        assert_eq!(t.summary(), "38 passed, 1 failed, 1 skipped");
    }
}
