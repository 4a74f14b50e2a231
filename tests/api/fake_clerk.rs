//! A fake Clerk for the tests: a real HTTP server with a JWKS made of RSA keys generated at
//! test time, a Backend API user listing, and switches to take either down.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
};

use axum::{
    Json, Router,
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header, jwk::Jwk};
use serde_json::{Value, json};
use tokensmith::{config::JwtAlgorithm, key_material::generate_pem};

use crate::helpers::now;

/// A key Clerk (RSA) or another provider signs with.
pub struct SigningKey {
    pub kid: String,
    pub algorithm: Algorithm,
    pub private_pem: String,
    pub encoding: EncodingKey,
}

impl SigningKey {
    pub fn generate(kid: &str) -> Self {
        Self::generate_for(kid, Algorithm::RS256)
    }

    /// A key for RS256, ES256 or EdDSA.
    pub fn generate_for(kid: &str, algorithm: Algorithm) -> Self {
        let kind = match algorithm {
            Algorithm::RS256 => JwtAlgorithm::Rs256,
            Algorithm::ES256 => JwtAlgorithm::Es256,
            Algorithm::EdDSA => JwtAlgorithm::EdDsa,
            other => panic!("no test keys for {other:?}"),
        };
        let private_pem = generate_pem(kind).expect("a key");
        let encoding = match algorithm {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(private_pem.as_bytes()),
            Algorithm::ES256 => EncodingKey::from_ec_pem(private_pem.as_bytes()),
            _ => EncodingKey::from_ed_pem(private_pem.as_bytes()),
        }
        .unwrap();
        Self { kid: kid.to_owned(), algorithm, private_pem, encoding }
    }

    /// The public half, as Clerk's JWKS lists it.
    pub fn jwk(&self) -> Value {
        let mut jwk = serde_json::to_value(Jwk::from_encoding_key(&self.encoding, self.algorithm).unwrap()).unwrap();
        jwk["kid"] = json!(self.kid);
        jwk["use"] = json!("sig");
        jwk
    }

    /// The public half as PEM (`CLERK_JWT_KEY`).
    pub fn public_pem(&self) -> String {
        let der = pem::parse(&self.private_pem).unwrap();
        let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(der.contents()).unwrap();
        use aws_lc_rs::signature::KeyPair;
        pem::encode(&pem::Pem::new("RSA PUBLIC KEY", pair.public_key().as_ref().to_vec()))
    }

    /// Signs `claims` as Clerk would (RS256, typ JWT, this kid; other keys with their own
    /// algorithm), with `edit` applied to the header.
    pub fn sign_with(&self, claims: &Value, edit: impl FnOnce(&mut Header)) -> String {
        let mut header = Header::new(self.algorithm);
        header.typ = Some("JWT".to_owned());
        header.kid = Some(self.kid.clone());
        edit(&mut header);
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }

    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with(claims, |_| {})
    }
}

#[derive(Default)]
struct FakeState {
    jwks: Mutex<Vec<Value>>,
    jwks_down: AtomicBool,
    /// The `Cache-Control` header of the JWKS, when set.
    jwks_cache_control: Mutex<Option<String>>,
    jwks_fetches: AtomicUsize,
    users: Mutex<Vec<Value>>,
    user_pages: AtomicUsize,
}

pub struct FakeClerk {
    pub addr: SocketAddr,
    pub key: SigningKey,
    state: Arc<FakeState>,
}

pub const SECRET_KEY: &str = "sk_test_fake_clerk_secret";
pub const APP_ORIGIN: &str = "https://app.example.com";

impl FakeClerk {
    pub async fn start() -> Self {
        let key = SigningKey::generate("ins_key_1");
        let state = Arc::new(FakeState::default());
        state.jwks.lock().unwrap().push(key.jwk());
        let app = Router::new()
            .route("/.well-known/jwks.json", get(jwks))
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/v1/users", get(users))
            .route("/v1/users/{id}", get(user))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, key, state }
    }

    /// The `iss` of its tokens, and `CLERK_ISSUER`.
    pub fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The settings of a tokensmith that trusts this Clerk.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("CLERK_ISSUER", self.issuer()),
            ("CLERK_AUTHORIZED_PARTIES", APP_ORIGIN.to_owned()),
            ("CLERK_SECRET_KEY", SECRET_KEY.to_owned()),
            ("CLERK_API_URL", self.issuer()),
        ]
    }

    /// Claims of a fresh v1 session token for `sub`.
    pub fn claims(&self, sub: &str) -> Value {
        let now = now();
        json!({
            "azp": APP_ORIGIN, "exp": now + 60, "iat": now, "nbf": now - 5,
            "iss": self.issuer(), "sid": format!("sess_{sub}"), "sub": sub,
        })
    }

    /// A fresh session token for `sub`, signed with the current key.
    pub fn session_token(&self, sub: &str) -> String {
        self.key.sign(&self.claims(sub))
    }

    pub fn publish(&self, key: &SigningKey) {
        self.state.jwks.lock().unwrap().push(key.jwk());
    }

    /// Stops publishing the key with this kid.
    pub fn unpublish(&self, kid: &str) {
        self.state.jwks.lock().unwrap().retain(|jwk| jwk["kid"] != kid);
    }

    /// Serves the JWKS with this `Cache-Control` header.
    pub fn set_jwks_cache_control(&self, value: &str) {
        *self.state.jwks_cache_control.lock().unwrap() = Some(value.to_owned());
    }

    pub fn set_jwks_down(&self, down: bool) {
        self.state.jwks_down.store(down, Ordering::SeqCst);
    }

    pub fn jwks_fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    pub fn add_users(&self, users: impl IntoIterator<Item = Value>) {
        self.state.users.lock().unwrap().extend(users);
    }

    pub fn user_pages_served(&self) -> usize {
        self.state.user_pages.load(Ordering::SeqCst)
    }
}

/// OIDC discovery, as any OIDC provider serves it (this fake doubles as one).
async fn discovery(headers: HeaderMap) -> Response {
    let host = headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let issuer = format!("http://{host}");
    Json(json!({"issuer": issuer, "jwks_uri": format!("{issuer}/.well-known/jwks.json"), "id_token_signing_alg_values_supported": ["RS256"]}))
        .into_response()
}

async fn jwks(State(state): State<Arc<FakeState>>) -> Response {
    state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    if state.jwks_down.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "down").into_response();
    }
    let mut response = Json(json!({ "keys": *state.jwks.lock().unwrap() })).into_response();
    if let Some(value) = state.jwks_cache_control.lock().unwrap().as_deref() {
        response.headers_mut().insert("cache-control", value.parse().unwrap());
    }
    response
}

#[derive(serde::Deserialize)]
struct Page {
    limit: usize,
    offset: usize,
}

/// `GET /v1/users?limit&offset`, as Clerk's Backend API pages it: a bare array.
async fn users(State(state): State<Arc<FakeState>>, headers: HeaderMap, Query(page): Query<Page>) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {SECRET_KEY}")) {
        let body = json!({"errors": [{"code": "authentication_invalid", "message": "Invalid authentication"}]});
        return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    }
    state.user_pages.fetch_add(1, Ordering::SeqCst);
    let users = state.users.lock().unwrap();
    let slice: Vec<Value> = users.iter().skip(page.offset).take(page.limit).cloned().collect();
    Json(Value::Array(slice)).into_response()
}

/// `GET /v1/users/{id}`.
async fn user(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {SECRET_KEY}")) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"errors": []}))).into_response();
    }
    match state.users.lock().unwrap().iter().find(|u| u["id"] == id.as_str()) {
        Some(user) => Json(user.clone()).into_response(),
        None => (StatusCode::NOT_FOUND, Json(json!({"errors": [{"code": "resource_not_found"}]}))).into_response(),
    }
}

/// A Clerk User object, as webhooks and the Backend API send it.
pub fn clerk_user(id: &str, username: Option<&str>, email: &str, verified: bool, updated_at: i64) -> Value {
    json!({
        "object": "user", "id": id, "username": username,
        "first_name": "Ada", "last_name": "Lovelace",
        "primary_email_address_id": format!("idn_{id}"),
        "email_addresses": [{
            "id": format!("idn_{id}"), "object": "email_address", "email_address": email,
            "verification": {"status": if verified { "verified" } else { "unverified" }, "strategy": "email_code"},
        }],
        "banned": false, "locked": false, "external_id": null,
        "created_at": updated_at, "updated_at": updated_at,
    })
}

/// A Clerk User object whose `external_id` (set by the operator with the secret key, e.g. when
/// importing users into Clerk) is `external_id`.
pub fn clerk_user_with_external_id(id: &str, username: &str, external_id: &str, updated_at: i64) -> Value {
    let mut user = clerk_user(id, Some(username), &format!("{username}@clerk.example"), true, updated_at);
    user["external_id"] = json!(external_id);
    user
}

/// A tokensmith that trusts `clerk`, plus `extra` settings.
pub async fn spawn_with_clerk(
    backend: crate::helpers::Backend,
    clerk: &FakeClerk,
    extra: &[(&str, &str)],
) -> crate::helpers::TestApp {
    let owned = clerk.settings();
    let mut settings: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    settings.extend_from_slice(extra);
    crate::helpers::spawn_app_with(backend, &settings).await
}
