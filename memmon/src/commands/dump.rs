//! `memmon dump`: per-process rows from a recording, for scripts. JSON
//! lines and CSV carry the catalog's keys (the same as every JSON output);
//! OpenMetrics carries the `/metrics` names and labels with each frame's
//! timestamp, so `promtool tsdb create-blocks-from openmetrics` backfills
//! it into the Prometheus that scrapes the daemon.

use std::io::Write as _;

use serde_json::{Map, Value};

use crate::{
    cli::{DumpArgs, DumpFormat},
    clock::unix_ms,
    error::Fatal,
    model::fields::{Kind, PROCESS_FIELDS},
    store::{reader::Store, time},
};

/// A selected column: a catalog field or its rate.
struct Column {
    /// JSON key.
    key: String,
    /// Index in PROCESS_FIELDS.
    field: usize,
    /// The `_per_second` rate.
    rate: bool,
}

fn columns(wanted: &[String], openmetrics: bool) -> Result<Vec<Column>, Fatal> {
    let mut all = Vec::new();
    for (i, f) in PROCESS_FIELDS.iter().enumerate() {
        all.push(Column {
            key: f.key.to_string(),
            field: i,
            rate: false,
        });
        if f.rate {
            all.push(Column {
                key: f.rate_key(),
                field: i,
                rate: true,
            });
        }
    }
    if wanted.is_empty() {
        // OpenMetrics: what /metrics exports; JSON and CSV: everything.
        all.retain(|c| !openmetrics || (PROCESS_FIELDS[c.field].metric && !c.rate));
        return Ok(all);
    }
    let mut out = Vec::new();
    for w in wanted {
        let Some(pos) = all.iter().position(|c| &c.key == w) else {
            let near: Vec<&str> = all
                .iter()
                .map(|c| c.key.as_str())
                .filter(|k| k.contains(w.trim_end_matches("_bytes")) || w.contains(*k))
                .take(5)
                .collect();
            return Err(Fatal::Usage(format!(
                "--fields: no field `{w}`{}; `memmon snapshot --json` shows every key",
                if near.is_empty() {
                    String::new()
                } else {
                    format!(" (did you mean {}?)", near.join(", "))
                }
            )));
        };
        out.push(all.remove(pos));
    }
    Ok(out)
}

/// The filter of processes.
struct Filter<'a> {
    pid: Option<u32>,
    cgroup: Option<&'a str>,
    comm: Option<&'a str>,
}

impl Filter<'_> {
    fn keeps(&self, p: &Value) -> bool {
        let text = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("");
        self.pid
            .is_none_or(|pid| p.get("pid").and_then(Value::as_u64) == Some(u64::from(pid)))
            && self.comm.is_none_or(|c| text("comm") == c)
            && self.cgroup.is_none_or(|c| {
                let cg = text("cgroup");
                let c = c.trim_end_matches('/');
                cg == c || cg.strip_prefix(c).is_some_and(|rest| rest.starts_with('/'))
            })
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(v: &Value) -> Option<String> {
    v.as_u64()
        .map(|n| n.to_string())
        .or_else(|| v.as_i64().map(|n| n.to_string()))
        .or_else(|| v.as_f64().map(|f| f.to_string()))
}

/// Runs the command.
pub fn run(args: &DumpArgs) -> Result<(), Fatal> {
    let now = unix_ms();
    let from = time::parse(&args.from, now).map_err(|m| Fatal::Usage(format!("--from {m}")))?;
    let to = time::parse(&args.to, now).map_err(|m| Fatal::Usage(format!("--to {m}")))?;
    if from > to {
        return Err(Fatal::Usage(format!(
            "--from {} is after --to {}: swap them",
            time::format(from),
            time::format(to)
        )));
    }
    let cols = columns(&args.fields, args.format == DumpFormat::Openmetrics)?;
    let filter = Filter {
        pid: args.pid,
        cgroup: args.cgroup.as_deref(),
        comm: args.comm.as_deref(),
    };
    let store =
        Store::open(&args.store, Some((from, to))).map_err(|e| Fatal::Usage(e.to_string()))?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    // OpenMetrics wants each family's samples together: (family, lines).
    let mut families: Vec<Vec<String>> = vec![Vec::new(); cols.len()];
    if args.format == DumpFormat::Csv {
        let head: Vec<&str> = [
            "time",
            "unix_ms",
            "pid",
            "start_time_ticks",
            "comm",
            "cgroup",
        ]
        .into_iter()
        .chain(cols.iter().map(|c| c.key.as_str()))
        .collect();
        let _ = writeln!(out, "{}", head.join(","));
    }
    for i in store.range(from, to) {
        let frame = match store.frame(i) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("memmon: {e}");
                continue;
            }
        };
        let ms = store.frames[i].unix_ms;
        let stamp = time::format(ms);
        for p in frame
            .get("processes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|p| filter.keeps(p))
        {
            let get = |k: &str| p.get(k).cloned().unwrap_or(Value::Null);
            let text = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let written = match args.format {
                DumpFormat::Json => {
                    let mut m = Map::new();
                    m.insert("time".into(), Value::String(stamp.clone()));
                    m.insert("unix_ms".into(), Value::from(ms));
                    for k in ["pid", "start_time_ticks", "comm", "cgroup"] {
                        m.insert(k.into(), get(k));
                    }
                    for c in &cols {
                        m.insert(c.key.clone(), get(&c.key));
                    }
                    writeln!(out, "{}", Value::Object(m))
                }
                DumpFormat::Csv => {
                    let mut row = vec![
                        stamp.clone(),
                        ms.to_string(),
                        number(&get("pid")).unwrap_or_default(),
                        number(&get("start_time_ticks")).unwrap_or_default(),
                        csv_field(&text("comm")),
                        csv_field(&text("cgroup")),
                    ];
                    row.extend(
                        cols.iter()
                            .map(|c| number(&get(&c.key)).unwrap_or_default()),
                    );
                    writeln!(out, "{}", row.join(","))
                }
                DumpFormat::Openmetrics => {
                    let labels = format!(
                        "{{pid=\"{}\",comm=\"{}\",cgroup=\"{}\"}}",
                        number(&get("pid")).unwrap_or_default(),
                        label(&text("comm")),
                        label(&text("cgroup"))
                    );
                    for (c, lines) in cols.iter().zip(families.iter_mut()) {
                        if let Some(v) = number(&get(&c.key)) {
                            lines.push(format!(
                                "{}{labels} {v} {}.{:03}",
                                sample_name(c),
                                ms / 1000,
                                ms % 1000
                            ));
                        }
                    }
                    Ok(())
                }
            };
            if written.is_err() {
                return Ok(()); // stdout closed
            }
        }
    }
    if args.format == DumpFormat::Openmetrics {
        for (c, lines) in cols.iter().zip(&families) {
            let f = &PROCESS_FIELDS[c.field];
            let (name, ty) = family_name(c);
            let _ = writeln!(out, "# HELP {name} {}", f.help);
            let _ = writeln!(out, "# TYPE {name} {ty}");
            for l in lines {
                let _ = writeln!(out, "{l}");
            }
        }
        let _ = writeln!(out, "# EOF");
    }
    let _ = out.flush();
    Ok(())
}

/// The family name and type of a column (as `/metrics` names it).
fn family_name(c: &Column) -> (String, &'static str) {
    let f = &PROCESS_FIELDS[c.field];
    if c.rate {
        (format!("memmon_process_{}", c.key), "gauge")
    } else {
        match f.kind {
            Kind::Counter => (format!("memmon_process_{}", f.key), "counter"),
            Kind::Gauge => (format!("memmon_process_{}", f.key), "gauge"),
        }
    }
}

fn sample_name(c: &Column) -> String {
    let (name, ty) = family_name(c);
    if ty == "counter" {
        format!("{name}_total")
    } else {
        name
    }
}
