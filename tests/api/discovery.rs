//! OIDC discovery: with `JWT_ISSUER` set to the service's URL, a client that knows nothing but
//! that URL finds the keys and verifies tokens; without it, `/.well-known/openid-configuration`
//! is a JSON 404.

use serde_json::{Value, json};
use tokensmith::key_material::{JwtAlgorithm, generate_pem};

use crate::{
    db_test,
    helpers::{Backend, TestApp, spawn_app_with},
    python,
};

const DISCOVERY: &str = "/.well-known/openid-configuration";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A server whose `JWT_ISSUER` is its own URL, as an operator sets it.
async fn serve_as_issuer(backend: Backend, settings: &[(&str, &str)]) -> (TestApp, String) {
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let listen = format!("127.0.0.1:{port}");
    let mut all = vec![("LISTEN_ADDR", listen.as_str()), ("JWT_ISSUER", issuer.as_str())];
    all.extend_from_slice(settings);
    (spawn_app_with(backend, &all).await, issuer)
}

async fn jwks_algorithms(app: &TestApp) -> Vec<Value> {
    let jwks = app.get("/.well-known/jwks.json").await.json();
    jwks["keys"].as_array().unwrap().iter().map(|k| k["alg"].clone()).collect()
}

async fn the_discovery_document_points_at_the_keys_and_names_their_algorithms(backend: Backend) {
    let (app, issuer) = serve_as_issuer(backend, &[]).await;
    for path in [DISCOVERY, "/.well-known/openid-configuration/"] {
        let reply = app.get(path).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert_eq!(
            reply.json(),
            json!({
                "issuer": issuer,
                "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
                "token_endpoint": format!("{issuer}/api/token/"),
                "id_token_signing_alg_values_supported": ["ES256"],
                "grant_types_supported": ["password", "refresh_token"],
                "subject_types_supported": ["public"],
            })
        );
    }
    // The URLs it names are this service's: tokens come from one, keys from the other.
    let document = app.get(DISCOVERY).await.json();
    app.create_user("alice", "correct horse");
    let login = app
        .client
        .post(document["token_endpoint"].as_str().unwrap())
        .json(&json!({"username": "alice", "password": "correct horse"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let keys: Value =
        app.client.get(document["jwks_uri"].as_str().unwrap()).send().await.unwrap().json().await.unwrap();
    assert_eq!(keys["keys"][0]["alg"], "ES256");

    // The algorithms are those of the published keys (none under HS256: the configured one).
    let secret = "an HS256 secret of at least thirty-two bytes";
    for settings in [vec![("JWT_ALGORITHM", "RS256")], vec![("JWT_ALGORITHM", "EdDSA")]] {
        let (app, _) = serve_as_issuer(backend, &settings).await;
        let algorithms = app.get(DISCOVERY).await.json()["id_token_signing_alg_values_supported"].clone();
        assert_eq!(algorithms, json!([settings[0].1]));
        assert_eq!(algorithms, Value::Array(jwks_algorithms(&app).await));
    }
    let (app, _) = serve_as_issuer(backend, &[("JWT_ALGORITHM", "HS256"), ("JWT_SECRET", secret)]).await;
    assert_eq!(app.get(DISCOVERY).await.json()["id_token_signing_alg_values_supported"], json!(["HS256"]));

    // A trailing slash on the issuer is kept in `iss`, and not doubled in the URLs.
    let app = spawn_app_with(backend, &[("JWT_ISSUER", "https://auth.example.com/")]).await;
    let document = app.get(DISCOVERY).await.json();
    assert_eq!(document["issuer"], "https://auth.example.com/");
    assert_eq!(document["jwks_uri"], "https://auth.example.com/.well-known/jwks.json");
    assert_eq!(document["token_endpoint"], "https://auth.example.com/api/token/");
}

async fn token_exchange_is_listed_when_an_identity_provider_is_configured(backend: Backend) {
    let clerk_key = generate_pem(JwtAlgorithm::Rs256).unwrap();
    let clerk_public = public_pem(&clerk_key);
    let app = spawn_app_with(
        backend,
        &[
            ("JWT_ISSUER", "https://auth.example.com"),
            ("CLERK_ISSUER", "https://clerk.example.com"),
            ("CLERK_JWT_KEY", &clerk_public),
        ],
    )
    .await;
    assert_eq!(
        app.get(DISCOVERY).await.json()["grant_types_supported"],
        json!(["password", "refresh_token", "urn:ietf:params:oauth:grant-type:token-exchange"])
    );
}

/// The public half of a PEM private key, as `openssl pkey -pubout` writes it.
fn public_pem(private: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key.pem");
    std::fs::write(&path, private).unwrap();
    let out = std::process::Command::new("openssl").args(["pkey", "-pubout", "-in"]).arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

async fn no_discovery_without_an_issuer_url(backend: Backend) {
    for settings in [vec![], vec![("JWT_ISSUER", "tokensmith")]] {
        let app = spawn_app_with(backend, &settings).await;
        let reply = app.get(DISCOVERY).await;
        assert_eq!(reply.status, 404, "{settings:?}: {}", reply.text);
        assert_eq!(reply.json(), json!({"detail": "Not found."}));
    }
}

/// A DRF service configured with the issuer URL alone (drf-oidc-auth: discovery, then
/// `jwks_uri`) lets a tokensmith user in, and refuses a token signed by another key or naming
/// another issuer.
async fn a_library_configured_with_the_issuer_url_alone_verifies_tokens(backend: Backend) {
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("signing.pem");
    std::fs::write(&key_file, generate_pem(JwtAlgorithm::Es256).unwrap()).unwrap();
    let key_file = key_file.to_str().unwrap();
    let audience = ("JWT_AUDIENCE", "orders");

    let (app, issuer) = serve_as_issuer(backend, &[("JWT_SIGNING_KEY_FILE", key_file), audience]).await;
    let (access, _) = app.alice().await;
    // The same key, another issuer.
    let (elsewhere, _) = serve_as_issuer(backend, &[("JWT_SIGNING_KEY_FILE", key_file), audience]).await;
    let (other_issuer, _) = elsewhere.alice().await;
    // The same issuer, another key.
    let impostor = spawn_app_with(backend, &[("JWT_ISSUER", &issuer), audience]).await;
    let (other_key, _) = impostor.alice().await;

    let answers = python::run_script(
        "oidc_downstream.py",
        &[&issuer, "orders", "ES256", &access, &other_issuer, &other_key],
        &[],
    )
    .await
    .json();
    let alice_id = crate::helpers::claims(&access)["user_id"].clone();
    assert_eq!(answers[0], json!({"status": 200, "body": {"user_id": alice_id, "iss": issuer, "aud": "orders"}}));
    assert_eq!(answers[1]["status"], 401, "another issuer: {answers}");
    assert!(answers[1]["body"]["detail"].as_str().unwrap().ends_with("Invalid claim: 'iss'"), "{answers}");
    assert_eq!(answers[2]["status"], 401, "another key: {answers}");
    assert_eq!(answers[2]["body"]["detail"], "Invalid Authorization header. JWT signature key not found.");
}

db_test!(
    the_discovery_document_points_at_the_keys_and_names_their_algorithms,
    token_exchange_is_listed_when_an_identity_provider_is_configured,
    no_discovery_without_an_issuer_url,
    a_library_configured_with_the_issuer_url_alone_verifies_tokens,
);
