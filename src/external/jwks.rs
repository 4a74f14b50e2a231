//! A provider's signing keys, fetched from its JWKS URL and cached.
//!
//! Keys are looked up by `kid`. A `kid` not in the cache triggers one refetch — single-flight
//! (concurrent misses wait for the same fetch) and at most one fetch per `MIN_FETCH_INTERVAL`,
//! which doubles as the negative cache: a flood of forged kids costs at most one fetch per
//! interval. When the provider is unreachable the cached keys keep working; with none cached,
//! callers get `KeysUnavailable` until a later fetch succeeds.
//!
//! A fetched set is fresh for its `Cache-Control: max-age` (`DEFAULT_MAX_AGE` without one,
//! clamped to `MIN_MAX_AGE`..`MAX_MAX_AGE`), so a key the provider stops publishing stops
//! verifying once that age has passed, not only when an unknown kid happens to force a refetch.
//! The request that finds the set stale is still answered from it and starts one refresh in the
//! background; a refresh that fails keeps the old set (and is tried again at most every
//! `MIN_FETCH_INTERVAL` while requests keep coming).
//!
//! Written here rather than taken from a crate: the crates that cache JWKS either fetch on every
//! miss (no rate limit) or trust the token's `alg`; this is the small part we need exactly.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;
use jsonwebtoken::{
    Algorithm, DecodingKey,
    jwk::{Jwk, KeyAlgorithm, PublicKeyUse},
};
use reqwest::header::{CACHE_CONTROL, HeaderMap};
use serde_json::Value;

use super::{ExternalError, Rejection};

/// A fetch that has not finished by then has failed.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
/// Fetches (after a miss, a failure or expiry) start at most this often.
pub const MIN_FETCH_INTERVAL: Duration = Duration::from_secs(5);
/// How long a key set is fresh when the provider sends no `Cache-Control: max-age`.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(10 * 60);
/// A provider's `max-age` is honoured within these bounds: no refetch storm, no key trusted
/// for more than a day after its provider dropped it.
pub const MIN_MAX_AGE: Duration = MIN_FETCH_INTERVAL;
pub const MAX_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// A key set larger than this is not a key set.
const MAX_JWKS_BYTES: usize = 512 * 1024;

/// The cached keys and until when they are fresh (`None`: never fetched successfully).
#[derive(Default)]
struct KeySet {
    keys: HashMap<String, Arc<DecodingKey>>,
    fresh_until: Option<Instant>,
}

impl KeySet {
    fn is_stale(&self) -> bool {
        self.fresh_until.is_some_and(|until| Instant::now() >= until)
    }
}

/// A provider's key cache. Cheap to share: background refreshes hold the same state.
pub struct JwksCache {
    inner: Arc<Inner>,
}

struct Inner {
    provider: &'static str,
    url: String,
    /// The algorithms this provider's keys may be used with.
    algorithms: Vec<Algorithm>,
    client: reqwest::Client,
    keys: ArcSwap<KeySet>,
    /// Held during a fetch: this is what makes fetches single-flight.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
    /// Set while a background refresh is queued or running, so a stale set starts one only.
    refreshing: AtomicBool,
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
        let inner = Inner {
            provider,
            url,
            algorithms,
            client,
            keys: ArcSwap::from_pointee(KeySet::default()),
            last_fetch: tokio::sync::Mutex::new(None),
            refreshing: AtomicBool::new(false),
        };
        Self { inner: Arc::new(inner) }
    }

    /// The key with this `kid`, fetching the set again if it is not cached (within the limits
    /// above). A cached key is answered at once, even from a stale set, whose refresh then starts
    /// in the background.
    pub async fn key(&self, kid: &str) -> Result<Arc<DecodingKey>, ExternalError> {
        let set = self.inner.keys.load();
        if let Some(key) = set.keys.get(kid) {
            if set.is_stale() {
                self.refresh_in_background();
            }
            return Ok(key.clone());
        }
        let mut last_fetch = self.inner.last_fetch.lock().await;
        // Someone else's fetch, which we waited for, may have brought it.
        if let Some(key) = self.inner.keys.load().keys.get(kid) {
            return Ok(key.clone());
        }
        self.inner.fetch_if_due(&mut last_fetch).await;
        let set = self.inner.keys.load();
        match set.keys.get(kid) {
            Some(key) => Ok(key.clone()),
            None if set.keys.is_empty() => Err(ExternalError::KeysUnavailable),
            None => Err(Rejection::UnknownKey.into()),
        }
    }

    /// Starts one refresh of a stale set, unless one is under way.
    fn refresh_in_background(&self) {
        if self.inner.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let inner = self.inner.clone();
        tokio::spawn(async move {
            /// Clears the flag however the task ends, so a later stale read can start another.
            struct Done<'a>(&'a AtomicBool);
            impl Drop for Done<'_> {
                fn drop(&mut self) {
                    self.0.store(false, Ordering::Release);
                }
            }
            let _done = Done(&inner.refreshing);
            let mut last_fetch = inner.last_fetch.lock().await;
            // A miss may have refreshed it while we waited for the lock.
            if inner.keys.load().is_stale() {
                inner.fetch_if_due(&mut last_fetch).await;
            }
        });
    }
}

impl Inner {
    /// Fetches the set unless a fetch started within `MIN_FETCH_INTERVAL`; on failure the cached
    /// set stays. The caller holds `last_fetch`.
    async fn fetch_if_due(&self, last_fetch: &mut Option<Instant>) {
        if last_fetch.is_some_and(|at| at.elapsed() < MIN_FETCH_INTERVAL) {
            return;
        }
        *last_fetch = Some(Instant::now());
        match self.fetch().await {
            Ok((keys, max_age)) => {
                metrics::counter!("tokensmith_jwks_fetches_total", "provider" => self.provider, "result" => "ok")
                    .increment(1);
                tracing::info!(
                    provider = self.provider,
                    keys = keys.len(),
                    max_age_secs = max_age.as_secs(),
                    "fetched the provider's signing keys"
                );
                self.keys.store(Arc::new(KeySet { keys, fresh_until: Some(Instant::now() + max_age) }));
            }
            Err(cause) => {
                metrics::counter!("tokensmith_jwks_fetches_total", "provider" => self.provider, "result" => "failed")
                    .increment(1);
                tracing::warn!(provider = self.provider, url = %self.url, %cause, "cannot fetch the provider's signing keys; keeping the cached ones");
            }
        }
    }

    /// The usable keys of the set at our URL, and how long they are fresh.
    async fn fetch(&self) -> Result<(HashMap<String, Arc<DecodingKey>>, Duration), String> {
        let response = self.client.get(&self.url).send().await.map_err(|e| without_url(&e))?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status()));
        }
        let max_age = max_age(response.headers());
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
        Ok((entries.iter().filter_map(|entry| self.usable_key(entry)).collect(), max_age))
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

/// How long a fetched set is fresh: its `Cache-Control: max-age`, within our bounds.
fn max_age(headers: &HeaderMap) -> Duration {
    let seconds = headers
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find_map(|directive| {
            let (name, value) = directive.split_once('=')?;
            let value = value.trim().trim_matches('"');
            let digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
            // A number too large to hold is simply very long (clamped below).
            (name.trim().eq_ignore_ascii_case("max-age") && digits).then(|| value.parse().unwrap_or(u64::MAX))
        });
    seconds.map_or(DEFAULT_MAX_AGE, Duration::from_secs).clamp(MIN_MAX_AGE, MAX_MAX_AGE)
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

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn with(values: &[&str]) -> Duration {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(CACHE_CONTROL, HeaderValue::from_str(value).unwrap());
        }
        max_age(&headers)
    }

    #[test]
    fn max_age_is_honoured_within_bounds() {
        assert_eq!(with(&[]), DEFAULT_MAX_AGE);
        assert_eq!(with(&["public, max-age=3600, must-revalidate"]), Duration::from_secs(3600));
        assert_eq!(with(&["no-transform", "Max-Age = \"120\""]), Duration::from_secs(120));
        assert_eq!(with(&["max-age=1"]), MIN_MAX_AGE);
        assert_eq!(with(&["max-age=0"]), MIN_MAX_AGE);
        assert_eq!(with(&["max-age=99999999999999999999999"]), MAX_MAX_AGE);
        assert_eq!(with(&["max-age=-5", "no-cache"]), DEFAULT_MAX_AGE);
        assert_eq!(with(&["s-maxage=60"]), DEFAULT_MAX_AGE);
    }
}
