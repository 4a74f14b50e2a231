//! Self-service registration, `POST /api/register/`: off by default (404); when on, a new user
//! who logs in at once, never staff, audited with the client's address; taken usernames and weak
//! passwords refused as DRF and Django word it; at most `REGISTRATION_LIMIT` registrations an hour
//! from one address even when they all arrive at once, while other addresses (behind a trusted
//! proxy) still register; and under `USERNAME_FIELD=email`, the email required and unique.

use serde_json::{Value, json};

use crate::{db_test, helpers::*};

db_test!(
    registration_is_off_unless_allowed,
    a_registered_user_logs_in_and_is_not_staff,
    taken_usernames_weak_passwords_and_bad_fields_are_refused,
    a_burst_gets_exactly_the_limit_and_other_addresses_still_register,
    with_username_field_email_the_email_is_required_and_unique,
);

const REGISTER: &str = "/api/register/";
const TAKEN: &str = "A user with that username already exists.";

/// A registration, optionally claiming a client address in `X-Forwarded-For`.
async fn register(app: &Http, body: Value, forwarded_for: Option<&str>) -> Reply {
    let mut request = app.client.post(app.url(REGISTER)).json(&body);
    if let Some(addr) = forwarded_for {
        request = request.header("x-forwarded-for", addr);
    }
    read(request.send().await.unwrap()).await
}

async fn open(backend: Backend, more: &[(&str, &str)]) -> TestApp {
    let settings = [&[("ALLOW_REGISTRATION", "true")], more].concat();
    spawn_app_with(backend, &settings).await
}

/// A 429 as DRF sends it, with a Retry-After within the hour.
fn assert_throttled(reply: &Reply) {
    assert_eq!(reply.status, 429, "{}", reply.text);
    let wait: u64 = reply.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=3600).contains(&wait), "Retry-After {wait}");
    let unit = if wait == 1 { "second" } else { "seconds" };
    assert_eq!(reply.json(), json!({"detail": format!("Request was throttled. Expected available in {wait} {unit}.")}));
}

async fn registration_is_off_unless_allowed(backend: Backend) {
    let app = spawn_app(backend).await;
    let reply = register(&app, json!({"username": "newbie", "password": "quiet pond 73"}), None).await;
    assert_eq!(reply.status, 404, "{}", reply.text);
    assert_eq!(reply.json(), json!({"detail": "Not found."}));
    // Off is off whatever the body: an empty one is not a field error (a client probing for the
    // feature with `{}` learns that it is off).
    let empty = register(&app, json!({}), None).await;
    assert_eq!((empty.status, empty.json()), (404, json!({"detail": "Not found."})));
    assert!(app.users().is_empty());
}

async fn a_registered_user_logs_in_and_is_not_staff(backend: Backend) {
    let app = open(backend, &[]).await;
    let body = json!({"username": "newbie", "password": "quiet pond 73", "email": "newbie@example.com"});
    let reply = register(&app, body, None).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let created = reply.json();
    assert_eq!(created, json!({"id": created["id"], "username": "newbie", "email": "newbie@example.com"}));
    assert!(created["id"].is_i64());

    let (access, _) = app.login("newbie", "quiet pond 73").await;
    let me = app.get_bearer("/api/me/", &access).await.json();
    assert_eq!(
        (me["id"].clone(), me["is_staff"].clone(), me["is_superuser"].clone()),
        (created["id"].clone(), json!(false), json!(false))
    );

    // Staff flags in the body are not fields of this endpoint: ignored.
    let sneaky = json!({"username": "sneaky", "password": "quiet pond 74", "is_staff": true, "is_superuser": true});
    assert_eq!(register(&app, sneaky, None).await.status, 201);
    let users = app.users();
    let sneaky = users.iter().find(|u| u["username"] == "sneaky").unwrap();
    assert_eq!((&sneaky["is_staff"], &sneaky["is_superuser"]), (&json!(false), &json!(false)));

    let out = app.cli(&["audit", "tail", "-n", "10", "--json"]);
    let created_events: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["event"] == "user_created")
        .collect();
    assert_eq!(created_events.len(), 2, "{created_events:?}");
    assert!(created_events.iter().all(|e| e["client_addr"] == "127.0.0.1"), "{created_events:?}");
}

async fn taken_usernames_weak_passwords_and_bad_fields_are_refused(backend: Backend) {
    let app = open(backend, &[]).await;
    app.create_user("alice", "correct horse");
    let taken = register(&app, json!({"username": "alice", "password": "quiet pond 73"}), None).await;
    assert_eq!((taken.status, taken.json()), (400, json!({"username": [TAKEN]})));

    // Django's messages, in Django's order (the similarity first).
    let weak = register(&app, json!({"username": "bob12345", "password": "12345"}), None).await;
    let messages = json!({"password": [
        "The password is too similar to the username.",
        "This password is too short. It must contain at least 8 characters.",
        "This password is too common.",
        "This password is entirely numeric.",
    ]});
    assert_eq!((weak.status, weak.json()), (400, messages));
    let similar = register(&app, json!({"username": "robertsmith", "password": "robertsmith1"}), None).await;
    assert_eq!(
        (similar.status, similar.json()),
        (400, json!({"password": ["The password is too similar to the username."]}))
    );

    let missing = register(&app, json!({"username": "", "email": "not-an-email"}), None).await;
    assert_eq!(
        (missing.status, missing.json()),
        (400, json!({"username": ["This field may not be blank."], "password": ["This field is required."]}))
    );
    let bad_email =
        register(&app, json!({"username": "carol", "password": "quiet pond 73", "email": "nope"}), None).await;
    assert_eq!((bad_email.status, bad_email.json()), (400, json!({"email": ["Enter a valid email address."]})));
    let bad_name = register(&app, json!({"username": "carol smith", "password": "quiet pond 73"}), None).await;
    assert_eq!(bad_name.status, 400, "{}", bad_name.text);
    assert!(bad_name.json()["username"].is_array(), "{}", bad_name.text);

    let names: Vec<Value> = app.users().iter().map(|u| u["username"].clone()).collect();
    assert_eq!(names, vec![json!("alice")]);
}

async fn a_burst_gets_exactly_the_limit_and_other_addresses_still_register(backend: Backend) {
    let app = open(backend, &[("REGISTRATION_LIMIT", "4"), ("TRUSTED_PROXIES", "127.0.0.1/32")]).await;
    // Refusals before the limit is reached do not use it up.
    app.create_user("alice", "correct horse");
    let from = Some("203.0.113.7");
    assert_eq!(register(&app, json!({"username": "alice", "password": "quiet pond 73"}), from).await.status, 400);
    assert_eq!(register(&app, json!({"username": "weak", "password": "12345"}), from).await.status, 400);

    let burst =
        (0..9).map(|i| register(&app, json!({"username": format!("burst{i}"), "password": "quiet pond 73"}), from));
    let replies = futures::future::join_all(burst).await;
    let created = replies.iter().filter(|r| r.status == 201).count();
    assert_eq!(created, 4, "{:?}", replies.iter().map(|r| (r.status, &r.text)).collect::<Vec<_>>());
    for reply in replies.iter().filter(|r| r.status != 201) {
        assert_throttled(reply);
    }
    assert_eq!(app.users().len(), 1 + 4);
    // Still throttled afterwards, even with a different name.
    assert_throttled(&register(&app, json!({"username": "later", "password": "quiet pond 73"}), from).await);

    let elsewhere =
        register(&app, json!({"username": "neighbour", "password": "quiet pond 73"}), Some("203.0.113.8")).await;
    assert_eq!(elsewhere.status, 201, "{}", elsewhere.text);
    app.login("neighbour", "quiet pond 73").await;
}

async fn with_username_field_email_the_email_is_required_and_unique(backend: Backend) {
    let app = open(backend, &[("USERNAME_FIELD", "email")]).await;
    let missing = register(&app, json!({"username": "ann", "password": "quiet pond 73"}), None).await;
    assert_eq!((missing.status, missing.json()), (400, json!({"email": ["This field is required."]})));

    let body = json!({"username": "ann", "password": "quiet pond 73", "email": "ann@example.com"});
    assert_eq!(register(&app, body, None).await.status, 201);
    let reply = app.post_json("/api/token/", json!({"email": "ann@example.com", "password": "quiet pond 73"})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);

    let twin = json!({"username": "ann2", "password": "quiet pond 73", "email": "ann@example.com"});
    let refused = register(&app, twin, None).await;
    assert_eq!((refused.status, refused.json()), (400, json!({"email": ["A user with that email already exists."]})));
    assert_eq!(app.users().len(), 1);
}
