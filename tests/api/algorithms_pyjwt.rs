//! Every `JWT_ALGORITHM` checked by a second, unrelated implementation: PyJWT, as a Python
//! downstream service runs it (`tests/python/verify_jwks.py`). `algorithms.rs` verifies with the
//! same Rust crate that signs, so a mistake shared by signing and verifying there (a wrong PSS
//! salt, a JWK labelled with the wrong `alg`, an ECDSA signature in DER form) would pass there
//! and break every Python service here.
//!
//! Twelve servers sign, then one Python process checks all their tokens: one interpreter start
//! instead of twelve.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use tokensmith::key_material::JwtAlgorithm;

use crate::{helpers::*, python};

crate::db_test!(pyjwt_verifies_every_algorithm_from_the_jwks_or_the_secret);

/// Named as the contract names them, not taken from the code under test.
const ALGORITHMS: [&str; 12] =
    ["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];
const ISSUER: &str = "https://auth.example.test";
const AUDIENCE: &str = "orders";

/// A server signing under one algorithm, the access token it issued to alice, and how a
/// downstream service gets its key: the JWKS URL, or the shared secret under HS*.
struct Signer {
    alg: &'static str,
    access: String,
    key: Value,
    _app: TestApp,
}

impl Signer {
    async fn spawn(backend: Backend, alg: &'static str) -> Self {
        let min_secret = alg.parse::<JwtAlgorithm>().unwrap().min_secret_len();
        // As long as RFC 7518 §3.2 requires, and no longer: PyJWT enforces the minimum below.
        let secret = min_secret.map(|len| "k".repeat(len));
        let mut settings = vec![("JWT_ALGORITHM", alg), ("JWT_ISSUER", ISSUER), ("JWT_AUDIENCE", AUDIENCE)];
        if let Some(secret) = &secret {
            settings.push(("JWT_SECRET", secret));
        }
        let app = spawn_app_with(backend, &settings).await;
        let (access, _) = app.alice().await;
        assert_eq!(header(&access)["alg"], alg);
        let key = match secret {
            Some(secret) => json!({"secret": secret}),
            None => json!({"jwks_url": app.url("/.well-known/jwks.json")}),
        };
        Self { alg, access, key, _app: app }
    }

    /// A `verify_jwks.py --batch` check of `token`, with the algorithm pinned to `alg`.
    fn check(&self, token: &str, alg: &str, audience: &str) -> String {
        let mut check = self.key.clone();
        check["token"] = json!(token);
        check["algorithm"] = json!(alg);
        check["issuer"] = json!(ISSUER);
        check["audience"] = json!(audience);
        check.to_string()
    }
}

/// `token` claiming to be user 2's: one character of the claims changed, the signature kept.
/// (Still JSON: `PyJWKClient` reads the header and claims unverified to find the `kid`, so
/// anything else would be refused before the signature is even looked at.)
fn tampered(token: &str) -> String {
    let (head, rest) = token.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let mut forged = claims(token);
    assert_eq!(forged["user_id"], "1");
    forged["user_id"] = json!("2");
    format!("{head}.{}.{signature}", URL_SAFE_NO_PAD.encode(forged.to_string()))
}

/// `verify_jwks.py`'s one-token form, for an RS384 token from the JWKS at `jwks_url`.
async fn verify_one(jwks_url: &str, token: &str) -> python::Py {
    let args = ["--algorithm", "RS384", "--jwks-url", jwks_url, "--issuer", ISSUER, "--audience", AUDIENCE, token];
    python::run_script("verify_jwks.py", &args, &[]).await
}

fn refusal<'a>(answer: &'a Value, what: &str) -> &'a str {
    answer["error"].as_str().unwrap_or_else(|| panic!("PyJWT accepted {what}: {answer}"))
}

/// For each of the twelve algorithms, a real login's access token verifies with PyJWT from the
/// published JWKS (picked by `kid` through `PyJWKClient`), or with `JWT_SECRET` under HS*, with
/// issuer and audience checked; the claims are the user's. The same token altered to claim
/// another user, or checked by a service pinned to another algorithm, is refused.
async fn pyjwt_verifies_every_algorithm_from_the_jwks_or_the_secret(backend: Backend) {
    let mut signers = Vec::new();
    for alg in ALGORITHMS {
        signers.push(Signer::spawn(backend, alg).await);
    }

    let mut checks = Vec::new();
    for (i, signer) in signers.iter().enumerate() {
        let another = ALGORITHMS[(i + 1) % ALGORITHMS.len()];
        checks.push(signer.check(&signer.access, signer.alg, AUDIENCE));
        checks.push(signer.check(&tampered(&signer.access), signer.alg, AUDIENCE));
        checks.push(signer.check(&signer.access, another, AUDIENCE));
    }
    // Audience is checked, not just passed along.
    checks.push(signers[3].check(&signers[3].access, signers[3].alg, "billing"));
    let mut args = vec!["--batch"];
    args.extend(checks.iter().map(String::as_str));
    let answers = python::run_script("verify_jwks.py", &args, &[]).await.json();
    let answers = answers.as_array().expect("one answer per check");
    assert_eq!(answers.len(), checks.len(), "{answers:?}");

    for (signer, answers) in signers.iter().zip(answers.chunks(3)) {
        let alg = signer.alg;
        let verified = answers[0]["claims"].clone();
        assert!(verified.is_object(), "{alg}: PyJWT refused a genuine token: {}", answers[0]);
        assert_eq!(verified, claims(&signer.access), "{alg}: PyJWT read other claims than the token's");
        assert_eq!(verified["token_type"], "access", "{alg}");
        assert_eq!(verified["user_id"], "1", "{alg}");
        assert_eq!(verified["sub"], "1", "{alg}");
        assert_eq!((&verified["iss"], &verified["aud"]), (&json!(ISSUER), &json!(AUDIENCE)), "{alg}");

        let error = refusal(&answers[1], &format!("the {alg} token, tampered"));
        assert!(error.starts_with("InvalidSignatureError"), "{alg}: {error}");
        let error = refusal(&answers[2], &format!("the {alg} token under another pinned algorithm"));
        assert!(error.starts_with("InvalidAlgorithmError"), "{alg}: {error}");
    }
    let error = refusal(answers.last().unwrap(), "a token for another audience");
    assert!(error.starts_with("InvalidAudienceError"), "{error}");

    // The script's one-token form: claims on stdout, or a refusal and a failing exit status.
    let rs384 = &signers[4];
    let jwks_url = rs384.key["jwks_url"].as_str().unwrap();
    assert_eq!(verify_one(jwks_url, &rs384.access).await.json(), claims(&rs384.access));
    let refused = verify_one(jwks_url, &tampered(&rs384.access)).await;
    assert!(!refused.status.success(), "a tampered token verified: {}", refused.stdout);
    assert!(refused.stderr.contains("InvalidSignatureError"), "{}", refused.stderr);
}
