//! The `file` store: one file per image under a directory, written to a temporary
//! name, fsynced, then renamed, so a crash or a cut upload never leaves a partial
//! image under a real name.

use std::io::SeekFrom;
use std::ops::Range;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use futures_util::{StreamExt, TryStreamExt};
use glance_layers::store::{Capabilities, Store, StoreError, StoredObject, Upload};
use glance_layers::{DataStream, ImageError};
use std::io::Write;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

/// Bytes per chunk read back.
const CHUNK: usize = 1 << 20;
/// Chunks queued for the writer thread, at most.
const WRITE_QUEUE: usize = 32;

#[derive(Debug, Clone)]
pub struct FileStore {
    root: PathBuf,
    fsync: bool,
}

impl FileStore {
    /// A store in `root`, created if missing. `fsync` makes every image durable
    /// before its upload is acknowledged.
    pub fn new(root: impl Into<PathBuf>, fsync: bool) -> std::io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        let root = std::fs::canonicalize(&root)?;
        Ok(FileStore { root, fsync })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The objects stored under final names, as `(name, url)`: temporary files
    /// are not among them.
    pub async fn objects(&self) -> std::io::Result<Vec<(String, String)>> {
        let mut found = Vec::new();
        let mut dir = tokio::fs::read_dir(&self.root).await?;
        while let Some(entry) = dir.next_entry().await? {
            let name = entry.file_name();
            if let Some(name) = name.to_str().filter(|n| plain_name(n)) {
                found.push((name.to_string(), self.url_of(&entry.path())));
            }
        }
        Ok(found)
    }

    /// The file behind a URL of this store, for tools that need a path (the
    /// import plugins run `qemu-img` on staged data).
    pub fn local_path(&self, url: &str) -> Result<PathBuf, StoreError> {
        self.path_of(url)
    }

    /// The temporary name of `(image_id, upload_id)`'s data: a file there is
    /// removed by recovery with the upload's lease.
    pub fn scratch_path(&self, image_id: &str, upload_id: &str) -> Result<PathBuf, StoreError> {
        if !plain_name(image_id) || !plain_name(upload_id) {
            return Err(StoreError::Data(ImageError::Invalid(
                "Invalid image id.".into(),
            )));
        }
        Ok(self.temp_path(image_id, upload_id))
    }

    fn url_of(&self, path: &Path) -> String {
        format!("file://{}", path.display())
    }

    /// The path a URL of ours names; refuses anything outside the store directory.
    fn path_of(&self, url: &str) -> Result<PathBuf, StoreError> {
        let path = url
            .strip_prefix("file://")
            .map(PathBuf::from)
            .filter(|p| p.parent() == Some(self.root.as_path()))
            .ok_or_else(|| StoreError::NotFound(url.to_string()))?;
        Ok(path)
    }

    /// Where an upload writes before the rename: `.{image_id}.{upload_id}.tmp`, so
    /// that recovery can tell whose upload a temporary file belongs to.
    fn temp_path(&self, image_id: &str, upload_id: &str) -> PathBuf {
        self.root.join(format!(".{image_id}.{upload_id}.tmp"))
    }

    /// An I/O failure on `path`: a missing file is [`StoreError::NotFound`] under
    /// the URL it stands for; a full disk or quota is `Full`; the rest `Failed`, all
    /// with the `io::Error` kept as their source.
    fn io_error(&self, path: &Path, e: std::io::Error) -> StoreError {
        if e.kind() == std::io::ErrorKind::NotFound {
            return StoreError::NotFound(self.url_of(path));
        }
        StoreError::io("file", e)
    }
}

/// Whether `name` can be a file name of ours: not empty, no separators, no dot
/// first (temporary files start with one).
fn plain_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['/', '\\', '\0']) && !name.starts_with('.')
}

/// Removes the temporary file unless the upload was committed, including when the
/// upload future is dropped half-way.
struct TempFile {
    path: Option<PathBuf>,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[async_trait]
impl Store for FileStore {
    fn kind(&self) -> &'static str {
        "file"
    }

    /// The directory is there (an unmounted volume shows as missing).
    async fn check(&self) -> Result<(), StoreError> {
        match tokio::fs::metadata(&self.root).await {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(StoreError::failed(
                "file",
                format!("{} is not a directory", self.root.display()),
            )),
            Err(e) => Err(StoreError::io("file", e)),
        }
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            random_read: true,
            write: true,
        }
    }

    fn owns(&self, url: &str) -> bool {
        self.path_of(url).is_ok()
    }

    async fn put(
        &self,
        upload: &Upload<'_>,
        mut data: DataStream,
    ) -> Result<StoredObject, StoreError> {
        let image_id = upload.image_id;
        if !plain_name(image_id) || !plain_name(upload.upload_id) {
            return Err(StoreError::Data(ImageError::Invalid(
                "Invalid image id.".into(),
            )));
        }
        let dest = self.root.join(image_id);
        let tmp_path = self.temp_path(image_id, upload.upload_id);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp_path)
            .map_err(|e| self.io_error(&tmp_path, e))?;
        let mut guard = TempFile {
            path: Some(tmp_path.clone()),
        };
        // One blocking thread writes the chunks as they come, straight from the
        // request's buffers into the file: no copy into a user-space buffer, no
        // hand-off per write. The queue bounds what is held in memory.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(WRITE_QUEUE);
        let fsync = self.fsync;
        let writer = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let mut file = file;
            while let Some(chunk) = rx.blocking_recv() {
                file.write_all(&chunk)?;
            }
            if fsync {
                file.sync_all()?;
            }
            Ok(())
        });
        let mut size = 0u64;
        while let Some(chunk) = data.next().await {
            let chunk = chunk.map_err(StoreError::Data)?;
            size += chunk.len() as u64;
            if tx.send(chunk).await.is_err() {
                // The writer stopped: its error says why.
                break;
            }
        }
        drop(tx);
        writer
            .await
            .map_err(|e| StoreError::failed("file", e))?
            .map_err(|e| self.io_error(&tmp_path, e))?;
        tokio::fs::rename(&tmp_path, &dest)
            .await
            .map_err(|e| self.io_error(&tmp_path, e))?;
        guard.path = None;
        if self.fsync {
            // The rename is durable only once the directory entry is.
            let dir = self.root.clone();
            tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all())
                .await
                .map_err(|e| StoreError::failed("file", e))?
                .map_err(|e| self.io_error(&self.root, e))?;
        }
        Ok(StoredObject {
            url: self.url_of(&dest),
            size,
        })
    }

    async fn discard(
        &self,
        image_id: &str,
        upload_id: &str,
        _partial: Option<&str>,
        with_final: bool,
    ) -> Result<(), StoreError> {
        if !plain_name(image_id) || !plain_name(upload_id) {
            return Ok(());
        }
        let mut doomed = vec![self.temp_path(image_id, upload_id)];
        if with_final {
            doomed.push(self.root.join(image_id));
        }
        for path in doomed {
            match tokio::fs::remove_file(&path).await {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "removed the data of an unfinished upload")
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.io_error(&path, e)),
            }
        }
        Ok(())
    }

    async fn temporary(&self) -> Result<Vec<(String, String)>, StoreError> {
        let mut found = Vec::new();
        let mut dir = tokio::fs::read_dir(&self.root)
            .await
            .map_err(|e| self.io_error(&self.root, e))?;
        while let Some(entry) = dir
            .next_entry()
            .await
            .map_err(|e| self.io_error(&self.root, e))?
        {
            let name = entry.file_name();
            let Some(ids) = name
                .to_str()
                .and_then(|n| n.strip_prefix('.'))
                .and_then(|n| n.strip_suffix(".tmp"))
                .and_then(|n| n.rsplit_once('.'))
            else {
                continue;
            };
            found.push((ids.0.to_string(), ids.1.to_string()));
        }
        Ok(found)
    }

    async fn get(&self, url: &str, range: Option<Range<u64>>) -> Result<DataStream, StoreError> {
        let path = self.path_of(url)?;
        let mut file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| self.io_error(&path, e))?;
        let stream = match range {
            Some(r) => {
                file.seek(SeekFrom::Start(r.start))
                    .await
                    .map_err(|e| self.io_error(&path, e))?;
                ReaderStream::with_capacity(file.take(r.end - r.start), CHUNK).boxed()
            }
            None => ReaderStream::with_capacity(file, CHUNK).boxed(),
        };
        Ok(stream
            .map_err(|e| {
                tracing::error!(error = %e, "reading image data failed");
                ImageError::unavailable(
                    "Reading the image data failed.",
                    Some(std::sync::Arc::new(e) as glance_layers::ErrorSource),
                )
            })
            .boxed())
    }

    async fn delete(&self, url: &str) -> Result<(), StoreError> {
        let path = self.path_of(url)?;
        tokio::fs::remove_file(&path)
            .await
            .map_err(|e| self.io_error(&path, e))
    }

    fn properties(&self) -> serde_json::Value {
        serde_json::json!({
            "data_dir": self.root.display().to_string(),
            "chunk_size": CHUNK,
            "thin_provisioning": false,
        })
    }

    async fn size(&self, url: &str) -> Result<u64, StoreError> {
        let path = self.path_of(url)?;
        Ok(tokio::fs::metadata(&path)
            .await
            .map_err(|e| self.io_error(&path, e))?
            .len())
    }
}
