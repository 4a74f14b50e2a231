//! Request extractors whose failures are `AppError`s, so a malformed request gets the same
//! JSON error shape as everything else.
//!
//! Bodies are read as DRF reads `request.data` (JSON or an HTML form) and then deserialised into
//! the request struct the OpenAPI document describes. Which fields are read, and which are
//! required, comes from that struct's schema, so the document and the parsing cannot drift; the
//! rules for each field are DRF's `CharField`'s, and every failing field is reported at once.

use std::{
    any::TypeId,
    collections::HashMap,
    sync::{Arc, OnceLock, RwLock},
};

use axum::{
    body::{Bytes, HttpBody},
    extract::{FromRef, FromRequest, FromRequestParts, Request},
    http::{HeaderMap, header, request::Parts},
    response::{IntoResponse, Response},
};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use utoipa::{
    ToSchema,
    openapi::{RefOr, schema::Schema},
};

pub use super::client_addr::ClientAddr;
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
pub trait DrfRequest: DeserializeOwned + ToSchema + 'static {
    /// Fields read with surrounding whitespace trimmed (DRF's `trim_whitespace`, which
    /// tokensmith turns off for passwords and tokens, as simplejwt does).
    const TRIMMED: &'static [&'static str] = &[];
}

/// A body sent as JSON or as an HTML form, read into one map of fields (DRF's `request.data`),
/// and, for a form, every pair as sent (a repeated key is a list to DRF's list fields).
pub struct Fields(Map<String, Value>, Option<Vec<(String, String)>>);

impl Fields {
    pub fn from_map(fields: Map<String, Value>) -> Self {
        Self(fields, None)
    }

    /// Every value a form sent under `name` (Django's `QueryDict.getlist`); `None` for a JSON
    /// body, or a form without the key.
    pub fn form_list(&self, name: &str) -> Option<Vec<String>> {
        let pairs = self.1.as_ref()?;
        let values: Vec<String> = pairs.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect();
        (!values.is_empty()).then_some(values)
    }

    pub fn into_map(self) -> Map<String, Value> {
        self.0
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// The documented request: each required field a non-blank string without NUL (numbers are
    /// taken as their text), optional fields present only when non-empty strings.
    pub fn parse<T: DrfRequest>(mut self) -> Result<T, BodyError> {
        let (properties, required) = schema_fields::<T>();
        let mut errors = FieldErrors::new();
        for name in properties {
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
        for name in &schema_fields::<T>().0 {
            self.keep_if_text(name);
        }
        serde_json::from_value(Value::Object(self.0)).map_err(|_| BodyError::Malformed)
    }

    fn keep_if_text(&mut self, name: &str) {
        if !matches!(self.0.get(name), Some(Value::String(s)) if !s.is_empty()) {
            self.0.remove(name);
        }
    }
}

/// A request type's properties, in order, and which of them are required.
type SchemaFields = (Vec<String>, Vec<String>);

/// The property names of `T`'s schema, in order, and which of them are required.
fn schema_fields<T: ToSchema + 'static>() -> &'static SchemaFields {
    // Read once per request type (a handful, fixed at compile time): building the schema
    // object on every login, refresh and verify would be work done again and again.
    static READ: OnceLock<RwLock<HashMap<TypeId, &'static SchemaFields>>> = OnceLock::new();
    let read = READ.get_or_init(Default::default);
    if let Some(fields) = read.read().ok().and_then(|known| known.get(&TypeId::of::<T>()).copied()) {
        return fields;
    }
    let fields = match T::schema() {
        RefOr::T(Schema::Object(object)) => (object.properties.keys().cloned().collect(), object.required),
        _ => (Vec::new(), Vec::new()),
    };
    let mut known = read.write().unwrap_or_else(|poisoned| poisoned.into_inner());
    known.entry(TypeId::of::<T>()).or_insert_with(|| Box::leak(Box::new(fields)))
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
            return Ok(Self(Map::new(), None));
        };
        let media_type = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if media_type == "application/json" || media_type.ends_with("+json") {
            match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Object(map)) => Ok(Self(map, None)),
                Ok(other) => Err(not_a_dictionary(&other)),
                Err(e) => Err(BodyError::JsonParse(e.to_string())),
            }
        } else if media_type == "application/x-www-form-urlencoded" {
            let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).map_err(|_| BodyError::Malformed)?;
            // A repeated key keeps its last value, as Django's QueryDict does.
            let fields = pairs.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
            Ok(Self(fields, Some(pairs)))
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

/// The token in `Authorization: <type> <token>`, for the types `AUTH_HEADER_TYPES` lists
/// (`Bearer` by default).
pub struct BearerToken(pub String);

impl BearerToken {
    /// As simplejwt's `JWTAuthentication.get_raw_token`: `None` when there is no
    /// `Authorization` header or its scheme is not one of `types` (the request is then
    /// unauthenticated, and a protected endpoint says no credentials were provided); an error
    /// when a listed scheme is not followed by exactly one token. Unlike simplejwt, schemes
    /// compare ignoring ASCII case, as RFC 9110 has them: `bearer` is `Bearer`.
    pub fn from_headers<T: AsRef<str>>(headers: &HeaderMap, types: &[T]) -> Result<Option<String>, AppError> {
        let value = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
        let mut words = value.split_whitespace();
        let Some(scheme) = words.next() else { return Ok(None) };
        if !types.iter().any(|t| t.as_ref().eq_ignore_ascii_case(scheme)) {
            return Ok(None);
        }
        match (words.next(), words.next()) {
            (Some(token), None) => Ok(Some(token.to_owned())),
            _ => Err(AppError::Bearer(BearerError::Malformed)),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for BearerToken
where
    Arc<HttpSettings>: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let settings = Arc::<HttpSettings>::from_ref(state);
        Self::from_headers(&parts.headers, &settings.auth_header_types)?
            .map(Self)
            .ok_or(AppError::Bearer(BearerError::Missing))
    }
}

/// The active user whose access token is in `Authorization`, and the token's claims.
pub struct Authenticated {
    pub user: User,
    pub token: VerifiedToken,
}

impl<S: Send + Sync> FromRequestParts<S> for Authenticated
where
    Sessions: FromRef<S>,
    Arc<HttpSettings>: FromRef<S>,
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

#[cfg(test)]
mod tests {
    use super::*;

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
        Fields(value.as_object().unwrap().clone(), None)
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
