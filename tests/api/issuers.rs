//! Other identity providers by configuration (`EXTERNAL_ISSUERS_FILE`): three fake issuers at
//! once, shaped like Descope, Auth0 (reached through OIDC discovery) and Firebase.

use serde_json::{Value, json};

use crate::{
    db_test,
    fake_clerk::FakeClerk,
    fake_clerk::SigningKey,
    helpers::{Backend, Reply, TestApp, claims, now, read, spawn_app_with},
};

db_test!(
    three_issuers_at_once_each_on_its_own_endpoint,
    roles_follow_the_provider_at_every_exchange,
    keys_of_one_issuer_never_verify_anothers_tokens,
    rfc8693_picks_the_issuer_by_iss,
    required_audience_and_unknown_providers,
    nul_in_any_claim_is_a_401_naming_it,
    an_issuer_may_allow_rs256_and_es256_at_once,
    absent_email_verified_is_unverified_unless_the_entry_says_otherwise,
    an_issuers_session_ends_after_exchange_session_max_lifetime,
);

const DESCOPE_ISS: &str = "https://api.descope.com/P2test";
const FIREBASE_ISS: &str = "https://securetoken.google.com/proj-123";

struct Providers {
    descope: FakeClerk,
    auth0: FakeClerk,
    firebase: FakeClerk,
}

async fn providers() -> Providers {
    Providers { descope: FakeClerk::start().await, auth0: FakeClerk::start().await, firebase: FakeClerk::start().await }
}

/// A tokensmith trusting the three, configured as README shows.
async fn app(backend: Backend, p: &Providers) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("issuers.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[[issuer]]
name = "descope"
issuer = "{DESCOPE_ISS}"
jwks_url = "{descope}/.well-known/jwks.json"
audience = ["P2test"]
roles_claim = "roles"
staff_roles = ["admin"]
superuser_roles = ["superadmin"]

[[issuer]]
name = "auth0"
issuer = "{auth0}"
discovery = true
audience = ["https://api.example.com"]
roles_claim = "https://example.com/roles"
staff_roles = ["support"]
first_name_claim = "given_name"
last_name_claim = "family_name"

[[issuer]]
name = "firebase"
issuer = "{FIREBASE_ISS}"
jwks_url = "{firebase}/.well-known/jwks.json"
audience = ["proj-123"]
roles_claim = "roles"
staff_roles = ["staff"]
"#,
            descope = p.descope.issuer(),
            auth0 = p.auth0.issuer(),
            firebase = p.firebase.issuer(),
        ),
    )
    .unwrap();
    let path = file.display().to_string();
    let app = spawn_app_with(backend, &[("EXTERNAL_ISSUERS_FILE", &path)]).await;
    std::mem::forget(dir); // the server read it at start; keep it for the test's life anyway
    app
}

fn descope_claims(sub: &str, roles: Value) -> Value {
    let t = now();
    json!({"iss": DESCOPE_ISS, "sub": sub, "aud": ["P2test"], "exp": t + 600, "iat": t, "email": format!("{sub}@descope.test"),
           "roles": roles, "tenants": {"T1": {"roles": ["tenant-admin"]}}, "drn": "DS"})
}

fn auth0_claims(p: &Providers, sub: &str) -> Value {
    let t = now();
    json!({"iss": p.auth0.issuer(), "sub": sub, "aud": ["https://api.example.com", format!("{}/userinfo", p.auth0.issuer())],
           "exp": t + 600, "iat": t, "azp": "client123", "scope": "openid profile email",
           "email": "kim@auth0.test", "email_verified": true, "given_name": "Kim", "family_name": "Lee",
           "https://example.com/roles": ["support"]})
}

fn firebase_claims(sub: &str) -> Value {
    let t = now();
    json!({"iss": FIREBASE_ISS, "aud": "proj-123", "auth_time": t, "user_id": sub, "sub": sub, "iat": t, "exp": t + 3600,
           "email": "ana@firebase.test", "email_verified": false, "firebase": {"sign_in_provider": "password"}, "roles": []})
}

async fn exchange(app: &TestApp, provider: &str, token: &str) -> Reply {
    read(app.client.post(app.url(&format!("/api/token/{provider}/"))).bearer_auth(token).send().await.unwrap()).await
}

fn users(app: &TestApp) -> Vec<Value> {
    serde_json::from_slice(&app.cli(&["user", "list", "--json"]).stdout).unwrap()
}

async fn three_issuers_at_once_each_on_its_own_endpoint(backend: Backend) {
    let p = providers().await;
    let app = app(backend, &p).await;
    let descope = exchange(&app, "descope", &p.descope.key.sign(&descope_claims("U2abc", json!(["admin"])))).await;
    assert_eq!(descope.status, 200, "{}", descope.text);
    let auth0 = exchange(&app, "auth0", &p.auth0.key.sign(&auth0_claims(&p, "auth0|kim"))).await;
    assert_eq!(auth0.status, 200, "{}", auth0.text);
    let firebase = exchange(&app, "firebase", &p.firebase.key.sign(&firebase_claims("fbUid42"))).await;
    assert_eq!(firebase.status, 200, "{}", firebase.text);

    let ids: std::collections::HashSet<Value> =
        [&descope, &auth0, &firebase].iter().map(|r| claims(&r.field("access"))["user_id"].clone()).collect();
    assert_eq!(ids.len(), 3, "three providers, three local users");
    let me = app.get_bearer("/api/me/", &auth0.field("access")).await.json();
    assert_eq!(
        (&me["email"], &me["first_name"], &me["last_name"], &me["is_staff"]),
        (&json!("kim@auth0.test"), &json!("Kim"), &json!("Lee"), &json!(true))
    );
    let me = app.get_bearer("/api/me/", &firebase.field("access")).await.json();
    assert_eq!(me["email"], "", "an unverified email is not taken");
    let me = app.get_bearer("/api/me/", &descope.field("access")).await.json();
    assert_eq!((&me["is_staff"], &me["is_superuser"]), (&json!(true), &json!(false)));
    // Linking is per (issuer, subject): the same subject at another issuer is another user.
    let other = exchange(&app, "firebase", &p.firebase.key.sign(&firebase_claims("U2abc"))).await;
    assert_ne!(claims(&other.field("access"))["user_id"], claims(&descope.field("access"))["user_id"]);
    assert!(users(&app).len() >= 4);
}

async fn roles_follow_the_provider_at_every_exchange(backend: Backend) {
    let p = providers().await;
    let app = app(backend, &p).await;
    let promoted =
        exchange(&app, "descope", &p.descope.key.sign(&descope_claims("U2role", json!(["superadmin", "admin"])))).await;
    let me = app.get_bearer("/api/me/", &promoted.field("access")).await.json();
    assert_eq!((&me["is_staff"], &me["is_superuser"]), (&json!(true), &json!(true)));
    // The role is revoked upstream: gone at the next exchange.
    let demoted = exchange(&app, "descope", &p.descope.key.sign(&descope_claims("U2role", json!([])))).await;
    let me = app.get_bearer("/api/me/", &demoted.field("access")).await.json();
    assert_eq!((&me["is_staff"], &me["is_superuser"]), (&json!(false), &json!(false)));
}

async fn keys_of_one_issuer_never_verify_anothers_tokens(backend: Backend) {
    let p = providers().await;
    let app = app(backend, &p).await;
    // Firebase's claims, signed with Descope's key (its kid is in Descope's key set only).
    let forged = exchange(&app, "firebase", &p.descope.key.sign(&firebase_claims("fbUid42"))).await;
    assert_eq!(forged.status, 401, "{}", forged.text);
    assert_eq!(forged.json()["code"], "external_token_not_valid");
    // A genuine Descope token at the Firebase endpoint: wrong issuer there.
    let misplaced = exchange(&app, "firebase", &p.descope.key.sign(&descope_claims("U2x", json!([])))).await;
    assert_eq!(misplaced.json()["code"], "external_token_not_valid", "{}", misplaced.text);
    // HS256 is never accepted, whatever the key.
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &firebase_claims("fbUid42"),
        &jsonwebtoken::EncodingKey::from_secret(b"guess"),
    )
    .unwrap();
    assert_eq!(exchange(&app, "firebase", &hs).await.json()["detail"], "Token algorithm is not allowed");
}

async fn rfc8693_picks_the_issuer_by_iss(backend: Backend) {
    let p = providers().await;
    let app = app(backend, &p).await;
    const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
    const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
    for token in
        [p.descope.key.sign(&descope_claims("U2rfc", json!([]))), p.auth0.key.sign(&auth0_claims(&p, "auth0|rfc"))]
    {
        let reply = app
            .post_form(
                "/api/token/exchange/",
                &[("grant_type", GRANT), ("subject_token", &token), ("subject_token_type", JWT)],
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert!(reply.json()["access_token"].is_string());
    }
    let mut unknown = firebase_claims("x");
    unknown["iss"] = json!("https://issuer.nobody.configured");
    let reply = app
        .post_form(
            "/api/token/exchange/",
            &[("grant_type", GRANT), ("subject_token", &p.firebase.key.sign(&unknown)), ("subject_token_type", JWT)],
        )
        .await;
    assert_eq!((reply.status, reply.json()["error"].clone()), (400, json!("invalid_request")));
}

async fn required_audience_and_unknown_providers(backend: Backend) {
    let p = providers().await;
    let app = app(backend, &p).await;
    let mut no_aud = auth0_claims(&p, "auth0|noaud");
    no_aud["aud"] = json!("https://another-api.example.com");
    let reply = exchange(&app, "auth0", &p.auth0.key.sign(&no_aud)).await;
    assert_eq!(reply.json(), json!({"detail": "Token audience is not allowed", "code": "external_token_not_valid"}));
    let reply = exchange(&app, "okta", &p.auth0.key.sign(&auth0_claims(&p, "x"))).await;
    assert_eq!((reply.status, reply.text.as_str()), (404, r#"{"detail":"Not found."}"#));
    // Discovery happened once, and the keys were fetched from where it pointed.
    assert!(p.auth0.jwks_fetches() >= 1);
}

/// A tokensmith trusting one issuer, `idp`, whose keys `provider` serves, with `extra` TOML
/// lines in its entry.
async fn one_issuer_app(backend: Backend, provider: &FakeClerk, extra: &str) -> TestApp {
    one_issuer_app_with(backend, provider, extra, &[]).await
}

/// `one_issuer_app`, with `settings` too.
async fn one_issuer_app_with(
    backend: Backend,
    provider: &FakeClerk,
    extra: &str,
    settings: &[(&str, &str)],
) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("issuers.toml");
    let issuer = provider.issuer();
    let entry = format!(
        "[[issuer]]\nname = \"idp\"\nissuer = \"{issuer}\"\njwks_url = \"{issuer}/.well-known/jwks.json\"\n{extra}\n"
    );
    std::fs::write(&file, entry).unwrap();
    let path = file.display().to_string();
    let mut settings = settings.to_vec();
    settings.push(("EXTERNAL_ISSUERS_FILE", &path));
    let app = spawn_app_with(backend, &settings).await;
    std::mem::forget(dir);
    app
}

fn idp_claims(provider: &FakeClerk, sub: &str) -> Value {
    let t = now();
    json!({"iss": provider.issuer(), "sub": sub, "exp": t + 600, "iat": t, "email": format!("{sub}@idp.test")})
}

fn assert_refused(reply: &Reply, detail: &str) {
    assert_eq!(
        (reply.status, reply.json()),
        (401, json!({"detail": detail, "code": "external_token_not_valid"})),
        "expected {detail:?}"
    );
}

async fn nul_in_any_claim_is_a_401_naming_it(backend: Backend) {
    let idp = FakeClerk::start().await;
    let app =
        one_issuer_app(backend, &idp, "first_name_claim = \"given_name\"\nlast_name_claim = \"name.family\"").await;
    // Each of these is stored locally, and PostgreSQL cannot store a NUL: refused before.
    let cases = [
        ("sub", json!({"sub": "u\u{0}1"})),
        ("email", json!({"email": "a\u{0}@idp.test"})),
        ("given_name", json!({"given_name": "Ada\u{0}"})),
        ("name.family", json!({"name": {"family": "\u{0}"}})),
        ("sid", json!({"sid": "s\u{0}"})),
        ("preferred_username", json!({"preferred_username": "ada\u{0}"})),
        ("username", json!({"username": "ada\u{0}"})),
    ];
    for (claim, extra) in cases {
        let mut c = idp_claims(&idp, "u1");
        c["email_verified"] = json!(true);
        c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        assert_refused(&exchange(&app, "idp", &idp.key.sign(&c)).await, &format!("Token has no valid {claim} claim"));
    }
    // The same user, without the NULs, signs in; nothing half-made is in the way.
    let mut clean = idp_claims(&idp, "u1");
    clean["given_name"] = json!("Ada");
    clean["email_verified"] = json!(true);
    let reply = exchange(&app, "idp", &idp.key.sign(&clean)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let me = app.get_bearer("/api/me/", &reply.field("access")).await.json();
    assert_eq!((&me["first_name"], &me["email"]), (&json!("Ada"), &json!("u1@idp.test")));
}

async fn an_issuer_may_allow_rs256_and_es256_at_once(backend: Backend) {
    let idp = FakeClerk::start().await;
    let ec = SigningKey::generate_for("ec-1", jsonwebtoken::Algorithm::ES256);
    let ed = SigningKey::generate_for("ed-1", jsonwebtoken::Algorithm::EdDSA);
    idp.publish(&ec);
    idp.publish(&ed);
    let app = one_issuer_app(backend, &idp, "algorithms = [\"RS256\", \"ES256\"]").await;
    let rs256 = exchange(&app, "idp", &idp.key.sign(&idp_claims(&idp, "rs"))).await;
    assert_eq!(rs256.status, 200, "RS256: {}", rs256.text);
    let es256 = exchange(&app, "idp", &ec.sign(&idp_claims(&idp, "es"))).await;
    assert_eq!(es256.status, 200, "ES256: {}", es256.text);
    // An algorithm not listed stays refused, its key published or not.
    assert_refused(&exchange(&app, "idp", &ed.sign(&idp_claims(&idp, "ed"))).await, "Token algorithm is not allowed");
    // An allowed algorithm names a key of another family: refused too.
    let mismatched = ec.sign_with(&idp_claims(&idp, "es"), |h| h.kid = Some(idp.key.kid.clone()));
    assert_refused(&exchange(&app, "idp", &mismatched).await, "Token algorithm is not allowed");
}

async fn absent_email_verified_is_unverified_unless_the_entry_says_otherwise(backend: Backend) {
    let idp = FakeClerk::start().await;
    async fn email_of(app: &TestApp, idp: &FakeClerk, claims: Value) -> Value {
        let reply = exchange(app, "idp", &idp.key.sign(&claims)).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        app.get_bearer("/api/me/", &reply.field("access")).await.json()["email"].clone()
    }
    let with_verified = |sub: &str, verified: Value| {
        let mut c = idp_claims(&idp, sub);
        c["email_verified"] = verified;
        c
    };
    let strict = one_issuer_app(backend, &idp, "").await;
    assert_eq!(email_of(&strict, &idp, idp_claims(&idp, "silent")).await, "", "nobody said the address was verified");
    assert_eq!(email_of(&strict, &idp, with_verified("said", json!(true))).await, "said@idp.test");

    let trusting = one_issuer_app(backend, &idp, "email_verified_default = true").await;
    assert_eq!(email_of(&trusting, &idp, idp_claims(&idp, "silent")).await, "silent@idp.test");
    assert_eq!(
        email_of(&trusting, &idp, with_verified("denied", json!(false))).await,
        "",
        "an explicit false still counts"
    );
}

/// The roles an issuer's token gave stay only as long as the session: it ends after
/// `EXCHANGE_SESSION_MAX_LIFETIME`, so the next exchange applies the provider's roles again.
async fn an_issuers_session_ends_after_exchange_session_max_lifetime(backend: Backend) {
    let provider = FakeClerk::start().await;
    let roles = "roles_claim = \"roles\"\nstaff_roles = [\"admin\"]";
    let app = one_issuer_app_with(backend, &provider, roles, &[("EXCHANGE_SESSION_MAX_LIFETIME", "2s")]).await;
    let mut c = idp_claims(&provider, "staffer");
    c["roles"] = json!(["admin"]);
    let reply = exchange(&app, "idp", &provider.key.sign(&c)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let refresh = claims(&reply.field("refresh"));
    assert!(refresh["exp"].as_i64().unwrap() <= refresh["iat"].as_i64().unwrap() + 2, "exp is capped: {refresh}");
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    let refreshed = app.post_json("/api/token/refresh/", json!({"refresh": reply.field("refresh")})).await;
    assert_eq!(
        (refreshed.status, refreshed.json()),
        (401, json!({"detail": "Token is expired", "code": "token_not_valid"})),
        "an exchanged session ends after EXCHANGE_SESSION_MAX_LIFETIME"
    );
}
