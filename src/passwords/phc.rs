//! argon2 hashes as PHC strings: tokensmith's own (`$argon2id$v=19$m=19456,t=2,p=1$…`) and,
//! behind Django's `argon2` prefix, Django's (`argon2$argon2id$…`, `argon2$argon2i$…`).
//!
//! Django verifies its argon2 hashes with argon2-cffi, that is with libargon2, the reference
//! implementation; a string is read here as its `decode_string` reads it, so that what matches
//! there matches here and nothing else does: `$argon2id`, `$argon2i` or `$argon2d`, an optional
//! `$v=16` or `$v=19` (none means 16), `$m=…,t=…,p=…` in that order with decimals that have no
//! leading zero, then salt and hash in unpadded standard base64 with no stray bits. The hash is
//! computed with RustCrypto's `argon2` (the crate tokensmith hashes with) and compared in
//! constant time.
//!
//! A stored hash sets its own cost, so each is bounded before any work: memory (`m`) at most
//! 256 MiB, memory × passes (`m·t`) at most 2 GiB, lanes (`p`) at most 64. Django's default is
//! m = 100 MiB, t = 2, p = 8; beyond a ceiling the hash never matches. Memory beyond what the
//! hashing thread keeps for its own hashes (19 MiB) is taken for that hash only and then freed.

use ::argon2::{Algorithm, Argon2, Block, Params, Version, password_hash::phc};
use base64::{Engine, engine::general_purpose::STANDARD_NO_PAD};

use super::{PasswordError, UnsupportedHash, same_bytes};

/// Bytes of random salt per hash (the PHC string format recommends 16).
const SALT_LEN: usize = 16;

/// The ceilings on a stored hash's cost (see the module comment).
const MAX_MEMORY_KIB: u32 = 256 * 1024;
const MAX_WORK_KIB: u64 = 2 * 1024 * 1024;
const MAX_LANES: u32 = 64;

/// OWASP's argon2id parameters (m=19456 KiB, t=2, p=1) are argon2's defaults.
pub(super) fn params() -> Params {
    Params::default()
}

/// One hash in `memory` (grown as needed), as the hashing threads do it.
pub fn hash_with_memory(password: &[u8], memory: &mut Vec<Block>) -> Result<String, PasswordError> {
    let params = params();
    let mut salt = [0u8; SALT_LEN];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| PasswordError::Hashing)?;
    let mut output = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    in_memory(memory, params.block_count(), |blocks| {
        argon2.hash_password_into_with_memory(password, &salt, &mut output, blocks)
    })
    .map_err(|_| PasswordError::Hashing)?;
    let hash = ::argon2::PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: (&params).try_into().map_err(|_| PasswordError::Hashing)?,
        salt: Some(phc::Salt::new(&salt).map_err(|_| PasswordError::Hashing)?),
        hash: Some(phc::Output::new(&output).map_err(|_| PasswordError::Hashing)?),
    };
    Ok(hash.to_string())
}

/// Runs `work` on `blocks` blocks of working memory: the thread's own when the default
/// parameters' is enough, else memory taken for this hash only, so that a thread that checked a
/// Django argon2 hash (100 MiB) goes back to holding 19 MiB.
fn in_memory<T>(memory: &mut Vec<Block>, blocks: usize, work: impl FnOnce(&mut [Block]) -> T) -> T {
    let kept = params().block_count();
    if blocks > kept {
        let mut temporary = vec![Block::new(); blocks];
        return work(&mut temporary);
    }
    if memory.len() < blocks {
        memory.resize(kept, Block::new());
    }
    work(&mut memory[..blocks])
}

/// A parsed argon2 PHC string, within the ceilings.
pub(super) struct Argon2Hash {
    algorithm: Algorithm,
    version: Version,
    params: Params,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

impl Argon2Hash {
    /// Reads `$argon2…` as libargon2 does; `hasher` names it in errors.
    pub(super) fn parse(phc: &str, hasher: &'static str) -> Result<Self, UnsupportedHash> {
        let malformed = |part| UnsupportedHash::Invalid { hasher, why: part };
        let mut parts = phc.strip_prefix('$').ok_or(malformed("with a malformed type"))?.split('$');
        let algorithm = match parts.next() {
            Some("argon2id") => Algorithm::Argon2id,
            Some("argon2i") => Algorithm::Argon2i,
            Some("argon2d") => Algorithm::Argon2d,
            _ => return Err(malformed("with a malformed type")),
        };
        let mut next = parts.next().ok_or(malformed("without parameters"))?;
        let version = match next.strip_prefix("v=") {
            Some(v) => {
                next = parts.next().ok_or(malformed("without parameters"))?;
                match decimal(v) {
                    Some(16) => Version::V0x10,
                    Some(19) => Version::V0x13,
                    _ => return Err(malformed("with a malformed version")),
                }
            }
            None => Version::V0x10,
        };
        let (m, t, p) = cost_parameters(next).ok_or(malformed("with malformed parameters"))?;
        let salt = parts.next().and_then(base64).ok_or(malformed("with a malformed salt"))?;
        let hash = parts.next().and_then(base64).ok_or(malformed("with a malformed hash"))?;
        if parts.next().is_some() {
            return Err(malformed("with a malformed hash"));
        }
        if m > MAX_MEMORY_KIB {
            return Err(UnsupportedHash::AboveCeiling { hasher, what: "memory", ceiling: "256 MiB" });
        }
        if u64::from(m) * u64::from(t) > MAX_WORK_KIB {
            return Err(UnsupportedHash::AboveCeiling { hasher, what: "memory × passes", ceiling: "2 GiB" });
        }
        if p > MAX_LANES {
            return Err(UnsupportedHash::AboveCeiling { hasher, what: "parallelism", ceiling: "64" });
        }
        let params = Params::new(m, t, p, Some(hash.len())).map_err(|_| malformed("with malformed parameters"))?;
        if salt.len() < ::argon2::MIN_SALT_LEN {
            return Err(malformed("with a malformed salt"));
        }
        Ok(Self { algorithm, version, params, salt, hash })
    }

    /// Recomputes the hash of `password` and compares in constant time.
    pub(super) fn verify(&self, password: &[u8], memory: &mut Vec<Block>) -> bool {
        let argon2 = Argon2::new(self.algorithm, self.version, self.params.clone());
        let mut output = vec![0u8; self.hash.len()];
        let computed = in_memory(memory, self.params.block_count(), |blocks| {
            argon2.hash_password_into_with_memory(password, &self.salt, &mut output, blocks)
        });
        computed.is_ok() && same_bytes(&output, &self.hash)
    }

    /// Whether it is what tokensmith hashes new passwords as: argon2id, version 19, the current
    /// parameters and output length.
    pub(super) fn is_current(&self) -> bool {
        let current = params();
        self.algorithm == Algorithm::Argon2id
            && self.version == Version::V0x13
            && (self.params.m_cost(), self.params.t_cost(), self.params.p_cost())
                == (current.m_cost(), current.t_cost(), current.p_cost())
            && self.hash.len() == Params::DEFAULT_OUTPUT_LEN
    }

    /// `argon2id`, `argon2i` or `argon2d`.
    pub(super) fn variant(&self) -> &'static str {
        match self.algorithm {
            Algorithm::Argon2d => "argon2d",
            Algorithm::Argon2i => "argon2i",
            Algorithm::Argon2id => "argon2id",
        }
    }
}

/// `m=…,t=…,p=…`, in that order.
fn cost_parameters(text: &str) -> Option<(u32, u32, u32)> {
    let mut fields = text.split(',');
    let mut field = |name: &str| fields.next()?.strip_prefix(name).and_then(decimal);
    let parsed = (field("m=")?, field("t=")?, field("p=")?);
    fields.next().is_none().then_some(parsed)
}

/// A decimal as libargon2 reads one: digits only, no leading zero, at most `u32::MAX`.
pub(super) fn decimal(text: &str) -> Option<u32> {
    let canonical =
        !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && !(text.starts_with('0') && text.len() > 1);
    if canonical { text.parse().ok() } else { None }
}

/// Unpadded standard base64 with no stray bits, as libargon2 decodes it.
fn base64(text: &str) -> Option<Vec<u8>> {
    STANDARD_NO_PAD.decode(text).ok().filter(|bytes| !bytes.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Verifies `password` against `stored` (a PHC string) with fresh memory.
    fn verifies(password: &[u8], stored: &str) -> bool {
        Argon2Hash::parse(stored, "argon2").is_ok_and(|hash| hash.verify(password, &mut Vec::new()))
    }

    #[test]
    fn hashes_verify_here_and_with_the_reference_implementation() {
        use ::argon2::{PasswordHasher, PasswordVerifier};
        let mut memory = Vec::new();
        let hash = hash_with_memory(b"correct horse", &mut memory).unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        let parsed = Argon2Hash::parse(&hash, "argon2").unwrap();
        assert!(parsed.is_current());
        assert!(parsed.verify(b"correct horse", &mut memory));
        assert!(!parsed.verify(b"correct horsf", &mut memory));
        // The argon2 crate's own verifier accepts our hashes...
        assert!(Argon2::default().verify_password(b"correct horse", hash.as_str()).is_ok());
        // ...and ours accepts the argon2 crate's own hashes.
        let reference = Argon2::default().hash_password_with_salt(b"battery staple", b"reference-salt16").unwrap();
        let reference = reference.to_string();
        assert!(verifies(b"battery staple", &reference), "{reference}");
        assert!(!verifies(b"battery stapler", &reference));
    }

    /// libargon2's test vectors (argon2 20190702, `src/test.c`), as its encoded strings.
    #[test]
    fn reference_vectors_verify() {
        let vectors = [
            "$argon2i$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$wWKIMhR9lyDFvRz9YTZweHKfbftvj+qf+YFY4NeBbtA",
            "$argon2i$m=65536,t=2,p=1$c29tZXNhbHQ$9sTbSlTio3Biev89thdrlKKiCaYsjjYVJxGAL3swxpQ",
            "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
        ];
        for vector in vectors {
            assert!(verifies(b"password", vector), "{vector}");
            assert!(!verifies(b"passwore", vector), "{vector}");
        }
    }

    #[test]
    fn only_what_libargon2_decodes_is_read() {
        let good = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";
        assert!(verifies(b"password", good));
        for bad in [
            good.replace("m=65536,t=2,p=1", "t=2,m=65536,p=1"),
            good.replace("m=65536", "m=065536"),
            good.replace("t=2,p=1", "t=2,p=1,keyid=AAAA"),
            good.replace("v=19", "v=20"),
            good.replace("$argon2id", "$argon2x"),
            good.replace("c29tZXNhbHQ", "c29tZXNhbHQ="),
            good.replace("c29tZXNhbHQ", "c29tZXNhbHR"),
            format!("{good}$"),
            format!("{good}=="),
            good.replacen('$', "", 1),
        ] {
            assert!(Argon2Hash::parse(&bad, "argon2").is_err(), "{bad}");
        }
    }

    #[test]
    fn costs_beyond_the_ceilings_are_refused_before_any_work() {
        let salt_hash = "c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";
        let with = |params: &str| Argon2Hash::parse(&format!("$argon2id$v=19${params}${salt_hash}"), "argon2");
        assert!(with("m=262144,t=8,p=64").is_ok());
        let refusal = |params: &str| with(params).err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(refusal("m=262145,t=1,p=1"), "argon2 memory above the 256 MiB ceiling");
        assert_eq!(refusal("m=262144,t=9,p=1"), "argon2 memory × passes above the 2 GiB ceiling");
        assert_eq!(refusal("m=4294967295,t=4294967295,p=1"), "argon2 memory above the 256 MiB ceiling");
        assert_eq!(refusal("m=65536,t=2,p=65"), "argon2 parallelism above the 64 ceiling");
        assert_eq!(refusal("m=65536,t=0,p=1"), "argon2 with malformed parameters");
        assert_eq!(refusal("m=7,t=1,p=1"), "argon2 with malformed parameters");
    }

    #[test]
    fn a_hash_above_the_default_memory_leaves_the_thread_at_the_default() {
        use ::argon2::PasswordHasher;
        let django_params = Params::new(102_400, 2, 8, None).unwrap();
        let django = Argon2::new(Algorithm::Argon2id, Version::V0x13, django_params)
            .hash_password_with_salt(b"from django", b"0123456789abcdef")
            .unwrap()
            .to_string();
        let mut memory = vec![Block::new(); params().block_count()];
        let parsed = Argon2Hash::parse(&django, "argon2").unwrap();
        assert!(!parsed.is_current());
        assert!(parsed.verify(b"from django", &mut memory));
        assert_eq!(memory.len(), params().block_count(), "the thread's memory is back at 19 MiB");
        assert_eq!(memory.capacity(), params().block_count());
    }
}
