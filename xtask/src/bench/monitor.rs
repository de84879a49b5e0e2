//! A monitor running beside a workload (memmon, bpftrace): started, waited
//! for until it has attached, and stopped with SIGINT.

use std::{
    io::{BufRead, BufReader, Read},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use anyhow::{Context as _, bail};

/// A running monitor.
pub struct Monitor {
    child: Child,
    /// The line that said it was ready.
    pub ready_line: String,
}

impl Monitor {
    /// Starts `cmd` and waits (up to 60 s) until a line of its stdout or
    /// stderr contains `ready`.
    pub fn start(mut cmd: Command, ready: &str) -> anyhow::Result<Monitor> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {cmd:?}"))?;
        let (tx, rx) = mpsc::channel::<String>();
        let out = child.stdout.take().context("stdout")?;
        let err = child.stderr.take().context("stderr")?;
        forward(out, tx.clone());
        forward(err, tx);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        let ready_line = loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains(ready) => break line,
                Ok(line) => seen.push(line),
                Err(_) => {
                    let _ = child.kill();
                    bail!(
                        "{cmd:?} never printed {ready:?}; output:\n{}",
                        seen.join("\n")
                    );
                }
            }
        };
        // Keep draining so the monitor never blocks on a full pipe.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        Ok(Monitor { child, ready_line })
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The `http://ADDR/` address in the ready line (memmon daemon).
    pub fn http_addr(&self) -> Option<String> {
        self.ready_line
            .split("http://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .map(str::to_string)
    }

    /// SIGINT, then wait (SIGKILL after 10 s).
    pub fn stop(mut self) -> anyhow::Result<()> {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        for _ in 0..100 {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

fn forward<R: Read + Send + 'static>(r: R, tx: mpsc::Sender<String>) {
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
}
