//! What requests in flight on this node have taken against each project's
//! limits, so that checking a limit and taking from it are one step.
//!
//! The database learns of an image (or of its bytes) only when the request
//! that makes it lands. Until then the ledger counts what the request took as
//! *in flight*; when it lands, that moves to *committed*. A request compares a
//! limit with
//!
//! ```text
//! usage read from the database + in flight now + committed since its snapshot
//! ```
//!
//! Each project has a gate. A request holds it from its snapshot of
//! *committed* through its database read to its check; a request that lands
//! holds it from just before its database write until the ledger has moved it
//! to *committed*. So no landing falls between a snapshot and a read, and each
//! request is counted exactly once: by the database, or by the ledger.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

/// Reservations per project; see the module documentation.
#[derive(Debug, Default)]
pub struct Ledger {
    projects: Mutex<HashMap<String, Project>>,
}

#[derive(Debug, Default)]
struct Project {
    /// Held from a request's snapshot to its check, and by a landing from its
    /// database write to its commit in the ledger.
    gate: Arc<tokio::sync::Mutex<()>>,
    bytes: Tally,
    images: Tally,
    /// Images of the project receiving data through this node.
    uploading: HashSet<String>,
    /// Live holds; the entry goes when the last one does.
    holders: usize,
}

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    in_flight: u64,
    committed: u64,
}

impl Tally {
    fn used(&self, from_db: u64, snapshot: u64) -> u64 {
        from_db
            .saturating_add(self.in_flight)
            .saturating_add(self.committed - snapshot)
    }
}

/// Refused: what was in use, and what this request had already taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Over {
    pub used: u64,
    pub mine: u64,
}

impl Ledger {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Project>> {
        // A panic elsewhere while holding the lock leaves plain counters behind,
        // which are still the best numbers there are.
        self.projects.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a request's reservations. Read the database's usage while the
    /// returned [`Checking`] lives, check and take through it, then let it go
    /// with [`Checking::done`] before the request runs.
    pub(crate) async fn hold(self: &Arc<Self>, project: &str) -> Checking {
        let gate = {
            let mut projects = self.lock();
            let p = projects.entry(project.to_string()).or_default();
            p.holders += 1;
            p.gate.clone()
        };
        let hold = Arc::new(Hold {
            ledger: self.clone(),
            project: project.to_string(),
            state: Mutex::new(HoldState::default()),
        });
        let gate = gate.lock_owned().await;
        hold.with(|p, s| {
            s.bytes_snapshot = p.bytes.committed;
            s.images_snapshot = p.images.committed;
        });
        Checking { hold, gate }
    }
}

/// A hold whose snapshot is still consistent with the database read being made.
pub(crate) struct Checking {
    hold: Arc<Hold>,
    gate: tokio::sync::OwnedMutexGuard<()>,
}

impl std::ops::Deref for Checking {
    type Target = Hold;

    fn deref(&self) -> &Hold {
        &self.hold
    }
}

impl Checking {
    /// The checks are made: others may land again.
    pub(crate) fn done(self) -> Arc<Hold> {
        self.hold
    }

    /// The checks are made and the request lands right away (a create): the
    /// gate stays held until [`Hold::commit`] or until the hold is dropped.
    pub(crate) fn landing(self) -> Arc<Hold> {
        self.hold.set_landing(self.gate);
        self.hold
    }
}

/// One request's reservations: released when dropped, kept by [`Hold::commit`].
#[derive(Debug)]
pub(crate) struct Hold {
    ledger: Arc<Ledger>,
    project: String,
    state: Mutex<HoldState>,
}

#[derive(Debug, Default)]
struct HoldState {
    bytes_snapshot: u64,
    images_snapshot: u64,
    bytes: u64,
    images: u64,
    upload: Option<String>,
    committed: bool,
    /// The project's gate, held while this request lands.
    landing: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Hold {
    fn with<R>(&self, f: impl FnOnce(&mut Project, &mut HoldState) -> R) -> R {
        let mut projects = self.ledger.lock();
        let p = projects.entry(self.project.clone()).or_default();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(p, &mut state)
    }

    /// Takes `n` images if `from_db` plus everything in flight stays within `max`.
    pub(crate) fn take_images(&self, from_db: u64, max: u64, n: u64) -> Result<(), u64> {
        self.with(|p, s| {
            let used = p.images.used(from_db, s.images_snapshot);
            if used.saturating_add(n) > max {
                return Err(used);
            }
            p.images.in_flight += n;
            s.images += n;
            Ok(())
        })
    }

    /// Takes `n` bytes if `from_db` plus everything in flight stays within `max`.
    pub(crate) fn take_bytes(&self, from_db: u64, max: u64, n: u64) -> Result<(), Over> {
        self.with(|p, s| {
            let used = p.bytes.used(from_db, s.bytes_snapshot);
            if used.saturating_add(n) > max {
                return Err(Over {
                    used: used - s.bytes,
                    mine: s.bytes,
                });
            }
            p.bytes.in_flight += n;
            s.bytes += n;
            Ok(())
        })
    }

    /// Bytes in use as far as this request can tell, not counting its own.
    pub(crate) fn bytes_used(&self, from_db: u64) -> u64 {
        self.with(|p, s| p.bytes.used(from_db, s.bytes_snapshot) - s.bytes)
    }

    /// Counts `id` among the project's uploads if fewer than `max` are running:
    /// those the database knows of and those this node has started.
    pub(crate) fn start_upload(&self, from_db: &[String], id: &str, max: u64) -> Result<(), u64> {
        self.with(|p, s| {
            let others = from_db
                .iter()
                .filter(|i| i.as_str() != id && !p.uploading.contains(*i))
                .count()
                + p.uploading.iter().filter(|i| i.as_str() != id).count();
            if others as u64 >= max {
                return Err(others as u64);
            }
            p.uploading.insert(id.to_string());
            s.upload = Some(id.to_string());
            Ok(())
        })
    }

    /// Gives back the bytes taken so far: the upload has failed and will store
    /// nothing, so uploads racing it may use the room at once.
    pub(crate) fn release_bytes(&self) {
        self.with(|p, s| {
            if !s.committed {
                p.bytes.in_flight -= s.bytes;
                s.bytes = 0;
            }
        });
    }

    /// The project's gate, for a request about to land.
    pub(crate) fn gate(&self) -> Arc<tokio::sync::Mutex<()>> {
        self.with(|p, _| p.gate.clone())
    }

    /// Keeps the gate until the request has landed (see the module documentation).
    pub(crate) fn set_landing(&self, gate: tokio::sync::OwnedMutexGuard<()>) {
        self.with(|_, s| s.landing = Some(gate));
    }

    /// The request succeeded: what it took is now in the database.
    pub(crate) async fn commit(&self) {
        let landing = self.with(|_, s| s.landing.take());
        let _gate = match landing {
            Some(held) => held,
            None => self.gate().lock_owned().await,
        };
        self.with(|p, s| {
            if s.committed {
                return;
            }
            s.committed = true;
            p.bytes.committed += s.bytes;
            p.bytes.in_flight -= s.bytes;
            p.images.committed += s.images;
            p.images.in_flight -= s.images;
        });
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        let mut projects = self.ledger.lock();
        let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        let Some(p) = projects.get_mut(&self.project) else {
            return;
        };
        if !state.committed {
            p.bytes.in_flight -= state.bytes;
            p.images.in_flight -= state.images;
        }
        if let Some(id) = state.upload.take() {
            p.uploading.remove(&id);
        }
        p.holders -= 1;
        if p.holders == 0 {
            projects.remove(&self.project);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_that_lands_after_the_read_is_counted_once() {
        let ledger = Arc::new(Ledger::default());
        let early = ledger.hold("p").await;
        early.take_bytes(0, 100, 60).unwrap();
        let early = early.done();
        // A second request reads the database (0 bytes: the first has not landed).
        let late = ledger.hold("p").await;
        let late = late.done();
        // The first lands: the ledger now counts it as committed since `late` began.
        early.commit().await;
        drop(early);
        assert_eq!(late.take_bytes(0, 100, 50), Err(Over { used: 60, mine: 0 }));
        late.take_bytes(0, 100, 40).unwrap();
    }

    #[tokio::test]
    async fn a_landing_request_is_counted_once_by_a_check_that_overlaps_it() {
        let ledger = Arc::new(Ledger::default());
        let a = ledger.hold("p").await;
        a.take_images(0, 2, 1).unwrap();
        // `a` lands (gate held from before its database write to its commit).
        let a = a.landing();
        let b = {
            let ledger = ledger.clone();
            tokio::spawn(async move {
                let b = ledger.hold("p").await;
                // `b` reads the database only after `a` landed: it sees 1.
                let verdict = b.take_images(1, 2, 1);
                (b.done(), verdict)
            })
        };
        tokio::task::yield_now().await;
        assert!(!b.is_finished(), "a check must wait for a landing");
        a.commit().await;
        let (_b, verdict) = b.await.unwrap();
        assert_eq!(verdict, Ok(()), "one image landed, one more fits under 2");
    }

    #[tokio::test]
    async fn commits_wait_for_a_check_in_progress() {
        let ledger = Arc::new(Ledger::default());
        let a = ledger.hold("p").await;
        a.take_images(0, 3, 1).unwrap();
        let a = a.done();
        let b = ledger.hold("p").await;
        // `a` cannot commit while `b` is between its snapshot and its check...
        let committing = {
            let a = a.clone();
            tokio::spawn(async move { a.commit().await })
        };
        tokio::task::yield_now().await;
        assert!(!committing.is_finished());
        // ...so `b`, whose database read did not see `a`, counts it in flight: once.
        b.take_images(0, 3, 1).unwrap();
        let b = b.done();
        committing.await.unwrap();
        let c = ledger.hold("p").await;
        // `c` reads the database after `a` landed (1) and sees `b` in flight.
        c.take_images(1, 3, 1).unwrap();
        assert_eq!(c.take_images(1, 3, 1), Err(3));
        drop((b, c));
    }

    #[tokio::test]
    async fn released_reservations_free_the_room_and_the_entry() {
        let ledger = Arc::new(Ledger::default());
        let a = ledger.hold("p").await;
        a.take_images(0, 1, 1).unwrap();
        let a = a.done();
        let b = ledger.hold("p").await;
        assert_eq!(b.take_images(0, 1, 1), Err(1));
        drop(a);
        b.take_images(0, 1, 1).unwrap();
        drop(b);
        assert!(ledger.lock().is_empty());
    }

    #[tokio::test]
    async fn uploads_known_to_both_the_database_and_the_ledger_count_once() {
        let ledger = Arc::new(Ledger::default());
        let a = ledger.hold("p").await;
        a.start_upload(&[], "a", 2).unwrap();
        let _a = a.done();
        let b = ledger.hold("p").await;
        // The database now shows "a" saving too: still one upload, so "b" fits.
        b.start_upload(&["a".into()], "b", 2).unwrap();
        let _b = b.done();
        let c = ledger.hold("p").await;
        assert_eq!(c.start_upload(&["a".into()], "c", 2), Err(2));
    }
}
