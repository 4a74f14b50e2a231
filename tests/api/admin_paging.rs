//! The Admin API's user list as DRF pages it: counts, page sizes, next/previous links that work
//! when followed, out-of-range pages; and DRF's search over usernames, emails and names.

use serde_json::{Value, json};

use crate::{admin_helpers::*, db_test, helpers::*};

db_test!(
    admin_user_list_pages_through_every_user_once,
    admin_user_list_refuses_pages_out_of_range,
    admin_user_list_caps_page_size_at_500,
    admin_user_search_matches_names_and_emails_as_drf_does,
    admin_page_links_name_the_issuer_when_it_is_the_services_url,
);

/// A page of the user list, asserting the 200.
async fn page(app: &TestApp, admin: &str, path_or_url: &str) -> Value {
    let reply = get(app, path_or_url, admin).await;
    assert_eq!(reply.status, 200, "{path_or_url}: {}", reply.text);
    reply.json()
}

fn ids(page: &Value) -> Vec<i64> {
    page["results"].as_array().expect("results").iter().map(|u| u["id"].as_i64().expect("id")).collect()
}

fn usernames(page: &Value) -> Vec<String> {
    page["results"].as_array().expect("results").iter().map(|u| u["username"].as_str().unwrap().to_owned()).collect()
}

async fn admin_user_list_pages_through_every_user_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = superuser(&app, "root").await;
    create_many(&app, &root.access, "member", 125).await;
    let base = app.url(USERS);

    let first = page(&app, &root.access, USERS).await;
    assert_eq!((first["count"].clone(), ids(&first).len()), (json!(126), 50), "50 a page by default");
    assert_eq!(first["next"], json!(format!("{base}?page=2")));
    assert_eq!(first["previous"], Value::Null);
    let second = page(&app, &root.access, first["next"].as_str().unwrap()).await;
    assert_eq!(second["previous"], json!(base), "the first page's link has no page parameter");
    assert_eq!(second["next"], json!(format!("{base}?page=3")));
    assert_eq!(page(&app, &root.access, second["previous"].as_str().unwrap()).await, first);

    // Walking `next` with another page size visits everyone once, in id order.
    let mut seen = Vec::new();
    let mut next = Some(format!("{USERS}?page_size=40"));
    let mut sizes = Vec::new();
    while let Some(url) = next {
        let p = page(&app, &root.access, &url).await;
        assert_eq!(p["count"], 126);
        sizes.push(ids(&p).len());
        seen.extend(ids(&p));
        next = p["next"].as_str().map(str::to_owned);
        if let Some(link) = &next {
            assert!(link.starts_with(&format!("{base}?")) && link.contains("page_size=40"), "{link}");
        }
    }
    assert_eq!(sizes, [40, 40, 40, 6]);
    let mut sorted = seen.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(seen, sorted, "ascending ids, none twice");
    assert_eq!(seen.len(), 126);
    assert_eq!(seen[0], root.id);

    // The other parameters travel with the links.
    let searched = page(&app, &root.access, &format!("{USERS}?search=member1&page_size=10")).await;
    assert_eq!(searched["count"], 25, "member100..member124: {searched}");
    let link = searched["next"].as_str().expect("a next link");
    assert!(link.contains("search=member1") && link.contains("page_size=10"), "{link}");
    let last = page(&app, &root.access, link).await;
    let last = page(&app, &root.access, last["next"].as_str().expect("a third page")).await;
    assert_eq!((usernames(&last).len(), last["next"].clone()), (5, Value::Null));
}

async fn admin_user_list_refuses_pages_out_of_range(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = superuser(&app, "root").await;
    create_many(&app, &root.access, "member", 9).await;
    assert_eq!(ids(&page(&app, &root.access, &format!("{USERS}?page=2&page_size=5")).await).len(), 5);
    for query in ["page=3&page_size=5", "page=0", "page=-1", "page=abc", "page=2", "page=99999999999999999999"] {
        assert_reply(&get(&app, &format!("{USERS}?{query}"), &root.access).await, 404, INVALID_PAGE);
    }
    // A page size that makes no sense is the default one.
    for query in ["page_size=abc", "page_size=0", "page_size=-3"] {
        let p = page(&app, &root.access, &format!("{USERS}?{query}")).await;
        assert_eq!((p["count"].clone(), ids(&p).len()), (json!(10), 10), "{query}");
    }
    // No match is an empty first page, not an error.
    let none = page(&app, &root.access, &format!("{USERS}?search=nobody-at-all")).await;
    assert_eq!(none, json!({"count": 0, "next": null, "previous": null, "results": []}));
    let long = get(&app, &format!("{USERS}?search={}", "a".repeat(201)), &root.access).await;
    assert_json(&long, 400, json!({"search": ["Ensure this field has no more than 200 characters."]}));
    assert_eq!(page(&app, &root.access, &format!("{USERS}?search={}", "a".repeat(200))).await["count"], 0);
}

async fn admin_user_list_caps_page_size_at_500(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = superuser(&app, "root").await;
    create_many(&app, &root.access, "member", 502).await;
    let big = page(&app, &root.access, &format!("{USERS}?page_size=100000")).await;
    assert_eq!((big["count"].clone(), ids(&big).len()), (json!(503), 500));
    let rest = page(&app, &root.access, big["next"].as_str().expect("a second page")).await;
    assert_eq!(ids(&rest).len(), 3);
    let exact = page(&app, &root.access, &format!("{USERS}?page_size=500")).await;
    assert_eq!(ids(&exact), ids(&big));
}

async fn admin_user_search_matches_names_and_emails_as_drf_does(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = superuser(&app, "root").await;
    for (username, email, first, last) in [
        ("ann", "ann@north.example", "Ann", "Lee"),
        ("bo_b", "bob@south.example", "Bob", "Leeds"),
        ("boxb", "per%cent@south.example", "Boxer", "Smith"),
        ("dora", "dora@north.example", "100%", "Explorer"),
    ] {
        create(
            &app,
            &root.access,
            json!({"username": username, "email": email, "first_name": first, "last_name": last}),
        )
        .await;
    }
    let cases: [(&str, &[&str]); 12] = [
        ("ANN", &["ann"]),
        ("SOUTH.example", &["bo_b", "boxb"]),
        ("lee", &["ann", "bo_b"]),
        ("leeds", &["bo_b"]),
        ("boxer", &["boxb"]),
        ("lee north", &["ann"]),
        ("lee,south", &["bo_b"]),
        ("  north   explorer ", &["dora"]),
        ("o_b", &["bo_b"]),
        ("%", &["boxb", "dora"]),
        ("r%c", &["boxb"]),
        ("lee nobody", &[]),
    ];
    for (search, expected) in cases {
        let url = app.client.get(app.url(USERS)).query(&[("search", search)]).build().unwrap().url().to_string();
        let found = page(&app, &root.access, &url).await;
        assert_eq!(usernames(&found), expected.iter().map(|s| s.to_string()).collect::<Vec<_>>(), "search {search:?}");
        assert_eq!(found["count"], json!(expected.len()));
    }
}

async fn admin_page_links_name_the_issuer_when_it_is_the_services_url(backend: Backend) {
    // Behind a proxy the Host header may be anything; JWT_ISSUER says where the service is.
    let app = spawn_app_with(backend, &[("JWT_ISSUER", "https://auth.example.com/")]).await;
    let root = superuser(&app, "root").await;
    create_many(&app, &root.access, "member", 3).await;
    let reply = call(&app, "GET", &format!("{USERS}?page_size=2&search=member"), Some(&root.access), None).await;
    assert_eq!(
        reply.json()["next"],
        json!("https://auth.example.com/api/admin/users/?page=2&page_size=2&search=member")
    );
    // Without it, DRF's way: the Host the client asked for.
    let plain = spawn_app(backend).await;
    let root = superuser(&plain, "root").await;
    create_many(&plain, &root.access, "member", 3).await;
    let asked = plain.client.get(plain.url(&format!("{USERS}?page_size=2"))).bearer_auth(&root.access);
    let reply = read(asked.header("host", "admin.internal:8443").send().await.unwrap()).await;
    assert_eq!(reply.json()["next"], json!("http://admin.internal:8443/api/admin/users/?page=2&page_size=2"));
}
