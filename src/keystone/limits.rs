//! Keystone's unified limits as the quota layer's limit source, read the way
//! oslo.limit reads them for Glance: the registered (default) limit of each
//! resource for Glance's service and region, overridden by a project's own
//! limit. A resource with neither has a limit of 0, as in oslo.limit.

use std::sync::Arc;

use async_trait::async_trait;
use glance_layers::ImageError;
use glance_layers::quota::{LimitSource, ProjectLimits};
use serde::Deserialize;
use tokio::sync::OnceCell;

use super::{KeystoneClient, KeystoneError};

/// Which catalog entry's limits apply.
#[derive(Debug, Clone)]
pub enum EndpointRef {
    Id(String),
    ServiceType {
        service_type: String,
        region: Option<String>,
    },
}

pub struct KeystoneLimits {
    client: Arc<KeystoneClient>,
    endpoint: EndpointRef,
    /// `service_id=..&region_id=..`, found once.
    selector: OnceCell<String>,
}

impl KeystoneLimits {
    pub fn new(client: Arc<KeystoneClient>, endpoint: EndpointRef) -> Self {
        KeystoneLimits {
            client,
            endpoint,
            selector: OnceCell::new(),
        }
    }

    async fn selector(&self) -> Result<&str, KeystoneError> {
        self.selector
            .get_or_try_init(|| async {
                let (service, region) = match &self.endpoint {
                    EndpointRef::Id(id) => {
                        let e: EndpointDoc =
                            self.client.get_json(&format!("/endpoints/{id}")).await?;
                        (e.endpoint.service_id, e.endpoint.region_id)
                    }
                    EndpointRef::ServiceType {
                        service_type,
                        region,
                    } => {
                        let s: ServicesDoc = self
                            .client
                            .get_json(&format!("/services?type={}", enc(service_type)))
                            .await?;
                        let id = s.services.into_iter().next().map(|s| s.id).ok_or_else(|| {
                            KeystoneError::Unavailable(format!(
                                "no service of type {service_type:?} in Keystone's catalog"
                            ))
                        })?;
                        (id, region.clone())
                    }
                };
                let mut q = format!("service_id={}", enc(&service));
                if let Some(r) = region {
                    q.push_str(&format!("&region_id={}", enc(&r)));
                }
                Ok(q)
            })
            .await
            .map(String::as_str)
    }

    async fn fetch(&self, project_id: &str) -> Result<ProjectLimits, KeystoneError> {
        let sel = self.selector().await?;
        let registered: RegisteredDoc = self
            .client
            .get_json(&format!("/registered_limits?{sel}"))
            .await?;
        let own: LimitsDoc = self
            .client
            .get_json(&format!("/limits?{sel}&project_id={}", enc(project_id)))
            .await?;
        let limit_of = |resource: &str| -> u64 {
            own.limits
                .iter()
                .find(|l| l.resource_name == resource)
                .map(|l| l.resource_limit)
                .or_else(|| {
                    registered
                        .registered_limits
                        .iter()
                        .find(|l| l.resource_name == resource)
                        .map(|l| l.default_limit)
                })
                .unwrap_or(0)
                .max(0) as u64
        };
        let mib = |r: &str| limit_of(r).saturating_mul(1 << 20);
        Ok(ProjectLimits {
            image_size_total: Some(mib("image_size_total")),
            image_stage_total: Some(mib("image_stage_total")),
            image_count_total: Some(limit_of("image_count_total")),
            image_count_uploading: Some(limit_of("image_count_uploading")),
        })
    }
}

#[async_trait]
impl LimitSource for KeystoneLimits {
    async fn limits(&self, project_id: &str) -> Result<ProjectLimits, ImageError> {
        self.fetch(project_id).await.map_err(|e| {
            tracing::error!(error = %e, "unable to read unified limits");
            ImageError::unavailable(
                "Unable to read this project's limits from Keystone.",
                Some(std::sync::Arc::new(e) as glance_layers::ErrorSource),
            )
        })
    }
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[derive(Deserialize)]
struct EndpointDoc {
    endpoint: Endpoint,
}

#[derive(Deserialize)]
struct Endpoint {
    service_id: String,
    region_id: Option<String>,
}

#[derive(Deserialize)]
struct ServicesDoc {
    services: Vec<IdDoc>,
}

#[derive(Deserialize)]
struct IdDoc {
    id: String,
}

#[derive(Deserialize)]
struct RegisteredDoc {
    registered_limits: Vec<Registered>,
}

#[derive(Deserialize)]
struct Registered {
    resource_name: String,
    default_limit: i64,
}

#[derive(Deserialize)]
struct LimitsDoc {
    limits: Vec<OwnLimit>,
}

#[derive(Deserialize)]
struct OwnLimit {
    resource_name: String,
    resource_limit: i64,
}
