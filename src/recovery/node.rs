//! Who this node is, for the leases it takes: a `node_id` that survives restarts
//! (so a node that comes back knows its own unfinished uploads at once) and a
//! `boot_id` that does not (so it can tell them from the ones it runs now).

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

/// This node and this life of it.
#[derive(Debug)]
pub struct NodeIdentity {
    pub node_id: String,
    pub boot_id: String,
    /// An exclusive lock held for the life of the process: two live processes
    /// under one node id would take each other's uploads for dead ones.
    _lock: File,
}

impl NodeIdentity {
    /// `configured`, or the id kept in `data_dir/node-id` (made on first start).
    /// Fails when another live process already runs as this node.
    pub fn establish(configured: Option<&str>, data_dir: &Path) -> Result<Self, String> {
        let node_id = match configured.map(str::trim).filter(|s| !s.is_empty()) {
            Some(id) => id.to_string(),
            None => stored_id(&data_dir.join("node-id"))?,
        };
        if node_id.len() > 255 {
            return Err("node_id is longer than 255 characters".into());
        }
        let lock_name: String = node_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let lock_path = data_dir.join(format!("node-{lock_name}.lock"));
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| format!("{}: {e}", lock_path.display()))?;
        if lock.try_lock().is_err() {
            return Err(format!(
                "another process runs as node {node_id:?} ({} is locked); give each node its own [DEFAULT] node_id or data_dir",
                lock_path.display()
            ));
        }
        Ok(NodeIdentity {
            node_id,
            boot_id: uuid::Uuid::new_v4().simple().to_string(),
            _lock: lock,
        })
    }
}

/// Reads the node id kept at `path`, or makes one and keeps it there.
fn stored_id(path: &Path) -> Result<String, String> {
    let fail = |e: std::io::Error| format!("{}: {e}", path.display());
    match File::open(path) {
        Ok(mut f) => {
            let mut id = String::new();
            f.read_to_string(&mut id).map_err(fail)?;
            let id = id.trim().to_string();
            if id.is_empty() {
                return Err(format!("{} is empty", path.display()));
            }
            Ok(id)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = uuid::Uuid::new_v4().to_string();
            // Written whole under a temporary name, then renamed: a crash never
            // leaves a half-written id.
            let tmp = path.with_extension("tmp");
            let mut f = File::create(&tmp).map_err(fail)?;
            f.write_all(id.as_bytes()).map_err(fail)?;
            f.sync_all().map_err(fail)?;
            std::fs::rename(&tmp, path).map_err(fail)?;
            Ok(id)
        }
        Err(e) => Err(fail(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_is_kept_and_one_process_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = NodeIdentity::establish(None, dir.path()).unwrap();
        let err = NodeIdentity::establish(None, dir.path()).unwrap_err();
        assert!(err.contains("another process"), "{err}");
        let id = first.node_id.clone();
        drop(first);
        let again = NodeIdentity::establish(None, dir.path()).unwrap();
        assert_eq!(again.node_id, id, "the id survives a restart");
        let other = NodeIdentity::establish(Some("api-2"), dir.path()).unwrap();
        assert_eq!(other.node_id, "api-2");
        assert_ne!(other.boot_id, again.boot_id);
    }
}
