//! Keys, health and metrics: what load balancers, monitoring and downstream services read.

use std::time::Duration;

use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;

/// A JSON Web Key Set (RFC 7517).
#[derive(Serialize, ToSchema)]
pub struct JwksResponse {
    /// Public keys, each with `kid`, `alg` and `use: "sig"`.
    pub keys: Vec<serde_json::Value>,
}

#[derive(Serialize, ToSchema)]
pub struct HealthResponse {
    pub status: String,
}

/// Downstream services may cache the key set this long; rotation keeps old keys published
/// far longer, so a cached set never misses a live token's key for long.
const JWKS_MAX_AGE: Duration = Duration::from_secs(300);

#[utoipa::path(
    get, path = "/.well-known/jwks.json", tag = "keys",
    description = "Every public key that may have signed a live token. Empty under HS256.",
    responses((status = 200, description = "The key set", body = JwksResponse))
)]
pub async fn jwks(State(state): State<AppState>) -> Response {
    let body = state.auth.tokens.key_ring().jwks_json.clone();
    let cache = format!("public, max-age={}", JWKS_MAX_AGE.as_secs());
    ([(header::CONTENT_TYPE, "application/json".to_owned()), (header::CACHE_CONTROL, cache)], body).into_response()
}

#[utoipa::path(
    get, path = "/healthz", tag = "operations",
    description = "The process is up (does not touch the database).",
    responses((status = 200, description = "Up", body = HealthResponse))
)]
pub async fn healthz() -> Json<HealthResponse> {
    Json(HealthResponse { status: "ok".to_owned() })
}

#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    description = "The database answers.",
    responses(
        (status = 200, description = "Ready", body = HealthResponse),
        (status = 503, description = "The database does not answer", body = HealthResponse),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<HealthResponse>) {
    let timeout = state.auth.config.database_acquire_timeout;
    match tokio::time::timeout(timeout, state.auth.store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, Json(HealthResponse { status: "ok".to_owned() })),
        _ => (StatusCode::SERVICE_UNAVAILABLE, Json(HealthResponse { status: "unavailable".to_owned() })),
    }
}

#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    description = "Prometheus text format: requests by route and status, latency, logins, refreshes, reuse detections.",
    responses((status = 200, description = "Metrics", body = String, content_type = "text/plain"))
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    state.metrics.run_upkeep();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render()).into_response()
}
