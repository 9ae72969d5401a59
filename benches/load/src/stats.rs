//! Latency histograms and the shared recorder every worker reports into.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Values below `2^PRECISION` get a bucket each; every octave above is split
/// into `2^(PRECISION-1)` buckets, so a bucket is at most 1/64 of its value
/// wide (HDR-style log-linear buckets, ~0.8 % error at the midpoint).
const PRECISION: u32 = 7;
const LINEAR: usize = 1 << PRECISION;
const HALF: usize = LINEAR / 2;

/// A log-bucketed histogram of microsecond values. Counts grow on demand, so
/// an idle per-second histogram costs almost nothing.
#[derive(Clone, Debug, Default)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    min: u64,
    max: u64,
    sum: u128,
}

fn bucket_of(v: u64) -> usize {
    if v < LINEAR as u64 {
        return v as usize;
    }
    let shift = 63 - v.leading_zeros() - (PRECISION - 1);
    ((shift as usize) << (PRECISION - 1)) + (v >> shift) as usize
}

/// The smallest and largest value that land in bucket `i`.
fn bucket_range(i: usize) -> (u64, u64) {
    if i < LINEAR {
        return (i as u64, i as u64);
    }
    let shift = (i / HALF - 1) as u32;
    let top = (i % HALF + HALF) as u64;
    let lo = top << shift;
    (lo, lo + (1u64 << shift) - 1)
}

impl Histogram {
    pub fn record(&mut self, v: u64) {
        let i = bucket_of(v);
        if i >= self.counts.len() {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] += 1;
        if self.total == 0 || v < self.min {
            self.min = v;
        }
        self.max = self.max.max(v);
        self.total += 1;
        self.sum += v as u128;
    }

    pub fn merge(&mut self, other: &Histogram) {
        if other.total == 0 {
            return;
        }
        if other.counts.len() > self.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        if self.total == 0 || other.min < self.min {
            self.min = other.min;
        }
        self.max = self.max.max(other.max);
        self.total += other.total;
        self.sum += other.sum;
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn min(&self) -> u64 {
        self.min
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// The value at quantile `q` (0..=1): the midpoint of the bucket holding
    /// the `ceil(q * n)`-th smallest value, clamped to the exact min and max
    /// so p0/p100 and single-value histograms are exact.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        if rank >= self.total {
            return self.max;
        }
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, hi) = bucket_range(i);
                return (lo + (hi - lo) / 2).clamp(self.min, self.max);
            }
        }
        self.max
    }
}

/// Whether an operation's measurements count: ops that start during the
/// warmup run fully but are left out of every figure.
#[derive(Clone, Copy, Debug)]
pub struct Probe {
    pub record: bool,
}

#[derive(Default)]
pub struct KindStats {
    pub hist: Histogram,
    pub errors: u64,
}

/// One second of the run's time series.
#[derive(Default)]
pub struct Second {
    pub ops: u64,
    pub bytes: u64,
    pub errors: u64,
    pub hist: Histogram,
}

#[derive(Default)]
pub struct State {
    /// Latency of whole operations (for `metadata`, all four calls).
    pub ops: Histogram,
    pub failed_ops: u64,
    pub requests: u64,
    pub bytes: u64,
    /// Per request kind (`create`, `upload`, ...), and per op kind in `mixed`.
    pub kinds: BTreeMap<String, KindStats>,
    /// Error counts keyed by `http_503`, `transport`, `timeout`, ...
    pub errors: BTreeMap<String, u64>,
    pub series: Vec<Second>,
}

impl State {
    pub fn error_total(&self) -> u64 {
        self.errors.values().sum()
    }

    fn second(&mut self, idx: usize) -> &mut Second {
        if idx >= self.series.len() {
            self.series.resize_with(idx + 1, Second::default);
        }
        &mut self.series[idx]
    }
}

/// Shared by all workers behind one mutex: each record is a few adds, and
/// even tens of thousands of ops a second barely contend on it.
pub struct Recorder {
    /// Measurement starts here, after the warmup.
    pub origin: Instant,
    /// Set at the deadline: ops still draining then are left out, so the
    /// figures cover exactly the measured window.
    closed: AtomicBool,
    state: Mutex<State>,
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u64::MAX as u128) as u64
}

impl Recorder {
    pub fn new(origin: Instant) -> Self {
        Recorder {
            origin,
            closed: AtomicBool::new(false),
            state: Mutex::new(State::default()),
        }
    }

    /// A probe for an op starting now: recorded only once the warmup is over.
    pub fn probe(&self) -> Probe {
        Probe {
            record: Instant::now() >= self.origin,
        }
    }

    /// Stops recording: see `closed`.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    fn counts(&self, probe: Probe) -> bool {
        probe.record && !self.closed.load(Ordering::Relaxed)
    }

    fn sec_idx(&self, at: Instant) -> usize {
        at.saturating_duration_since(self.origin).as_secs() as usize
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// One successful HTTP request.
    pub fn request(&self, probe: Probe, kind: &str, latency: Duration) {
        if !self.counts(probe) {
            return;
        }
        self.with(|s| {
            s.requests += 1;
            kind_entry(s, kind).hist.record(micros(latency));
        });
    }

    /// Bytes moved in either direction, counted as they flow so MiB/s is
    /// smooth even when one op carries gigabytes.
    pub fn bytes(&self, probe: Probe, n: u64) {
        if !self.counts(probe) {
            return;
        }
        let idx = self.sec_idx(Instant::now());
        self.with(|s| {
            s.bytes += n;
            s.second(idx).bytes += n;
        });
    }

    /// A completed operation; `kind` names it in `mixed` runs.
    pub fn op_ok(&self, probe: Probe, kind: Option<&str>, latency: Duration) {
        if !self.counts(probe) {
            return;
        }
        let us = micros(latency);
        let idx = self.sec_idx(Instant::now());
        self.with(|s| {
            s.ops.record(us);
            let sec = s.second(idx);
            sec.ops += 1;
            sec.hist.record(us);
            if let Some(k) = kind {
                kind_entry(s, k).hist.record(us);
            }
        });
    }

    /// A failed operation: the request `kind` that failed and why (`key`).
    pub fn op_failed(&self, probe: Probe, op_kind: Option<&str>, kind: &str, key: &str) {
        if !self.counts(probe) {
            return;
        }
        let idx = self.sec_idx(Instant::now());
        self.with(|s| {
            s.failed_ops += 1;
            s.requests += 1;
            *s.errors.entry(key.to_string()).or_default() += 1;
            kind_entry(s, kind).errors += 1;
            if let Some(k) = op_kind {
                kind_entry(s, k).errors += 1;
            }
            s.second(idx).errors += 1;
        });
    }
}

fn kind_entry<'a>(s: &'a mut State, kind: &str) -> &'a mut KindStats {
    if !s.kinds.contains_key(kind) {
        s.kinds.insert(kind.to_string(), KindStats::default());
    }
    s.kinds.get_mut(kind).expect("inserted above")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn within(actual: u64, expected: u64, rel: f64) -> bool {
        (actual as f64 - expected as f64).abs() <= expected as f64 * rel
    }

    #[test]
    fn buckets_are_contiguous_and_narrow() {
        let mut prev_hi = None;
        for i in 0..3000 {
            let (lo, hi) = bucket_range(i);
            if let Some(p) = prev_hi {
                assert_eq!(lo, p + 1, "gap before bucket {i}");
            }
            assert_eq!(bucket_of(lo), i);
            assert_eq!(bucket_of(hi), i);
            assert!((hi - lo) as f64 <= lo as f64 / 64.0 + 1.0);
            prev_hi = Some(hi);
        }
        assert_eq!(bucket_of(u64::MAX), bucket_of(u64::MAX - 1));
    }

    #[test]
    fn percentiles_of_a_uniform_range() {
        let mut h = Histogram::default();
        for v in 1..=100_000 {
            h.record(v);
        }
        assert_eq!(h.count(), 100_000);
        assert_eq!(h.min(), 1);
        assert_eq!(h.max(), 100_000);
        assert_eq!(h.quantile(0.0), 1);
        assert_eq!(h.quantile(1.0), 100_000);
        assert!(within(h.quantile(0.5), 50_000, 0.01), "{}", h.quantile(0.5));
        assert!(within(h.quantile(0.9), 90_000, 0.01));
        assert!(within(h.quantile(0.99), 99_000, 0.01));
        assert!(within(h.quantile(0.999), 99_900, 0.01));
        assert!((h.mean() - 50_000.5).abs() < 1e-6);
    }

    #[test]
    fn small_values_are_exact_and_outliers_show_in_the_tail() {
        let mut h = Histogram::default();
        for _ in 0..990 {
            h.record(42);
        }
        for _ in 0..10 {
            h.record(5_000_000);
        }
        assert_eq!(h.quantile(0.5), 42);
        assert_eq!(h.quantile(0.99), 42);
        assert!(within(h.quantile(0.995), 5_000_000, 0.01));
        assert_eq!(h.max(), 5_000_000);
        assert_eq!(Histogram::default().quantile(0.5), 0);
    }

    #[test]
    fn merge_equals_recording_into_one() {
        let (mut a, mut b, mut all) = (
            Histogram::default(),
            Histogram::default(),
            Histogram::default(),
        );
        for v in 0..1000u64 {
            let x = v * v;
            if v % 2 == 0 { &mut a } else { &mut b }.record(x);
            all.record(x);
        }
        a.merge(&b);
        assert_eq!(a.count(), all.count());
        assert_eq!((a.min(), a.max()), (all.min(), all.max()));
        for q in [0.1, 0.5, 0.9, 0.99] {
            assert_eq!(a.quantile(q), all.quantile(q));
        }
    }

    #[test]
    fn only_ops_inside_the_window_are_recorded() {
        let r = Recorder::new(Instant::now() + Duration::from_secs(3600));
        let p = r.probe();
        assert!(!p.record);
        r.op_ok(p, None, Duration::from_millis(5));
        r.op_failed(p, None, "get", "http_500");
        r.with(|s| {
            assert_eq!(s.ops.count(), 0);
            assert_eq!(s.error_total(), 0);
        });
        let r = Recorder::new(Instant::now());
        let p = r.probe();
        r.op_ok(p, Some("op.list"), Duration::from_millis(5));
        r.op_failed(p, None, "get", "http_500");
        r.close();
        r.op_ok(p, None, Duration::from_millis(5));
        r.with(|s| {
            assert_eq!(s.ops.count(), 1, "ops ending after close() are left out");
            assert_eq!(s.errors["http_500"], 1);
            assert_eq!(s.kinds["get"].errors, 1);
            assert_eq!(s.series[0].ops, 1);
        });
    }
}
