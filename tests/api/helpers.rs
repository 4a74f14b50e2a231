//! Spawns a real tokensmith on a port-0 listener against a throwaway database, and talks
//! HTTP to it. Every test runs on SQLite, and on PostgreSQL with `--include-ignored` and
//! TEST_POSTGRES_URL set.

use std::{
    collections::HashMap,
    io::Write,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use serde_json::Value;
use tokensmith::{config::Config, http::Application, store::Store};

/// Which database a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// PostgreSQL, at `TEST_POSTGRES_URL`. The PostgreSQL halves of `db_test!` and `pg_test!` are
    /// `#[ignore]`d, so `cargo test` lists them as ignored rather than passing them silently;
    /// `cargo test -- --include-ignored` runs them, and then a missing URL is a failure.
    pub fn postgres() -> Self {
        match std::env::var("TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => Self::Postgres,
            _ => panic!(
                "TEST_POSTGRES_URL is not set: PostgreSQL tests need postgres://user@host:5432/db (.ci/run sets it)"
            ),
        }
    }
}

/// Runs an `async fn name(backend: Backend)` as two tests: `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! db_test {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "PostgreSQL: set TEST_POSTGRES_URL and run cargo test -- --include-ignored"]
            async fn postgres() {
                super::$name($crate::helpers::Backend::postgres()).await
            }
        }
    )+};
}

/// Runs an `async fn name(backend: Backend)` on PostgreSQL only, as `name::postgres`: for what
/// only PostgreSQL deployments do (several replicas on one database, a database across a network).
#[macro_export]
macro_rules! pg_test {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "PostgreSQL: set TEST_POSTGRES_URL and run cargo test -- --include-ignored"]
            async fn postgres() {
                super::$name($crate::helpers::Backend::postgres()).await
            }
        }
    )+};
}

/// A database that exists for one test and is dropped after it.
pub struct TestDb {
    pub url: String,
    dir: tempfile::TempDir,
    postgres: Option<(String, String)>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("tokensmith.db").display());
                Self { url, dir, postgres: None }
            }
            Backend::Postgres => {
                let admin = std::env::var("TEST_POSTGRES_URL").expect("TEST_POSTGRES_URL");
                let name = format!("tokensmith_test_{}", uuid::Uuid::new_v4().simple());
                run_admin_sql(&admin, &format!("CREATE DATABASE {name}")).await;
                let mut url = url::Url::parse(&admin).expect("TEST_POSTGRES_URL is a URL");
                url.set_path(&name);
                Self { url: url.to_string(), dir, postgres: Some((admin, name)) }
            }
        }
    }

    /// Runs one statement on the database from outside the server (what an operator or an
    /// accident might do).
    pub async fn execute(&self, sql: &str) {
        use sqlx::Connection;
        if self.url.starts_with("sqlite:") {
            let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
            sqlx::query(sql).execute(&mut conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        } else {
            let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
            sqlx::query(sql).execute(&mut conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }

    /// The first column of every row `sql` selects, as text.
    pub async fn strings(&self, sql: &str) -> Vec<String> {
        use sqlx::Connection;
        if self.url.starts_with("sqlite:") {
            let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
            sqlx::query_scalar(sql).fetch_all(&mut conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
        } else {
            let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
            sqlx::query_scalar(sql).fetch_all(&mut conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
        }
    }

    /// A scratch directory that lives as long as the database.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

async fn run_admin_sql(admin_url: &str, sql: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(admin_url).await.expect("connect to TEST_POSTGRES_URL");
    sqlx::query(sql).execute(&mut conn).await.expect(sql);
    let _ = conn.close().await;
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.postgres.take() {
            // Drop runs outside any runtime we may block, so the cleanup gets its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(run_admin_sql(&admin, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")));
            })
            .join();
        }
    }
}

/// An HTTP client aimed at one tokensmith listener.
pub struct Http {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
}

impl Http {
    pub fn new(addr: SocketAddr) -> Self {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { addr, client }
    }
}

/// A server running inside the test process (`Deref`s to its `Http` client).
pub struct TestApp {
    pub http: Http,
    /// Where `/metrics` is served when the test set `METRICS_LISTEN_ADDR`.
    pub metrics_addr: Option<SocketAddr>,
    pub store: Store,
    pub config: Config,
    /// The settings the server runs with, for CLI calls against the same database.
    pub env: HashMap<String, String>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    // Last: the database outlives the server.
    pub db: TestDb,
}

/// Settings every test server gets unless it overrides them.
pub fn base_env(db: &TestDb) -> HashMap<String, String> {
    HashMap::from([
        ("DATABASE_URL".to_owned(), db.url.clone()),
        ("LISTEN_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
        ("DATABASE_MAX_CONNECTIONS".to_owned(), "5".to_owned()),
    ])
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, &[]).await
}

pub async fn spawn_app_with(backend: Backend, settings: &[(&str, &str)]) -> TestApp {
    let db = TestDb::new(backend).await;
    spawn_app_on(db, settings).await
}

/// Serves on an existing database (several servers may share one).
pub async fn spawn_app_on(db: TestDb, settings: &[(&str, &str)]) -> TestApp {
    tokensmith::install_crypto_provider();
    let mut env = base_env(&db);
    env.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let config = Config::from_lookup(&|name| env.get(name).cloned()).expect("test config is valid");
    let app = Application::build(config.clone()).await.expect("the app builds");
    let addr = app.local_addr();
    let metrics_addr = app.metrics_addr();
    let store = app.store();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    TestApp { http: Http::new(addr), metrics_addr, store, config, env, shutdown: Some(tx), db }
}

impl std::ops::Deref for TestApp {
    type Target = Http;
    fn deref(&self) -> &Http {
        &self.http
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A string field of the JSON body.
    pub fn field(&self, name: &str) -> String {
        self.json()[name].as_str().unwrap_or_else(|| panic!("no {name:?} in {}", self.text)).to_owned()
    }
}

pub async fn read(response: reqwest::Response) -> Reply {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    Reply { status, headers, text }
}

impl Http {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn post_json(&self, path: &str, body: Value) -> Reply {
        read(self.client.post(self.url(path)).json(&body).send().await.unwrap()).await
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Reply {
        read(self.client.post(self.url(path)).form(form).send().await.unwrap()).await
    }

    pub async fn post_raw(&self, path: &str, content_type: &str, body: impl Into<reqwest::Body>) -> Reply {
        let request = self.client.post(self.url(path)).header("content-type", content_type).body(body);
        read(request.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        read(self.client.get(self.url(path)).send().await.unwrap()).await
    }

    pub async fn get_bearer(&self, path: &str, token: &str) -> Reply {
        read(self.client.get(self.url(path)).bearer_auth(token).send().await.unwrap()).await
    }

    pub async fn post_bearer(&self, path: &str, token: &str, body: Value) -> Reply {
        read(self.client.post(self.url(path)).bearer_auth(token).json(&body).send().await.unwrap()).await
    }

    /// Logs in and returns (access, refresh).
    pub async fn login(&self, username: &str, password: &str) -> (String, String) {
        let reply =
            self.post_json("/api/token/", serde_json::json!({"username": username, "password": password})).await;
        assert_eq!(reply.status, 200, "login failed: {}", reply.text);
        (reply.field("access"), reply.field("refresh"))
    }
}

impl TestApp {
    /// Creates a user through the CLI, as an operator would.
    pub fn create_user(&self, username: &str, password: &str) {
        let out = self
            .cli_with_stdin(&["user", "create", username, "--email", "u@example.com", "--password-stdin"], password);
        assert!(out.status.success(), "user create failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// A user `alice` (password `correct horse`), logged in: (access, refresh).
    pub async fn alice(&self) -> (String, String) {
        self.create_user("alice", "correct horse");
        self.login("alice", "correct horse").await
    }

    /// `tokensmith user list --json`: every user, as the operator sees them.
    pub fn users(&self) -> Vec<Value> {
        let out = self.cli(&["user", "list", "--json"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        run_cli(&self.env, self.db.dir(), args, None)
    }

    pub fn cli_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        run_cli(&self.env, self.db.dir(), args, Some(stdin))
    }
}

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tokensmith"))
}

/// Runs the real binary with exactly `env` (plus PATH), in `dir` so no stray `.env` is read.
pub fn run_cli(env: &HashMap<String, String>, dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = Command::new(binary());
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env)
        .env_remove("LISTEN_ADDR")
        .current_dir(dir)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("the binary runs");
    if let Some(input) = stdin {
        // The command may exit without reading (a refused argument): a broken pipe is its answer.
        let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    }
    child.wait_with_output().unwrap()
}

/// The claims of a JWT, read without checking anything.
pub fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// The header of a JWT, read without checking anything.
pub fn header(token: &str) -> Value {
    let part = token.split('.').next().unwrap();
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

pub const TOKEN_INVALID: &str = r#"{"detail":"Token is invalid","code":"token_not_valid"}"#;
pub const TOKEN_EXPIRED: &str = r#"{"detail":"Token is expired","code":"token_not_valid"}"#;
pub const TOKEN_WRONG_TYPE: &str = r#"{"detail":"Token has wrong type","code":"token_not_valid"}"#;
pub const TOKEN_BLACKLISTED: &str = r#"{"detail":"Token is blacklisted","code":"token_not_valid"}"#;
pub const NO_ACTIVE_ACCOUNT: &str = r#"{"detail":"No active account found with the given credentials"}"#;

/// A 401 as simplejwt sends it: exact body, and the challenge header.
pub fn assert_401(reply: &Reply, body: &str) {
    assert_eq!(reply.status, 401, "{}", reply.text);
    assert_eq!(reply.text, body);
    assert_eq!(reply.header("www-authenticate"), Some("Bearer realm=\"api\""));
}

/// The published key set, `GET /.well-known/jwks.json`.
pub async fn jwks(app: &TestApp) -> Value {
    let reply = app.get("/.well-known/jwks.json").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json()
}

/// The member of a key set with `kid`.
pub fn jwk_with_kid(set: &Value, kid: &str) -> Value {
    set["keys"]
        .as_array()
        .expect("a keys array")
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap_or_else(|| panic!("kid {kid} is not in the JWKS {set}"))
        .clone()
}
