//! A team's stateful layer: at most 60 image creates per project each minute,
//! counted in the layer's own state. Run it like the server:
//!
//!     cargo run --example rate_limit_layer
//!
//! The README shows the layer part of this file; a test keeps the two the same.

use glance_api::app::AppBuilder;
use glance_api::config::{Config, Overrides};

// begin: README
use glance_layers::{ImageError, ImageRequest, ImageResponse, ImageService, Middleware, Next};
use std::{collections::HashMap, sync::Mutex, time::Instant};

/// At most 60 image creates per project each minute, counted in the layer's state.
#[derive(Default)]
struct RateLimit(Mutex<HashMap<String, (Instant, u32)>>);

impl Middleware for RateLimit {
    async fn call<S: ImageService>(
        &self,
        req: ImageRequest,
        next: Next<S>,
    ) -> Result<ImageResponse, ImageError> {
        if let (Some(project), "add_image") = (req.ctx.project_id(), req.op.name()) {
            let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
            let (start, n) = counts.entry(project.into()).or_insert((Instant::now(), 0));
            if start.elapsed().as_secs() >= 60 {
                (*start, *n) = (Instant::now(), 0);
            }
            *n += 1;
            if *n > 60 {
                return Err(ImageError::quota_exceeded("creates", "Slow down"));
            }
        }
        next.run(req).await
    }
}
// end: README

#[tokio::main]
async fn main() {
    let config =
        Config::load(None, std::env::vars(), &Overrides::default()).expect("configuration");
    let _telemetry = glance_api::telemetry::init(&config.telemetry);
    let bind = config.default.bind.clone();
    let app = AppBuilder::new(config)
        .layer(RateLimit::default().into_layer())
        .build()
        .await
        .expect("start");
    let listener = tokio::net::TcpListener::bind(&bind).await.expect("bind");
    glance_api::server::run(listener, app.http, Default::default(), async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
}
