//! One import task, in the background: find the data (staged, downloaded into
//! staging, or an existing location), run the import plugins on staged data,
//! then write it to each target store in turn, hashed on the way as an upload is, recording each store as it lands.
//!
//! What Glance does, in our words: with `all_stores_must_succeed` (the default)
//! the image goes `active` with the last store and any failure undoes the
//! stores already written; without it the image goes `active` with the first
//! store written and a failed store is only listed in `os_glance_failed_import`.
//! A failed import of a new image puts it back in `queued`; a failed copy leaves
//! it `active`. Staged data is removed once the import is over, either way.

use std::sync::Arc;

use futures_util::StreamExt;

use super::Settings;
use super::records::{ImportJob, ImportOutcome, STAGED_AT, STAGING_STORE};
use crate::inspect;
use crate::location::digest::DigestingStream;
use crate::location::upload::LeaseJournal;
use crate::store::{Store, StoreError, Upload};
use crate::{DataStream, ImageError, ImageStatus, ImportMethod, StoredData, TaskStatus};

/// Runs the import and settles its task. Records that cannot be written now
/// (the database is gone) are left to recovery through the job's lease.
pub(super) async fn run(settings: Arc<Settings>, job: ImportJob) {
    let events = &settings.events;
    let outcome = match execute(&settings, &job).await {
        Ok(()) => ImportOutcome::Success,
        Err(e) => {
            tracing::warn!(image = %job.image.id, task = %job.task.id, error = %e, "import failed");
            ImportOutcome::Failure(failure_message(&e))
        }
    };
    match settings.records.finish_import(&job, outcome).await {
        Ok(task) => {
            let event = if task.status == TaskStatus::Success {
                "success"
            } else {
                "failure"
            };
            events.task(event, &task, task.status, &task.message);
        }
        Err(e) => {
            tracing::warn!(image = %job.image.id, task = %job.task.id, error = %e, "import end left to recovery");
            settings.records.forget(&job.lease);
        }
    }
}

/// Where the data is read from, for each store.
#[derive(Clone)]
struct Source {
    store: Arc<dyn Store>,
    url: String,
    size: Option<u64>,
    /// Staged for this import: removed when it ends.
    staged: bool,
}

async fn execute(s: &Settings, job: &ImportJob) -> Result<(), ImageError> {
    s.records.import_running(job).await?;
    s.events.task("run", &job.task, TaskStatus::Processing, "");
    s.events
        .task("processing", &job.task, TaskStatus::Processing, "");
    if let ImportMethod::Location { url, validation } = &job.method {
        return super::location::register(s, job, url, validation.as_ref()).await;
    }
    let source = match open_source(s, job).await {
        Ok(source) => source,
        Err(e) => {
            remove_staged(s, job, None).await;
            return Err(e);
        }
    };
    let result = match with_plugins(s, job, source.clone()).await {
        Ok((job, source)) => write_all(s, &job, &source).await,
        Err(e) => Err(e),
    };
    remove_staged(s, job, Some(&source)).await;
    result
}

/// Runs the import plugins on staged data (never on a copy's): the job goes on
/// with the image as they changed it, and the data as they left it.
async fn with_plugins(
    s: &Settings,
    job: &ImportJob,
    mut source: Source,
) -> Result<(ImportJob, Source), ImageError> {
    if !source.staged || job.is_copy() {
        return Ok((job.clone(), source));
    }
    // A conversion can take long: the task keeps saying so, which also keeps
    // its import lock from looking stale.
    let _progress = Progress::report(s, job, || "Running import plugins".to_string());
    let (job, replaced) = super::plugins::run_all(s, job, &source.url).await?;
    if replaced {
        source.size = Some(s.staging.size(&source.url).await?);
    }
    Ok((job, source))
}

/// Writes every target store; see the module docs for what a failure undoes.
async fn write_all(s: &Settings, job: &ImportJob, source: &Source) -> Result<(), ImageError> {
    let mut written: Vec<(Arc<dyn Store>, String)> = Vec::new();
    let mut active = job.is_copy();
    let mut last_error = None;
    let count = job.stores.len();
    for (i, store_id) in job.stores.iter().enumerate() {
        let set_active = !active && (!job.all_stores_must_succeed || i + 1 == count);
        s.events
            .image("prepare", &importing(job, &job.stores[i..]), store_id);
        let attempt = write_one(s, job, source, store_id).await;
        let failed = match attempt {
            Ok((store, stored)) => {
                match s
                    .records
                    .import_stored(job, store_id, &stored, set_active)
                    .await
                {
                    Ok(image) => {
                        s.events.image("upload", &image, store_id);
                        if set_active {
                            s.events.image("activate", &image, store_id);
                        }
                        written.push((store, stored.location.url));
                        active |= set_active;
                        continue;
                    }
                    Err(e) => {
                        // Not recorded (the lock was lost, the image deleted): the
                        // data is no one's, and the import cannot go on.
                        delete_data(&store, &stored.location.url, job).await;
                        undo(s, job, &written).await;
                        return Err(e);
                    }
                }
            }
            Err(e) => e,
        };
        tracing::warn!(image = %job.image.id, store = %store_id, error = %failed, "import to a store failed");
        if let Err(e) = s.records.import_store_failed(job, store_id).await {
            undo(s, job, &written).await;
            return Err(e);
        }
        if job.all_stores_must_succeed {
            undo(s, job, &written).await;
            return Err(failed);
        }
        last_error = Some(failed);
    }
    match (written.is_empty(), last_error) {
        (true, Some(e)) => Err(e),
        _ => Ok(()),
    }
}

/// The image as it is while `left` remain to be written (for `image.prepare`).
fn importing(job: &ImportJob, left: &[String]) -> crate::Image {
    let mut image = (*job.image).clone();
    if !job.is_copy() {
        image.status = ImageStatus::Importing;
    }
    let mut left = left.to_vec();
    left.sort();
    image
        .properties
        .insert(super::records::IMPORTING_TO_STORES.into(), left.join(","));
    image
}

/// Removes what this import wrote before it failed. For a copy the records must
/// forget the new locations first; for a new image `finish_import` drops them
/// with the image's return to `queued`.
async fn undo(s: &Settings, job: &ImportJob, written: &[(Arc<dyn Store>, String)]) {
    for (store, url) in written {
        // The records read the location from the database: the image as the
        // job found it (without this copy) is enough to name it.
        if job.is_copy()
            && let Err(e) = s.records.remove_location(&job.image, url).await
        {
            tracing::warn!(image = %job.image.id, %url, error = %e, "could not forget a copy's location; its data stays");
            continue;
        }
        delete_data(store, url, job).await;
    }
}

async fn delete_data(store: &Arc<dyn Store>, url: &str, job: &ImportJob) {
    match store.delete(url).await {
        Ok(()) | Err(StoreError::NotFound(_)) => {}
        Err(e) => {
            tracing::warn!(image = %job.image.id, %url, error = %e, "could not remove the data of a failed import")
        }
    }
}

/// Streams the source into one store under the job's lease, hashing it.
async fn write_one(
    s: &Settings,
    job: &ImportJob,
    source: &Source,
    store_id: &str,
) -> Result<(Arc<dyn Store>, StoredData), ImageError> {
    let store = s
        .stores
        .get(store_id)
        .ok_or_else(|| ImageError::Conflict(format!("Unknown scheme '{store_id}' found in URI")))?
        .clone();
    if !store.capabilities().write {
        return Err(ImageError::StoreReadOnly(
            "Adding images to this store is disabled.".into(),
        ));
    }
    s.records.import_writes_to(job, store_id).await?;
    let data = source.store.get(&source.url, None).await?;
    let (data, _progress) = Progress::watch(s, job, data);
    let (stream, digests) = DigestingStream::new(data, s.algo, source.size);
    // A copy is checked again: the store it comes from may hold data written
    // before this server inspected anything.
    let (stream, format) = inspect::inspecting(stream.boxed(), &job.image, &s.format);
    let journal = LeaseJournal {
        records: s.records.as_ref(),
        lease: &job.lease,
    };
    let target = Upload {
        image_id: &job.image.id,
        upload_id: &job.lease.id,
        journal: &journal,
    };
    let object = store.put(&target, stream).await?;
    let Some(digests) = digests.wait().await else {
        delete_data(&store, &object.url, job).await;
        return Err(ImageError::internal(
            "the store finished before the data did",
        ));
    };
    if job.is_copy()
        && let Some(checksum) = &job.image.checksum
        && *checksum != digests.md5
    {
        delete_data(&store, &object.url, job).await;
        return Err(ImageError::Invalid(format!(
            "The copy's checksum {} differs from the image's {checksum}.",
            digests.md5
        )));
    }
    let mut metadata = serde_json::Map::new();
    metadata.insert("store".into(), store_id.into());
    Ok((
        store,
        StoredData {
            location: crate::image::Location {
                url: object.url,
                metadata,
            },
            size: digests.size,
            checksum: digests.md5,
            os_hash_algo: digests.algo.name().to_string(),
            os_hash_value: digests.multihash,
            virtual_size: format.virtual_size(),
        },
    ))
}

/// Finds the import's data: staged by `PUT /stage`, downloaded now into the
/// staging store, or an existing location of the image.
async fn open_source(s: &Settings, job: &ImportJob) -> Result<Source, ImageError> {
    let image = &job.image;
    match &job.method {
        ImportMethod::GlanceDirect => {
            let url = image.properties.get(STAGED_AT).ok_or_else(|| {
                ImageError::Conflict(format!("Image {} has no staged data.", image.id))
            })?;
            Ok(Source {
                store: s.staging.clone(),
                url: url.clone(),
                size: image.size.map(|n| n as u64),
                staged: true,
            })
        }
        ImportMethod::WebDownload { uri } => {
            let web = s
                .web
                .as_ref()
                .ok_or_else(|| ImageError::Unsupported("web-download is not enabled.".into()))?;
            let data = web.open(uri, &[], s.size_cap).await?;
            let expected = data.expected_size;
            let (url, size) = stage_into(s, job, data.stream).await?;
            if let Some(expected) = expected
                && expected != size
            {
                delete_data(&s.staging, &url, job).await;
                return Err(ImageError::Invalid(format!(
                    "Image {} downloaded data size {size} is different from expected {expected}.",
                    image.id
                )));
            }
            Ok(Source {
                store: s.staging.clone(),
                url,
                size: Some(size),
                staged: true,
            })
        }
        ImportMethod::CopyImage => {
            if image.status != ImageStatus::Active {
                return Err(ImageError::Conflict(
                    "Only images with status active can be targeted for copying".into(),
                ));
            }
            // The default store's copy first, as Glance reads it; else any.
            let default = s.stores.default_id();
            let loc = image
                .locations
                .iter()
                .find(|l| crate::location::store_of(l) == Some(default))
                .or_else(|| image.locations.first())
                .ok_or_else(|| ImageError::Conflict("The image has no data to copy.".into()))?;
            let store = s
                .stores
                .for_location(&loc.url, crate::location::store_of(loc))
                .ok_or_else(|| {
                    ImageError::Conflict("No enabled store holds the image's data.".into())
                })?
                .clone();
            Ok(Source {
                store,
                url: loc.url.clone(),
                size: image.size.map(|n| n as u64),
                staged: false,
            })
        }
        ImportMethod::GlanceDownload { .. } => Err(ImageError::Unsupported(
            "The glance-download import method is not supported by this server.".into(),
        )),
        ImportMethod::Location { .. } => Err(ImageError::internal(
            "a location import has no data to write",
        )),
    }
}

/// Writes downloaded data to the staging store under the job's lease.
async fn stage_into(
    s: &Settings,
    job: &ImportJob,
    data: DataStream,
) -> Result<(String, u64), ImageError> {
    s.records.import_writes_to(job, STAGING_STORE).await?;
    let (data, _progress) = Progress::watch(s, job, data);
    let journal = LeaseJournal {
        records: s.records.as_ref(),
        lease: &job.lease,
    };
    let target = Upload {
        image_id: &job.image.id,
        upload_id: &job.lease.id,
        journal: &journal,
    };
    let object = s.staging.put(&target, data).await?;
    Ok((object.url, object.size))
}

/// Removes the import's staged data: what it read from (`source`), or, when it
/// failed before finding it, what `PUT /stage` left.
async fn remove_staged(s: &Settings, job: &ImportJob, source: Option<&Source>) {
    let url = match source {
        Some(source) if source.staged => Some(source.url.clone()),
        Some(_) => None,
        None => job.image.properties.get(STAGED_AT).cloned(),
    };
    if let Some(url) = url {
        delete_data(&s.staging, &url, job).await;
    }
}

/// Reports how much data has moved as the task's message ("Copied N MiB"),
/// every few seconds while the data flows. Each report also tells that the
/// task lives, so its import lock is not taken over as stale however long the
/// import takes. Stops when dropped.
struct Progress {
    ticker: tokio::task::JoinHandle<()>,
}

impl Progress {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(5);

    fn watch(s: &Settings, job: &ImportJob, data: DataStream) -> (DataStream, Progress) {
        let moved = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = moved.clone();
        let data = data
            .inspect(move |chunk| {
                if let Ok(bytes) = chunk {
                    counter.fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
                }
            })
            .boxed();
        let progress = Progress::report(s, job, move || {
            let mib = moved.load(std::sync::atomic::Ordering::Relaxed) >> 20;
            format!("Copied {mib} MiB")
        });
        (data, progress)
    }

    /// Reports `message()` every few seconds until dropped.
    fn report(
        s: &Settings,
        job: &ImportJob,
        message: impl Fn() -> String + Send + 'static,
    ) -> Progress {
        let records = s.records.clone();
        let job = job.clone();
        let ticker = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Self::EVERY);
            tick.tick().await;
            loop {
                tick.tick().await;
                records.import_progress(&job, &message()).await;
            }
        });
        Progress { ticker }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.ticker.abort();
    }
}

/// The task's `message` for a failure: what the client of the task can act on.
fn failure_message(e: &ImageError) -> String {
    match e {
        ImageError::Internal { .. } => "Import failed: internal error.".into(),
        other => other.to_string(),
    }
}
