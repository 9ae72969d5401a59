//! The leases this node holds right now: taken before the database hears of them
//! and let go only after, so a sweep never mistakes a live upload of ours for a
//! dead one; renewed together while the node lives.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::db::leases::{Lease, UPLOAD, new_lease};
use crate::db::to_micros;

use super::node::NodeIdentity;

/// Cheap to clone; clones share the set.
#[derive(Clone)]
pub struct LeaseKeeper {
    inner: Arc<Inner>,
}

struct Inner {
    node: NodeIdentity,
    ttl: Duration,
    live: Mutex<HashSet<String>>,
}

impl LeaseKeeper {
    pub fn new(node: NodeIdentity, ttl: Duration) -> Self {
        LeaseKeeper {
            inner: Arc::new(Inner {
                node,
                ttl,
                live: Mutex::new(HashSet::new()),
            }),
        }
    }

    pub fn node_id(&self) -> &str {
        &self.inner.node.node_id
    }

    pub fn boot_id(&self) -> &str {
        &self.inner.node.boot_id
    }

    pub fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    /// When a lease taken or renewed now runs out, in the database's microseconds.
    pub fn expiry_from_now(&self) -> i64 {
        to_micros(chrono::Utc::now()) + self.inner.ttl.as_micros() as i64
    }

    /// A new upload lease of this node, already counted live.
    pub fn take_upload(&self, image_id: &str, store_id: &str) -> Lease {
        self.take(UPLOAD, image_id, store_id)
    }

    /// A new lease of `kind` (see `crate::db::leases`), already counted live.
    pub fn take(&self, kind: &str, image_id: &str, store_id: &str) -> Lease {
        let now = to_micros(chrono::Utc::now());
        let lease = new_lease(
            kind,
            image_id,
            store_id,
            self.node_id(),
            self.boot_id(),
            now,
            self.expiry_from_now(),
        );
        self.set().insert(lease.id.clone());
        lease
    }

    /// The upload is over as far as this node is concerned (whatever the
    /// database recorded).
    pub fn let_go(&self, id: &str) {
        self.set().remove(id);
    }

    pub fn is_live(&self, id: &str) -> bool {
        self.set().contains(id)
    }

    pub fn live(&self) -> Vec<String> {
        self.set().iter().cloned().collect()
    }

    fn set(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.inner.live.lock().unwrap_or_else(|e| e.into_inner())
    }
}
