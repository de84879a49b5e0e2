//! A tmux server of a test's own, a pane of 160x45 running a command, read
//! back with capture-pane (`memmon top` and `memmon replay`).
#![allow(dead_code)]

use std::{process::Command, time::Duration};

/// The tmux server.
pub struct Tmux {
    /// Its socket name.
    pub socket: String,
}

impl Tmux {
    /// A server named by `tag` running `cmd` in bash.
    pub fn new(tag: &str, cmd: &str) -> Tmux {
        let t = Tmux {
            socket: format!("memmon-test-{tag}-{}", std::process::id()),
        };
        let ok = Command::new("tmux")
            .args([
                "-L",
                &t.socket,
                "new-session",
                "-d",
                "-s",
                "t",
                "-x",
                "160",
                "-y",
                "45",
                "bash --norc",
            ])
            .status()
            .expect("tmux (Debian package tmux)")
            .success();
        assert!(ok, "tmux new-session failed");
        t.keys(&[cmd, "Enter"]);
        t
    }

    /// send-keys.
    pub fn keys(&self, keys: &[&str]) {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket, "send-keys", "-t", "t"])
            .args(keys);
        assert!(c.status().expect("send-keys").success());
    }

    /// The screen's text.
    pub fn capture(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p", "-t", "t"])
            .output()
            .expect("capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// 1 while the pane shows the alternate screen (a full-screen program).
    pub fn alternate_on(&self) -> String {
        let out = Command::new("tmux")
            .args([
                "-L",
                &self.socket,
                "display",
                "-p",
                "-t",
                "t",
                "#{alternate_on}",
            ])
            .output()
            .expect("display");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Waits (up to 30 s) for the screen to satisfy `ok`.
    pub fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        for _ in 0..150 {
            let s = self.capture();
            if ok(&s) {
                return s;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("screen never showed {what}:\n{}", self.capture());
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

/// The RSS cell of `pid`'s row in `memmon top`'s table, in MiB (cells read
/// `64.0M`, `1.02G`).
pub fn rss_cell(screen: &str, pid: u32) -> Option<f64> {
    let cell = screen
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&pid.to_string()))
        .and_then(|l| l.split_whitespace().nth(3))?;
    let (num, scale) = match cell.chars().last()? {
        'K' => (&cell[..cell.len() - 1], 1.0 / 1024.0),
        'M' => (&cell[..cell.len() - 1], 1.0),
        'G' => (&cell[..cell.len() - 1], 1024.0),
        _ => return None,
    };
    num.parse::<f64>().ok().map(|n| n * scale)
}
