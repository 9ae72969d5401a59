//! The auth layer: turns a request's credentials into an [`Identity`], or refuses it.
//!
//! The check itself is an [`Authenticator`]; this crate ships the two that need no
//! network ([`NoAuth`], [`TrustedHeaders`]), the server adds Keystone.

use std::sync::Arc;

use async_trait::async_trait;

use crate::middleware::{Middleware, MiddlewareLayer, Next};
use crate::{Credentials, Identity, ImageError, ImageRequest, ImageResponse, ImageService};

/// Decides who a request comes from.
#[async_trait]
pub trait Authenticator: Send + Sync + 'static {
    async fn authenticate(&self, credentials: &Credentials) -> Result<Identity, ImageError>;
}

/// Glance's unauthenticated pipeline: everyone is an admin of one fixed project.
#[derive(Debug, Clone)]
pub struct NoAuth {
    identity: Identity,
}

impl NoAuth {
    pub fn new(project_id: impl Into<String>, user_id: impl Into<String>) -> Self {
        NoAuth {
            identity: Identity {
                user_id: Some(user_id.into()),
                project_id: Some(project_id.into()),
                roles: vec!["admin".into(), "member".into(), "reader".into()],
                is_admin: true,
                ..Identity::default()
            },
        }
    }
}

#[async_trait]
impl Authenticator for NoAuth {
    async fn authenticate(&self, _: &Credentials) -> Result<Identity, ImageError> {
        Ok(self.identity.clone())
    }
}

/// Trusts the identity headers keystonemiddleware sets in front of us
/// (`X-Identity-Status: Confirmed`, `X-User-Id`, `X-Project-Id`, `X-Roles`).
/// Only for deployments where a proxy strips those headers from clients.
#[derive(Debug, Clone, Default)]
pub struct TrustedHeaders;

#[async_trait]
impl Authenticator for TrustedHeaders {
    async fn authenticate(&self, c: &Credentials) -> Result<Identity, ImageError> {
        if c.header("x-identity-status") != Some("Confirmed") {
            return Err(ImageError::NotAuthenticated(
                "This server could not verify that you are authorized to access the document you requested.".into(),
            ));
        }
        let roles: Vec<String> = c
            .header("x-roles")
            .unwrap_or_default()
            .split(',')
            .map(|r| r.trim().to_lowercase())
            .filter(|r| !r.is_empty())
            .collect();
        let non_empty = |name: &str| c.header(name).filter(|v| !v.is_empty()).map(str::to_string);
        Ok(Identity {
            user_id: non_empty("x-user-id"),
            project_id: non_empty("x-project-id").or_else(|| non_empty("x-tenant-id")),
            is_admin: roles.iter().any(|r| r == "admin"),
            system_scope: non_empty("openstack-system-scope"),
            roles,
            read_only: false,
        })
    }
}

/// Resolves the identity of every request before passing it on.
pub struct Auth {
    authenticator: Arc<dyn Authenticator>,
}

/// The auth layer.
pub type AuthLayer = MiddlewareLayer<Auth>;

impl MiddlewareLayer<Auth> {
    pub fn new(authenticator: Arc<dyn Authenticator>) -> Self {
        MiddlewareLayer::from_middleware(Auth { authenticator })
    }
}

impl Middleware for Auth {
    async fn call<S: ImageService>(
        &self,
        mut req: ImageRequest,
        next: Next<S>,
    ) -> Result<ImageResponse, ImageError> {
        let identity = self
            .authenticator
            .authenticate(&req.ctx.credentials)
            .await?;
        req.ctx.caller.set(&identity);
        req.ctx.identity = Some(identity);
        next.run(req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Operation, RequestContext};
    use tower::{Layer, ServiceExt};

    fn echo() -> impl ImageService {
        tower::service_fn(|req: ImageRequest| async move {
            let mut image = crate::Image::new("x".into(), chrono::Utc::now());
            image.owner = req.ctx.project_id().map(str::to_string);
            image.name = Some(req.ctx.identity()?.roles.join(","));
            Ok(ImageResponse::image(image))
        })
    }

    fn request(headers: &[(&str, &str)]) -> ImageRequest {
        let mut ctx = RequestContext::default();
        for (k, v) in headers {
            ctx.credentials
                .identity_headers
                .insert(k.to_string(), v.to_string());
        }
        ImageRequest::new(ctx, Operation::Get { id: "x".into() })
    }

    #[tokio::test]
    async fn trusted_headers_need_confirmation_and_lowercase_roles() {
        let svc = AuthLayer::new(Arc::new(TrustedHeaders)).layer(echo());
        let denied = svc.clone().oneshot(request(&[("x-project-id", "p")])).await;
        assert!(matches!(denied, Err(ImageError::NotAuthenticated(_))));
        let invalid = svc
            .clone()
            .oneshot(request(&[("x-identity-status", "Invalid")]))
            .await;
        assert!(matches!(invalid, Err(ImageError::NotAuthenticated(_))));
        let ok = svc
            .oneshot(request(&[
                ("x-identity-status", "Confirmed"),
                ("x-project-id", "p"),
                ("x-roles", "Member, READER"),
            ]))
            .await
            .unwrap()
            .into_image()
            .unwrap();
        assert_eq!(ok.owner.as_deref(), Some("p"));
        assert_eq!(ok.name.as_deref(), Some("member,reader"));
    }

    #[tokio::test]
    async fn noauth_makes_everyone_admin_of_one_project() {
        let svc = AuthLayer::new(Arc::new(NoAuth::new("proj", "user"))).layer(echo());
        let img = svc
            .oneshot(request(&[]))
            .await
            .unwrap()
            .into_image()
            .unwrap();
        assert_eq!(img.owner.as_deref(), Some("proj"));
        assert!(img.name.unwrap().contains("admin"));
    }
}
