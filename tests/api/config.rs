//! Configuration: a bad setting stops the process at start with one line naming the variable,
//! and good settings mean what CONTRACT.md says they mean.

use std::{
    collections::HashMap,
    path::Path,
    process::{Command, Output, Stdio},
    time::Duration,
};

use tokensmith::config::{Config, JwtAlgorithm, KeySource};

use crate::helpers::*;

/// Runs the real binary in `dir` with only `env` (plus PATH and RUST_BACKTRACE=1, so a panic
/// would show its trace), killing it if it is still running after `timeout`.
pub fn run_binary(dir: &Path, env: &[(&str, &str)], args: &[&str], timeout: Duration) -> Output {
    let child = Command::new(binary())
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_BACKTRACE", "1")
        .envs(env.iter().copied())
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    // Output is read while the process runs: one larger than a pipe's buffer (the OpenAPI
    // document) would otherwise block the process writing it, and the wait would never end.
    let pid = child.id();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || sender.send(child.wait_with_output()));
    match receiver.recv_timeout(timeout) {
        Ok(output) => output.expect("wait for the binary"),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            let stderr = receiver.recv().ok().and_then(Result::ok).map(|out| out.stderr).unwrap_or_default();
            panic!(
                "tokensmith {args:?} with {env:?} was still running after {timeout:?}; stderr: {}",
                String::from_utf8_lossy(&stderr)
            );
        }
    }
}

/// The process failed with exactly one non-empty line on stderr and no panic; returns the line.
pub fn single_error_line(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "expected a failure, got {:?}; stderr: {stderr}", out.status);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected exactly one stderr line, got {stderr:?}");
    assert!(!lines[0].trim().is_empty(), "the error line is blank");
    assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"), "a panic, not an error: {stderr}");
    lines[0].to_owned()
}

/// Files named like the default database (`tokensmith.db`, `-wal`, `-shm`) in `dir`.
fn database_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("tokensmith.db"))
        .collect()
}

/// `tokensmith serve` in a fresh directory with only `env` refuses to start, in one line naming
/// `var`, without creating the default database. Returns the line.
fn serve_refuses_in(dir: &Path, env: &[(&str, &str)], var: &str) -> String {
    // A port-0 listener, so a configuration wrongly accepted cannot collide with anything.
    let mut all: Vec<(&str, &str)> = vec![("LISTEN_ADDR", "127.0.0.1:0")];
    all.extend_from_slice(env);
    let out = run_binary(dir, &all, &["serve"], Duration::from_secs(20));
    let line = single_error_line(&out);
    assert!(line.contains(var), "{env:?}: the error should name {var}: {line:?}");
    assert!(out.stdout.is_empty(), "{env:?}: nothing on stdout: {:?}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(database_files(dir), Vec::<String>::new(), "{env:?}: a config error must not create the database");
    line
}

pub fn serve_refuses(env: &[(&str, &str)], var: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    serve_refuses_in(dir.path(), env, var)
}

pub fn write_file(dir: &Path, name: &str, contents: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path.to_string_lossy().into_owned()
}

/// A private key made by `openssl genpkey`, as an operator would make one.
pub fn openssl_key(dir: &Path, name: &str, args: &[&str]) -> String {
    let path = dir.join(name);
    let out = Command::new("openssl")
        .arg("genpkey")
        .args(args)
        .arg("-out")
        .arg(&path)
        .output()
        .expect("openssl is installed");
    assert!(out.status.success(), "openssl genpkey {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    path.to_string_lossy().into_owned()
}

pub const OPENSSL_RSA: &[&str] = &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"];
pub const OPENSSL_P256: &[&str] = &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"];
pub const OPENSSL_ED25519: &[&str] = &["-algorithm", "ed25519"];

pub fn config_from(vars: &[(&str, &str)]) -> Result<Config, tokensmith::config::ConfigError> {
    let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Config::from_lookup(&|name| map.get(name).cloned())
}

#[test]
fn unsupported_algorithms_are_refused() {
    // `none` signs nothing, ES512 (P-521) is a JOSE algorithm tokensmith does not offer, HS1024 is nobody's.
    for alg in ["none", "ES512", "HS1024"] {
        let line = serve_refuses(&[("JWT_ALGORITHM", alg)], "JWT_ALGORITHM");
        assert!(line.contains(alg), "the error shows the rejected value: {line}");
    }
}

#[test]
fn malformed_durations_are_refused() {
    serve_refuses(&[("ACCESS_TOKEN_LIFETIME", "banana")], "ACCESS_TOKEN_LIFETIME");
    serve_refuses(&[("REFRESH_TOKEN_LIFETIME", "0s")], "REFRESH_TOKEN_LIFETIME");
    serve_refuses(&[("SESSION_MAX_LIFETIME", "forever")], "SESSION_MAX_LIFETIME");
    serve_refuses(&[("JWT_LEEWAY", "-5s")], "JWT_LEEWAY");
    serve_refuses(&[("EXCHANGE_SESSION_MAX_LIFETIME", "0s")], "EXCHANGE_SESSION_MAX_LIFETIME");
    serve_refuses(&[("EXCHANGE_SESSION_MAX_LIFETIME", "soon")], "EXCHANGE_SESSION_MAX_LIFETIME");
}

#[test]
fn a_boolean_that_is_not_one_is_refused() {
    serve_refuses(&[("ROTATE_REFRESH_TOKENS", "maybe")], "ROTATE_REFRESH_TOKENS");
    serve_refuses(&[("REFRESH_TOKEN_COOKIE", "sometimes")], "REFRESH_TOKEN_COOKIE");
}

#[test]
fn hs256_requires_a_secret_of_32_bytes() {
    serve_refuses(&[("JWT_ALGORITHM", "HS256")], "JWT_SECRET");
    let short = "x".repeat(31);
    let line = serve_refuses(&[("JWT_ALGORITHM", "HS256"), ("JWT_SECRET", &short)], "JWT_SECRET");
    assert!(!line.contains(&short), "the error must not echo the secret: {line}");
}

#[test]
fn unusable_signing_key_files_are_refused() {
    let keys = tempfile::tempdir().unwrap();
    serve_refuses(&[("JWT_SIGNING_KEY_FILE", "/nonexistent")], "JWT_SIGNING_KEY_FILE");

    let garbage =
        write_file(keys.path(), "garbage.pem", "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n");
    serve_refuses(&[("JWT_SIGNING_KEY_FILE", &garbage)], "JWT_SIGNING_KEY_FILE");

    // A good key of the wrong kind for the algorithm.
    let rsa = openssl_key(keys.path(), "rsa.pem", OPENSSL_RSA);
    serve_refuses(&[("JWT_SIGNING_KEY_FILE", &rsa)], "JWT_SIGNING_KEY_FILE"); // ES256 by default
    serve_refuses(&[("JWT_ALGORITHM", "ES256"), ("JWT_SIGNING_KEY_FILE", &rsa)], "JWT_SIGNING_KEY_FILE");
    let ed = openssl_key(keys.path(), "ed.pem", OPENSSL_ED25519);
    serve_refuses(&[("JWT_ALGORITHM", "RS256"), ("JWT_SIGNING_KEY_FILE", &ed)], "JWT_SIGNING_KEY_FILE");
    let ec = openssl_key(keys.path(), "ec.pem", OPENSSL_P256);
    serve_refuses(&[("JWT_ALGORITHM", "EdDSA"), ("JWT_SIGNING_KEY_FILE", &ec)], "JWT_SIGNING_KEY_FILE");
}

#[test]
fn unsupported_database_url_is_refused() {
    serve_refuses(&[("DATABASE_URL", "mysql://x")], "DATABASE_URL");
}

#[test]
fn unreachable_database_is_named_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = format!("sqlite://{}/no/such/dir/x.db?mode=rwc", dir.path().display());
    serve_refuses(&[("DATABASE_URL", &missing)], "DATABASE_URL");
    serve_refuses(
        &[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/x"), ("DATABASE_ACQUIRE_TIMEOUT", "1s")],
        "DATABASE_URL",
    );
}

#[test]
fn malformed_listen_addr_is_refused() {
    serve_refuses(&[("LISTEN_ADDR", "nonsense")], "LISTEN_ADDR");
    serve_refuses(&[("LISTEN_ADDR", "127.0.0.1")], "LISTEN_ADDR");
}

#[test]
fn connection_settings_are_checked() {
    serve_refuses(&[("MAX_CONNECTIONS", "0")], "MAX_CONNECTIONS");
    serve_refuses(&[("MAX_CONNECTIONS", "many")], "MAX_CONNECTIONS");
    assert_eq!(config_from(&[("MAX_CONNECTIONS", "2000000")]).unwrap_err().var, "MAX_CONNECTIONS");
    serve_refuses(&[("METRICS_LISTEN_ADDR", "9090")], "METRICS_LISTEN_ADDR");
    let same = config_from(&[("LISTEN_ADDR", "0.0.0.0:8000"), ("METRICS_LISTEN_ADDR", "0.0.0.0:8000")]).unwrap_err();
    assert_eq!(same.var, "METRICS_LISTEN_ADDR", "{same}");
    let config = config_from(&[("MAX_CONNECTIONS", "5000"), ("METRICS_LISTEN_ADDR", "0.0.0.0:9090")]).unwrap();
    assert_eq!(config.max_connections, 5000);
    assert_eq!(config.metrics_listen_addr, Some("0.0.0.0:9090".parse().unwrap()));
}

#[test]
fn zero_database_connections_is_refused() {
    serve_refuses(&[("DATABASE_MAX_CONNECTIONS", "0")], "DATABASE_MAX_CONNECTIONS");
    serve_refuses(&[("DATABASE_MAX_CONNECTIONS", "ten")], "DATABASE_MAX_CONNECTIONS");
}

#[test]
fn malformed_trusted_proxies_are_refused() {
    let line = serve_refuses(&[("TRUSTED_PROXIES", "10.0.0.0/8, not-a-cidr")], "TRUSTED_PROXIES");
    assert!(line.contains("not-a-cidr"), "names the bad entry: {line}");
}

#[test]
fn cors_origin_with_a_path_is_refused() {
    serve_refuses(&[("CORS_ALLOWED_ORIGINS", "https://a.example/path")], "CORS_ALLOWED_ORIGINS");
}

#[test]
fn plain_http_clerk_issuer_is_refused_unless_loopback() {
    serve_refuses(&[("CLERK_ISSUER", "http://clerk.example.com")], "CLERK_ISSUER");
    assert!(config_from(&[("CLERK_ISSUER", "http://127.0.0.1:9999")]).is_ok());
    assert!(config_from(&[("CLERK_ISSUER", "https://clerk.example.com")]).is_ok());
}

#[test]
fn bad_clerk_settings_are_refused_without_echoing_secrets() {
    let line = serve_refuses(&[("CLERK_WEBHOOK_SIGNING_SECRET", "whsec_not*base64!")], "CLERK_WEBHOOK_SIGNING_SECRET");
    assert!(!line.contains("not*base64"), "the secret leaked: {line}");
    serve_refuses(&[("CLERK_WEBHOOK_SIGNING_SECRET", "c2VjcmV0")], "CLERK_WEBHOOK_SIGNING_SECRET");
    serve_refuses(&[("CLERK_ISSUER", "https://clerk.example.com"), ("CLERK_JWT_KEY", "not a pem")], "CLERK_JWT_KEY");
    serve_refuses(&[("CLERK_ISSUER", "https://clerk.example.com"), ("CLERK_JWKS_URL", "ftp://x")], "CLERK_JWKS_URL");
    assert!(config_from(&[("CLERK_WEBHOOK_SIGNING_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]).is_ok());
}

#[test]
fn clerk_role_settings_are_checked() {
    // Role lists with no path to read the roles from would do nothing: refused, naming the list.
    serve_refuses(&[("CLERK_STAFF_ROLES", "admin")], "CLERK_STAFF_ROLES");
    serve_refuses(&[("CLERK_SUPERUSER_ROLES", "owner")], "CLERK_SUPERUSER_ROLES");
    // A path with no role lists would take staff from every Clerk user.
    serve_refuses(&[("CLERK_ROLES_CLAIM", "public_metadata.role")], "CLERK_ROLES_CLAIM");
    let staff = ("CLERK_STAFF_ROLES", "admin");
    serve_refuses(&[("CLERK_ROLES_CLAIM", "public_metadata..role"), staff], "CLERK_ROLES_CLAIM");
    // Users write their own unsafe_metadata from the browser.
    let line = serve_refuses(&[("CLERK_ROLES_CLAIM", "unsafe_metadata.role"), staff], "CLERK_ROLES_CLAIM");
    assert!(line.contains("unsafe_metadata"), "{line}");

    let roles = config_from(&[("CLERK_ROLES_CLAIM", "metadata.roles"), ("CLERK_SUPERUSER_ROLES", "owner, root")])
        .unwrap()
        .clerk_roles
        .expect("roles configured, with no CLERK_ISSUER (webhooks and sync use them too)");
    assert_eq!((roles.claim.as_str(), roles.superuser_roles.len()), ("metadata.roles", 2));
    assert!(config_from(&[]).unwrap().clerk_roles.is_none());
}

#[test]
fn login_limits_must_be_positive() {
    serve_refuses(&[("LOGIN_FAILURE_LIMIT", "0")], "LOGIN_FAILURE_LIMIT");
    serve_refuses(&[("LOGIN_ADDRESS_FAILURE_LIMIT", "-3")], "LOGIN_ADDRESS_FAILURE_LIMIT");
    serve_refuses(&[("AUDIT_RETENTION", "0s")], "AUDIT_RETENTION");
    serve_refuses(&[("REQUEST_TIMEOUT", "0s")], "REQUEST_TIMEOUT");
}

#[test]
fn a_bad_issuers_file_is_named_with_its_entry_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("name = \"clerk\"\nissuer = \"https://x\"\njwks_url = \"https://x/jwks\"", "name"),
        ("name = \"a\"\nissuer = \"https://x\"\njwks_url = \"https://x/jwks\"\nalgorithms = [\"HS256\"]", "algorithms"),
        ("name = \"a\"\nissuer = \"https://x\"\njwks_url = \"https://x/jwks\"\ndiscovery = true", "jwks_url"),
        ("name = \"a\"\nissuer = \"https://x\"\njwks_url = \"http://x.example/jwks\"", "jwks_url"),
        ("name = \"a\"\nissuer = \"https://x\"\npublic_key_pem = \"nope\"", "public_key_pem"),
        ("name = \"a\"\nissuer = \"https://x\"\njwks_url = \"https://x/jwks\"\nrole_claim = \"roles\"", "role_claim"),
    ];
    for (i, (entry, key)) in cases.iter().enumerate() {
        let file = write_file(dir.path(), &format!("issuers{i}.toml"), &format!("[[issuer]]\n{entry}\n"));
        let line = serve_refuses(&[("EXTERNAL_ISSUERS_FILE", &file)], "EXTERNAL_ISSUERS_FILE");
        assert!(line.contains(&format!("issuers{i}.toml")) && line.contains(key), "{entry}: {line}");
    }
}

/// `/api/token/verify/` and the other fixed routes answer before `/api/token/{provider}/`, so an
/// issuer named after one could never be reached: refused at start, naming the entry and key.
#[test]
fn an_issuer_named_after_a_fixed_route_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for fixed in ["verify", "refresh", "blacklist", "revoke-all", "exchange", "sliding"] {
        let entry = format!("[[issuer]]\nname = \"{fixed}\"\nissuer = \"https://x\"\njwks_url = \"https://x/jwks\"\n");
        let file = write_file(dir.path(), &format!("{fixed}.toml"), &entry);
        let line = serve_refuses(&[("EXTERNAL_ISSUERS_FILE", &file)], "EXTERNAL_ISSUERS_FILE");
        assert!(line.contains(&format!("({fixed}): name:")) && line.contains("fixed route"), "{fixed}: {line}");
    }
}

#[test]
fn clerk_without_authorized_parties_warns_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let warned = |env: &[(&str, &str)]| {
        let out = run_binary(dir.path(), env, &["migrate"], Duration::from_secs(20));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stderr).contains("CLERK_AUTHORIZED_PARTIES is not set")
    };
    assert!(warned(&[("CLERK_ISSUER", "https://clerk.example.com")]));
    assert!(!warned(&[
        ("CLERK_ISSUER", "https://clerk.example.com"),
        ("CLERK_AUTHORIZED_PARTIES", "https://app.example.com")
    ]));
}

#[test]
fn every_subcommand_checks_the_configuration() {
    for args in
        [&["migrate"][..], &["user", "list"], &["keys", "list"], &["tokens", "flush-expired"], &["audit", "tail"]]
    {
        let dir = tempfile::tempdir().unwrap();
        let out = run_binary(dir.path(), &[("JWT_ALGORITHM", "none")], args, Duration::from_secs(20));
        let line = single_error_line(&out);
        assert!(line.contains("JWT_ALGORITHM"), "{args:?}: {line}");
        assert_eq!(database_files(dir.path()), Vec::<String>::new(), "{args:?} created the database");
    }
}

#[test]
fn malformed_dotenv_stops_the_process_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), ".env", "LISTEN_ADDR=127.0.0.1:0\nFOO=\"unterminated\n");
    serve_refuses_in(dir.path(), &[], ".env");

    // The line at fault may hold a secret: the error must not print it.
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), ".env", "JWT_SECRET=\"s3cr3t-value-that-must-not-leak\n");
    let line = serve_refuses_in(dir.path(), &[], ".env");
    assert!(!line.contains("s3cr3t"), "the .env error leaks the value: {line}");
}

#[test]
fn dotenv_in_the_working_directory_is_read() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), ".env", "# settings\nACCESS_TOKEN_LIFETIME=banana\n");
    serve_refuses_in(dir.path(), &[], "ACCESS_TOKEN_LIFETIME");
}

#[test]
fn the_environment_wins_over_dotenv() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), ".env", "ACCESS_TOKEN_LIFETIME=banana\n");
    let out = run_binary(dir.path(), &[("ACCESS_TOKEN_LIFETIME", "5m")], &["migrate"], Duration::from_secs(30));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn durations_parse_as_documented() {
    for (text, seconds) in [("90s", 90), ("5m", 300), ("12h", 43_200), ("7d", 604_800)] {
        let config = config_from(&[("ACCESS_TOKEN_LIFETIME", text), ("REFRESH_TOKEN_LIFETIME", text)])
            .unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(config.access_token_lifetime, Duration::from_secs(seconds), "{text}");
        assert_eq!(config.refresh_token_lifetime, Duration::from_secs(seconds), "{text}");
    }
    let config =
        config_from(&[("SESSION_MAX_LIFETIME", "7d"), ("JWT_LEEWAY", "90s"), ("REFRESH_REUSE_GRACE", "5m")]).unwrap();
    assert_eq!(config.session_max_lifetime, Duration::from_secs(604_800));
    assert_eq!(config.jwt_leeway, Duration::from_secs(90));
    assert_eq!(config.refresh_reuse_grace, Duration::from_secs(300));
    let config = config_from(&[("EXCHANGE_SESSION_MAX_LIFETIME", "15m")]).unwrap();
    assert_eq!(config.exchange_session_max_lifetime, Duration::from_secs(900));
}

#[test]
fn defaults_match_the_contract() {
    let config = config_from(&[]).expect("no settings at all is a valid configuration");
    assert_eq!(config.access_token_lifetime, Duration::from_secs(5 * 60));
    assert_eq!(config.refresh_token_lifetime, Duration::from_secs(24 * 3600));
    assert!(config.rotate_refresh_tokens);
    assert_eq!(config.refresh_reuse_grace, Duration::from_secs(10));
    assert_eq!(config.jwt_algorithm, JwtAlgorithm::Es256);
    assert_eq!(config.jwt_leeway, Duration::ZERO);
    assert_eq!(config.session_max_lifetime, Duration::from_secs(30 * 86_400));
    assert_eq!(config.exchange_session_max_lifetime, Duration::from_secs(3600));
    assert_eq!(config.listen_addr.to_string(), "127.0.0.1:8000");
    assert_eq!(config.metrics_listen_addr, None, "/metrics stays on the API listener unless asked");
    assert_eq!(config.max_connections, 1024);
    assert_eq!(config.request_timeout, Duration::from_secs(30));
    assert_eq!(config.database.url, "sqlite://tokensmith.db?mode=rwc");
    assert!(matches!(config.key_source, KeySource::Database));
    assert_eq!(config.login_failure_limit, 10);
    assert_eq!(config.login_failure_window, Duration::from_secs(15 * 60));
    assert!(!config.refresh_token_cookie);
    assert!(config.jwt_issuer.is_none() && config.jwt_audience.is_none() && config.clerk.is_none());
    assert!(config.trusted_proxies.is_empty() && config.cors_allowed_origins.is_empty());

    // `VAR=` with nothing after it (as in a copied .env.example) means the default too.
    let blank =
        config_from(&[("ACCESS_TOKEN_LIFETIME", ""), ("JWT_ALGORITHM", " "), ("ROTATE_REFRESH_TOKENS", "")]).unwrap();
    assert_eq!(blank.access_token_lifetime, Duration::from_secs(300));
    assert_eq!(blank.jwt_algorithm, JwtAlgorithm::Es256);
    assert!(blank.rotate_refresh_tokens);
}

#[test]
fn booleans_and_algorithms_accept_their_documented_spellings() {
    assert!(!config_from(&[("ROTATE_REFRESH_TOKENS", "false")]).unwrap().rotate_refresh_tokens);
    assert!(config_from(&[("ROTATE_REFRESH_TOKENS", "true")]).unwrap().rotate_refresh_tokens);
    let secret = "s".repeat(32);
    let hs = config_from(&[("JWT_ALGORITHM", "HS256"), ("JWT_SECRET", &secret)]).expect("a 32-byte secret is enough");
    assert_eq!(hs.jwt_algorithm, JwtAlgorithm::Hs256);
    let kept = match &hs.key_source {
        tokensmith::config::KeySource::Secret { secret, .. } => secrecy::ExposeSecret::expose_secret(secret).to_owned(),
        other => panic!("HS256 keeps its secret, got {other:?}"),
    };
    assert_eq!(kept, secret);
    // The secret never shows in a debug dump of the configuration (which may be logged).
    assert!(!format!("{hs:?}").contains(&secret));
}

#[test]
fn key_files_for_each_algorithm_load() {
    tokensmith::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    for (alg, algorithm, openssl) in [
        ("EdDSA", JwtAlgorithm::EdDsa, OPENSSL_ED25519),
        ("RS256", JwtAlgorithm::Rs256, OPENSSL_RSA),
        ("ES256", JwtAlgorithm::Es256, OPENSSL_P256),
    ] {
        let generated = tokensmith::key_material::generate_pem(algorithm).unwrap();
        let generated = write_file(dir.path(), &format!("{alg}-generated.pem"), &generated);
        let from_openssl = openssl_key(dir.path(), &format!("{alg}-openssl.pem"), openssl);
        for path in [generated, from_openssl] {
            let config = config_from(&[("JWT_ALGORITHM", alg), ("JWT_SIGNING_KEY_FILE", &path)])
                .unwrap_or_else(|e| panic!("{alg} key {path}: {e}"));
            assert_eq!(config.jwt_algorithm, algorithm);
            assert!(matches!(&config.key_source, KeySource::PemFile { path: p, .. } if p.to_string_lossy() == path));
        }
    }
}

/// A key file an operator made with openssl signs the tokens, and its public half is what the
/// JWKS publishes: a downstream service verifies the access token with it.
async fn key_file_signs_tokens_that_verify_with_the_jwks(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    for (alg, openssl) in [("EdDSA", OPENSSL_ED25519), ("RS256", OPENSSL_RSA), ("ES256", OPENSSL_P256)] {
        let path = openssl_key(dir.path(), &format!("{alg}.pem"), openssl);
        let app = spawn_app_with(backend, &[("JWT_ALGORITHM", alg), ("JWT_SIGNING_KEY_FILE", &path)]).await;
        let jwks = app.get("/.well-known/jwks.json").await;
        assert_eq!(jwks.status, 200);
        let keys = jwks.json()["keys"].as_array().unwrap().clone();
        assert_eq!(keys.len(), 1, "{alg}: {}", jwks.text);
        assert_eq!(keys[0]["alg"], alg);
        assert_eq!(keys[0]["use"], "sig");
        assert!(
            keys[0].get("d").is_none() && keys[0].get("p").is_none(),
            "{alg}: private parts published: {}",
            jwks.text
        );

        let (access, _) = app.alice().await;
        assert_eq!(header(&access)["alg"], alg);
        assert_eq!(header(&access)["kid"], keys[0]["kid"]);
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(keys[0].clone()).unwrap();
        let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
        let validation = jsonwebtoken::Validation::new(alg.parse().unwrap());
        jsonwebtoken::decode::<serde_json::Value>(&access, &key, &validation)
            .unwrap_or_else(|e| panic!("{alg}: the access token does not verify with the JWKS: {e}"));

        // Restarting on the same file keeps the same kid, so downstream caches stay valid.
        let again = Config::from_lookup(&|name| app.env.get(name).cloned()).unwrap();
        let material = again.key_source.signing_key().expect("a key file");
        assert_eq!(keys[0]["kid"], material.kid.as_str());
    }
}

crate::db_test!(key_file_signs_tokens_that_verify_with_the_jwks);

/// The SQLite file holds private signing keys and password hashes: created owner-only (0600)
/// with its `-wal` and `-shm` files, by the server and by the CLI alike; an existing file that
/// others can read is reported at start.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_files_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;

    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite).await;
    app.alice().await;
    for name in ["tokensmith.db", "tokensmith.db-wal", "tokensmith.db-shm"] {
        let path = app.db.dir().join(name);
        assert_eq!(mode(&path), 0o600, "{name} is {:o}", mode(&path));
    }

    let dir = tempfile::tempdir().unwrap();
    let out = run_binary(dir.path(), &[], &["user", "create", "ops"], Duration::from_secs(20));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for name in database_files(dir.path()) {
        assert_eq!(mode(&dir.path().join(&name)), 0o600, "{name} made by the CLI");
    }

    std::fs::set_permissions(dir.path().join("tokensmith.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run_binary(dir.path(), &[], &["migrate"], Duration::from_secs(20));
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("readable by others") && stderr.contains("644"), "{stderr}");
}
