//! Signing keys as downstream services see them: the JWKS verifies every issued token with a
//! standard library, the algorithm is pinned to the key, odd claims are refused (never a 500),
//! issuer/audience/leeway settings hold, and keys rotate and are shared across servers.

use std::{net::SocketAddr, time::Duration};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, jwk::Jwk};
use serde_json::{Value, json};
use tokensmith::http::Application;

use crate::helpers::*;

/// At least 32 bytes, as HS256 requires.
const SECRET: &str = "an HS256 secret of at least thirty-two bytes";

fn hs256_env(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut env = vec![("JWT_ALGORITHM", "HS256"), ("JWT_SECRET", SECRET)];
    env.extend_from_slice(extra);
    env
}

/// Signs `claims` with `secret` as PyJWT (simplejwt) does: `{"alg":"HS256","typ":"JWT"}`, no kid.
fn mint_hs256(secret: &str, claims: &Value) -> String {
    tokensmith::install_crypto_provider();
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

fn jti() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Access-token claims exactly as simplejwt 5.5 writes them, for user 1.
fn simplejwt_access_claims() -> Value {
    let now = now();
    json!({"token_type": "access", "exp": now + 300, "iat": now, "jti": jti(), "user_id": "1"})
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn kids(set: &Value) -> Vec<String> {
    set["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
}

/// Verifies `token` as a downstream service would: the key from the JWKS by kid, the algorithm pinned.
fn verify_downstream(set: &Value, token: &str, alg: Algorithm) -> Value {
    tokensmith::install_crypto_provider();
    let kid = header(token)["kid"].as_str().expect("a kid in the header").to_owned();
    let jwk: Jwk = serde_json::from_value(jwk_with_kid(set, &kid)).expect("a standard JWK");
    let key = DecodingKey::from_jwk(&jwk).expect("a usable public key");
    let data = jsonwebtoken::decode::<Value>(token, &key, &Validation::new(alg))
        .unwrap_or_else(|e| panic!("the token does not verify with its published key: {e}"));
    data.claims
}

async fn verify_reply(app: &TestApp, token: &str) -> Reply {
    app.post_json("/api/token/verify/", json!({"token": token})).await
}

async fn assert_verifies(app: &TestApp, token: &str) {
    let reply = verify_reply(app, token).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.text, "{}");
}

// ---------------------------------------------------------------- downstream verification

async fn downstream_verification(backend: Backend, name: &str, alg: Algorithm) {
    let app = spawn_app_with(backend, &[("JWT_ALGORITHM", name)]).await;
    let (access, _) = app.alice().await;

    let reply = app.get("/.well-known/jwks.json").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let cache = reply.header("cache-control").expect("the JWKS is cacheable");
    assert!(cache.contains("max-age="), "{cache}");
    let set = reply.json();

    let head = header(&access);
    assert_eq!(head["typ"], "JWT");
    assert_eq!(head["alg"], name);
    let kid = head["kid"].as_str().expect("a kid");
    let jwk = jwk_with_kid(&set, kid);
    assert_eq!(jwk["alg"], name, "{jwk}");
    assert_eq!(jwk["use"], "sig", "{jwk}");
    for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
        assert!(jwk.get(private).is_none(), "the JWKS publishes private member {private:?}: {jwk}");
    }
    for key in set["keys"].as_array().unwrap() {
        assert!(key.get("d").is_none(), "private key material in the JWKS: {key}");
    }

    let claims = verify_downstream(&set, &access, alg);
    assert_eq!(claims["token_type"], "access");
    assert_eq!(claims["user_id"], "1", "user_id is a string, as simplejwt 5.5 writes it");
    let jti = claims["jti"].as_str().unwrap();
    assert!(jti.len() == 32 && jti.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')), "{jti}");
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 300);
    assert!((claims["iat"].as_i64().unwrap() - now()).abs() <= 5);
}

async fn downstream_verifies_es256_by_default(backend: Backend) {
    let app = spawn_app(backend).await;
    let (access, _) = app.alice().await;
    assert_eq!(header(&access)["alg"], "ES256", "ES256 is the default");
    drop(app);
    downstream_verification(backend, "ES256", Algorithm::ES256).await;
}

async fn downstream_verifies_rs256(backend: Backend) {
    downstream_verification(backend, "RS256", Algorithm::RS256).await;
}

async fn downstream_verifies_eddsa(backend: Backend) {
    downstream_verification(backend, "EdDSA", Algorithm::EdDSA).await;
}

// ---------------------------------------------------------------- HS256 and simplejwt

async fn hs256_tokens_interoperate_with_simplejwt(backend: Backend) {
    let app = spawn_app_with(backend, &hs256_env(&[])).await;
    let (access, _) = app.alice().await;

    let reply = app.get("/.well-known/jwks.json").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), json!({"keys": []}), "a shared secret is never published");

    // A downstream service holding JWT_SECRET verifies our tokens.
    tokensmith::install_crypto_provider();
    let data = jsonwebtoken::decode::<Value>(
        &access,
        &DecodingKey::from_secret(SECRET.as_bytes()),
        &Validation::new(Algorithm::HS256),
    )
    .expect("the access token verifies with JWT_SECRET");
    assert_eq!(data.claims["token_type"], "access");
    assert_eq!(data.claims["user_id"], "1");
    assert_eq!(header(&access)["alg"], "HS256");

    // And we accept what simplejwt minted with the same secret (no kid in its header).
    let theirs = mint_hs256(SECRET, &simplejwt_access_claims());
    assert!(header(&theirs).get("kid").is_none());
    assert_verifies(&app, &theirs).await;
    let me = app.get_bearer("/api/me/", &theirs).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.json()["username"], "alice");

    // The same token signed with another secret is forged.
    let forged = mint_hs256("another secret, also thirty-two bytes long", &simplejwt_access_claims());
    assert_401(&verify_reply(&app, &forged).await, TOKEN_INVALID);
    let me = app.get_bearer("/api/me/", &forged).await;
    assert_eq!(me.status, 401, "{}", me.text);
    assert_eq!(me.json()["code"], "token_not_valid");
}

// ---------------------------------------------------------------- algorithm pinning

async fn algorithm_is_pinned_to_the_key(backend: Backend) {
    let app = spawn_app(backend).await;
    let (access, _) = app.alice().await;
    let kid = header(&access)["kid"].as_str().unwrap().to_owned();
    let body = access.split('.').nth(1).unwrap().to_owned();
    let set = jwks(&app).await;
    let jwk = jwk_with_kid(&set, &kid);

    // The genuine token verifies: what follows is refused for its forgery alone.
    assert_verifies(&app, &access).await;

    // alg "none", with and without our kid, with an empty signature.
    for head in
        [json!({"alg": "none", "typ": "JWT"}), json!({"alg": "none", "typ": "JWT", "kid": kid}), json!({"alg": "None"})]
    {
        let unsigned = format!("{}.{body}.", b64(head.to_string().as_bytes()));
        assert_401(&verify_reply(&app, &unsigned).await, TOKEN_INVALID);
        let me = app.get_bearer("/api/me/", &unsigned).await;
        assert_eq!(me.status, 401, "{}", me.text);
    }

    // HS256 keyed with the public key (the classic key-confusion attack), with and without kid.
    let x = jwk["x"].as_str().unwrap();
    let y = jwk["y"].as_str().unwrap();
    let mut point = vec![4u8];
    point.extend(URL_SAFE_NO_PAD.decode(x).unwrap());
    point.extend(URL_SAFE_NO_PAD.decode(y).unwrap());
    let public_secrets: Vec<Vec<u8>> = vec![
        x.as_bytes().to_vec(),
        format!("{x}{y}").into_bytes(),
        point,
        jwk.to_string().into_bytes(),
        set.to_string().into_bytes(),
    ];
    let claims = claims(&access);
    tokensmith::install_crypto_provider();
    for secret in &public_secrets {
        for with_kid in [true, false] {
            let mut head = Header::new(Algorithm::HS256);
            head.kid = with_kid.then(|| kid.clone());
            let forged = jsonwebtoken::encode(&head, &claims, &EncodingKey::from_secret(secret)).unwrap();
            assert_401(&verify_reply(&app, &forged).await, TOKEN_INVALID);
            assert_eq!(app.get_bearer("/api/me/", &forged).await.status, 401);
        }
    }

    // The genuine signature under an unknown kid, or a token from a key we never published.
    let mut head = header(&access);
    head["kid"] = json!("not-a-key-we-know");
    let sig = access.split('.').nth(2).unwrap();
    let relabelled = format!("{}.{body}.{sig}", b64(head.to_string().as_bytes()));
    assert_401(&verify_reply(&app, &relabelled).await, TOKEN_INVALID);

    let stranger_pem = tokensmith::key_material::generate_pem(tokensmith::config::JwtAlgorithm::Es256).unwrap();
    let mut head = Header::new(Algorithm::ES256);
    head.kid = Some("unknown-kid".to_owned());
    let stranger =
        jsonwebtoken::encode(&head, &claims, &EncodingKey::from_ec_pem(stranger_pem.as_bytes()).unwrap()).unwrap();
    assert_401(&verify_reply(&app, &stranger).await, TOKEN_INVALID);
    // ... and the same stranger's token claiming our kid.
    let mut head = Header::new(Algorithm::ES256);
    head.kid = Some(kid.clone());
    let impostor =
        jsonwebtoken::encode(&head, &claims, &EncodingKey::from_ec_pem(stranger_pem.as_bytes()).unwrap()).unwrap();
    assert_401(&verify_reply(&app, &impostor).await, TOKEN_INVALID);

    // Still serving, still verifying the real thing.
    assert_verifies(&app, &access).await;
}

// ---------------------------------------------------------------- odd claims

async fn validly_signed_odd_claims_are_invalid_not_500(backend: Backend) {
    let app = spawn_app_with(backend, &hs256_env(&[])).await;
    let (access, refresh) = app.alice().await;
    let now = now();
    let base = |token_type: &str| json!({"token_type": token_type, "exp": now + 300, "iat": now, "jti": jti(), "user_id": "1"});

    // The baseline really is accepted, so each refusal below is for its one odd claim.
    assert_verifies(&app, &mint_hs256(SECRET, &base("access"))).await;

    type Edit = fn(&mut serde_json::Map<String, Value>, i64);
    let odd: Vec<(&str, Edit)> = vec![
        ("no jti", |c, _| {
            c.remove("jti");
        }),
        ("empty jti", |c, _| {
            c.insert("jti".into(), json!(""));
        }),
        ("numeric jti", |c, _| {
            c.insert("jti".into(), json!(12345));
        }),
        ("exp as a string", |c, now| {
            c.insert("exp".into(), json!((now + 300).to_string()));
        }),
        ("exp a word", |c, _| {
            c.insert("exp".into(), json!("soon"));
        }),
        ("exp null", |c, _| {
            c.insert("exp".into(), Value::Null);
        }),
        ("no exp", |c, _| {
            c.remove("exp");
        }),
        ("user_id an object", |c, _| {
            c.insert("user_id".into(), json!({"id": 1}));
        }),
        ("user_id not a number", |c, _| {
            c.insert("user_id".into(), json!("alice"));
        }),
        ("user_id huge", |c, _| {
            c.insert("user_id".into(), json!("99999999999999999999999999"));
        }),
        ("no user_id", |c, _| {
            c.remove("user_id");
        }),
        ("no token_type", |c, _| {
            c.remove("token_type");
        }),
        ("token_type a number", |c, _| {
            c.insert("token_type".into(), json!(1));
        }),
        ("iat an hour ahead", |c, now| {
            c.insert("iat".into(), json!(now + 3600));
        }),
        ("iat a string", |c, _| {
            c.insert("iat".into(), json!("now"));
        }),
        ("no iat", |c, _| {
            c.remove("iat");
        }),
        ("nbf an hour ahead", |c, now| {
            c.insert("nbf".into(), json!(now + 3600));
        }),
    ];
    for (what, edit) in &odd {
        for token_type in ["access", "refresh"] {
            let mut claims = base(token_type);
            edit(claims.as_object_mut().unwrap(), now);
            let token = mint_hs256(SECRET, &claims);
            let reply = verify_reply(&app, &token).await;
            assert_eq!(reply.status, 401, "{what} ({token_type}) at verify: {}", reply.text);
            assert_401(&reply, TOKEN_INVALID);
            if token_type == "refresh" {
                let reply = app.post_json("/api/token/refresh/", json!({"refresh": token})).await;
                assert_eq!(reply.status, 401, "{what} at refresh: {}", reply.text);
                assert_401(&reply, TOKEN_INVALID);
                let reply = app.post_json("/api/token/blacklist/", json!({"refresh": token})).await;
                assert_eq!(reply.status, 401, "{what} at blacklist: {}", reply.text);
            } else {
                let me = app.get_bearer("/api/me/", &token).await;
                assert_eq!(me.status, 401, "{what} as Bearer: {}", me.text);
                assert_eq!(me.json()["code"], "token_not_valid");
            }
        }
    }

    // A token type nobody issues is invalid at verify, and the wrong type where one is expected.
    let unissued_type = mint_hs256(SECRET, &base("foo"));
    assert_401(&verify_reply(&app, &unissued_type).await, TOKEN_INVALID);
    let reply = app.post_json("/api/token/refresh/", json!({"refresh": unissued_type})).await;
    assert_eq!(reply.status, 401, "{}", reply.text);

    // A refresh token with a jti we never issued.
    let unknown_refresh = mint_hs256(SECRET, &base("refresh"));
    assert_401(&app.post_json("/api/token/refresh/", json!({"refresh": unknown_refresh})).await, TOKEN_INVALID);

    // Expired is its own message, at verify and at refresh.
    let mut expired = base("access");
    expired["iat"] = json!(now - 600);
    expired["exp"] = json!(now - 300);
    assert_401(&verify_reply(&app, &mint_hs256(SECRET, &expired)).await, TOKEN_EXPIRED);
    expired["token_type"] = json!("refresh");
    let expired_refresh = mint_hs256(SECRET, &expired);
    assert_401(&app.post_json("/api/token/refresh/", json!({"refresh": expired_refresh})).await, TOKEN_EXPIRED);

    // Access where refresh belongs.
    assert_401(&app.post_json("/api/token/refresh/", json!({"refresh": access})).await, TOKEN_WRONG_TYPE);
    assert_401(
        &app.post_json("/api/token/refresh/", json!({"refresh": mint_hs256(SECRET, &base("access"))})).await,
        TOKEN_WRONG_TYPE,
    );
    assert_401(&app.post_json("/api/token/blacklist/", json!({"refresh": access})).await, TOKEN_WRONG_TYPE);

    // After all that, the real session is untouched.
    let reply = app.post_json("/api/token/refresh/", json!({"refresh": refresh})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(app.get("/healthz").await.status, 200);
}

// ---------------------------------------------------------------- issuer and audience

async fn issuer_and_audience_are_written_and_required(backend: Backend) {
    let env = hs256_env(&[("JWT_ISSUER", "https://auth.example.com"), ("JWT_AUDIENCE", "example-api")]);
    let app = spawn_app_with(backend, &env).await;
    let (access, refresh) = app.alice().await;
    for token in [&access, &refresh] {
        let c = claims(token);
        assert_eq!(c["iss"], "https://auth.example.com", "{c}");
        assert_eq!(c["aud"], "example-api", "{c}");
    }
    assert_verifies(&app, &access).await;

    // A downstream service checking iss and aud accepts it.
    tokensmith::install_crypto_provider();
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&["https://auth.example.com"]);
    validation.set_audience(&["example-api"]);
    jsonwebtoken::decode::<Value>(&access, &DecodingKey::from_secret(SECRET.as_bytes()), &validation)
        .expect("iss and aud check out");

    let good = || {
        let mut c = simplejwt_access_claims();
        c["iss"] = json!("https://auth.example.com");
        c["aud"] = json!("example-api");
        c
    };
    assert_verifies(&app, &mint_hs256(SECRET, &good())).await;
    // `aud` may also be a list holding ours (RFC 7519).
    let mut listed = good();
    listed["aud"] = json!(["other", "example-api"]);
    assert_verifies(&app, &mint_hs256(SECRET, &listed)).await;

    let mut bad = Vec::new();
    let mut c = good();
    c.as_object_mut().unwrap().remove("iss");
    bad.push(("no iss", c));
    let mut c = good();
    c.as_object_mut().unwrap().remove("aud");
    bad.push(("no aud", c));
    let mut c = good();
    c["iss"] = json!("https://evil.example.com");
    bad.push(("another iss", c));
    let mut c = good();
    c["aud"] = json!("another-api");
    bad.push(("another aud", c));
    bad.push(("plain simplejwt token", simplejwt_access_claims()));
    for (what, c) in bad {
        let token = mint_hs256(SECRET, &c);
        let reply = verify_reply(&app, &token).await;
        assert_eq!(reply.status, 401, "{what}: {}", reply.text);
        assert_401(&reply, TOKEN_INVALID);
        assert_eq!(app.get_bearer("/api/me/", &token).await.status, 401, "{what} as Bearer");
    }

    // The refresh token carries them too, and refreshing keeps them.
    let reply = app.post_json("/api/token/refresh/", json!({"refresh": refresh})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(claims(&reply.field("access"))["iss"], "https://auth.example.com");
}

// ---------------------------------------------------------------- leeway

async fn leeway_tolerates_small_clock_skew(backend: Backend) {
    let app = spawn_app_with(backend, &hs256_env(&[("JWT_LEEWAY", "30s")])).await;
    app.alice().await;
    let now = now();
    let expired_ago = |seconds: i64| {
        mint_hs256(
            SECRET,
            &json!({"token_type": "access", "exp": now - seconds, "iat": now - seconds - 300, "jti": jti(), "user_id": "1"}),
        )
    };
    assert_verifies(&app, &expired_ago(10)).await;
    assert_eq!(app.get_bearer("/api/me/", &expired_ago(10)).await.status, 200);
    assert_401(&verify_reply(&app, &expired_ago(60)).await, TOKEN_EXPIRED);

    // iat a little ahead (the issuer's clock runs fast) is within the leeway; far ahead is not.
    let ahead = |seconds: i64| {
        mint_hs256(
            SECRET,
            &json!({"token_type": "access", "exp": now + 300, "iat": now + seconds, "jti": jti(), "user_id": "1"}),
        )
    };
    assert_verifies(&app, &ahead(10)).await;
    assert_401(&verify_reply(&app, &ahead(120)).await, TOKEN_INVALID);

    // Without leeway, 10 s expired is expired.
    let strict = spawn_app_with(backend, &hs256_env(&[])).await;
    assert_401(&verify_reply(&strict, &expired_ago(10)).await, TOKEN_EXPIRED);
}

// ---------------------------------------------------------------- rotation

async fn rotation_reaches_a_running_server(backend: Backend) {
    let app = spawn_app_with(backend, &[("KEYS_RELOAD_INTERVAL", "1s")]).await;
    let (access_a, refresh_a) = app.alice().await;
    let kid_a = header(&access_a)["kid"].as_str().unwrap().to_owned();
    assert_eq!(kids(&jwks(&app).await), std::slice::from_ref(&kid_a));

    let out = app.cli(&["keys", "rotate"]);
    assert!(out.status.success(), "keys rotate failed: {}", String::from_utf8_lossy(&out.stderr));

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let set = loop {
        let set = jwks(&app).await;
        if set["keys"].as_array().unwrap().len() == 2 {
            break set;
        }
        assert!(std::time::Instant::now() < deadline, "the running server never published the new key: {set}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let published = kids(&set);
    assert!(published.contains(&kid_a), "the old key must stay published while its tokens live: {set}");

    let (access_b, _) = app.login("alice", "correct horse").await;
    let kid_b = header(&access_b)["kid"].as_str().unwrap().to_owned();
    assert_ne!(kid_b, kid_a, "new tokens are signed with the new key");
    assert!(published.contains(&kid_b), "{set}");
    verify_downstream(&set, &access_b, Algorithm::ES256);
    verify_downstream(&set, &access_a, Algorithm::ES256);

    // Tokens signed before the rotation keep working.
    assert_verifies(&app, &access_a).await;
    assert_eq!(app.get_bearer("/api/me/", &access_a).await.status, 200);
    let reply = app.post_json("/api/token/refresh/", json!({"refresh": refresh_a})).await;
    assert_eq!(reply.status, 200, "the pre-rotation refresh token still refreshes: {}", reply.text);
    assert_eq!(header(&reply.field("access"))["kid"], kid_b.as_str(), "and gets tokens from the new key");

    let out = app.cli(&["keys", "list"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.contains(&kid_a) && listing.contains(&kid_b), "{listing}");
    let line_b = listing.lines().find(|l| l.contains(&kid_b)).unwrap();
    assert!(line_b.contains("signing"), "{listing}");
    let line_a = listing.lines().find(|l| l.contains(&kid_a)).unwrap();
    assert!(line_a.contains("published until"), "{listing}");
}

// ---------------------------------------------------------------- key file

async fn signing_key_file_is_used_and_stable(backend: Backend) {
    tokensmith::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("signing.pem");
    let pem = tokensmith::key_material::generate_pem(tokensmith::config::JwtAlgorithm::Es256).unwrap();
    std::fs::write(&path, &pem).unwrap();
    let path = path.to_str().unwrap();

    // The public half of the key we wrote, derived here, independently of the server.
    let ours = Jwk::from_encoding_key(&EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(), Algorithm::ES256).unwrap();
    let ours = serde_json::to_value(&ours).unwrap();

    let app = spawn_app_with(backend, &[("JWT_SIGNING_KEY_FILE", path)]).await;
    let (access, _) = app.alice().await;
    let set = jwks(&app).await;
    let keys = set["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "exactly the configured key: {set}");
    assert_eq!(keys[0]["x"], ours["x"], "{set}");
    assert_eq!(keys[0]["y"], ours["y"], "{set}");
    assert_eq!(header(&access)["kid"], keys[0]["kid"]);
    let key = DecodingKey::from_jwk(&serde_json::from_value(ours).unwrap()).unwrap();
    jsonwebtoken::decode::<Value>(&access, &key, &Validation::new(Algorithm::ES256)).expect("signed with the key file");

    // Another server with the same file (another database) publishes the same key under the same kid.
    let other = spawn_app_with(backend, &[("JWT_SIGNING_KEY_FILE", path)]).await;
    assert_eq!(jwks(&other).await, set);
    other.create_user("alice", "correct horse");
    let (access_other, _) = other.login("alice", "correct horse").await;
    assert_eq!(header(&access_other)["kid"], keys[0]["kid"]);
    // A token from one verifies on the other (same key, same user id).
    assert_verifies(&other, &access).await;
}

// ---------------------------------------------------------------- replicas

/// A second server on the first one's database, with its own pool; stops when the sender drops.
async fn second_server(app: &TestApp) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let mut config = app.config.clone();
    config.listen_addr = "127.0.0.1:0".parse().unwrap();
    let server = Application::build(config).await.expect("the second server builds");
    let addr = server.local_addr();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run_until(async move {
        let _ = rx.await;
    }));
    (addr, tx)
}

async fn replicas_share_keys_and_sessions(backend: Backend) {
    let app = spawn_app(backend).await;
    let (access, refresh) = app.alice().await;
    let (b, _stop_b) = second_server(&app).await;
    let on_b = |path: &str| format!("http://{b}{path}");

    let jwks_a = app.get("/.well-known/jwks.json").await.text;
    let jwks_b = read(app.client.get(on_b("/.well-known/jwks.json")).send().await.unwrap()).await;
    assert_eq!(jwks_b.status, 200);
    assert_eq!(jwks_b.text, jwks_a, "replicas publish the same key set");
    assert_eq!(kids(&jwks_b.json()).len(), 1, "replicas share one signing key: {}", jwks_b.text);

    let verify_b =
        read(app.client.post(on_b("/api/token/verify/")).json(&json!({"token": access})).send().await.unwrap()).await;
    assert_eq!(verify_b.status, 200, "{}", verify_b.text);

    let refreshed =
        read(app.client.post(on_b("/api/token/refresh/")).json(&json!({"refresh": refresh})).send().await.unwrap())
            .await;
    assert_eq!(refreshed.status, 200, "a token from A refreshes on B: {}", refreshed.text);
    // B rotated it away: A knows.
    let again = app.post_json("/api/token/refresh/", json!({"refresh": refresh})).await;
    assert_401(&again, TOKEN_BLACKLISTED);
    // And B's new token works on A.
    let next = app.post_json("/api/token/refresh/", json!({"refresh": refreshed.field("refresh")})).await;
    assert_eq!(next.status, 200, "{}", next.text);
    assert_eq!(header(&refreshed.field("access"))["kid"], header(&access)["kid"]);
}

/// `tokensmith keys rotate`, as an operator runs it.
fn rotate(app: &TestApp) {
    let out = app.cli(&["keys", "rotate"]);
    assert!(out.status.success(), "keys rotate failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Logs alice in on the server at `addr` (a replica that loaded the current keys).
async fn login_on(app: &TestApp, addr: SocketAddr) -> (String, String) {
    let body = json!({"username": "alice", "password": "correct horse"});
    let reply = read(app.client.post(format!("http://{addr}/api/token/")).json(&body).send().await.unwrap()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    (reply.field("access"), reply.field("refresh"))
}

async fn verify_on(app: &TestApp, addr: SocketAddr, token: &str) -> Reply {
    let body = json!({"token": token});
    read(app.client.post(format!("http://{addr}/api/token/verify/")).json(&body).send().await.unwrap()).await
}

/// The periodic reload is an hour away: only a token with an unknown kid makes B reload.
const NO_PERIODIC_RELOAD: (&str, &str) = ("KEYS_RELOAD_INTERVAL", "1h");

async fn a_replica_meeting_a_new_key_serves_every_parallel_request(backend: Backend) {
    let app = spawn_app_with(backend, &[NO_PERIODIC_RELOAD]).await;
    app.create_user("alice", "correct horse");
    let (b, _stop_b) = second_server(&app).await;
    // B has been up longer than the unknown-kid limit: its first reload is due anyway.
    tokio::time::sleep(Duration::from_millis(5200)).await;

    rotate(&app);
    let (c, _stop_c) = second_server(&app).await;
    let (access, refresh) = login_on(&app, c).await;

    // Twenty requests meet the new kid on B at once: one reloads, the others wait for it.
    let requests = (0..20).map(|i| {
        let client = app.client.clone();
        let (access, refresh) = (access.clone(), refresh.clone());
        async move {
            let request = if i % 2 == 0 {
                client.get(format!("http://{b}/api/me/")).bearer_auth(access)
            } else {
                client.post(format!("http://{b}/api/token/verify/")).json(&json!({"token": refresh}))
            };
            read(request.send().await.unwrap()).await
        }
    });
    let replies = futures::future::join_all(requests).await;
    let refused: Vec<_> = replies.iter().filter(|r| r.status != 200).map(|r| (r.status, &r.text)).collect();
    assert!(refused.is_empty(), "{} of 20 refused on the replica: {refused:?}", refused.len());
}

async fn a_server_just_started_accepts_a_newly_rotated_key(backend: Backend) {
    let app = spawn_app_with(backend, &[NO_PERIODIC_RELOAD]).await;
    app.create_user("alice", "correct horse");
    let started = std::time::Instant::now();
    let (b, _stop_b) = second_server(&app).await;
    rotate(&app);
    let (c, _stop_c) = second_server(&app).await;
    let (access, _) = login_on(&app, c).await;
    assert!(started.elapsed() < Duration::from_secs(5), "too slow to test a server's first seconds");
    let reply = verify_on(&app, b, &access).await;
    assert_eq!(
        reply.status,
        200,
        "a token of the new key, on a server started {:?} ago: {}",
        started.elapsed(),
        reply.text
    );

    // Unknown kids still reload at most once per 5 s (forged kids must not flood the database):
    // a second rotation right away is seen by B only once that time has passed.
    let reloaded = std::time::Instant::now();
    rotate(&app);
    let (d, _stop_d) = second_server(&app).await;
    let (newer, _) = login_on(&app, d).await;
    assert_ne!(header(&newer)["kid"], header(&access)["kid"]);
    if reloaded.elapsed() < Duration::from_secs(4) {
        assert_401(&verify_on(&app, b, &newer).await, TOKEN_INVALID);
    }
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(reloaded.elapsed()) + Duration::from_millis(200)).await;
    let reply = verify_on(&app, b, &newer).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

crate::db_test!(
    downstream_verifies_es256_by_default,
    downstream_verifies_rs256,
    downstream_verifies_eddsa,
    hs256_tokens_interoperate_with_simplejwt,
    algorithm_is_pinned_to_the_key,
    validly_signed_odd_claims_are_invalid_not_500,
    issuer_and_audience_are_written_and_required,
    leeway_tolerates_small_clock_skew,
    rotation_reaches_a_running_server,
    signing_key_file_is_used_and_stable,
    replicas_share_keys_and_sessions,
    a_replica_meeting_a_new_key_serves_every_parallel_request,
    a_server_just_started_accepts_a_newly_rotated_key,
);
