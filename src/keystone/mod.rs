//! Keystone v3 as a client: the service's own token, token validation, and
//! unified limits. Used by the auth layer (`auth.rs`) and the quota layer's
//! limit source (`limits.rs`).

mod auth;
mod limits;
mod token_cache;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Mutex;

pub use auth::KeystoneAuth;
pub use limits::{EndpointRef, KeystoneLimits};

/// Why Keystone gave no answer we can use.
#[derive(Debug, thiserror::Error)]
pub enum KeystoneError {
    /// Keystone says the token is not (or no longer) valid.
    #[error("invalid token")]
    InvalidToken,
    /// Keystone could not be reached or refused our own credentials.
    #[error("{0}")]
    Unavailable(String),
}

/// How the service's own token is scoped.
#[derive(Debug, Clone)]
pub enum Scope {
    Project {
        name: String,
        domain_name: String,
    },
    /// `system: {all: true}`, which unified limits need to list every project's limits.
    System,
}

/// Password credentials of the service user, as `[keystone_authtoken]` names them.
#[derive(Debug, Clone)]
pub struct ServiceCredentials {
    pub auth_url: String,
    pub username: String,
    pub password: String,
    pub user_domain_name: String,
    pub scope: Scope,
}

/// A validated token, as much of it as Glance uses.
#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub user_id: String,
    pub project_id: Option<String>,
    pub roles: Vec<String>,
    pub system_all: bool,
    pub expires_at: DateTime<Utc>,
}

/// Talks to one Keystone with one service user's token, renewed when it lapses.
pub struct KeystoneClient {
    http: reqwest::Client,
    base: String,
    creds: ServiceCredentials,
    service_token: Mutex<Option<(String, DateTime<Utc>)>>,
}

impl KeystoneClient {
    pub fn new(
        creds: ServiceCredentials,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .timeout(request_timeout)
            .build()
            .map_err(|e| format!("keystone client: {e}"))?;
        Ok(KeystoneClient {
            http,
            base: base_url(&creds.auth_url),
            creds,
            service_token: Mutex::new(None),
        })
    }

    /// The service's token, fetched again a minute before it expires.
    async fn service_token(&self, renew: bool) -> Result<String, KeystoneError> {
        let mut slot = self.service_token.lock().await;
        if let Some((token, expires)) = slot.as_ref()
            && !renew
            && *expires - chrono::Duration::seconds(60) > Utc::now()
        {
            return Ok(token.clone());
        }
        let c = &self.creds;
        let scope = match &c.scope {
            Scope::Project { name, domain_name } => {
                json!({"project": {"name": name, "domain": {"name": domain_name}}})
            }
            Scope::System => json!({"system": {"all": true}}),
        };
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": c.username,
                "domain": {"name": c.user_domain_name},
                "password": c.password,
            }}},
            "scope": scope,
        }});
        let resp = self
            .http
            .post(format!("{}/auth/tokens", self.base))
            .json(&body)
            .send()
            .await
            .map_err(unreachable)?;
        if !resp.status().is_success() {
            return Err(KeystoneError::Unavailable(format!(
                "Keystone refused the service credentials of {:?}: {}",
                c.username,
                resp.status()
            )));
        }
        let token = resp
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| KeystoneError::Unavailable("Keystone sent no X-Subject-Token".into()))?;
        let parsed: TokenBody = resp.json().await.map_err(unreachable)?;
        *slot = Some((token.clone(), parsed.token.expires_at));
        Ok(token)
    }

    /// A GET with the service's token, retried once with a fresh token if
    /// Keystone no longer accepts ours.
    async fn get(
        &self,
        path_and_query: &str,
        subject: Option<&str>,
    ) -> Result<reqwest::Response, KeystoneError> {
        let mut renew = false;
        loop {
            let token = self.service_token(renew).await?;
            let mut req = self
                .http
                .get(format!("{}{path_and_query}", self.base))
                .header("x-auth-token", token);
            // Keystone's spans join the request's trace.
            let mut trace = http::HeaderMap::new();
            crate::telemetry::propagation::inject(&mut trace);
            req = req.headers(trace);
            if let Some(subject) = subject {
                req = req.header("x-subject-token", subject);
            }
            let resp = req.send().await.map_err(unreachable)?;
            if resp.status() == reqwest::StatusCode::UNAUTHORIZED && !renew {
                renew = true;
                continue;
            }
            return Ok(resp);
        }
    }

    /// `GET /v3/auth/tokens`: what Keystone knows of `token`.
    pub async fn validate(
        &self,
        token: &str,
        allow_expired: bool,
    ) -> Result<TokenInfo, KeystoneError> {
        let path = if allow_expired {
            "/auth/tokens?allow_expired=1"
        } else {
            "/auth/tokens"
        };
        let resp = self.get(path, Some(token)).await?;
        match resp.status().as_u16() {
            200 => {}
            // Unknown, expired, revoked, or not a token at all.
            400 | 404 => return Err(KeystoneError::InvalidToken),
            s => {
                return Err(KeystoneError::Unavailable(format!(
                    "Keystone answered {s} to a token validation"
                )));
            }
        }
        let body: TokenBody = resp.json().await.map_err(unreachable)?;
        let t = body.token;
        Ok(TokenInfo {
            user_id: t.user.map(|u| u.id).unwrap_or_default(),
            project_id: t.project.map(|p| p.id),
            roles: t.roles.into_iter().map(|r| r.name.to_lowercase()).collect(),
            system_all: t.system.is_some_and(|s| s.all),
            expires_at: t.expires_at,
        })
    }

    /// A GET of a JSON document, any non-2xx an `Unavailable`.
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path_and_query: &str,
    ) -> Result<T, KeystoneError> {
        let resp = self.get(path_and_query, None).await?;
        if !resp.status().is_success() {
            return Err(KeystoneError::Unavailable(format!(
                "Keystone answered {} to GET {path_and_query}",
                resp.status()
            )));
        }
        resp.json().await.map_err(unreachable)
    }
}

fn unreachable(e: reqwest::Error) -> KeystoneError {
    KeystoneError::Unavailable(format!("Keystone is unreachable: {e}"))
}

/// `http://host:5000`, `http://host:5000/`, `http://host:5000/v3` → `http://host:5000/v3`.
fn base_url(auth_url: &str) -> String {
    let trimmed = auth_url.trim_end_matches('/');
    let root = trimmed.strip_suffix("/v3").unwrap_or(trimmed);
    format!("{root}/v3")
}

#[derive(Deserialize)]
struct TokenBody {
    token: TokenData,
}

#[derive(Deserialize)]
struct TokenData {
    expires_at: DateTime<Utc>,
    user: Option<IdOnly>,
    project: Option<IdOnly>,
    #[serde(default)]
    roles: Vec<Role>,
    system: Option<System>,
}

#[derive(Deserialize)]
struct IdOnly {
    id: String,
}

#[derive(Deserialize)]
struct Role {
    name: String,
}

#[derive(Deserialize)]
struct System {
    #[serde(default)]
    all: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_urls_with_and_without_version() {
        for u in [
            "http://k:5000",
            "http://k:5000/",
            "http://k:5000/v3",
            "http://k:5000/v3/",
        ] {
            assert_eq!(base_url(u), "http://k:5000/v3");
        }
        assert_eq!(base_url("https://k/identity"), "https://k/identity/v3");
    }

    #[test]
    fn token_documents_parse() {
        let body: TokenBody = serde_json::from_str(
            r#"{"token": {"methods": ["password"], "user": {"domain": {"id": "default", "name": "Default"}, "id": "u1", "name": "alice"},
                "audit_ids": ["x"], "expires_at": "2026-11-24T20:00:00.000000Z", "issued_at": "2026-11-24T19:00:00.000000Z",
                "project": {"domain": {"id": "default", "name": "Default"}, "id": "p1", "name": "glance-a"},
                "is_domain": false, "roles": [{"id": "r1", "name": "Member"}, {"id": "r2", "name": "reader"}], "catalog": []}}"#,
        )
        .unwrap();
        assert_eq!(body.token.project.unwrap().id, "p1");
        assert_eq!(body.token.roles.len(), 2);
        let system: TokenBody = serde_json::from_str(
            r#"{"token": {"user": {"id": "u"}, "expires_at": "2026-11-24T20:00:00Z", "system": {"all": true}, "roles": [{"id": "a", "name": "admin"}]}}"#,
        )
        .unwrap();
        assert!(system.token.system.unwrap().all);
    }
}
