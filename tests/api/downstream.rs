//! The downstream proof: a real Django + DRF + simplejwt service (`tests/python/downstream/`,
//! the README's stateless recipe: `JWTStatelessUserAuthentication`, keys from tokensmith's
//! JWKS or the shared HS256 secret, no user table) trusts tokensmith's access tokens, lets
//! staff through `IsAdminUser` and knows who the caller is, because `TOKEN_CLAIMS` puts the
//! attributes simplejwt's `TokenUser` reads into the token.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, ChildStdin, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::{db_test, fake_clerk::SigningKey, helpers::*, python};

/// What tokensmith must put in tokens for `TokenUser.username`, `.is_staff`, `.is_superuser`
/// (and the groups a view may read from `request.auth`).
const TOKEN_CLAIMS: &str = "username,is_staff,is_superuser,groups";
const PASSWORD: &str = "correct horse battery";
const SECRET: &str = "a shared secret of at least thirty-two bytes";
/// How long Django may take to start (imports, then the first request), and the bound on any
/// one request to it.
const STARTUP: Duration = Duration::from_secs(60);

/// The downstream Django service, a child process killed (and reaped) when dropped, also when
/// the test panics; it exits by itself if the test process dies, when its stdin closes.
struct Django {
    http: Http,
    child: Child,
    stdin: Option<ChildStdin>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Django {
    /// Starts the service with `SIMPLE_JWT_<SETTING>` variables (see its settings.py) and waits,
    /// at most `STARTUP`, until it answers.
    async fn start(settings: &[(&str, &str)]) -> Self {
        let python = tokio::task::spawn_blocking(python::python)
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        let mut child = Command::new(python)
            .args(["-m", "downstream.serve"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .envs(settings.iter().map(|(k, v)| (format!("SIMPLE_JWT_{k}"), v)))
            .current_dir(python::scripts())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the venv's python runs");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<u16>();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        // Both pipes are read to their end (a full pipe would stall the server).
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line.strip_prefix("listening on ").and_then(|p| p.trim().parse().ok()) {
                    let _ = tx.send(port);
                }
            }
        });
        let lines = log.clone();
        let log_reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        let client = reqwest::Client::builder().timeout(STARTUP).no_proxy().build().unwrap();
        let stdin = child.stdin.take();
        // Owned from here, so a panic below kills it; its address is known once it says so.
        let placeholder = Http { addr: SocketAddr::from(([127, 0, 0, 1], 0)), client };
        let mut django = Self { http: placeholder, child, stdin, log };
        let deadline = Instant::now() + STARTUP;
        let port = loop {
            if let Ok(port) = rx.try_recv() {
                break port;
            }
            if let Some(status) = django.child.try_wait().unwrap() {
                // Its last words (a traceback) are read to the end first.
                let _ = log_reader.join();
                panic!("the Django service exited with {status}:\n{}", django.log());
            }
            assert!(
                Instant::now() < deadline,
                "the Django service did not listen within {} s:\n{}",
                STARTUP.as_secs(),
                django.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        django.http.addr = SocketAddr::from(([127, 0, 0, 1], port));
        // The first request loads the URLs and views: a configuration error shows here.
        let reply = django.whoami(None).await;
        assert_eq!(reply.status, 401, "Django without a token: {}\n{}", reply.text, django.log());
        assert_eq!(reply.text, r#"{"detail":"Authentication credentials were not provided."}"#);
        django
    }

    /// The service verifying with tokensmith's JWKS (ES256, its default), plus `extra` settings.
    async fn with_jwks(app: &TestApp, extra: &[(&str, &str)]) -> Self {
        let jwks = app.url("/.well-known/jwks.json");
        Self::start(&[&[("ALGORITHM", "ES256"), ("JWK_URL", jwks.as_str())], extra].concat()).await
    }

    /// What the service wrote to stderr (its request log and any traceback).
    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        let mut request = self.http.client.get(self.http.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        match request.send().await {
            Ok(response) => read(response).await,
            Err(e) => panic!("GET {path} from Django: {e}\n{}", self.log()),
        }
    }

    async fn whoami(&self, token: Option<&str>) -> Reply {
        self.get("/whoami", token).await
    }

    async fn admin_only(&self, token: &str) -> Reply {
        self.get("/admin-only", Some(token)).await
    }

    /// `/whoami` for a token Django accepts: who it says the caller is.
    async fn caller(&self, token: &str) -> Value {
        let reply = self.whoami(Some(token)).await;
        assert_eq!(reply.status, 200, "{}\n{}", reply.text, self.log());
        reply.json()
    }

    /// `/admin-only` answers `status`.
    async fn assert_admin_only(&self, token: &str, status: u16) {
        let reply = self.admin_only(token).await;
        assert_eq!(reply.status, status, "/admin-only: {}\n{}", reply.text, self.log());
        if status == 403 {
            assert_eq!(reply.text, r#"{"detail":"You do not have permission to perform this action."}"#);
        }
    }

    /// Django refuses `token` with 401, simplejwt giving `message` as the reason.
    async fn assert_refused(&self, token: &str, message: &str) {
        for reply in [self.whoami(Some(token)).await, self.admin_only(token).await] {
            assert_eq!(reply.status, 401, "{}\n{}", reply.text, self.log());
            let body = reply.json();
            assert_eq!(body["code"], "token_not_valid", "{body}");
            assert_eq!(body["messages"][0]["message"], message, "{body}");
        }
    }
}

impl Drop for Django {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn create_user(app: &TestApp, username: &str, flags: &[&str]) {
    let args = [&["user", "create", username], flags, &["--password-stdin"]].concat();
    let out = app.cli_with_stdin(&args, PASSWORD);
    assert!(out.status.success(), "user create {username}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The user's id as tokensmith's `/api/me/` gives it, as the string the tokens carry.
async fn user_id(app: &TestApp, access: &str) -> String {
    let me = app.get_bearer("/api/me/", access).await.json();
    me["id"].as_i64().map(|id| id.to_string()).unwrap_or_else(|| panic!("no id in {me}"))
}

async fn refreshed(app: &TestApp, refresh: &str) -> (String, String) {
    let reply = app.post_json("/api/token/refresh/", json!({"refresh": refresh})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    (reply.field("access"), reply.field("refresh"))
}

/// `token` with its claims edited and its signature kept.
fn tampered(token: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut claims = claims(token);
    edit(&mut claims);
    let parts: Vec<&str> = token.split('.').collect();
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    format!("{}.{payload}.{}", parts[0], parts[2])
}

db_test!(
    django_lets_staff_through_and_knows_who_they_are,
    without_token_claims_django_sees_nobody_as_staff,
    issuer_and_audience_are_checked_on_both_sides,
    a_renamed_user_id_claim_is_read_by_django,
    hs256_with_a_shared_secret,
);

async fn django_lets_staff_through_and_knows_who_they_are(backend: Backend) {
    let app = spawn_app_with(backend, &[("TOKEN_CLAIMS", TOKEN_CLAIMS)]).await;
    create_user(&app, "boss", &["--staff"]);
    create_user(&app, "pleb", &[]);
    for args in [&["group", "create", "ops"][..], &["user", "add-group", "boss", "ops"]] {
        assert!(app.cli(args).status.success(), "{args:?}");
    }
    let django = Django::with_jwks(&app, &[]).await;

    let (boss, boss_refresh) = app.login("boss", PASSWORD).await;
    django.assert_admin_only(&boss, 200).await;
    let caller = django.caller(&boss).await;
    assert_eq!(caller["user_class"], "TokenUser", "no user table behind it: {caller}");
    assert_eq!(caller["username"], "boss");
    assert_eq!(caller["id"], json!(user_id(&app, &boss).await));
    assert_eq!(caller["is_staff"], true);
    assert_eq!(caller["is_superuser"], false);
    assert_eq!(caller["groups"], json!(["ops"]));

    let (pleb, pleb_refresh) = app.login("pleb", PASSWORD).await;
    django.assert_admin_only(&pleb, 403).await;
    let caller = django.caller(&pleb).await;
    assert_eq!(caller["username"], "pleb");
    assert_eq!(caller["id"], json!(user_id(&app, &pleb).await));
    assert_eq!(caller["is_staff"], false);

    // Making oneself staff takes tokensmith's key.
    let promoted = tampered(&pleb, |c| c["is_staff"] = json!(true));
    django.assert_refused(&promoted, "Token is invalid").await;
    let kid = header(&pleb)["kid"].as_str().unwrap().to_owned();
    let mut staff_claims = claims(&pleb);
    staff_claims["is_staff"] = json!(true);
    let forged = SigningKey::generate_for(&kid, Algorithm::ES256).sign(&staff_claims);
    django.assert_refused(&forged, "Token is invalid").await;
    django.assert_refused(&boss_refresh, "Token has wrong type").await;

    // The operator demotes boss and promotes pleb: access tokens already issued keep what they
    // say until they expire (they are stateless), and the next refreshed ones follow the record.
    app.db.execute("UPDATE users SET is_staff = FALSE WHERE username = 'boss'").await;
    app.db.execute("UPDATE users SET is_staff = TRUE WHERE username = 'pleb'").await;
    django.assert_admin_only(&boss, 200).await;
    let (boss, _) = refreshed(&app, &boss_refresh).await;
    django.assert_admin_only(&boss, 403).await;
    assert_eq!(django.caller(&boss).await["is_staff"], false);
    let (pleb, _) = refreshed(&app, &pleb_refresh).await;
    django.assert_admin_only(&pleb, 200).await;
    assert_eq!(django.caller(&pleb).await["username"], "pleb");
}

/// The bug the setting fixes: without `TOKEN_CLAIMS`, simplejwt's `TokenUser` finds no
/// `is_staff` and no `username` in tokensmith's tokens.
async fn without_token_claims_django_sees_nobody_as_staff(backend: Backend) {
    let app = spawn_app(backend).await;
    create_user(&app, "boss", &["--staff", "--superuser"]);
    let django = Django::with_jwks(&app, &[]).await;
    let (boss, _) = app.login("boss", PASSWORD).await;
    django.assert_admin_only(&boss, 403).await;
    let caller = django.caller(&boss).await;
    assert_eq!(caller["id"], json!(user_id(&app, &boss).await), "the id travels regardless");
    assert_eq!(caller["username"], "");
    assert_eq!(caller["is_staff"], false);
    assert_eq!(caller["is_superuser"], false);
}

async fn issuer_and_audience_are_checked_on_both_sides(backend: Backend) {
    const ISSUER: &str = "https://auth.example.test";
    const AUDIENCE: &str = "orders-api";
    // A key of our own, so the test can sign tokens tokensmith would not issue.
    let key = SigningKey::generate_for("unused", Algorithm::ES256);
    let db = TestDb::new(backend).await;
    let key_file = db.dir().join("signing-key.pem");
    std::fs::write(&key_file, &key.private_pem).unwrap();
    let settings = [
        ("TOKEN_CLAIMS", TOKEN_CLAIMS),
        ("JWT_SIGNING_KEY_FILE", key_file.to_str().unwrap()),
        ("JWT_ISSUER", ISSUER),
        ("JWT_AUDIENCE", AUDIENCE),
    ];
    let app = spawn_app_on(db, &settings).await;
    create_user(&app, "boss", &["--staff"]);
    let django = Django::with_jwks(&app, &[("ISSUER", ISSUER), ("AUDIENCE", AUDIENCE)]).await;

    let (boss, _) = app.login("boss", PASSWORD).await;
    django.assert_admin_only(&boss, 200).await;
    assert_eq!(django.caller(&boss).await["username"], "boss");
    assert_eq!((claims(&boss)["iss"].as_str(), claims(&boss)["aud"].as_str()), (Some(ISSUER), Some(AUDIENCE)));

    // Signed with tokensmith's own key, under its kid, one claim changed at a time.
    let key = SigningKey { kid: header(&boss)["kid"].as_str().unwrap().to_owned(), ..key };
    let sign = |edit: &dyn Fn(&mut Value)| {
        let mut claims = claims(&boss);
        claims["jti"] = json!(uuid::Uuid::new_v4().simple().to_string());
        edit(&mut claims);
        key.sign(&claims)
    };
    django.assert_admin_only(&sign(&|_| {}), 200).await;
    django.assert_refused(&sign(&|c| c["aud"] = json!("billing-api")), "Token is invalid").await;
    django.assert_refused(&sign(&|c| c["iss"] = json!("https://elsewhere.test")), "Token is invalid").await;
    django.assert_refused(&sign(&|c| drop(c.as_object_mut().unwrap().remove("aud"))), "Token is invalid").await;
    let expired = sign(&|c| {
        c["iat"] = json!(now() - 600);
        c["exp"] = json!(now() - 300);
    });
    django.assert_refused(&expired, "Token is expired").await;
}

async fn a_renamed_user_id_claim_is_read_by_django(backend: Backend) {
    let app = spawn_app_with(backend, &[("TOKEN_CLAIMS", TOKEN_CLAIMS), ("USER_ID_CLAIM", "uid")]).await;
    create_user(&app, "boss", &["--staff"]);
    let django = Django::with_jwks(&app, &[("USER_ID_CLAIM", "uid")]).await;
    let (boss, _) = app.login("boss", PASSWORD).await;
    django.assert_admin_only(&boss, 200).await;
    let caller = django.caller(&boss).await;
    assert_eq!(caller["id"], json!(user_id(&app, &boss).await));
    assert_eq!(caller["username"], "boss");

    // Both sides must name the claim alike: a service left at `user_id` finds no user in it.
    let unrenamed = Django::with_jwks(&app, &[]).await;
    let reply = unrenamed.whoami(Some(&boss)).await;
    assert_eq!(reply.status, 401, "{}", reply.text);
    assert_eq!(reply.json()["detail"], "Token contained no recognizable user identification");
}

async fn hs256_with_a_shared_secret(backend: Backend) {
    let settings = [("TOKEN_CLAIMS", TOKEN_CLAIMS), ("JWT_ALGORITHM", "HS256"), ("JWT_SECRET", SECRET)];
    let app = spawn_app_with(backend, &settings).await;
    create_user(&app, "boss", &["--staff"]);
    create_user(&app, "pleb", &[]);
    // simplejwt verifies HS256 with its SIGNING_KEY; there is no key set to fetch.
    let django = Django::start(&[("ALGORITHM", "HS256"), ("SIGNING_KEY", SECRET)]).await;

    let (boss, _) = app.login("boss", PASSWORD).await;
    django.assert_admin_only(&boss, 200).await;
    assert_eq!(django.caller(&boss).await["username"], "boss");
    let (pleb, _) = app.login("pleb", PASSWORD).await;
    django.assert_admin_only(&pleb, 403).await;

    let mint = |secret: &str, claims: &Value| {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret.as_bytes()))
            .unwrap()
    };
    let mut staff_claims = claims(&pleb);
    staff_claims["is_staff"] = json!(true);
    django
        .assert_refused(&mint("another secret of at least thirty-two bytes", &staff_claims), "Token is invalid")
        .await;
    let mut expired = claims(&boss);
    expired["iat"] = json!(now() - 600);
    expired["exp"] = json!(now() - 300);
    django.assert_refused(&mint(SECRET, &expired), "Token is expired").await;
}
