//! Tokens a superuser mints for another user (`POST /api/admin/users/{id}/tokens/`: a session
//! of that user, in the body, audited), and what becomes of a user's tokens once an admin deletes
//! the user.

use serde_json::json;

use crate::{admin_support::*, db_test, helpers::*};

db_test!(
    a_superuser_mints_a_working_session_for_another_user,
    minted_tokens_stay_in_the_body_with_the_refresh_cookie,
    only_superusers_mint_and_only_for_active_users,
    a_deleted_users_tokens_are_refused,
);

fn tokens_path(id: i64) -> String {
    format!("/api/admin/users/{id}/tokens/")
}

async fn mint(app: &TestApp, admin: &str, id: i64) -> Reply {
    bare(app, reqwest::Method::POST, &tokens_path(id), admin).await
}

async fn a_superuser_mints_a_working_session_for_another_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = superuser(&app).await;
    user_with(&app, "bob", &[]).await;
    let bob = user_id(&app, "bob");
    let before = session_ids(&app, &admin, bob).await;

    let minted = mint(&app, &admin, bob).await;
    assert_eq!(minted.status, 200, "{}", minted.text);
    let mut fields: Vec<String> = minted.json().as_object().unwrap().keys().cloned().collect();
    fields.sort();
    assert_eq!(fields, ["access", "refresh"], "{}", minted.text);

    // The access token is bob's, not the admin's.
    let me = app.get_bearer("/api/me/", &minted.field("access")).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!((&me.json()["id"], &me.json()["username"]), (&json!(bob), &json!("bob")), "{}", me.text);
    // A session of its own, listed as the admin's doing; its refresh token refreshes.
    let session = new_session(&app, &admin, bob, &before).await;
    let listed = sessions(&app, &admin, bob).await;
    let entry = listed.iter().find(|s| s["id"] == session).unwrap();
    assert_eq!(entry["provider"], "admin", "{entry}");
    let next = rotated(&app, &minted.field("refresh")).await;
    assert_eq!(session_ids(&app, &admin, bob).await.len(), before.len() + 1, "rotation made no new session");
    rotated(&app, &next).await;

    // The event names both: root did it, to bob.
    let events = audit_events(&app);
    let issued = events
        .iter()
        .rfind(|e| e["event"] == "admin_tokens_issued")
        .unwrap_or_else(|| panic!("no admin_tokens_issued in {events:?}"));
    assert_eq!((&issued["actor_username"], &issued["username"]), (&json!("root"), &json!("bob")), "{issued}");
    assert_eq!((&issued["actor_id"], &issued["user_id"]), (&json!(user_id(&app, "root")), &json!(bob)), "{issued}");
    let text = serde_json::to_string(&events).unwrap();
    assert!(!text.contains(&minted.field("refresh")) && !text.contains(&minted.field("access")), "a token audited");

    // Without the trailing slash too.
    let again = bare(&app, reqwest::Method::POST, &format!("/api/admin/users/{bob}/tokens"), &admin).await;
    assert_eq!(again.status, 200, "{}", again.text);
}

async fn minted_tokens_stay_in_the_body_with_the_refresh_cookie(backend: Backend) {
    let settings = [("REFRESH_TOKEN_COOKIE", "true"), ("CORS_ALLOWED_ORIGINS", "http://localhost:5173")];
    let app = spawn_app_with(backend, &settings).await;
    user_with(&app, "root", &["--staff", "--superuser"]).await;
    // With the cookie on, a login's refresh token is in the cookie: the admin's access is in the body.
    let admin = app.post_json("/api/token/", json!({"username": "root", "password": PASSWORD})).await.field("access");
    user_with(&app, "bob", &[]).await;

    let minted = mint(&app, &admin, user_id(&app, "bob")).await;
    assert_eq!(minted.status, 200, "{}", minted.text);
    assert_eq!(minted.header("set-cookie"), None, "a minted session is for bob, not for the admin's browser");
    assert_eq!(app.get_bearer("/api/me/", &minted.field("access")).await.json()["username"], "bob");
    assert!(!minted.field("refresh").is_empty());
}

async fn only_superusers_mint_and_only_for_active_users(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = superuser(&app).await;
    let (staff, _) = user_with(&app, "steve", &["--staff"]).await;
    let (plain, _) = user_with(&app, "bob", &[]).await;
    let bob = user_id(&app, "bob");
    let before = session_ids(&app, &admin, bob).await;

    for (caller, token) in [("staff", &staff), ("non-staff", &plain)] {
        let refused = mint(&app, token, bob).await;
        assert_eq!((refused.status, refused.text.as_str()), (403, FORBIDDEN), "{caller}");
    }
    let anonymous = read(app.client.post(app.url(&tokens_path(bob))).send().await.unwrap()).await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.text);
    assert_eq!(session_ids(&app, &admin, bob).await, before, "a refused mint made a session");

    let out = app.cli(&["user", "deactivate", "bob"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let inactive = mint(&app, &admin, bob).await;
    assert_eq!((inactive.status, inactive.text.as_str()), (400, r#"{"non_field_errors":["User is inactive."]}"#));
    assert!(session_ids(&app, &admin, bob).await.is_empty());
    let missing = mint(&app, &admin, 999_999).await;
    assert_eq!((missing.status, missing.text.as_str()), (404, NOT_FOUND));
}

async fn a_deleted_users_tokens_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = superuser(&app).await;
    let (access, refresh_token) = user_with(&app, "bob", &[]).await;
    let reply = app.post_json("/api/token/sliding/", json!({"username": "bob", "password": PASSWORD})).await;
    let sliding = reply.field("token");
    let bob = user_id(&app, "bob");

    let deleted = delete(&app, &format!("/api/admin/users/{bob}/"), &admin).await;
    assert_eq!((deleted.status, deleted.text.as_str()), (204, ""), "{deleted:?}");
    assert_401(&refresh(&app, &refresh_token).await, NO_ACCOUNT_FOR_TOKEN);
    assert_401(&app.get_bearer("/api/me/", &access).await, USER_NOT_FOUND);
    let slid = app.get_bearer("/api/me/", &sliding).await;
    assert_eq!(slid.status, 401, "a deleted user's sliding token authenticated: {}", slid.text);
    let slid = app.post_json("/api/token/sliding/refresh/", json!({"token": sliding})).await;
    assert_eq!(slid.status, 401, "a deleted user's sliding token refreshed: {}", slid.text);
    // The admin's own session is not the deleted user's.
    assert_eq!(app.get_bearer("/api/admin/users/", &admin).await.status, 200);
}
