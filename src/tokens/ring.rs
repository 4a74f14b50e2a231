//! The key ring: the one key that signs new tokens, and every public key that may still
//! verify a live token. Generated keys live in the database so every replica shares them; a key
//! file or the HS* secret comes parsed from the configuration.

use std::collections::HashMap;

use bytes::Bytes;
use jsonwebtoken::{Algorithm, jwk::JwkSet};

use crate::{
    clock::{secs, unix_now},
    config::{Config, JwtAlgorithm, KeySource},
    key_material::{KeyMaterial, KeyMaterialError, VerifyingKey, generate_pem},
    store::{Store, StoreError, StoredKey},
};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Material(#[from] KeyMaterialError),
    #[error("keys come from {0}; rotate them there")]
    NotRotatable(&'static str),
    #[error("another rotation committed at the same time; its key is the signing key now")]
    ConcurrentRotation,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What signs and verifies right now. Swapped whole when keys change.
pub struct KeyRing {
    pub signing: std::sync::Arc<KeyMaterial>,
    verifying: HashMap<String, VerifyingKey>,
    /// The JWKS document, serialized once per load rather than per request.
    pub jwks_json: Bytes,
    /// The algorithms of the published keys, the signing key's first, each once (OIDC
    /// discovery's `id_token_signing_alg_values_supported`).
    pub algorithms: Vec<Algorithm>,
}

impl KeyRing {
    /// The key for a token's `kid`; a token without one is checked against the signing key
    /// (tokens minted by simplejwt with the same HS256 secret carry no `kid`).
    pub fn verifying_key(&self, kid: Option<&str>) -> Option<&VerifyingKey> {
        self.verifying.get(kid.unwrap_or(&self.signing.kid))
    }

    pub fn knows(&self, kid: &str) -> bool {
        self.verifying.contains_key(kid)
    }

    fn new(signing: std::sync::Arc<KeyMaterial>, older: Vec<KeyMaterial>) -> Self {
        let mut verifying = HashMap::new();
        let mut jwks = JwkSet { keys: Vec::new() };
        let mut algorithms = Vec::new();
        for key in std::iter::once(&*signing).chain(older.iter()) {
            verifying.insert(key.kid.clone(), key.verifying_key());
            jwks.keys.extend(key.public_jwk().cloned());
            if !algorithms.contains(&key.algorithm) {
                algorithms.push(key.algorithm);
            }
        }
        let jwks_json = Bytes::from(serde_json::to_vec(&jwks).expect("a JWK set serializes"));
        Self { signing, verifying, jwks_json, algorithms }
    }

    /// Builds the ring from the configured source, creating the database key on first use.
    /// The signing key and the older ones come from one query, so a rotation committing
    /// meanwhile is seen whole or not at all: never the old key signing beside the new one.
    pub async fn load(config: &Config, store: &Store) -> Result<Self, KeyError> {
        if let Some(key) = config.key_source.signing_key() {
            return Ok(Self::new(key.clone(), vec![]));
        }
        let algorithm = config.jwt_algorithm.as_str();
        let retired_after = unix_now() - secs(config.longest_token_lifetime());
        let is_current = |k: &StoredKey| k.retired_at.is_none() && k.algorithm == algorithm;
        let mut published = store.published_keys(retired_after).await?;
        if !published.iter().any(is_current) {
            ensure_database_key(store, config.jwt_algorithm).await?;
            published = store.published_keys(retired_after).await?;
        }
        let current = published.iter().find(|k| is_current(k)).ok_or(KeyMaterialError::Generate)?;
        let signing = material(current)?;
        let older = published.iter().filter(|k| k.kid != current.kid).map(material).collect::<Result<_, _>>()?;
        Ok(Self::new(std::sync::Arc::new(signing), older))
    }
}

fn material(key: &StoredKey) -> Result<KeyMaterial, KeyError> {
    let algorithm: JwtAlgorithm = key.algorithm.parse().map_err(|_| KeyMaterialError::UnknownAlgorithm)?;
    let mut material = KeyMaterial::from_pem(&key.private_key_pem, algorithm)?;
    material.kid.clone_from(&key.kid);
    Ok(material)
}

/// The active database key for `algorithm`, generated when there is none yet. A unique index
/// allows one active key per algorithm, so replicas starting together agree on one.
async fn ensure_database_key(store: &Store, algorithm: JwtAlgorithm) -> Result<StoredKey, KeyError> {
    if let Some(key) = store.active_signing_key(algorithm.as_str()).await? {
        return Ok(key);
    }
    let candidate = new_stored_key(algorithm)?;
    store.insert_first_signing_key(&candidate).await?;
    Ok(store.active_signing_key(algorithm.as_str()).await?.ok_or(KeyMaterialError::Generate)?)
}

fn new_stored_key(algorithm: JwtAlgorithm) -> Result<StoredKey, KeyError> {
    let pem = generate_pem(algorithm)?;
    let kid = KeyMaterial::from_pem(&pem, algorithm)?.kid;
    Ok(StoredKey {
        kid,
        algorithm: algorithm.as_str().to_owned(),
        private_key_pem: pem,
        created_at: unix_now(),
        retired_at: None,
    })
}

/// `tokensmith keys rotate`: a new signing key; the old one keeps verifying until its tokens expire.
pub async fn rotate(config: &Config, store: &Store) -> Result<StoredKey, KeyError> {
    match config.key_source {
        KeySource::Database => {}
        KeySource::PemFile { .. } => return Err(KeyError::NotRotatable("JWT_SIGNING_KEY_FILE")),
        KeySource::Secret { .. } => return Err(KeyError::NotRotatable("JWT_SECRET")),
    }
    let key = new_stored_key(config.jwt_algorithm)?;
    if !store.rotate_signing_key(&key).await? {
        return Err(KeyError::ConcurrentRotation);
    }
    Ok(key)
}
