//! The cache's directory, laid out as Glance's: finished files named by image id
//! at the top, fills in progress in `incomplete/`, failed fills in `invalid/`,
//! and the prefetch queue as empty files in `queue/` (ordered by their mtime).
//!
//! A file reaches the top only by a rename from `incomplete/` after it was
//! written whole and verified, so a file under its final name is always whole.

use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The cache directory of this node.
#[derive(Debug, Clone)]
pub struct CacheDir {
    root: PathBuf,
}

/// A file in one of the cache's directories.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub size: u64,
    pub modified: SystemTime,
}

const INCOMPLETE: &str = "incomplete";
const INVALID: &str = "invalid";
const QUEUE: &str = "queue";

impl CacheDir {
    /// Creates the directories if they are missing.
    pub fn open(root: &Path) -> io::Result<CacheDir> {
        for sub in [INCOMPLETE, INVALID, QUEUE] {
            std::fs::create_dir_all(root.join(sub))?;
        }
        Ok(CacheDir {
            root: root.to_path_buf(),
        })
    }

    /// The finished file of an image. Ids come from URLs: only a name that is a
    /// plain file name may be used, anything else is never cached.
    pub fn cached(&self, id: &str) -> Option<PathBuf> {
        is_plain(id).then(|| self.root.join(id))
    }

    pub fn incomplete(&self, id: &str) -> Option<PathBuf> {
        is_plain(id).then(|| self.root.join(INCOMPLETE).join(id))
    }

    pub fn invalid(&self, id: &str) -> Option<PathBuf> {
        is_plain(id).then(|| self.root.join(INVALID).join(id))
    }

    pub fn queued(&self, id: &str) -> Option<PathBuf> {
        is_plain(id).then(|| self.root.join(QUEUE).join(id))
    }

    /// The finished files.
    pub async fn cached_files(&self) -> io::Result<Vec<Entry>> {
        files_in(&self.root).await
    }

    pub async fn incomplete_files(&self) -> io::Result<Vec<Entry>> {
        files_in(&self.root.join(INCOMPLETE)).await
    }

    pub async fn invalid_files(&self) -> io::Result<Vec<Entry>> {
        files_in(&self.root.join(INVALID)).await
    }

    /// The queue, oldest first.
    pub async fn queue(&self) -> io::Result<Vec<String>> {
        let mut entries = files_in(&self.root.join(QUEUE)).await?;
        entries.sort_by(|a, b| a.modified.cmp(&b.modified).then(a.name.cmp(&b.name)));
        Ok(entries.into_iter().map(|e| e.name).collect())
    }
}

/// A name with no path in it (image ids are UUIDs, but any id a client sends
/// reaches here).
fn is_plain(id: &str) -> bool {
    !id.is_empty()
        && id != "."
        && id != ".."
        && !id.contains(['/', '\\', '\0'])
        && id != INCOMPLETE
        && id != INVALID
        && id != QUEUE
}

/// The regular files of a directory (not its subdirectories).
async fn files_in(dir: &Path) -> io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    let mut read = tokio::fs::read_dir(dir).await?;
    while let Some(e) = read.next_entry().await? {
        let Ok(meta) = e.metadata().await else {
            // Removed while we listed: not there any more.
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        out.push(Entry {
            name: e.file_name().to_string_lossy().into_owned(),
            size: meta.len(),
            modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        });
    }
    Ok(out)
}

/// Removes a file; `true` if it was there.
pub async fn remove(path: &Path) -> io::Result<bool> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_become_paths() {
        let dir = CacheDir {
            root: PathBuf::from("/c"),
        };
        assert_eq!(dir.cached("abc"), Some(PathBuf::from("/c/abc")));
        for bad in ["", ".", "..", "a/b", "..\\x", "queue", "incomplete"] {
            assert_eq!(dir.cached(bad), None, "{bad:?}");
        }
    }
}
