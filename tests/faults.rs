//! Faults as operators meet them, against the real binary run as a child process:
//! `kill -9` in the middle of uploads, the database stopped under load, a full
//! disk, the S3 endpoint dying mid-multipart, and a node dying while another
//! node keeps serving. After each: no image is left `saving`, no data is left
//! that no active image accounts for, the image can be uploaded again, and the
//! server answers.
//!
//! Waits are bounded ([`process::PATIENCE`]) only so a broken build fails
//! instead of hanging; nothing here measures speed.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::postgres::{self, PgCluster};
use common::process::{self, Answer, ServerProcess, data, eventually, md5_of, say, skip};
use common::s3::{self, S3Server};
use serde_json::Value;

const MIB: u64 = 1 << 20;

/// Rounds of upload, `kill -9`, restart; each kills at another point of the upload.
/// `GLANCE_FAULT_KILL_ROUNDS` asks for more (a soak), at least 3.
fn kill_rounds() -> u64 {
    std::env::var("GLANCE_FAULT_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10u64)
        .max(3)
}
/// Bytes each killed upload announces.
const KILL_UPLOAD: u64 = 256 * MIB;
/// `[database] pool_timeout` of the outage test, in seconds.
const POOL_TIMEOUT: u64 = 2;
const BUCKET: &str = "images";
/// How long S3 stays down after the upload it broke has failed.
const S3_OUTAGE: Duration = Duration::from_secs(10);

fn toml_path(p: &Path) -> String {
    p.display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
}

// --- what every test checks -------------------------------------------------

/// Every image, or why the listing failed.
async fn images(s: &ServerProcess) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    let mut path = "/v2/images?limit=1000".to_string();
    loop {
        let resp = s.get(&path).send().await.map_err(|e| e.to_string())?;
        if resp.status() != 200 {
            return Err(format!("GET {path}: {}", resp.status()));
        }
        let page: Value = resp.json().await.map_err(|e| e.to_string())?;
        out.extend(page["images"].as_array().cloned().unwrap_or_default());
        match page["next"].as_str() {
            Some(next) => path = next.to_string(),
            None => return Ok(out),
        }
    }
}

fn ids_with_status(images: &[Value], status: &str) -> HashSet<String> {
    images
        .iter()
        .filter(|i| i["status"] == status)
        .filter_map(|i| i["id"].as_str().map(String::from))
        .collect()
}

/// Entries of a file store's directory that no active image accounts for:
/// temporary (hidden) files, and files not named after an active image.
fn file_store_orphans(dir: &Path, active: &HashSet<String>) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with('.') || !active.contains(n))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Open multipart uploads, and objects no active image accounts for, in s3s-fs's
/// directory.
fn s3_orphans(root: &Path, active: &HashSet<String>) -> Vec<String> {
    let mut out = s3::open_multipart_files(root);
    out.extend(file_store_orphans(&root.join(BUCKET), active));
    out.sort();
    out
}

/// Bytes in a file store's temporary (hidden) files whose name holds `id`.
fn temp_bytes(dir: &Path, id: &str) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.starts_with('.') && n.contains(id)
                })
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn has_temp(dir: &Path, id: &str) -> bool {
    std::fs::read_dir(dir)
        .map(|mut d| {
            d.any(|e| {
                e.is_ok_and(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.starts_with('.') && n.contains(id)
                })
            })
        })
        .unwrap_or(false)
}

/// Waits until no image is `saving` and `orphans` (given the active images)
/// finds nothing; returns the images.
async fn settled(
    s: &ServerProcess,
    orphans: impl Fn(&HashSet<String>) -> Vec<String>,
) -> Vec<Value> {
    let orphans = &orphans;
    eventually("no image saving and no orphan data", || async move {
        let all = images(s).await?;
        let saving = ids_with_status(&all, "saving");
        let left = orphans(&ids_with_status(&all, "active"));
        if saving.is_empty() && left.is_empty() {
            Ok(all)
        } else {
            Err(format!("saving {saving:?}, orphan data {left:?}"))
        }
    })
    .await
}

/// A failed upload's image: `queued`, with no size or checksums.
fn assert_queued(image: &Value) {
    assert_eq!(image["status"], "queued", "{image}");
    for field in ["size", "checksum", "os_hash_value", "virtual_size"] {
        assert_eq!(image[field], Value::Null, "{field} of {image}");
    }
}

/// The image takes a new upload of `len` bytes: 204, then active with its checksum.
async fn uploads_again(s: &ServerProcess, id: &str, len: u64) {
    let resp = s.upload(id, data(len)).send().await.unwrap();
    assert_eq!(resp.status(), 204, "upload again: {:?}", resp.text().await);
    let image = s.image(id).await;
    assert_eq!(image["status"], "active", "{image}");
    assert_eq!(image["size"], len, "{image}");
    assert_eq!(image["checksum"], md5_of(len).as_str(), "{image}");
}

async fn status_of(s: &ServerProcess, id: &str) -> Result<Value, String> {
    let resp = s
        .get(&format!("/v2/images/{id}"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if resp.status() != 200 {
        return Err(format!("GET image: {}", resp.status()));
    }
    resp.json().await.map_err(|e| e.to_string())
}

/// Waits until the image has the status.
async fn wait_status(s: &ServerProcess, id: &str, want: &str) -> Value {
    eventually(&format!("image {id} {want}"), || async move {
        let image = status_of(s, id).await?;
        if image["status"] == want {
            Ok(image)
        } else {
            Err(format!("status {}", image["status"]))
        }
    })
    .await
}

fn is_failure(answer: &Answer) -> bool {
    match answer {
        Answer::Status(code, _) => *code >= 500,
        Answer::Closed => true,
    }
}

// --- kill -9 during uploads --------------------------------------------------

/// Bytes sent before round `round`'s kill: none (the upload just began), points
/// spread through the data, one byte short of the end, and all of it (the server
/// may be finishing: both outcomes, active or queued, are then correct).
fn kill_point(round: u64) -> u64 {
    let rounds = kill_rounds();
    match round {
        0 => 0,
        r if r == rounds - 1 => KILL_UPLOAD,
        r if r == rounds - 2 => KILL_UPLOAD - 1,
        r => KILL_UPLOAD * r / (rounds - 2),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_upload_then_restart_leaves_nothing_saving_or_orphaned() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("images");
    let (database, db) = ServerProcess::database_line().await;
    // A lease and a sweep far longer than the test: only start-up recovery of
    // this node's previous life can put the images back.
    let config = format!(
        "[DEFAULT]\ndata_dir = \"{}\"\nupload_lease_ttl = 3600\nrecovery_interval = 3600\n[database]\n{database}",
        toml_path(dir.path())
    );
    let mut s = ServerProcess::start(&dir.path().join("glance.toml"), &config).await;
    s.owns(db);
    let (mut queued, mut active) = (0, 0);
    for round in 0..kill_rounds() {
        let id = s.create().await;
        let point = kill_point(round);
        let mut upload = s.begin_upload(&id, KILL_UPLOAD).await;
        assert!(upload.send(point).await, "round {round}: upload refused");
        if point < KILL_UPLOAD {
            // Kill only once the server holds the upload (and, inside the
            // data, has written at least half of what was sent), so the kill
            // lands where this round means it to.
            let (s, store, id) = (&s, &store, &id);
            eventually("the upload under way", || async move {
                let image = status_of(s, id).await?;
                let written = temp_bytes(store, id);
                if image["status"] == "saving" && written >= point / 2 {
                    Ok(())
                } else {
                    Err(format!(
                        "status {}, {written} bytes written",
                        image["status"]
                    ))
                }
            })
            .await;
        }
        s.kill9();
        drop(upload);
        s.start_again().await;
        let all = settled(&s, |active| file_store_orphans(&store, active)).await;
        let image = all.iter().find(|i| i["id"] == id.as_str()).unwrap();
        if image["status"] == "active" {
            // Only a kill after the last byte may find the upload complete.
            assert_eq!(point, KILL_UPLOAD, "round {round}: {image}");
            assert_eq!(image["size"], KILL_UPLOAD);
            assert_eq!(image["checksum"], md5_of(KILL_UPLOAD).as_str());
            assert_eq!(
                std::fs::metadata(store.join(&id)).unwrap().len(),
                KILL_UPLOAD
            );
            active += 1;
        } else {
            assert_queued(image);
            uploads_again(&s, &id, MIB).await;
            queued += 1;
        }
        assert!(
            file_store_orphans(
                &store,
                &ids_with_status(&images(&s).await.unwrap(), "active")
            )
            .is_empty(),
            "round {round}: data left beside the re-uploaded image"
        );
    }
    let all = settled(&s, |active| file_store_orphans(&store, active)).await;
    assert_eq!(all.len() as u64, kill_rounds());
    say(&format!(
        "faults: {} kill -9 rounds of a {} MiB upload: {queued} back to queued, {active} completed before the kill, 0 stuck, 0 orphans",
        kill_rounds(),
        KILL_UPLOAD / MIB
    ));
}

// --- kill -9 during an import ----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_import_then_restart_leaves_nothing_importing_or_staged() {
    let dir = tempfile::tempdir().unwrap();
    let staging = dir.path().join("staging");
    let store = dir.path().join("images");
    // A source that sends a little and then nothing: the import is under way
    // for as long as the test needs it to be.
    let port = common::web::serve(data(10)).await;
    let (database, db) = ServerProcess::database_line().await;
    let config = format!(
        "[DEFAULT]\ndata_dir = \"{}\"\nupload_lease_ttl = 3600\nrecovery_interval = 3600\n[import_filtering_opts]\nallowed_hosts = [\"127.0.0.1\"]\nallowed_ports = [{port}]\n[database]\n{database}",
        toml_path(dir.path())
    );
    let mut s = ServerProcess::start(&dir.path().join("glance.toml"), &config).await;
    s.owns(db);
    let id = s.create().await;
    let uri = format!("http://127.0.0.1:{port}/stall");
    let resp = s
        .post_json(
            &format!("/v2/images/{id}/import"),
            serde_json::json!({"method": {"name": "web-download", "uri": uri}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let (sref, staging_ref, idref) = (&s, &staging, &id);
    eventually("the download under way", || async move {
        let image = status_of(sref, idref).await?;
        if image["status"] == "importing" && temp_bytes(staging_ref, idref) > 0 {
            Ok(())
        } else {
            Err(format!("status {}", image["status"]))
        }
    })
    .await;
    s.kill9();
    s.start_again().await;
    let image = wait_status(&s, &id, "queued").await;
    assert_queued(&image);
    assert!(image.get("os_glance_import_task").is_none(), "{image}");
    assert_eq!(image["os_glance_importing_to_stores"], "", "{image}");
    let tasks: Value = s
        .get(&format!("/v2/images/{id}/tasks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tasks["tasks"][0]["status"], "failure", "{tasks}");
    let left: Vec<_> = std::fs::read_dir(&staging)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "staging keeps {left:?}");
    assert!(file_store_orphans(&store, &HashSet::new()).is_empty());
    // The image takes data again.
    uploads_again(&s, &id, MIB).await;
    say(
        "faults: kill -9 mid web-download import: image back to queued, task failed, staging empty",
    );
}

// --- several nodes -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_upload_is_reclaimed_after_its_lease_and_a_live_one_never() {
    let shared = tempfile::tempdir().unwrap();
    let store = shared.path().join("images");
    let (database, db) = match ServerProcess::database_line().await {
        (line, Some(db)) => (line, Some(db)),
        (_, None) => (
            format!(
                "connection = \"sqlite://{}?mode=rwc\"\n",
                toml_path(&shared.path().join("glance.sqlite"))
            ),
            None,
        ),
    };
    // Two API nodes over one database and one store, each with a data
    // directory of its own.
    let node = |name: &str| {
        let dir = shared.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let config = format!(
            "[DEFAULT]\ndata_dir = \"{}\"\nnode_id = \"{name}\"\nupload_lease_ttl = 3\nrecovery_interval = 1\n[glance_store]\nfilesystem_store_datadir = \"{}\"\n[database]\n{database}",
            toml_path(&dir),
            toml_path(&store)
        );
        (dir.join("glance.toml"), config)
    };
    let (file_a, config_a) = node("node-a");
    let (file_b, config_b) = node("node-b");
    let mut a = ServerProcess::start(&file_a, &config_a).await;
    a.owns(db);
    let mut b = ServerProcess::start(&file_b, &config_b).await;
    let live = a.create().await;
    let dead = a.create().await;

    // A receives an upload slowly, for as long as the test runs.
    let live_size = 64 * MIB;
    let tick = 16 << 10;
    let mut feed = a.begin_upload(&live, live_size).await;
    assert!(feed.send(tick).await);
    wait_status(&a, &live, "saving").await;

    // B dies in the middle of another upload and stays dead.
    let mut cut = b.begin_upload(&dead, 32 * MIB).await;
    assert!(cut.send(8 * MIB).await);
    {
        let (b, store, dead) = (&b, &store, &dead);
        eventually("B's upload under way", || async move {
            let image = status_of(b, dead).await?;
            if image["status"] == "saving" && temp_bytes(store, dead) > 0 {
                Ok(())
            } else {
                Err(format!("status {}", image["status"]))
            }
        })
        .await;
    }
    b.kill9();
    drop(cut);

    // A reclaims the dead node's upload once its lease expires, while A's own
    // upload keeps flowing and keeps its lease.
    let deadline = Instant::now() + process::PATIENCE;
    loop {
        assert!(feed.send(tick).await, "A's live upload was cut");
        let image = a.image(&dead).await;
        if image["status"] == "queued" && !has_temp(&store, &dead) {
            assert_queued(&image);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dead node's upload was not reclaimed: {image}, temp files {:?}",
            file_store_orphans(&store, &HashSet::new())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(a.image(&live).await["status"], "saving");
    assert!(has_temp(&store, &live), "A's live upload lost its data");

    // B comes back: its start-up recovery and sweeps must leave A's upload be.
    b.start_again().await;
    for _ in 0..30 {
        assert!(feed.send(tick).await, "A's live upload was cut");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(b.image(&live).await["status"], "saving");
    match feed.finish().await {
        Answer::Status(204, _) => {}
        other => panic!("A's live upload failed: {other:?}"),
    }
    let image = b.image(&live).await;
    assert_eq!(image["status"], "active");
    assert_eq!(image["checksum"], md5_of(live_size).as_str());

    uploads_again(&b, &dead, MIB).await;
    settled(&a, |active| file_store_orphans(&store, active)).await;
}

// --- the database stops under load --------------------------------------------

/// One request of the background load and how it went.
#[derive(Debug)]
struct Outcome {
    what: &'static str,
    /// Status, content type and body; or the client's error (no answer).
    result: Result<(u16, String, String), String>,
    took: Duration,
    during_outage: bool,
}

/// Light load: two clients reading an image, listing and creating, one request
/// at a time each, until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    outage: Arc<AtomicBool>,
    outcomes: Arc<std::sync::Mutex<Vec<Outcome>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(s: &ServerProcess, image: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let outage = Arc::new(AtomicBool::new(false));
        let outcomes = Arc::new(std::sync::Mutex::new(Vec::new()));
        // The hang bound: the pool's wait plus a generous margin.
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(POOL_TIMEOUT + 10))
            .build()
            .unwrap();
        let tasks = (0..2)
            .map(|_| {
                let (stop, outage, outcomes) = (stop.clone(), outage.clone(), outcomes.clone());
                let (client, url, image) = (client.clone(), s.url.clone(), image.to_string());
                tokio::spawn(async move {
                    let mut n = 0usize;
                    while !stop.load(Ordering::SeqCst) {
                        let (what, req) = match n % 3 {
                            0 => ("show", client.get(format!("{url}/v2/images/{image}"))),
                            1 => ("list", client.get(format!("{url}/v2/images?limit=5"))),
                            _ => (
                                "create",
                                client.post(format!("{url}/v2/images")).json(
                                    &serde_json::json!({"name": "load", "disk_format": "raw", "container_format": "bare"}),
                                ),
                            ),
                        };
                        n += 1;
                        let during_outage = outage.load(Ordering::SeqCst);
                        let start = Instant::now();
                        let result = answer_of(req.header("accept", "application/json")).await;
                        let took = start.elapsed();
                        let during_outage = during_outage || outage.load(Ordering::SeqCst);
                        outcomes.lock().unwrap().push(Outcome {
                            what,
                            result,
                            took,
                            during_outage,
                        });
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                })
            })
            .collect();
        Load {
            stop,
            outage,
            outcomes,
            tasks,
        }
    }

    /// Answers so far with `status`.
    fn count(&self, status: u16) -> usize {
        self.outcomes
            .lock()
            .unwrap()
            .iter()
            .filter(|o| matches!(o.result, Ok((s, _, _)) if s == status))
            .count()
    }

    fn len(&self) -> usize {
        self.outcomes.lock().unwrap().len()
    }

    /// The first request that broke the contract, if any.
    fn first_bad(&self) -> Option<String> {
        self.outcomes
            .lock()
            .unwrap()
            .iter()
            .find_map(|o| check(o).err())
    }

    async fn finish(self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            t.await.unwrap();
        }
        std::mem::take(&mut *self.outcomes.lock().unwrap())
    }
}

/// Status, content type and body of the answer; or why there was none.
async fn answer_of(req: reqwest::RequestBuilder) -> Result<(u16, String, String), String> {
    let no_answer = |e: reqwest::Error| {
        if e.is_timeout() {
            format!("no answer within {}s", POOL_TIMEOUT + 10)
        } else {
            format!("no answer: {e}")
        }
    };
    let resp = req.send().await.map_err(no_answer)?;
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = resp.text().await.map_err(no_answer)?;
    Ok((status, content_type, body))
}

/// A request under load is answered: a success, or a 503 in Glance's (webob's)
/// JSON error format; never a 500, never no answer.
fn check(o: &Outcome) -> Result<(), String> {
    match &o.result {
        Ok((200 | 201, _, _)) => Ok(()),
        Ok((503, content_type, body)) => {
            let v: Value = serde_json::from_str(body).unwrap_or_default();
            let glance = content_type.starts_with("application/json")
                && v["code"] == "503 Service Unavailable"
                && v["title"] == "Service Unavailable"
                && v["message"].as_str().is_some_and(|m| !m.is_empty());
            if glance {
                Ok(())
            } else {
                Err(format!(
                    "{}: a 503 not in Glance's format ({content_type}): {body}",
                    o.what
                ))
            }
        }
        Ok((status, _, body)) => Err(format!("{} answered {status}: {body}", o.what)),
        Err(e) => Err(format!("{}: {e}", o.what)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_gets_fast_503s_and_everything_recovers() {
    const TEST: &str = "a_database_outage_gets_fast_503s_and_everything_recovers";
    let Some(bin) = postgres::binaries() else {
        skip(
            TEST,
            "no PostgreSQL server binaries (initdb, pg_ctl) installed",
        );
        return;
    };
    let pg = tokio::task::block_in_place(|| PgCluster::start(&bin)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("images");
    let config = format!(
        "[DEFAULT]\ndata_dir = \"{}\"\nupload_lease_ttl = 5\nrecovery_interval = 1\n[database]\nconnection = \"{}\"\npool_timeout = {POOL_TIMEOUT}\n",
        toml_path(dir.path()),
        pg.url()
    );
    let s = ServerProcess::start(&dir.path().join("glance.toml"), &config).await;
    let stable = s.create().await;
    uploads_again(&s, &stable, MIB).await;
    let victim = s.create().await;

    // An upload in flight when the database goes.
    let upload_size = 32 * MIB;
    let mut upload = s.begin_upload(&victim, upload_size).await;
    assert!(upload.send(8 * MIB).await);
    {
        let (s, store, victim) = (&s, &store, &victim);
        eventually("the upload under way", || async move {
            let image = status_of(s, victim).await?;
            if image["status"] == "saving" && temp_bytes(store, victim) > 0 {
                Ok(())
            } else {
                Err(format!("status {}", image["status"]))
            }
        })
        .await;
    }

    let load = Load::start(&s, &stable);
    let l = &load;
    eventually("the load under way", move || async move {
        if l.count(200) >= 3 {
            Ok(())
        } else {
            Err(format!("{} requests", l.len()))
        }
    })
    .await;

    load.outage.store(true, Ordering::SeqCst);
    tokio::task::block_in_place(|| pg.stop_immediate()).unwrap();
    // The rest of the upload arrives while the database is gone.
    let answer = upload.finish().await;
    assert!(
        is_failure(&answer),
        "an upload whose database vanished must fail with a 5xx: {answer:?}"
    );
    eventually("503s under load", move || async move {
        if let Some(bad) = l.first_bad() {
            panic!("while the database is down: {bad}");
        }
        if l.count(503) >= 6 {
            Ok(())
        } else {
            Err(format!("{} answers, {} 503s", l.len(), l.count(503)))
        }
    })
    .await;
    tokio::task::block_in_place(|| pg.start_again()).unwrap();
    load.outage.store(false, Ordering::SeqCst);
    let back = load.len();
    eventually("requests succeeding again", move || async move {
        let ok_since = l.outcomes.lock().unwrap()[back..]
            .iter()
            .filter(|o| matches!(o.result, Ok((200 | 201, _, _))))
            .count();
        if ok_since >= 6 {
            Ok(())
        } else {
            Err(format!("{ok_since} successes since the database came back"))
        }
    })
    .await;
    let outcomes = load.finish().await;

    let mut slowest = Duration::ZERO;
    for o in &outcomes {
        if let Err(bad) = check(o) {
            panic!("{bad}");
        }
        if o.during_outage {
            slowest = slowest.max(o.took);
        }
    }
    let unavailable = outcomes
        .iter()
        .filter(|o| matches!(o.result, Ok((503, _, _))))
        .count();

    // The periodic sweep puts the cut upload back once the database is there.
    let image = wait_status(&s, &victim, "queued").await;
    assert_queued(&image);
    settled(&s, |active| file_store_orphans(&store, active)).await;
    uploads_again(&s, &victim, MIB).await;
    let download = s
        .get(&format!("/v2/images/{stable}/file"))
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    assert_eq!(download.bytes().await.unwrap().len() as u64, MIB);
    say(&format!(
        "faults: database outage: {} requests, {unavailable} answered 503, 0 500s, 0 unanswered, slowest during the outage {slowest:?} (pool_timeout {POOL_TIMEOUT}s); upload in flight ended {}",
        outcomes.len(),
        match answer {
            Answer::Status(code, _) => code.to_string(),
            Answer::Closed => "with the connection closed".into(),
        }
    ));
}

// --- a full disk ---------------------------------------------------------------

/// A small tmpfs mounted for one test, unmounted however the test ends.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if out.status.success() {
            Ok(Tmpfs(at.to_path_buf()))
        } else {
            Err(format!(
                "mount -t tmpfs: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let done = std::process::Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !done {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
}

fn assert_store_full(answer: &Answer) {
    match answer {
        Answer::Status(413, body) => assert!(
            body.contains("Image storage media is full"),
            "413 body: {body}"
        ),
        other => panic!("a full store must answer 413 as Glance does: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_the_upload_and_keeps_nothing() {
    const TEST: &str = "a_full_disk_refuses_the_upload_and_keeps_nothing";
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    // Declared before the server, so the server is gone before the unmount.
    let _tmpfs = match Tmpfs::mount(&small, "16m") {
        Ok(t) => t,
        Err(e) => {
            skip(TEST, &format!("cannot mount a tmpfs ({e})"));
            return;
        }
    };
    let store = small.join("images");
    let (database, db) = ServerProcess::database_line().await;
    let config = format!(
        "[DEFAULT]\ndata_dir = \"{}\"\n[glance_store]\nfilesystem_store_datadir = \"{}\"\n[database]\n{database}",
        toml_path(&dir.path().join("data")),
        toml_path(&store)
    );
    let mut s = ServerProcess::start(&dir.path().join("glance.toml"), &config).await;
    s.owns(db);
    let id = s.create().await;

    // Larger than the whole file system.
    let answer = s.begin_upload(&id, 24 * MIB).await.finish().await;
    assert_store_full(&answer);
    settled(&s, |active| file_store_orphans(&store, active)).await;
    assert_queued(&s.image(&id).await);

    // The file system filled by something else.
    let filler = small.join("filler");
    std::fs::write(&filler, vec![0u8; 12 * MIB as usize]).unwrap();
    let answer = s.begin_upload(&id, 8 * MIB).await.finish().await;
    assert_store_full(&answer);
    settled(&s, |active| file_store_orphans(&store, active)).await;
    assert_queued(&s.image(&id).await);

    // Space freed: the same upload goes through.
    std::fs::remove_file(&filler).unwrap();
    uploads_again(&s, &id, 8 * MIB).await;
    settled(&s, |active| file_store_orphans(&store, active)).await;
    assert_eq!(std::fs::metadata(store.join(&id)).unwrap().len(), 8 * MIB);
}

// --- S3 -------------------------------------------------------------------------

fn s3_config(data_dir: &Path, s3: &S3Server, extra_default: &str, database: &str) -> String {
    format!(
        "[DEFAULT]\ndata_dir = \"{}\"\nenabled_backends = \"objects:s3\"\n{extra_default}\n[glance_store]\ndefault_backend = \"objects\"\n[objects]\ns3_store_host = \"http://{}\"\ns3_store_access_key = \"{}\"\ns3_store_secret_key = \"{}\"\ns3_store_bucket = \"{BUCKET}\"\ns3_store_large_object_chunk_size = 5\ns3_store_thread_pools = 2\n[database]\n{database}",
        toml_path(data_dir),
        s3.addr,
        s3::ACCESS_KEY,
        s3::SECRET_KEY
    )
}

/// Starts a multipart upload of 48 MiB (ten 5 MiB parts) and returns once S3
/// holds some of its parts.
async fn multipart_under_way(s: &ServerProcess, root: &Path, id: &str) -> process::RawUpload {
    let mut upload = s.begin_upload(id, 48 * MIB).await;
    assert!(upload.send(16 * MIB).await);
    eventually("parts stored in S3", move || async move {
        let image = status_of(s, id).await?;
        if image["status"] == "saving" && s3::stored_parts(root) > 0 {
            Ok(())
        } else {
            Err(format!(
                "status {}, multipart files {:?}",
                image["status"],
                s3::open_multipart_files(root)
            ))
        }
    })
    .await;
    upload
}

async fn uploads_again_to_s3(s: &ServerProcess, root: &Path, id: &str) {
    // Three parts.
    let len = 12 * MIB;
    uploads_again(s, id, len).await;
    assert_eq!(
        std::fs::metadata(root.join(BUCKET).join(id)).unwrap().len(),
        len
    );
    settled(s, |active| s3_orphans(root, active)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_outage_mid_multipart_fails_the_upload_and_leaves_no_parts() {
    let s3dir = tempfile::tempdir().unwrap();
    let root = s3dir.path().to_path_buf();
    let mut s3 = S3Server::start(&root, BUCKET).await;
    let dir = tempfile::tempdir().unwrap();
    let (database, db) = ServerProcess::database_line().await;
    let config = s3_config(
        dir.path(),
        &s3,
        "upload_lease_ttl = 5\nrecovery_interval = 1",
        &database,
    );
    let mut s = ServerProcess::start(&dir.path().join("glance.toml"), &config).await;
    s.owns(db);
    let id = s.create().await;
    let upload = multipart_under_way(&s, &root, &id).await;

    s3.stop().await;
    let answer = upload.finish().await;
    assert!(
        is_failure(&answer),
        "an upload whose store vanished must fail with a 5xx: {answer:?}"
    );
    assert_queued(&wait_status(&s, &id, "queued").await);
    // S3 stays down a while longer, so the server's own attempts to abort the
    // multipart upload run out and the upload stays open in S3 until recovery
    // finds it.
    tokio::time::sleep(S3_OUTAGE).await;

    // S3 back on the same directory and port: the multipart upload left open
    // while it was gone is aborted by the recovery sweep; no object appears.
    s3.restart().await;
    settled(&s, |active| s3_orphans(&root, active)).await;
    assert_queued(&s.image(&id).await);
    assert!(!root.join(BUCKET).join(&id).exists());
    uploads_again_to_s3(&s, &root, &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_multipart_then_restart_aborts_the_open_upload() {
    let s3dir = tempfile::tempdir().unwrap();
    let root = s3dir.path().to_path_buf();
    let s3 = S3Server::start(&root, BUCKET).await;
    let dir = tempfile::tempdir().unwrap();
    let (database, db) = ServerProcess::database_line().await;
    // Start-up recovery alone must clean up (the lease and sweep outlast the test).
    let config = s3_config(
        dir.path(),
        &s3,
        "upload_lease_ttl = 3600\nrecovery_interval = 3600",
        &database,
    );
    let mut s = ServerProcess::start(&dir.path().join("glance.toml"), &config).await;
    s.owns(db);
    let id = s.create().await;
    let upload = multipart_under_way(&s, &root, &id).await;
    s.kill9();
    drop(upload);
    s.start_again().await;
    settled(&s, |active| s3_orphans(&root, active)).await;
    assert_queued(&s.image(&id).await);
    assert!(!root.join(BUCKET).join(&id).exists());
    uploads_again_to_s3(&s, &root, &id).await;
}
