//! HTTP: the router, its middleware and state, the extractors, one error mapping, the
//! handlers (thin: they call the services) and the OpenAPI document; `server` runs it all.

pub mod account;
pub mod admin;
mod client_addr;
pub mod cookie;
pub mod discovery;
pub mod docs;
pub mod error;
pub mod exchange;
pub mod extract;
pub mod ops;
pub mod password_reset;
pub mod register;
pub mod schemas;
mod server;
pub mod sliding;
pub mod tokens;
pub mod webhooks;

use std::{
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    extract::{DefaultBodyLimit, FromRef, MatchedPath, Request},
    http::{HeaderName, HeaderValue, Method, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{MethodRouter, get, post},
};
use ipnet::IpNet;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tower_http::{
    catch_panic::CatchPanicLayer,
    cors::{AllowOrigin, CorsLayer},
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    set_header::SetResponseHeaderLayer,
    timeout::TimeoutLayer,
    trace::{DefaultOnResponse, TraceLayer},
};
use utoipa_swagger_ui::SwaggerUi;

pub use self::server::{Application, shutdown_signal};
use self::{error::AppError, ops::Readiness};
use crate::{
    accounts::{Accounts, PasswordResets, Registrations},
    admin::Admin,
    config::{Config, UsernameField},
    exchange::Exchange,
    sessions::Sessions,
    tokens::TokenService,
    webhooks::ClerkWebhooks,
};

/// Bodies larger than this are refused with 413 before they are read whole.
pub const BODY_LIMIT: usize = 64 * 1024;

/// What the HTTP layer itself needs from the configuration.
pub struct HttpSettings {
    pub trusted_proxies: Vec<IpNet>,
    pub cors_allowed_origins: Vec<String>,
    /// `REFRESH_TOKEN_COOKIE`: refresh tokens travel in an HttpOnly cookie.
    pub refresh_token_cookie: bool,
    pub request_timeout: Duration,
    /// `/metrics` is served on the API listener (`METRICS_LISTEN_ADDR` is unset).
    pub metrics_on_api: bool,
    /// `USERNAME_FIELD`: what a login body names the user by.
    pub username_field: UsernameField,
    /// The OpenAPI document for this configuration, rendered once.
    pub openapi_json: Bytes,
    /// OIDC discovery, when `JWT_ISSUER` is set.
    pub discovery: Option<discovery::Discovery>,
    /// `AUTH_HEADER_TYPES`: the schemes `Authorization` is read with.
    pub auth_header_types: Vec<String>,
    /// `WWW-Authenticate` of every 401: the first of those schemes.
    pub challenge: HeaderValue,
    /// `JWT_ISSUER` when it is an http(s) URL: the service's own public address, which the
    /// links it writes to itself (the admin API's pages) start with, whatever `Host` says.
    pub public_base: Option<String>,
    /// `ALLOW_REGISTRATION`: `/api/register/` is served (otherwise it is a 404, whatever the body).
    pub registration_open: bool,
    /// `SMTP_URL` is set: the password-reset endpoints are served (likewise).
    pub password_reset: bool,
}

impl HttpSettings {
    pub fn new(config: &Config) -> Self {
        Self {
            trusted_proxies: config.trusted_proxies.clone(),
            cors_allowed_origins: config.cors_allowed_origins.clone(),
            refresh_token_cookie: config.refresh_token_cookie,
            request_timeout: config.request_timeout,
            metrics_on_api: config.metrics_listen_addr.is_none(),
            username_field: config.tokens.username_field,
            openapi_json: Bytes::from(openapi_document(config).to_pretty_json().expect("the document serializes")),
            discovery: discovery::Discovery::new(config),
            auth_header_types: config.tokens.auth_header_types.clone(),
            challenge: challenge(&config.tokens.auth_header_types),
            public_base: config
                .jwt_issuer
                .as_deref()
                .filter(|issuer| issuer.starts_with("https://") || issuer.starts_with("http://"))
                .map(|issuer| issuer.trim_end_matches('/').to_owned()),
            registration_open: config.allow_registration,
            password_reset: config.mail.is_some(),
        }
    }
}

/// `{first type} realm="api"`, as simplejwt's `authenticate_header` writes it.
fn challenge(auth_header_types: &[String]) -> HeaderValue {
    let scheme = auth_header_types.first().map_or("Bearer", String::as_str);
    // The configuration admits only RFC 9110 tokens, which are valid header text.
    HeaderValue::from_str(&format!("{scheme} realm=\"api\""))
        .unwrap_or(HeaderValue::from_static("Bearer realm=\"api\""))
}

/// The services, each handed to the handlers that use it (`State<Sessions>`, …).
#[derive(Clone, FromRef)]
pub struct AppState {
    sessions: Sessions,
    accounts: Accounts,
    resets: PasswordResets,
    registrations: Registrations,
    admin: Admin,
    exchange: Exchange,
    webhooks: ClerkWebhooks,
    tokens: Arc<TokenService>,
    readiness: Readiness,
    settings: Arc<HttpSettings>,
    metrics: PrometheusHandle,
}

/// The Prometheus recorder is process-wide: installed once, shared by every app in the process.
fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("http_request_duration_seconds".to_owned()),
                    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0],
                )
                .expect("the bucket list is not empty")
                .install_recorder()
                .expect("no other metrics recorder is installed")
        })
        .clone()
}

/// Registers `path` and the same path without (or with) its trailing slash.
fn route_both<S: Clone + Send + Sync + 'static>(router: Router<S>, path: &str, handler: MethodRouter<S>) -> Router<S> {
    let other = match path.strip_suffix('/') {
        Some(bare) => bare.to_owned(),
        None => format!("{path}/"),
    };
    router.route(path, handler.clone()).route(&other, handler)
}

/// Every API route, each with and without its trailing slash; `/metrics` only when it is
/// not served on a listener of its own.
fn api_routes(settings: &HttpSettings) -> Router<AppState> {
    let routes: [(&str, MethodRouter<AppState>); 22] = [
        ("/api/token/", post(tokens::obtain)),
        ("/api/token/refresh/", post(tokens::refresh)),
        ("/api/token/verify/", post(tokens::verify)),
        ("/api/token/blacklist/", post(tokens::blacklist)),
        ("/api/token/revoke-all/", post(tokens::revoke_all)),
        ("/api/token/sliding/", post(sliding::obtain_sliding)),
        ("/api/token/sliding/refresh/", post(sliding::refresh_sliding)),
        ("/api/token/clerk/", post(exchange::clerk_exchange)),
        ("/api/token/exchange/", post(exchange::token_exchange)),
        ("/api/token/{provider}/", post(exchange::provider_exchange)),
        ("/webhooks/clerk/", post(webhooks::clerk_webhook)),
        ("/api/me/", get(account::me)),
        ("/api/password/change/", post(account::change_password)),
        ("/api/password/reset/", post(password_reset::request_reset)),
        ("/api/password/reset/confirm/", post(password_reset::confirm_reset)),
        ("/api/register/", post(register::register)),
        ("/.well-known/jwks.json", get(ops::jwks)),
        ("/.well-known/openid-configuration", get(discovery::openid_configuration)),
        ("/healthz", get(ops::healthz)),
        ("/readyz", get(ops::readyz)),
        ("/metrics", get(ops::metrics)),
        ("/openapi.json", get(docs::openapi_json)),
    ];
    routes
        .into_iter()
        .chain(admin::routes())
        .filter(|(path, _)| settings.metrics_on_api || *path != "/metrics")
        // Features that are off are not routes at all: their 404 comes before the body is read.
        .filter(|(path, _)| settings.registration_open || *path != "/api/register/")
        .filter(|(path, _)| settings.password_reset || !path.starts_with("/api/password/reset/"))
        .fold(Router::new(), |r, (path, handler)| route_both(r, path, handler))
}

pub fn router(state: AppState) -> Router {
    // A request still running after this is cut off (slow-drip bodies, stuck dependencies).
    let request_timeout = state.settings.request_timeout;
    let api = api_routes(&state.settings);
    let request_id = HeaderName::from_static("x-request-id");

    let routes = api
        .route_layer(middleware::from_fn(record_metrics))
        // No validator badge: Swagger UI would load it from validator.swagger.io, sending it our URL.
        .merge(SwaggerUi::new("/docs").config(utoipa_swagger_ui::Config::from("/openapi.json").validator_url("none")))
        .fallback(|| async { AppError::NotFound })
        .method_not_allowed_fallback(|method: Method| async move { AppError::MethodNotAllowed(method.to_string()) })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(no_store_on_api))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, request_timeout))
        .layer(middleware::from_fn(json_error_bodies))
        .layer(middleware::from_fn_with_state(state.settings.clone(), error::challenge))
        .layer(middleware::from_fn(error::log_errors))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
                    // The path only: query strings and headers may carry secrets.
                    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
                })
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        // The last line of defence: a panic becomes a JSON 500, and the process lives on.
        .layer(CatchPanicLayer::custom(|_| {
            metrics::counter!("tokensmith_panics_total").increment(1);
            // Outside `log_errors` (a panic unwinds through it), so logged here.
            tracing::error!(cause = "handler panicked", "request failed");
            AppError::internal("handler panicked").into_response()
        }));
    let routes = match cors(&state.settings) {
        Some(cors) => routes.layer(cors),
        None => routes,
    };
    routes.with_state(state)
}

/// `/metrics` alone, for the `METRICS_LISTEN_ADDR` listener: anything else is a JSON 404.
pub fn metrics_router(metrics: PrometheusHandle, request_timeout: Duration) -> Router {
    route_both(Router::new(), "/metrics", get(ops::metrics))
        .fallback(|| async { AppError::NotFound })
        .method_not_allowed_fallback(|method: Method| async move { AppError::MethodNotAllowed(method.to_string()) })
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, request_timeout))
        .layer(middleware::from_fn(json_error_bodies))
        .with_state(metrics)
}

/// Browsers may call the API from `CORS_ALLOWED_ORIGINS` only, with credentials (the refresh
/// cookie); preflight requests are answered here. Unset: no CORS headers at all, so browsers
/// allow no cross-origin calls.
fn cors(settings: &HttpSettings) -> Option<CorsLayer> {
    if settings.cors_allowed_origins.is_empty() {
        return None;
    }
    let origins = settings.cors_allowed_origins.iter().filter_map(|o| HeaderValue::from_str(o).ok());
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_credentials(true)
            .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
            .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
            .max_age(Duration::from_secs(600)),
    )
}

async fn record_metrics(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_default();
    let method = req.method().as_str().to_owned();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(started.elapsed().as_secs_f64());
    response
}

/// Errors produced below our handlers (timeouts, framework rejections) carry no body;
/// give them the JSON shape every other error has.
async fn json_error_bodies(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || response.headers().contains_key(header::CONTENT_TYPE)
    {
        return response;
    }
    let detail = status.canonical_reason().unwrap_or("Error");
    let mut json = (status, axum::Json(serde_json::json!({ "detail": format!("{detail}.") }))).into_response();
    for (name, value) in response.headers() {
        if name != header::CONTENT_LENGTH {
            json.headers_mut().entry(name).or_insert(value.clone());
        }
    }
    json
}

/// Token responses must never sit in a cache.
async fn no_store_on_api(req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let mut response = next.run(req).await;
    if api {
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The OpenAPI document as the server serves it with `config`.
pub fn openapi_document(config: &Config) -> utoipa::openapi::OpenApi {
    docs::document(config.tokens.username_field)
}
