//! What requests in flight on this node have taken against each project's
//! limits, so that checking a limit and taking from it are one step.
//!
//! The database only learns of an image's bytes (or of the image) when the
//! request that made it ends. Until then the ledger counts them as *in flight*;
//! at the end they move to *committed*. A request compares a limit with
//!
//! ```text
//! usage read from the database + in flight now + committed since it began
//! ```
//!
//! It takes its snapshot of *committed* before it reads the database, so work
//! that lands in between is counted twice at worst, never missed. Counting
//! twice only errs on the safe side, and only while both requests run.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

/// Reservations per project; see the module documentation.
#[derive(Debug, Default)]
pub struct Ledger {
    projects: Mutex<HashMap<String, Project>>,
}

#[derive(Debug, Default)]
struct Project {
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

    /// Starts a request's reservations. Call before reading usage from the database.
    pub(crate) fn hold(self: &Arc<Self>, project: &str) -> Arc<Hold> {
        let mut projects = self.lock();
        let p = projects.entry(project.to_string()).or_default();
        p.holders += 1;
        Arc::new(Hold {
            ledger: self.clone(),
            project: project.to_string(),
            state: Mutex::new(HoldState {
                bytes_snapshot: p.bytes.committed,
                images_snapshot: p.images.committed,
                ..HoldState::default()
            }),
        })
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

    /// The request succeeded: what it took is now in the database.
    pub(crate) fn commit(&self) {
        self.with(|p, s| {
            if s.committed {
                return;
            }
            s.committed = true;
            // Committed before in-flight is released, so no reader sees neither.
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

    #[test]
    fn work_that_lands_between_snapshot_and_read_is_counted() {
        let ledger = Arc::new(Ledger::default());
        let early = ledger.hold("p");
        early.take_bytes(0, 100, 60).unwrap();
        // A second request begins while the first is in flight...
        let late = ledger.hold("p");
        // ...the first lands, and the second's database read missed it.
        early.commit();
        drop(early);
        assert_eq!(late.take_bytes(0, 100, 50), Err(Over { used: 60, mine: 0 }));
        late.take_bytes(0, 100, 40).unwrap();
    }

    #[test]
    fn released_reservations_free_the_room_and_the_entry() {
        let ledger = Arc::new(Ledger::default());
        let a = ledger.hold("p");
        a.take_images(0, 1, 1).unwrap();
        let b = ledger.hold("p");
        assert_eq!(b.take_images(0, 1, 1), Err(1));
        drop(a);
        b.take_images(0, 1, 1).unwrap();
        drop(b);
        assert!(ledger.lock().is_empty());
    }

    #[test]
    fn uploads_known_to_both_the_database_and_the_ledger_count_once() {
        let ledger = Arc::new(Ledger::default());
        let a = ledger.hold("p");
        a.start_upload(&[], "a", 2).unwrap();
        let b = ledger.hold("p");
        // The database now shows "a" saving too: still one upload, so "b" fits.
        b.start_upload(&["a".into()], "b", 2).unwrap();
        let c = ledger.hold("p");
        assert_eq!(c.start_upload(&["a".into()], "c", 2), Err(2));
    }
}
