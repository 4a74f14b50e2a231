//! `USERNAME_FIELD=email`: simplejwt's login with `{"email","password"}`, matched ignoring case,
//! with emails kept unique.

use serde_json::json;

use crate::{config::single_error_line, db_test, helpers::*};

/// The one line a refused command prints, without its `error: ` prefix.
fn refusal(out: &std::process::Output) -> String {
    single_error_line(out).trim_start_matches("error: ").to_owned()
}

const EMAIL_LOGIN: &[(&str, &str)] = &[("USERNAME_FIELD", "email")];

fn create(app: &TestApp, username: &str, email: &str) -> std::process::Output {
    app.cli_with_stdin(&["user", "create", username, "--email", email, "--password-stdin"], "correct horse")
}

db_test!(
    login_takes_an_email_ignoring_case,
    field_errors_name_email,
    emails_stay_unique,
    two_users_sharing_an_email_from_before_cannot_log_in_by_it,
    failures_are_throttled_ignoring_the_emails_case,
    the_served_document_describes_the_email_login,
    a_provider_user_with_the_same_email_does_not_lock_the_password_user_out,
    a_differently_folded_spelling_counts_against_the_same_user,
);

/// Users signed in through a provider have no password and keep whatever email the provider
/// gives: they cannot log in by email, so they never make a password user's email ambiguous.
async fn a_provider_user_with_the_same_email_does_not_lock_the_password_user_out(backend: Backend) {
    let app = spawn_app_with(backend, EMAIL_LOGIN).await;
    assert!(create(&app, "alice", "alice@example.com").status.success());
    app.db
        .execute(
            "INSERT INTO users (username, email, password_hash, is_active, created_at) \
             VALUES ('clerk_alice', 'Alice@example.com', NULL, TRUE, 0)",
        )
        .await;
    let reply = app.post_json("/api/token/", json!({"email": "alice@example.com", "password": "correct horse"})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(app.get_bearer("/api/me/", &reply.field("access")).await.json()["username"], "alice");
}

/// PostgreSQL folds some letters differently from Rust (`İ` lowers to `i` there): a spelling
/// the database matches to a user counts against that user's failures, so it buys no guesses.
async fn a_differently_folded_spelling_counts_against_the_same_user(backend: Backend) {
    let app = spawn_app_with(backend, &[("USERNAME_FIELD", "email"), ("LOGIN_FAILURE_LIMIT", "2")]).await;
    assert!(create(&app, "alice", "alice@example.com").status.success());
    for _ in 0..2 {
        let reply = app.post_json("/api/token/", json!({"email": "alice@example.com", "password": "wrong"})).await;
        assert_eq!(reply.status, 401);
    }
    for spelling in ["alİce@example.com", "ALİCE@EXAMPLE.COM", "Alice@Example.Com"] {
        let reply = app.post_json("/api/token/", json!({"email": spelling, "password": "correct horse"})).await;
        assert_ne!(reply.status, 200, "{spelling} got past the throttle: {}", reply.text);
    }
}

async fn login_takes_an_email_ignoring_case(backend: Backend) {
    let app = spawn_app_with(backend, EMAIL_LOGIN).await;
    assert!(create(&app, "alice", "Alice@Example.com").status.success());
    for email in ["Alice@Example.com", "alice@example.com", " ALICE@EXAMPLE.COM "] {
        let reply = app.post_json("/api/token/", json!({"email": email, "password": "correct horse"})).await;
        assert_eq!(reply.status, 200, "{email}: {}", reply.text);
        assert_eq!(app.get_bearer("/api/me/", &reply.field("access")).await.json()["username"], "alice");
    }
    let form = app.post_form("/api/token/", &[("email", "alice@example.com"), ("password", "correct horse")]).await;
    assert_eq!(form.status, 200, "{}", form.text);

    let wrong = app.post_json("/api/token/", json!({"email": "alice@example.com", "password": "wrong"})).await;
    assert_401(&wrong, r#"{"detail":"No active account found with the given credentials"}"#);
    let unknown = app.post_json("/api/token/", json!({"email": "bob@example.com", "password": "correct horse"})).await;
    assert_401(&unknown, r#"{"detail":"No active account found with the given credentials"}"#);
    // The username is not a login name any more.
    let by_name = app.post_json("/api/token/", json!({"email": "alice", "password": "correct horse"})).await;
    assert_eq!(by_name.status, 401);
}

async fn field_errors_name_email(backend: Backend) {
    let app = spawn_app_with(backend, EMAIL_LOGIN).await;
    let reply = app.post_json("/api/token/", json!({"username": "alice", "password": "x"})).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.text, r#"{"email":["This field is required."]}"#);
    let reply = app.post_json("/api/token/", json!({})).await;
    assert_eq!(reply.text, r#"{"email":["This field is required."],"password":["This field is required."]}"#);
    let reply = app.post_json("/api/token/", json!({"email": "  ", "password": "x"})).await;
    assert_eq!(reply.text, r#"{"email":["This field may not be blank."]}"#);
    let reply = app.post_json("/api/token/", json!({"email": "a@b.c".repeat(100), "password": "x"})).await;
    assert_eq!(reply.status, 401, "an overlong email names nobody: {}", reply.text);
}

async fn emails_stay_unique(backend: Backend) {
    let app = spawn_app_with(backend, EMAIL_LOGIN).await;
    assert!(create(&app, "alice", "alice@example.com").status.success());
    let line = refusal(&create(&app, "alice2", "ALICE@example.com"));
    assert!(line.starts_with("--email:") && line.contains("ALICE@example.com"), "{line}");
    // Users without an email (who cannot log in by one) are not in each other's way.
    assert!(app.cli(&["user", "create", "svc1"]).status.success());
    assert!(app.cli(&["user", "create", "svc2"]).status.success());

    // Two operators creating users with one email at once: one wins.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| create(&app, "carol", "carol@example.com"));
        let b = s.spawn(|| create(&app, "carol2", "Carol@example.com"));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!([a.status.success(), b.status.success()].iter().filter(|ok| **ok).count(), 1, "{a:?} {b:?}");
    let login = app.post_json("/api/token/", json!({"email": "carol@example.com", "password": "correct horse"})).await;
    assert_eq!(login.status, 200, "{}", login.text);
}

async fn two_users_sharing_an_email_from_before_cannot_log_in_by_it(backend: Backend) {
    let app = spawn_app_with(backend, EMAIL_LOGIN).await;
    // Made while logins were by username, when emails could repeat.
    let mut before = app.env.clone();
    before.remove("USERNAME_FIELD");
    for (username, email) in
        [("alice", "shared@example.com"), ("bob", "Shared@example.com"), ("carol", "c@example.com")]
    {
        let args = ["user", "create", username, "--email", email, "--password-stdin"];
        let out = run_cli(&before, app.db.dir(), &args, Some("correct horse"));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let reply = app.post_json("/api/token/", json!({"email": "shared@example.com", "password": "correct horse"})).await;
    assert_eq!(reply.status, 401, "an email two users share must not pick one of them: {}", reply.text);
    let reply = app.post_json("/api/token/", json!({"email": "c@example.com", "password": "correct horse"})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

async fn failures_are_throttled_ignoring_the_emails_case(backend: Backend) {
    let app = spawn_app_with(backend, &[("USERNAME_FIELD", "email"), ("LOGIN_FAILURE_LIMIT", "2")]).await;
    assert!(create(&app, "alice", "alice@example.com").status.success());
    for email in ["alice@example.com", "ALICE@example.com"] {
        let reply = app.post_json("/api/token/", json!({"email": email, "password": "wrong"})).await;
        assert_eq!(reply.status, 401);
    }
    let reply = app.post_json("/api/token/", json!({"email": "Alice@Example.COM", "password": "wrong"})).await;
    assert_eq!(reply.status, 429, "changing the case must not buy more guesses: {}", reply.text);
}

async fn the_served_document_describes_the_email_login(backend: Backend) {
    let app = spawn_app_with(backend, EMAIL_LOGIN).await;
    let document = app.get("/openapi.json").await.json();
    let body = &document["paths"]["/api/token/"]["post"]["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(body["$ref"], "#/components/schemas/EmailTokenObtainRequest");
    let schema = &document["components"]["schemas"]["EmailTokenObtainRequest"];
    assert_eq!(schema["required"], json!(["email", "password"]));
    let default = spawn_app(backend).await.get("/openapi.json").await.json();
    let body = &default["paths"]["/api/token/"]["post"]["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(body["$ref"], "#/components/schemas/TokenObtainRequest");
}
