//! Runs import tasks in the background, a bounded number at a time (Glance's
//! `task_pool_threads`): the API answers at once, and a task waits `pending`
//! for a free slot.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::Semaphore;

/// Cheap to clone; clones share the slots.
#[derive(Clone)]
pub struct Runner {
    slots: Arc<Semaphore>,
}

impl Runner {
    /// At most `workers` tasks run at once (at least one).
    pub fn new(workers: usize) -> Self {
        Runner {
            slots: Arc::new(Semaphore::new(workers.max(1))),
        }
    }

    /// Runs `task` once a slot is free.
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let slots = self.slots.clone();
        tokio::spawn(async move {
            // The semaphore is never closed.
            let Ok(_slot) = slots.acquire_owned().await else {
                return;
            };
            task.await;
        });
    }
}
