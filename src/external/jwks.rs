//! A provider's signing keys, fetched from its JWKS URL and cached.
//!
//! Keys are looked up by `kid`. A `kid` not in the cache triggers one refetch — single-flight
//! (concurrent misses wait for the same fetch) and at most one fetch per `MIN_FETCH_INTERVAL`,
//! which doubles as the negative cache: a flood of forged kids costs at most one fetch per
//! interval. When the provider is unreachable the cached keys keep working; with none cached,
//! callers get `KeysUnavailable` until a later fetch succeeds.
//!
//! Written here rather than taken from a crate: the crates that cache JWKS either fetch on every
//! miss (no rate limit) or trust the token's `alg`; this is the small part we need exactly.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;
use jsonwebtoken::{
    Algorithm, DecodingKey,
    jwk::{Jwk, KeyAlgorithm, PublicKeyUse},
};
use serde_json::Value;

use super::{ExternalError, Rejection};

/// A fetch that has not finished by then has failed.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
/// Fetches (after a miss or a failure) start at most this often.
pub const MIN_FETCH_INTERVAL: Duration = Duration::from_secs(5);
/// A key set larger than this is not a key set.
const MAX_JWKS_BYTES: usize = 512 * 1024;

pub struct JwksCache {
    provider: &'static str,
    url: String,
    /// The algorithms this provider's keys may be used with.
    algorithms: Vec<Algorithm>,
    client: reqwest::Client,
    keys: ArcSwap<HashMap<String, Arc<DecodingKey>>>,
    /// Held during a fetch: this is what makes fetches single-flight.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
}

impl JwksCache {
    pub fn new(provider: &'static str, url: String, algorithms: Vec<Algorithm>) -> Self {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            // A key set is never behind a redirect we should follow to another host.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tokensmith/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a client with a timeout builds");
        Self {
            provider,
            url,
            algorithms,
            client,
            keys: ArcSwap::from_pointee(HashMap::new()),
            last_fetch: tokio::sync::Mutex::new(None),
        }
    }

    /// The key with this `kid`, fetching the set again if it is not cached (within the limits above).
    pub async fn key(&self, kid: &str) -> Result<Arc<DecodingKey>, ExternalError> {
        if let Some(key) = self.keys.load().get(kid) {
            return Ok(key.clone());
        }
        let mut last_fetch = self.last_fetch.lock().await;
        // Someone else's fetch, which we waited for, may have brought it.
        if let Some(key) = self.keys.load().get(kid) {
            return Ok(key.clone());
        }
        if last_fetch.is_none_or(|at| at.elapsed() >= MIN_FETCH_INTERVAL) {
            *last_fetch = Some(Instant::now());
            match self.fetch().await {
                Ok(keys) => {
                    metrics::counter!("tokensmith_jwks_fetches_total", "provider" => self.provider, "result" => "ok")
                        .increment(1);
                    tracing::info!(provider = self.provider, keys = keys.len(), "fetched the provider's signing keys");
                    self.keys.store(Arc::new(keys));
                }
                Err(cause) => {
                    metrics::counter!("tokensmith_jwks_fetches_total", "provider" => self.provider, "result" => "failed").increment(1);
                    tracing::warn!(provider = self.provider, url = %self.url, %cause, "cannot fetch the provider's signing keys; keeping the cached ones");
                }
            }
        }
        let keys = self.keys.load();
        match keys.get(kid) {
            Some(key) => Ok(key.clone()),
            None if keys.is_empty() => Err(ExternalError::KeysUnavailable),
            None => Err(Rejection::UnknownKey.into()),
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, Arc<DecodingKey>>, String> {
        let response = self.client.get(&self.url).send().await.map_err(|e| without_url(&e))?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status()));
        }
        if response.content_length().is_some_and(|n| n > MAX_JWKS_BYTES as u64) {
            return Err("key set too large".to_owned());
        }
        let body = response.bytes().await.map_err(|e| without_url(&e))?;
        if body.len() > MAX_JWKS_BYTES {
            return Err("key set too large".to_owned());
        }
        let set: Value = serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))?;
        let entries = set.get("keys").and_then(Value::as_array).ok_or("no \"keys\" array")?;
        // One odd entry does not poison the others: keep every usable key, skip the rest.
        Ok(entries.iter().filter_map(|entry| self.usable_key(entry)).collect())
    }

    /// A JWKS entry we may verify with: a `kid`, the key type of our algorithm, and no `alg`
    /// or `use` that says otherwise.
    fn usable_key(&self, entry: &Value) -> Option<(String, Arc<DecodingKey>)> {
        let jwk: Jwk = serde_json::from_value(entry.clone()).ok()?;
        let kid = jwk.common.key_id.clone().filter(|k| !k.is_empty())?;
        if jwk.common.public_key_use.as_ref().is_some_and(|u| *u != PublicKeyUse::Signature) {
            return None;
        }
        if let Some(alg) = jwk.common.key_algorithm
            && !self.algorithms.iter().any(|pinned| algorithm_matches(alg, *pinned))
        {
            return None;
        }
        let family_matches = self.algorithms.iter().any(|pinned| {
            matches!(
                (&jwk.algorithm, pinned),
                (jsonwebtoken::jwk::AlgorithmParameters::RSA(_), Algorithm::RS256)
                    | (jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_), Algorithm::ES256)
                    | (jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(_), Algorithm::EdDSA)
            )
        });
        if !family_matches {
            return None;
        }
        let key = DecodingKey::from_jwk(&jwk).ok()?;
        Some((kid, Arc::new(key)))
    }
}

fn algorithm_matches(declared: KeyAlgorithm, pinned: Algorithm) -> bool {
    matches!(
        (declared, pinned),
        (KeyAlgorithm::RS256, Algorithm::RS256)
            | (KeyAlgorithm::ES256, Algorithm::ES256)
            | (KeyAlgorithm::EdDSA, Algorithm::EdDSA)
    )
}

/// reqwest's errors name the URL; ours is in the log line already, and may carry a query.
fn without_url(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else if error.is_body() || error.is_decode() {
        "bad response body"
    } else {
        "request failed"
    };
    kind.to_owned()
}
