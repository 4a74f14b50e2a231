//! `POST /api/token/clerk/` and `POST /api/token/exchange/` against a fake Clerk.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, jwk::JwkSet};
use serde_json::{Value, json};

use crate::{
    db_test,
    fake_clerk::{APP_ORIGIN, FakeClerk, SigningKey, spawn_with_clerk},
    helpers::{Backend, TOKEN_EXPIRED, TestApp, assert_401, claims, now, spawn_app, spawn_app_with},
};

db_test!(
    exchange_links_one_local_user_whose_tokens_verify_downstream,
    every_failed_check_is_a_401_naming_it,
    signature_is_checked_before_any_claim,
    organization_claims_reach_access_tokens_v1_and_v2,
    new_kid_refetches_the_key_set,
    forged_kid_flood_causes_a_handful_of_fetches,
    cached_keys_survive_an_outage,
    no_keys_at_all_is_503_and_recovers,
    networkless_pem_key,
    inactive_local_user_is_refused,
    never_links_to_a_password_account_by_email,
    first_exchange_takes_the_profile_from_the_backend_api,
    concurrent_first_exchanges_make_one_user,
    rfc8693_exchange_and_its_errors,
    clerk_endpoints_are_404_when_not_configured,
    nul_in_any_claim_is_a_401_naming_it,
    a_stale_key_set_is_refetched_and_dropped_keys_stop_working,
    a_stale_key_set_keeps_working_while_clerk_is_down,
    exchanged_sessions_end_after_exchange_session_max_lifetime,
);

async fn exchange(app: &TestApp, token: &str) -> crate::helpers::Reply {
    crate::helpers::read(app.client.post(app.url("/api/token/clerk/")).bearer_auth(token).send().await.unwrap()).await
}

fn assert_refused(reply: &crate::helpers::Reply, detail: &str) {
    assert_eq!(reply.status, 401, "{}", reply.text);
    assert_eq!(reply.json(), json!({"detail": detail, "code": "external_token_not_valid"}), "expected {detail:?}");
    assert_eq!(reply.header("www-authenticate"), Some("Bearer realm=\"api\""));
}

async fn exchange_links_one_local_user_whose_tokens_verify_downstream(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let app = spawn_with_clerk(backend, &clerk, &[]).await;

    let first = exchange(&app, &clerk.session_token("user_2abc")).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let access = first.field("access");
    // A downstream service, knowing nothing of Clerk, verifies it through tokensmith's JWKS.
    let jwks: JwkSet = serde_json::from_str(&app.get("/.well-known/jwks.json").await.text).unwrap();
    let kid = jsonwebtoken::decode_header(&access).unwrap().kid.unwrap();
    let key = DecodingKey::from_jwk(jwks.find(&kid).expect("the kid is published")).unwrap();
    let verified = jsonwebtoken::decode::<Value>(&access, &key, &Validation::new(Algorithm::ES256)).unwrap();
    assert_eq!(verified.claims["token_type"], "access");

    let me = app.get_bearer("/api/me/", &access).await.json();
    assert_eq!(me["username"], "user_2abc", "no profile claims: the username is the Clerk user id");

    // The token in the body works too, and the same Clerk user is the same local user.
    let again = app.post_json("/api/token/clerk/", json!({"token": clerk.session_token("user_2abc")})).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(claims(&again.field("access"))["user_id"], claims(&access)["user_id"]);
    let other = exchange(&app, &clerk.session_token("user_other")).await;
    assert_ne!(claims(&other.field("access"))["user_id"], claims(&access)["user_id"]);

    // The local pair is an ordinary one: it refreshes and rotates.
    let refreshed = app.post_json("/api/token/refresh/", json!({"refresh": first.field("refresh")})).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);

    let missing = app.post_json("/api/token/clerk/", json!({})).await;
    assert_eq!((missing.status, missing.json()), (400, json!({"token": ["This field is required."]})));
}

async fn every_failed_check_is_a_401_naming_it(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let app = spawn_with_clerk(backend, &clerk, &[]).await;
    let key = &clerk.key;
    let with = |extra: Value| {
        let mut c = clerk.claims("user_1");
        c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        c
    };
    let without = |name: &str| {
        let mut c = clerk.claims("user_1");
        c.as_object_mut().unwrap().remove(name);
        c
    };
    let t = now();
    let public_pem = key.public_pem();
    let hs256_with_public_key = jsonwebtoken::encode(
        &Header { kid: Some(key.kid.clone()), ..Header::new(Algorithm::HS256) },
        &clerk.claims("user_1"),
        &EncodingKey::from_secret(public_pem.as_bytes()),
    )
    .unwrap();
    let mut tampered: Vec<String> = key.sign(&clerk.claims("user_1")).split('.').map(str::to_owned).collect();
    tampered[1] = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(with(json!({"sub": "user_admin"})).to_string())
    };
    let unsigned = format!("{}.{}.", "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0", tampered[1]);

    let cases: Vec<(&str, String, &str)> = vec![
        ("expired", key.sign(&with(json!({"exp": t - 6}))), "Token is expired"),
        ("not yet valid", key.sign(&with(json!({"nbf": t + 60}))), "Token is not yet valid"),
        ("issued in the future", key.sign(&with(json!({"iat": t + 60}))), "Token is not yet valid"),
        ("no exp", key.sign(&without("exp")), "Token has no valid exp claim"),
        ("string exp", key.sign(&with(json!({"exp": "tomorrow"}))), "Token has no valid exp claim"),
        (
            "another Clerk instance",
            key.sign(&with(json!({"iss": "https://other.clerk.accounts.dev"}))),
            "Token issuer is not trusted",
        ),
        (
            "issuer with a trailing slash",
            key.sign(&with(json!({"iss": format!("{}/", clerk.issuer())}))),
            "Token issuer is not trusted",
        ),
        ("no azp", key.sign(&without("azp")), "Token authorized party (azp) is not allowed"),
        (
            "foreign azp",
            key.sign(&with(json!({"azp": "https://evil.example"}))),
            "Token authorized party (azp) is not allowed",
        ),
        ("JWT template (no sid)", key.sign(&without("sid")), "Token is not a session token"),
        ("machine subject", key.sign(&with(json!({"sub": "mch_123"}))), "Token is not a session token"),
        ("M2M cat claim", key.sign(&with(json!({"cat": "cl_B7d4PD111AAA"}))), "Token is not a session token"),
        (
            "OAuth access token",
            key.sign_with(&clerk.claims("user_1"), |h| h.typ = Some("at+jwt".to_owned())),
            "Token is not a session token",
        ),
        ("pending session", key.sign(&with(json!({"v": 2, "sts": "pending"}))), "Session is pending"),
        (
            "unknown kid",
            key.sign_with(&clerk.claims("user_1"), |h| h.kid = Some("ins_unknown".to_owned())),
            "Token is signed by an unknown key",
        ),
        ("HS256 keyed with the public key", hs256_with_public_key, "Token algorithm is not allowed"),
        ("alg none", unsigned, "Token is malformed"),
        ("tampered payload", tampered.join("."), "Token signature is invalid"),
        ("not a JWT", "not.a.jwt".to_owned(), "Token is malformed"),
    ];
    for (case, token, detail) in cases {
        let reply = exchange(&app, &token).await;
        assert_eq!(reply.status, 401, "{case}: {}", reply.text);
        assert_refused(&reply, detail);
    }
    // Within the 5 s skew still passes.
    let lenient = exchange(&app, &key.sign(&with(json!({"exp": t - 3})))).await;
    assert_eq!(lenient.status, 200, "{}", lenient.text);
    // A jku header pointing elsewhere is ignored: the key still comes from our JWKS only.
    let stranger = SigningKey::generate("ins_key_1");
    let jku =
        stranger.sign_with(&clerk.claims("user_1"), |h| h.jku = Some("https://evil.example/jwks.json".to_owned()));
    assert_refused(&exchange(&app, &jku).await, "Token signature is invalid");
    // Each refusal is in the audit trail with its reason, and never with the token.
    let audit = String::from_utf8(app.cli(&["audit", "tail", "-n", "100"]).stdout).unwrap();
    assert!(audit.contains("clerk_exchange_failed") && audit.contains("Token issuer is not trusted"), "{audit}");
    assert!(audit.contains("clerk_exchange_ok"), "{audit}");
    assert!(!audit.contains("eyJ"), "a token reached the audit trail: {audit}");
}

async fn signature_is_checked_before_any_claim(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let app = spawn_with_clerk(backend, &clerk, &[]).await;
    // A forger learns nothing about which claims would pass: every forged token says "signature".
    let stranger = SigningKey::generate(&clerk.key.kid);
    let mut c = clerk.claims("user_1");
    c["exp"] = json!(now() - 3600);
    c["iss"] = json!("https://elsewhere");
    c.as_object_mut().unwrap().remove("sid");
    assert_refused(&exchange(&app, &stranger.sign(&c)).await, "Token signature is invalid");
}

async fn organization_claims_reach_access_tokens_v1_and_v2(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let app = spawn_with_clerk(backend, &clerk, &[]).await;
    let mut v2 = clerk.claims("user_v2");
    v2["v"] = json!(2);
    v2["o"] = json!({"id": "org_2x", "rol": "admin", "slg": "acme"});
    v2["sts"] = json!("active");
    let reply = exchange(&app, &clerk.key.sign(&v2)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let access = claims(&reply.field("access"));
    assert_eq!(
        (&access["org_id"], &access["org_role"], &access["org_slug"]),
        (&json!("org_2x"), &json!("org:admin"), &json!("acme"))
    );
    // Refreshed access tokens of the session carry them too.
    let refreshed = app.post_json("/api/token/refresh/", json!({"refresh": reply.field("refresh")})).await;
    assert_eq!(claims(&refreshed.field("access"))["org_id"], "org_2x");

    let mut v1 = clerk.claims("user_v1");
    v1["org_id"] = json!("org_1y");
    v1["org_role"] = json!("org:member");
    v1["org_slug"] = json!("beta");
    let access = claims(&exchange(&app, &clerk.key.sign(&v1)).await.field("access"));
    assert_eq!(
        (&access["org_id"], &access["org_role"], &access["org_slug"]),
        (&json!("org_1y"), &json!("org:member"), &json!("beta"))
    );
    // No active organization: no org claims at all.
    let plain = claims(&exchange(&app, &clerk.session_token("user_plain")).await.field("access"));
    assert!(plain.get("org_id").is_none(), "{plain}");
    // Password logins never carry them.
    let (password_access, _) = app.alice().await;
    assert!(claims(&password_access).get("org_id").is_none());
}

async fn new_kid_refetches_the_key_set(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let app = spawn_with_clerk(backend, &clerk, &[]).await;
    assert_eq!(exchange(&app, &clerk.session_token("user_1")).await.status, 200);
    assert_eq!(exchange(&app, &clerk.session_token("user_1")).await.status, 200);
    assert_eq!(clerk.jwks_fetches(), 1, "known keys are cached");
    // Clerk rotates: a token signed by the new key makes tokensmith fetch again, once (fetches
    // are at most one per interval, and one just happened).
    let rotated = SigningKey::generate("ins_key_2");
    clerk.publish(&rotated);
    tokio::time::sleep(tokensmith::external::jwks::MIN_FETCH_INTERVAL).await;
    let reply = exchange(&app, &rotated.sign(&clerk.claims("user_1"))).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(clerk.jwks_fetches(), 2);
}

async fn forged_kid_flood_causes_a_handful_of_fetches(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let app = spawn_with_clerk(backend, &clerk, &[]).await;
    let forger = SigningKey::generate("x");
    let tokens: Vec<String> =
        (0..200).map(|i| forger.sign_with(&clerk.claims("user_1"), |h| h.kid = Some(format!("forged_{i}")))).collect();
    let replies = futures::future::join_all(tokens.iter().map(|t| exchange(&app, t))).await;
    for reply in &replies {
        assert_refused(reply, "Token is signed by an unknown key");
    }
    assert!(clerk.jwks_fetches() <= 2, "{} fetches for 200 forged kids", clerk.jwks_fetches());
    // Genuine tokens are unaffected.
    assert_eq!(exchange(&app, &clerk.session_token("user_1")).await.status, 200);
}

async fn cached_keys_survive_an_outage(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let app = spawn_with_clerk(backend, &clerk, &[]).await;
    assert_eq!(exchange(&app, &clerk.session_token("user_1")).await.status, 200);
    clerk.set_jwks_down(true);
    let reply = exchange(&app, &clerk.session_token("user_1")).await;
    assert_eq!(reply.status, 200, "cached keys keep working while Clerk is down: {}", reply.text);
    // A kid nobody knows is still just unknown, not an outage.
    let stranger = SigningKey::generate("ins_new");
    assert_refused(&exchange(&app, &stranger.sign(&clerk.claims("user_1"))).await, "Token is signed by an unknown key");
}

async fn no_keys_at_all_is_503_and_recovers(backend: Backend) {
    let clerk = FakeClerk::start().await;
    clerk.set_jwks_down(true);
    let app = spawn_with_clerk(backend, &clerk, &[]).await;
    let reply = exchange(&app, &clerk.session_token("user_1")).await;
    assert_eq!(reply.status, 503, "{}", reply.text);
    assert_eq!(reply.json()["code"], "external_keys_unavailable");
    // Clerk comes back: within the refetch interval tokensmith recovers by itself.
    clerk.set_jwks_down(false);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let reply = exchange(&app, &clerk.session_token("user_1")).await;
        if reply.status == 200 {
            break;
        }
        assert_eq!(reply.status, 503, "{}", reply.text);
        assert!(std::time::Instant::now() < deadline, "did not recover");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Unreachable (nothing listening): 503 too, within the 3 s fetch timeout.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let jwks_url = format!("http://{closed}/.well-known/jwks.json");
    let app = spawn_with_clerk(backend, &clerk, &[("CLERK_JWKS_URL", &jwks_url)]).await;
    let started = std::time::Instant::now();
    let reply = exchange(&app, &clerk.session_token("user_1")).await;
    assert_eq!((reply.status, reply.json()["code"].clone()), (503, json!("external_keys_unavailable")));
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
}

async fn networkless_pem_key(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let pem = clerk.key.public_pem();
    let app = spawn_with_clerk(backend, &clerk, &[("CLERK_JWT_KEY", &pem)]).await;
    let reply = exchange(&app, &clerk.session_token("user_1")).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let stranger = SigningKey::generate(&clerk.key.kid);
    assert_refused(&exchange(&app, &stranger.sign(&clerk.claims("user_1"))).await, "Token signature is invalid");
    assert_eq!(clerk.jwks_fetches(), 0, "with CLERK_JWT_KEY nothing is fetched");
}

async fn inactive_local_user_is_refused(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let app = spawn_with_clerk(backend, &clerk, &[]).await;
    assert_eq!(exchange(&app, &clerk.session_token("user_gone")).await.status, 200);
    assert!(app.cli(&["user", "deactivate", "user_gone"]).status.success());
    let reply = exchange(&app, &clerk.session_token("user_gone")).await;
    assert_eq!(reply.status, 401, "{}", reply.text);
    assert_eq!(reply.json()["code"], "no_active_account");
}

async fn never_links_to_a_password_account_by_email(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let app = spawn_with_clerk(backend, &clerk, &[]).await;
    let out =
        app.cli_with_stdin(&["user", "create", "ada", "--email", "ada@example.com", "--password-stdin"], "pw-of-ada");
    assert!(out.status.success());
    let (password_access, _) = app.login("ada", "pw-of-ada").await;
    // A Clerk session claiming the same username and email (custom session claims).
    let mut c = clerk.claims("user_ada");
    c["username"] = json!("ada");
    c["email"] = json!("ada@example.com");
    let reply = exchange(&app, &clerk.key.sign(&c)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_ne!(claims(&reply.field("access"))["user_id"], claims(&password_access)["user_id"]);
    let me = app.get_bearer("/api/me/", &reply.field("access")).await.json();
    assert_ne!(me["username"], "ada");
    assert!(me["username"].as_str().unwrap().starts_with("ada-"), "{me}");
    assert_eq!(me["email"], "ada@example.com");
}

async fn first_exchange_takes_the_profile_from_the_backend_api(backend: Backend) {
    let clerk = FakeClerk::start().await;
    clerk.add_users([crate::fake_clerk::clerk_user(
        "user_grace",
        Some("grace"),
        "grace@example.com",
        true,
        now() * 1000,
    )]);
    let app = spawn_with_clerk(backend, &clerk, &[]).await;
    let me = app
        .get_bearer("/api/me/", &exchange(&app, &clerk.session_token("user_grace")).await.field("access"))
        .await
        .json();
    assert_eq!(
        (&me["username"], &me["email"], &me["first_name"]),
        (&json!("grace"), &json!("grace@example.com"), &json!("Ada"))
    );

    // With CLERK_SECRET_KEY but the Backend API not answering it, a first exchange waits: the
    // record's external_id may name the person's account, and a link once made stays.
    let app = spawn_with_clerk(backend, &clerk, &[("CLERK_SECRET_KEY", "sk_test_wrong")]).await;
    let reply = exchange(&app, &clerk.session_token("user_grace")).await;
    assert_eq!(reply.status, 503, "{}", reply.text);
    assert_eq!(reply.json()["code"], "external_profile_unavailable");
    assert!(app.cli(&["user", "list"]).stdout.is_empty(), "nobody created meanwhile");
}

async fn concurrent_first_exchanges_make_one_user(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let app = spawn_with_clerk(backend, &clerk, &[]).await;
    let tokens: Vec<String> = (0..8).map(|_| clerk.session_token("user_race")).collect();
    let replies = futures::future::join_all(tokens.iter().map(|t| exchange(&app, t))).await;
    let mut ids = std::collections::HashSet::new();
    for reply in &replies {
        assert_eq!(reply.status, 200, "{}", reply.text);
        ids.insert(claims(&reply.field("access"))["user_id"].clone());
    }
    assert_eq!(ids.len(), 1, "one Clerk user, one local user: {ids:?}");
}

async fn rfc8693_exchange_and_its_errors(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let app = spawn_with_clerk(backend, &clerk, &[("ACCESS_TOKEN_LIFETIME", "2m")]).await;
    const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
    const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
    let token = clerk.session_token("user_8693");
    let ok = app
        .post_form(
            "/api/token/exchange/",
            &[("grant_type", GRANT), ("subject_token", &token), ("subject_token_type", JWT)],
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    let body = ok.json();
    assert_eq!(body["issued_token_type"], "urn:ietf:params:oauth:token-type:access_token");
    assert_eq!((&body["token_type"], &body["expires_in"]), (&json!("Bearer"), &json!(120)));
    assert_eq!(app.get_bearer("/api/me/", body["access_token"].as_str().unwrap()).await.status, 200);
    let refreshed = app.post_json("/api/token/refresh/", json!({"refresh": body["refresh_token"]})).await;
    assert_eq!(refreshed.status, 200);
    assert_eq!(ok.header("cache-control"), Some("no-store"));

    let json_body = app
        .post_json(
            "/api/token/exchange/",
            json!({"grant_type": GRANT, "subject_token": token, "subject_token_type": JWT}),
        )
        .await;
    assert_eq!(json_body.status, 200, "{}", json_body.text);

    let error = |reply: &crate::helpers::Reply| (reply.status, reply.json()["error"].as_str().unwrap_or("").to_owned());
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (vec![("subject_token", token.clone()), ("subject_token_type", JWT.into())], "invalid_request"),
        (
            vec![
                ("grant_type", "password".into()),
                ("subject_token", token.clone()),
                ("subject_token_type", JWT.into()),
            ],
            "unsupported_grant_type",
        ),
        (vec![("grant_type", GRANT.into()), ("subject_token_type", JWT.into())], "invalid_request"),
        (vec![("grant_type", GRANT.into()), ("subject_token", token.clone())], "invalid_request"),
        (
            vec![
                ("grant_type", GRANT.into()),
                ("subject_token", token.clone()),
                ("subject_token_type", "urn:ietf:params:oauth:token-type:saml2".into()),
            ],
            "invalid_request",
        ),
        (
            vec![("grant_type", GRANT.into()), ("subject_token", "garbage".into()), ("subject_token_type", JWT.into())],
            "invalid_request",
        ),
    ];
    for (form, expected) in cases {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let reply = app.post_form("/api/token/exchange/", &form).await;
        assert_eq!(error(&reply), (400, expected.to_owned()), "{form:?}: {}", reply.text);
        assert!(reply.json()["error_description"].is_string());
    }
    // A token that fails a check says which, in RFC 6749's shape.
    let mut expired = clerk.claims("user_8693");
    expired["exp"] = json!(now() - 60);
    let reply = app
        .post_form(
            "/api/token/exchange/",
            &[("grant_type", GRANT), ("subject_token", &clerk.key.sign(&expired)), ("subject_token_type", JWT)],
        )
        .await;
    assert_eq!(
        reply.json(),
        json!({"error": "invalid_request", "error_description": "subject_token: Token is expired"})
    );
    // A token of an issuer nobody configured.
    let mut foreign = clerk.claims("user_8693");
    foreign["iss"] = json!("https://accounts.google.com");
    let reply = app
        .post_form(
            "/api/token/exchange/",
            &[("grant_type", GRANT), ("subject_token", &clerk.key.sign(&foreign)), ("subject_token_type", JWT)],
        )
        .await;
    assert_eq!(error(&reply), (400, "invalid_request".to_owned()), "{}", reply.text);
    let malformed = app.post_raw("/api/token/exchange/", "application/json", "{not json").await;
    assert_eq!(error(&malformed), (400, "invalid_request".to_owned()), "{}", malformed.text);
}

async fn clerk_endpoints_are_404_when_not_configured(backend: Backend) {
    let app = spawn_app(backend).await;
    let reply = app.post_json("/api/token/clerk/", json!({"token": "x"})).await;
    assert_eq!((reply.status, reply.text.as_str()), (404, r#"{"detail":"Not found."}"#));
    let reply = app.post_json("/webhooks/clerk/", json!({"type": "user.created"})).await;
    assert_eq!(reply.status, 404);
    let _ = spawn_app_with;
    let _ = APP_ORIGIN;
}

async fn nul_in_any_claim_is_a_401_naming_it(backend: Backend) {
    let clerk = FakeClerk::start().await;
    // The Backend API knows no user_nul: the token's claims are the profile.
    let app = spawn_with_clerk(backend, &clerk, &[]).await;
    // Each of these is stored locally, and PostgreSQL cannot store a NUL: refused before.
    let cases = [
        ("sub", json!({"sub": "user_\u{0}"})),
        ("sid", json!({"sid": "sess_\u{0}"})),
        ("given_name", json!({"given_name": "Ada\u{0}"})),
        ("first_name", json!({"first_name": "\u{0}"})),
        ("family_name", json!({"family_name": "L\u{0}"})),
        ("email", json!({"email": "ada\u{0}@example.com"})),
        ("username", json!({"username": "ada\u{0}"})),
        ("org_id", json!({"org_id": "org_\u{0}"})),
        ("org_slug", json!({"org_id": "org_1", "org_slug": "acme\u{0}"})),
        ("rol", json!({"v": 2, "o": {"id": "org_1", "rol": "ad\u{0}min"}})),
    ];
    for (claim, extra) in cases {
        let mut c = clerk.claims("user_nul");
        c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        assert_refused(&exchange(&app, &clerk.key.sign(&c)).await, &format!("Token has no valid {claim} claim"));
    }
    let reply = exchange(&app, &clerk.session_token("user_nul")).await;
    assert_eq!(reply.status, 200, "{}", reply.text);

    // The Backend API's profile of a first exchange: NULs stripped, the rest kept.
    let mut user =
        crate::fake_clerk::clerk_user("user_bapi", Some("gr\u{0}ace"), "grace@example.com", true, now() * 1000);
    user["first_name"] = json!("Gr\u{0}ace");
    user["last_name"] = json!("\u{0}");
    clerk.add_users([user]);
    let app = spawn_with_clerk(backend, &clerk, &[]).await;
    let reply = exchange(&app, &clerk.session_token("user_bapi")).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let me = app.get_bearer("/api/me/", &reply.field("access")).await.json();
    assert_eq!(
        (&me["username"], &me["first_name"], &me["last_name"], &me["email"]),
        (&json!("grace"), &json!("Grace"), &json!(""), &json!("grace@example.com"))
    );
}

/// Polls until `exchange` of `token` is no longer 200, within `within`.
async fn until_refused(app: &TestApp, token: &str, within: Duration) -> crate::helpers::Reply {
    let deadline = std::time::Instant::now() + within;
    loop {
        let reply = exchange(app, token).await;
        if reply.status != 200 {
            return reply;
        }
        assert!(std::time::Instant::now() < deadline, "still accepted after {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn a_stale_key_set_is_refetched_and_dropped_keys_stop_working(backend: Backend) {
    use tokensmith::external::jwks::MIN_MAX_AGE;
    let clerk = FakeClerk::start().await;
    clerk.set_jwks_cache_control("public, max-age=1"); // below the floor: fresh for MIN_MAX_AGE
    let app = spawn_with_clerk(backend, &clerk, &[]).await;
    let old_token = clerk.session_token("user_1");
    assert_eq!(exchange(&app, &old_token).await.status, 200);
    // Clerk rotates and stops publishing the old key.
    let rotated = SigningKey::generate("ins_key_2");
    clerk.publish(&rotated);
    clerk.unpublish(&clerk.key.kid);
    assert_eq!(exchange(&app, &old_token).await.status, 200, "fresh for max-age: the cached set answers");
    assert_eq!(clerk.jwks_fetches(), 1);

    tokio::time::sleep(MIN_MAX_AGE + Duration::from_millis(300)).await;
    // The set is stale: the next request starts a refresh, after which the dropped key is unknown.
    let refused = until_refused(&app, &old_token, Duration::from_secs(5)).await;
    assert_refused(&refused, "Token is signed by an unknown key");
    assert_eq!(clerk.jwks_fetches(), 2, "one refresh, however many requests saw the stale set");
    let reply = exchange(&app, &rotated.sign(&clerk.claims("user_1"))).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

async fn a_stale_key_set_keeps_working_while_clerk_is_down(backend: Backend) {
    use tokensmith::external::jwks::MIN_MAX_AGE;
    let clerk = FakeClerk::start().await;
    clerk.set_jwks_cache_control("max-age=0");
    let app = spawn_with_clerk(backend, &clerk, &[]).await;
    assert_eq!(exchange(&app, &clerk.session_token("user_1")).await.status, 200);
    clerk.set_jwks_down(true);
    tokio::time::sleep(MIN_MAX_AGE + Duration::from_millis(300)).await;
    // Stale, and the refresh it starts fails: the cached keys keep answering, before and after.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while clerk.jwks_fetches() < 2 {
        let reply = exchange(&app, &clerk.session_token("user_1")).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert!(std::time::Instant::now() < deadline, "no refresh was attempted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..3 {
        let reply = exchange(&app, &clerk.session_token("user_1")).await;
        assert_eq!(reply.status, 200, "the failed refresh kept the cached keys: {}", reply.text);
    }
}

/// The organization and role of an exchange are only as fresh as the session: a session born
/// from an exchange ends after `EXCHANGE_SESSION_MAX_LIFETIME`, and the app exchanges again.
async fn exchanged_sessions_end_after_exchange_session_max_lifetime(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let app = spawn_with_clerk(backend, &clerk, &[("EXCHANGE_SESSION_MAX_LIFETIME", "2s")]).await;
    let mut c = clerk.claims("user_org");
    c["org_id"] = json!("org_1y");
    c["org_role"] = json!("org:admin");
    let reply = exchange(&app, &clerk.key.sign(&c)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let refresh = reply.field("refresh");
    let issued = claims(&refresh);
    assert!(issued["exp"].as_i64().unwrap() <= issued["iat"].as_i64().unwrap() + 2, "exp is capped: {issued}");
    let (_, password_refresh) = app.alice().await;
    let password = claims(&password_refresh);
    assert!(password["exp"].as_i64().unwrap() >= password["iat"].as_i64().unwrap() + 3600, "{password}");

    // Within the lifetime it refreshes, and its successor is capped too.
    let refreshed = app.post_json("/api/token/refresh/", json!({"refresh": refresh})).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    assert_eq!(claims(&refreshed.field("access"))["org_role"], "org:admin");
    let successor = refreshed.field("refresh");
    assert!(claims(&successor)["exp"].as_i64().unwrap() <= issued["iat"].as_i64().unwrap() + 2);

    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_401(&app.post_json("/api/token/refresh/", json!({"refresh": successor})).await, TOKEN_EXPIRED);
    let password = app.post_json("/api/token/refresh/", json!({"refresh": password_refresh})).await;
    assert_eq!(password.status, 200, "a password session lives on: {}", password.text);
    // The app exchanges again, and gets what Clerk says now.
    c["org_role"] = json!("org:member");
    c["iat"] = json!(now());
    let again = exchange(&app, &clerk.key.sign(&c)).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(claims(&again.field("access"))["org_role"], "org:member");
}
