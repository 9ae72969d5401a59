//! The `keystone` auth mode: what keystonemiddleware's auth_token does for Glance.
//!
//! - `X-Auth-Token` is validated with `GET /v3/auth/tokens`; missing, unknown,
//!   revoked or expired → 401 (the API adds `WWW-Authenticate`).
//! - Validations are cached for `token_cache_time`; a revoked token keeps
//!   working until its entry lapses, as with keystonemiddleware.
//! - `X-Service-Token`, if sent, must be valid too; one holding a service role
//!   lets an expired user token through (`allow_expired`), which is how Nova
//!   finishes long snapshot uploads.
//! - Keystone unreachable → 503, never a pass.

use std::sync::Arc;

use async_trait::async_trait;
use glance_layers::auth::Authenticator;
use glance_layers::{Credentials, Identity, ImageError};

use super::token_cache::TokenCache;
use super::{KeystoneClient, KeystoneError, TokenInfo};
use crate::telemetry::metrics::Metrics;

/// Longest token sent on to Keystone.
const MAX_TOKEN_LEN: usize = 8 << 10;

pub struct KeystoneAuth {
    client: Arc<KeystoneClient>,
    cache: TokenCache,
    service_roles: Vec<String>,
    service_roles_required: bool,
    metrics: Option<Metrics>,
}

impl KeystoneAuth {
    pub fn new(
        client: Arc<KeystoneClient>,
        cache_time: std::time::Duration,
        cache_size: usize,
        service_roles: Vec<String>,
        service_roles_required: bool,
    ) -> Self {
        KeystoneAuth {
            client,
            cache: TokenCache::new(cache_time, cache_size),
            service_roles: service_roles.iter().map(|r| r.to_lowercase()).collect(),
            service_roles_required,
            metrics: None,
        }
    }

    /// Reports validations and cache lookups to `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    async fn token(&self, token: &str, allow_expired: bool) -> Result<TokenInfo, ImageError> {
        // Fernet tokens are a few hundred bytes; anything empty or huge is no
        // token Keystone issued, and is not worth a round trip.
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(unauthenticated());
        }
        let cached = self.cache.get(token);
        if let Some(m) = &self.metrics {
            m.token_cache(cached.is_some());
        }
        let info = match cached {
            Some(info) => info,
            None => {
                let started = std::time::Instant::now();
                let validated = self.client.validate(token, allow_expired).await;
                if let Some(m) = &self.metrics {
                    let outcome = match &validated {
                        Ok(_) => "valid",
                        Err(KeystoneError::InvalidToken) => "invalid",
                        Err(KeystoneError::Unavailable(_)) => "unavailable",
                    };
                    m.keystone_validation(outcome, started.elapsed());
                }
                let info = validated.map_err(to_image_error)?;
                self.cache.insert(token, info.clone());
                info
            }
        };
        // A cached token may have expired since Keystone vouched for it.
        if !allow_expired && info.expires_at <= chrono::Utc::now() {
            return Err(unauthenticated());
        }
        Ok(info)
    }
}

fn unauthenticated() -> ImageError {
    ImageError::NotAuthenticated("The request you have made requires authentication.".into())
}

fn to_image_error(e: KeystoneError) -> ImageError {
    match e {
        KeystoneError::InvalidToken => unauthenticated(),
        e @ KeystoneError::Unavailable(_) => {
            tracing::error!(error = %e, "unable to validate token");
            ImageError::unavailable(
                "The Keystone service is temporarily unavailable.",
                Some(std::sync::Arc::new(e) as glance_layers::ErrorSource),
            )
        }
    }
}

#[async_trait]
impl Authenticator for KeystoneAuth {
    async fn authenticate(&self, c: &Credentials) -> Result<Identity, ImageError> {
        let mut allow_expired = false;
        if let Some(service) = c.service_token.as_deref() {
            let info = self.token(service, false).await?;
            let is_service = info.roles.iter().any(|r| self.service_roles.contains(r));
            if self.service_roles_required && !is_service {
                return Err(unauthenticated());
            }
            allow_expired = is_service;
        }
        let user = c.auth_token.as_deref().ok_or_else(unauthenticated)?;
        let info = self.token(user, allow_expired).await?;
        Ok(Identity {
            user_id: Some(info.user_id).filter(|u| !u.is_empty()),
            project_id: info.project_id,
            is_admin: info.roles.iter().any(|r| r == "admin"),
            system_scope: info.system_all.then(|| "all".to_string()),
            roles: info.roles,
            read_only: false,
        })
    }
}
