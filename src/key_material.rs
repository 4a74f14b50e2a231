//! Signing keys as values: the algorithms tokensmith signs with, a private key parsed from PEM
//! (or the HS* secret) with its public half as a JWK, and fresh keys. A leaf below `config`,
//! so that a key file is parsed once, when the configuration is read, and kept.

use std::str::FromStr;

use aws_lc_rs::{
    encoding::AsDer,
    rand::SystemRandom,
    rsa::KeySize,
    signature::{ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair},
};
use hmac::{Hmac, Mac};
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey,
    jwk::{Jwk, PublicKeyUse, ThumbprintHash},
};
use sha2::Sha256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtAlgorithm {
    Hs256,
    Hs384,
    Hs512,
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    EdDsa,
}

/// The kind of key an algorithm signs with: what a key file must hold and what is generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A shared secret of at least this many bytes (RFC 7518 §3.2: the hash's output size).
    Secret {
        min_len: usize,
    },
    /// RSA, shared by the RS* and PS* families (RFC 7518 §3.3, §3.5: 2048 bits or more).
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl KeyKind {
    /// How an operator would name the key a file must hold.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Secret { .. } => "shared secret",
            Self::Rsa => "RSA",
            Self::P256 => "EC P-256",
            Self::P384 => "EC P-384",
            Self::Ed25519 => "Ed25519",
        }
    }
}

impl JwtAlgorithm {
    pub const ALL: [Self; 12] = [
        Self::Hs256,
        Self::Hs384,
        Self::Hs512,
        Self::Rs256,
        Self::Rs384,
        Self::Rs512,
        Self::Ps256,
        Self::Ps384,
        Self::Ps512,
        Self::Es256,
        Self::Es384,
        Self::EdDsa,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::Hs384 => "HS384",
            Self::Hs512 => "HS512",
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
            Self::Rs512 => "RS512",
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::EdDsa => "EdDSA",
        }
    }

    pub fn jsonwebtoken(self) -> Algorithm {
        match self {
            Self::Hs256 => Algorithm::HS256,
            Self::Hs384 => Algorithm::HS384,
            Self::Hs512 => Algorithm::HS512,
            Self::Rs256 => Algorithm::RS256,
            Self::Rs384 => Algorithm::RS384,
            Self::Rs512 => Algorithm::RS512,
            Self::Ps256 => Algorithm::PS256,
            Self::Ps384 => Algorithm::PS384,
            Self::Ps512 => Algorithm::PS512,
            Self::Es256 => Algorithm::ES256,
            Self::Es384 => Algorithm::ES384,
            Self::EdDsa => Algorithm::EdDSA,
        }
    }

    pub fn key_kind(self) -> KeyKind {
        match self {
            Self::Hs256 => KeyKind::Secret { min_len: 32 },
            Self::Hs384 => KeyKind::Secret { min_len: 48 },
            Self::Hs512 => KeyKind::Secret { min_len: 64 },
            Self::Rs256 | Self::Rs384 | Self::Rs512 | Self::Ps256 | Self::Ps384 | Self::Ps512 => KeyKind::Rsa,
            Self::Es256 => KeyKind::P256,
            Self::Es384 => KeyKind::P384,
            Self::EdDsa => KeyKind::Ed25519,
        }
    }

    /// The shortest secret RFC 7518 §3.2 allows; `None` for algorithms with key pairs.
    pub fn min_secret_len(self) -> Option<usize> {
        match self.key_kind() {
            KeyKind::Secret { min_len } => Some(min_len),
            _ => None,
        }
    }
}

impl FromStr for JwtAlgorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|a| a.as_str() == s).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|a| a.as_str()).collect();
            format!("unsupported algorithm {s:?}; use one of {}", names.join(", "))
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyMaterialError {
    #[error("the key is not a PEM {kind} private key, which {algorithm} signs with")]
    WrongKind { algorithm: &'static str, kind: &'static str },
    #[error("a stored key names an algorithm this version does not know")]
    UnknownAlgorithm,
    #[error("could not generate a key")]
    Generate,
    #[error("{0} keys are a shared secret, not generated")]
    NotGenerated(&'static str),
}

/// A private key with its public half: the JWK that is published, and the key that verifies.
pub struct KeyMaterial {
    pub kid: String,
    pub algorithm: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    public_jwk: Option<Jwk>,
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyMaterial({:?}, {})", self.algorithm, self.kid)
    }
}

impl KeyMaterial {
    pub fn from_pem(pem: &str, algorithm: JwtAlgorithm) -> Result<Self, KeyMaterialError> {
        let alg = algorithm.jsonwebtoken();
        let kind = algorithm.key_kind();
        let wrong = || KeyMaterialError::WrongKind { algorithm: algorithm.as_str(), kind: kind.describe() };
        let encoding = match kind {
            KeyKind::Rsa => EncodingKey::from_rsa_pem(pem.as_bytes()),
            // The curve is checked below: deriving the public half parses the key for `alg`'s curve.
            KeyKind::P256 | KeyKind::P384 => EncodingKey::from_ec_pem(pem.as_bytes()),
            KeyKind::Ed25519 => EncodingKey::from_ed_pem(pem.as_bytes()),
            KeyKind::Secret { .. } => return Err(wrong()),
        }
        .map_err(|_| wrong())?;
        let mut jwk = Jwk::from_encoding_key(&encoding, alg).map_err(|_| wrong())?;
        // A key that cannot be turned back into a verifier would sign tokens nobody can check.
        let decoding = DecodingKey::from_jwk(&jwk).map_err(|_| wrong())?;
        let kid = jwk.thumbprint(ThumbprintHash::SHA256).map_err(|_| wrong())?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        Ok(Self { kid, algorithm: alg, encoding, decoding, public_jwk: Some(jwk) })
    }

    /// The HS256/HS384/HS512 shared secret: nothing is published. The caller has checked its length.
    pub fn from_secret(secret: &str, algorithm: JwtAlgorithm) -> Result<Self, KeyMaterialError> {
        if algorithm.min_secret_len().is_none() {
            return Err(KeyMaterialError::WrongKind {
                algorithm: algorithm.as_str(),
                kind: algorithm.key_kind().describe(),
            });
        }
        // The kid names the secret without revealing anything about it. HS256's stays what it
        // always was; the others name the algorithm too, so one secret under two algorithms
        // never shares a kid.
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
        mac.update(b"tokensmith key id");
        if algorithm != JwtAlgorithm::Hs256 {
            mac.update(algorithm.as_str().as_bytes());
        }
        let kid = hex(&mac.finalize().into_bytes()[..8]);
        Ok(Self {
            kid,
            algorithm: algorithm.jsonwebtoken(),
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            public_jwk: None,
        })
    }

    pub fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey { algorithm: self.algorithm, decoding: self.decoding.clone() }
    }

    /// The public JWK; `None` for a shared secret.
    pub fn public_jwk(&self) -> Option<&Jwk> {
        self.public_jwk.as_ref()
    }
}

/// A public key, with the one algorithm it may verify (never the token header's choice).
pub struct VerifyingKey {
    pub algorithm: Algorithm,
    pub decoding: DecodingKey,
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh private key as PKCS#8 PEM, of the kind `algorithm` signs with.
pub fn generate_pem(algorithm: JwtAlgorithm) -> Result<String, KeyMaterialError> {
    let ecdsa = |signing| {
        EcdsaKeyPair::generate_pkcs8(signing, &SystemRandom::new())
            .map(|der| der.as_ref().to_vec())
            .map_err(|_| KeyMaterialError::Generate)
    };
    let der: Vec<u8> = match algorithm.key_kind() {
        KeyKind::P256 => ecdsa(&ECDSA_P256_SHA256_FIXED_SIGNING)?,
        KeyKind::P384 => ecdsa(&ECDSA_P384_SHA384_FIXED_SIGNING)?,
        // PKCS#8 v1: jsonwebtoken cannot derive the public JWK from a v2 Ed25519 document.
        KeyKind::Ed25519 => Ed25519KeyPair::generate_pkcs8v1(&SystemRandom::new())
            .map_err(|_| KeyMaterialError::Generate)?
            .as_ref()
            .to_vec(),
        KeyKind::Rsa => aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048)
            .and_then(|k| k.as_der())
            .map_err(|_| KeyMaterialError::Generate)?
            .as_ref()
            .to_vec(),
        KeyKind::Secret { .. } => return Err(KeyMaterialError::NotGenerated(algorithm.as_str())),
    };
    Ok(pem::encode(&pem::Pem::new("PRIVATE KEY", der)))
}
