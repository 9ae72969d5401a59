//! Workers, the stop conditions (deadline, op count, Ctrl-C) and the live
//! progress line.

use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::scenario::Scenario;
use crate::stats::{Histogram, Recorder};

static QUIET: AtomicBool = AtomicBool::new(false);
/// A progress line without a newline is on the terminal.
static LINE_OPEN: AtomicBool = AtomicBool::new(false);

pub fn set_quiet(q: bool) {
    QUIET.store(q, Ordering::Relaxed);
}

/// An informational line on stderr (silenced by `--quiet`).
pub fn note(msg: &str) {
    if !QUIET.load(Ordering::Relaxed) {
        warn(msg);
    }
}

/// A line on stderr that first clears an open progress line.
pub fn warn(msg: &str) {
    let mut err = std::io::stderr().lock();
    if LINE_OPEN.swap(false, Ordering::Relaxed) {
        let _ = write!(err, "\r\x1b[2K");
    }
    let _ = writeln!(err, "{msg}");
}

pub struct Plan {
    pub concurrency: usize,
    pub duration: Option<Duration>,
    pub count: Option<u64>,
    pub warmup: Duration,
}

pub struct Outcome {
    pub rec: Arc<Recorder>,
    /// From the end of the warmup to the stop.
    pub elapsed: Duration,
    pub interrupted: bool,
}

/// How long in-flight ops may finish after the stop before they are cut.
const GRACE: Duration = Duration::from_secs(30);

/// Runs `plan.concurrency` workers until the deadline, the op count or
/// Ctrl-C. At the stop the recorder closes, so the window is exact, and ops
/// in flight are let finish (unrecorded) rather than cut: a cut request
/// leaves a half-made image behind and an error in the server's log.
pub async fn run(scn: Arc<Scenario>, plan: Plan, data: bool) -> Outcome {
    let start = Instant::now();
    let origin = start + plan.warmup;
    let rec = Arc::new(Recorder::new(origin));
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let interrupted = Arc::new(AtomicBool::new(false));
    let stop = {
        let (tx, at, rec) = (Arc::new(stop_tx), stopped_at.clone(), rec.clone());
        move || {
            rec.close();
            at.lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert_with(Instant::now);
            tx.send_replace(true);
        }
    };

    if let Some(d) = plan.duration {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until((origin + d).into()).await;
            stop();
        });
    }
    {
        let (stop, interrupted) = (stop.clone(), interrupted.clone());
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                interrupted.store(true, Ordering::Relaxed);
                stop();
            }
        });
    }

    let claimed = Arc::new(AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..plan.concurrency {
        let (scn, rec, claimed, stop_rx) =
            (scn.clone(), rec.clone(), claimed.clone(), stop_rx.clone());
        let count = plan.count;
        workers.spawn(async move {
            let mut rng = 0x2545_F491_4F6C_DD1D_u64 ^ ((w as u64 + 1) * 0x9E37_79B9);
            while !*stop_rx.borrow() {
                // Only measured ops use up the count.
                if let (Some(n), true) = (count, Instant::now() >= origin)
                    && claimed.fetch_add(1, Ordering::Relaxed) >= n
                {
                    break;
                }
                scn.run_op(&rec, &mut rng).await;
            }
        });
    }

    let progress = (!QUIET.load(Ordering::Relaxed)).then(|| {
        let rec = rec.clone();
        tokio::spawn(progress(rec, origin, plan.warmup, data))
    });
    {
        let drain = async { while workers.join_next().await.is_some() {} };
        tokio::pin!(drain);
        let mut stop_seen = stop_rx.clone();
        tokio::select! {
            _ = &mut drain => {}
            _ = stop_seen.wait_for(|s| *s) => {
                if let Some(p) = &progress {
                    p.abort();
                }
                if tokio::time::timeout(Duration::from_secs(2), &mut drain).await.is_err() {
                    note(&format!(
                        "stopped; letting in-flight ops finish (up to {GRACE:?}, Ctrl-C to cut)"
                    ));
                    tokio::select! {
                        _ = &mut drain => {}
                        _ = tokio::time::sleep(GRACE) => warn("in-flight ops cut after the grace period"),
                        _ = tokio::signal::ctrl_c() => warn("in-flight ops cut"),
                    }
                }
            }
        }
    }
    // Whatever is still running was cut; teardown deletes what it made.
    workers.abort_all();
    while workers.join_next().await.is_some() {}
    if let Some(p) = progress {
        p.abort();
    }
    if LINE_OPEN.swap(false, Ordering::Relaxed) {
        eprintln!();
    }
    rec.close();
    let end = stopped_at
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .unwrap_or_else(Instant::now);
    Outcome {
        rec,
        elapsed: end.saturating_duration_since(origin),
        interrupted: interrupted.load(Ordering::Relaxed),
    }
}

/// Redraws one line every 0.5 s on a terminal; elsewhere (CI logs) prints a
/// plain line every 2 s. Rates cover the last few seconds, not the whole run,
/// so a stall shows up at once.
async fn progress(rec: Arc<Recorder>, origin: Instant, warmup: Duration, data: bool) {
    let tty = std::io::stderr().is_terminal();
    let period = Duration::from_millis(if tty { 500 } else { 2000 });
    let window = period.max(Duration::from_secs(2));
    let mut history: VecDeque<(Instant, u64, u64)> = VecDeque::new();
    let mut tick = tokio::time::interval(period);
    tick.tick().await;
    loop {
        tick.tick().await;
        let now = Instant::now();
        let line = if now < origin {
            format!(
                "warmup {:.1}/{:.1}s",
                warmup.saturating_sub(origin - now).as_secs_f64(),
                warmup.as_secs_f64()
            )
        } else {
            let (ops, bytes, errors, recent) = rec.with(|s| {
                let cur = now.duration_since(origin).as_secs() as usize;
                let mut h = Histogram::default();
                for sec in s.series.iter().skip(cur.saturating_sub(4)) {
                    h.merge(&sec.hist);
                }
                (s.ops.count(), s.bytes, s.error_total(), h)
            });
            history.push_back((now, ops, bytes));
            while history.len() > 2 && now - history[1].0 >= window {
                history.pop_front();
            }
            let (t0, ops0, bytes0) = if history.len() > 1 {
                history[0]
            } else {
                (origin, 0, 0)
            };
            let dt = (now - t0).as_secs_f64().max(1e-3);
            let mut line = format!(
                "{:7.1}s  ops {ops}  {:.1} op/s",
                now.duration_since(origin).as_secs_f64(),
                (ops - ops0) as f64 / dt
            );
            if data {
                let mib = (bytes - bytes0) as f64 / dt / (1 << 20) as f64;
                line.push_str(&format!("  {mib:.1} MiB/s"));
            }
            line.push_str(&format!("  errors {errors}"));
            if recent.count() > 0 {
                line.push_str(&format!(
                    "  p50 {:.1} ms  p99 {:.1} ms",
                    recent.quantile(0.5) as f64 / 1e3,
                    recent.quantile(0.99) as f64 / 1e3
                ));
            }
            line
        };
        let mut err = std::io::stderr().lock();
        if tty {
            let _ = write!(err, "\r\x1b[2K{line}");
            let _ = err.flush();
            LINE_OPEN.store(true, Ordering::Relaxed);
        } else {
            let _ = writeln!(err, "{line}");
        }
    }
}
