//! Which of a Clerk session token and a `user.*` webhook sets a user's roles: the newer one, by
//! the token's `iat` and the webhook's `updated_at`. A session token lives about a minute, so one
//! minted before the operator removed a role may still be posted after the webhook took it away.

use serde_json::{Value, json};

use crate::{
    clerk_roles::{
        app_with_roles, exchange, flags_after_exchange, flags_of, listed, role_changes, token_with, user_with_metadata,
    },
    clerk_webhooks::deliver,
    db_test,
    fake_clerk::FakeClerk,
    helpers::{Backend, TestApp, claims, now},
};

db_test!(
    a_token_minted_before_the_webhook_that_removed_the_role_does_not_restore_it,
    a_token_minted_after_the_webhook_applies_its_roles,
    a_webhook_older_than_an_applied_token_brings_its_profile_but_not_its_roles,
    racing_tokens_and_webhooks_end_as_the_newer_one_says,
);

fn user_updated(sub: &str, updated_at_ms: i64, public_metadata: Value) -> Value {
    json!({"type": "user.updated", "data": user_with_metadata(sub, sub, updated_at_ms, public_metadata)})
}

/// `(is_staff, is_superuser)` of the access token a refresh of `refresh`'s session gives, as
/// `/api/me/` shows them and as the token itself carries them (`TOKEN_CLAIMS`).
async fn flags_after_refresh(app: &TestApp, refresh: &str) -> (bool, bool) {
    let reply = app.post_json("/api/token/refresh/", json!({ "refresh": refresh })).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let access = reply.field("access");
    let flags = flags_of(&app.get_bearer("/api/me/", &access).await.json());
    assert_eq!(flags_of(&claims(&access)), flags, "the access token carries the user's flags");
    flags
}

/// The operator removes `admin` from a user's `public_metadata`; Clerk's `user.updated` takes
/// staff away; the user then posts a session token minted before that. Neither the user record
/// nor any access token of the session it starts says staff.
async fn a_token_minted_before_the_webhook_that_removed_the_role_does_not_restore_it(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let app = app_with_roles(backend, &clerk).await;
    let (sub, t) = ("user_demoted", now() - 30);
    let admin = Some(json!({"role": "admin"}));
    assert_eq!(flags_after_exchange(&app, &token_with(&clerk, sub, t, admin.clone())).await, (true, false));
    let held = token_with(&clerk, sub, t + 10, admin);

    assert_eq!(deliver(&app, "msg_demote", user_updated(sub, (t + 20) * 1000, json!({}))).await.status, 200);
    assert_eq!(flags_of(&listed(&app, sub)), (false, false), "the webhook took staff away");

    let reply = exchange(&app, &held).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let access = reply.field("access");
    assert_eq!(flags_of(&app.get_bearer("/api/me/", &access).await.json()), (false, false), "staff came back");
    assert_eq!(claims(&access)["is_staff"], false, "the access token says staff");
    assert_eq!(flags_after_refresh(&app, &reply.field("refresh")).await, (false, false));
    assert_eq!(flags_of(&listed(&app, sub)), (false, false));
    assert_eq!(role_changes(&app).len(), 2, "only the grant and the webhook's removal are changes");
}

/// A token minted after the webhook's update carries the roles as they are now. One minted in
/// the update's own second may have been minted before it (`iat` is in seconds, `updated_at` in
/// milliseconds), so the webhook's roles stand.
async fn a_token_minted_after_the_webhook_applies_its_roles(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let app = app_with_roles(backend, &clerk).await;
    let (sub, t) = ("user_promoted", now() - 30);
    let created = json!({"type": "user.created", "data": user_with_metadata(sub, sub, t * 1000, json!({}))});
    assert_eq!(deliver(&app, "msg_created", created).await.status, 200);
    assert_eq!(flags_of(&listed(&app, sub)), (false, false));

    let admin = || Some(json!({"role": "admin"}));
    let same_second = token_with(&clerk, sub, t, admin());
    assert_eq!(flags_after_exchange(&app, &same_second).await, (false, false), "a token as old as the webhook won");
    assert_eq!(deliver(&app, "msg_updated", user_updated(sub, (t + 1) * 1000 + 400, json!({}))).await.status, 200);
    let same_second = token_with(&clerk, sub, t + 1, admin());
    assert_eq!(flags_after_exchange(&app, &same_second).await, (false, false), "a token of the webhook's second won");
    assert_eq!(flags_after_exchange(&app, &token_with(&clerk, sub, t + 2, admin())).await, (true, false));
    let changes = role_changes(&app);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0]["detail"], "clerk: is_staff true, is_superuser false (were false, false)");
}

/// Svix retries a failed delivery for hours: a `user.updated` older than a token already
/// exchanged still brings the user's email and names, but not roles the token superseded. A
/// newer one brings both.
async fn a_webhook_older_than_an_applied_token_brings_its_profile_but_not_its_roles(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let app = app_with_roles(backend, &clerk).await;
    let (sub, t) = ("user_late", now() - 30);
    assert_eq!(
        flags_after_exchange(&app, &token_with(&clerk, sub, t + 10, Some(json!({"role": "owner"})))).await,
        (false, true)
    );

    assert_eq!(deliver(&app, "msg_late", user_updated(sub, t * 1000, json!({}))).await.status, 200);
    let user = listed(&app, sub);
    assert_eq!(flags_of(&user), (false, true), "an update older than the token took superuser away");
    assert_eq!(user["email"], "user_late@example.com", "the update's profile was dropped");

    assert_eq!(deliver(&app, "msg_newer", user_updated(sub, (t + 20) * 1000, json!({}))).await.status, 200);
    assert_eq!(flags_of(&listed(&app, sub)), (false, false));
}

/// Each user gets a token exchanged and a `user.updated` delivered at the same time: for some the
/// token is the older, for others the webhook. Whichever lands last, the newer one decides, in
/// the record and in the session the exchange started.
async fn racing_tokens_and_webhooks_end_as_the_newer_one_says(backend: Backend) {
    const USERS: i64 = 8;
    let clerk = FakeClerk::start().await;
    let app = app_with_roles(backend, &clerk).await;
    let t = now() - 40;
    let admin = || Some(json!({"role": "admin"}));
    // Everyone starts as staff; odd users' webhooks are the newer (they take staff away), even
    // users' tokens are (they keep it).
    let users: Vec<(String, bool)> = (0..USERS).map(|i| (format!("user_race{i}"), i % 2 == 0)).collect();
    for (sub, _) in &users {
        assert_eq!(flags_after_exchange(&app, &token_with(&clerk, sub, t, admin())).await, (true, false));
    }
    let races = users.iter().map(|(sub, token_is_newer)| {
        let (token_at, webhook_at) = if *token_is_newer { (t + 20, t + 10) } else { (t + 10, t + 20) };
        let token = token_with(&clerk, sub, token_at, admin());
        let (update, delivery) = (user_updated(sub, webhook_at * 1000, json!({})), format!("msg_{sub}"));
        let app = &app;
        async move {
            let (exchanged, delivered) = tokio::join!(exchange(app, &token), deliver(app, &delivery, update));
            assert_eq!((exchanged.status, delivered.status), (200, 200), "{} {}", exchanged.text, delivered.text);
            exchanged.field("refresh")
        }
    });
    let sessions = futures::future::join_all(races).await;
    for ((sub, token_is_newer), refresh) in users.iter().zip(sessions) {
        let want = (*token_is_newer, false);
        assert_eq!(flags_after_refresh(&app, &refresh).await, want, "{sub}: token newer: {token_is_newer}");
    }
}
