//! Request extractors whose failures are `AppError`s, so a malformed request gets the same
//! JSON error shape as everything else.
//!
//! Bodies are read as DRF reads `request.data` (JSON or an HTML form) and then deserialised into
//! the request struct the OpenAPI document describes. Which fields are read, and which are
//! required, comes from that struct's schema, so the document and the parsing cannot drift; the
//! rules for each field are DRF's `CharField`'s, and every failing field is reported at once.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use axum::{
    body::{Bytes, HttpBody},
    extract::{ConnectInfo, FromRef, FromRequest, FromRequestParts, Request},
    http::{HeaderMap, header, request::Parts},
    response::{IntoResponse, Response},
};
use ipnet::IpNet;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use utoipa::{
    ToSchema,
    openapi::{RefOr, schema::Schema},
};

use super::{
    BODY_LIMIT, HttpSettings,
    error::{AppError, BearerError, FieldErrors},
};
use crate::{domain::User, sessions::Sessions, tokens::VerifiedToken};

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// Field name → messages, as DRF reports validation errors.
    Fields(FieldErrors),
    JsonParse(String),
    Malformed,
    UnsupportedMediaType(String),
    TooLarge,
}

/// A request body documented in the OpenAPI document and read as DRF reads it.
pub trait DrfRequest: DeserializeOwned + ToSchema {
    /// Fields read with surrounding whitespace trimmed (DRF's `trim_whitespace`, which
    /// tokensmith turns off for passwords and tokens, as simplejwt does).
    const TRIMMED: &'static [&'static str] = &[];
}

/// A body sent as JSON or as an HTML form, read into one map of fields (DRF's `request.data`).
pub struct Fields(Map<String, Value>);

impl Fields {
    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// The documented request: each required field a non-blank string without NUL (numbers are
    /// taken as their text), optional fields present only when non-empty strings.
    pub fn parse<T: DrfRequest>(mut self) -> Result<T, BodyError> {
        let (properties, required) = schema_fields::<T>();
        let mut errors = FieldErrors::new();
        for name in &properties {
            if required.contains(name) {
                match char_field(self.0.get(name), T::TRIMMED.contains(&name.as_str())) {
                    Ok(value) => {
                        self.0.insert(name.clone(), Value::String(value));
                    }
                    Err(message) => {
                        errors.insert(name.clone(), json!([message]));
                    }
                }
            } else {
                self.keep_if_text(name);
            }
        }
        if !errors.is_empty() {
            return Err(BodyError::Fields(errors));
        }
        serde_json::from_value(Value::Object(self.0)).map_err(|_| BodyError::Malformed)
    }

    /// The documented request for an OAuth endpoint, which reports missing parameters itself:
    /// every field is a non-empty string or absent (its `serde(default)`).
    pub fn parse_lenient<T: DrfRequest>(mut self) -> Result<T, BodyError> {
        for name in schema_fields::<T>().0 {
            self.keep_if_text(&name);
        }
        serde_json::from_value(Value::Object(self.0)).map_err(|_| BodyError::Malformed)
    }

    fn keep_if_text(&mut self, name: &str) {
        if !matches!(self.0.get(name), Some(Value::String(s)) if !s.is_empty()) {
            self.0.remove(name);
        }
    }
}

/// The property names of `T`'s schema, in order, and which of them are required.
fn schema_fields<T: ToSchema>() -> (Vec<String>, Vec<String>) {
    match T::schema() {
        RefOr::T(Schema::Object(object)) => (object.properties.keys().cloned().collect(), object.required),
        _ => (Vec::new(), Vec::new()),
    }
}

/// A required field as DRF's `CharField` reads it, or the message DRF gives.
fn char_field(value: Option<&Value>, trim: bool) -> Result<String, &'static str> {
    let text = match value {
        None => return Err("This field is required."),
        Some(Value::Null) => return Err("This field may not be null."),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err("Not a valid string."),
    };
    let text = if trim { text.trim().to_owned() } else { text };
    if text.is_empty() {
        return Err("This field may not be blank.");
    }
    // DRF's CharField refuses NUL (PostgreSQL cannot store it: a 500 otherwise).
    if text.contains('\0') {
        return Err("Null characters are not allowed.");
    }
    Ok(text)
}

impl IntoResponse for BodyError {
    fn into_response(self) -> Response {
        AppError::from(self).into_response()
    }
}

impl<S: Send + Sync> FromRequest<S> for Fields {
    type Rejection = BodyError;

    async fn from_request(req: Request, _: &S) -> Result<Self, BodyError> {
        let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = read_body(req).await?;
        // As DRF: no body, or no content type, is an empty set of fields.
        let Some(content_type) = content_type.filter(|_| !body.is_empty()) else {
            return Ok(Self(Map::new()));
        };
        let media_type = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if media_type == "application/json" || media_type.ends_with("+json") {
            match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Object(map)) => Ok(Self(map)),
                Ok(other) => Err(not_a_dictionary(&other)),
                Err(e) => Err(BodyError::JsonParse(e.to_string())),
            }
        } else if media_type == "application/x-www-form-urlencoded" {
            let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).map_err(|_| BodyError::Malformed)?;
            // A repeated key keeps its last value, as Django's QueryDict does.
            Ok(Self(pairs.into_iter().map(|(k, v)| (k, Value::String(v))).collect()))
        } else {
            Err(BodyError::UnsupportedMediaType(content_type))
        }
    }
}

/// The documented request `T`, from a JSON or form body.
pub struct JsonOrForm<T>(pub T);

impl<S: Send + Sync, T: DrfRequest> FromRequest<S> for JsonOrForm<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        let fields = Fields::from_request(req, state).await?;
        Ok(Self(fields.parse()?))
    }
}

/// An oversized body up to this size is read to its end (and dropped) before the 413: a server
/// that answers mid-upload and closes makes the client's kernel reset the connection, and the
/// client then sees a broken pipe instead of the answer. Larger declared bodies are refused unread.
const DRAIN_LIMIT: usize = 1024 * 1024;

/// The body, at most `BODY_LIMIT` bytes of it.
async fn read_body(req: Request) -> Result<Bytes, BodyError> {
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > DRAIN_LIMIT as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut body = req.into_body();
    let mut bytes = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await {
        let Ok(data) = frame.map_err(|_| BodyError::Malformed)?.into_data() else { continue };
        seen += data.len();
        if seen > DRAIN_LIMIT {
            return Err(BodyError::TooLarge);
        }
        if seen <= BODY_LIMIT {
            bytes.extend_from_slice(&data);
        }
    }
    if seen > BODY_LIMIT {
        return Err(BodyError::TooLarge);
    }
    Ok(Bytes::from(bytes))
}

fn not_a_dictionary(value: &Value) -> BodyError {
    let message = match value {
        Value::Null => "No data provided".to_owned(),
        other => {
            let python_type = match other {
                Value::Array(_) => "list",
                Value::String(_) => "str",
                Value::Bool(_) => "bool",
                Value::Number(n) if n.is_f64() => "float",
                _ => "int",
            };
            format!("Invalid data. Expected a dictionary, but got {python_type}.")
        }
    };
    let mut errors = FieldErrors::new();
    errors.insert("non_field_errors".to_owned(), json!([message]));
    BodyError::Fields(errors)
}

/// The token in `Authorization: Bearer <token>`.
pub struct BearerToken(pub String);

impl BearerToken {
    /// `None` when there is no `Authorization: Bearer` header; an error when it is malformed.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<String>, AppError> {
        let value = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
        let mut words = value.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some(scheme), Some(token), None) if scheme.eq_ignore_ascii_case("Bearer") => Ok(Some(token.to_owned())),
            (Some(scheme), _, _) if scheme.eq_ignore_ascii_case("Bearer") => {
                Err(AppError::Bearer(BearerError::Malformed))
            }
            _ => Ok(None),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for BearerToken {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AppError> {
        Self::from_headers(&parts.headers)?.map(Self).ok_or(AppError::Bearer(BearerError::Missing))
    }
}

/// The active user whose access token is in `Authorization: Bearer …`, and the token's claims.
pub struct Authenticated {
    pub user: User,
    pub token: VerifiedToken,
}

impl<S: Send + Sync> FromRequestParts<S> for Authenticated
where
    Sessions: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let BearerToken(token) = BearerToken::from_request_parts(parts, state).await?;
        let (user, token) = Sessions::from_ref(state).authenticate(&token).await?;
        Ok(Self { user, token })
    }
}

/// The body exactly as sent (webhook signatures are over these bytes), at most `BODY_LIMIT`.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = AppError;

    async fn from_request(req: Request, _: &S) -> Result<Self, AppError> {
        Ok(Self(read_body(req).await?))
    }
}

/// The client's address: the peer, or what `X-Forwarded-For` says when the peer is a
/// trusted proxy. An IPv4-mapped IPv6 address (a dual-stack listener's view of an IPv4 peer)
/// is the IPv4 address, so `TRUSTED_PROXIES` and the login throttle see one address, not two.
pub struct ClientAddr(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr
where
    std::sync::Arc<HttpSettings>: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let Some(peer) = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()) else {
            return Ok(Self("unknown".to_owned()));
        };
        let settings = std::sync::Arc::<HttpSettings>::from_ref(state);
        Ok(Self(client_address(peer, &parts.headers, &settings.trusted_proxies).to_string()))
    }
}

/// Walking `X-Forwarded-For` from the right while the address reached is a trusted proxy: the
/// first address that is not one, else the last address reached. Each proxy appends the
/// address it saw, so everything left of an untrusted address could be forged by the client;
/// and an entry that cannot be read at all ends the walk (nothing left of it is believed), so
/// garbage cannot make the walk skip to the client's own words.
fn client_address(peer: IpAddr, headers: &HeaderMap, trusted_proxies: &[IpNet]) -> IpAddr {
    // Addresses are compared as IPv4 where they are IPv4; a proxy listed in its mapped form matches too.
    let trusted = |ip: &IpAddr| {
        let mapped = match ip {
            IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
            IpAddr::V6(_) => *ip,
        };
        trusted_proxies.iter().any(|net| net.contains(ip) || net.contains(&mapped))
    };
    let mut client = peer.to_canonical();
    if !trusted(&client) {
        return client;
    }
    // A value that is not text is one unreadable entry (`None`); empty list elements are
    // ignored (RFC 9110 §5.6.1).
    let entries = headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| match v.to_str() {
            Ok(text) => text.split(',').map(str::trim).filter(|e| !e.is_empty()).map(Some).collect::<Vec<_>>(),
            Err(_) => vec![None],
        })
        .collect::<Vec<_>>();
    for entry in entries.into_iter().rev() {
        let Some(ip) = entry.and_then(forwarded_address) else { break };
        client = ip;
        if !trusted(&client) {
            break;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an IPv4 or IPv6 address, optionally with a port
/// (`203.0.113.7:51234`, `[2001:db8::1]:443`, `[2001:db8::1]`); IPv4-mapped addresses as IPv4.
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    let is_port =
        |port: &str| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok();
    let ip = if let Some(rest) = entry.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !after.is_empty() && !after.strip_prefix(':').is_some_and(is_port) {
            return None;
        }
        IpAddr::V6(inside.parse::<Ipv6Addr>().ok()?)
    } else if let Ok(ip) = entry.parse::<IpAddr>() {
        ip
    } else {
        // Only IPv4 takes a port without brackets: in `2001:db8::1:443` the port cannot be told apart.
        let (host, port) = entry.rsplit_once(':')?;
        if !is_port(port) {
            return None;
        }
        IpAddr::V4(host.parse::<Ipv4Addr>().ok()?)
    };
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        headers
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let headers = forwarded(&["198.51.100.9"]);
        assert_eq!(client_address(ip("203.0.113.7"), &headers, &[]), ip("203.0.113.7"));
        let proxies = ["10.0.0.0/8".parse().unwrap()];
        assert_eq!(client_address(ip("203.0.113.7"), &headers, &proxies), ip("203.0.113.7"));
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_address_is_the_client() {
        let proxies: [IpNet; 1] = ["10.0.0.0/8".parse().unwrap()];
        // The client forged the first entry; the second was added by our own proxy chain.
        let headers = forwarded(&["1.2.3.4, 203.0.113.7", "10.0.0.2"]);
        assert_eq!(client_address(ip("10.0.0.1"), &headers, &proxies), ip("203.0.113.7"));
        // Nothing but proxies: the last one reached.
        let headers = forwarded(&["10.0.0.4, 10.0.0.3"]);
        assert_eq!(client_address(ip("10.0.0.1"), &headers, &proxies), ip("10.0.0.4"));
        // No header: the peer.
        assert_eq!(client_address(ip("10.0.0.1"), &HeaderMap::new(), &proxies), ip("10.0.0.1"));
    }

    #[test]
    fn ports_and_brackets_are_stripped_so_the_forged_left_entry_is_not_believed() {
        let proxies: [IpNet; 1] = ["127.0.0.1/32".parse().unwrap()];
        for (real, client) in [
            ("203.0.113.7:51234", "203.0.113.7"),
            ("[2001:db8::1]:443", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("2001:db8::1", "2001:db8::1"),
            ("::ffff:203.0.113.7", "203.0.113.7"),
            ("[::ffff:203.0.113.7]:8080", "203.0.113.7"),
        ] {
            let headers = forwarded(&[&format!("1.2.3.4, {real}")]);
            assert_eq!(client_address(ip("127.0.0.1"), &headers, &proxies), ip(client), "{real}");
        }
    }

    #[test]
    fn an_unreadable_entry_ends_the_walk_at_the_last_address_reached() {
        let proxies: [IpNet; 1] = ["10.0.0.0/8".parse().unwrap()];
        for garbage in
            ["not an address", "unknown", "1.2.3.4:99999", "1.2.3.4:", "[2001:db8::1]x", "2001:db8::1:443x", "_hidden"]
        {
            // Right of the garbage, a proxy: it is the last address reached, and the forged entry is not believed.
            let headers = forwarded(&[&format!("1.2.3.4, {garbage}, 10.0.0.3")]);
            assert_eq!(client_address(ip("10.0.0.1"), &headers, &proxies), ip("10.0.0.3"), "{garbage}");
            // Garbage right-most: the peer.
            let headers = forwarded(&[&format!("1.2.3.4, {garbage}")]);
            assert_eq!(client_address(ip("10.0.0.1"), &headers, &proxies), ip("10.0.0.1"), "{garbage}");
        }
        // Header values are one list, in order; a value that is not text is unreadable.
        let mut headers = forwarded(&["1.2.3.4"]);
        headers.append("x-forwarded-for", HeaderValue::from_bytes(b"\xff").unwrap());
        headers.append("x-forwarded-for", HeaderValue::from_static("10.0.0.3"));
        assert_eq!(client_address(ip("10.0.0.1"), &headers, &proxies), ip("10.0.0.3"));
        // Empty list elements are ignored.
        let headers = forwarded(&["203.0.113.7, , 10.0.0.3,"]);
        assert_eq!(client_address(ip("10.0.0.1"), &headers, &proxies), ip("203.0.113.7"));
    }

    #[test]
    fn an_ipv4_mapped_peer_is_its_ipv4_address() {
        let proxies: [IpNet; 1] = ["127.0.0.1/32".parse().unwrap()];
        let headers = forwarded(&["203.0.113.7"]);
        assert_eq!(client_address(ip("::ffff:127.0.0.1"), &headers, &proxies), ip("203.0.113.7"));
        // Untrusted: the peer, keyed as IPv4 so it shares its throttle with plain IPv4 connections.
        assert_eq!(client_address(ip("::ffff:198.51.100.9"), &headers, &proxies), ip("198.51.100.9"));
        // A proxy listed in its mapped form is still trusted.
        let mapped: [IpNet; 1] = ["::ffff:127.0.0.1/128".parse().unwrap()];
        assert_eq!(client_address(ip("::ffff:127.0.0.1"), &headers, &mapped), ip("203.0.113.7"));
    }

    #[derive(serde::Deserialize, ToSchema)]
    struct Login {
        #[allow(dead_code)]
        username: String,
        #[allow(dead_code)]
        password: String,
        note: Option<String>,
    }

    impl DrfRequest for Login {
        const TRIMMED: &'static [&'static str] = &["username"];
    }

    fn fields(value: Value) -> Fields {
        Fields(value.as_object().unwrap().clone())
    }

    #[test]
    fn every_failing_field_is_reported_with_drfs_message() {
        let Err(BodyError::Fields(errors)) = fields(json!({"username": "  ", "note": 5})).parse::<Login>() else {
            panic!("refused")
        };
        assert_eq!(
            Value::Object(errors),
            json!({"username": ["This field may not be blank."], "password": ["This field is required."]})
        );
        for (value, message) in [
            (json!(null), "This field may not be null."),
            (json!([]), "Not a valid string."),
            (json!("a\u{0}b"), "Null characters are not allowed."),
        ] {
            let Err(BodyError::Fields(errors)) = fields(json!({"username": "u", "password": value})).parse::<Login>()
            else {
                panic!("refused")
            };
            assert_eq!(errors["password"], json!([message]));
        }
    }

    #[test]
    fn trimming_and_numbers_follow_drf() {
        let login = fields(json!({"username": " ada ", "password": 1234, "note": ""})).parse::<Login>().unwrap();
        assert_eq!((login.username.as_str(), login.password.as_str(), login.note), ("ada", "1234", None));
        let login = fields(json!({"username": "ada", "password": " pw ", "note": "hi"})).parse::<Login>().unwrap();
        assert_eq!((login.password.as_str(), login.note.as_deref()), (" pw ", Some("hi")));
    }
}
