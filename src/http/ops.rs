//! Keys, health and metrics: what load balancers, monitoring and downstream services read.

use std::{sync::Arc, time::Duration};

use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use utoipa::ToSchema;

use crate::{store::Store, tokens::TokenService};

/// Whether the database answers, asked with the pool's own acquire timeout.
#[derive(Clone)]
pub struct Readiness {
    store: Store,
    timeout: Duration,
}

impl Readiness {
    pub fn new(store: Store, timeout: Duration) -> Self {
        Self { store, timeout }
    }

    async fn ready(&self) -> bool {
        matches!(tokio::time::timeout(self.timeout, self.store.ping()).await, Ok(Ok(())))
    }
}

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
    description = "Every public key that may have signed a live token. Empty under HS256, HS384 and HS512.",
    responses((status = 200, description = "The key set", body = JwksResponse))
)]
pub async fn jwks(State(tokens): State<Arc<TokenService>>) -> Response {
    let body = tokens.key_ring().jwks_json.clone();
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
pub async fn readyz(State(readiness): State<Readiness>) -> (StatusCode, Json<HealthResponse>) {
    if readiness.ready().await {
        (StatusCode::OK, Json(HealthResponse { status: "ok".to_owned() }))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(HealthResponse { status: "unavailable".to_owned() }))
    }
}

#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    description = "Prometheus text format: requests by route and status, latency, logins, refreshes, reuse detections.",
    responses((status = 200, description = "Metrics", body = String, content_type = "text/plain"))
)]
pub async fn metrics(State(metrics): State<PrometheusHandle>) -> Response {
    metrics.run_upkeep();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], metrics.render()).into_response()
}
