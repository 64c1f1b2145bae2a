//! The HTTP edge beside the gRPC one: Prometheus `/metrics` and the
//! read-only web console. Both read the engine's shared state (the same
//! reads as gRPC: views, statements, the listing index, the ledger's facts)
//! and never go through the writer.
//!
//! - [`serve_metrics`]: `GET /metrics`, the text exposition of
//!   [`crate::engine::metrics::Metrics`] (aggregates only, no ids; no token).
//! - [`console`]: server-rendered HTML pages, every asset embedded; access
//!   as for gRPC (bearer token or the login cookie; without a token
//!   configuration every caller is admin and the listener is loopback-only).
//! - [`html`]: escaping and the SVG balance chart.
//!
//! Axum because tonic already brings its stack (hyper, tower, http): no
//! second HTTP implementation in the binary. Pages are plain Rust string
//! building through one escaping function ([`html::esc`]) rather than a
//! template engine: a dozen small pages, checked by the compiler, no new
//! dependency, and nothing reaches the page unescaped by accident.

pub mod console;
pub mod html;

use std::future::Future;

use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::engine::Engine;

/// Serves `GET /metrics` on `listener` until `shutdown` resolves.
pub async fn serve_metrics(
    engine: Engine,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .with_state(engine);
    tracing::info!(addr = ?listener.local_addr().ok(), "serving /metrics");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn metrics(
    axum::extract::State(engine): axum::extract::State<Engine>,
) -> axum::response::Response {
    match tokio::task::spawn_blocking(move || engine.scrape()).await {
        Ok(Ok(text)) => (
            [(
                http::header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Ok(Err(e)) => (http::StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
        Err(e) => (http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
