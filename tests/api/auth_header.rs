//! `AUTH_HEADER_TYPES`, simplejwt's setting: the `Authorization` schemes every endpoint that
//! reads the header accepts, and the scheme every 401 names.

use serde_json::json;

use crate::{
    db_test,
    fake_clerk::{FakeClerk, spawn_with_clerk},
    helpers::{Backend, Reply, TestApp, read, spawn_app, spawn_app_with},
};

const NOT_PROVIDED: &str = r#"{"detail":"Authentication credentials were not provided."}"#;

async fn get(app: &TestApp, path: &str, authorization: &str) -> Reply {
    read(app.client.get(app.url(path)).header("authorization", authorization).send().await.unwrap()).await
}

async fn post(app: &TestApp, path: &str, authorization: &str, body: serde_json::Value) -> Reply {
    let request = app.client.post(app.url(path)).header("authorization", authorization).json(&body);
    read(request.send().await.unwrap()).await
}

fn assert_challenge(reply: &Reply, body: &str, challenge: &str) {
    assert_eq!((reply.status, reply.text.as_str()), (401, body));
    assert_eq!(reply.header("www-authenticate"), Some(challenge));
}

async fn every_listed_type_authenticates_every_endpoint_that_reads_authorization(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let app = spawn_with_clerk(backend, &clerk, &[("AUTH_HEADER_TYPES", "Bearer,JWT")]).await;
    let (access, refresh) = app.alice().await;

    for scheme in ["JWT", "Bearer"] {
        let me = get(&app, "/api/me/", &format!("{scheme} {access}")).await;
        assert_eq!(me.status, 200, "{scheme}: {}", me.text);
        assert_eq!(me.json()["username"], "alice");
    }
    let auth = format!("JWT {access}");
    let change = post(
        &app,
        "/api/password/change/",
        &auth,
        json!({"current_password": "correct horse", "new_password": "battery staple"}),
    )
    .await;
    assert_eq!(change.status, 200, "{}", change.text);
    let (access, refresh_after_change) = app.login("alice", "battery staple").await;
    let revoke = post(&app, "/api/token/revoke-all/", &format!("JWT {access}"), json!({})).await;
    assert_eq!(revoke.status, 200, "{}", revoke.text);
    for refresh in [refresh, refresh_after_change] {
        assert_eq!(app.post_json("/api/token/refresh/", json!({ "refresh": refresh })).await.status, 401);
    }
    // The Clerk session token, presented with the second type.
    let exchange =
        post(&app, "/api/token/clerk/", &format!("JWT {}", clerk.session_token("user_2jwt")), json!({})).await;
    assert_eq!(exchange.status, 200, "{}", exchange.text);
    assert_eq!(get(&app, "/api/me/", &format!("JWT {}", exchange.field("access"))).await.status, 200);

    // A listed scheme with no token, or two, is malformed, as simplejwt has it.
    for value in ["JWT", "JWT a b"] {
        let reply = get(&app, "/api/me/", value).await;
        assert_eq!(reply.status, 401, "{value:?}: {}", reply.text);
        assert_eq!(reply.json()["code"], "bad_authorization_header", "{value:?}");
    }
}

async fn an_unlisted_type_is_no_credentials_at_all(backend: Backend) {
    // By default only Bearer: `JWT …` is a header simplejwt ignores.
    let app = spawn_app(backend).await;
    let (access, _) = app.alice().await;
    assert_challenge(&get(&app, "/api/me/", &format!("JWT {access}")).await, NOT_PROVIDED, "Bearer realm=\"api\"");
    assert_eq!(get(&app, "/api/me/", &format!("Bearer {access}")).await.status, 200);

    // Only JWT: Bearer is ignored everywhere, and JWT works.
    let clerk = FakeClerk::start().await;
    let app = spawn_with_clerk(backend, &clerk, &[("AUTH_HEADER_TYPES", "JWT")]).await;
    let (access, _) = app.alice().await;
    let bearer = format!("Bearer {access}");
    for path in ["/api/token/revoke-all/", "/api/password/change/"] {
        let body = json!({"current_password": "correct horse", "new_password": "battery staple"});
        assert_challenge(&post(&app, path, &bearer, body).await, NOT_PROVIDED, "JWT realm=\"api\"");
    }
    assert_challenge(&get(&app, "/api/me/", &bearer).await, NOT_PROVIDED, "JWT realm=\"api\"");
    assert_eq!(get(&app, "/api/me/", &format!("JWT {access}")).await.status, 200);
    // The Clerk endpoint takes Clerk's token as Clerk's SDKs send it, `Bearer`, whatever scheme
    // tokensmith's own tokens use.
    let clerk_bearer = format!("Bearer {}", clerk.session_token("user_2jwt"));
    let exchange = post(&app, "/api/token/clerk/", &clerk_bearer, json!({})).await;
    assert_eq!(exchange.status, 200, "{}", exchange.text);
    let exchange = post(&app, "/api/token/clerk/", "Basic abc", json!({})).await;
    assert_eq!((exchange.status, exchange.json()), (400, json!({"token": ["This field is required."]})));
}

async fn every_401_names_the_first_type(backend: Backend) {
    let app = spawn_app_with(backend, &[("AUTH_HEADER_TYPES", "JWT,Bearer")]).await;
    let (access, _) = app.alice().await;
    let challenge = "JWT realm=\"api\"";
    let unauthenticated = read(app.client.get(app.url("/api/me/")).send().await.unwrap()).await;
    assert_challenge(&unauthenticated, NOT_PROVIDED, challenge);
    let forged = get(&app, "/api/me/", &format!("Bearer {access}x")).await;
    assert_eq!((forged.status, forged.header("www-authenticate")), (401, Some(challenge)));
    let login = app.post_json("/api/token/", json!({"username": "alice", "password": "wrong"})).await;
    assert_eq!((login.status, login.header("www-authenticate")), (401, Some(challenge)));
    let refresh = app.post_json("/api/token/refresh/", json!({"refresh": "not a token"})).await;
    assert_eq!((refresh.status, refresh.header("www-authenticate")), (401, Some(challenge)));
    // Only 401s challenge.
    let ok = get(&app, "/api/me/", &format!("Bearer {access}")).await;
    assert_eq!((ok.status, ok.header("www-authenticate")), (200, None));
}

db_test!(
    every_listed_type_authenticates_every_endpoint_that_reads_authorization,
    an_unlisted_type_is_no_credentials_at_all,
    every_401_names_the_first_type,
);
