//! Creating users through the Admin API: what comes back, what can log in afterwards, and the
//! field errors (DRF's words, every bad field at once) when the request is wrong.

use serde_json::{Value, json};

use crate::{admin_helpers::*, db_test, helpers::*};

db_test!(
    admin_creates_a_user_who_logs_in_with_the_password_given,
    admin_creates_a_user_without_a_password_who_cannot_log_in,
    admin_create_applies_the_password_policy,
    admin_create_reports_every_bad_field_at_once,
    admin_create_refuses_each_bad_field_in_drf_words,
    admin_create_refuses_malformed_emails,
    admin_create_reads_booleans_and_forms_as_drf_does,
    admin_forms_set_groups_as_drf_reads_them,
    admin_get_answers_404_for_unknown_ids,
);

const USER_KEYS: [&str; 12] = [
    "claims",
    "date_joined",
    "email",
    "first_name",
    "groups",
    "id",
    "is_active",
    "is_staff",
    "is_superuser",
    "last_login",
    "last_name",
    "username",
];

/// Asserts `user` has exactly the user fields, its times RFC 3339 UTC with seconds
/// (`2026-12-01T19:34:09Z`).
#[track_caller]
pub fn assert_user_shape(user: &Value) {
    let mut keys: Vec<&str> = user.as_object().expect("a JSON object").keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, USER_KEYS, "{user}");
    assert_rfc3339(&user["date_joined"]);
    if !user["last_login"].is_null() {
        assert_rfc3339(&user["last_login"]);
    }
}

#[track_caller]
fn assert_rfc3339(at: &Value) {
    let text = at.as_str().unwrap_or_else(|| panic!("not a string: {at}"));
    let shape: String = text.chars().map(|c| if c.is_ascii_digit() { '9' } else { c }).collect();
    assert_eq!(shape, "9999-99-99T99:99:99Z", "{text}");
}

async fn admin_creates_a_user_who_logs_in_with_the_password_given(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = superuser(&app, "root").await;
    let body = json!({
        "username": "bob", "email": "bob@example.com", "first_name": "Bob", "last_name": "Builder",
        "password": "scaffold and ladder 42", "claims": {"tier": "gold"},
    });
    let reply = post(&app, USERS, &root.access, body).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let bob = reply.json();
    assert_user_shape(&bob);
    assert!(bob["id"].as_i64().is_some_and(|id| id != root.id), "{bob}");
    let expected = json!({
        "id": bob["id"], "username": "bob", "email": "bob@example.com", "first_name": "Bob",
        "last_name": "Builder", "is_active": true, "is_staff": false, "is_superuser": false,
        "date_joined": bob["date_joined"], "last_login": null, "groups": [], "claims": {"tier": "gold"},
    });
    assert_eq!(bob, expected);
    assert!(!reply.text.contains("scaffold") && !reply.text.contains('$'), "no password or hash: {}", reply.text);
    let (access, _) = app.login("bob", "scaffold and ladder 42").await;
    assert_eq!(claims(&access)["user_id"], bob["id"].as_i64().unwrap().to_string());
    // The login is on the record now; the rest is as created.
    let fetched = get(&app, &user_url(bob["id"].as_i64().unwrap()), &root.access).await.json();
    assert_user_shape(&fetched);
    assert!(fetched["last_login"].is_string(), "{fetched}");
}

async fn admin_creates_a_user_without_a_password_who_cannot_log_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = superuser(&app, "root").await;
    let carol = create(&app, &root.access, json!({"username": "carol"})).await;
    assert_eq!(
        (carol["email"].clone(), carol["is_active"].clone(), carol["claims"].clone()),
        (json!(""), json!(true), json!({}))
    );
    let dave = create(&app, &root.access, json!({"username": "dave", "password": null})).await;
    assert_eq!(dave["username"], "dave");
    for name in ["carol", "dave"] {
        for password in ["!", "carol", "dave", PASSWORD] {
            assert_eq!(try_login(&app, name, password).await.text, NO_ACTIVE_ACCOUNT, "{name}/{password:?}");
        }
    }
    // An admin can give one later, and then it logs in.
    let set = post(
        &app,
        &format!("{}set-password/", user_url(carol["id"].as_i64().unwrap())),
        &root.access,
        json!({"password": "late but welcome 55"}),
    )
    .await;
    assert_reply(&set, 200, "{}");
    app.login("carol", "late but welcome 55").await;
}

async fn admin_create_applies_the_password_policy(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = superuser(&app, "root").await;
    let too_short = "This password is too short. It must contain at least 8 characters.";
    for (username, password, messages) in [
        ("pat", "password", vec!["This password is too common."]),
        ("pat", "12345", vec![too_short, "This password is too common.", "This password is entirely numeric."]),
        ("quixotic_walrus", "quixotic_walrus9", vec!["The password is too similar to the username."]),
        ("pat", "9183726450192", vec!["This password is entirely numeric."]),
    ] {
        let reply = post(&app, USERS, &root.access, json!({"username": username, "password": password})).await;
        assert_json(&reply, 400, json!({"password": messages}));
    }
    // Refused means not created: the names are still free.
    assert_eq!(get(&app, USERS, &root.access).await.json()["count"], 1);
    create(&app, &root.access, json!({"username": "pat", "password": "sound of many waters 8"})).await;
    app.login("pat", "sound of many waters 8").await;
}

async fn admin_create_reports_every_bad_field_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = superuser(&app, "root").await;
    let body = json!({
        "email": "not-an-email", "is_active": "maybe", "groups": ["nosuch"], "claims": [1],
        "password": "password",
    });
    let reply = post(&app, USERS, &root.access, body).await;
    assert_json(
        &reply,
        400,
        json!({
            "username": ["This field is required."],
            "email": ["Enter a valid email address."],
            "is_active": ["Must be a valid boolean."],
            "groups": ["Object with name=nosuch does not exist."],
            "claims": ["Expected a dictionary of items but got type \"list\"."],
            "password": ["This password is too common."],
        }),
    );
    assert_eq!(get(&app, USERS, &root.access).await.json()["count"], 1);
}

async fn admin_create_refuses_each_bad_field_in_drf_words(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = superuser(&app, "root").await;
    create(&app, &root.access, json!({"username": "bob"})).await;
    let cases = [
        (json!({"username": "bob"}), json!({"username": ["A user with that username already exists."]})),
        (json!({}), json!({"username": ["This field is required."]})),
        (json!({"username": "e", "email": "e-at-example.com"}), json!({"email": ["Enter a valid email address."]})),
        (json!({"username": "e", "is_staff": "sometimes"}), json!({"is_staff": ["Must be a valid boolean."]})),
        (
            json!({"username": "e", "groups": ["ghosts"]}),
            json!({"groups": ["Object with name=ghosts does not exist."]}),
        ),
        (
            json!({"username": "e", "groups": "editors"}),
            json!({"groups": ["Expected a list of items but got type \"str\"."]}),
        ),
        (
            json!({"username": "e", "claims": [1, 2]}),
            json!({"claims": ["Expected a dictionary of items but got type \"list\"."]}),
        ),
    ];
    for (body, errors) in cases {
        let reply = post(&app, USERS, &root.access, body.clone()).await;
        assert_json(&reply, 400, errors);
    }
    for reserved in ["exp", "sub", "user_id"] {
        let reply = post(&app, USERS, &root.access, json!({"username": "e", "claims": {reserved: 1}})).await;
        assert_eq!(reply.status, 400, "{}", reply.text);
        let messages = reply.json()["claims"].clone();
        assert!(
            messages.as_array().is_some_and(|m| m.len() == 1 && m[0].as_str().is_some_and(|s| s.contains(reserved))),
            "{}",
            reply.text
        );
    }
    for bad in ["bad name", "semi;colon", &"a".repeat(151)] {
        let reply = post(&app, USERS, &root.access, json!({"username": bad})).await;
        assert_eq!(reply.status, 400, "{bad}: {}", reply.text);
        assert!(reply.json()["username"].is_array(), "{}", reply.text);
    }
    // Letters, digits and @.+-_ are a username, up to 150 of them; "" is an email.
    let fine = create(&app, &root.access, json!({"username": "e.v+e-l_n@x", "email": ""})).await;
    assert_eq!(fine["username"], "e.v+e-l_n@x");
    create(&app, &root.access, json!({"username": "b".repeat(150)})).await;
    assert_eq!(get(&app, USERS, &root.access).await.json()["count"], 4);
}

// Django's EmailValidator decides what an email is: not any text with an '@' ("e@", "@example.com").
async fn admin_create_refuses_malformed_emails(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = superuser(&app, "root").await;
    for email in ["e@", "@example.com", "a b@example.com", "a@b@example.com", "bob@"] {
        let reply = post(&app, USERS, &root.access, json!({"username": "e", "email": email})).await;
        assert_json(&reply, 400, json!({"email": ["Enter a valid email address."]}));
    }
    assert_eq!(get(&app, USERS, &root.access).await.json()["count"], 1);
    let fine = create(&app, &root.access, json!({"username": "e", "email": "E.Mail+tag@sub.example.com"})).await;
    assert_eq!(fine["email"], "E.Mail+tag@sub.example.com");
}

async fn admin_create_reads_booleans_and_forms_as_drf_does(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = superuser(&app, "root").await;
    for (name, value, expected) in
        [("b1", json!("false"), false), ("b2", json!(0), false), ("b3", json!("true"), true), ("b4", json!(1), true)]
    {
        let user = create(&app, &root.access, json!({"username": name, "is_active": value, "is_staff": value})).await;
        assert_eq!(
            (user["is_active"].clone(), user["is_staff"].clone()),
            (json!(expected), json!(expected)),
            "{value}"
        );
    }
    // An inactive user created so cannot log in even with a password.
    create(&app, &root.access, json!({"username": "idle", "is_active": false, "password": "quiet evening 8080"})).await;
    assert_eq!(try_login(&app, "idle", "quiet evening 8080").await.text, NO_ACTIVE_ACCOUNT);
    // A form posts the same fields.
    let form = [
        ("username", "formed"),
        ("email", "formed@example.com"),
        ("password", "paper forms 7171"),
        ("is_staff", "true"),
    ];
    let request = app.client.post(app.url(USERS)).bearer_auth(&root.access).form(&form);
    let reply = read(request.send().await.unwrap()).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(
        (reply.json()["email"].clone(), reply.json()["is_staff"].clone()),
        (json!("formed@example.com"), json!(true))
    );
    app.login("formed", "paper forms 7171").await;
}

// DRF reads a form's `groups` with getlist: `groups=a&groups=b` is a list, one `groups=a` a list of one.
async fn admin_forms_set_groups_as_drf_reads_them(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = superuser(&app, "root").await;
    create_group(&app, &root.access, "editors").await;
    create_group(&app, &root.access, "writers").await;
    let form = [("username", "formed"), ("groups", "writers"), ("groups", "editors")];
    let reply = read(app.client.post(app.url(USERS)).bearer_auth(&root.access).form(&form).send().await.unwrap()).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.json()["groups"], json!(["editors", "writers"]));
    let url = app.url(&user_url(reply.json()["id"].as_i64().unwrap()));
    let form = [("groups", "writers")];
    let reply = read(app.client.patch(url).bearer_auth(&root.access).form(&form).send().await.unwrap()).await;
    assert_eq!(reply.json()["groups"], json!(["writers"]), "{}", reply.text);
}

async fn admin_get_answers_404_for_unknown_ids(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = superuser(&app, "root").await;
    let got = get(&app, &user_url(root.id), &root.access).await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert_user_shape(&got.json());
    assert_eq!(got.json()["username"], "root");
    assert_eq!(get(&app, &format!("{USERS}{}", root.id), &root.access).await.json()["username"], "root");
    for path in [
        user_url(root.id + 1),
        user_url(-1),
        "/api/admin/users/abc/".into(),
        "/api/admin/users/1.5/".into(),
        user_url(i64::MAX),
    ] {
        assert_reply(&get(&app, &path, &root.access).await, 404, NOT_FOUND);
        assert_reply(&patch(&app, &path, &root.access, json!({"first_name": "x"})).await, 404, NOT_FOUND);
        assert_reply(&delete(&app, &path, &root.access).await, 404, NOT_FOUND);
        let set =
            post(&app, &format!("{path}set-password/"), &root.access, json!({"password": "never applied 9090"})).await;
        assert_reply(&set, 404, NOT_FOUND);
    }
}
