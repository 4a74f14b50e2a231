//! Groups and custom claims through the Admin API: groups made, listed with their member counts
//! and deleted; a user's groups and claims replaced by PATCH, and carried by the next tokens.

use serde_json::{Value, json};

use crate::{admin_helpers::*, db_test, helpers::*};

db_test!(
    admin_groups_are_created_listed_and_deleted,
    admin_group_create_refuses_taken_and_missing_names,
    admin_group_create_refuses_long_names_in_drf_words,
    admin_patch_replaces_a_users_groups,
    admin_group_and_claim_changes_reach_the_next_tokens,
);

/// The groups page as (name, members) pairs, in the order listed.
async fn group_list(app: &TestApp, admin: &str, query: &str) -> Vec<(String, i64)> {
    let reply = get(app, &format!("{GROUPS}{query}"), admin).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let page = reply.json();
    let results = page["results"].as_array().expect("a results list").clone();
    assert_eq!(page["count"], json!(results.len()), "{page}");
    results.iter().map(|g| (g["name"].as_str().unwrap().to_owned(), g["members"].as_i64().unwrap())).collect()
}

fn pairs(list: &[(&str, i64)]) -> Vec<(String, i64)> {
    list.iter().map(|(n, m)| (n.to_string(), *m)).collect()
}

async fn admin_groups_are_created_listed_and_deleted(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = superuser(&app, "root").await;
    let reply = post(&app, GROUPS, &root.access, json!({"name": "writers"})).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let writers = reply.json()["id"].as_i64().expect("an id");
    assert_eq!(reply.json(), json!({"id": writers, "name": "writers", "members": 0}));
    let editors = create_group(&app, &root.access, "editors").await;
    create_group(&app, &root.access, "admins").await;
    create(&app, &root.access, json!({"username": "ann", "groups": ["editors", "writers"]})).await;
    let bob = create(&app, &root.access, json!({"username": "bob", "groups": ["editors"]})).await;
    let expected = pairs(&[("admins", 0), ("editors", 2), ("writers", 1)]);
    assert_eq!(group_list(&app, &root.access, "").await, expected, "ordered by name, with member counts");
    assert_eq!(group_list(&app, &root.access, "?search=EDIT").await, pairs(&[("editors", 2)]));

    assert_reply(&delete(&app, &format!("{GROUPS}{editors}/"), &root.access).await, 204, "");
    assert_eq!(group_list(&app, &root.access, "").await, pairs(&[("admins", 0), ("writers", 1)]));
    let bob_now = get(&app, &user_url(bob["id"].as_i64().unwrap()), &root.access).await.json();
    assert_eq!(bob_now["groups"], json!([]), "the membership went with the group");
    let ann = get(&app, &format!("{USERS}?search=ann"), &root.access).await.json();
    assert_eq!(ann["results"][0]["groups"], json!(["writers"]));
    assert_reply(&delete(&app, &format!("{GROUPS}{editors}/"), &root.access).await, 404, NOT_FOUND);
    assert_reply(&delete(&app, &format!("{GROUPS}abc/"), &root.access).await, 404, NOT_FOUND);
    // The name is free again, and the new group starts empty.
    let reply = post(&app, GROUPS, &root.access, json!({"name": "editors"})).await;
    assert_eq!(reply.json()["members"], 0, "{}", reply.text);
    // The operator's view agrees.
    let out = app.cli(&["group", "list", "--json"]);
    let listed: Value = serde_json::from_slice(&out.stdout).expect("JSON groups");
    assert_eq!(listed.as_array().map(Vec::len), Some(3), "{listed}");
}

async fn admin_group_create_refuses_taken_and_missing_names(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = superuser(&app, "root").await;
    create_group(&app, &root.access, "editors").await;
    let taken = post(&app, GROUPS, &root.access, json!({"name": "editors"})).await;
    assert_json(&taken, 400, json!({"name": ["group with this name already exists."]}));
    let missing = post(&app, GROUPS, &root.access, json!({})).await;
    assert_json(&missing, 400, json!({"name": ["This field is required."]}));
    assert_eq!(group_list(&app, &root.access, "").await, pairs(&[("editors", 0)]));
}

// A 151-character name is refused in DRF's words, not the domain's own sentence.
async fn admin_group_create_refuses_long_names_in_drf_words(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = superuser(&app, "root").await;
    let long = post(&app, GROUPS, &root.access, json!({"name": "g".repeat(151)})).await;
    assert_json(&long, 400, json!({"name": ["Ensure this field has no more than 150 characters."]}));
    create_group(&app, &root.access, &"g".repeat(150)).await;
}

async fn admin_patch_replaces_a_users_groups(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = superuser(&app, "root").await;
    for name in ["alpha", "beta", "gamma"] {
        create_group(&app, &root.access, name).await;
    }
    let user = create(&app, &root.access, json!({"username": "bob", "groups": ["gamma", "alpha"]})).await;
    assert_eq!(user["groups"], json!(["alpha", "gamma"]), "sorted by name");
    let url = user_url(user["id"].as_i64().unwrap());
    for (set, shown) in [
        (json!(["beta"]), json!(["beta"])),
        (json!(["gamma", "beta", "alpha"]), json!(["alpha", "beta", "gamma"])),
        (json!([]), json!([])),
        (json!(["alpha", "alpha"]), json!(["alpha"])),
    ] {
        let reply = patch(&app, &url, &root.access, json!({"groups": set})).await;
        assert_eq!(reply.json()["groups"], shown, "{}", reply.text);
        assert_eq!(get(&app, &url, &root.access).await.json()["groups"], shown);
    }
    // A refused change leaves the membership as it was.
    let refused = patch(&app, &url, &root.access, json!({"groups": ["alpha", "nosuch"]})).await;
    assert_json(&refused, 400, json!({"groups": ["Object with name=nosuch does not exist."]}));
    assert_eq!(get(&app, &url, &root.access).await.json()["groups"], json!(["alpha"]));
    assert_eq!(group_list(&app, &root.access, "").await, pairs(&[("alpha", 1), ("beta", 0), ("gamma", 0)]));
}

async fn admin_group_and_claim_changes_reach_the_next_tokens(backend: Backend) {
    let app = spawn_app_with(backend, &[("TOKEN_CLAIMS", "groups")]).await;
    let root = superuser(&app, "root").await;
    create_group(&app, &root.access, "editors").await;
    let bob = plain(&app, "bob").await;
    assert_eq!(claims(&bob.access)["groups"], json!([]));
    let url = user_url(bob.id);
    let reply = patch(&app, &url, &root.access, json!({"groups": ["editors"], "claims": {"tenant": "acme"}})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let refreshed = refresh(&app, &bob.refresh).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    let access = claims(&refreshed.field("access"));
    assert_eq!(access["groups"], json!(["editors"]), "{access}");
    assert_eq!(access["tenant"], "acme", "{access}");
    let me = app.get_bearer("/api/me/", &refreshed.field("access")).await.json();
    assert_eq!(me["groups"], json!(["editors"]));

    // Claims are replaced whole; {} clears them; reserved names are refused and change nothing.
    assert_eq!(
        patch(&app, &url, &root.access, json!({"claims": {"plan": 2}})).await.json()["claims"],
        json!({"plan": 2})
    );
    let refused = patch(&app, &url, &root.access, json!({"claims": {"exp": 1}})).await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    let refreshed = refresh(&app, &refreshed.field("refresh")).await;
    let access = claims(&refreshed.field("access"));
    assert_eq!((access["plan"].clone(), access.get("tenant")), (json!(2), None), "{access}");
    assert!(access["exp"].as_i64().is_some_and(|exp| exp > now()), "{access}");
    assert_eq!(patch(&app, &url, &root.access, json!({"claims": {}, "groups": []})).await.status, 200);
    let access = claims(&refresh(&app, &refreshed.field("refresh")).await.field("access"));
    assert_eq!((access.get("plan"), access["groups"].clone()), (None, json!([])), "{access}");
}
