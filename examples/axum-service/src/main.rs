//! A small JSON service: `/health` answers, `/compress` zstd-compresses the body it is given
//! and says how large the result is.

use axum::{routing::get, routing::post, Json, Router};
use serde::Serialize;

#[derive(Serialize)]
struct Compressed {
    input: usize,
    output: usize,
}

async fn health() -> &'static str {
    "ok"
}

async fn compress(body: axum::body::Bytes) -> Json<Compressed> {
    let output = zstd::encode_all(&body[..], 3).map_or(0, |c| c.len());
    Json(Compressed {
        input: body.len(),
        output,
    })
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt::init();
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".into());
    let app = Router::new()
        .route("/health", get(health))
        .route("/compress", post(compress));
    let listener = tokio::net::TcpListener::bind(format!("0.0.0.0:{port}"))
        .await
        .expect("bind");
    tracing::info!("listening on {port}");
    axum::serve(listener, app).await.expect("serve");
}
