//! Static assets (htmx, its SSE extension, the stylesheet), embedded in the binary so it
//! needs no files beside it. Served with an ETag so browsers revalidate cheaply.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rust_embed::Embed;
use tower_http::compression::CompressionLayer;

use crate::state::AppState;

#[derive(Embed)]
#[folder = "static/"]
struct Assets;

/// Vendored files carry their version in the name; ours change rarely.
const CACHE: &str = "public, max-age=3600";

/// `/static/{path}`, gzipped for clients that accept it (Swagger UI's bundle is 1.7 MB raw,
/// under 0.5 MB gzipped). Only here: compressing pages would buffer their SSE streams.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/static/{*path}", get(get_asset))
        .layer(CompressionLayer::new())
}

async fn get_asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    let Some(file) = Assets::get(&path) else {
        return (StatusCode::NOT_FOUND, "no such asset\n").into_response();
    };
    let etag = format!("\"{}\"", hex::encode(file.metadata.sha256_hash()));
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return (
            StatusCode::NOT_MODIFIED,
            [
                (header::ETAG, etag),
                (header::CACHE_CONTROL, CACHE.to_string()),
            ],
        )
            .into_response();
    }
    let mime = file.metadata.mimetype().to_string();
    (
        [
            (header::CONTENT_TYPE, mime),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, CACHE.to_string()),
        ],
        file.data,
    )
        .into_response()
}
