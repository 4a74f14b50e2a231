//! The body of `POST`/`PATCH /api/admin/users/…`, read as a DRF `ModelSerializer` for Django's
//! user reads it: strings as `CharField`s, flags as `BooleanField`s, `groups` as a list of group
//! names, `claims` as a JSON object, every bad field reported at once in DRF's words. Read-only
//! and unknown fields are ignored, as DRF ignores them. The typed structs (`UserCreate`,
//! `UserPatch`) are what the OpenAPI document shows; `every_documented_field_is_read` keeps the two
//! in step.

use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use super::super::{error::FieldErrors, extract::Fields};
use crate::{accounts::AccountEdit, admin::NewUser};

/// A new user. Only a superuser may set `is_staff` or `is_superuser`.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct UserCreate {
    #[schema(min_length = 1, max_length = 150, pattern = r"^[\w.@+-]+$")]
    username: String,
    #[schema(max_length = 254)]
    email: Option<String>,
    #[schema(max_length = 150)]
    first_name: Option<String>,
    #[schema(max_length = 150)]
    last_name: Option<String>,
    /// Absent or null: the user has no password login. The password policy applies.
    #[schema(min_length = 1, pattern = r"^[^\x00]+$")]
    password: Option<String>,
    #[schema(schema_with = drf_boolean)]
    is_active: Option<bool>,
    #[schema(schema_with = drf_boolean)]
    is_staff: Option<bool>,
    #[schema(schema_with = drf_boolean)]
    is_superuser: Option<bool>,
    /// Names of existing groups.
    groups: Option<Vec<String>>,
    /// Custom claims merged into the user's access tokens.
    #[schema(value_type = Option<Object>)]
    claims: Option<Map<String, Value>>,
}

/// The fields to change; the others stay as they are. Passwords are set with `set-password`.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct UserPatch {
    #[schema(min_length = 1, max_length = 150, pattern = r"^[\w.@+-]+$")]
    username: Option<String>,
    #[schema(max_length = 254)]
    email: Option<String>,
    #[schema(max_length = 150)]
    first_name: Option<String>,
    #[schema(max_length = 150)]
    last_name: Option<String>,
    #[schema(schema_with = drf_boolean)]
    is_active: Option<bool>,
    #[schema(schema_with = drf_boolean)]
    is_staff: Option<bool>,
    #[schema(schema_with = drf_boolean)]
    is_superuser: Option<bool>,
    groups: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    claims: Option<Map<String, Value>>,
}

/// The spellings of a boolean DRF's `BooleanField` reads (besides JSON's own).
const TRUE_WORDS: [&str; 14] = ["t", "T", "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON", "1"];
const FALSE_WORDS: [&str; 14] =
    ["f", "F", "n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF", "0"];

/// A flag as the document shows it: a boolean, 0 or 1, or one of DRF's words for them.
fn drf_boolean() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    let words: Vec<&str> = TRUE_WORDS.iter().chain(&FALSE_WORDS).copied().collect();
    OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::Boolean))
        .item(ObjectBuilder::new().schema_type(Type::Integer).enum_values(Some([0, 1])))
        .item(ObjectBuilder::new().schema_type(Type::String).enum_values(Some(words)))
        .description(Some("true or false; DRF's spellings (0/1, \"yes\", \"off\"…) are read too"))
        .build()
        .into()
}

/// The fields both bodies read, and how.
const TEXT: [&str; 4] = ["username", "email", "first_name", "last_name"];
const FLAGS: [&str; 3] = ["is_active", "is_staff", "is_superuser"];

/// The body's fields, each read by its kind; errors collected per field.
struct Reader {
    fields: Map<String, Value>,
    /// A form's `groups`, every value sent (DRF reads list fields of a form with `getlist`).
    form_groups: Option<Vec<String>>,
    errors: FieldErrors,
}

impl Reader {
    fn new(fields: Fields) -> Self {
        let form_groups = fields.form_list("groups");
        Self { fields: fields.into_map(), form_groups, errors: FieldErrors::new() }
    }
}

impl Reader {
    fn refuse(&mut self, name: &str, message: impl Into<String>) {
        self.errors.insert(name.to_owned(), json!([message.into()]));
    }

    /// A `CharField` (whitespace trimmed, as DRF does); `None` when absent or refused. Unlike
    /// DRF, a number is not taken as its text: the document says these are strings, and this API
    /// has no older clients that send numbers.
    fn text(&mut self, name: &str, allow_blank: bool) -> Option<String> {
        let text = match self.fields.get(name)? {
            Value::String(s) => s.trim().to_owned(),
            Value::Null => return self.refused(name, "This field may not be null."),
            _ => return self.refused(name, "Not a valid string."),
        };
        if text.is_empty() && !allow_blank {
            return self.refused(name, "This field may not be blank.");
        }
        if text.contains('\0') {
            return self.refused(name, "Null characters are not allowed.");
        }
        Some(text)
    }

    fn refused<T>(&mut self, name: &str, message: &str) -> Option<T> {
        self.refuse(name, message);
        None
    }

    /// A `BooleanField`, with the spellings DRF accepts.
    fn flag(&mut self, name: &str) -> Option<bool> {
        let value = match self.fields.get(name)? {
            Value::Bool(b) => Some(*b),
            Value::Number(n) => match n.as_i64() {
                Some(1) => Some(true),
                Some(0) => Some(false),
                _ => None,
            },
            Value::String(s) if TRUE_WORDS.contains(&s.as_str()) => Some(true),
            Value::String(s) if FALSE_WORDS.contains(&s.as_str()) => Some(false),
            Value::Null => return self.refused(name, "This field may not be null."),
            _ => None,
        };
        value.or_else(|| self.refused(name, "Must be a valid boolean."))
    }

    /// Group names: a list of strings (a form's every `groups` value).
    fn groups(&mut self) -> Option<Vec<String>> {
        if let Some(names) = self.form_groups.take() {
            return Some(names);
        }
        match self.fields.get("groups")? {
            Value::Array(items) => {
                let names: Option<Vec<String>> = items.iter().map(|i| i.as_str().map(str::to_owned)).collect();
                names.or_else(|| self.refused("groups", "Invalid value."))
            }
            other => {
                let message = format!("Expected a list of items but got type \"{}\".", python_type(other));
                self.refused("groups", &message)
            }
        }
    }

    /// A JSON object; from a form, the JSON text of one.
    fn claims(&mut self) -> Option<Map<String, Value>> {
        let value = match self.fields.get("claims")? {
            Value::String(text) => match serde_json::from_str::<Value>(text) {
                Ok(value) => value,
                Err(_) => return self.refused("claims", "Value must be valid JSON."),
            },
            other => other.clone(),
        };
        match value {
            Value::Object(map) => Some(map),
            other => {
                let message = format!("Expected a dictionary of items but got type \"{}\".", python_type(&other));
                self.refused("claims", &message)
            }
        }
    }

    /// A new password: absent or null is none; otherwise a non-blank string, never trimmed.
    fn password(&mut self) -> Option<SecretString> {
        match self.fields.get("password")? {
            Value::Null => None,
            Value::String(s) if s.is_empty() => self.refused("password", "This field may not be blank."),
            Value::String(s) if s.contains('\0') => self.refused("password", "Null characters are not allowed."),
            Value::String(s) => Some(SecretString::from(s.clone())),
            _ => self.refused("password", "Not a valid string."),
        }
    }

    /// What was read, and what was refused: a refused field is left out (`None`, or empty).
    fn finish<T>(self, value: T) -> (T, FieldErrors) {
        (value, self.errors)
    }
}

/// The name Python gives a JSON value's type, as DRF's messages quote it.
fn python_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// A `POST /api/admin/users/` body, and the fields it refused.
pub fn read_create(fields: Fields) -> (NewUser, FieldErrors) {
    let mut r = Reader::new(fields);
    let username = match r.fields.contains_key("username") {
        true => r.text("username", false),
        false => r.refused("username", "This field is required."),
    };
    let [email, first_name, last_name] =
        ["email", "first_name", "last_name"].map(|f| r.text(f, true).unwrap_or_default());
    let password = r.password();
    let [is_active, is_staff, is_superuser] = FLAGS.map(|f| r.flag(f));
    let (groups, claims) = (r.groups().unwrap_or_default(), r.claims());
    let new = NewUser {
        username: username.unwrap_or_default(),
        email,
        first_name,
        last_name,
        password,
        is_active: is_active.unwrap_or(true),
        is_staff: is_staff.unwrap_or(false),
        is_superuser: is_superuser.unwrap_or(false),
        groups,
        claims,
    };
    r.finish(new)
}

/// A `PATCH /api/admin/users/{id}/` body, and the fields it refused.
pub fn read_patch(fields: Fields) -> (AccountEdit, FieldErrors) {
    let mut r = Reader::new(fields);
    if r.fields.contains_key("password") {
        r.refuse("password", "Use the set-password endpoint to set a password.");
    }
    let [username, email, first_name, last_name] = TEXT.map(|f| r.text(f, f != "username"));
    let [is_active, is_staff, is_superuser] = FLAGS.map(|f| r.flag(f));
    let edit = AccountEdit {
        username,
        email,
        first_name,
        last_name,
        is_active,
        is_staff,
        is_superuser,
        groups: r.groups(),
        claims: r.claims(),
    };
    r.finish(edit)
}

/// A `POST /api/admin/groups/` body: its `name`.
pub fn read_group(fields: Fields) -> Result<String, FieldErrors> {
    let mut r = Reader::new(fields);
    let name = match r.fields.contains_key("name") {
        true => r.text("name", false),
        false => r.refused("name", "This field is required."),
    };
    let (name, errors) = r.finish(name);
    name.filter(|_| errors.is_empty()).ok_or(errors)
}

#[cfg(test)]
mod tests {
    use utoipa::openapi::{RefOr, schema::Schema};

    use super::*;

    fn properties<T: ToSchema>() -> Vec<String> {
        match T::schema() {
            RefOr::T(Schema::Object(object)) => object.properties.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn every_documented_field_is_read() {
        let read: Vec<&str> = TEXT.iter().chain(&FLAGS).chain(&["groups", "claims"]).copied().collect();
        let mut create = read.clone();
        create.insert(4, "password");
        assert_eq!(properties::<UserCreate>(), create);
        assert_eq!(properties::<UserPatch>(), read);
    }

    fn fields(value: Value) -> Fields {
        Fields::from_map(value.as_object().cloned().unwrap_or_default())
    }

    #[test]
    fn every_bad_field_is_reported_in_drfs_words() {
        let body = json!({"is_staff": "maybe", "groups": "admins", "claims": [1], "email": null, "password": ""});
        let (_, errors) = read_create(fields(body));
        assert_eq!(
            Value::Object(errors),
            json!({
                "username": ["This field is required."],
                "email": ["This field may not be null."],
                "password": ["This field may not be blank."],
                "is_staff": ["Must be a valid boolean."],
                "groups": ["Expected a list of items but got type \"str\"."],
                "claims": ["Expected a dictionary of items but got type \"list\"."],
            })
        );
    }

    #[test]
    fn a_patch_reads_only_what_was_sent() {
        let (edit, errors) = read_patch(fields(json!({"first_name": " Ada ", "is_active": "off", "id": 9})));
        assert!(errors.is_empty());
        assert_eq!((edit.first_name.as_deref(), edit.is_active, edit.username), (Some("Ada"), Some(false), None));
        let (_, errors) = read_patch(fields(json!({"password": "x"})));
        assert!(errors.contains_key("password"));
    }
}
