//! The end-of-run report: JSON for machines, a table for people.

use std::fmt::Write;
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::stats::{Histogram, State};

const MIB: f64 = (1 << 20) as f64;

/// What the run was, as given on the command line.
pub struct Meta {
    pub scenario: String,
    pub url: String,
    pub concurrency: usize,
    pub elapsed: Duration,
    pub interrupted: bool,
    /// Whether MiB/s is a figure of merit here (upload, download, mixed).
    pub data: bool,
    /// The options that shaped the load, echoed into the JSON.
    pub config: Value,
}

/// One bucket of the time series.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// Seconds since the end of the warmup at which the bucket starts.
    pub t: f64,
    /// The bucket's length: 1 s except, usually, the last.
    pub secs: f64,
    pub ops: u64,
    pub errors: u64,
    pub ops_per_s: f64,
    pub mib_per_s: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// Microseconds as milliseconds (exact to the microsecond).
fn ms(us: u64) -> f64 {
    us as f64 / 1e3
}

fn round(v: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (v * f).round() / f
}

pub fn series(state: &State, elapsed: Duration) -> Vec<Point> {
    let el = elapsed.as_secs_f64();
    // A sliver of a last second (the stop lands a few ms past a whole
    // second) would plot as a misleading dip to zero: leave it out.
    let n = ((el - 0.05).ceil() as usize).max(1);
    (0..n)
        .map(|i| {
            let empty = Default::default();
            let s = state.series.get(i).unwrap_or(&empty);
            let secs = (el - i as f64).clamp(0.05, 1.0);
            let q = |q| (s.hist.count() > 0).then(|| ms(s.hist.quantile(q)));
            Point {
                t: i as f64,
                secs,
                ops: s.ops,
                errors: s.errors,
                ops_per_s: round(s.ops as f64 / secs, 2),
                mib_per_s: round(s.bytes as f64 / MIB / secs, 2),
                p50_ms: q(0.5),
                p99_ms: q(0.99),
            }
        })
        .collect()
}

fn latency(h: &Histogram) -> Value {
    if h.count() == 0 {
        return Value::Null;
    }
    json!({
        "min": ms(h.min()),
        "mean": round(h.mean() / 1e3, 3),
        "p50": ms(h.quantile(0.5)),
        "p90": ms(h.quantile(0.9)),
        "p99": ms(h.quantile(0.99)),
        "p999": ms(h.quantile(0.999)),
        "max": ms(h.max()),
    })
}

pub fn json(meta: &Meta, state: &State, points: &[Point]) -> Value {
    let secs = meta.elapsed.as_secs_f64().max(1e-9);
    let by_kind: Map<String, Value> = state
        .kinds
        .iter()
        .map(|(k, v)| {
            let ok = v.hist.count();
            let entry = json!({
                "count": ok + v.errors,
                "ok": ok,
                "errors": v.errors,
                "per_s": round(ok as f64 / secs, 2),
                "latency_ms": latency(&v.hist),
            });
            (k.clone(), entry)
        })
        .collect();
    json!({
        "tool": concat!("glance-load ", env!("CARGO_PKG_VERSION")),
        "scenario": meta.scenario,
        "url": meta.url,
        "concurrency": meta.concurrency,
        "config": meta.config,
        "duration_s": round(secs, 3),
        "interrupted": meta.interrupted,
        "ops": state.ops.count(),
        "failed_ops": state.failed_ops,
        "requests": state.requests,
        "errors": {"total": state.error_total(), "by_kind": state.errors},
        "ops_per_s": round(state.ops.count() as f64 / secs, 2),
        "bytes": state.bytes,
        "mib_per_s": round(state.bytes as f64 / MIB / secs, 2),
        "latency_ms": latency(&state.ops),
        "by_kind": by_kind,
        "series": points.iter().map(|p| json!({
            "t": p.t,
            "secs": round(p.secs, 3),
            "ops": p.ops,
            "errors": p.errors,
            "ops_per_s": p.ops_per_s,
            "mib_per_s": p.mib_per_s,
            "p50_ms": p.p50_ms,
            "p99_ms": p.p99_ms,
        })).collect::<Vec<_>>(),
    })
}

/// The human summary printed on stderr at the end.
pub fn table(meta: &Meta, state: &State) -> String {
    let secs = meta.elapsed.as_secs_f64().max(1e-9);
    let ops = state.ops.count();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nglance-load {}  {}  concurrency {}  {:.2} s{}",
        meta.scenario,
        meta.url,
        meta.concurrency,
        secs,
        if meta.interrupted {
            "  (interrupted)"
        } else {
            ""
        }
    );
    let _ = write!(
        out,
        "ops {ops}  {:.1} op/s  requests {}  errors {}",
        ops as f64 / secs,
        state.requests,
        state.error_total()
    );
    if meta.data {
        let _ = write!(
            out,
            "  {:.1} MiB in total, {:.1} MiB/s",
            state.bytes as f64 / MIB,
            state.bytes as f64 / MIB / secs
        );
    }
    let _ = writeln!(out);
    if !state.errors.is_empty() {
        let list: Vec<String> = state
            .errors
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(out, "errors by kind: {}", list.join(", "));
    }
    let _ = writeln!(
        out,
        "\n{:<14}{:>8}{:>7}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}",
        "latency (ms)", "ok", "errors", "min", "mean", "p50", "p90", "p99", "p99.9", "max"
    );
    let mut row = |name: &str, h: &Histogram, errors: u64| {
        // An all-failed row has no latency to show, not a latency of zero.
        let none = h.count() == 0;
        let f = |us: u64| {
            if none {
                "-".into()
            } else {
                format!("{:.2}", us as f64 / 1e3)
            }
        };
        let _ = writeln!(
            out,
            "{:<14}{:>8}{:>7}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}",
            name,
            h.count(),
            errors,
            f(h.min()),
            if none {
                "-".into()
            } else {
                format!("{:.2}", h.mean() / 1e3)
            },
            f(h.quantile(0.5)),
            f(h.quantile(0.9)),
            f(h.quantile(0.99)),
            f(h.quantile(0.999)),
            f(h.max())
        );
    };
    row("op", &state.ops, state.failed_ops);
    // Op kinds (`mixed`) first, then the requests they are made of.
    let (ops, requests): (Vec<_>, Vec<_>) =
        state.kinds.iter().partition(|(k, _)| k.starts_with("op."));
    for (k, v) in ops.into_iter().chain(requests) {
        row(k, &v.hist, v.errors);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{Probe, Recorder};
    use std::time::Instant;

    #[test]
    fn json_carries_totals_and_a_series_per_second() {
        let rec = Recorder::new(Instant::now());
        let p = Probe { record: true };
        for _ in 0..10 {
            rec.op_ok(p, None, Duration::from_millis(20));
            rec.request(p, "list", Duration::from_millis(20));
        }
        rec.bytes(p, 3 << 20);
        rec.op_failed(p, None, "list", "http_503");
        let meta = Meta {
            scenario: "list".into(),
            url: "http://127.0.0.1:9292".into(),
            concurrency: 2,
            elapsed: Duration::from_millis(2500),
            interrupted: false,
            data: false,
            config: json!({}),
        };
        let v = rec.with(|s| json(&meta, s, &series(s, meta.elapsed)));
        assert_eq!(v["ops"], 10);
        assert_eq!(v["errors"]["total"], 1);
        assert_eq!(v["errors"]["by_kind"]["http_503"], 1);
        assert_eq!(v["ops_per_s"], 4.0);
        assert_eq!(v["mib_per_s"], 1.2);
        assert_eq!(v["latency_ms"]["p50"], 20.0);
        assert_eq!(v["by_kind"]["list"]["count"], 11);
        let s = v["series"].as_array().unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0]["ops"], 10);
        assert_eq!(s[0]["p99_ms"], 20.0);
        assert_eq!(s[2]["secs"], 0.5);
        assert!(s[1]["p50_ms"].is_null());
        let sliver = rec.with(|s| series(s, Duration::from_millis(2020)));
        assert_eq!(sliver.len(), 2, "a 20 ms last bucket is dropped");
        let t = rec.with(|s| table(&meta, s));
        assert!(t.contains("http_503 1"), "{t}");
    }
}
