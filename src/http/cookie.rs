//! The refresh cookie (`REFRESH_TOKEN_COOKIE=true`), for single-page apps: the refresh token
//! travels only in an HttpOnly, Secure, SameSite=Strict cookie scoped to `/api/token/`, so
//! JavaScript never sees it. Requests that use it must come from an allowed `Origin`
//! (a CSRF defence on top of SameSite).

use axum::{
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Response},
};

use super::error::AppError;
use crate::clock::unix_now;

pub const NAME: &str = "refresh_token";
const PATH: &str = "/api/token/";

/// `Set-Cookie` carrying `token` until `expires_at` (Unix seconds).
pub fn set(token: &str, expires_at: i64) -> HeaderValue {
    let max_age = (expires_at - unix_now()).max(0);
    HeaderValue::from_str(&format!("{NAME}={token}; Path={PATH}; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict"))
        .expect("a JWT is a valid header value")
}

/// `Set-Cookie` that deletes the cookie.
pub fn clear() -> HeaderValue {
    HeaderValue::from_str(&format!("{NAME}=; Path={PATH}; Max-Age=0; HttpOnly; Secure; SameSite=Strict"))
        .expect("a static cookie is a valid header value")
}

/// The refresh token in the request's cookie, if any.
pub fn read(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == NAME && !value.is_empty())
        .map(|(_, value)| value.to_owned())
}

/// A request that relies on the cookie must carry an `Origin` listed in `CORS_ALLOWED_ORIGINS`
/// (`allowed`), or the service's own (same host and port): 403 otherwise, worded as DRF words
/// CSRF failures.
pub fn check_origin(headers: &HeaderMap, allowed: &[String]) -> Result<(), AppError> {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Err(AppError::Forbidden("CSRF Failed: Origin header missing.".to_owned()));
    };
    // The service's own origin: the Origin names the host (and port) the request was sent to.
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let own = host.is_some_and(|host| origin.split_once("://").is_some_and(|(_, authority)| authority == host));
    if own || allowed.iter().any(|allowed| allowed == origin) {
        Ok(())
    } else {
        // The origin is the client's own words; quote it only in the sanitized form.
        let shown: String = origin.chars().filter(|c| c.is_ascii_graphic()).take(200).collect();
        Err(AppError::Forbidden(format!(
            "CSRF Failed: Origin checking failed - {shown} does not match any trusted origins."
        )))
    }
}

/// `response` with `Set-Cookie: value` added.
pub fn with(response: impl IntoResponse, value: HeaderValue) -> Response {
    let mut response = response.into_response();
    response.headers_mut().append(header::SET_COOKIE, value);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        pairs.iter().map(|(name, value)| (name.clone(), HeaderValue::from_str(value).unwrap())).collect()
    }

    fn detail(result: Result<(), AppError>) -> String {
        match result {
            Err(AppError::Forbidden(detail)) => detail,
            other => panic!("not a 403: {other:?}"),
        }
    }

    #[test]
    fn the_services_own_origin_and_listed_origins_pass() {
        let allowed = ["https://app.example.com".to_owned()];
        let own = headers(&[(header::ORIGIN, "http://auth.local:8000"), (header::HOST, "auth.local:8000")]);
        assert!(check_origin(&own, &[]).is_ok());
        let listed = headers(&[(header::ORIGIN, "https://app.example.com"), (header::HOST, "auth.local:8000")]);
        assert!(check_origin(&listed, &allowed).is_ok());
    }

    #[test]
    fn a_missing_or_foreign_origin_is_refused_and_quoted_sanitized() {
        assert_eq!(detail(check_origin(&headers(&[]), &[])), "CSRF Failed: Origin header missing.");
        // Same host, other port: another origin.
        let other_port = headers(&[(header::ORIGIN, "http://auth.local:9000"), (header::HOST, "auth.local:8000")]);
        assert!(detail(check_origin(&other_port, &[])).contains("http://auth.local:9000 does not match"));
        let hostile = headers(&[(header::ORIGIN, "https://evil.example\t<x>")]);
        let message = detail(check_origin(&hostile, &["https://app.example.com".to_owned()]));
        assert!(message.contains("https://evil.example<x> does not match"), "{message}");
    }
}
