//! The quota layer: Glance's per-upload size cap, its legacy `user_storage_quota`
//! and its four per-project limits (`image_size_total`, `image_stage_total`,
//! `image_count_total`, `image_count_uploading`).
//!
//! Uploads are cut at the limit as the bytes flow, never after. Requests that
//! race each other on one node cannot together pass a limit: what they take is
//! reserved in a [`Ledger`] the moment it is checked (see `ledger.rs`), so the
//! check and the taking are one step.

mod cutter;
mod ledger;
mod limits;

use std::sync::Arc;

use crate::middleware::{Middleware, MiddlewareLayer, Next};
use crate::{ImageError, ImageRequest, ImageResponse, ImageService, Operation, UsageEntry};
use cutter::{Guard, LimitedStream, Total};
use ledger::Hold;
pub use ledger::Ledger;
pub use limits::{
    DEFAULT_IMAGE_SIZE_CAP, LimitSource, ProjectLimits, QuotaLimits, Usage, UsageSource,
};
use limits::{MIB, over_limit, size_cap_error};

/// Counts images and bytes against the limits, and cuts uploads at them.
pub struct Quota {
    limits: QuotaLimits,
    per_project: Arc<dyn LimitSource>,
    usage: Arc<dyn UsageSource>,
    ledger: Arc<Ledger>,
}

/// The quota layer.
pub type QuotaLayer = MiddlewareLayer<Quota>;

impl MiddlewareLayer<Quota> {
    pub fn new(
        limits: QuotaLimits,
        per_project: Arc<dyn LimitSource>,
        usage: Arc<dyn UsageSource>,
    ) -> Self {
        MiddlewareLayer::from_middleware(Quota {
            limits,
            per_project,
            usage,
            ledger: Arc::new(Ledger::default()),
        })
    }
}

impl Middleware for Quota {
    async fn call<S: ImageService>(
        &self,
        mut req: ImageRequest,
        next: Next<S>,
    ) -> Result<ImageResponse, ImageError> {
        let project = req.ctx.project_id().unwrap_or_default().to_string();
        let hold = match &mut req.op {
            Operation::Create(_) => self.reserve_image(&project).await?,
            Operation::Upload { id, data, .. } => {
                let id = id.clone();
                Some(self.reserve_upload(&project, &id, data, false).await?)
            }
            Operation::Stage { id, data } => {
                let id = id.clone();
                Some(self.reserve_upload(&project, &id, data, true).await?)
            }
            Operation::Import { id, request } => {
                let id = id.clone();
                self.check_import(&project, &id, &request.method).await?;
                None
            }
            Operation::Usage => return self.report(&project).await,
            _ => None,
        };
        let result = next.run(req).await;
        if let (Some(hold), Ok(_)) = (&hold, &result) {
            hold.commit().await;
        }
        result
    }
}

impl Quota {
    /// `image_count_total`: one more image, reserved until the create ends.
    async fn reserve_image(&self, project: &str) -> Result<Option<Arc<Hold>>, ImageError> {
        let limits = self.per_project.limits(project).await?;
        let Some(max) = limits.image_count_total else {
            return Ok(None);
        };
        let hold = self.ledger.hold(project).await;
        let usage = self.usage.usage(project).await?;
        hold.take_images(usage.image_count, max, 1)
            .map_err(|used| over_limit(project, "image_count_total", max, used, 1))?;
        // The insert follows at once: land under the gate.
        Ok(Some(hold.landing()))
    }

    /// `image_count_uploading` now, and the size limits as the bytes arrive:
    /// the project's stored bytes for an upload, its staged bytes for a stage.
    async fn reserve_upload(
        &self,
        project: &str,
        id: &str,
        data: &mut crate::ImageData,
        staging: bool,
    ) -> Result<Arc<Hold>, ImageError> {
        let limits = self.per_project.limits(project).await?;
        let total = if staging {
            limits.image_stage_total.map(Total::Staging)
        } else {
            match (limits.image_size_total, self.limits.user_storage_quota) {
                (Some(unified), Some(legacy)) if legacy < unified => Some(Total::Legacy(legacy)),
                (Some(unified), _) => Some(Total::Unified(unified)),
                (None, Some(legacy)) => Some(Total::Legacy(legacy)),
                (None, None) => None,
            }
        };
        let checking = self.ledger.hold(project).await;
        // Without a project limit only the size cap applies: no usage to read.
        let usage = if total.is_some() || limits.image_count_uploading.is_some() {
            self.usage.usage(project).await?
        } else {
            Usage::default()
        };
        if let Some(max) = limits.image_count_uploading {
            checking
                .start_upload(&usage.uploading, id, max)
                .map_err(|used| over_limit(project, "image_count_uploading", max, used, 1))?;
        }
        let hold = checking.done();
        let guard = Guard {
            hold: hold.clone(),
            used: if staging {
                usage.image_stage_total
            } else {
                usage.image_size_total
            },
            total,
            project: project.to_string(),
        };
        if let Some(expected) = data.expected_size {
            if expected > self.limits.image_size_cap {
                return Err(size_cap_error());
            }
            guard.check_up_front(expected)?;
        }
        let cap = self.limits.image_size_cap;
        let taken = std::mem::replace(
            data,
            crate::ImageData::new(futures_util::stream::empty(), None),
        );
        *data = taken.map_stream(|s| LimitedStream::new(s, cap, guard));
        Ok(hold)
    }

    /// What Glance checks when an import starts: the project is not over
    /// `image_size_total` already; and for methods that bring data through
    /// staging, not over `image_stage_total` nor `image_count_uploading`.
    async fn check_import(
        &self,
        project: &str,
        id: &str,
        method: &crate::ImportMethod,
    ) -> Result<(), ImageError> {
        let limits = self.per_project.limits(project).await?;
        let stages = !matches!(method, crate::ImportMethod::GlanceDirect);
        let binding = limits.image_size_total.is_some()
            || (stages
                && (limits.image_stage_total.is_some() || limits.image_count_uploading.is_some()));
        if !binding {
            return Ok(());
        }
        let usage = self.usage.usage(project).await?;
        if let Some(max) = limits.image_size_total
            && usage.image_size_total > max
        {
            return Err(over_limit(
                project,
                "image_size_total",
                max / MIB,
                usage.image_size_total / MIB,
                0,
            ));
        }
        if !stages {
            return Ok(());
        }
        if let Some(max) = limits.image_stage_total
            && usage.image_stage_total > max
        {
            return Err(over_limit(
                project,
                "image_stage_total",
                max / MIB,
                usage.image_stage_total / MIB,
                0,
            ));
        }
        if let Some(max) = limits.image_count_uploading {
            let others = usage.uploading.iter().filter(|u| *u != id).count() as u64;
            if others >= max {
                return Err(over_limit(project, "image_count_uploading", max, others, 1));
            }
        }
        Ok(())
    }

    /// `/v2/info/usage`: each limit beside its use (sizes in MiB, -1 unlimited).
    async fn report(&self, project: &str) -> Result<ImageResponse, ImageError> {
        if !self.per_project.reports_usage() {
            return Ok(ImageResponse::Usage(Vec::new()));
        }
        let limits = self.per_project.limits(project).await?;
        let used = self.usage.usage(project).await?;
        // Sizes in MiB, counts as they are; -1 is unlimited.
        let entry = |resource, limit: Option<u64>, usage: u64, unit: u64| UsageEntry {
            resource,
            limit: limit.map_or(-1, |l| (l / unit) as i64),
            usage: (usage / unit) as i64,
        };
        Ok(ImageResponse::Usage(vec![
            entry(
                "image_size_total",
                limits.image_size_total,
                used.image_size_total,
                MIB,
            ),
            entry(
                "image_stage_total",
                limits.image_stage_total,
                used.image_stage_total,
                MIB,
            ),
            entry(
                "image_count_total",
                limits.image_count_total,
                used.image_count,
                1,
            ),
            entry(
                "image_count_uploading",
                limits.image_count_uploading,
                used.uploading.len() as u64,
                1,
            ),
        ]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Identity, ImageData, RequestContext};
    use async_trait::async_trait;
    use bytes::Bytes;
    use futures_util::Stream;
    use futures_util::{StreamExt, stream};
    use tower::{Layer, ServiceExt};

    struct Fixed(Usage);

    #[async_trait]
    impl UsageSource for Fixed {
        async fn usage(&self, _: &str) -> Result<Usage, ImageError> {
            Ok(self.0.clone())
        }
    }

    /// A core that drains the upload stream and reports how many bytes it got.
    fn draining_core() -> impl ImageService {
        tower::service_fn(|req: ImageRequest| async move {
            let mut image = crate::Image::new("x".into(), chrono::Utc::now());
            if let Operation::Upload { mut data, .. } = req.op {
                let mut n = 0i64;
                while let Some(chunk) = data.stream.next().await {
                    n += chunk?.len() as i64;
                }
                image.size = Some(n);
            }
            Ok(ImageResponse::image(image))
        })
    }

    fn ctx() -> RequestContext {
        RequestContext {
            identity: Some(Identity {
                project_id: Some("p".into()),
                ..Identity::default()
            }),
            ..RequestContext::default()
        }
    }

    fn upload(id: &str, chunks: usize, expected: Option<u64>) -> ImageRequest {
        let body = stream::iter((0..chunks).map(|_| Ok(Bytes::from_static(&[7u8; 10]))));
        ImageRequest::new(
            ctx(),
            Operation::Upload {
                id: id.into(),
                data: ImageData::new(body, expected),
                store: None,
            },
        )
    }

    /// A body whose chunks the test sends when it likes.
    fn channel() -> (
        tokio::sync::mpsc::UnboundedSender<Result<Bytes, ImageError>>,
        impl Stream<Item = Result<Bytes, ImageError>> + Send + 'static,
    ) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let body = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
        (tx, body)
    }

    fn layer(limits: QuotaLimits, project: ProjectLimits, usage: Usage) -> QuotaLayer {
        QuotaLayer::new(limits, Arc::new(project), Arc::new(Fixed(usage)))
    }

    #[tokio::test]
    async fn the_size_cap_cuts_the_stream() {
        let limits = QuotaLimits {
            image_size_cap: 25,
            ..QuotaLimits::default()
        };
        let l = layer(limits, ProjectLimits::default(), Usage::default());
        let ok = l.layer(draining_core()).oneshot(upload("a", 2, None)).await;
        assert_eq!(ok.unwrap().into_image().unwrap().size, Some(20));
        let cut = l.layer(draining_core()).oneshot(upload("b", 3, None)).await;
        assert!(
            matches!(cut, Err(ImageError::QuotaExceeded { message: m, .. }) if m.contains("too large"))
        );
        let early = l
            .layer(draining_core())
            .oneshot(upload("c", 0, Some(26)))
            .await;
        assert!(matches!(early, Err(ImageError::QuotaExceeded { .. })));
    }

    #[tokio::test]
    async fn project_totals_count_existing_usage() {
        let project = ProjectLimits {
            image_size_total: Some(100 * MIB),
            image_count_total: Some(3),
            ..ProjectLimits::default()
        };
        let used = Usage {
            image_count: 3,
            image_size_total: 100 * MIB - 15,
            ..Usage::default()
        };
        let l = layer(QuotaLimits::default(), project, used);
        let cut = l.layer(draining_core()).oneshot(upload("a", 2, None)).await;
        assert!(
            matches!(cut, Err(ImageError::QuotaExceeded { message: m, .. }) if m.contains("image_size_total"))
        );
        let ok = l.layer(draining_core()).oneshot(upload("b", 1, None)).await;
        assert!(ok.is_ok());
        let create = ImageRequest::new(ctx(), Operation::Create(Default::default()));
        let refused = l.layer(draining_core()).oneshot(create).await;
        assert!(
            matches!(refused, Err(ImageError::QuotaExceeded { message: m, .. }) if m.contains("image_count_total"))
        );
    }

    #[tokio::test]
    async fn legacy_storage_quota_speaks_in_bytes() {
        let limits = QuotaLimits {
            user_storage_quota: Some(25),
            ..QuotaLimits::default()
        };
        let l = layer(limits, ProjectLimits::default(), Usage::default());
        let cut = l.layer(draining_core()).oneshot(upload("a", 3, None)).await;
        assert!(
            matches!(&cut, Err(ImageError::QuotaExceeded { message: m, .. }) if m.contains("will exceed the limit. 25 bytes remaining")),
            "{cut:?}"
        );
    }

    /// Two uploads in flight at once share what is left: together they can never
    /// pass the limit, whichever order their chunks arrive in.
    #[tokio::test]
    async fn concurrent_uploads_share_the_remaining_bytes() {
        let project = ProjectLimits {
            image_size_total: Some(MIB),
            ..ProjectLimits::default()
        };
        let l = layer(QuotaLimits::default(), project, Usage::default());
        let chunk = Bytes::from(vec![0u8; 64 << 10]);
        let (tx_a, rx_a) = channel();
        let (tx_b, rx_b) = channel();
        fn req(
            id: &str,
            rx: impl Stream<Item = Result<Bytes, ImageError>> + Send + 'static,
        ) -> ImageRequest {
            ImageRequest::new(
                ctx(),
                Operation::Upload {
                    id: id.into(),
                    data: ImageData::new(rx, None),
                    store: None,
                },
            )
        }
        let a = tokio::spawn(l.layer(draining_core()).oneshot(req("a", rx_a)));
        let b = tokio::spawn(l.layer(draining_core()).oneshot(req("b", rx_b)));
        // 12 chunks each = 1.5 MiB offered in all, interleaved.
        for _ in 0..12 {
            let _ = tx_a.send(Ok(chunk.clone()));
            let _ = tx_b.send(Ok(chunk.clone()));
            tokio::task::yield_now().await;
        }
        drop((tx_a, tx_b));
        let results = [a.await.unwrap(), b.await.unwrap()];
        let stored: i64 = results
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .filter_map(|r| r.as_image().and_then(|i| i.size))
            .sum();
        assert!(results.iter().any(|r| r.is_err()), "one must be cut");
        assert!(stored as u64 <= MIB, "stored {stored} bytes");
    }

    #[tokio::test]
    async fn uploading_count_includes_this_nodes_uploads_in_flight() {
        let project = ProjectLimits {
            image_count_uploading: Some(1),
            ..ProjectLimits::default()
        };
        let l = layer(QuotaLimits::default(), project, Usage::default());
        let (tx, rx) = channel();
        let first = ImageRequest::new(
            ctx(),
            Operation::Upload {
                id: "a".into(),
                data: ImageData::new(rx, None),
                store: None,
            },
        );
        let running = tokio::spawn(l.layer(draining_core()).oneshot(first));
        tokio::task::yield_now().await;
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        let second = l.layer(draining_core()).oneshot(upload("b", 1, None)).await;
        assert!(
            matches!(&second, Err(ImageError::QuotaExceeded { message: m, .. }) if m.contains("image_count_uploading")),
            "{second:?}"
        );
        drop(tx);
        assert!(running.await.unwrap().is_ok());
        // Once the first is done, the slot is free again.
        let third = l.layer(draining_core()).oneshot(upload("c", 1, None)).await;
        assert!(third.is_ok());
    }

    #[tokio::test]
    async fn usage_is_empty_without_limits() {
        let l = layer(
            QuotaLimits::default(),
            ProjectLimits::default(),
            Usage::default(),
        );
        let r = l
            .layer(draining_core())
            .oneshot(ImageRequest::new(ctx(), Operation::Usage))
            .await
            .unwrap();
        assert!(matches!(r, ImageResponse::Usage(v) if v.is_empty()));
    }
}
