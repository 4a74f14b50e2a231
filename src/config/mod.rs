//! Every setting, read from the environment once at start, validated, and parsed into typed
//! values that are kept (key files, the Clerk key, the webhook secret, the issuers file): what
//! starts is what runs, and nothing is parsed twice. An error names the variable at fault, so a
//! bad deployment fails in one readable line. Data only: no service is built here.

mod clerk;
mod issuers;
mod mail;
mod tokens;
mod vars;

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use base64::{Engine, engine::general_purpose::STANDARD};
use ipnet::IpNet;
use jsonwebtoken::DecodingKey;
use secrecy::{ExposeSecret, SecretString};

pub use self::clerk::ClerkConfig;
pub use self::issuers::{IssuerConfig, IssuerKeys};
pub use self::mail::{MailConfig, SmtpSecurity};
pub use self::tokens::{RESERVED_CLAIMS, TokenCustomisation, UserClaim, UsernameField};
use self::vars::{Vars, parse_bool, parse_number, positive_duration, positive_number};
pub use self::vars::{check_issuer_url, parse_duration};
pub use crate::key_material::JwtAlgorithm;
use crate::key_material::KeyMaterial;

/// A setting that could not be used, with the variable that holds it.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

impl ConfigError {
    fn new(var: &'static str, message: impl Into<String>) -> Self {
        Self { var, message: message.into() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where signing keys come from.
#[derive(Clone)]
pub enum KeySource {
    /// Generated once and kept in the database, so every replica signs with the same key.
    Database,
    /// A PEM private key file given by the operator, parsed at start.
    PemFile { path: PathBuf, key: Arc<KeyMaterial> },
    /// The HS256/HS384/HS512 shared secret.
    Secret { secret: SecretString, key: Arc<KeyMaterial> },
}

impl KeySource {
    /// The configured signing key; `None` when keys live in the database.
    pub fn signing_key(&self) -> Option<&Arc<KeyMaterial>> {
        match self {
            Self::Database => None,
            Self::PemFile { key, .. } | Self::Secret { key, .. } => Some(key),
        }
    }
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Database => f.write_str("Database"),
            Self::PemFile { path, .. } => write!(f, "PemFile({})", path.display()),
            Self::Secret { .. } => f.write_str("Secret([redacted])"),
        }
    }
}

/// Which database `DATABASE_URL` names, decided once from its scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite,
    Postgres,
}

/// What the store needs to open the database, and nothing else.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: String,
    pub kind: DatabaseKind,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

/// A public key given in PEM (Clerk's `CLERK_JWT_KEY`, an issuer's `public_key_pem`), parsed.
#[derive(Clone)]
pub struct PublicKey(pub Arc<DecodingKey>);

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PublicKey")
    }
}

/// How a provider's roles become `is_staff` / `is_superuser`: the claim (or dotted path) holding
/// a role or a list of roles, and the roles that make a user staff or superuser. Shared by Clerk
/// (`CLERK_ROLES_CLAIM`, …) and the issuers file (`roles_claim`, …); `external::roles` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleMapping {
    pub claim: String,
    pub staff_roles: Vec<String>,
    pub superuser_roles: Vec<String>,
}

/// A Svix webhook signing secret (`whsec_` + base64), decoded. Never printed.
#[derive(Clone)]
pub struct WebhookSecret(Arc<[u8]>);

impl WebhookSecret {
    /// `None` when the secret is not `whsec_` followed by base64.
    pub fn parse(secret: &SecretString) -> Option<Self> {
        let encoded = secret.expose_secret().strip_prefix("whsec_")?;
        let key = STANDARD.decode(encoded).ok().filter(|k| !k.is_empty())?;
        Some(Self(key.into()))
    }

    pub fn key(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret([redacted])")
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen_addr: SocketAddr,
    /// `METRICS_LISTEN_ADDR`: when set, `/metrics` is served there and not on `listen_addr`.
    pub metrics_listen_addr: Option<SocketAddr>,
    /// `MAX_CONNECTIONS`: connections served at once on `listen_addr`; more wait to be accepted.
    pub max_connections: u32,
    pub database: DatabaseSettings,
    pub access_token_lifetime: Duration,
    pub refresh_token_lifetime: Duration,
    pub rotate_refresh_tokens: bool,
    pub refresh_reuse_grace: Duration,
    pub jwt_algorithm: JwtAlgorithm,
    pub key_source: KeySource,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    pub jwt_leeway: Duration,
    /// The simplejwt settings that shape tokens and logins.
    pub tokens: TokenCustomisation,
    pub session_max_lifetime: Duration,
    /// Sessions born from a Clerk/IdP exchange end after this; the app exchanges again.
    pub exchange_session_max_lifetime: Duration,
    pub login_failure_limit: u32,
    pub login_failure_window: Duration,
    /// Failed logins from one client address, any usernames, before 429 (password spraying).
    pub login_address_failure_limit: u32,
    /// Audit events older than this are deleted by `tokens flush-expired`.
    pub audit_retention: Duration,
    /// `AUDIT_REFRESHES`: audit routine successful refreshes too (they are always counted in
    /// `/metrics`; security events are always audited).
    pub audit_refreshes: bool,
    /// A request not answered by then gets 408 and its connection is closed. It also bounds the
    /// wait for a request's complete headers, from the connection's start or the previous
    /// response: a connection that sends nothing, or drips its headers, is closed after it.
    pub request_timeout: Duration,
    pub trusted_proxies: Vec<IpNet>,
    pub cors_allowed_origins: Vec<String>,
    pub refresh_token_cookie: bool,
    pub clerk: Option<ClerkConfig>,
    pub clerk_webhook_signing_secret: Option<WebhookSecret>,
    pub clerk_secret_key: Option<SecretString>,
    pub clerk_api_url: String,
    /// `CLERK_ROLES_CLAIM` and the role lists: Clerk users' `is_staff` / `is_superuser` follow
    /// their metadata. Independent of `CLERK_ISSUER`: webhooks and sync apply it too.
    pub clerk_roles: Option<RoleMapping>,
    pub external_issuers_file: Option<PathBuf>,
    /// The entries of `EXTERNAL_ISSUERS_FILE`, parsed.
    pub external_issuers: Vec<IssuerConfig>,
    pub keys_reload_interval: Duration,
    pub password_hash_concurrency: usize,
    /// `PASSWORD_MIN_LENGTH`: the password policy's shortest password, in characters.
    pub password_min_length: usize,
    /// `SMTP_URL` and the password-reset settings; `None`: no password reset by email.
    pub mail: Option<MailConfig>,
    /// `ALLOW_REGISTRATION`: whether `POST /api/register/` creates users (404 when not).
    pub allow_registration: bool,
    /// `REGISTRATION_LIMIT`: accepted registrations per client address per hour.
    pub registration_limit: u32,
    pub log_format: LogFormat,
}

impl Config {
    /// Reads every setting from the environment (after `.env`, which `main` loads).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    /// Reads every setting through `lookup` (tests pass a map; unset variables are `None`).
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars(lookup);
        let database = Self::database(&vars)?;
        let jwt_algorithm = vars.parsed("JWT_ALGORITHM", "ES256", |s| s.parse())?;
        let key_source = Self::key_source(&vars, jwt_algorithm)?;

        let clerk = ClerkConfig::read(&vars)?;
        let clerk_webhook_signing_secret = clerk::webhook_secret(&vars)?;
        let clerk_roles = clerk::roles(&vars)?;
        let clerk_api_url = vars.raw("CLERK_API_URL").unwrap_or_else(|| "https://api.clerk.com".to_owned());
        check_issuer_url(&clerk_api_url).map_err(|m| ConfigError::new("CLERK_API_URL", m))?;

        let external_issuers_file = vars.raw("EXTERNAL_ISSUERS_FILE").map(PathBuf::from);
        let external_issuers = Self::external_issuers(external_issuers_file.as_deref(), clerk.as_ref())?;
        let trusted_proxies = Self::trusted_proxies(&vars)?;
        let cors_allowed_origins = Self::cors_allowed_origins(&vars)?;

        let default_concurrency = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).to_string();
        let listen_addr = vars.parsed("LISTEN_ADDR", "127.0.0.1:8000", parse_listen_addr)?;
        Ok(Self {
            listen_addr,
            metrics_listen_addr: Self::metrics_listen_addr(&vars, listen_addr)?,
            max_connections: vars.parsed("MAX_CONNECTIONS", "1024", parse_max_connections)?,
            database,
            access_token_lifetime: vars.parsed("ACCESS_TOKEN_LIFETIME", "5m", positive_duration)?,
            refresh_token_lifetime: vars.parsed("REFRESH_TOKEN_LIFETIME", "1d", positive_duration)?,
            rotate_refresh_tokens: vars.parsed("ROTATE_REFRESH_TOKENS", "true", parse_bool)?,
            refresh_reuse_grace: vars.parsed("REFRESH_REUSE_GRACE", "10s", parse_duration)?,
            jwt_algorithm,
            key_source,
            jwt_issuer: vars.raw("JWT_ISSUER"),
            jwt_audience: vars.raw("JWT_AUDIENCE"),
            jwt_leeway: vars.parsed("JWT_LEEWAY", "0s", parse_duration)?,
            tokens: TokenCustomisation::read(&vars)?,
            session_max_lifetime: vars.parsed("SESSION_MAX_LIFETIME", "30d", positive_duration)?,
            exchange_session_max_lifetime: vars.parsed("EXCHANGE_SESSION_MAX_LIFETIME", "1h", positive_duration)?,
            login_failure_limit: vars.parsed("LOGIN_FAILURE_LIMIT", "10", positive_number)?,
            login_failure_window: vars.parsed("LOGIN_FAILURE_WINDOW", "15m", positive_duration)?,
            login_address_failure_limit: vars.parsed("LOGIN_ADDRESS_FAILURE_LIMIT", "100", positive_number)?,
            audit_retention: vars.parsed("AUDIT_RETENTION", "90d", positive_duration)?,
            audit_refreshes: vars.parsed("AUDIT_REFRESHES", "false", parse_bool)?,
            request_timeout: vars.parsed("REQUEST_TIMEOUT", "30s", positive_duration)?,
            trusted_proxies,
            cors_allowed_origins,
            refresh_token_cookie: vars.parsed("REFRESH_TOKEN_COOKIE", "false", parse_bool)?,
            clerk,
            clerk_webhook_signing_secret,
            clerk_secret_key: vars.raw("CLERK_SECRET_KEY").map(SecretString::from),
            clerk_api_url,
            clerk_roles,
            external_issuers_file,
            external_issuers,
            keys_reload_interval: vars.parsed("KEYS_RELOAD_INTERVAL", "30s", positive_duration)?,
            password_hash_concurrency: vars.parsed("PASSWORD_HASH_CONCURRENCY", &default_concurrency, at_least_one)?,
            password_min_length: vars.parsed("PASSWORD_MIN_LENGTH", "8", parse_password_min_length)?,
            mail: MailConfig::read(&vars)?,
            allow_registration: vars.parsed("ALLOW_REGISTRATION", "false", parse_bool)?,
            registration_limit: vars.parsed("REGISTRATION_LIMIT", "10", positive_number)?,
            log_format: vars.parsed("LOG_FORMAT", "text", parse_log_format)?,
        })
    }

    fn metrics_listen_addr(vars: &Vars<'_>, listen_addr: SocketAddr) -> Result<Option<SocketAddr>, ConfigError> {
        let Some(raw) = vars.raw("METRICS_LISTEN_ADDR") else { return Ok(None) };
        let addr = parse_listen_addr(raw.trim()).map_err(|m| ConfigError::new("METRICS_LISTEN_ADDR", m))?;
        if addr == listen_addr && addr.port() != 0 {
            return Err(ConfigError::new(
                "METRICS_LISTEN_ADDR",
                format!("{addr} is LISTEN_ADDR; give it another port"),
            ));
        }
        Ok(Some(addr))
    }

    fn key_source(vars: &Vars<'_>, algorithm: JwtAlgorithm) -> Result<KeySource, ConfigError> {
        let key_file = vars.raw("JWT_SIGNING_KEY_FILE").map(PathBuf::from);
        if let Some(min_len) = algorithm.min_secret_len() {
            let alg = algorithm.as_str();
            let secret = vars
                .raw("JWT_SECRET")
                .ok_or_else(|| ConfigError::new("JWT_SECRET", format!("required when JWT_ALGORITHM={alg}")))?;
            if secret.len() < min_len {
                // RFC 7518 §3.2: an HMAC key at least as long as the hash's output.
                let message = format!("must be at least {min_len} bytes long for {alg} (its hash output size)");
                return Err(ConfigError::new("JWT_SECRET", message));
            }
            let key = KeyMaterial::from_secret(&secret, algorithm)
                .map_err(|e| ConfigError::new("JWT_ALGORITHM", e.to_string()))?;
            return Ok(KeySource::Secret { secret: SecretString::from(secret), key: Arc::new(key) });
        }
        let Some(path) = key_file else { return Ok(KeySource::Database) };
        let pem = std::fs::read_to_string(&path)
            .map_err(|e| ConfigError::new("JWT_SIGNING_KEY_FILE", format!("cannot read {}: {e}", path.display())))?;
        // Fail at start, not at the first login, when the key does not fit the algorithm.
        let key = KeyMaterial::from_pem(&pem, algorithm)
            .map_err(|e| ConfigError::new("JWT_SIGNING_KEY_FILE", e.to_string()))?;
        Ok(KeySource::PemFile { path, key: Arc::new(key) })
    }

    fn database(vars: &Vars<'_>) -> Result<DatabaseSettings, ConfigError> {
        let url = vars.raw("DATABASE_URL").unwrap_or_else(|| "sqlite://tokensmith.db?mode=rwc".to_owned());
        // The scheme first: a bad URL is the error to report, whatever else is wrong.
        let kind = Self::database_kind(&url)?;
        Ok(DatabaseSettings {
            url,
            kind,
            max_connections: vars.parsed("DATABASE_MAX_CONNECTIONS", "10", at_least_one)?,
            acquire_timeout: vars.parsed("DATABASE_ACQUIRE_TIMEOUT", "5s", positive_duration)?,
        })
    }

    fn database_kind(url: &str) -> Result<DatabaseKind, ConfigError> {
        if url.starts_with("sqlite:") {
            Ok(DatabaseKind::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(DatabaseKind::Postgres)
        } else {
            Err(ConfigError::new("DATABASE_URL", "unsupported scheme; use sqlite://… or postgres://…"))
        }
    }

    fn external_issuers(
        file: Option<&std::path::Path>,
        clerk: Option<&ClerkConfig>,
    ) -> Result<Vec<IssuerConfig>, ConfigError> {
        let Some(path) = file else { return Ok(Vec::new()) };
        let issuers = issuers::load(path).map_err(|m| ConfigError::new("EXTERNAL_ISSUERS_FILE", m))?;
        if let Some(clerk) = clerk
            && let Some(other) = issuers.iter().find(|i| i.issuer == clerk.issuer)
        {
            let message = format!("{}: the issuer of CLERK_ISSUER again", other.name);
            return Err(ConfigError::new("EXTERNAL_ISSUERS_FILE", message));
        }
        Ok(issuers)
    }

    fn trusted_proxies(vars: &Vars<'_>) -> Result<Vec<IpNet>, ConfigError> {
        vars.list("TRUSTED_PROXIES")
            .iter()
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| ConfigError::new("TRUSTED_PROXIES", format!("not a CIDR or address: {s:?}")))
            })
            .collect()
    }

    fn cors_allowed_origins(vars: &Vars<'_>) -> Result<Vec<String>, ConfigError> {
        let origins = vars.list("CORS_ALLOWED_ORIGINS");
        for origin in &origins {
            let ok = url::Url::parse(origin).map(|u| u.origin().ascii_serialization() == *origin).unwrap_or(false);
            if !ok {
                let message = format!("not an origin (scheme://host[:port], no path): {origin:?}");
                return Err(ConfigError::new("CORS_ALLOWED_ORIGINS", message));
            }
        }
        Ok(origins)
    }

    /// How long a signing key stays published after it stops signing: until every token
    /// it may have signed has expired.
    pub fn longest_token_lifetime(&self) -> Duration {
        self.access_token_lifetime.max(self.refresh_token_lifetime) + self.jwt_leeway
    }
}

fn parse_listen_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| format!("expected host:port such as 127.0.0.1:8000, got {s:?}"))
}

fn parse_max_connections(s: &str) -> Result<u32, String> {
    match positive_number(s)? {
        n if n > MAX_CONNECTIONS_CEILING => Err(format!("at most {MAX_CONNECTIONS_CEILING}, got {s:?}")),
        n => Ok(n),
    }
}

/// Linux's default ceiling on open files per process (`fs.nr_open`): more connections than
/// this could never be open at once.
const MAX_CONNECTIONS_CEILING: u32 = 1_048_576;

fn parse_password_min_length(s: &str) -> Result<usize, String> {
    match at_least_one::<usize>(s)? {
        n if n > PASSWORD_MIN_LENGTH_CEILING => Err(format!("at most {PASSWORD_MIN_LENGTH_CEILING}, got {s:?}")),
        n => Ok(n),
    }
}

/// A minimum no person could type: above it, the setting is a mistake (a byte count, a typo).
const PASSWORD_MIN_LENGTH_CEILING: usize = 4096;

fn parse_log_format(s: &str) -> Result<LogFormat, String> {
    match s {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("expected text or json, got {s:?}")),
    }
}

/// A count that must be at least 1 (pool sizes, threads).
fn at_least_one<T: std::str::FromStr + PartialEq + From<u8>>(s: &str) -> Result<T, String> {
    parse_number::<T>(s).and_then(|n| if n == T::from(0) { Err("must be at least 1".to_owned()) } else { Ok(n) })
}
