//! SVG line charts for the cost curves (scale.rs): a few panels side by
//! side, log-scaled x, one polyline per series, written without a
//! plotting crate (the charts are small and fixed).

use std::fmt::Write as _;

/// One series: its name, colour and (x, y) points in x order.
pub struct Series {
    pub name: String,
    pub colour: &'static str,
    pub points: Vec<(f64, f64)>,
}

/// One panel: a title, axis labels and its series.
pub struct Panel {
    pub title: String,
    pub x_label: &'static str,
    pub y_label: &'static str,
    pub series: Vec<Series>,
}

const W: f64 = 340.0;
const H: f64 = 260.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 14.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 44.0;

/// A "nice" upper bound for an axis that must reach `max`.
fn nice_ceiling(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let step = 10f64.powf(max.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * step >= max {
            return m * step;
        }
    }
    10.0 * step
}

fn panel(out: &mut String, p: &Panel, x0: f64) {
    let xs: Vec<f64> = p
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|q| q.0))
        .filter(|x| *x > 0.0)
        .collect();
    let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = xs.iter().copied().fold(0.0, f64::max);
    let (lo, hi) = if lo.is_finite() && hi > lo {
        (
            10f64.powf(lo.log10().floor()),
            10f64.powf(hi.log10().ceil()),
        )
    } else {
        (1.0, 10.0)
    };
    let ymax = nice_ceiling(
        p.series
            .iter()
            .flat_map(|s| s.points.iter().map(|q| q.1))
            .fold(0.0, f64::max)
            * 1.05,
    );
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let sx = |x: f64| x0 + LEFT + (x.log10() - lo.log10()) / (hi.log10() - lo.log10()) * pw;
    let sy = |y: f64| TOP + ph - y / ymax * ph;
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="18" font-size="13" text-anchor="middle">{}</text>"#,
        x0 + LEFT + pw / 2.0,
        p.title
    );
    let _ = writeln!(
        out,
        r##"<rect x="{:.1}" y="{TOP}" width="{pw:.1}" height="{ph:.1}" fill="none" stroke="#888"/>"##,
        x0 + LEFT
    );
    // x ticks at powers of ten.
    let mut t = lo;
    while t <= hi * 1.0001 {
        let x = sx(t);
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" font-size="10" text-anchor="middle">{t}</text>"##,
            TOP,
            TOP + ph,
            TOP + ph + 13.0
        );
        t *= 10.0;
    }
    for i in 0..=4 {
        let v = ymax * f64::from(i) / 4.0;
        let y = sy(v);
        let _ = writeln!(
            out,
            r##"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="end">{}</text>"##,
            x0 + LEFT,
            x0 + LEFT + pw,
            x0 + LEFT - 4.0,
            y + 3.0,
            trim(v)
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"#,
        x0 + LEFT + pw / 2.0,
        H - 8.0,
        p.x_label
    );
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle" transform="rotate(-90 {:.1} {:.1})">{}</text>"#,
        x0 + 12.0,
        TOP + ph / 2.0,
        x0 + 12.0,
        TOP + ph / 2.0,
        p.y_label
    );
    for (i, s) in p.series.iter().enumerate() {
        let pts: Vec<String> = s
            .points
            .iter()
            .filter(|q| q.0 > 0.0)
            .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
            .collect();
        if pts.len() > 1 {
            let _ = writeln!(
                out,
                r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>"#,
                pts.join(" "),
                s.colour
            );
        }
        for q in s.points.iter().filter(|q| q.0 > 0.0) {
            let _ = writeln!(
                out,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"/>"#,
                sx(q.0),
                sy(q.1),
                s.colour
            );
        }
        let ly = TOP + 12.0 + 13.0 * i as f64;
        let _ = writeln!(
            out,
            r#"<rect x="{:.1}" y="{:.1}" width="10" height="3" fill="{c}"/><text x="{:.1}" y="{:.1}" font-size="10">{}</text>"#,
            x0 + LEFT + 6.0,
            ly - 4.0,
            x0 + LEFT + 20.0,
            ly,
            s.name,
            c = s.colour
        );
    }
}

/// `v` without trailing zeros.
fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The panels, side by side, as one SVG document.
pub fn svg(panels: &[Panel]) -> String {
    let width = W * panels.len() as f64;
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{H:.0}" viewBox="0 0 {width:.0} {H:.0}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
"#
    );
    for (i, p) in panels.iter().enumerate() {
        panel(&mut out, p, W * i as f64);
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(1.3), 2.0);
        assert_eq!(nice_ceiling(11.0), 20.0);
        assert_eq!(nice_ceiling(37.5), 50.0);
    }

    #[test]
    fn a_series_is_a_polyline_through_its_points() {
        let doc = svg(&[Panel {
            title: "t".into(),
            x_label: "x",
            y_label: "y",
            series: vec![Series {
                name: "a".into(),
                colour: "red",
                points: vec![(100.0, 0.0), (10000.0, 2.0)],
            }],
        }]);
        assert!(doc.starts_with("<svg"));
        assert_eq!(doc.matches("<circle").count(), 2);
        // 100 is the left edge of the plot, 10000 the right; 0 the bottom,
        // and 2 is 4/5 of the way up (the axis ends at 2.5).
        let ph = H - TOP - BOTTOM;
        assert!(doc.contains(&format!("{:.1},{:.1}", LEFT, TOP + ph)));
        assert!(doc.contains(&format!("{:.1},{:.1}", W - RIGHT, TOP + ph * 0.2)));
    }
}
