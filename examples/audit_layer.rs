//! A team's own layer in a few lines: log who did what to which image, and refuse
//! images named "forbidden". Run it like the server:
//!
//!     cargo run --example audit_layer
//!
//! (configured like the server, from `GLANCE__SECTION__KEY` variables).
//!
//! The layer sits just inside auth, so it sees the caller's identity.

use glance_api::app::AppBuilder;
use glance_api::config::{Config, Overrides};
use glance_layers::{ImageError, ImageRequest, ImageResponse, Next, Operation, from_fn};

async fn audit(req: ImageRequest, next: Next) -> Result<ImageResponse, ImageError> {
    if let Operation::Create(new) = &req.op
        && new.name.as_deref() == Some("forbidden")
    {
        return Err(ImageError::Forbidden(
            "That name is not allowed here.".into(),
        ));
    }
    let (op, image) = (req.op.name(), req.op.image_id().map(str::to_string));
    let project = req.ctx.project_id().map(str::to_string);
    let result = next.run(req).await;
    tracing::info!(op, ?image, ?project, ok = result.is_ok(), "audit");
    result
}

#[tokio::main]
async fn main() {
    let config =
        Config::load(None, std::env::vars(), &Overrides::default()).expect("configuration");
    let _telemetry = glance_api::telemetry::init(&config.telemetry);
    let bind = config.default.bind.clone();
    let app = AppBuilder::new(config)
        .layer(from_fn(audit))
        .build()
        .await
        .expect("start");
    let listener = tokio::net::TcpListener::bind(&bind).await.expect("bind");
    glance_api::server::run(listener, app.http, Default::default(), async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
}
