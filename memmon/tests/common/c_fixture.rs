//! The C workloads of the resident-mode tests (tests/fixtures/
//! resident_leaks.c), built with gcc and frame pointers, and one running
//! program: it prints `ready PID`, does its work on `go` and answers one
//! JSON line.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
};

/// The fixture's source.
const SOURCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/resident_leaks.c"
);

/// Builds the fixture into `dir` (frame pointers, so stacks walk).
pub fn build(dir: &Path) -> PathBuf {
    let out = dir.join("resident_leaks");
    let status = Command::new("gcc")
        .args(["-O1", "-g", "-fno-omit-frame-pointer", "-o"])
        .arg(&out)
        .arg(SOURCE)
        .status()
        .expect("run gcc (the tests build their C workloads with it)");
    assert!(status.success(), "gcc failed on {SOURCE}");
    out
}

/// Folded stacks with bytes as weights: the `#` header, then (frames root
/// first, bytes) per line.
pub fn folded(text: &str) -> (String, Vec<(Vec<String>, u64)>) {
    let mut lines = text.lines();
    let head = lines.next().unwrap_or_default().to_string();
    let stacks = lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (stack, w) = l.rsplit_once(' ').expect("a weight");
            (
                stack.split(';').map(String::from).collect(),
                w.parse().expect("weight is bytes"),
            )
        })
        .collect();
    (head, stacks)
}

/// Bytes of the stacks through `function`.
pub fn bytes_through(stacks: &[(Vec<String>, u64)], function: &str) -> u64 {
    stacks
        .iter()
        .filter(|(f, _)| f.iter().any(|n| n == function))
        .map(|(_, w)| w)
        .sum()
}

/// One running fixture program.
pub struct Program {
    child: Child,
    /// Its pid.
    pub pid: u32,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Program {
    /// Starts `exe ARGS` and reads its pid.
    pub fn start(exe: &Path, args: &[&str]) -> Program {
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the fixture");
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("ready line");
        let pid = line
            .trim()
            .strip_prefix("ready ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("fixture said {line:?}"));
        Program {
            child,
            pid,
            stdin,
            stdout,
        }
    }

    /// Tells it to go.
    pub fn send_go(&mut self) {
        let stdin = self.stdin.as_mut().expect("stdin");
        stdin.write_all(b"go\n").expect("write go");
        stdin.flush().expect("flush");
    }

    /// Its report (after `send_go`).
    pub fn report(&mut self) -> serde_json::Value {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("report");
        serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("bad report {line:?}: {e}"))
    }

    /// Tells it to go; returns its report.
    pub fn go(&mut self) -> serde_json::Value {
        self.send_go();
        self.report()
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}
