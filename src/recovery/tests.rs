//! The sweep against a real (in-memory SQLite) database and a file store.

use std::sync::Arc;
use std::time::Duration;

use glance_layers::notifier::MemorySink;
use glance_layers::store::{Store, StoreSet};
use glance_layers::{Image, ImageStatus};

use super::*;
use crate::db::leases::{UPLOAD, new_lease};
use crate::store::FileStore;

struct Fixture {
    repo: Repo,
    dir: tempfile::TempDir,
    store: Arc<FileStore>,
    sink: MemorySink,
}

impl Fixture {
    async fn new() -> Self {
        let db = crate::db::connect("sqlite::memory:").await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(FileStore::new(dir.path().join("images"), false).unwrap());
        Fixture {
            repo: Repo::new(db),
            dir,
            store,
            sink: MemorySink::default(),
        }
    }

    /// A node's recovery; each call is a new life of `node`.
    fn node(&self, node: &str, ttl: Duration) -> (Recovery, LeaseKeeper) {
        let identity = NodeIdentity::establish(Some(node), self.dir.path()).unwrap();
        let keeper = LeaseKeeper::new(identity, ttl);
        let stores = StoreSet::single("file", self.store.clone() as Arc<dyn Store>);
        let staging = Arc::new(FileStore::new(self.dir.path().join("staging"), false).unwrap());
        let recovery = Recovery::new(
            self.repo.clone(),
            stores,
            staging,
            keeper.clone(),
            Arc::new(self.sink.clone()),
            "image.test",
        );
        (recovery, keeper)
    }

    /// An image `saving` under a lease of `keeper`, with a temporary file and an
    /// object under the final name, as an upload cut at the worst moment leaves.
    async fn saving_image(&self, keeper: &LeaseKeeper) -> (String, String) {
        let id = uuid::Uuid::new_v4().to_string();
        let mut img = Image::new(id.clone(), chrono::Utc::now());
        img.disk_format = Some("raw".into());
        img.container_format = Some("bare".into());
        assert!(self.repo.insert(&img).await.unwrap());
        let lease = keeper.take_upload(&id, "file");
        assert!(
            self.repo
                .begin_upload(&lease, chrono::Utc::now())
                .await
                .unwrap()
        );
        let root = self.store.root();
        std::fs::write(root.join(format!(".{id}.{}.tmp", lease.id)), b"part").unwrap();
        std::fs::write(root.join(&id), b"whole").unwrap();
        (id, lease.id)
    }

    async fn status(&self, id: &str) -> ImageStatus {
        self.repo.get(id).await.unwrap().unwrap().status
    }

    fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.store.root())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

const LONG: Duration = Duration::from_secs(600);

#[tokio::test]
async fn a_restarted_node_takes_back_its_uploads_from_before() {
    let f = Fixture::new().await;
    let (id, _) = {
        let (_, before) = f.node("api-1", LONG);
        f.saving_image(&before).await
        // the old life ends here: its lock and live set are gone
    };
    let (recovery, _) = f.node("api-1", LONG);
    let report = recovery.sweep().await.unwrap();
    assert_eq!(report.requeued, vec![id.clone()]);
    assert_eq!(f.status(&id).await, ImageStatus::Queued);
    assert!(f.files().is_empty(), "data left: {:?}", f.files());
    let events = f.sink.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, "image.upload");
    assert_eq!(events[0].priority, glance_layers::notifier::Priority::Error);
    // nothing left to do
    assert_eq!(recovery.sweep().await.unwrap(), SweepReport::default());
}

#[tokio::test]
async fn live_uploads_are_left_alone() {
    let f = Fixture::new().await;
    let (recovery, keeper) = f.node("api-1", LONG);
    let (id, _) = f.saving_image(&keeper).await;
    let (other_recovery, _) = f.node("api-2", LONG);
    assert_eq!(recovery.sweep().await.unwrap(), SweepReport::default());
    assert_eq!(
        other_recovery.sweep().await.unwrap(),
        SweepReport::default()
    );
    assert_eq!(f.status(&id).await, ImageStatus::Saving);
    assert_eq!(f.files().len(), 2);
}

#[tokio::test]
async fn another_nodes_upload_is_taken_back_only_once_its_lease_expired() {
    let f = Fixture::new().await;
    let (alive_recovery, alive) = f.node("api-1", LONG);
    let (kept, _) = f.saving_image(&alive).await;
    // A lease of no time at all: expired as soon as the clock moves.
    let (_, lapsing) = f.node("api-3", Duration::ZERO);
    let (lost, _) = f.saving_image(&lapsing).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (recovery, _) = f.node("api-2", LONG);
    assert_eq!(alive_recovery.renew().await.unwrap(), 1);
    let report = recovery.sweep().await.unwrap();
    assert_eq!(report.requeued, vec![lost.clone()]);
    assert_eq!(f.status(&lost).await, ImageStatus::Queued);
    assert_eq!(f.status(&kept).await, ImageStatus::Saving);
    assert!(
        f.files().iter().all(|n| n.contains(&kept)),
        "only the live upload's data stays: {:?}",
        f.files()
    );
}

#[tokio::test]
async fn an_abandoned_lease_removes_only_its_partial_data() {
    let f = Fixture::new().await;
    let (recovery, keeper) = f.node("api-1", LONG);
    let (id, lease) = f.saving_image(&keeper).await;
    // The upload gave up and could not remove its data: the image is queued
    // again and may be uploading anew, so the final name is not touched.
    assert!(
        f.repo
            .abort_upload(&lease, keeper.boot_id(), true)
            .await
            .unwrap()
    );
    keeper.let_go(&lease);
    assert_eq!(f.status(&id).await, ImageStatus::Queued);
    let report = recovery.sweep().await.unwrap();
    assert_eq!(report.settled, 1);
    assert!(report.requeued.is_empty());
    assert_eq!(f.files(), vec![id.clone()]);
}

#[tokio::test]
async fn temporary_files_no_lease_accounts_for_are_removed() {
    let f = Fixture::new().await;
    let (recovery, keeper) = f.node("api-1", LONG);
    let (id, lease) = f.saving_image(&keeper).await;
    let stray = format!(".{id}.{}.tmp", "f".repeat(32));
    std::fs::write(f.store.root().join(&stray), b"old").unwrap();
    let report = recovery.sweep().await.unwrap();
    assert_eq!(report.strays, 1);
    let mut expected = vec![format!(".{id}.{lease}.tmp"), id.clone()];
    expected.sort();
    assert_eq!(f.files(), expected, "the live upload's files stay");
}

#[tokio::test]
async fn a_finished_upload_cannot_be_claimed_and_a_claimed_one_cannot_finish() {
    let f = Fixture::new().await;
    let (_, keeper) = f.node("api-1", LONG);
    let (id, lease_id) = f.saving_image(&keeper).await;
    let seen = new_lease(UPLOAD, &id, "file", "api-1", keeper.boot_id(), 0, 0);
    // A claim must match the holder and expiry as read: a stale read claims nothing.
    assert!(!f.repo.claim_lease(&seen, "api-2", "t", 1).await.unwrap());
    let now = f.repo.candidate_leases("api-1", 0).await.unwrap();
    assert_eq!(now.len(), 1);
    assert!(
        f.repo
            .claim_lease(&now[0], "api-2", "token", 1)
            .await
            .unwrap()
    );
    let stored = glance_layers::StoredData {
        location: glance_layers::image::Location {
            url: "file:///x".into(),
            metadata: Default::default(),
        },
        size: 5,
        checksum: "c".into(),
        os_hash_algo: "sha512".into(),
        os_hash_value: "h".into(),
        virtual_size: None,
    };
    assert_eq!(
        f.repo
            .finish_upload(
                &id,
                &stored,
                None,
                (&lease_id, keeper.boot_id()),
                chrono::Utc::now(),
                chrono::Utc::now()
            )
            .await
            .unwrap(),
        crate::db::Finish::NotHeld,
        "the old holder's finish must fail"
    );
    assert_eq!(f.status(&id).await, ImageStatus::Saving);
    assert!(
        !f.repo
            .abort_upload(&lease_id, keeper.boot_id(), false)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn staged_data_no_image_waits_on_is_removed_at_start_up() {
    let f = Fixture::new().await;
    let (recovery, _) = f.node("api-1", LONG);
    let staging = f.dir.path().join("staging");
    // An image still waiting on its staged data, one that is gone, and a file
    // that is not staged data at all.
    let waiting = uuid::Uuid::new_v4().to_string();
    let mut img = Image::new(waiting.clone(), chrono::Utc::now());
    img.status = ImageStatus::Uploading;
    assert!(f.repo.insert(&img).await.unwrap());
    let gone = uuid::Uuid::new_v4().to_string();
    for name in [waiting.as_str(), gone.as_str(), "README"] {
        std::fs::write(staging.join(name), b"data").unwrap();
    }
    let report = recovery.sweep().await.unwrap();
    assert_eq!(report.strays, 1, "{report:?}");
    assert!(staging.join(&waiting).exists());
    assert!(!staging.join(&gone).exists());
    assert!(staging.join("README").exists());
}
