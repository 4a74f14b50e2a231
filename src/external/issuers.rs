//! Identity providers other than Clerk, by configuration (`EXTERNAL_ISSUERS_FILE`, TOML): each
//! entry names an issuer, where its keys come from (a JWKS URL, OIDC discovery, or a PEM), what
//! its tokens must carry, and how their roles map to `is_staff` / `is_superuser`. Each issuer has
//! its own key cache, so keys of one never verify another's tokens.

use std::{path::Path, sync::Arc, time::Instant};

use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{
    ExternalError, ExternalIdentity, ExternalProfile, Rejection, check_registered_claims, jwks::JwksCache,
    signed_claims, string,
};
use crate::{auth::keys::unix_now, config::check_issuer_url};

/// One `[[issuer]]` entry, as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    pub name: String,
    pub issuer: String,
    #[serde(default)]
    pub jwks_url: Option<String>,
    #[serde(default)]
    pub discovery: bool,
    #[serde(default)]
    pub public_key_pem: Option<String>,
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    #[serde(default)]
    pub audience: Vec<String>,
    #[serde(default)]
    pub authorized_parties: Vec<String>,
    #[serde(default = "default_subject_claim")]
    pub subject_claim: String,
    #[serde(default = "default_email_claim")]
    pub email_claim: String,
    #[serde(default)]
    pub first_name_claim: Option<String>,
    #[serde(default)]
    pub last_name_claim: Option<String>,
    #[serde(default)]
    pub roles_claim: Option<String>,
    #[serde(default)]
    pub staff_roles: Vec<String>,
    #[serde(default)]
    pub superuser_roles: Vec<String>,
}

fn default_algorithms() -> Vec<String> {
    vec!["RS256".to_owned()]
}

fn default_subject_claim() -> String {
    "sub".to_owned()
}

fn default_email_claim() -> String {
    "email".to_owned()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssuersFile {
    #[serde(default)]
    issuer: Vec<IssuerConfig>,
}

/// Reads and checks the file. `Err` is one line naming the file, the entry and the key at fault.
pub fn load(path: &Path) -> Result<Vec<IssuerConfig>, String> {
    let file = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{file}: cannot read: {e}"))?;
    let parsed: IssuersFile =
        toml::from_str(&text).map_err(|e| format!("{file}: {}", e.to_string().replace('\n', " ").trim().to_owned()))?;
    let mut names = std::collections::HashSet::new();
    for (i, entry) in parsed.issuer.iter().enumerate() {
        let at = |key: &str, message: String| format!("{file}: issuer[{i}] ({}): {key}: {message}", entry.name);
        let valid_name = !entry.name.is_empty()
            && entry.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid_name || entry.name == "clerk" {
            return Err(at("name", "use [a-z0-9-]+, and not \"clerk\" (Clerk is configured by CLERK_*)".to_owned()));
        }
        if !names.insert(entry.name.clone()) {
            return Err(at("name", "another issuer has this name".to_owned()));
        }
        if entry.issuer.is_empty() {
            return Err(at("issuer", "required".to_owned()));
        }
        let sources = usize::from(entry.jwks_url.is_some())
            + usize::from(entry.discovery)
            + usize::from(entry.public_key_pem.is_some());
        if sources != 1 {
            return Err(at("jwks_url", "give exactly one of jwks_url, discovery = true, public_key_pem".to_owned()));
        }
        if let Some(url) = &entry.jwks_url {
            check_issuer_url(url).map_err(|m| at("jwks_url", m))?;
        }
        if entry.discovery {
            check_issuer_url(&entry.issuer)
                .map_err(|m| at("issuer", format!("discovery fetches from the issuer: {m}")))?;
        }
        let algorithms = algorithms(&entry.algorithms).map_err(|m| at("algorithms", m))?;
        if let Some(pem) = &entry.public_key_pem {
            let ok = algorithms.iter().any(|alg| pem_key(pem, *alg).is_some());
            if !ok {
                return Err(at("public_key_pem", "not a PEM public key for the allowed algorithms".to_owned()));
            }
        }
    }
    Ok(parsed.issuer)
}

fn algorithms(names: &[String]) -> Result<Vec<Algorithm>, String> {
    if names.is_empty() {
        return Err("list at least one of RS256, ES256, EdDSA".to_owned());
    }
    names
        .iter()
        .map(|name| match name.as_str() {
            "RS256" => Ok(Algorithm::RS256),
            "ES256" => Ok(Algorithm::ES256),
            "EdDSA" => Ok(Algorithm::EdDSA),
            other => Err(format!("{other:?} is not allowed (RS256, ES256 or EdDSA; never HS*)")),
        })
        .collect()
}

fn pem_key(pem: &str, algorithm: Algorithm) -> Option<DecodingKey> {
    match algorithm {
        Algorithm::RS256 => DecodingKey::from_rsa_pem(pem.as_bytes()).ok(),
        Algorithm::ES256 => DecodingKey::from_ec_pem(pem.as_bytes()).ok(),
        Algorithm::EdDSA => DecodingKey::from_ed_pem(pem.as_bytes()).ok(),
        _ => None,
    }
}

enum Keys {
    Pem(Vec<(Algorithm, Arc<DecodingKey>)>),
    Jwks(JwksCache),
    /// The JWKS URL comes from `{issuer}/.well-known/openid-configuration`, read at first use.
    Discovery {
        cache: tokio::sync::OnceCell<JwksCache>,
        last_attempt: tokio::sync::Mutex<Option<Instant>>,
    },
}

/// Verifies the tokens of one configured issuer.
pub struct IssuerVerifier {
    /// Leaked once at start: names label metrics and audit events for the life of the process.
    pub name: &'static str,
    config: IssuerConfig,
    algorithms: Vec<Algorithm>,
    keys: Keys,
    client: reqwest::Client,
}

impl IssuerVerifier {
    pub fn new(config: IssuerConfig) -> Self {
        let name: &'static str = Box::leak(config.name.clone().into_boxed_str());
        let algorithms = algorithms(&config.algorithms).expect("checked when the file was read");
        let keys = if let Some(pem) = &config.public_key_pem {
            Keys::Pem(algorithms.iter().filter_map(|alg| Some((*alg, Arc::new(pem_key(pem, *alg)?)))).collect())
        } else if let Some(url) = &config.jwks_url {
            Keys::Jwks(JwksCache::new(name, url.clone(), algorithms.clone()))
        } else {
            Keys::Discovery { cache: tokio::sync::OnceCell::new(), last_attempt: tokio::sync::Mutex::new(None) }
        };
        let client = reqwest::Client::builder()
            .timeout(super::jwks::FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a client with a timeout builds");
        Self { name, config, algorithms, keys, client }
    }

    pub fn issuer(&self) -> &str {
        &self.config.issuer
    }

    async fn key(&self, algorithm: Algorithm, kid: Option<&str>) -> Result<Arc<DecodingKey>, ExternalError> {
        let cache = match &self.keys {
            Keys::Pem(keys) => {
                return keys
                    .iter()
                    .find(|(alg, _)| *alg == algorithm)
                    .map(|(_, k)| k.clone())
                    .ok_or(Rejection::Algorithm.into());
            }
            Keys::Jwks(cache) => cache,
            // One discovery at a time (the cell runs one initializer); kept once it succeeds.
            Keys::Discovery { cache, last_attempt } => {
                cache.get_or_try_init(|| self.discovered_cache(last_attempt)).await?
            }
        };
        let kid = kid.filter(|k| !k.is_empty()).ok_or(Rejection::UnknownKey)?;
        cache.key(kid).await
    }

    /// The key cache at the JWKS URL the issuer's OIDC configuration names. Rate-limited like key
    /// fetches: an unreachable provider is asked at most every 5 s.
    async fn discovered_cache(
        &self,
        last_attempt: &tokio::sync::Mutex<Option<Instant>>,
    ) -> Result<JwksCache, ExternalError> {
        let mut last = last_attempt.lock().await;
        if last.is_some_and(|at| at.elapsed() < super::jwks::MIN_FETCH_INTERVAL) {
            return Err(ExternalError::KeysUnavailable);
        }
        *last = Some(Instant::now());
        let url = self.discover().await.map_err(|cause| {
            tracing::warn!(provider = self.name, %cause, "OIDC discovery failed");
            ExternalError::KeysUnavailable
        })?;
        Ok(JwksCache::new(self.name, url, self.algorithms.clone()))
    }

    /// The `jwks_uri` of the issuer's OIDC configuration, which must name the same issuer.
    async fn discover(&self) -> Result<String, String> {
        let url = format!("{}/.well-known/openid-configuration", self.config.issuer.trim_end_matches('/'));
        let response = self.client.get(&url).send().await.map_err(|_| format!("cannot fetch {url}"))?;
        if !response.status().is_success() {
            return Err(format!("{url}: HTTP {}", response.status()));
        }
        let document: Value = response.json().await.map_err(|_| format!("{url}: not JSON"))?;
        if document.get("issuer").and_then(Value::as_str) != Some(self.config.issuer.as_str()) {
            return Err(format!("{url}: names another issuer"));
        }
        let jwks_uri = document.get("jwks_uri").and_then(Value::as_str).ok_or_else(|| format!("{url}: no jwks_uri"))?;
        check_issuer_url(jwks_uri)?;
        Ok(jwks_uri.to_owned())
    }

    /// Algorithm (pinned to the configured list), key, signature, and only then the claims.
    pub async fn verify(&self, token: &str) -> Result<ExternalIdentity, ExternalError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Rejection::Malformed)?;
        if !self.algorithms.contains(&header.alg) {
            return Err(Rejection::Algorithm.into());
        }
        let key = self.key(header.alg, header.kid.as_deref()).await?;
        let claims = signed_claims(token, &key, &self.algorithms)?;
        self.check_claims(&claims, unix_now()).map_err(ExternalError::from)
    }

    fn check_claims(&self, claims: &Map<String, Value>, now: i64) -> Result<ExternalIdentity, Rejection> {
        let config = &self.config;
        check_registered_claims(claims, &config.issuer, &config.audience, &config.authorized_parties, false, now)?;
        let subject = claims
            .get(&self.config.subject_claim)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(Rejection::MissingClaim("subject"))?;
        let text = |name: Option<&String>| {
            name.and_then(|n| lookup(claims, n)).and_then(Value::as_str).unwrap_or_default().to_owned()
        };
        // An address the provider says is unverified proves nothing.
        let email_verified = claims.get("email_verified").and_then(Value::as_bool) != Some(false);
        let email = if email_verified { text(Some(&config.email_claim)) } else { String::new() };
        let roles = self.config.roles_claim.as_ref().map(|path| {
            let held: Vec<&str> = match lookup(claims, path) {
                Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
                Some(Value::String(one)) => vec![one.as_str()],
                _ => vec![],
            };
            let any = |wanted: &[String]| held.iter().any(|r| wanted.iter().any(|w| w == r));
            (any(&self.config.staff_roles), any(&self.config.superuser_roles))
        });
        Ok(ExternalIdentity {
            provider: self.name,
            subject: subject.to_owned(),
            session_id: string(claims, "sid")?.unwrap_or_default().to_owned(),
            organization: None,
            profile: ExternalProfile {
                username: string(claims, "preferred_username")
                    .ok()
                    .flatten()
                    .or(string(claims, "username").ok().flatten())
                    .map(str::to_owned),
                email,
                first_name: text(config.first_name_claim.as_ref()),
                last_name: text(config.last_name_claim.as_ref()),
                updated_at_ms: 0,
            },
            roles,
        })
    }
}

/// A claim by name (Auth0's namespaced `https://example.com/roles` included), else by dotted
/// path (`tenants.T1.roles`).
fn lookup<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(value) = claims.get(path) {
        return Some(value);
    }
    let mut parts = path.split('.');
    let mut value = claims.get(parts.next()?)?;
    for part in parts {
        value = value.get(part)?;
    }
    Some(value)
}
