//! `memmon incidents`: the post-mortems of OOM kills and userspace
//! SIGKILLs, from a running daemon (`--connect`, its newest
//! `model::incident::RECENT`) or a recording (`--store`, every one kept);
//! `memmon explain --oom latest|ID` prints one ([`explain_oom`]). Without
//! either flag: the local daemon if one answers, else the packaged
//! service's store.

use std::{io::Write as _, path::PathBuf};

use crate::{
    cli::{DEFAULT_STORE, IncidentsArgs},
    clock::unix_ms,
    error::Fatal,
    model::incident::{Incident, Summary},
    sinks::incident as sink,
    store::{reader::Store, time},
};

use super::daemon_client::{self, DEFAULT_URL};

/// Where post-mortems are read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A daemon's API (`host:port`).
    Daemon(String),
    /// A recording.
    Store(PathBuf),
}

impl Source {
    /// From `--connect` / `--store`; neither: the local daemon when it
    /// answers, else the default store when it exists.
    pub fn resolve(connect: Option<&str>, store: Option<&std::path::Path>) -> Result<Self, Fatal> {
        match (connect, store) {
            (Some(_), Some(_)) => Err(Fatal::Usage(
                "give --connect URL or --store DIR, not both".into(),
            )),
            (Some(url), None) => Ok(Source::Daemon(daemon_client::connect_addr(url)?)),
            (None, Some(dir)) => Ok(Source::Store(dir.to_path_buf())),
            (None, None) => {
                let addr = daemon_client::connect_addr(DEFAULT_URL)?;
                let answers = addr.parse().is_ok_and(|a| {
                    std::net::TcpStream::connect_timeout(&a, std::time::Duration::from_secs(1))
                        .is_ok()
                });
                if answers {
                    Ok(Source::Daemon(addr))
                } else if std::path::Path::new(DEFAULT_STORE).is_dir() {
                    Ok(Source::Store(DEFAULT_STORE.into()))
                } else {
                    Err(Fatal::Usage(format!(
                        "no memmon daemon answers at {DEFAULT_URL} and there is no store at \
                         {DEFAULT_STORE}: give --connect URL (a running `memmon daemon`) or \
                         --store DIR (the directory `memmon daemon --record DIR` writes)"
                    )))
                }
            }
        }
    }
}

/// Every post-mortem in the store at `dir`, oldest first (one that cannot
/// be read is named on stderr and skipped).
fn from_store(dir: &std::path::Path) -> Result<Vec<Incident>, Fatal> {
    let store = Store::open(dir, None).map_err(|e| Fatal::Usage(e.to_string()))?;
    let mut out: Vec<Incident> = Vec::new();
    for i in 0..store.incidents.len() {
        match store.incident(i).map_err(|e| e.to_string()).and_then(|v| {
            serde_json::from_value::<Incident>(v).map_err(|e| format!("not an incident: {e}"))
        }) {
            Ok(inc) => {
                if !out.iter().any(|o| o.id == inc.id) {
                    out.push(inc);
                }
            }
            Err(e) => eprintln!("memmon: incident frame {i}: {e}; skipped"),
        }
    }
    out.sort_by_key(|i| i.unix_ms);
    Ok(out)
}

/// The short forms `source` holds, oldest first.
fn list(source: &Source) -> Result<Vec<Summary>, Fatal> {
    match source {
        Source::Store(dir) => Ok(from_store(dir)?.iter().map(Incident::summary).collect()),
        Source::Daemon(addr) => {
            let v = daemon_client::get_json(addr, "/api/v1/incidents").map_err(Fatal::Other)?;
            serde_json::from_value(v.get("incidents").cloned().unwrap_or_default()).map_err(|e| {
                Fatal::Other(anyhow::anyhow!(
                    "the daemon at {addr} answered /api/v1/incidents with no incident list: {e}"
                ))
            })
        }
    }
}

/// Runs `memmon incidents`.
pub fn run(args: &IncidentsArgs) -> Result<(), Fatal> {
    let now = unix_ms();
    let parse = |flag: &str, t: Option<&String>| {
        t.map(|t| time::parse(t, now).map_err(|m| Fatal::Usage(format!("{flag} {m}"))))
            .transpose()
    };
    let from = parse("--from", args.from.as_ref())?.unwrap_or(0);
    let to = parse("--to", args.to.as_ref())?.unwrap_or(u64::MAX);
    if from > to {
        return Err(Fatal::Usage("--from is after --to: swap them".to_string()));
    }
    let source = Source::resolve(args.connect.as_deref(), args.store.as_deref())?;
    let found: Vec<Summary> = list(&source)?
        .into_iter()
        .filter(|s| s.unix_ms >= from && s.unix_ms <= to)
        .collect();
    let mut out = std::io::stdout().lock();
    if args.json {
        for s in &found {
            let line = serde_json::to_string(s).map_err(|e| Fatal::Other(e.into()))?;
            let _ = writeln!(out, "{line}");
        }
        return Ok(());
    }
    if found.is_empty() {
        let _ = writeln!(
            out,
            "no incident (no OOM kill or userspace SIGKILL){}",
            match &source {
                Source::Daemon(addr) => format!(" since the daemon at {addr} started"),
                Source::Store(dir) => format!(" in {}", dir.display()),
            }
        );
        return Ok(());
    }
    let _ = write!(out, "{}", sink::table(&found));
    let _ = writeln!(
        out,
        "\n{} incident(s); `memmon explain --oom ID` prints one in full",
        found.len()
    );
    Ok(())
}

/// The post-mortem `which` (`latest` or an id) from `source`.
pub fn fetch(source: &Source, which: &str) -> Result<Incident, Fatal> {
    match source {
        Source::Daemon(addr) => {
            let path = format!("/api/v1/incidents/{which}");
            let v = daemon_client::get_json(addr, &path).map_err(|e| match e
                .downcast_ref::<daemon_client::Refused>()
            {
                Some(r) if r.status == 404 => Fatal::Usage(r.text.clone()),
                _ => Fatal::Other(e),
            })?;
            serde_json::from_value(v).map_err(|e| {
                Fatal::Other(anyhow::anyhow!(
                    "the daemon at {addr} answered {path} with no incident: {e}"
                ))
            })
        }
        Source::Store(dir) => {
            let all = from_store(dir)?;
            let found = match which {
                "latest" => all.into_iter().last(),
                id => all.into_iter().find(|i| i.id == id),
            };
            found.ok_or_else(|| {
                Fatal::Usage(match which {
                    "latest" => format!(
                        "no incident in {}: no OOM kill or userspace SIGKILL was recorded there",
                        dir.display()
                    ),
                    id => format!(
                        "no incident {id} in {}; `memmon incidents --store {}` lists them",
                        dir.display(),
                        dir.display()
                    ),
                })
            })
        }
    }
}

/// `memmon explain --oom WHICH`: one post-mortem, as text (100 columns)
/// or JSON.
pub fn explain_oom(source: &Source, which: &str, json: bool) -> Result<(), Fatal> {
    if which != "latest" && !is_id(which) {
        return Err(Fatal::Usage(format!(
            "--oom {which}: give `latest` or an incident id as `memmon incidents` lists it \
             (UNIXSECONDS-PID, e.g. 1733512345-4321)"
        )));
    }
    let incident = fetch(source, which)?;
    let mut out = std::io::stdout().lock();
    if json {
        let text = serde_json::to_string_pretty(&incident).map_err(|e| Fatal::Other(e.into()))?;
        let _ = writeln!(out, "{text}");
    } else {
        let _ = write!(out, "{}", sink::text(&incident));
    }
    Ok(())
}

/// True for an incident id: digits, `-`, digits.
fn is_id(s: &str) -> bool {
    s.split_once('-').is_some_and(|(a, b)| {
        !a.is_empty()
            && !b.is_empty()
            && a.bytes().all(|c| c.is_ascii_digit())
            && b.bytes().all(|c| c.is_ascii_digit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        model::{incident::Victim, published::Published},
        store::writer::{Writer, WriterSettings},
    };
    use std::sync::Arc;

    fn incident(unix_ms: u64, pid: u32) -> Incident {
        Incident {
            id: crate::model::incident::id(unix_ms, pid),
            kind: "oom_kill".into(),
            unix_ms,
            victim: Victim {
                pid,
                comm: "hog".into(),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn a_recording_keeps_each_incident_once_beside_its_publications() {
        let d = tempfile::tempdir().expect("tmp");
        let mut w = Writer::new(WriterSettings::new(d.path().to_path_buf())).expect("writer");
        let a = Arc::new(incident(1_000_000, 7));
        let b = Arc::new(incident(1_003_000, 8));
        // The first incident rides in three publications, the second in two.
        for (t, recs) in [
            (1_001_000u64, vec![Arc::clone(&a)]),
            (1_002_000, vec![Arc::clone(&a)]),
            (1_004_000, vec![Arc::clone(&a), Arc::clone(&b)]),
            (1_005_000, vec![Arc::clone(&b)]),
        ] {
            let p = Published {
                unix_ms: t,
                incidents: recs.iter().map(|i| i.summary()).collect(),
                incident_records: recs,
                ..Default::default()
            };
            w.write_publication(&p).expect("write");
        }
        let store = Store::open(d.path(), None).expect("opens");
        assert_eq!(store.frames.len(), 4, "the publications, unchanged");
        assert_eq!(store.incidents.len(), 2, "each incident once");
        // Replay reads every publication frame; none is an incident.
        for i in 0..store.frames.len() {
            let f = store.frame(i).expect("publication");
            assert!(f["incidents"].is_array(), "{f}");
        }
        let src = Source::Store(d.path().to_path_buf());
        let all = list(&src).expect("list");
        assert_eq!(
            all.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
            ["1000-7", "1003-8"]
        );
        assert_eq!(fetch(&src, "latest").expect("latest").victim.pid, 8);
        assert_eq!(fetch(&src, "1000-7").expect("by id").victim.pid, 7);
        let e = fetch(&src, "1-1").expect_err("absent").to_string();
        assert!(
            e.contains("no incident 1-1") && e.contains("memmon incidents --store"),
            "{e}"
        );
        let e = explain_oom(&src, "last", false)
            .expect_err("bad id")
            .to_string();
        assert!(e.contains("`latest`"), "{e}");
    }

    #[test]
    fn a_version_1_recording_still_reads_and_has_no_incidents() {
        let d = tempfile::tempdir().expect("tmp");
        // A shard as memmon wrote it before incidents: version 1, one key
        // frame.
        let mut shard = crate::store::format::shard_header();
        shard[8..12].copy_from_slice(&1u32.to_le_bytes());
        let payload = zstd::bulk::compress(br#"{"unix_ms":5,"processes":{}}"#, 3).expect("zstd");
        shard.extend(crate::store::format::encode_frame(
            crate::store::format::Kind::Key,
            5,
            5,
            &payload,
        ));
        std::fs::write(d.path().join("memmon-0000000000005.mst"), shard).expect("write");
        let store = Store::open(d.path(), None).expect("a version 1 store opens");
        assert_eq!((store.frames.len(), store.incidents.len()), (1, 0));
        assert_eq!(store.frame(0).expect("frame")["unix_ms"], 5);
        let src = Source::Store(d.path().to_path_buf());
        assert!(list(&src).expect("list").is_empty());
        let e = fetch(&src, "latest").expect_err("none").to_string();
        assert!(e.contains("no incident in"), "{e}");
    }

    #[test]
    fn ids_are_checked() {
        assert!(is_id("1733512345-42"));
        assert!(!is_id("latest") && !is_id("12-") && !is_id("-1") && !is_id("a-1"));
    }
}
