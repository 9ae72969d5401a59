//! Who is asking: the raw credentials the HTTP edge saw, and the identity the auth
//! layer resolved from them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::{Image, ImageError};

/// Per-request context, carried by every [`crate::ImageRequest`].
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// `req-<uuid>`, as sent back in `x-openstack-request-id`.
    pub request_id: String,
    /// What the client presented, untouched.
    pub credentials: Credentials,
    /// Set by the auth layer; `None` before it has run.
    pub identity: Option<Identity>,
    /// The image the request targets, once a layer has read it.
    pub loaded: LoadedImage,
    /// Who the auth layer found asking, for the edge that made the request
    /// (its access log names the project).
    pub caller: CallerSlot,
}

/// The project the auth layer resolved, shared with whoever made the request:
/// the request travels down the stack and does not come back, this does.
#[derive(Debug, Clone, Default)]
pub struct CallerSlot(Arc<std::sync::OnceLock<Option<String>>>);

impl CallerSlot {
    /// Records the caller's project; the first record stays.
    pub fn set(&self, identity: &Identity) {
        let _ = self.0.set(identity.project_id.clone());
    }

    /// The caller's project, once authenticated (and if it has one).
    pub fn project(&self) -> Option<&str> {
        self.0.get().and_then(|p| p.as_deref())
    }
}

/// The record of the image a request targets, read once per request by the first
/// layer that needs it (the policy layer, or the core when there is none) and
/// used by every layer after it, above and below, instead of reading again.
///
/// A write replaces it with the record it wrote (a delete empties it), so a layer
/// that reads after the write sees the new record. Clones share the slot: a
/// request derived from this one sees what it sees.
#[derive(Debug, Clone, Default)]
pub struct LoadedImage(Arc<Mutex<Option<Arc<Image>>>>);

impl LoadedImage {
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Arc<Image>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The loaded image, if it is the one with this id.
    pub fn get(&self, id: &str) -> Option<Arc<Image>> {
        self.slot().as_ref().filter(|i| i.id == id).cloned()
    }

    /// Keeps `image` as the request's loaded record unless one is kept already,
    /// and answers the record for its id.
    pub fn keep(&self, image: impl Into<Arc<Image>>) -> Arc<Image> {
        let image = image.into();
        let mut slot = self.slot();
        match slot.as_ref() {
            Some(kept) if kept.id == image.id => kept.clone(),
            Some(_) => image,
            None => {
                *slot = Some(image.clone());
                image
            }
        }
    }

    /// The record after a write to it.
    pub fn replace(&self, image: impl Into<Arc<Image>>) {
        *self.slot() = Some(image.into());
    }

    /// After a delete: there is no record any more.
    pub fn forget(&self) {
        *self.slot() = None;
    }
}

impl RequestContext {
    /// The resolved identity, or `NotAuthenticated` when no auth layer has vouched
    /// for the caller.
    pub fn identity(&self) -> Result<&Identity, ImageError> {
        self.identity
            .as_ref()
            .ok_or_else(|| ImageError::NotAuthenticated("This server could not verify that you are authorized to access the document you requested.".into()))
    }

    /// The caller's project, if it is project scoped.
    pub fn project_id(&self) -> Option<&str> {
        self.identity.as_ref()?.project_id.as_deref()
    }

    pub fn is_admin(&self) -> bool {
        self.identity.as_ref().is_some_and(|i| i.is_admin)
    }
}

/// The credentials of a request as the HTTP edge found them.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// `X-Auth-Token`
    pub auth_token: Option<String>,
    /// `X-Service-Token`
    pub service_token: Option<String>,
    /// The identity headers keystonemiddleware sets (`X-Identity-Status`, `X-User-Id`,
    /// `X-Project-Id`, `X-Roles`, ...), keys lower-cased.
    pub identity_headers: BTreeMap<String, String>,
}

impl Credentials {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.identity_headers.get(name).map(String::as_str)
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    pub user_id: Option<String>,
    pub project_id: Option<String>,
    /// Lower-cased role names.
    pub roles: Vec<String>,
    /// `context_is_admin` held at authentication time.
    pub is_admin: bool,
    /// `all` for a system-scoped token.
    pub system_scope: Option<String>,
    /// True for a context that may only read (Glance's anonymous access).
    pub read_only: bool,
}

impl Identity {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r.eq_ignore_ascii_case(role))
    }
}
