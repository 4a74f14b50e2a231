//! Every setting, read from the environment once at start and validated.
//! An error names the variable at fault, so a bad deployment fails in one readable line.

use std::{net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};

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
pub enum JwtAlgorithm {
    Hs256,
    Rs256,
    Es256,
    EdDsa,
}

impl JwtAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
        }
    }

    pub fn jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        match self {
            Self::Hs256 => jsonwebtoken::Algorithm::HS256,
            Self::Rs256 => jsonwebtoken::Algorithm::RS256,
            Self::Es256 => jsonwebtoken::Algorithm::ES256,
            Self::EdDsa => jsonwebtoken::Algorithm::EdDSA,
        }
    }
}

impl FromStr for JwtAlgorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "HS256" => Ok(Self::Hs256),
            "RS256" => Ok(Self::Rs256),
            "ES256" => Ok(Self::Es256),
            "EdDSA" => Ok(Self::EdDsa),
            other => Err(format!("unsupported algorithm {other:?}; use one of HS256, RS256, ES256, EdDSA")),
        }
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
    /// A PEM private key file given by the operator (its contents, read at start).
    PemFile { path: PathBuf, pem: SecretString },
    /// The HS256 shared secret.
    Secret(SecretString),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Database => f.write_str("Database"),
            Self::PemFile { path, .. } => write!(f, "PemFile({})", path.display()),
            Self::Secret(_) => f.write_str("Secret([redacted])"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen_addr: SocketAddr,
    pub database_url: String,
    pub database_max_connections: u32,
    pub database_acquire_timeout: Duration,
    pub access_token_lifetime: Duration,
    pub refresh_token_lifetime: Duration,
    pub rotate_refresh_tokens: bool,
    pub refresh_reuse_grace: Duration,
    pub jwt_algorithm: JwtAlgorithm,
    pub key_source: KeySource,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    pub jwt_leeway: Duration,
    pub session_max_lifetime: Duration,
    pub login_failure_limit: u32,
    pub login_failure_window: Duration,
    /// Failed logins from one client address, any usernames, before 429 (password spraying).
    pub login_address_failure_limit: u32,
    /// Audit events older than this are deleted by `tokens flush-expired`.
    pub audit_retention: Duration,
    /// A request not answered by then gets 408 and its connection is closed.
    pub request_timeout: Duration,
    pub trusted_proxies: Vec<IpNet>,
    pub cors_allowed_origins: Vec<String>,
    pub refresh_token_cookie: bool,
    pub clerk: Option<ClerkConfig>,
    pub clerk_webhook_signing_secret: Option<SecretString>,
    pub clerk_secret_key: Option<SecretString>,
    pub clerk_api_url: String,
    pub external_issuers_file: Option<PathBuf>,
    /// The entries of `EXTERNAL_ISSUERS_FILE`, checked.
    pub external_issuers: Vec<crate::external::issuers::IssuerConfig>,
    pub keys_reload_interval: Duration,
    pub password_hash_concurrency: usize,
    pub log_format: LogFormat,
}

#[derive(Debug, Clone)]
pub struct ClerkConfig {
    pub issuer: String,
    pub jwks_url: String,
    pub jwt_key_pem: Option<String>,
    pub authorized_parties: Vec<String>,
}

/// Where settings are read from: the process environment, or a map in tests.
struct Vars<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Vars<'_> {
    /// A missing or empty variable is `None`.
    fn raw(&self, var: &'static str) -> Option<String> {
        (self.0)(var).filter(|v| !v.trim().is_empty())
    }

    fn parsed<T>(
        &self,
        var: &'static str,
        default: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        let value = self.raw(var).unwrap_or_else(|| default.to_owned());
        parse(value.trim()).map_err(|message| ConfigError::new(var, message))
    }

    fn list(&self, var: &'static str) -> Vec<String> {
        self.raw(var)
            .map(|v| v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
            .unwrap_or_default()
    }
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|_| format!("invalid duration {s:?}; write it as 90s, 5m, 12h or 7d"))
}

fn positive_number(s: &str) -> Result<u32, String> {
    match parse_number::<u32>(s)? {
        0 => Err(format!("must be at least 1, got {s:?}")),
        n => Ok(n),
    }
}

fn positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err(format!("must be longer than zero, got {s:?}")),
        d => Ok(d),
    }
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("expected true or false, got {s:?}")),
    }
}

fn parse_number<T: FromStr>(s: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("expected a whole number, got {s:?}"))
}

/// `https://` is required for Clerk and other issuers, except plain http to a loopback
/// host, which local development and tests need.
pub fn check_issuer_url(value: &str) -> Result<(), String> {
    let url = url::Url::parse(value).map_err(|_| format!("not a URL: {value:?}"))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(format!("must be an https:// URL (http:// only to a loopback host), got {value:?}")),
    }
}

impl Config {
    /// Reads every setting from the environment (after `.env`, which `main` loads).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    /// Reads every setting through `lookup` (tests pass a map; unset variables are `None`).
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars(lookup);
        let database_url = vars.raw("DATABASE_URL").unwrap_or_else(|| "sqlite://tokensmith.db?mode=rwc".to_owned());
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(ConfigError::new("DATABASE_URL", "unsupported scheme; use sqlite://… or postgres://…"));
        }
        let jwt_algorithm = vars.parsed("JWT_ALGORITHM", "ES256", |s| s.parse())?;
        let key_source = Self::key_source(&vars, jwt_algorithm)?;

        let clerk = match vars.raw("CLERK_ISSUER") {
            None => None,
            Some(issuer) => {
                let issuer = issuer.trim().trim_end_matches('/').to_owned();
                check_issuer_url(&issuer).map_err(|m| ConfigError::new("CLERK_ISSUER", m))?;
                let jwks_url = vars.raw("CLERK_JWKS_URL").unwrap_or_else(|| format!("{issuer}/.well-known/jwks.json"));
                check_issuer_url(&jwks_url).map_err(|m| ConfigError::new("CLERK_JWKS_URL", m))?;
                let jwt_key_pem = vars.raw("CLERK_JWT_KEY");
                if let Some(pem) = &jwt_key_pem {
                    jsonwebtoken::DecodingKey::from_rsa_pem(pem.as_bytes())
                        .map_err(|_| ConfigError::new("CLERK_JWT_KEY", "not a PEM RSA public key"))?;
                }
                Some(ClerkConfig {
                    issuer,
                    jwks_url,
                    jwt_key_pem,
                    authorized_parties: vars.list("CLERK_AUTHORIZED_PARTIES"),
                })
            }
        };
        let clerk_webhook_signing_secret = vars.raw("CLERK_WEBHOOK_SIGNING_SECRET").map(SecretString::from);
        if let Some(secret) = &clerk_webhook_signing_secret
            && crate::external::svix::SvixVerifier::new(secret).is_none()
        {
            // The value is a secret: the message never repeats it.
            return Err(ConfigError::new(
                "CLERK_WEBHOOK_SIGNING_SECRET",
                "must be whsec_ followed by base64, as Clerk shows it",
            ));
        }
        let clerk_api_url = vars.raw("CLERK_API_URL").unwrap_or_else(|| "https://api.clerk.com".to_owned());
        check_issuer_url(&clerk_api_url).map_err(|m| ConfigError::new("CLERK_API_URL", m))?;

        let external_issuers_file = vars.raw("EXTERNAL_ISSUERS_FILE").map(PathBuf::from);
        let external_issuers = match &external_issuers_file {
            Some(path) => {
                crate::external::issuers::load(path).map_err(|m| ConfigError::new("EXTERNAL_ISSUERS_FILE", m))?
            }
            None => Vec::new(),
        };
        if let Some(clerk) = &clerk
            && let Some(other) = external_issuers.iter().find(|i| i.issuer == clerk.issuer)
        {
            return Err(ConfigError::new(
                "EXTERNAL_ISSUERS_FILE",
                format!("{}: the issuer of CLERK_ISSUER again", other.name),
            ));
        }

        let trusted_proxies = vars
            .list("TRUSTED_PROXIES")
            .iter()
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| ConfigError::new("TRUSTED_PROXIES", format!("not a CIDR or address: {s:?}")))
            })
            .collect::<Result<_, _>>()?;
        let cors_allowed_origins = vars.list("CORS_ALLOWED_ORIGINS");
        for origin in &cors_allowed_origins {
            let ok = url::Url::parse(origin).map(|u| u.origin().ascii_serialization() == *origin).unwrap_or(false);
            if !ok {
                return Err(ConfigError::new(
                    "CORS_ALLOWED_ORIGINS",
                    format!("not an origin (scheme://host[:port], no path): {origin:?}"),
                ));
            }
        }

        let default_concurrency = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).to_string();
        Ok(Self {
            listen_addr: vars.parsed("LISTEN_ADDR", "127.0.0.1:8000", |s| {
                s.parse().map_err(|_| format!("expected host:port such as 127.0.0.1:8000, got {s:?}"))
            })?,
            database_url,
            database_max_connections: vars.parsed("DATABASE_MAX_CONNECTIONS", "10", |s| {
                match parse_number::<u32>(s)? {
                    0 => Err("must be at least 1".to_owned()),
                    n => Ok(n),
                }
            })?,
            database_acquire_timeout: vars.parsed("DATABASE_ACQUIRE_TIMEOUT", "5s", positive_duration)?,
            access_token_lifetime: vars.parsed("ACCESS_TOKEN_LIFETIME", "5m", positive_duration)?,
            refresh_token_lifetime: vars.parsed("REFRESH_TOKEN_LIFETIME", "1d", positive_duration)?,
            rotate_refresh_tokens: vars.parsed("ROTATE_REFRESH_TOKENS", "true", parse_bool)?,
            refresh_reuse_grace: vars.parsed("REFRESH_REUSE_GRACE", "10s", parse_duration)?,
            jwt_algorithm,
            key_source,
            jwt_issuer: vars.raw("JWT_ISSUER"),
            jwt_audience: vars.raw("JWT_AUDIENCE"),
            jwt_leeway: vars.parsed("JWT_LEEWAY", "0s", parse_duration)?,
            session_max_lifetime: vars.parsed("SESSION_MAX_LIFETIME", "30d", positive_duration)?,
            login_failure_limit: vars.parsed("LOGIN_FAILURE_LIMIT", "10", positive_number)?,
            login_failure_window: vars.parsed("LOGIN_FAILURE_WINDOW", "15m", positive_duration)?,
            login_address_failure_limit: vars.parsed("LOGIN_ADDRESS_FAILURE_LIMIT", "100", positive_number)?,
            audit_retention: vars.parsed("AUDIT_RETENTION", "90d", positive_duration)?,
            request_timeout: vars.parsed("REQUEST_TIMEOUT", "30s", positive_duration)?,
            trusted_proxies,
            cors_allowed_origins,
            refresh_token_cookie: vars.parsed("REFRESH_TOKEN_COOKIE", "false", parse_bool)?,
            clerk,
            clerk_webhook_signing_secret,
            clerk_secret_key: vars.raw("CLERK_SECRET_KEY").map(SecretString::from),
            clerk_api_url,
            external_issuers_file,
            external_issuers,
            keys_reload_interval: vars.parsed("KEYS_RELOAD_INTERVAL", "30s", positive_duration)?,
            password_hash_concurrency: vars.parsed("PASSWORD_HASH_CONCURRENCY", &default_concurrency, |s| {
                match parse_number::<usize>(s)? {
                    0 => Err("must be at least 1".to_owned()),
                    n => Ok(n),
                }
            })?,
            log_format: vars.parsed("LOG_FORMAT", "text", |s| match s {
                "text" => Ok(LogFormat::Text),
                "json" => Ok(LogFormat::Json),
                _ => Err(format!("expected text or json, got {s:?}")),
            })?,
        })
    }

    fn key_source(vars: &Vars<'_>, algorithm: JwtAlgorithm) -> Result<KeySource, ConfigError> {
        let key_file = vars.raw("JWT_SIGNING_KEY_FILE").map(PathBuf::from);
        if algorithm == JwtAlgorithm::Hs256 {
            let secret = vars
                .raw("JWT_SECRET")
                .ok_or_else(|| ConfigError::new("JWT_SECRET", "required when JWT_ALGORITHM=HS256"))?;
            if secret.len() < 32 {
                return Err(ConfigError::new("JWT_SECRET", "must be at least 32 bytes long"));
            }
            return Ok(KeySource::Secret(SecretString::from(secret)));
        }
        let Some(path) = key_file else { return Ok(KeySource::Database) };
        let pem = std::fs::read_to_string(&path)
            .map_err(|e| ConfigError::new("JWT_SIGNING_KEY_FILE", format!("cannot read {}: {e}", path.display())))?;
        let source = KeySource::PemFile { path, pem: SecretString::from(pem) };
        // Fail at start, not at the first login, when the key does not fit the algorithm.
        crate::auth::keys::signing_key_from_source(&source, algorithm)
            .map_err(|e| ConfigError::new("JWT_SIGNING_KEY_FILE", e.to_string()))?;
        Ok(source)
    }

    /// How long a signing key stays published after it stops signing: until every token
    /// it may have signed has expired.
    pub fn longest_token_lifetime(&self) -> Duration {
        self.access_token_lifetime.max(self.refresh_token_lifetime) + self.jwt_leeway
    }

    pub fn is_postgres(&self) -> bool {
        self.database_url.starts_with("postgres")
    }

    pub fn hs256_secret(&self) -> Option<&str> {
        match &self.key_source {
            KeySource::Secret(s) => Some(s.expose_secret()),
            _ => None,
        }
    }
}
