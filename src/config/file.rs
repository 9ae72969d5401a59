//! The configuration file: TOML, or Glance's own glance-api.conf (oslo.config's
//! INI dialect, see `oslo_ini`).
//!
//! Which one is decided by the file name, then by the content: a `.toml` file is
//! TOML and a `.conf` or `.ini` file is INI; any other file is TOML if it parses
//! as TOML, else INI. (A glance-api.conf is rarely valid TOML: its strings are
//! unquoted. When it is, both readings agree, since INI values are read as
//! strings and converted to the type each option wants.)

use std::path::{Path, PathBuf};

use figment::value::Dict;
use figment::{Metadata, Profile, Provider, Source};

use super::oslo_ini::{IniError, IniFile};

/// The file could not be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not valid TOML: {source}", path.display())]
    Toml {
        path: PathBuf,
        source: Box<figment::Error>,
    },
    #[error("{}: not valid glance-api.conf INI: {source}", path.display())]
    Ini { path: PathBuf, source: IniError },
    #[error(
        "{}: neither TOML ({toml}) nor glance-api.conf INI ({ini})",
        path.display()
    )]
    Neither {
        path: PathBuf,
        toml: Box<figment::Error>,
        ini: IniError,
    },
}

/// One layer of values and where they came from, so errors name the file.
#[derive(Debug)]
pub struct Layer {
    pub metadata: Metadata,
    pub dict: Dict,
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> Result<figment::value::Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Format {
    Toml,
    Ini,
    Either,
}

/// Reads `path` as TOML or INI (see the module's comment).
pub fn read(path: &Path) -> Result<Layer, FileError> {
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let format = match path.extension().and_then(|e| e.to_str()) {
        Some("toml") => Format::Toml,
        Some("conf" | "ini") => Format::Ini,
        _ => Format::Either,
    };
    let toml = || {
        <figment::providers::Toml as figment::providers::Format>::string(&text)
            .data()
            .map(|mut profiles| profiles.remove(&Profile::Default).unwrap_or_default())
            .map_err(Box::new)
    };
    let (dict, kind) = match format {
        Format::Toml => (
            toml().map_err(|source| FileError::Toml {
                path: path.to_path_buf(),
                source,
            })?,
            "TOML file",
        ),
        Format::Ini => (
            ini(&text).map_err(|source| FileError::Ini {
                path: path.to_path_buf(),
                source,
            })?,
            "INI file",
        ),
        Format::Either => match toml() {
            Ok(dict) => (dict, "TOML file"),
            Err(toml) => match ini(&text) {
                Ok(dict) => (dict, "INI file"),
                Err(ini) => {
                    return Err(FileError::Neither {
                        path: path.to_path_buf(),
                        toml,
                        ini,
                    });
                }
            },
        },
    };
    Ok(Layer {
        metadata: Metadata::from(kind, Source::File(path.to_path_buf())),
        dict,
    })
}

/// An INI file as sections of string values; each option converts the string
/// to its own type when the configuration is extracted.
fn ini(text: &str) -> Result<Dict, IniError> {
    let file = IniFile::parse(text)?;
    Ok(file
        .last_values()
        .into_iter()
        .map(|(section, values)| {
            let values: Dict = values.into_iter().map(|(k, v)| (k, v.into())).collect();
            (section, values.into())
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_by_extension_then_content() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let conf = "[DEFAULT]\nbind_host = 0.0.0.0\n";
        let layer = read(&write("glance-api.conf", conf)).unwrap();
        assert!(layer.metadata.name.contains("INI"));
        let layer = read(&write("glance-api", conf)).unwrap();
        assert!(layer.metadata.name.contains("INI"));
        // Valid TOML without a telling extension is TOML.
        let toml = "[DEFAULT]\nbind = \"0.0.0.0:1\"\n";
        let layer = read(&write("glance", toml)).unwrap();
        assert!(layer.metadata.name.contains("TOML"));
        // An INI in a .toml file is refused rather than guessed.
        assert!(matches!(
            read(&write("g.toml", conf)),
            Err(FileError::Toml { .. })
        ));
        assert!(matches!(
            read(&write("g.conf", "[DEFAULT]\n  oops\n")),
            Err(FileError::Ini { .. })
        ));
        let err = read(&write("g", "just words\n")).unwrap_err();
        assert!(matches!(err, FileError::Neither { .. }), "{err}");
        assert!(matches!(
            read(&dir.path().join("missing.conf")),
            Err(FileError::Read { .. })
        ));
    }
}
