//! The metadef catalogue: namespaces in Glance's JSON file format (the files of
//! Glance's `etc/metadefs/`: `namespace`, `display_name`, `description`,
//! `visibility`, `protected`, `owner`, `resource_type_associations`,
//! `properties`, `objects`, `tags`), loaded from a directory
//! (`glance-api load-metadefs DIR`, Glance's `glance-manage db load_metadefs`)
//! or from the small catalogue built into the binary, which a server loads at
//! start when it has no namespace at all, so that a fresh server lists
//! resource types as Glance does after `db load_metadefs`.

use std::path::Path;

use glance_layers::ImageError;
use serde_json::Value;

use crate::api::metadefs_parse::new_namespace;
use crate::db::Repo;

/// Our own catalogue (`metadefs/` in the repository).
const EMBEDDED: [(&str, &str); 5] = [
    (
        "compute-cpu.json",
        include_str!("../metadefs/compute-cpu.json"),
    ),
    (
        "compute-memory.json",
        include_str!("../metadefs/compute-memory.json"),
    ),
    (
        "compute-watchdog.json",
        include_str!("../metadefs/compute-watchdog.json"),
    ),
    (
        "compute-hypervisor.json",
        include_str!("../metadefs/compute-hypervisor.json"),
    ),
    (
        "instance-data.json",
        include_str!("../metadefs/instance-data.json"),
    ),
];

/// What to do with a namespace the database already has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Existing {
    /// Leave it as it is (Glance's default).
    #[default]
    Skip,
    /// Delete it and load the file's version (Glance's `--prefer_new`, without
    /// the merge).
    Replace,
}

/// What a load did, namespace by namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub loaded: Vec<String>,
    pub skipped: Vec<String>,
    pub replaced: Vec<String>,
}

/// Why a catalogue did not load.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: {reason}")]
    Invalid { file: String, reason: String },
    #[error("{0}")]
    Database(ImageError),
}

/// Loads the files of `dir` whose names end in `.json`, in name order.
pub async fn load_dir(repo: &Repo, dir: &Path, existing: Existing) -> Result<Report, LoadError> {
    let read_err = |source| LoadError::Read {
        file: dir.display().to_string(),
        source,
    };
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map_err(read_err)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    let mut files = Vec::with_capacity(paths.len());
    for p in paths {
        let text = std::fs::read_to_string(&p).map_err(|source| LoadError::Read {
            file: p.display().to_string(),
            source,
        })?;
        files.push((p.display().to_string(), text));
    }
    load(repo, &files, existing).await
}

/// [`load_dir`] into the database `config` names (migrated first), for the CLI.
pub async fn load_dir_with_config(
    config: &crate::config::Config,
    dir: &Path,
    existing: Existing,
) -> Result<Report, LoadError> {
    std::fs::create_dir_all(&config.default.data_dir).map_err(|source| LoadError::Read {
        file: config.default.data_dir.display().to_string(),
        source,
    })?;
    let db = crate::db::connect(&config.database_url())
        .await
        .map_err(|e| LoadError::Database(crate::db::db_error(e)))?;
    load_dir(&Repo::new(db), dir, existing).await
}

/// Loads the built-in catalogue if the database holds no namespace yet.
pub async fn load_embedded_if_empty(repo: &Repo) -> Result<Option<Report>, LoadError> {
    if !repo.metadef_is_empty().await.map_err(LoadError::Database)? {
        return Ok(None);
    }
    let files: Vec<(String, String)> = EMBEDDED
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
    load(repo, &files, Existing::Skip).await.map(Some)
}

/// Loads `(name, JSON text)` files: every file is checked before any is written.
pub async fn load(
    repo: &Repo,
    files: &[(String, String)],
    existing: Existing,
) -> Result<Report, LoadError> {
    let mut parsed = Vec::with_capacity(files.len());
    for (file, text) in files {
        let invalid = |reason: String| LoadError::Invalid {
            file: file.clone(),
            reason,
        };
        let value: Value = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let new = new_namespace(&value).map_err(|e| invalid(e.to_string()))?;
        // Glance's loader makes the catalogue the admin's unless a file says.
        let owner = value
            .get("owner")
            .and_then(Value::as_str)
            .unwrap_or("admin")
            .to_string();
        parsed.push((new, owner));
    }
    let mut report = Report::default();
    for (new, owner) in parsed {
        let name = new.fields.namespace.clone();
        let mut replacing = false;
        if let Some(row) = repo
            .metadef_namespace(&name)
            .await
            .map_err(LoadError::Database)?
        {
            if existing == Existing::Skip {
                report.skipped.push(name);
                continue;
            }
            repo.delete_metadef_namespace(row.id)
                .await
                .map_err(LoadError::Database)?;
            replacing = true;
        }
        repo.insert_metadef_namespace(&new, Some(owner), crate::service::now())
            .await
            .map_err(LoadError::Database)?;
        // Seeded resource types outlive the associations made to them.
        let types: Vec<String> = new
            .resource_type_associations
            .iter()
            .map(|a| a.name.clone())
            .collect();
        repo.protect_metadef_resource_types(&types)
            .await
            .map_err(LoadError::Database)?;
        if replacing {
            report.replaced.push(name);
        } else {
            report.loaded.push(name);
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_catalogue_parses_and_covers_the_common_resource_types() {
        let mut types = std::collections::BTreeSet::new();
        for (file, text) in EMBEDDED {
            let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{file}: {e}"));
            let ns = new_namespace(&v).unwrap_or_else(|e| panic!("{file}: {e}"));
            types.extend(ns.resource_type_associations.into_iter().map(|a| a.name));
        }
        for t in [
            "OS::Glance::Image",
            "OS::Nova::Flavor",
            "OS::Nova::Aggregate",
            "OS::Cinder::Volume",
            "OS::Nova::Server",
        ] {
            assert!(types.contains(t), "{t} missing from {types:?}");
        }
    }
}
