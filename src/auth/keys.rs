//! The key ring: the one key that signs new tokens, and every public key that may still
//! verify a live token. Generated keys live in the database so every replica shares them.

use std::{collections::HashMap, time::Duration};

use aws_lc_rs::{
    encoding::AsDer,
    rand::SystemRandom,
    rsa::KeySize,
    signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair},
};
use bytes::Bytes;
use hmac::{Hmac, Mac};
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey,
    jwk::{Jwk, JwkSet, PublicKeyUse, ThumbprintHash},
};
use secrecy::ExposeSecret;
use sha2::Sha256;

use crate::{
    config::{Config, JwtAlgorithm, KeySource},
    store::{Store, StoredKey},
};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the key is not a PEM {0} private key")]
    WrongKind(&'static str),
    #[error("could not generate a key")]
    Generate,
    #[error("keys come from {0}; rotate them there")]
    NotRotatable(&'static str),
    #[error("another rotation committed at the same time; its key is the signing key now")]
    ConcurrentRotation,
    #[error(transparent)]
    Store(#[from] sqlx::Error),
}

/// A private key with its public half as a JWK.
pub struct KeyMaterial {
    pub kid: String,
    pub algorithm: Algorithm,
    encoding: EncodingKey,
    public_jwk: Option<Jwk>,
}

impl KeyMaterial {
    pub fn from_pem(pem: &str, algorithm: JwtAlgorithm) -> Result<Self, KeyError> {
        let alg = algorithm.jsonwebtoken();
        let wrong = || KeyError::WrongKind(algorithm.as_str());
        let encoding = match algorithm {
            JwtAlgorithm::Rs256 => EncodingKey::from_rsa_pem(pem.as_bytes()),
            JwtAlgorithm::Es256 => EncodingKey::from_ec_pem(pem.as_bytes()),
            JwtAlgorithm::EdDsa => EncodingKey::from_ed_pem(pem.as_bytes()),
            JwtAlgorithm::Hs256 => return Err(wrong()),
        }
        .map_err(|_| wrong())?;
        let mut jwk = Jwk::from_encoding_key(&encoding, alg).map_err(|_| wrong())?;
        // A key that cannot be turned back into a verifier would sign tokens nobody can check.
        DecodingKey::from_jwk(&jwk).map_err(|_| wrong())?;
        let kid = jwk.thumbprint(ThumbprintHash::SHA256).map_err(|_| wrong())?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        Ok(Self { kid, algorithm: alg, encoding, public_jwk: Some(jwk) })
    }

    fn from_secret(secret: &str) -> Self {
        // The kid names the secret without revealing anything about it.
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
        mac.update(b"tokensmith key id");
        let kid = hex(&mac.finalize().into_bytes()[..8]);
        Self {
            kid,
            algorithm: Algorithm::HS256,
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            public_jwk: None,
        }
    }

    fn verifying_key(&self, secret: Option<&str>) -> VerifyingKey {
        let decoding = match (&self.public_jwk, secret) {
            (Some(jwk), _) => DecodingKey::from_jwk(jwk).expect("checked when the key was loaded"),
            (None, Some(secret)) => DecodingKey::from_secret(secret.as_bytes()),
            (None, None) => unreachable!("a key is either asymmetric or a secret"),
        };
        VerifyingKey { algorithm: self.algorithm, decoding }
    }

    pub fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A public key, with the one algorithm it may verify (never the token header's choice).
pub struct VerifyingKey {
    pub algorithm: Algorithm,
    pub decoding: DecodingKey,
}

/// Checks a key file against the algorithm at start (config validation).
pub fn signing_key_from_source(source: &KeySource, algorithm: JwtAlgorithm) -> Result<KeyMaterial, KeyError> {
    match source {
        KeySource::PemFile { pem, .. } => KeyMaterial::from_pem(pem.expose_secret(), algorithm),
        KeySource::Secret(secret) => Ok(KeyMaterial::from_secret(secret.expose_secret())),
        KeySource::Database => Err(KeyError::NotRotatable("the database")),
    }
}

/// A fresh private key as PKCS#8 PEM.
pub fn generate_pem(algorithm: JwtAlgorithm) -> Result<String, KeyError> {
    let der: Vec<u8> = match algorithm {
        JwtAlgorithm::Es256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .map_err(|_| KeyError::Generate)?
            .as_ref()
            .to_vec(),
        // PKCS#8 v1: jsonwebtoken cannot derive the public JWK from a v2 Ed25519 document.
        JwtAlgorithm::EdDsa => {
            Ed25519KeyPair::generate_pkcs8v1(&SystemRandom::new()).map_err(|_| KeyError::Generate)?.as_ref().to_vec()
        }
        JwtAlgorithm::Rs256 => aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048)
            .and_then(|k| k.as_der())
            .map_err(|_| KeyError::Generate)?
            .as_ref()
            .to_vec(),
        JwtAlgorithm::Hs256 => return Err(KeyError::NotRotatable("JWT_SECRET")),
    };
    Ok(pem::encode(&pem::Pem::new("PRIVATE KEY", der)))
}

/// What signs and verifies right now. Swapped whole when keys change.
pub struct KeyRing {
    pub signing: KeyMaterial,
    verifying: HashMap<String, VerifyingKey>,
    /// The JWKS document, serialized once per load rather than per request.
    pub jwks_json: Bytes,
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

    fn new(signing: KeyMaterial, older: Vec<KeyMaterial>, secret: Option<&str>) -> Self {
        let mut verifying = HashMap::new();
        let mut jwks = JwkSet { keys: Vec::new() };
        for key in std::iter::once(&signing).chain(older.iter()) {
            verifying.insert(key.kid.clone(), key.verifying_key(secret));
            jwks.keys.extend(key.public_jwk.clone());
        }
        let jwks_json = Bytes::from(serde_json::to_vec(&jwks).expect("a JWK set serializes"));
        Self { signing, verifying, jwks_json }
    }

    /// Builds the ring from the configured source, creating the database key on first use.
    pub async fn load(config: &Config, store: &Store) -> Result<Self, KeyError> {
        match &config.key_source {
            KeySource::Secret(secret) => {
                Ok(Self::new(KeyMaterial::from_secret(secret.expose_secret()), vec![], Some(secret.expose_secret())))
            }
            source @ KeySource::PemFile { .. } => {
                Ok(Self::new(signing_key_from_source(source, config.jwt_algorithm)?, vec![], None))
            }
            KeySource::Database => {
                let current = ensure_database_key(store, config.jwt_algorithm).await?;
                let older = store.published_keys(unix_now() - secs(config.longest_token_lifetime())).await?;
                let signing = material(&current)?;
                let older = older.iter().filter(|k| k.kid != current.kid).map(material).collect::<Result<_, _>>()?;
                Ok(Self::new(signing, older, None))
            }
        }
    }
}

fn material(key: &StoredKey) -> Result<KeyMaterial, KeyError> {
    let algorithm: JwtAlgorithm = key.algorithm.parse().map_err(|_| KeyError::WrongKind("known"))?;
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
    store.active_signing_key(algorithm.as_str()).await?.ok_or(KeyError::Generate)
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
        KeySource::Secret(_) => return Err(KeyError::NotRotatable("JWT_SECRET")),
    }
    let key = new_stored_key(config.jwt_algorithm)?;
    if !store.rotate_signing_key(&key).await? {
        return Err(KeyError::ConcurrentRotation);
    }
    Ok(key)
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

pub fn unix_now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

pub fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}
