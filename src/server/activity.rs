//! Whether a connection is serving a request, so that one left idle is closed.
//!
//! hyper restarts its header read timer each time an HTTP/1.1 connection goes
//! idle, so `header_read_timeout` already closes those. Nothing bounds an idle
//! HTTP/2 connection, nor one that never sends a byte (hyper-util's protocol
//! detection reads with no timer). A request is in flight from the moment the
//! service is called until hyper drops its response body, sent or abandoned.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// The requests in flight on one connection.
#[derive(Debug)]
pub struct Activity {
    counts: watch::Sender<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    in_flight: usize,
    started: u64,
}

/// One request in flight; dropping it ends it.
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.counts.send_modify(|c| c.in_flight -= 1);
    }
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Activity {
            counts: watch::Sender::new(Counts::default()),
        })
    }

    pub fn start(self: &Arc<Self>) -> InFlight {
        self.counts.send_modify(|c| {
            c.in_flight += 1;
            c.started += 1;
        });
        InFlight(self.clone())
    }

    /// Completes once no request has been in flight for `first` (before the
    /// first request) or `later` (after one); `None` waits forever.
    pub async fn idle(&self, first: Option<Duration>, later: Option<Duration>) {
        let mut rx = self.counts.subscribe();
        loop {
            // The sender lives in `self`, so neither wait can fail.
            let wait = match rx.wait_for(|c| c.in_flight == 0).await {
                Ok(c) if c.started > 0 => later,
                _ => first,
            };
            match wait {
                Some(d) => {
                    tokio::select! {
                        _ = tokio::time::sleep(d) => return,
                        _ = rx.changed() => {}
                    }
                }
                None => {
                    let _ = rx.changed().await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_counts_from_the_last_request_and_never_during_one() {
        let a = Activity::new();
        let first = Some(Duration::from_secs(5));
        let later = Some(Duration::from_secs(60));
        // Never used: idle after `first`.
        let t0 = tokio::time::Instant::now();
        a.idle(first, later).await;
        assert_eq!(t0.elapsed(), Duration::from_secs(5));

        // A request that lasts 600 s, then 60 s of quiet.
        let b = Activity::new();
        let req = b.start();
        let t0 = tokio::time::Instant::now();
        let idle = b.idle(first, later);
        tokio::pin!(idle);
        tokio::select! {
            _ = &mut idle => panic!("idle while a request is in flight"),
            _ = tokio::time::sleep(Duration::from_secs(600)) => {}
        }
        drop(req);
        idle.await;
        assert_eq!(t0.elapsed(), Duration::from_secs(660));

        // `None` never ends.
        let c = Activity::new();
        tokio::select! {
            _ = c.idle(None, None) => panic!("no timeout was set"),
            _ = tokio::time::sleep(Duration::from_secs(100_000)) => {}
        }
    }
}
