//! TLS to RabbitMQ as oslo.messaging configures it (`[oslo_messaging_rabbit]
//! ssl_ca_file`, `ssl_cert_file`, `ssl_key_file`), as lapin's rustls settings.
//! The files are read once, when the sink starts, so a wrong path stops the
//! service with its name rather than failing every connection later.

use std::path::{Path, PathBuf};

use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};

use crate::config::OsloMessagingRabbitSection;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("[oslo_messaging_rabbit] {option} {}: {source}", .path.display())]
    Read {
        option: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("[oslo_messaging_rabbit] {option} {}: no PEM {what} in it", .path.display())]
    NotPem {
        option: &'static str,
        path: PathBuf,
        what: &'static str,
    },
    #[error("[oslo_messaging_rabbit] ssl_cert_file and ssl_key_file go together; only {0} is set")]
    HalfIdentity(&'static str),
}

/// The TLS settings for `amqps` connections: the CA certificates to trust on
/// top of the system's (`ssl_ca_file`), and a client certificate when both of
/// its files are set. `ssl_version` is not applied: rustls speaks TLS 1.2 and
/// 1.3 only, which is what any `ssl_version` oslo still accepts asks for.
pub fn tls_config(section: &OsloMessagingRabbitSection) -> Result<OwnedTLSConfig, TlsError> {
    let cert_chain = match &section.ssl_ca_file {
        Some(path) => Some(read_pem("ssl_ca_file", path, "certificate", "CERTIFICATE")?),
        None => None,
    };
    let identity = match (&section.ssl_cert_file, &section.ssl_key_file) {
        (None, None) => None,
        (Some(_), None) => return Err(TlsError::HalfIdentity("ssl_cert_file")),
        (None, Some(_)) => return Err(TlsError::HalfIdentity("ssl_key_file")),
        (Some(cert), Some(key)) => Some(OwnedIdentity::PKCS8 {
            pem: read_pem("ssl_cert_file", cert, "certificate", "CERTIFICATE")?.into_bytes(),
            key: read_pem("ssl_key_file", key, "private key", "PRIVATE KEY")?.into_bytes(),
        }),
    };
    Ok(OwnedTLSConfig {
        identity,
        cert_chain,
    })
}

/// The file's text, checked to hold at least one PEM block whose label ends
/// with `label` (`PRIVATE KEY` covers PKCS#8, RSA and EC keys).
fn read_pem(
    option: &'static str,
    path: &Path,
    what: &'static str,
    label: &str,
) -> Result<String, TlsError> {
    let text = std::fs::read_to_string(path).map_err(|source| TlsError::Read {
        option,
        path: path.to_path_buf(),
        source,
    })?;
    let has_block = text.lines().any(|l| {
        l.strip_prefix("-----BEGIN ")
            .and_then(|rest| rest.strip_suffix("-----"))
            .is_some_and(|l| l.ends_with(label))
    });
    if !has_block {
        return Err(TlsError::NotPem {
            option,
            path: path.to_path_buf(),
            what,
        });
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";

    fn section() -> OsloMessagingRabbitSection {
        OsloMessagingRabbitSection {
            ssl: true,
            ..Default::default()
        }
    }

    #[test]
    fn the_ca_and_client_files_are_read_into_the_tls_config() {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in [("ca.pem", CERT), ("cert.pem", CERT), ("key.pem", KEY)] {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let s = OsloMessagingRabbitSection {
            ssl_ca_file: Some(dir.path().join("ca.pem")),
            ssl_cert_file: Some(dir.path().join("cert.pem")),
            ssl_key_file: Some(dir.path().join("key.pem")),
            ..section()
        };
        let tls = tls_config(&s).unwrap();
        assert_eq!(tls.cert_chain.as_deref(), Some(CERT));
        match tls.identity {
            Some(OwnedIdentity::PKCS8 { pem, key }) => {
                assert_eq!(pem, CERT.as_bytes());
                assert_eq!(key, KEY.as_bytes());
            }
            other => panic!("identity {other:?}"),
        }
        // Without files: the system's roots only, no client certificate.
        let plain = tls_config(&section()).unwrap();
        assert!(plain.cert_chain.is_none() && plain.identity.is_none());
    }

    #[test]
    fn a_missing_or_wrong_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let e = tls_config(&OsloMessagingRabbitSection {
            ssl_ca_file: Some(missing.clone()),
            ..section()
        })
        .unwrap_err();
        assert!(
            e.to_string().starts_with(&format!(
                "[oslo_messaging_rabbit] ssl_ca_file {}:",
                missing.display()
            )),
            "{e}"
        );
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate").unwrap();
        let e = tls_config(&OsloMessagingRabbitSection {
            ssl_ca_file: Some(garbage),
            ..section()
        })
        .unwrap_err();
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
        let e = tls_config(&OsloMessagingRabbitSection {
            ssl_cert_file: Some(dir.path().join("c.pem")),
            ..section()
        })
        .unwrap_err();
        assert!(matches!(e, TlsError::HalfIdentity("ssl_cert_file")));
    }
}
