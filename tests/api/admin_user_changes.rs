//! Changing users through the Admin API: PATCH changes only what was sent, deactivation and
//! deletion end the user's sessions, set-password replaces the password and every session.

use serde_json::json;

use crate::{admin_helpers::*, admin_users::assert_user_shape, db_test, helpers::*};

db_test!(
    admin_patch_changes_only_the_fields_sent,
    admin_patch_refuses_passwords_and_bad_fields,
    admin_deactivation_ends_sessions_and_reactivation_restores_login,
    admin_delete_removes_the_user_and_kills_its_tokens,
    admin_set_password_replaces_the_password_and_ends_sessions,
    admin_emails_stay_unique_when_they_name_users,
);

async fn admin_patch_changes_only_the_fields_sent(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = superuser(&app, "root").await;
    create_group(&app, &root.access, "editors").await;
    let body = json!({
        "username": "bob", "email": "bob@example.com", "first_name": "Bob", "last_name": "Builder",
        "groups": ["editors"], "claims": {"tier": "gold"}, "password": "scaffold and ladder 42",
    });
    let before = create(&app, &root.access, body).await;
    let url = user_url(before["id"].as_i64().unwrap());
    let reply = patch(&app, &url, &root.access, json!({"first_name": "Robert"})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let mut expected = before.clone();
    expected["first_name"] = json!("Robert");
    assert_eq!(reply.json(), expected);
    assert_eq!(get(&app, &url, &root.access).await.json(), expected);
    // Read-only and unknown fields are ignored; the rest apply.
    let sneaky = json!({"id": 999, "date_joined": "2000-01-01T00:00:00Z", "last_login": "2000-01-01T00:00:00Z", "colour": "red", "email": "rob@example.com"});
    let reply = patch(&app, &url, &root.access, sneaky).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    expected["email"] = json!("rob@example.com");
    assert_eq!(reply.json(), expected);
    assert_user_shape(&reply.json());
    // An empty PATCH changes nothing; the password was never touched.
    assert_eq!(patch(&app, &url, &root.access, json!({})).await.json(), expected);
    app.login("bob", "scaffold and ladder 42").await;
    // Without the trailing slash it is the same resource.
    let reply = patch(&app, url.trim_end_matches('/'), &root.access, json!({"last_name": "Mason"})).await;
    assert_eq!(reply.json()["last_name"], "Mason", "{}", reply.text);
}

async fn admin_patch_refuses_passwords_and_bad_fields(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = superuser(&app, "root").await;
    let bob = plain(&app, "bob").await;
    let url = user_url(bob.id);
    let before = get(&app, &url, &root.access).await.json();
    let cases = [
        (
            json!({"password": "a brand new phrase 1"}),
            json!({"password": ["Use the set-password endpoint to set a password."]}),
        ),
        (json!({"username": "root"}), json!({"username": ["A user with that username already exists."]})),
        (json!({"email": "bob-at-example"}), json!({"email": ["Enter a valid email address."]})),
        (json!({"is_active": "perhaps"}), json!({"is_active": ["Must be a valid boolean."]})),
        (json!({"groups": ["nosuch"]}), json!({"groups": ["Object with name=nosuch does not exist."]})),
        (json!({"claims": 5}), json!({"claims": ["Expected a dictionary of items but got type \"int\"."]})),
        // A string is read as JSON text, as a form sends it (DRF's JSONField).
        (json!({"claims": "text"}), json!({"claims": ["Value must be valid JSON."]})),
        (json!({"claims": "[1]"}), json!({"claims": ["Expected a dictionary of items but got type \"list\"."]})),
    ];
    for (body, errors) in cases {
        assert_json(&patch(&app, &url, &root.access, body).await, 400, errors);
    }
    // A refused PATCH changes nothing, not even its valid fields.
    let mixed = patch(&app, &url, &root.access, json!({"first_name": "Mixed", "email": "nope"})).await;
    assert_eq!(mixed.status, 400, "{}", mixed.text);
    assert_eq!(get(&app, &url, &root.access).await.json(), before);
    app.login("bob", PASSWORD).await;
    // Renaming to one's own name is no clash.
    assert_eq!(patch(&app, &url, &root.access, json!({"username": "bob"})).await.status, 200);
}

async fn admin_deactivation_ends_sessions_and_reactivation_restores_login(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = superuser(&app, "root").await;
    let bob = plain(&app, "bob").await;
    let url = user_url(bob.id);
    let reply = patch(&app, &url, &root.access, json!({"is_active": false})).await;
    assert_eq!(reply.json()["is_active"], false, "{}", reply.text);
    assert_eq!(refresh(&app, &bob.refresh).await.status, 401);
    assert_eq!(try_login(&app, "bob", PASSWORD).await.text, NO_ACTIVE_ACCOUNT);
    assert_401(&app.get_bearer("/api/me/", &bob.access).await, USER_INACTIVE);
    let sessions = get(&app, &format!("{url}sessions/"), &root.access).await.json();
    assert_eq!(sessions["count"], 0, "{sessions}");

    let reply = patch(&app, &url, &root.access, json!({"is_active": true})).await;
    assert_eq!(reply.json()["is_active"], true, "{}", reply.text);
    let (access, fresh) = app.login("bob", PASSWORD).await;
    assert_eq!(app.get_bearer("/api/me/", &access).await.status, 200);
    assert_eq!(refresh(&app, &fresh).await.status, 200);
    // The sessions ended by the deactivation stay ended.
    assert_eq!(refresh(&app, &bob.refresh).await.status, 401);
}

async fn admin_delete_removes_the_user_and_kills_its_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = superuser(&app, "root").await;
    let bob = plain(&app, "bob").await;
    let url = user_url(bob.id);
    let reply = delete(&app, &url, &root.access).await;
    assert_reply(&reply, 204, "");
    assert_reply(&get(&app, &url, &root.access).await, 404, NOT_FOUND);
    assert_reply(&delete(&app, &url, &root.access).await, 404, NOT_FOUND);
    assert_401(&refresh(&app, &bob.refresh).await, GONE_ACCOUNT);
    assert_401(&app.get_bearer("/api/me/", &bob.access).await, USER_NOT_FOUND);
    assert_eq!(try_login(&app, "bob", PASSWORD).await.text, NO_ACTIVE_ACCOUNT);
    let list = get(&app, USERS, &root.access).await.json();
    assert_eq!(list["count"], 1, "{list}");
    assert_eq!(list["results"][0]["username"], "root");
    assert!(app.users().iter().all(|u| u["username"] != "bob"));
    // The name is free again, for a new user with a new id.
    let again = create(&app, &root.access, json!({"username": "bob"})).await;
    assert_ne!(again["id"], json!(bob.id));
}

async fn admin_set_password_replaces_the_password_and_ends_sessions(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = superuser(&app, "root").await;
    let bob = plain(&app, "bob").await;
    let set_url = format!("{}set-password/", user_url(bob.id));
    let reply = post(&app, &set_url, &root.access, json!({"password": "fresh start 2468"})).await;
    assert_reply(&reply, 200, "{}");
    assert_eq!(refresh(&app, &bob.refresh).await.status, 401);
    assert_eq!(try_login(&app, "bob", PASSWORD).await.text, NO_ACTIVE_ACCOUNT);
    let (_, fresh) = app.login("bob", "fresh start 2468").await;

    let too_short = "This password is too short. It must contain at least 8 characters.";
    let weak = [
        ("password", json!(["This password is too common."])),
        ("12345", json!([too_short, "This password is too common.", "This password is entirely numeric."])),
        ("bob@example.com1", json!(["The password is too similar to the email address."])),
    ];
    for (password, messages) in weak {
        let reply = post(&app, &set_url, &root.access, json!({"password": password})).await;
        assert_json(&reply, 400, json!({"password": messages}));
    }
    let missing = post(&app, &set_url, &root.access, json!({})).await;
    assert_json(&missing, 400, json!({"password": ["This field is required."]}));
    // Refusals changed nothing: the password and the session are as they were.
    app.login("bob", "fresh start 2468").await;
    assert_eq!(refresh(&app, &fresh).await.status, 200);
}

async fn admin_emails_stay_unique_when_they_name_users(backend: Backend) {
    // With USERNAME_FIELD=email an email is a login name: two users may not share one, by create
    // or by edit, in any case, and two edits racing to take one give it to one user.
    let app = spawn_app_with(backend, &[("USERNAME_FIELD", "email")]).await;
    let out = app.cli_with_stdin(
        &["user", "create", "root", "--email", "root@example.com", "--staff", "--superuser", "--password-stdin"],
        PASSWORD,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let login = app.post_json("/api/token/", json!({"email": "root@example.com", "password": PASSWORD})).await;
    let root = login.field("access");
    let taken = json!({"email": ["A user with that email already exists."]});
    let bob = create(&app, &root, json!({"username": "bob", "email": "bob@example.com"})).await;
    let carol = create(&app, &root, json!({"username": "carol", "email": "carol@example.com"})).await;
    let again = post(&app, USERS, &root, json!({"username": "bob2", "email": "BOB@example.com"})).await;
    assert_json(&again, 400, taken.clone());
    let (bob_url, carol_url) = (user_url(bob["id"].as_i64().unwrap()), user_url(carol["id"].as_i64().unwrap()));
    assert_json(&patch(&app, &carol_url, &root, json!({"email": "Bob@Example.com"})).await, 400, taken.clone());
    let shared = json!({"email": "shared@example.com"});
    let (first, second) =
        tokio::join!(patch(&app, &bob_url, &root, shared.clone()), patch(&app, &carol_url, &root, shared));
    let mut statuses = [first.status, second.status];
    statuses.sort();
    assert_eq!(statuses, [200, 400], "{} / {}", first.text, second.text);
}
