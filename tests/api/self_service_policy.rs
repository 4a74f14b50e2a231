//! The password policy wherever a person sets a password, not just the admin API: `user create`
//! and `user set-password` refuse a weak one in one line, `/api/password/change/` answers
//! `{"new_password": [Django's messages]}` and keeps the old password, and a weak password set
//! before the policy (an imported hash) still logs in: the policy applies when one is set.

use serde_json::json;

use crate::{config::single_error_line, db_test, helpers::*};

db_test!(
    the_cli_refuses_a_weak_password_in_one_line,
    a_password_change_to_a_weak_one_names_new_password,
    a_weak_password_set_before_the_policy_still_logs_in,
);

/// The argon2id hash (tokensmith's parameters) of "pw", made with Python's argon2-cffi: a
/// password set before the policy, which it would refuse now.
const PW_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$VU6efIDoABXzxJP0LznN+Q$n9ALDvR208u7tAc4P/DJHYhBjMfW4inYDUYdlRsNKmE";

const SHORT_COMMON_NUMERIC: &str = "This password is too short. It must contain at least 8 characters. \
                                    This password is too common. This password is entirely numeric.";

async fn the_cli_refuses_a_weak_password_in_one_line(backend: Backend) {
    let app = spawn_app(backend).await;
    let out = app.cli_with_stdin(&["user", "create", "weakling", "--password-stdin"], "12345\n");
    assert_eq!(single_error_line(&out), format!("error: --password-stdin: {SHORT_COMMON_NUMERIC}"));
    assert!(app.users().is_empty(), "no user is created with a refused password");

    app.create_user("alice", "correct horse");
    let out = app.cli_with_stdin(&["user", "set-password", "alice", "--password-stdin"], "alice1234");
    assert_eq!(single_error_line(&out), "error: --password-stdin: The password is too similar to the username.");
    app.login("alice", "correct horse").await;
    assert_eq!(login(&app, "alice", "alice1234").await.status, 401);
}

async fn login(app: &TestApp, username: &str, password: &str) -> Reply {
    app.post_json("/api/token/", json!({"username": username, "password": password})).await
}

async fn a_password_change_to_a_weak_one_names_new_password(backend: Backend) {
    let app = spawn_app(backend).await;
    let (access, _) = app.alice().await;
    let change = |new: &'static str| {
        app.post_bearer(
            "/api/password/change/",
            &access,
            json!({"current_password": "correct horse", "new_password": new}),
        )
    };
    let weak = change("12345").await;
    assert_eq!(weak.status, 400, "{}", weak.text);
    assert_eq!(
        weak.json(),
        json!({"new_password": [
            "This password is too short. It must contain at least 8 characters.",
            "This password is too common.",
            "This password is entirely numeric.",
        ]})
    );
    // Against the user's own record: its email (the CLI helper's) too.
    let like_email = change("u@example.com").await;
    assert_eq!(like_email.json(), json!({"new_password": ["The password is too similar to the email address."]}));
    app.login("alice", "correct horse").await;

    assert_eq!(change("quiet pond 73").await.status, 200);
    app.login("alice", "quiet pond 73").await;
}

async fn a_weak_password_set_before_the_policy_still_logs_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = tokensmith::store::NewUser {
        username: "veteran",
        email: "",
        first_name: "",
        last_name: "",
        password_hash: Some(PW_HASH),
        is_staff: false,
        is_superuser: false,
        disabled_locally: false,
        custom_claims: "{}",
        group_ids: &[],
        created_at: 1_700_000_000,
    };
    let created = app.store.create_user(&user, false).await.unwrap();
    assert!(matches!(created, tokensmith::store::UserInsert::Created(_)));

    let (access, _) = app.login("veteran", "pw").await;
    // Setting it again is setting a password: refused now.
    let again = app
        .post_bearer("/api/password/change/", &access, json!({"current_password": "pw", "new_password": "pw"}))
        .await;
    assert_eq!(again.status, 400, "{}", again.text);
    assert!(again.json()["new_password"].is_array(), "{}", again.text);
    app.login("veteran", "pw").await;
}
