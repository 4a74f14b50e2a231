//! Request extractors whose failures are `AppError`s, so a malformed request gets the same
//! JSON error shape as everything else.

use std::net::{IpAddr, SocketAddr};

use axum::{
    body::{Bytes, HttpBody},
    extract::{ConnectInfo, FromRequest, FromRequestParts, Request},
    http::{HeaderMap, header, request::Parts},
};
use secrecy::SecretString;
use serde_json::{Map, Value, json};

use super::{AppState, BODY_LIMIT};
use crate::error::{AppError, BearerError, FieldErrors};

/// A body sent as JSON or as an HTML form, read into one map of fields (DRF's `request.data`).
pub struct Fields(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for Fields {
    type Rejection = AppError;

    async fn from_request(req: Request, _: &S) -> Result<Self, AppError> {
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
                Err(e) => Err(AppError::JsonParse(e.to_string())),
            }
        } else if media_type == "application/x-www-form-urlencoded" {
            let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).map_err(|_| AppError::Malformed)?;
            // A repeated key keeps its last value, as Django's QueryDict does.
            Ok(Self(pairs.into_iter().map(|(k, v)| (k, Value::String(v))).collect()))
        } else {
            Err(AppError::UnsupportedMediaType(content_type))
        }
    }
}

/// An oversized body up to this size is read to its end (and dropped) before the 413: a server
/// that answers mid-upload and closes makes the client's kernel reset the connection, and the
/// client then sees a broken pipe instead of the answer. Larger declared bodies are refused unread.
const DRAIN_LIMIT: usize = 1024 * 1024;

/// The body, at most `BODY_LIMIT` bytes of it.
async fn read_body(req: Request) -> Result<Bytes, AppError> {
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > DRAIN_LIMIT as u64) {
        return Err(AppError::PayloadTooLarge);
    }
    let mut body = req.into_body();
    let mut bytes = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await {
        let Ok(data) = frame.map_err(|_| AppError::Malformed)?.into_data() else { continue };
        seen += data.len();
        if seen > DRAIN_LIMIT {
            return Err(AppError::PayloadTooLarge);
        }
        if seen <= BODY_LIMIT {
            bytes.extend_from_slice(&data);
        }
    }
    if seen > BODY_LIMIT {
        return Err(AppError::PayloadTooLarge);
    }
    Ok(Bytes::from(bytes))
}

fn not_a_dictionary(value: &Value) -> AppError {
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
    AppError::Validation(errors)
}

/// Reads required string fields the way DRF's `CharField` does, collecting every error
/// before answering, one key per field.
pub struct FieldReader<'a> {
    fields: &'a Map<String, Value>,
    errors: FieldErrors,
}

impl<'a> FieldReader<'a> {
    pub fn new(fields: &'a Fields) -> Self {
        Self { fields: &fields.0, errors: FieldErrors::new() }
    }

    /// A required, non-blank string. `trim` as DRF's `trim_whitespace` (off for passwords).
    pub fn required(&mut self, name: &str, trim: bool) -> String {
        let value = match self.fields.get(name) {
            None => Err("This field is required."),
            Some(Value::Null) => Err("This field may not be null."),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            Some(_) => Err("Not a valid string."),
        };
        let value = value.map(|v| if trim { v.trim().to_owned() } else { v });
        match value {
            Ok(v) if v.is_empty() => self.error(name, "This field may not be blank."),
            // DRF's CharField refuses NUL (PostgreSQL cannot store it: a 500 otherwise).
            Ok(v) if v.contains('\0') => self.error(name, "Null characters are not allowed."),
            Ok(v) => v,
            Err(message) => self.error(name, message),
        }
    }

    /// An optional string: `None` when absent, null or blank.
    pub fn optional(&self, name: &str) -> Option<String> {
        match self.fields.get(name) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        }
    }

    pub fn secret(&mut self, name: &str) -> SecretString {
        SecretString::from(self.required(name, false))
    }

    fn error(&mut self, name: &str, message: &str) -> String {
        self.errors.insert(name.to_owned(), json!([message]));
        String::new()
    }

    pub fn finish(self) -> Result<(), AppError> {
        if self.errors.is_empty() { Ok(()) } else { Err(AppError::Validation(self.errors)) }
    }
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

/// The body exactly as sent (webhook signatures are over these bytes), at most `BODY_LIMIT`.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = AppError;

    async fn from_request(req: Request, _: &S) -> Result<Self, AppError> {
        read_body(req).await.map(Self)
    }
}

/// The client's address: the peer, or what `X-Forwarded-For` says when the peer is a
/// trusted proxy (the right-most address not itself a trusted proxy).
pub struct ClientAddr(pub String);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let Some(peer) = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()) else {
            return Ok(Self("unknown".to_owned()));
        };
        let trusted = |ip: &IpAddr| state.auth.config.trusted_proxies.iter().any(|net| net.contains(ip));
        if !trusted(&peer) {
            return Ok(Self(peer.to_string()));
        }
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| s.trim().parse::<IpAddr>().ok())
            .collect::<Vec<_>>();
        let client = forwarded.into_iter().rev().find(|ip| !trusted(ip)).unwrap_or(peer);
        Ok(Self(client.to_string()))
    }
}
