//! Moving a running Django + simplejwt site onto tokensmith (`tokensmith import django`),
//! against a real one: Django 5.2 and simplejwt 5.5 in the test venv, on SQLite or PostgreSQL as
//! tokensmith is, with a user per password hasher, groups, and refresh tokens simplejwt issued
//! and blacklisted (tests/python/legacy_site.py).

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::{
    config::single_error_line,
    db_test,
    helpers::{Backend, TOKEN_BLACKLISTED, TestApp, TestDb, assert_401, claims, run_cli, spawn_app_on},
    python::run_script,
};

db_test!(
    the_whole_cut_over_keeps_every_user_password_id_and_live_session,
    database_and_dumpdata_give_the_same_result,
    importing_again_applies_only_what_changed_in_django,
    a_malformed_record_stops_the_import_with_one_line_naming_it,
    an_id_held_by_a_user_of_tokensmith_is_refused,
    a_carried_over_refresh_token_refreshes_once_when_raced,
    two_imports_at_once_create_each_user_once,
    a_dry_run_leaves_the_ids_of_users_made_later_alone,
    no_copy_of_a_django_hash_outlives_its_upgrade,
);

/// Django's `SECRET_KEY`, which simplejwt signs with: tokensmith's `JWT_SECRET` after the move.
pub(crate) const SIGNING_KEY: &str = "legacy-django-secret-key-for-the-import-tests-only";

/// The Django site's database (SQLite file or a PostgreSQL database of its own).
pub(crate) struct LegacySite {
    pub(crate) db: TestDb,
    database: String,
}

impl LegacySite {
    pub(crate) async fn new(backend: Backend) -> Self {
        let db = TestDb::new(backend).await;
        let database = match backend {
            Backend::Sqlite => db.dir().join("django.sqlite3").display().to_string(),
            Backend::Postgres => db.url.clone(),
        };
        Self { db, database }
    }

    /// What `tokensmith import django --database` is given.
    pub(crate) fn url(&self) -> String {
        if self.database.starts_with("postgres") {
            self.database.clone()
        } else {
            format!("sqlite://{}", self.database)
        }
    }

    pub(crate) async fn run(&self, args: &[&str]) -> String {
        let env = [("LEGACY_SECRET_KEY", SIGNING_KEY), ("LEGACY_DATABASE", self.database.as_str())];
        let out = run_script("legacy_site.py", args, &env).await;
        out.assert_success();
        out.stdout
    }

    /// Migrates and fills the site; what it made.
    pub(crate) async fn setup(&self) -> Value {
        serde_json::from_str(&self.run(&["setup"]).await).unwrap()
    }

    pub(crate) async fn dump(&self) -> PathBuf {
        let path = self.db.dir().join(format!("dump-{}.json", uuid::Uuid::new_v4().simple()));
        self.run(&["dump", path.to_str().unwrap()]).await;
        path
    }
}

/// tokensmith with Django's signing key, on a database of its own.
pub(crate) async fn tokensmith(backend: Backend) -> TestApp {
    tokensmith_with(backend, &[]).await
}

/// tokensmith as `tokensmith` makes it, with `more` settings.
pub(crate) async fn tokensmith_with(backend: Backend, more: &[(&str, &str)]) -> TestApp {
    let mut settings =
        vec![("JWT_ALGORITHM", "HS256"), ("JWT_SECRET", SIGNING_KEY), ("TOKEN_CLAIMS", "username,is_staff,groups")];
    settings.extend_from_slice(more);
    spawn_app_on(TestDb::new(backend).await, &settings).await
}

/// Runs `tokensmith import django ARGS…`; its one line of output.
pub(crate) fn import(app: &TestApp, args: &[&str]) -> String {
    let mut argv = vec!["import", "django"];
    argv.extend(args);
    let out = app.cli(&argv);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "import failed: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(stdout.lines().count(), 1, "one line of counts: {stdout}");
    stdout
}

async fn stored_hash(app: &TestApp, username: &str) -> Option<String> {
    app.store.user_by_username(username).await.unwrap().unwrap().password_hash
}

async fn the_whole_cut_over_keeps_every_user_password_id_and_live_session(backend: Backend) {
    let site = LegacySite::new(backend).await;
    let made = site.setup().await;
    let dump = site.dump().await;
    let app = tokensmith(backend).await;

    let dry = import(&app, &["--dumpdata", dump.to_str().unwrap(), "--dry-run"]);
    assert!(dry.contains("dry run") && dry.contains("10 created"), "{dry}");
    assert_eq!(Value::from(app.users()), json!([]), "a dry run writes nothing");
    let line = import(&app, &["--dumpdata", dump.to_str().unwrap()]);
    assert!(line.contains("users: 10 created, 0 updated, 0 unchanged"), "{line}");
    assert!(line.contains("groups: 2 created") && line.contains("sessions: 3 created"), "{line}");
    let audit = String::from_utf8(app.cli(&["audit", "tail", "--json"]).stdout).unwrap();
    let imported = audit.lines().filter(|l| l.contains("\"django_imported\"")).collect::<Vec<_>>();
    assert!(imported.len() == 1 && imported[0].contains("10 created"), "the import is audited once: {audit}");

    // Every user logs in with the password Django knew, as the id Django gave them, and from
    // then on has tokensmith's own argon2id hash.
    for user in made["users"].as_array().unwrap() {
        let (username, password) = (user["username"].as_str().unwrap(), user["password"].as_str().unwrap());
        let django_hash = stored_hash(&app, username).await.unwrap();
        let wrong = app.post_json("/api/token/", json!({"username": username, "password": "wrong"})).await;
        assert_eq!(wrong.status, 401, "{username}");
        assert_eq!(stored_hash(&app, username).await.unwrap(), django_hash, "a failed login keeps the hash");
        let login = app.post_json("/api/token/", json!({"username": username, "password": password})).await;
        assert_eq!(login.status, 200, "{username} logs in with the password Django had: {}", login.text);
        let access = claims(&login.field("access"));
        assert_eq!(access["user_id"].to_string().trim_matches('"'), user["id"].to_string(), "{username}");
        let upgraded = stored_hash(&app, username).await.unwrap();
        assert!(upgraded.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{username}: {upgraded}");
        let again = app.post_json("/api/token/", json!({"username": username, "password": password})).await;
        assert_eq!(again.status, 200, "{username} logs in again on the upgraded hash");
    }
    let staff = app
        .post_json("/api/token/", json!({"username": "user_pbkdf2_sha256", "password": made["users"][0]["password"]}))
        .await;
    let access = claims(&staff.field("access"));
    assert_eq!(access["is_staff"], true);
    assert_eq!(access["groups"], json!(["editors", "readers"]));
    let inactive = &made["inactive"];
    let refused = app.post_json("/api/token/", json!({"username": "gone", "password": inactive["password"]})).await;
    assert_eq!(refused.status, 401, "an inactive Django user stays inactive");
    assert_eq!(stored_hash(&app, "no_password").await, None, "an unusable Django password is no password");

    // The sessions simplejwt left: the live refresh token refreshes once into a tokensmith
    // session; the blacklisted one stays refused; Django's access token still verifies.
    let live = made["refresh"]["live"].as_str().unwrap();
    let first = app.post_json("/api/token/refresh/", json!({"refresh": live})).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(claims(&first.field("access"))["user_id"].to_string().trim_matches('"'), made["staff"].to_string());
    let next = first.field("refresh");
    assert_eq!(app.post_json("/api/token/refresh/", json!({"refresh": next})).await.status, 200);
    let reused = app.post_json("/api/token/refresh/", json!({"refresh": live})).await;
    assert_401(&reused, TOKEN_BLACKLISTED);
    let blacklisted = made["refresh"]["blacklisted"].as_str().unwrap();
    assert_401(&app.post_json("/api/token/refresh/", json!({"refresh": blacklisted})).await, TOKEN_BLACKLISTED);
    let verified = app.post_json("/api/token/verify/", json!({"token": made["access"]})).await;
    assert_eq!(verified.status, 200, "{}", verified.text);
    let sliding = app.post_json("/api/token/sliding/refresh/", json!({"token": made["sliding"]})).await;
    assert_eq!(sliding.status, 200, "{}", sliding.text);
    assert_eq!(claims(&sliding.field("token"))["jti"], claims(made["sliding"].as_str().unwrap())["jti"]);

    // Users created here get ids above Django's.
    let max_id = made["users"].as_array().unwrap().iter().map(|u| u["id"].as_i64().unwrap()).max().unwrap();
    let out = app.cli(&["user", "create", "newcomer"]);
    assert!(out.status.success());
    let newcomer =
        Value::from(app.users()).as_array().unwrap().iter().find(|u| u["username"] == "newcomer").unwrap().clone();
    assert!(newcomer["id"].as_i64().unwrap() > max_id.max(made["inactive"]["id"].as_i64().unwrap()), "{newcomer}");
}

async fn database_and_dumpdata_give_the_same_result(backend: Backend) {
    let site = LegacySite::new(backend).await;
    site.setup().await;
    let dump = site.dump().await;
    let from_dump = tokensmith(backend).await;
    let from_database = tokensmith(backend).await;
    let dumped = import(&from_dump, &["--dumpdata", dump.to_str().unwrap()]);
    let django_file = || (backend == Backend::Sqlite).then(|| std::fs::read(&site.database).unwrap());
    let before = django_file();
    let read = import(&from_database, &["--database", &site.url()]);
    assert!(before == django_file(), "the Django database is only read");
    assert_eq!(dumped, read);
    assert_eq!(Value::from(from_dump.users()), Value::from(from_database.users()));
    for app in [&from_dump, &from_database] {
        assert!(app.cli(&["group", "list", "--json"]).status.success());
    }
    assert_eq!(
        from_dump.cli(&["group", "list", "--json"]).stdout,
        from_database.cli(&["group", "list", "--json"]).stdout
    );
    for username in ["user_pbkdf2_sha256", "user_bcrypt", "no_password"] {
        assert_eq!(stored_hash(&from_dump, username).await, stored_hash(&from_database, username).await);
    }
    let again = import(&from_database, &["--database", &site.url()]);
    assert!(again.contains("0 created, 0 updated, 10 unchanged"), "{again}");
}

async fn importing_again_applies_only_what_changed_in_django(backend: Backend) {
    let site = LegacySite::new(backend).await;
    let made = site.setup().await;
    let app = tokensmith(backend).await;
    import(&app, &["--database", &site.url()]);

    // After the first import, the operator works in tokensmith...
    assert!(app.cli(&["user", "deactivate", "user_bcrypt"]).status.success());
    assert!(
        app.cli_with_stdin(&["user", "set-password", "user_scrypt", "--password-stdin"], "set-in-tokensmith")
            .status
            .success()
    );
    // ...while Django takes a sign-up, a password change and a logout before the clients move.
    let meanwhile: Value = serde_json::from_str(&site.run(&["meanwhile"]).await).unwrap();
    app.db.execute("DELETE FROM users WHERE username = 'no_password'").await;
    let line = import(&app, &["--database", &site.url()]);
    assert!(line.contains("users: 1 created, 1 updated, 7 unchanged, 1 deleted here (kept deleted)"), "{line}");
    assert!(line.contains("1 gone from Django (kept)"), "{line}");
    assert!(line.contains("sessions: 1 created"), "the logged-out token comes over revoked: {line}");

    let login = |username: &'static str, password: String| {
        let app = &app;
        async move { app.post_json("/api/token/", json!({"username": username, "password": password})).await.status }
    };
    let latecomer = &meanwhile["latecomer"];
    assert_eq!(login("latecomer", latecomer["password"].as_str().unwrap().to_owned()).await, 200);
    let listed = Value::from(app.users());
    let late = listed.as_array().unwrap().iter().find(|u| u["username"] == "latecomer").unwrap();
    assert_eq!(late["id"], latecomer["id"], "the latecomer keeps Django's id");
    let md5 = listed.as_array().unwrap().iter().find(|u| u["username"] == "user_md5").unwrap();
    assert_eq!(md5["email"], "md5-new@example.com");
    assert_eq!(login("user_md5", "changed-in-django".into()).await, 200, "Django's new password applies");
    // What was done in tokensmith stands: Django did not change those users.
    let bcrypt_password =
        made["users"].as_array().unwrap().iter().find(|u| u["username"] == "user_bcrypt").unwrap()["password"]
            .as_str()
            .unwrap()
            .to_owned();
    assert_eq!(login("user_bcrypt", bcrypt_password).await, 401, "still deactivated");
    assert_eq!(login("user_scrypt", "set-in-tokensmith".into()).await, 200, "the password set here stands");
    assert_eq!(login("user_argon2i", "argon2i-password".into()).await, 200, "deleted in Django, kept here");
    assert!(app.store.user_by_username("no_password").await.unwrap().is_none(), "deleted here stays deleted");
    let logged_out = meanwhile["logged_out"].as_str().unwrap();
    assert_401(&app.post_json("/api/token/refresh/", json!({"refresh": logged_out})).await, TOKEN_BLACKLISTED);
}

/// A change that breaks one record of a dump.
type Breakage = dyn Fn(&mut Value);

async fn a_malformed_record_stops_the_import_with_one_line_naming_it(backend: Backend) {
    let site = LegacySite::new(backend).await;
    site.setup().await;
    let dump = site.dump().await;
    let records: Vec<Value> = serde_json::from_slice(&std::fs::read(&dump).unwrap()).unwrap();
    let app = tokensmith(backend).await;
    let broken = |change: &dyn Fn(&mut Value)| {
        let mut records = records.clone();
        let md5 = records.iter_mut().find(|r| r["fields"]["username"] == "user_md5").unwrap();
        change(md5);
        let md5_pk = md5["pk"].clone();
        let path = site.db.dir().join(format!("broken-{}.json", uuid::Uuid::new_v4().simple()));
        std::fs::write(&path, serde_json::to_vec(&records).unwrap()).unwrap();
        (path, md5_pk)
    };
    let cases: [(&Breakage, &str, &str); 4] = [
        (&|r| r["fields"]["password"] = json!("sha1$salt$0123"), "password", "sha1"),
        (&|r| r["fields"]["date_joined"] = json!("last tuesday"), "date_joined", "not a datetime"),
        (&|r| r["fields"]["username"] = json!("two words"), "username", ""),
        (&|r| r["fields"]["groups"] = json!([99]), "groups", "no group 99"),
    ];
    for (change, field, says) in cases {
        let (path, pk) = broken(change);
        let out = app.cli(&["import", "django", "--dumpdata", path.to_str().unwrap()]);
        let line = single_error_line(&out);
        assert!(line.contains(&format!("auth.user pk={pk}, field \"{field}\"")) && line.contains(says), "{line}");
        assert!(!line.contains("0123"), "no hash in the error: {line}");
        assert_eq!(Value::from(app.users()), json!([]), "nothing half-written after {line}");
    }
    let missing = app.cli(&["import", "django", "--dumpdata", "/nonexistent/dump.json"]);
    assert!(single_error_line(&missing).contains("/nonexistent/dump.json"));
    let neither = app.cli(&["import", "django"]);
    assert!(!neither.status.success());
}

async fn an_id_held_by_a_user_of_tokensmith_is_refused(backend: Backend) {
    let site = LegacySite::new(backend).await;
    site.setup().await;
    let app = tokensmith(backend).await;
    app.create_user("first-here", "a password");
    app.create_user("second-here", "a password");
    let out = app.cli(&["import", "django", "--database", &site.url()]);
    let line = single_error_line(&out);
    assert!(line.contains("auth.user pk=2") && line.contains("second-here"), "{line}");
    let users = Value::from(app.users());
    assert_eq!(users.as_array().unwrap().len(), 2, "nothing imported: {users}");
}

async fn a_carried_over_refresh_token_refreshes_once_when_raced(backend: Backend) {
    let site = LegacySite::new(backend).await;
    let made = site.setup().await;
    let app = tokensmith(backend).await;
    import(&app, &["--database", &site.url()]);
    let live = made["refresh"]["live"].as_str().unwrap();
    let replies =
        futures::future::join_all((0..8).map(|_| app.post_json("/api/token/refresh/", json!({"refresh": live})))).await;
    let ok = replies.iter().filter(|r| r.status == 200).count();
    assert_eq!(
        ok,
        1,
        "exactly one of the racing refreshes wins: {:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(replies.iter().all(|r| r.status == 200 || r.status == 401));
}

async fn two_imports_at_once_create_each_user_once(backend: Backend) {
    let site = LegacySite::new(backend).await;
    site.setup().await;
    let app = tokensmith(backend).await;
    let url = site.url();
    let runs = [0, 1].map(|_| {
        let (env, dir, url) = (app.env.clone(), app.db.dir().to_owned(), url.clone());
        std::thread::spawn(move || run_cli(&env, &dir, &["import", "django", "--database", &url], None))
    });
    let lines: Vec<String> = runs
        .into_iter()
        .map(|run| {
            let out = run.join().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
        .collect();
    let created: usize = lines.iter().filter(|l| l.contains("users: 10 created")).count();
    let unchanged: usize = lines.iter().filter(|l| l.contains("0 created, 0 updated, 10 unchanged")).count();
    assert_eq!((created, unchanged), (1, 1), "{lines:?}");
    assert_eq!(Value::from(app.users()).as_array().unwrap().len(), 10);
}

/// A dry run writes nothing, PostgreSQL's id sequence included: the next user made here gets
/// the id it would have had without it.
async fn a_dry_run_leaves_the_ids_of_users_made_later_alone(backend: Backend) {
    let site = LegacySite::new(backend).await;
    site.setup().await;
    let app = tokensmith(backend).await;
    import(&app, &["--database", &site.url(), "--dry-run"]);
    app.create_user("first-here", "a password");
    assert_eq!(app.users()[0]["id"], 1, "{:?}", app.users());
}

/// Once a user has logged in, Django's hash of their password (salted MD5, say) is replaced by
/// argon2id, and tokensmith keeps no other copy of it: what the next import compares with
/// tells a changed password without holding the hash.
async fn no_copy_of_a_django_hash_outlives_its_upgrade(backend: Backend) {
    let site = LegacySite::new(backend).await;
    let made = site.setup().await;
    let app = tokensmith(backend).await;
    import(&app, &["--database", &site.url()]);
    let mut django_hashes = Vec::new();
    for user in made["users"].as_array().unwrap() {
        let (username, password) = (user["username"].as_str().unwrap(), user["password"].as_str().unwrap());
        django_hashes.push(stored_hash(&app, username).await.unwrap());
        app.login(username, password).await;
    }
    let kept = app
        .db
        .strings("SELECT COALESCE(password_hash, '') FROM users UNION ALL SELECT record FROM django_imported_users")
        .await;
    for hash in &django_hashes {
        // The hash's last part: its digest, whatever surrounds it.
        let digest = hash.rsplit('$').next().unwrap();
        assert!(kept.iter().all(|text| !text.contains(digest)), "{hash} is still kept");
    }
    let again = import(&app, &["--database", &site.url()]);
    assert!(again.contains("0 created, 0 updated, 10 unchanged"), "{again}");
}
