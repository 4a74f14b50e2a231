//! Identity providers other than Clerk, configured in `EXTERNAL_ISSUERS_FILE` (parsed by
//! `config`): each verifier checks one issuer's tokens with its own key cache, so keys of one
//! never verify another's tokens, and maps their claims and roles.

use std::{sync::Arc, time::Instant};

use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

use super::{
    ExternalError, ExternalIdentity, Rejection, check_registered_claims,
    jwks::JwksCache,
    roles::{self, lookup},
    signed_claims, string,
};
use crate::{
    clock::unix_now,
    config::{IssuerConfig, IssuerKeys, check_issuer_url},
    domain::ExternalProfile,
};

enum Keys {
    Pem(Vec<(Algorithm, Arc<DecodingKey>)>),
    Jwks(JwksCache),
    /// The JWKS URL comes from `{issuer}/.well-known/openid-configuration`, read at first use.
    Discovery {
        cache: tokio::sync::OnceCell<JwksCache>,
        last_attempt: tokio::sync::Mutex<Option<Instant>>,
    },
}

/// The configured names of the claims taken into the local user, leaked once at start like the
/// issuer's name: a refusal names the claim at fault.
struct ClaimNames {
    subject: &'static str,
    email: &'static str,
    first_name: Option<&'static str>,
    last_name: Option<&'static str>,
}

/// Verifies the tokens of one configured issuer.
pub struct IssuerVerifier {
    /// Leaked once at start: names label metrics and audit events for the life of the process.
    pub name: &'static str,
    config: IssuerConfig,
    claim_names: ClaimNames,
    algorithms: Vec<Algorithm>,
    keys: Keys,
    client: reqwest::Client,
}

impl IssuerVerifier {
    pub fn new(config: IssuerConfig) -> Self {
        let leak = |s: &String| -> &'static str { Box::leak(s.clone().into_boxed_str()) };
        let name = leak(&config.name);
        let claim_names = ClaimNames {
            subject: leak(&config.subject_claim),
            email: leak(&config.email_claim),
            first_name: config.first_name_claim.as_ref().map(leak),
            last_name: config.last_name_claim.as_ref().map(leak),
        };
        let algorithms = config.algorithms.clone();
        let keys = match &config.keys {
            IssuerKeys::Pem(keys) => Keys::Pem(keys.iter().map(|(alg, key)| (*alg, key.0.clone())).collect()),
            IssuerKeys::JwksUrl(url) => Keys::Jwks(JwksCache::new(name, url.clone(), algorithms.clone())),
            IssuerKeys::Discovery => {
                Keys::Discovery { cache: tokio::sync::OnceCell::new(), last_attempt: tokio::sync::Mutex::new(None) }
            }
        };
        let client = reqwest::Client::builder()
            .timeout(super::jwks::FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a client with a timeout builds");
        Self { name, config, claim_names, algorithms, keys, client }
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
        let claims = signed_claims(token, &key, header.alg, &self.algorithms)?;
        self.check_claims(&claims, unix_now()).map_err(ExternalError::from)
    }

    fn check_claims(&self, claims: &Map<String, Value>, now: i64) -> Result<ExternalIdentity, Rejection> {
        let config = &self.config;
        check_registered_claims(claims, &config.issuer, &config.audience, &config.authorized_parties, false, now)?;
        let names = &self.claim_names;
        let subject = text_claim(claims, names.subject)?;
        if subject.is_empty() {
            return Err(Rejection::MissingClaim(names.subject));
        }
        let text = |name: Option<&'static str>| name.map_or(Ok(String::new()), |n| text_claim(claims, n));
        // An address the provider says is unverified proves nothing; one it says nothing about
        // proves nothing either, unless the issuer's entry vouches for its addresses.
        let email_verified = match claims.get("email_verified") {
            None | Some(Value::Null) => config.email_verified_default,
            Some(Value::Bool(verified)) => *verified,
            Some(Value::String(verified)) => verified == "true",
            Some(_) => false,
        };
        let email = text(Some(names.email))?;
        let email = if email_verified { email } else { String::new() };
        // Roles are re-applied at every exchange: a token without them holds none.
        let roles = self.config.roles.as_ref().map(|mapping| roles::flags(mapping, claims).unwrap_or_default());
        Ok(ExternalIdentity {
            provider: self.name,
            subject,
            session_id: string(claims, "sid")?.unwrap_or_default().to_owned(),
            organization: None,
            profile: ExternalProfile {
                username: Some(text_claim(claims, "preferred_username")?)
                    .filter(|u| !u.is_empty())
                    .or(Some(text_claim(claims, "username")?).filter(|u| !u.is_empty())),
                email,
                first_name: text(names.first_name)?,
                last_name: text(names.last_name)?,
                updated_at_ms: 0,
                roles,
                roles_as_of_ms: None,
                // A configured issuer's users are linked by subject only.
                local_user_id: None,
                locked_out: false,
            },
        })
    }
}

/// The text of a claim (by name or dotted path) taken into the local user: empty when absent or
/// not a string, refused when it holds a NUL character (PostgreSQL cannot store one in text).
fn text_claim(claims: &Map<String, Value>, path: &'static str) -> Result<String, Rejection> {
    match lookup(claims, path) {
        Some(Value::String(text)) if text.contains('\0') => Err(Rejection::MissingClaim(path)),
        Some(Value::String(text)) => Ok(text.clone()),
        _ => Ok(String::new()),
    }
}
