//! The quota layer: the per-upload size cap and per-project limits on image count
//! and stored bytes. Uploads are cut at the limit as the bytes flow, never after.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;
use tower::{Layer, Service};

use crate::{
    BoxFuture, DataStream, ImageError, ImageRequest, ImageResponse, ImageService, Operation,
};

/// Glance's default `image_size_cap`: 1 TiB.
pub const DEFAULT_IMAGE_SIZE_CAP: u64 = 1 << 40;

/// The limits in force. `None` is unlimited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaLimits {
    /// Largest single image, in bytes.
    pub image_size_cap: u64,
    /// Images a project may own.
    pub image_count_total: Option<u64>,
    /// Bytes a project may store.
    pub image_size_total: Option<u64>,
}

impl Default for QuotaLimits {
    fn default() -> Self {
        QuotaLimits {
            image_size_cap: DEFAULT_IMAGE_SIZE_CAP,
            image_count_total: None,
            image_size_total: None,
        }
    }
}

/// A project's current consumption.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub image_count: u64,
    pub image_size_total: u64,
    /// Images with data on the way in (`saving`, `uploading`, `importing`).
    pub image_count_uploading: u64,
}

/// Where the quota layer reads a project's usage.
#[async_trait]
pub trait UsageSource: Send + Sync + 'static {
    async fn usage(&self, project_id: &str) -> Result<Usage, ImageError>;
}

#[derive(Clone)]
pub struct QuotaLayer {
    limits: Arc<QuotaLimits>,
    usage: Arc<dyn UsageSource>,
}

impl QuotaLayer {
    pub fn new(limits: QuotaLimits, usage: Arc<dyn UsageSource>) -> Self {
        QuotaLayer {
            limits: Arc::new(limits),
            usage,
        }
    }
}

impl<S> Layer<S> for QuotaLayer {
    type Service = Quota<S>;

    fn layer(&self, inner: S) -> Quota<S> {
        Quota {
            inner,
            limits: self.limits.clone(),
            usage: self.usage.clone(),
        }
    }
}

/// The service made by [`QuotaLayer`].
#[derive(Clone)]
pub struct Quota<S> {
    inner: S,
    limits: Arc<QuotaLimits>,
    usage: Arc<dyn UsageSource>,
}

impl<S: ImageService> Service<ImageRequest> for Quota<S> {
    type Response = ImageResponse;
    type Error = ImageError;
    type Future = BoxFuture<Result<ImageResponse, ImageError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ImageError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: ImageRequest) -> Self::Future {
        let mut inner = crate::take_ready(&mut self.inner);
        let limits = self.limits.clone();
        let usage = self.usage.clone();
        Box::pin(async move {
            let project = req.ctx.project_id().unwrap_or_default().to_string();
            match &mut req.op {
                Operation::Create(_) => {
                    if let Some(max) = limits.image_count_total {
                        let used = usage.usage(&project).await?.image_count;
                        if used + 1 > max {
                            return Err(over_limit(&project, "image_count_total", max, used, 1));
                        }
                    }
                }
                Operation::Upload { data, .. } => {
                    let mut allowed = limits.image_size_cap;
                    let mut why = Cut::SizeCap;
                    if let Some(max) = limits.image_size_total {
                        let used = usage.usage(&project).await?.image_size_total;
                        let remaining = max.saturating_sub(used);
                        if remaining < allowed {
                            allowed = remaining;
                            why = Cut::Quota {
                                project: project.clone(),
                                max,
                                used,
                            };
                        }
                    }
                    if let Some(expected) = data.expected_size
                        && expected > allowed
                    {
                        return Err(why.error(expected));
                    }
                    let taken = std::mem::replace(
                        data,
                        crate::ImageData::new(futures_util::stream::empty(), None),
                    );
                    *data = taken.map_stream(|s| LimitedStream::new(s, allowed, why));
                }
                Operation::Usage => {
                    let used = usage.usage(&project).await?;
                    let mib = |b: u64| (b >> 20) as i64;
                    let limit = |l: Option<u64>| l.map(|v| v as i64).unwrap_or(-1);
                    return Ok(ImageResponse::Usage(vec![
                        crate::UsageEntry {
                            resource: "image_size_total",
                            limit: limits.image_size_total.map(mib).unwrap_or(-1),
                            usage: mib(used.image_size_total),
                        },
                        crate::UsageEntry {
                            resource: "image_count_total",
                            limit: limit(limits.image_count_total),
                            usage: used.image_count as i64,
                        },
                        crate::UsageEntry {
                            resource: "image_stage_total",
                            limit: -1,
                            usage: 0,
                        },
                        crate::UsageEntry {
                            resource: "image_count_uploading",
                            limit: -1,
                            usage: used.image_count_uploading as i64,
                        },
                    ]));
                }
                _ => {}
            }
            inner.call(req).await
        })
    }
}

fn over_limit(project: &str, resource: &str, limit: u64, used: u64, delta: u64) -> ImageError {
    ImageError::TooLarge(format!(
        "Project {project} is over a limit for [Resource {resource} is over limit of {limit} due to current usage {used} and delta {delta}]"
    ))
}

/// Why a stream was cut, for the 413 message.
#[derive(Debug, Clone)]
enum Cut {
    SizeCap,
    Quota {
        project: String,
        max: u64,
        used: u64,
    },
}

impl Cut {
    fn error(&self, attempted: u64) -> ImageError {
        match self {
            Cut::SizeCap => ImageError::TooLarge(
                "Image exceeds the storage quota: The provided image is too large.".into(),
            ),
            Cut::Quota { project, max, used } => {
                over_limit(project, "image_size_total", *max, *used, attempted)
            }
        }
    }
}

/// Passes at most `remaining` bytes, then fails with 413: the shape of
/// `http_body_util::Limited`, with our error.
pub struct LimitedStream {
    inner: DataStream,
    remaining: u64,
    seen: u64,
    why: Cut,
}

impl LimitedStream {
    fn new(inner: DataStream, limit: u64, why: Cut) -> Self {
        LimitedStream {
            inner,
            remaining: limit,
            seen: 0,
            why,
        }
    }
}

impl Stream for LimitedStream {
    type Item = Result<Bytes, ImageError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match this.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                let n = chunk.len() as u64;
                this.seen += n;
                if n > this.remaining {
                    this.remaining = 0;
                    return Poll::Ready(Some(Err(this.why.error(this.seen))));
                }
                this.remaining -= n;
                Poll::Ready(Some(Ok(chunk)))
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Identity, ImageData, RequestContext};
    use futures_util::{StreamExt, stream};
    use tower::ServiceExt;

    struct Fixed(Usage);

    #[async_trait]
    impl UsageSource for Fixed {
        async fn usage(&self, _: &str) -> Result<Usage, ImageError> {
            Ok(self.0)
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

    fn upload(chunks: usize, expected: Option<u64>) -> ImageRequest {
        let ctx = RequestContext {
            identity: Some(Identity {
                project_id: Some("p".into()),
                ..Identity::default()
            }),
            ..RequestContext::default()
        };
        let body = stream::iter((0..chunks).map(|_| Ok(Bytes::from_static(&[7u8; 10]))));
        ImageRequest::new(
            ctx,
            Operation::Upload {
                id: "x".into(),
                data: ImageData::new(body, expected),
                store: None,
            },
        )
    }

    fn svc(limits: QuotaLimits, usage: Usage) -> impl ImageService {
        QuotaLayer::new(limits, Arc::new(Fixed(usage))).layer(draining_core())
    }

    #[tokio::test]
    async fn the_size_cap_cuts_the_stream() {
        let limits = QuotaLimits {
            image_size_cap: 25,
            ..QuotaLimits::default()
        };
        let ok = svc(limits.clone(), Usage::default())
            .oneshot(upload(2, None))
            .await
            .unwrap();
        assert_eq!(ok.into_image().unwrap().size, Some(20));
        let cut = svc(limits.clone(), Usage::default())
            .oneshot(upload(3, None))
            .await;
        assert!(matches!(cut, Err(ImageError::TooLarge(_))));
        let early = svc(limits, Usage::default())
            .oneshot(upload(0, Some(26)))
            .await;
        assert!(matches!(early, Err(ImageError::TooLarge(_))));
    }

    #[tokio::test]
    async fn project_totals_count_existing_usage() {
        let limits = QuotaLimits {
            image_size_total: Some(100),
            image_count_total: Some(3),
            ..QuotaLimits::default()
        };
        let used = Usage {
            image_count: 3,
            image_size_total: 85,
            ..Usage::default()
        };
        let cut = svc(limits.clone(), used).oneshot(upload(2, None)).await;
        assert!(matches!(cut, Err(ImageError::TooLarge(m)) if m.contains("image_size_total")));
        let ok = svc(limits.clone(), used).oneshot(upload(1, None)).await;
        assert!(ok.is_ok());
        let mut create = upload(0, None);
        create.op = Operation::Create(Default::default());
        let refused = svc(limits, used).oneshot(create).await;
        assert!(matches!(refused, Err(ImageError::TooLarge(m)) if m.contains("image_count_total")));
    }
}
