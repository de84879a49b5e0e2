//! The OpenMetrics 1.0 text format (what Prometheus asks for first when it
//! scrapes), written from the same metric families as the Prometheus text
//! format: counter families are named without `_total`, their samples
//! with it, and the exposition ends with `# EOF`.

use std::fmt::Write as _;

use prometheus::proto::{MetricFamily, MetricType};

/// The media type this encoder writes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// True when an `Accept` header asks for OpenMetrics text.
pub fn accepts(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let media = part.split(';').next().unwrap_or("").trim();
        media.eq_ignore_ascii_case("application/openmetrics-text")
    })
}

/// Encodes `families` as OpenMetrics text.
pub fn encode(families: &[MetricFamily]) -> Vec<u8> {
    let mut out = String::with_capacity(64 * 1024);
    for f in families {
        let name = f.name();
        let (family, kind, suffix) = match f.get_field_type() {
            MetricType::COUNTER => match name.strip_suffix("_total") {
                Some(base) => (base, "counter", "_total"),
                None => (name, "unknown", ""),
            },
            MetricType::GAUGE => (name, "gauge", ""),
            _ => (name, "unknown", ""),
        };
        let _ = writeln!(out, "# TYPE {family} {kind}");
        if !f.help().is_empty() {
            let _ = writeln!(out, "# HELP {family} {}", escape(f.help(), false));
        }
        for m in f.get_metric() {
            out.push_str(family);
            out.push_str(suffix);
            let labels = m.get_label();
            if !labels.is_empty() {
                out.push('{');
                for (i, l) in labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{}=\"{}\"", l.name(), escape(l.value(), true));
                }
                out.push('}');
            }
            let value = match f.get_field_type() {
                MetricType::COUNTER => m.get_counter().get_value(),
                MetricType::GAUGE => m.get_gauge().get_value(),
                // memmon writes counters and gauges only.
                _ => f64::NAN,
            };
            out.push(' ');
            out.push_str(&number(value));
            out.push('\n');
        }
    }
    out.push_str("# EOF\n");
    out.into_bytes()
}

/// Escapes `\`, newlines and (in label values) `"`.
fn escape(s: &str, quote: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::proto::{Counter, Gauge, LabelPair, Metric};

    fn fam(name: &str, ty: MetricType, value: f64, label: Option<(&str, &str)>) -> MetricFamily {
        let mut f = MetricFamily::default();
        f.set_name(name.into());
        f.set_help("a \\ help\nline".into());
        f.set_field_type(ty);
        let mut m = Metric::default();
        if let Some((k, v)) = label {
            let mut l = LabelPair::default();
            l.set_name(k.into());
            l.set_value(v.into());
            m.set_label(vec![l]);
        }
        match ty {
            MetricType::COUNTER => {
                let mut c = Counter::default();
                c.set_value(value);
                m.set_counter(c);
            }
            _ => {
                let mut g = Gauge::default();
                g.set_value(value);
                m.set_gauge(g);
            }
        }
        f.mut_metric().push(m);
        f
    }

    #[test]
    fn counters_lose_total_in_the_family_name_and_the_text_ends_with_eof() {
        let text = String::from_utf8(encode(&[
            fam(
                "memmon_kills_total",
                MetricType::COUNTER,
                3.0,
                Some(("cause", "a\"b")),
            ),
            fam("memmon_resident_bytes", MetricType::GAUGE, 1.5e9, None),
        ]))
        .expect("utf-8");
        assert_eq!(
            text,
            "# TYPE memmon_kills counter\n\
             # HELP memmon_kills a \\\\ help\\nline\n\
             memmon_kills_total{cause=\"a\\\"b\"} 3\n\
             # TYPE memmon_resident_bytes gauge\n\
             # HELP memmon_resident_bytes a \\\\ help\\nline\n\
             memmon_resident_bytes 1500000000\n\
             # EOF\n"
        );
    }

    #[test]
    fn accept_headers() {
        assert!(accepts(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        ));
        assert!(!accepts("text/plain;version=0.0.4"));
        assert!(!accepts(""));
    }
}
