//! A self-contained SVG chart of the time series, written by hand: two
//! panels (throughput, latency) sharing the time axis.

use std::fmt::Write;

use crate::report::Point;

const W: f64 = 900.0;
const H: f64 = 580.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 70.0;
/// Top and bottom y of each panel's plot area.
const PANELS: [(f64, f64); 2] = [(60.0, 270.0), (330.0, 530.0)];

const BLUE: &str = "#1f77b4";
const ORANGE: &str = "#ff7f0e";
const RED: &str = "#d62728";
const GREEN: &str = "#2ca02c";
const PURPLE: &str = "#9467bd";

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Round tick values from 0 covering `max`: steps of 1, 2 or 5 x 10^k, about
/// five of them. The last tick is the axis maximum.
pub fn ticks(max: f64) -> Vec<f64> {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    };
    let raw = max / 5.0;
    let exp = raw.log10().floor() as i32;
    let mag = 10f64.powi(exp);
    let mult = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .find(|m| m * mag >= raw)
        .unwrap_or(10.0);
    let n = (max / (mult * mag) - 1e-9).ceil().max(1.0) as usize;
    // Integer multiples scaled once, so 0.6 is 0.6 and not 0.6000000000000001.
    let at = |i: usize| {
        let units = i as f64 * mult;
        if exp < 0 {
            units / 10f64.powi(-exp)
        } else {
            units * mag
        }
    };
    (0..=n).map(at).collect()
}

fn label(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').to_string()
    }
}

struct Line<'a> {
    name: &'a str,
    color: &'a str,
    /// Plotted against the right-hand axis.
    right: bool,
    values: Vec<Option<f64>>,
}

struct Panel<'a> {
    title: &'a str,
    left_unit: &'a str,
    right_unit: Option<&'a str>,
    lines: Vec<Line<'a>>,
}

/// The chart for `points`; `data` adds MiB/s to the throughput panel.
pub fn chart(title: &str, points: &[Point], data: bool) -> String {
    let xs: Vec<f64> = points.iter().map(|p| p.t + p.secs / 2.0).collect();
    let t_max = points.last().map_or(1.0, |p| p.t + p.secs).max(1.0);
    let mut throughput = vec![Line {
        name: "ops/s",
        color: BLUE,
        right: false,
        values: points.iter().map(|p| Some(p.ops_per_s)).collect(),
    }];
    if points.iter().any(|p| p.errors > 0) {
        throughput.push(Line {
            name: "errors/s",
            color: PURPLE,
            right: false,
            values: points
                .iter()
                .map(|p| Some(p.errors as f64 / p.secs))
                .collect(),
        });
    }
    if data {
        throughput.push(Line {
            name: "MiB/s",
            color: ORANGE,
            right: true,
            values: points.iter().map(|p| Some(p.mib_per_s)).collect(),
        });
    }
    let panels = [
        Panel {
            title: "Throughput",
            left_unit: "ops/s",
            right_unit: data.then_some("MiB/s"),
            lines: throughput,
        },
        Panel {
            title: "Latency per second (completed ops)",
            left_unit: "ms",
            right_unit: None,
            lines: vec![
                Line {
                    name: "p50",
                    color: GREEN,
                    right: false,
                    values: points.iter().map(|p| p.p50_ms).collect(),
                },
                Line {
                    name: "p99",
                    color: RED,
                    right: false,
                    values: points.iter().map(|p| p.p99_ms).collect(),
                },
            ],
        },
    ];

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{x}" y="24" text-anchor="middle" font-size="15" font-weight="bold">{t}</text>"#,
        x = W / 2.0,
        t = escape(title)
    );
    let x_ticks = ticks(t_max);
    let x_max = *x_ticks.last().expect("ticks are never empty");
    let px = |t: f64| LEFT + t / x_max * (W - LEFT - RIGHT);
    for (panel, &(top, bottom)) in panels.iter().zip(&PANELS) {
        draw_panel(&mut s, panel, top, bottom, &xs, &x_ticks, &px);
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">time since warmup (s)</text>"#,
        LEFT + (W - LEFT - RIGHT) / 2.0,
        H - 12.0
    );
    s.push_str("</svg>\n");
    s
}

fn draw_panel(
    s: &mut String,
    p: &Panel,
    top: f64,
    bottom: f64,
    xs: &[f64],
    x_ticks: &[f64],
    px: &dyn Fn(f64) -> f64,
) {
    let (x0, x1) = (LEFT, W - RIGHT);
    let max_of = |right: bool| {
        p.lines
            .iter()
            .filter(|l| l.right == right)
            .flat_map(|l| l.values.iter().flatten())
            .fold(0.0f64, |a, &b| a.max(b))
    };
    let left_ticks = ticks(max_of(false));
    let right_ticks = ticks(max_of(true));
    let scale = |ticks: &[f64]| *ticks.last().expect("ticks are never empty");
    let (lmax, rmax) = (scale(&left_ticks), scale(&right_ticks));
    let py = |v: f64, max: f64| bottom - v / max * (bottom - top);

    let _ = writeln!(s, r#"<g class="panel">"#);
    let _ = writeln!(
        s,
        r#"<text x="{x0}" y="{}" font-weight="bold">{}</text>"#,
        top - 10.0,
        escape(p.title)
    );
    // Grid and left axis labels.
    for &v in &left_ticks {
        let y = py(v, lmax);
        let _ = writeln!(
            s,
            r##"<line x1="{x0}" y1="{y:.1}" x2="{x1}" y2="{y:.1}" stroke="#e0e0e0"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            x0 - 6.0,
            y + 4.0,
            label(v)
        );
    }
    if p.right_unit.is_some() {
        for &v in &right_ticks {
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{:.1}" fill="{ORANGE}">{}</text>"#,
                x1 + 6.0,
                py(v, rmax) + 4.0,
                label(v)
            );
        }
    }
    for &t in x_ticks {
        let x = px(t);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{bottom}" x2="{x:.1}" y2="{}" stroke="#333"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"##,
            bottom + 4.0,
            bottom + 17.0,
            label(t)
        );
    }
    let _ = writeln!(
        s,
        r##"<path d="M{x0} {top} V{bottom} H{x1}{}" fill="none" stroke="#333"/>"##,
        if p.right_unit.is_some() {
            format!(" V{top}")
        } else {
            String::new()
        }
    );
    let mid = (top + bottom) / 2.0;
    let _ = writeln!(
        s,
        r#"<text transform="translate({},{mid}) rotate(-90)" text-anchor="middle">{}</text>"#,
        x0 - 52.0,
        escape(p.left_unit)
    );
    if let Some(u) = p.right_unit {
        let _ = writeln!(
            s,
            r#"<text transform="translate({},{mid}) rotate(90)" text-anchor="middle" fill="{ORANGE}">{}</text>"#,
            x1 + 52.0,
            escape(u)
        );
    }
    // Series: a gap (no completed op that second) breaks the line.
    for l in &p.lines {
        let max = if l.right { rmax } else { lmax };
        let mut d = String::new();
        let mut pen_down = false;
        for (x, v) in xs.iter().zip(&l.values) {
            match v {
                Some(v) => {
                    let _ = write!(
                        d,
                        "{}{:.1} {:.1} ",
                        if pen_down { "L" } else { "M" },
                        px(*x),
                        py(*v, max)
                    );
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        let _ = writeln!(
            s,
            r#"<path class="series" d="{}" fill="none" stroke="{}" stroke-width="1.8" stroke-linejoin="round"/>"#,
            d.trim_end(),
            l.color
        );
        // Dots make single points and short runs visible.
        if xs.len() <= 120 {
            for (x, v) in xs.iter().zip(&l.values) {
                if let Some(v) = v {
                    let _ = writeln!(
                        s,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="2.2" fill="{}"/>"#,
                        px(*x),
                        py(*v, max),
                        l.color
                    );
                }
            }
        }
    }
    // Legend: one row right-aligned above the plot, where no data can hide it.
    let width = |l: &Line| 34.0 + 7.0 * l.name.len() as f64;
    let mut lx = x1 - p.lines.iter().map(width).sum::<f64>();
    let y = top - 14.0;
    for l in &p.lines {
        let _ = writeln!(
            s,
            r#"<line x1="{lx:.1}" y1="{y}" x2="{:.1}" y2="{y}" stroke="{}" stroke-width="3"/><text x="{:.1}" y="{}">{}</text>"#,
            lx + 22.0,
            l.color,
            lx + 27.0,
            y + 4.0,
            escape(l.name)
        );
        lx += width(l);
    }
    let _ = writeln!(s, "</g>");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(t: f64, ops: u64, p50: Option<f64>) -> Point {
        Point {
            t,
            secs: 1.0,
            ops,
            errors: if t == 2.0 { 3 } else { 0 },
            ops_per_s: ops as f64,
            mib_per_s: ops as f64 * 2.0,
            p50_ms: p50,
            p99_ms: p50.map(|v| v * 3.0),
        }
    }

    /// Every opened element is closed, in order: enough to catch a broken
    /// format string without an XML parser.
    fn assert_well_formed(svg: &str) {
        let mut stack: Vec<String> = Vec::new();
        for tag in svg.split('<').skip(1) {
            let tag = &tag[..tag.find('>').expect("unclosed <")];
            if tag.starts_with('?') || tag.ends_with('/') {
                continue;
            }
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop().as_deref(), Some(name), "mismatched </{name}>");
            } else {
                stack.push(tag.split_whitespace().next().unwrap().to_string());
            }
        }
        assert!(stack.is_empty(), "unclosed: {stack:?}");
    }

    #[test]
    fn chart_has_two_panels_legends_and_escaped_title() {
        let pts = vec![
            point(0.0, 10, Some(5.0)),
            point(1.0, 12, None),
            point(2.0, 8, Some(7.5)),
        ];
        let svg = chart("upload <http://h/?a=1&b=2>", &pts, true);
        assert_well_formed(&svg);
        assert!(svg.starts_with("<?xml"));
        assert_eq!(svg.matches(r#"<g class="panel">"#).count(), 2);
        assert!(svg.contains("upload &lt;http://h/?a=1&amp;b=2&gt;"));
        for name in [">ops/s<", ">MiB/s<", ">errors/s<", ">p50<", ">p99<"] {
            assert!(svg.contains(name), "legend {name} missing");
        }
        // ops/s, errors/s, MiB/s, p50, p99; the p50 gap at t=1 splits it.
        assert_eq!(svg.matches(r#"class="series""#).count(), 5);
        assert!(svg.contains(r#"d="M"#));
        assert_eq!(
            svg.matches("\" stroke=\"#2ca02c\" stroke-width=\"1.8\"")
                .count(),
            1
        );
        let p50 = svg
            .lines()
            .find(|l| l.contains("series") && l.contains(GREEN))
            .unwrap();
        assert_eq!(p50.matches('M').count(), 2, "{p50}");
    }

    #[test]
    fn chart_without_data_or_points_is_still_valid() {
        let svg = chart("metadata", &[], false);
        assert_well_formed(&svg);
        assert!(!svg.contains("MiB/s"));
        assert_eq!(svg.matches(r#"<g class="panel">"#).count(), 2);
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(ticks(97.0), vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        assert_eq!(ticks(5.0), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(ticks(0.0), vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        assert_eq!(ticks(1234.0), vec![0.0, 500.0, 1000.0, 1500.0]);
        assert_eq!(label(0.25), "0.25");
        assert_eq!(label(1400.0), "1400");
    }
}
