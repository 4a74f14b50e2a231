//! The refresh cookie (`REFRESH_TOKEN_COOKIE=true`), for single-page apps: the refresh token
//! travels only in an HttpOnly, Secure, SameSite=Strict cookie scoped to `/api/token/`, so
//! JavaScript never sees it. Requests that use or set it (login, refresh, blacklist, the
//! exchanges) must come from an allowed `Origin`: a CSRF defence on top of SameSite, which does
//! not stop a foreign page's form from setting the cookie (login CSRF).

use axum::{
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Response},
};

use super::{HttpSettings, error::AppError};
use crate::{clock::unix_now, tokens::TokenError};

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

/// The refresh token in the request's cookie, if any. More than one `refresh_token` cookie
/// (one planted for a parent domain or another path, next to ours) is refused as an invalid
/// token: which one the browser lists first is not ours to decide.
pub fn read(headers: &HeaderMap) -> Result<Option<String>, AppError> {
    let mut values = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == NAME)
        .map(|(_, value)| value);
    match (values.next(), values.next()) {
        (Some(value), None) => Ok(Some(value.to_owned()).filter(|v| !v.is_empty())),
        (None, _) => Ok(None),
        (Some(_), Some(_)) => Err(AppError::Token(TokenError::Invalid)),
    }
}

/// A request that *uses* the cookie must carry an `Origin` listed in `CORS_ALLOWED_ORIGINS`
/// (`allowed`), or the service's own: 403 otherwise, worded as DRF words CSRF failures.
pub fn check_origin(headers: &HeaderMap, allowed: &[String]) -> Result<(), AppError> {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Err(missing_origin());
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if host.is_some_and(|host| is_own_origin(origin, host)) || allowed.iter().any(|allowed| allowed == origin) {
        Ok(())
    } else {
        // The origin is the client's own words; quote it only in the sanitized form.
        let shown: String = origin.chars().filter(|c| c.is_ascii_graphic()).take(200).collect();
        Err(AppError::Forbidden(format!(
            "CSRF Failed: Origin checking failed - {shown} does not match any trusted origins."
        )))
    }
}

/// With `REFRESH_TOKEN_COOKIE=true`, a request whose answer *sets* the cookie from what it
/// carries (login, exchanges, a refresh or blacklist with the token in the body) is refused when
/// a browser sent it from another origin: so a foreign page cannot plant its own session in the
/// browser (login CSRF). Browsers name the origin of every cross-origin POST (`Origin`, and
/// `Sec-Fetch-Site`); a client that is no browser sends neither and is served as simplejwt's.
pub fn refuse_foreign_origin(headers: &HeaderMap, settings: &HttpSettings) -> Result<(), AppError> {
    if !settings.refresh_token_cookie {
        return Ok(());
    }
    if headers.contains_key(header::ORIGIN) {
        return check_origin(headers, &settings.cors_allowed_origins);
    }
    let cross_site = headers.get("sec-fetch-site").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"));
    if cross_site { Err(missing_origin()) } else { Ok(()) }
}

fn missing_origin() -> AppError {
    AppError::Forbidden("CSRF Failed: Origin header missing.".to_owned())
}

/// The service's own origin: `http` or `https`, and exactly the host and port the request was
/// sent to (`Host`). Any other scheme (`evil://host:port`, `file://`, an extension's) is another
/// origin, even when it names this host.
fn is_own_origin(origin: &str, host: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else { return false };
    (scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https"))
        && !host.is_empty()
        && authority.eq_ignore_ascii_case(host)
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

    #[test]
    fn only_http_and_https_name_the_services_own_origin() {
        for origin in ["evil://auth.local:8000", "file://auth.local:8000", "chrome-extension://auth.local:8000", "null"]
        {
            let foreign = headers(&[(header::ORIGIN, origin), (header::HOST, "auth.local:8000")]);
            assert!(detail(check_origin(&foreign, &[])).contains("does not match"), "{origin}");
        }
        for origin in ["https://auth.local:8000", "http://AUTH.local:8000"] {
            let own = headers(&[(header::ORIGIN, origin), (header::HOST, "auth.local:8000")]);
            assert!(check_origin(&own, &[]).is_ok(), "{origin}");
        }
        // A path, or a port the request was not sent to, is not the service's origin.
        for origin in ["http://auth.local:8000/", "http://auth.local", "http://auth.local:8000@evil.example"] {
            let foreign = headers(&[(header::ORIGIN, origin), (header::HOST, "auth.local:8000")]);
            assert!(check_origin(&foreign, &[]).is_err(), "{origin}");
        }
    }

    #[test]
    fn two_refresh_cookies_are_refused_and_one_is_read() {
        let cookie = |value: &str| headers(&[(header::COOKIE, value)]);
        assert_eq!(read(&cookie("a=1; refresh_token=abc")).unwrap().as_deref(), Some("abc"));
        assert_eq!(read(&cookie("refresh_token=")).unwrap(), None);
        assert_eq!(read(&HeaderMap::new()).unwrap(), None);
        for value in ["refresh_token=planted; refresh_token=abc", "refresh_token=abc; refresh_token="] {
            assert!(matches!(read(&cookie(value)), Err(AppError::Token(TokenError::Invalid))), "{value}");
        }
        // Also across two Cookie headers (HTTP/2 sends one per cookie).
        let mut two = cookie("refresh_token=planted");
        two.append(header::COOKIE, HeaderValue::from_static("refresh_token=abc"));
        assert!(read(&two).is_err());
    }
}
