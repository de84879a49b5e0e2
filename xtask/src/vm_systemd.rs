//! `cargo xtask vm-test --systemd`: the packaged unit under a real systemd.
//! A Debian 12 root of our own (debootstrap into .tools/systemd-root, with
//! systemd, Debian's 6.1 kernel, bpftool and curl) is copied into an ext4
//! image and booted with qemu (TCG) with systemd as PID 1. A oneshot
//! `memmon-test.service` in that root mounts a 9p share from the host and
//! runs the script this module writes there: it installs the .deb from
//! `cargo xtask dist`, drives the unit through start, reload, a watchdog
//! miss, restart and stop, and saves what it saw (systemctl show, scrapes,
//! bpftool listings, the journal) in the share, then powers off. The host
//! judges those files here, one counted check per step.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::{cmd, packages, vm_test};

/// What the root holds beyond debootstrap's minbase.
const ROOT_PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "dbus",
    "udev",
    "kmod",
    "linux-image-amd64",
    "bpftool",
    "curl",
    "procps",
];

/// Host packages this lane needs.
const HOST_PACKAGES: &[&str] = &["debootstrap", "qemu-system-x86", "e2fsprogs"];

/// Debian release of the root.
const SUITE: &str = "bookworm";

/// The unit that runs the test script at boot (baked into the root).
const TEST_UNIT: &str = "[Unit]
Description=memmon systemd lane (cargo xtask vm-test --systemd)
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'mkdir -p /mnt/share && mount -t 9p -o trans=virtio,version=9p2000.L share /mnt/share && exec sh /mnt/share/guest.sh'
ExecStopPost=/bin/sh -c 'sync; systemctl poweroff --no-block'
StandardOutput=journal+console
TimeoutStartSec=40min
[Install]
WantedBy=multi-user.target
";

/// Written into the root: the lane's version of it (a changed recipe
/// rebuilds the root).
const STAMP: &str = "etc/memmon-systemd-root";

/// The script the guest runs (in the share, so it changes without a new
/// root). Every step saves its evidence into $R; the host judges it.
const GUEST_SCRIPT: &str = r#"#!/bin/sh
# Written by `cargo xtask vm-test --systemd`; runs inside the guest as the
# oneshot memmon-test.service. Evidence goes to $R, judged on the host.
R=/mnt/share/out
mkdir -p $R
exec >$R/guest.log 2>&1
set -x
uname -r >$R/kernel
systemctl --version | head -1 >$R/systemd
M=http://127.0.0.1:9755
scrape() { curl -sf --max-time 20 $M/metrics >"$1"; echo $? >"$1.rc"; }
show() { systemctl show memmon -p ActiveState -p SubState -p Type -p MainPID -p NRestarts -p Result >"$1"; }
# Active and serving; gives up after 180 s or once the unit failed twice.
wait_active() {
  i=0; while [ $i -lt 180 ]; do
    [ "$(systemctl show -p ActiveState --value memmon)" = active ] && curl -sf --max-time 5 $M/healthz >/dev/null && return 0
    [ "$(systemctl show -p NRestarts --value memmon)" -ge 2 ] && return 1
    sleep 1; i=$((i+1)); done; return 1; }
resident_pids() { grep -c '^memmon_process_rss_bytes{' "$1"; }

bpftool -j prog show >$R/progs-baseline.json
cat /proc/sys/kernel/perf_event_paranoid >$R/perf_event_paranoid-boot

# 1. apt installs the package; its postinst enables and starts the unit.
cp /mnt/share/memmon.deb /tmp/memmon.deb
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends /tmp/memmon.deb >$R/install.log 2>&1
echo $? >$R/install.rc
wait_active; show $R/install.show
journalctl -u memmon --no-pager -o short-monotonic >$R/install-journal.txt
systemd-analyze security memmon.service >$R/security.txt 2>&1

# The probes memmon attaches as plain root, outside the unit's sandbox.
systemctl stop memmon
/usr/bin/memmon daemon --no-pin --listen 127.0.0.1:9756 >$R/outside.log 2>&1 &
out=$!
# (The endpoint serves before the first sample; probe states come with it.)
i=0; while [ $i -lt 180 ]; do
  curl -sf --max-time 5 http://127.0.0.1:9756/metrics >$R/outside.prom && grep -q '^memmon_probe_attached' $R/outside.prom && break
  sleep 1; i=$((i+1)); done
kill $out; wait $out

# Which part of the sandbox matters, each on its own, as one-shot probe
# reports: the unit's capabilities (setpriv), its syscall filter
# (systemd-run), and the capabilities again at perf_event_paranoid=2.
cat /proc/sys/kernel/perf_event_paranoid >$R/perf_event_paranoid
echo 3 >/proc/sys/kernel/perf_event_paranoid   # Debian's default, for diag-caps
CAPS=+bpf,+perfmon,+sys_ptrace,+dac_read_search
SNAP="/usr/bin/memmon snapshot --probes --duration 0 --no-fault-detail --no-alloc-detail"
setpriv --bounding-set=-all,$CAPS --inh-caps=-all,$CAPS --ambient-caps=-all,$CAPS --securebits=+noroot,+noroot_locked $SNAP >$R/diag-caps.txt 2>&1
systemd-run --wait --pipe -p 'SystemCallFilter=@system-service bpf perf_event_open' \
  -p 'SystemCallFilter=~@resources @obsolete @cpu-emulation @raw-io @reboot @swap @module' \
  -p SystemCallErrorNumber=EPERM $SNAP >$R/diag-seccomp.txt 2>&1
echo 2 >/proc/sys/kernel/perf_event_paranoid
setpriv --bounding-set=-all,$CAPS --inh-caps=-all,$CAPS --ambient-caps=-all,$CAPS --securebits=+noroot,+noroot_locked $SNAP >$R/diag-caps-paranoid2.txt 2>&1
cat $R/perf_event_paranoid >/proc/sys/kernel/perf_event_paranoid

# 2. `systemctl start` returns once READY=1 came (Type=notify): one scrape
#    right after it, no retry, must already be served with probes attached.
show $R/before-start.show
systemctl start memmon
echo $? >$R/start.rc
show $R/start.show
scrape $R/start.prom
ls /sys/fs/bpf/memmon >$R/pins.txt 2>&1

# 3. reload applies a changed config (top_k = 3).
scrape $R/reload-before.prom
show $R/reload-before.show
cp /etc/memmon/memmon.toml /tmp/memmon.toml.orig
printf 'top_k = 3\n' >/etc/memmon/memmon.toml
systemctl reload memmon
echo $? >$R/reload.rc
i=0; while [ $i -lt 60 ]; do
  scrape $R/reload-after.prom
  [ "$(resident_pids $R/reload-after.prom)" -le 3 ] && break
  sleep 1; i=$((i+1)); done
show $R/reload-after.show
cp /tmp/memmon.toml.orig /etc/memmon/memmon.toml
systemctl reload memmon

# 4. a watchdog miss restarts it (test-only switch: no pings).
mkdir -p /etc/systemd/system/memmon.service.d
printf '[Service]\nEnvironment=MEMMON_TEST_STALL_WATCHDOG=1\nWatchdogSec=8s\n' >/etc/systemd/system/memmon.service.d/stall.conf
systemctl daemon-reload
systemctl restart memmon
wait_active
show $R/watchdog-before.show
i=0; while [ $i -lt 240 ]; do
  [ "$(systemctl show -p NRestarts --value memmon)" -gt "$(sed -n 's/^NRestarts=//p' $R/watchdog-before.show)" ] && break
  sleep 1; i=$((i+1)); done
show $R/watchdog-after.show
journalctl -u memmon --no-pager -o short-monotonic >$R/watchdog-journal.txt
rm -rf /etc/systemd/system/memmon.service.d
systemctl daemon-reload
systemctl restart memmon
wait_active

# 5. restart keeps the pinned counters: nothing goes backwards.
sleep 3
scrape $R/restart-before.prom
show $R/restart-before.show
systemctl restart memmon
echo $? >$R/restart.rc
show $R/restart-after.show
scrape $R/restart-after.prom

# 6. the journal tells warnings from info: a memcg OOM kill (a shell
#    holding 100 MB in a 32 MiB scope, no swap) is a warning, a routine
#    SIGKILL (sleep, kill -9) is info; `journalctl -p warning` keeps the
#    first and drops the second and every other info line.
sleep 1000 & sk=$!
kill -9 $sk
systemd-run --wait --quiet -p MemoryMax=32M -p MemorySwapMax=0 \
  sh -c 'a=$(head -c 100000000 /dev/zero | tr "\0" x); echo ${#a}' >$R/oom-run.txt 2>&1
echo $? >$R/oom-run.rc
echo $sk >$R/sigkill-pid
i=0; while [ $i -lt 30 ]; do
  journalctl -u memmon --no-pager -o cat -p warning | grep -q 'OOM kill' && break
  sleep 1; i=$((i+1)); done
sleep 2
journalctl -u memmon --no-pager -o cat -p warning >$R/journal-warning.txt
journalctl -u memmon --no-pager -o cat -p info >$R/journal-info.txt

# 7. stop leaves no memmon program attached.
bpftool -j prog show >$R/progs-running.json
systemctl stop memmon
echo $? >$R/stop.rc
show $R/stop.show
bpftool -j prog show >$R/progs-stopped.json

journalctl -b --no-pager -o short-monotonic >$R/journal.txt
echo finished >$R/done
sync
"#;

/// Runs the lane: (passed, failed).
pub fn run(deb: &Path) -> anyhow::Result<(u64, u64)> {
    let mut actions = Vec::new();
    packages::ensure(HOST_PACKAGES, &mut actions)?;
    let root = ensure_root()?;
    let work = cmd::workspace().join("target/vm-systemd");
    let _ = fs::remove_dir_all(&work);
    let share = work.join("share");
    fs::create_dir_all(share.join("out"))?;
    fs::copy(deb, share.join("memmon.deb")).context("copying the .deb into the share")?;
    fs::write(share.join("guest.sh"), GUEST_SCRIPT)?;
    let image = work.join("root.img");
    let started = Instant::now();
    make_image(&root, &image)?;
    let (kernel, initrd) = boot_files(&root)?;
    eprintln!(
        "vm-test --systemd: booting {} with systemd as PID 1 (TCG, 2 vCPUs)",
        kernel.display()
    );
    boot(&kernel, &initrd, &image, &share, &work)?;
    let wall = started.elapsed();
    let out = share.join("out");
    let checks = judge(&out);
    let mut passed = 0;
    let mut failed = 0;
    for (name, result) in &checks {
        match result {
            Ok(detail) => {
                passed += 1;
                println!("test systemd::{name} ... ok ({detail})");
            }
            Err(e) => {
                failed += 1;
                println!("test systemd::{name} ... FAILED: {e:#}");
            }
        }
    }
    println!(
        "vm-test --systemd: {passed} passed, {failed} failed ({:.1} min, guest kernel {}, {}); evidence in {}",
        wall.as_secs_f64() / 60.0,
        read(&out, "kernel").unwrap_or_default().trim(),
        read(&out, "systemd").unwrap_or_default().trim(),
        out.display()
    );
    let _ = fs::remove_file(&image);
    Ok((passed, failed))
}

/// The host's Debian mirror, from its apt sources: the first active source
/// (a `.list` or `.sources` file, not a disabled one) that serves the
/// `bookworm` suite itself (not security, not a third-party repository).
fn debian_mirror() -> anyhow::Result<String> {
    let mut texts = Vec::new();
    if let Ok(entries) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            let active = p.extension().is_some_and(|e| e == "list" || e == "sources");
            if active {
                texts.push(fs::read_to_string(&p).unwrap_or_default());
            }
        }
    }
    texts.push(fs::read_to_string("/etc/apt/sources.list").unwrap_or_default());
    texts
        .iter()
        .find_map(|t| mirror_in(t))
        .context("no Debian bookworm mirror in /etc/apt/sources.list(.d): the systemd lane debootstraps from it")
}

/// The bookworm mirror in one sources file (one-line or deb822 format).
fn mirror_in(text: &str) -> Option<String> {
    let ok = |url: &str| url.starts_with("http") && !url.contains("security");
    // One-line: `deb [opts] URL SUITE COMPONENTS`.
    for line in text.lines().map(str::trim) {
        let Some(rest) = line.strip_prefix("deb ") else {
            continue;
        };
        let mut words = rest.split_whitespace().filter(|w| !w.starts_with('['));
        if let (Some(url), Some("bookworm")) = (words.next(), words.next())
            && ok(url)
        {
            return Some(url.to_string());
        }
    }
    // deb822: stanzas separated by blank lines.
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|l| l.trim().strip_prefix(name))
                .map(str::trim)
        };
        let (Some(uris), Some(suites)) = (field("URIs:"), field("Suites:")) else {
            continue;
        };
        if field("Enabled:") == Some("no") || !suites.split_whitespace().any(|s| s == "bookworm") {
            continue;
        }
        if let Some(url) = uris.split_whitespace().find(|u| ok(u)) {
            return Some(url.to_string());
        }
    }
    None
}

#[cfg(test)]
mod mirror_tests {
    use super::mirror_in;

    #[test]
    fn the_bookworm_mirror_not_a_third_party_or_security_one() {
        let deb822 = "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\n\
                      Components: main\n\nTypes: deb\nURIs: http://deb.debian.org/debian-security\n\
                      Suites: bookworm-security\n";
        assert_eq!(
            mirror_in(deb822).as_deref(),
            Some("http://deb.debian.org/debian")
        );
        let node = "Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\n";
        assert_eq!(mirror_in(node), None);
        assert_eq!(
            mirror_in("deb [arch=amd64] http://mirror.example/debian bookworm main\n").as_deref(),
            Some("http://mirror.example/debian")
        );
        assert_eq!(
            mirror_in("deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main"),
            None
        );
    }
}

/// .tools/systemd-root, built once (debootstrap, then the test unit).
fn ensure_root() -> anyhow::Result<PathBuf> {
    let root = cmd::tools_dir().join("systemd-root");
    let recipe = format!("{SUITE} {}\n{TEST_UNIT}", ROOT_PACKAGES.join(","));
    if fs::read_to_string(root.join(STAMP)).ok().as_deref() == Some(recipe.as_str()) {
        return Ok(root);
    }
    let tmp = cmd::tools_dir().join("systemd-root.tmp");
    if !tmp.join("usr/bin/systemctl").exists() || !tmp.join("usr/sbin/bpftool").exists() {
        let _ = fs::remove_dir_all(&tmp);
        let mirror = debian_mirror()?;
        cmd::run(
            Command::new("debootstrap")
                .arg("--variant=minbase")
                .arg(format!("--include={}", ROOT_PACKAGES.join(",")))
                .arg(SUITE)
                .arg(&tmp)
                .arg(&mirror),
        )
        .context("debootstrap of the systemd lane's root")?;
    }
    // debootstrap leaves the downloaded packages; the image needs none.
    if let Ok(debs) = fs::read_dir(tmp.join("var/cache/apt/archives")) {
        for d in debs.flatten() {
            if d.path().extension().is_some_and(|e| e == "deb") {
                let _ = fs::remove_file(d.path());
            }
        }
    }
    let etc = tmp.join("etc");
    fs::write(etc.join("hostname"), "memmon-guest\n")?;
    fs::write(etc.join("fstab"), "/dev/vda / ext4 rw,relatime 0 1\n")?;
    let units = etc.join("systemd/system");
    fs::write(units.join("memmon-test.service"), TEST_UNIT)?;
    let wants = units.join("multi-user.target.wants");
    fs::create_dir_all(&wants)?;
    let link = wants.join("memmon-test.service");
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink("/etc/systemd/system/memmon-test.service", &link)?;
    // Nothing else may run apt or change the clock during the test.
    for unit in [
        "apt-daily.timer",
        "apt-daily-upgrade.timer",
        "e2scrub_all.timer",
        "fstrim.timer",
    ] {
        let m = units.join(unit);
        let _ = fs::remove_file(&m);
        std::os::unix::fs::symlink("/dev/null", &m)?;
    }
    fs::write(tmp.join(STAMP), &recipe)?;
    let _ = fs::remove_dir_all(&root);
    fs::rename(&tmp, &root).context("moving the new systemd root into place")?;
    eprintln!("vm-test --systemd: built {}", root.display());
    Ok(root)
}

/// The root's newest kernel and initrd (linux-image-amd64 in the root).
fn boot_files(root: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let boot = root.join("boot");
    let mut kernels: Vec<PathBuf> = fs::read_dir(&boot)
        .with_context(|| format!("reading {}", boot.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
        .collect();
    kernels.sort();
    let kernel = kernels
        .pop()
        .context("no vmlinuz-* in the systemd root's /boot")?;
    let initrd = PathBuf::from(
        kernel
            .to_string_lossy()
            .replacen("vmlinuz-", "initrd.img-", 1),
    );
    if !initrd.exists() {
        bail!(
            "{} is missing (initramfs-tools in the root)",
            initrd.display()
        );
    }
    Ok((kernel, initrd))
}

/// A fresh ext4 image of the root (mkfs.ext4 -d copies the tree).
fn make_image(root: &Path, image: &Path) -> anyhow::Result<()> {
    let _ = fs::remove_file(image);
    cmd::run(Command::new("truncate").args(["-s", "3G"]).arg(image))?;
    cmd::run(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", "memmon-root", "-d"])
            .arg(root)
            .arg(image),
    )
}

fn boot(
    kernel: &Path,
    initrd: &Path,
    image: &Path,
    share: &Path,
    work: &Path,
) -> anyhow::Result<()> {
    let console = fs::File::create(work.join("console.log"))?;
    let mut c = Command::new("qemu-system-x86_64");
    // One host thread for both vCPUs, as vm-test's guests.
    c.args(["-accel", vm_test::TCG_ACCEL])
        .args(["-cpu", "max", "-smp", "2", "-m", "2048"])
        .args(["-nographic", "-no-reboot", "-kernel"])
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .args([
            "-append",
            "root=/dev/vda rw console=ttyS0 panic=-1 net.ifnames=0 systemd.show_status=1",
        ])
        .arg("-drive")
        .arg(format!("file={},format=raw,if=virtio", image.display()))
        .arg("-virtfs")
        .arg(format!(
            "local,path={},mount_tag=share,security_model=none,id=share",
            share.display()
        ))
        .stdin(Stdio::null())
        .stdout(console.try_clone()?)
        .stderr(console);
    eprintln!("+ {}", cmd::display(&c));
    let mut child = c.spawn().context("starting qemu-system-x86_64")?;
    let limit = Duration::from_secs(40 * 60);
    let started = Instant::now();
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "the systemd guest did not power off within {} min; see {}/console.log",
                limit.as_secs() / 60,
                work.display()
            );
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    if !share.join("out/done").exists() {
        bail!(
            "the systemd guest stopped before its script finished; see {}/console.log and {}/share/out/guest.log",
            work.display(),
            work.display()
        );
    }
    Ok(())
}

fn read(out: &Path, name: &str) -> anyhow::Result<String> {
    fs::read_to_string(out.join(name))
        .with_context(|| format!("{} missing (see guest.log there)", out.join(name).display()))
}

/// `systemctl show` output as a map.
fn show(out: &Path, name: &str) -> anyhow::Result<BTreeMap<String, String>> {
    Ok(read(out, name)?
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

fn rc(out: &Path, name: &str) -> anyhow::Result<i32> {
    read(out, name)?
        .trim()
        .parse()
        .with_context(|| format!("{name}: not an exit code"))
}

/// Prometheus text samples: series (name{labels}) → value.
pub fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

fn metric_name(series: &str) -> &str {
    series.split('{').next().unwrap_or(series)
}

/// Probes with `memmon_probe_attached 1` in a scrape.
fn attached(text: &str) -> BTreeSet<String> {
    samples(text)
        .into_iter()
        .filter(|(s, v)| metric_name(s) == "memmon_probe_attached" && *v == 1.0)
        .filter_map(|(s, _)| Some(s.split("probe=\"").nth(1)?.split('"').next()?.to_string()))
        .collect()
}

fn resident_series(text: &str) -> usize {
    samples(text)
        .keys()
        .filter(|s| metric_name(s) == "memmon_process_rss_bytes")
        .count()
}

/// Counters (`_total`) that went down from `before` to `after`, among the
/// series in both; how many were compared; and the cgroups the kernel
/// itself started over. memmon's own CPU time and its count of sampling
/// passes belong to the daemon process: a new process starts them over, as
/// Prometheus expects of a restarted target. A cgroup whose own kernel
/// counter (memory.stat pgfault, passed through as is) went back was
/// removed and created again under the same path (systemd does that to a
/// unit's cgroup on restart): a new cgroup, so its series start over, and
/// they are listed apart, not as memmon's fault.
pub fn backwards(before: &str, after: &str) -> (Vec<String>, usize, Vec<String>) {
    let a = samples(after);
    let b = samples(before);
    let recreated: Vec<String> = b
        .iter()
        .filter(|(series, v)| {
            metric_name(series) == "memmon_cgroup_memory_stat_events_total"
                && series.contains("item=\"pgfault\"")
                && a.get(*series).is_some_and(|w| w < *v)
        })
        .filter_map(|(series, _)| label(series, "cgroup"))
        .collect();
    let mut compared = 0;
    let mut down = Vec::new();
    for (series, v) in &b {
        let name = metric_name(series);
        if !name.ends_with("_total") || SELF_COUNTERS.contains(&name) {
            continue;
        }
        if label(series, "cgroup").is_some_and(|c| recreated.contains(&c)) {
            continue;
        }
        if let Some(w) = a.get(series) {
            compared += 1;
            if w < v {
                down.push(format!("{series}: {v} -> {w}"));
            }
        }
    }
    (down, compared, recreated)
}

/// The value of label `name` in a series `metric{a="x",...}`.
fn label(series: &str, name: &str) -> Option<String> {
    let start = series.find(&format!("{name}=\""))? + name.len() + 2;
    let end = series[start..].find('"')? + start;
    Some(series[start..end].to_string())
}

/// Counters of the daemon process itself (see [`backwards`]).
const SELF_COUNTERS: &[&str] = &["memmon_cpu_seconds_total", "memmon_samples_total"];

/// Program ids in a `bpftool -j prog show` listing.
fn prog_ids(out: &Path, name: &str) -> anyhow::Result<BTreeMap<u64, String>> {
    let v: serde_json::Value = serde_json::from_str(&read(out, name)?)
        .with_context(|| format!("{name}: not bpftool JSON"))?;
    Ok(v.as_array()
        .context("bpftool JSON is not a list")?
        .iter()
        .filter_map(|p| {
            Some((
                p["id"].as_u64()?,
                format!(
                    "{} {}",
                    p["type"].as_str().unwrap_or("?"),
                    p["name"].as_str().unwrap_or("?")
                ),
            ))
        })
        .collect())
}

/// A `type name` from [`prog_ids`] of a kind memmon loads.
fn is_tracing_program(what: &str) -> bool {
    matches!(
        what.split(' ').next(),
        Some("tracepoint" | "raw_tracepoint" | "perf_event" | "tracing" | "kprobe")
    )
}

type Check = (&'static str, anyhow::Result<String>);

/// Every step's verdict from the evidence in `out`.
fn judge(out: &Path) -> Vec<Check> {
    vec![
        (
            "apt_installs_and_postinst_starts_the_unit",
            (|| {
                if rc(out, "install.rc")? != 0 {
                    bail!("apt-get install failed:\n{}", read(out, "install.log")?);
                }
                let s = show(out, "install.show")?;
                if s.get("ActiveState").map(String::as_str) != Some("active") {
                    bail!("after install: {s:?}");
                }
                Ok(format!(
                    "active, MainPID {}",
                    s.get("MainPID").cloned().unwrap_or_default()
                ))
            })(),
        ),
        (
            "postinst_lowers_debians_perf_event_paranoid",
            (|| {
                // Why the package ships /usr/lib/sysctl.d/60-memmon.conf: at
                // Debian's default 3, the unit's capabilities attach nothing;
                // at 2 they attach what full root attaches.
                let boot = read(out, "perf_event_paranoid-boot")?;
                let installed = read(out, "perf_event_paranoid")?;
                if installed.trim() != "2" {
                    bail!(
                        "perf_event_paranoid {} after install (boot: {})",
                        installed.trim(),
                        boot.trim()
                    );
                }
                let at3 = read(out, "diag-caps.txt")?;
                let at2 = read(out, "diag-caps-paranoid2.txt")?;
                let attached = |t: &str| {
                    t.lines()
                        .filter(|l| l.split_whitespace().nth(1) == Some("attached"))
                        .count()
                };
                if attached(&at2) == 0 {
                    bail!(
                        "the unit's capabilities attach nothing even at perf_event_paranoid=2:\n{at2}"
                    );
                }
                Ok(format!(
                    "boot {} -> installed 2; the unit's capabilities attach {} probes at 3, {} at 2",
                    boot.trim(),
                    attached(&at3),
                    attached(&at2)
                ))
            })(),
        ),
        (
            "exposure_at_most_3",
            (|| {
                let text = read(out, "security.txt")?;
                let e: f64 = text
                    .lines()
                    .find_map(|l| l.split("exposure level for memmon.service:").nth(1))
                    .and_then(|r| r.split_whitespace().next())
                    .and_then(|v| v.parse().ok())
                    .with_context(|| format!("no exposure line:\n{text}"))?;
                if e > 3.0 {
                    bail!("exposure {e} > 3.0");
                }
                Ok(format!("exposure {e}"))
            })(),
        ),
        (
            "start_is_active_only_after_ready",
            (|| {
                let before = show(out, "before-start.show")?;
                if before.get("ActiveState").map(String::as_str) == Some("active") {
                    bail!("already active before start: {before:?}");
                }
                if rc(out, "start.rc")? != 0 {
                    bail!("systemctl start failed");
                }
                let s = show(out, "start.show")?;
                if s.get("Type").map(String::as_str) != Some("notify")
                    || s.get("ActiveState").map(String::as_str) != Some("active")
                    || s.get("SubState").map(String::as_str) != Some("running")
                {
                    bail!("right after systemctl start: {s:?}");
                }
                if rc(out, "start.prom.rc")? != 0 {
                    bail!(
                        "the first scrape right after systemctl start failed: READY=1 came before the endpoint served"
                    );
                }
                let n = attached(&read(out, "start.prom")?).len();
                if n == 0 {
                    bail!("the first scrape after start shows no attached probe");
                }
                Ok(format!(
                    "Type=notify, active/running, first scrape served with {n} probes attached"
                ))
            })(),
        ),
        (
            "probes_attach_under_the_sandbox",
            (|| {
                let inside = attached(&read(out, "start.prom")?);
                let outside = attached(&read(out, "outside.prom")?);
                if outside.is_empty() {
                    bail!(
                        "no probe attached even outside the unit:\n{}",
                        read(out, "outside.log")?
                    );
                }
                let missing: Vec<&String> = outside.difference(&inside).collect();
                if !missing.is_empty() {
                    bail!("attached as plain root but not under the unit: {missing:?}");
                }
                let pins = read(out, "pins.txt")?;
                if pins.trim().is_empty() || pins.contains("No such file") {
                    bail!("no maps pinned under /sys/fs/bpf/memmon: {pins}");
                }
                Ok(format!(
                    "{} probes attached, as outside the sandbox: {}",
                    inside.len(),
                    inside.iter().cloned().collect::<Vec<_>>().join(" ")
                ))
            })(),
        ),
        (
            "reload_applies_a_changed_config",
            (|| {
                if rc(out, "reload.rc")? != 0 {
                    bail!("systemctl reload failed");
                }
                let before = resident_series(&read(out, "reload-before.prom")?);
                let after = resident_series(&read(out, "reload-after.prom")?);
                if before <= 3 {
                    bail!(
                        "only {before} process series before the reload: the test cannot tell top_k = 3 apart"
                    );
                }
                if after != 3 {
                    bail!("{after} process series after reloading top_k = 3 (before: {before})");
                }
                let (b, a) = (
                    show(out, "reload-before.show")?,
                    show(out, "reload-after.show")?,
                );
                if b.get("MainPID") != a.get("MainPID") {
                    bail!("reload restarted the daemon: {b:?} -> {a:?}");
                }
                Ok(format!(
                    "memmon_process_rss_bytes series {before} -> {after}, same MainPID"
                ))
            })(),
        ),
        (
            "watchdog_miss_restarts_it",
            (|| {
                let (b, a) = (
                    show(out, "watchdog-before.show")?,
                    show(out, "watchdog-after.show")?,
                );
                let n = |m: &BTreeMap<String, String>| {
                    m.get("NRestarts").and_then(|v| v.parse::<u64>().ok())
                };
                let (nb, na) = (
                    n(&b).context("NRestarts before")?,
                    n(&a).context("NRestarts after")?,
                );
                let journal = read(out, "watchdog-journal.txt")?;
                if !journal.contains("Watchdog timeout") {
                    bail!("no watchdog timeout in the journal (NRestarts {nb} -> {na})");
                }
                if na <= nb {
                    bail!("NRestarts {nb} -> {na}: not restarted");
                }
                Ok(format!("Watchdog timeout, NRestarts {nb} -> {na}"))
            })(),
        ),
        (
            "restart_keeps_counters",
            (|| {
                if rc(out, "restart.rc")? != 0 {
                    bail!("systemctl restart failed");
                }
                let (b, a) = (
                    show(out, "restart-before.show")?,
                    show(out, "restart-after.show")?,
                );
                if b.get("MainPID") == a.get("MainPID") {
                    bail!("the MainPID did not change: not restarted");
                }
                let (down, compared, recreated) = backwards(
                    &read(out, "restart-before.prom")?,
                    &read(out, "restart-after.prom")?,
                );
                if compared == 0 {
                    bail!("no counter in both scrapes");
                }
                if !down.is_empty() {
                    bail!(
                        "{} of {compared} counters went backwards: {}",
                        down.len(),
                        down.join("; ")
                    );
                }
                Ok(if recreated.is_empty() {
                    format!("{compared} counters, none backwards")
                } else {
                    format!(
                        "{compared} counters, none backwards; cgroups systemd created anew (their kernel counters started over, so do theirs): {}",
                        recreated.join(", ")
                    )
                })
            })(),
        ),
        (
            "journal_priorities_pick_the_oom_warning_not_info",
            (|| {
                let warning = read(out, "journal-warning.txt")?;
                let info = read(out, "journal-info.txt")?;
                let sk = read(out, "sigkill-pid")?;
                let sigkill = format!("target_pid={} ", sk.trim());
                if !warning.lines().any(|l| l.contains("OOM kill")) {
                    bail!(
                        "no OOM kill in journalctl -p warning (the OOM run: {}):\n{warning}",
                        read(out, "oom-run.txt").unwrap_or_default()
                    );
                }
                // Info lines the daemon always writes: present at -p info,
                // absent at -p warning.
                for needle in ["listening on", sigkill.as_str()] {
                    if !info.contains(needle) {
                        bail!("`{needle}` missing at -p info:\n{info}");
                    }
                    if warning.contains(needle) {
                        bail!("the info line `{needle}` shows at -p warning:\n{warning}");
                    }
                }
                if warning.contains('\u{1b}') || info.contains('\u{1b}') {
                    bail!("terminal escape bytes in the journal");
                }
                Ok(format!(
                    "{} lines at -p warning (the OOM kill among them), {} at -p info; the SIGKILL and `listening on` only at info",
                    warning.lines().count(),
                    info.lines().count()
                ))
            })(),
        ),
        (
            "stop_leaves_no_program_attached",
            (|| {
                if rc(out, "stop.rc")? != 0 {
                    bail!("systemctl stop failed");
                }
                let s = show(out, "stop.show")?;
                if s.get("ActiveState").map(String::as_str) != Some("inactive") {
                    bail!("after stop: {s:?}");
                }
                let base = prog_ids(out, "progs-baseline.json")?;
                let running = prog_ids(out, "progs-running.json")?;
                let stopped = prog_ids(out, "progs-stopped.json")?;
                let ours: Vec<(&u64, &String)> = running
                    .iter()
                    // systemd attaches cgroup programs of its own per unit
                    // (sd_devices, sd_fw_*): memmon's are the tracing kinds.
                    .filter(|(id, what)| !base.contains_key(id) && is_tracing_program(what))
                    .collect();
                if ours.is_empty() {
                    bail!("bpftool shows no program of memmon's while it runs");
                }
                let left: Vec<&String> = ours
                    .iter()
                    .filter(|(id, _)| stopped.contains_key(id))
                    .map(|(_, n)| *n)
                    .collect();
                if !left.is_empty() {
                    bail!("still loaded after stop: {left:?}");
                }
                Ok(format!(
                    "{} programs while running, 0 after stop",
                    ours.len()
                ))
            })(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_going_backwards_are_found() {
        let before = "# TYPE memmon_kernel_events_total counter\nmemmon_kernel_events_total{probe=\"a\"} 10\nmemmon_kernel_events_total{probe=\"b\"} 5\nmemmon_cpu_seconds_total 3\nmemmon_samples_total 9\nmemmon_resident_bytes 100\n";
        let after = "memmon_kernel_events_total{probe=\"a\"} 12\nmemmon_kernel_events_total{probe=\"b\"} 4\nmemmon_cpu_seconds_total 0.1\nmemmon_resident_bytes 50\n";
        let (down, compared, recreated) = backwards(before, after);
        assert_eq!(compared, 2);
        assert_eq!(
            down,
            vec!["memmon_kernel_events_total{probe=\"b\"}: 5 -> 4".to_string()]
        );
        assert!(recreated.is_empty());
    }

    #[test]
    fn a_cgroup_the_kernel_started_over_is_told_apart() {
        let before = "memmon_cgroup_memory_stat_events_total{cgroup=\"/s/m.service\",item=\"pgfault\"} 6009\n\
                      memmon_cgroup_minor_faults_total{cgroup=\"/s/m.service\"} 6213\n\
                      memmon_cgroup_minor_faults_total{cgroup=\"/s/t.service\"} 100\n";
        let after = "memmon_cgroup_memory_stat_events_total{cgroup=\"/s/m.service\",item=\"pgfault\"} 5604\n\
                     memmon_cgroup_minor_faults_total{cgroup=\"/s/m.service\"} 5772\n\
                     memmon_cgroup_minor_faults_total{cgroup=\"/s/t.service\"} 90\n";
        let (down, compared, recreated) = backwards(before, after);
        assert_eq!(recreated, vec!["/s/m.service".to_string()]);
        assert_eq!(compared, 1);
        assert_eq!(down.len(), 1, "{down:?}");
        assert!(down[0].contains("t.service"));
    }

    #[test]
    fn attached_probes_from_a_scrape() {
        let text = "memmon_probe_attached{probe=\"oom_kill\"} 1\nmemmon_probe_attached{probe=\"rss_stat\"} 0\n";
        assert_eq!(attached(text), BTreeSet::from(["oom_kill".to_string()]));
    }
}
