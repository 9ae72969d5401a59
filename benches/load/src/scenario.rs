//! What one operation of each scenario does, plus the fixtures some need.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use serde_json::{Value, json};

use crate::client::{Api, Failure, Meter, pattern, pattern_md5};
use crate::runner::{note, warn};
use crate::stats::{Probe, Recorder};
use crate::units::human_bytes;

/// Tag on every image this tool creates, so leftovers are easy to find.
pub const TAG: &str = "glance-load";
/// Extra tag on the `list` fixtures, which are kept and reused across runs.
pub const LIST_TAG: &str = "glance-load-list";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Upload,
    Download,
    Metadata,
    List,
    Mixed,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Upload => "upload",
            Kind::Download => "download",
            Kind::Metadata => "metadata",
            Kind::List => "list",
            Kind::Mixed => "mixed",
        }
    }

    /// Scenarios whose figure of merit is bytes moved.
    pub fn moves_data(self, mix: &[(Kind, u32)]) -> bool {
        match self {
            Kind::Upload | Kind::Download => true,
            Kind::Mixed => mix
                .iter()
                .any(|&(k, w)| w > 0 && matches!(k, Kind::Upload | Kind::Download)),
            _ => false,
        }
    }
}

pub struct Config {
    pub kind: Kind,
    pub size: u64,
    pub chunk: usize,
    pub chunked: bool,
    pub keep: bool,
    pub images: usize,
    pub limit: u32,
    pub verify: bool,
    pub cleanup: bool,
    /// Weights for `mixed`; only positive ones.
    pub mix: Vec<(Kind, u32)>,
    /// Parallelism for fixture creation and cleanup.
    pub setup_parallel: usize,
}

struct Fixture {
    id: String,
    md5: String,
}

/// A failed step: which request kind failed, and how.
struct StepError {
    kind: &'static str,
    failure: Failure,
}

type OpResult = Result<(), StepError>;

pub struct Scenario {
    api: Api,
    cfg: Config,
    block: Bytes,
    run_id: String,
    seq: AtomicU64,
    download: Option<Fixture>,
    /// Images created by ops and not yet deleted: what a cancelled op
    /// leaves behind, deleted in `teardown`.
    live: Mutex<HashSet<String>>,
    /// Error keys already explained on stderr (each is shown once).
    explained: Mutex<HashSet<String>>,
}

impl Scenario {
    /// Creates the fixtures the scenario needs. Any failure here is fatal:
    /// measuring against a half-made setup would mislead.
    pub async fn setup(api: Api, cfg: Config) -> Result<Self, String> {
        let run_id = format!(
            "{:08x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos() ^ d.as_secs() as u32)
                .unwrap_or(0)
        );
        let mut s = Scenario {
            api,
            block: pattern(cfg.chunk),
            cfg,
            run_id,
            seq: AtomicU64::new(0),
            download: None,
            live: Mutex::new(HashSet::new()),
            explained: Mutex::new(HashSet::new()),
        };
        if s.uses(Kind::Download) {
            s.download = Some(s.make_download_fixture().await?);
        }
        if s.uses(Kind::List) {
            s.ensure_list_fixtures().await?;
        }
        Ok(s)
    }

    fn uses(&self, k: Kind) -> bool {
        self.cfg.kind == k
            || (self.cfg.kind == Kind::Mixed && self.cfg.mix.iter().any(|m| m.0 == k))
    }

    fn next_name(&self, what: &str) -> String {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        format!("{TAG}-{}-{what}-{n}", self.run_id)
    }

    async fn make_download_fixture(&self) -> Result<Fixture, String> {
        let size = self.cfg.size;
        note(&format!(
            "setup: uploading a {} image to download",
            human_bytes(size)
        ));
        let fail = |what: &str, e: Failure| format!("setup: {what} the download image failed: {e}");
        let id = self
            .api
            .create_image(&self.next_name("download"), &[TAG])
            .await
            .map_err(|e| fail("creating", e))?;
        let fixture = async {
            self.api
                .upload(&id, &self.block, size, false, Arc::new(|_| {}))
                .await
                .map_err(|e| fail("uploading", e))?;
            let image = self
                .api
                .get_image(&id)
                .await
                .map_err(|e| fail("reading", e))?;
            let md5 = pattern_md5(&self.block, size);
            if image["status"] != "active" {
                return Err(format!(
                    "setup: the download image is {}, not active",
                    image["status"]
                ));
            }
            // Glance computes md5 `checksum`; a mismatch is a server bug.
            match image["checksum"].as_str() {
                Some(c) if c != md5 => Err(format!(
                    "setup: the server's checksum {c} differs from the uploaded data's md5 {md5}"
                )),
                _ => Ok(Fixture {
                    id: id.clone(),
                    md5,
                }),
            }
        }
        .await;
        if fixture.is_err() && !self.cfg.keep {
            let _ = self.api.delete_image(&id).await;
        }
        fixture
    }

    /// The ids of the `list` fixtures already there (filtered here too, in
    /// case the server ignores `tag=`), at most `want`.
    async fn list_fixtures(&self, want: usize) -> Result<Vec<String>, Failure> {
        let mut ids = Vec::new();
        let mut next = Some(format!("/v2/images?tag={LIST_TAG}&limit=1000"));
        while let Some(path) = next.take() {
            let page = self.api.list(&path).await?;
            let images = page["images"]
                .as_array()
                .ok_or_else(|| Failure::Bad("list without `images`".into()))?;
            ids.extend(
                images
                    .iter()
                    .filter(|i| {
                        i["tags"]
                            .as_array()
                            .is_some_and(|t| t.iter().any(|t| t == LIST_TAG))
                    })
                    .filter_map(|i| i["id"].as_str().map(str::to_string)),
            );
            if ids.len() < want && !images.is_empty() {
                next = page["next"].as_str().map(str::to_string);
            }
        }
        Ok(ids)
    }

    async fn ensure_list_fixtures(&self) -> Result<(), String> {
        let want = self.cfg.images;
        let have = self
            .list_fixtures(want)
            .await
            .map_err(|e| format!("setup: listing existing list images failed: {e}"))?
            .len();
        if have >= want {
            note(&format!("setup: {have} list images already there"));
            return Ok(());
        }
        let missing = want - have;
        note(&format!(
            "setup: creating {missing} list images ({have} there)"
        ));
        let next = Arc::new(AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..self.cfg.setup_parallel.min(missing) {
            let (api, next, run_id) = (self.api.clone(), next.clone(), self.run_id.clone());
            tasks.spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= missing {
                        return Ok(());
                    }
                    let name = format!("{LIST_TAG}-{run_id}-{i}");
                    api.create_image(&name, &[TAG, LIST_TAG]).await?;
                    if (i + 1) % 250 == 0 {
                        note(&format!("setup: {}/{missing} list images created", i + 1));
                    }
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.map_err(|e| format!("setup task panicked: {e}"))?
                .map_err(|e: Failure| format!("setup: creating a list image failed: {e}"))?;
        }
        Ok(())
    }

    /// Runs one op (in `mixed`, of a kind drawn from `rng`) and records it.
    pub async fn run_op(&self, rec: &Arc<Recorder>, rng: &mut u64) {
        let probe = rec.probe();
        let kind = match self.cfg.kind {
            Kind::Mixed => self.draw(rng),
            k => k,
        };
        // In `mixed` each op kind gets its own row besides the request kinds.
        let op_kind = (self.cfg.kind == Kind::Mixed).then(|| format!("op.{}", kind.name()));
        let start = Instant::now();
        let r = match kind {
            Kind::Upload => self.upload(rec, probe).await,
            Kind::Download => self.download(rec, probe).await,
            Kind::Metadata => self.metadata(rec, probe).await,
            Kind::List => self.list(rec, probe).await,
            Kind::Mixed => unreachable!("a mix never contains `mixed`"),
        };
        match r {
            Ok(()) => rec.op_ok(probe, op_kind.as_deref(), start.elapsed()),
            Err(e) => {
                let key = e.failure.key();
                rec.op_failed(probe, op_kind.as_deref(), e.kind, &key);
                if self
                    .explained
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key.clone())
                {
                    warn(&format!(
                        "error {key} on {}: {} (shown once)",
                        e.kind, e.failure
                    ));
                }
                // A refused or dead connection fails at once: pause so the
                // worker does not spin through millions of identical errors.
                if matches!(e.failure, Failure::Transport(_)) {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn draw(&self, rng: &mut u64) -> Kind {
        // xorshift64: good enough to spread a mix, and no dependency.
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        let total: u64 = self.cfg.mix.iter().map(|m| m.1 as u64).sum();
        let mut pick = *rng % total;
        for &(k, w) in &self.cfg.mix {
            if pick < w as u64 {
                return k;
            }
            pick -= w as u64;
        }
        unreachable!("pick < total")
    }

    /// Times one request as `kind`; its latency is recorded only on success
    /// (a failure is recorded once, for the whole op, by `run_op`).
    async fn step<T>(
        &self,
        rec: &Recorder,
        probe: Probe,
        kind: &'static str,
        fut: impl Future<Output = Result<T, Failure>>,
    ) -> Result<T, StepError> {
        let t = Instant::now();
        match fut.await {
            Ok(v) => {
                rec.request(probe, kind, t.elapsed());
                Ok(v)
            }
            Err(failure) => Err(StepError { kind, failure }),
        }
    }

    fn meter(rec: &Arc<Recorder>, probe: Probe) -> Meter {
        let rec = rec.clone();
        Arc::new(move |n| rec.bytes(probe, n))
    }

    /// Creates an image; `track` puts it on the list `teardown` deletes
    /// should the op not get to delete it itself.
    async fn create(
        &self,
        rec: &Recorder,
        probe: Probe,
        what: &str,
        track: bool,
    ) -> Result<String, StepError> {
        let name = self.next_name(what);
        let id = self
            .step(rec, probe, "create", self.api.create_image(&name, &[TAG]))
            .await?;
        if track {
            self.live
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id.clone());
        }
        Ok(id)
    }

    async fn delete(&self, rec: &Recorder, probe: Probe, id: &str) -> OpResult {
        self.step(rec, probe, "delete", self.api.delete_image(id))
            .await?;
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        Ok(())
    }

    /// create + PUT file (+ delete unless `--keep`).
    async fn upload(&self, rec: &Arc<Recorder>, probe: Probe) -> OpResult {
        let id = self.create(rec, probe, "upload", !self.cfg.keep).await?;
        let upload = self.api.upload(
            &id,
            &self.block,
            self.cfg.size,
            self.cfg.chunked,
            Self::meter(rec, probe),
        );
        self.step(rec, probe, "upload", upload).await?;
        if !self.cfg.keep {
            self.delete(rec, probe, &id).await?;
        }
        Ok(())
    }

    /// GET file of the fixture, checked against its md5 (and size).
    async fn download(&self, rec: &Arc<Recorder>, probe: Probe) -> OpResult {
        let f = self
            .download
            .as_ref()
            .expect("setup made the download image");
        let get = self
            .api
            .download(&f.id, self.cfg.verify, Self::meter(rec, probe));
        let (len, md5) = self.step(rec, probe, "download", get).await?;
        let bad = |failure| {
            Err(StepError {
                kind: "download",
                failure,
            })
        };
        if len != self.cfg.size {
            return bad(Failure::Size {
                expected: self.cfg.size,
                got: len,
            });
        }
        match md5 {
            Some(m) if m != f.md5 => bad(Failure::Checksum {
                expected: f.md5.clone(),
                got: m,
            }),
            _ => Ok(()),
        }
    }

    /// create + get + patch (rename, add a property) + delete.
    async fn metadata(&self, rec: &Arc<Recorder>, probe: Probe) -> OpResult {
        let id = self.create(rec, probe, "metadata", true).await?;
        let got = self
            .step(rec, probe, "get", self.api.get_image(&id))
            .await?;
        if got["id"] != id.as_str() {
            return Err(StepError {
                kind: "get",
                failure: Failure::Bad(format!("GET {id} answered id {}", got["id"])),
            });
        }
        let new_name = format!("{}-renamed", got["name"].as_str().unwrap_or(TAG));
        let ops = json!([
            {"op": "replace", "path": "/name", "value": new_name},
            {"op": "add", "path": "/glance_load", "value": self.run_id},
        ]);
        let patched: Value = self
            .step(rec, probe, "patch", self.api.patch_image(&id, &ops))
            .await?;
        if patched["name"] != new_name.as_str() || patched["glance_load"] != self.run_id.as_str() {
            return Err(StepError {
                kind: "patch",
                failure: Failure::Bad("PATCH answer lacks the new name or property".into()),
            });
        }
        self.delete(rec, probe, &id).await
    }

    /// One page of GET /v2/images; pages are not followed.
    async fn list(&self, rec: &Arc<Recorder>, probe: Probe) -> OpResult {
        let path = format!("/v2/images?limit={}", self.cfg.limit);
        let page = self.step(rec, probe, "list", self.api.list(&path)).await?;
        if !page["images"].is_array() {
            return Err(StepError {
                kind: "list",
                failure: Failure::Bad("list answer without `images`".into()),
            });
        }
        Ok(())
    }

    /// Deletes what the run made: ops cut short at the deadline, the
    /// download image (unless `--keep`), the list fixtures (with `--cleanup`).
    pub async fn teardown(&self) {
        let mut ids: Vec<String> = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        if let (Some(f), false) = (&self.download, self.cfg.keep) {
            ids.push(f.id.clone());
        }
        if self.cfg.cleanup && self.uses(Kind::List) {
            match self.list_fixtures(usize::MAX).await {
                Ok(list) => ids.extend(list),
                Err(e) => note(&format!("cleanup: listing the list images failed: {e}")),
            }
        }
        if ids.is_empty() {
            return;
        }
        let total = ids.len();
        note(&format!("cleanup: deleting {total} images"));
        let ids = Arc::new(Mutex::new(ids));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..self.cfg.setup_parallel.min(total) {
            let (api, ids) = (self.api.clone(), ids.clone());
            tasks.spawn(async move {
                let mut failed = 0;
                loop {
                    let id = ids.lock().unwrap_or_else(|p| p.into_inner()).pop();
                    let Some(id) = id else { return failed };
                    match api.delete_image(&id).await {
                        Ok(()) | Err(Failure::Status(404, _)) => {}
                        Err(_) => failed += 1,
                    }
                }
            });
        }
        let mut failed = 0;
        while let Some(r) = tasks.join_next().await {
            failed += r.unwrap_or(0);
        }
        if failed > 0 {
            note(&format!(
                "cleanup: {failed} of {total} images could not be deleted (tag {TAG})"
            ));
        }
    }
}
