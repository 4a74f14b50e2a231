//! Property tests: the token decoder, the Svix signature parser and the stored password hash
//! reader meet arbitrary input and answer with a refusal, never a panic; what they accept is
//! exactly what they should.
//! (`cargo test --test properties`; `PROPTEST_CASES=N` for a longer run.)

use std::sync::Arc;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::Header;
use proptest::prelude::*;
use secrecy::SecretString;
use serde_json::{Value, json};
use tokensmith::{
    config::Config,
    external::svix::SvixVerifier,
    passwords::{Verdict, check_stored_hash, verify_with_memory},
    store::Store,
    tokens::{KeyRing, TokenService},
};

/// A token service over a throwaway SQLite database, with its generated ES256 key.
fn token_service() -> (tokio::runtime::Runtime, Arc<TokenService>, tempfile::TempDir) {
    tokensmith::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("p.db").display());
    let config = Arc::new(Config::from_lookup(&|name| (name == "DATABASE_URL").then(|| url.clone())).unwrap());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let service = runtime.block_on(async {
        let store = Store::connect(&config.database).await.unwrap();
        store.migrate().await.unwrap();
        let ring = KeyRing::load(&config, &store).await.unwrap();
        Arc::new(TokenService::new(config.clone(), store, ring))
    });
    (runtime, service, dir)
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::hash_map("[a-z_]{1,10}", inner, 0..4).prop_map(|m| json!(m)),
        ]
    })
}

/// Claims shaped like ours, each field possibly missing or of the wrong type.
fn claims() -> impl Strategy<Value = Value> {
    let field = |good: BoxedStrategy<Value>| prop_oneof![3 => good.prop_map(Some), 1 => json_value().prop_map(Some), 1 => Just(None)];
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    (
        field(prop_oneof![Just(json!("access")), Just(json!("refresh"))].boxed()),
        field((now - 100..now + 1000).prop_map(Value::from).boxed()),
        field((now - 1000..now + 100).prop_map(Value::from).boxed()),
        field("[0-9a-f]{32}".prop_map(Value::from).boxed()),
        field(prop_oneof![(1i64..1000).prop_map(|n| json!(n.to_string())), (1i64..1000).prop_map(Value::from)].boxed()),
        prop::collection::hash_map("[a-z]{1,6}", json_value(), 0..3),
    )
        .prop_map(|(token_type, exp, iat, jti, user_id, extra)| {
            let mut claims = serde_json::Map::new();
            for (name, value) in
                [("token_type", token_type), ("exp", exp), ("iat", iat), ("jti", jti), ("user_id", user_id)]
            {
                if let Some(value) = value {
                    claims.insert(name.to_owned(), value);
                }
            }
            // Extra claims of any shape, but not registered ones whose checks are the library's
            // (nbf, iss, aud), whose meaning `acceptable` would have to repeat.
            for (name, value) in extra.into_iter().filter(|(name, _)| !["nbf", "iss", "aud"].contains(&name.as_str())) {
                claims.entry(name).or_insert(value);
            }
            Value::Object(claims)
        })
}

/// What a correct decoder accepts: every required claim present and well typed, unexpired.
fn acceptable(claims: &Value, now: i64) -> bool {
    let exp_ok = claims["exp"].as_i64().is_some_and(|exp| exp > now);
    let iat_ok = claims["iat"].as_i64().is_some_and(|iat| iat <= now);
    let type_ok = matches!(claims["token_type"].as_str(), Some("access" | "refresh"));
    let jti_ok = claims["jti"].as_str().is_some_and(|j| !j.is_empty());
    let user_ok = match &claims["user_id"] {
        Value::String(s) => s.parse::<i64>().is_ok(),
        Value::Number(n) => n.as_i64().is_some(),
        _ => false,
    };
    exp_ok && iat_ok && type_ok && jti_ok && user_ok
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings_are_refused_without_panicking(token in ".{0,300}") {
        let (runtime, service, _dir) = token_service();
        prop_assert!(runtime.block_on(service.verify(&token, None)).is_err());
    }

    #[test]
    fn arbitrary_jwt_shaped_input_is_refused(header in json_value(), payload in json_value(), signature in "[A-Za-z0-9_-]{0,90}") {
        let (runtime, service, _dir) = token_service();
        let token = format!("{}.{}.{signature}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(payload.to_string()));
        prop_assert!(runtime.block_on(service.verify(&token, None)).is_err());
    }

    #[test]
    fn validly_signed_odd_claims_are_accepted_exactly_when_well_formed(claims in claims()) {
        let (runtime, service, _dir) = token_service();
        let ring = service.key_ring();
        let mut header = Header::new(ring.signing.algorithm);
        header.kid = Some(ring.signing.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, ring.signing.encoding_key()).unwrap();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        let result = runtime.block_on(service.verify(&token, None));
        // Claims on the edge of expiry may flip within the second; skip those.
        prop_assume!(claims["exp"].as_i64().is_none_or(|exp| (exp - now).abs() > 2));
        prop_assert_eq!(result.is_ok(), acceptable(&claims, now), "claims {}", claims);
        if let Ok(verified) = result {
            prop_assert_eq!(Some(verified.jti.as_str()), claims["jti"].as_str());
        }
    }

    #[test]
    fn svix_signature_headers_of_any_shape_are_refused(
        id in proptest::option::of(".{0,40}"),
        timestamp in proptest::option::of(prop_oneof![".{0,20}", (0i64..4_000_000_000).prop_map(|t| t.to_string())]),
        signature in proptest::option::of(prop_oneof![".{0,120}", "(v1,[A-Za-z0-9+/=]{0,60} ?){0,4}"]),
        body in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let verifier = SvixVerifier::new(&SecretString::from("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")).unwrap();
        let now = 1_700_000_000;
        prop_assert!(verifier.verify(id.as_deref(), timestamp.as_deref(), signature.as_deref(), &body, now).is_err());
    }

    #[test]
    fn a_genuine_svix_signature_verifies_among_others(
        id in "[a-zA-Z0-9_]{1,40}",
        body in prop::collection::vec(any::<u8>(), 0..300),
        noise in prop::collection::vec("[A-Za-z0-9+/]{43}=", 0..3),
        skew in -299i64..299,
    ) {
        use hmac::{Hmac, Mac};
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let key = base64::engine::general_purpose::STANDARD.decode(&secret[6..]).unwrap();
        let now = 1_700_000_000i64;
        let timestamp = (now + skew).to_string();
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(&body);
        let genuine = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let mut entries: Vec<String> = noise.iter().map(|n| format!("v1,{n}")).collect();
        entries.push(format!("v1,{genuine}"));
        let verifier = SvixVerifier::new(&SecretString::from(secret)).unwrap();
        prop_assert!(verifier.verify(Some(&id), Some(&timestamp), Some(&entries.join(" ")), &body, now).is_ok());
        // One flipped body byte, and it fails.
        if !body.is_empty() {
            let mut tampered = body.clone();
            tampered[0] ^= 1;
            prop_assert!(verifier.verify(Some(&id), Some(&timestamp), Some(&entries.join(" ")), &tampered, now).is_err());
        }
    }
}

/// Strings shaped like stored hashes: a hasher's name, then `$`-separated fields of small
/// numbers, parameters and base64-ish text (small numbers, so any cost they name stays cheap).
fn hash_shaped() -> impl Strategy<Value = String> {
    let hasher = prop::sample::select(vec![
        "pbkdf2_sha256",
        "pbkdf2_sha1",
        "argon2",
        "bcrypt_sha256",
        "bcrypt",
        "scrypt",
        "md5",
        "$argon2id",
        "sha1",
        "!",
    ]);
    let field = prop_oneof![
        "[0-9]{1,3}",
        "[A-Za-z0-9+/.=]{0,50}",
        "v=1[69]",
        "m=[0-9]{1,3},t=[0-3],p=[0-2]",
        "2[abxy]",
        "0[0-9]",
    ];
    (hasher, prop::collection::vec(field, 0..7)).prop_map(|(hasher, fields)| format!("{hasher}${}", fields.join("$")))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Whatever a stored hash holds (an importer's input), reading it and checking a password
    /// against it neither panics nor matches.
    #[test]
    fn arbitrary_stored_hashes_never_panic_nor_match(stored in prop_oneof![".{0,200}", hash_shaped()], password in ".{0,80}") {
        let _ = check_stored_hash(&stored);
        prop_assert_eq!(verify_with_memory(password.as_bytes(), Some(&stored), &mut Vec::new()), Verdict::Mismatch);
    }
}
