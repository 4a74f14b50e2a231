//! Django's records as a source gives them, before they are checked against each other: what
//! the dumpdata reader and the database reader both produce.

use std::fmt;

use super::DjangoUser;

/// One `auth.group`.
#[derive(Debug, Clone)]
pub struct GroupRecord {
    pub pk: i64,
    pub name: String,
}

/// How a user names a group: by primary key, or by name (`dumpdata --natural-foreign`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupRef {
    Pk(i64),
    Name(String),
}

/// One `auth.user`; `user.groups` is filled in from `groups` when the records are checked.
#[derive(Debug, Clone)]
pub struct UserRecord {
    pub user: DjangoUser,
    pub groups: Vec<GroupRef>,
}

/// One `token_blacklist.outstandingtoken`.
#[derive(Debug, Clone)]
pub struct OutstandingRecord {
    pub pk: i64,
    /// `None`: its user was deleted in Django (the foreign key is `SET_NULL`).
    pub user: Option<i64>,
    pub jti: String,
    /// The token itself, whose claims say whether it is a refresh or a sliding token.
    pub token: String,
    pub created_at: Option<i64>,
    pub expires_at: i64,
}

/// One `token_blacklist.blacklistedtoken`.
#[derive(Debug, Clone)]
pub struct BlacklistedRecord {
    pub pk: i64,
    /// The outstanding token's primary key.
    pub token: i64,
    pub blacklisted_at: i64,
}

/// Everything a source read.
#[derive(Debug, Clone, Default)]
pub struct DjangoRecords {
    pub groups: Vec<GroupRecord>,
    pub users: Vec<UserRecord>,
    pub outstanding: Vec<OutstandingRecord>,
    pub blacklisted: Vec<BlacklistedRecord>,
}

/// A record that cannot be imported, named so the operator can find it: `auth.user pk=7,
/// field "password": unknown hasher "sha1"`. Never holds a field's value when it is a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RecordError {
    /// `auth.user pk=7`, or `record 3` when the record does not say what it is.
    pub record: String,
    pub field: Option<String>,
    pub problem: String,
}

impl RecordError {
    pub fn new(model: &str, pk: impl fmt::Display, problem: impl Into<String>) -> Self {
        Self { record: format!("{model} pk={pk}"), field: None, problem: problem.into() }
    }

    pub fn field(mut self, field: &str) -> Self {
        self.field = Some(field.to_owned());
        self
    }
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{}, field {field:?}: {}", self.record, self.problem),
            None => write!(f, "{}: {}", self.record, self.problem),
        }
    }
}

/// Django's datetimes as its serializer writes them (`2026-12-01T10:00:00.123Z`, an offset, or
/// naive when `USE_TZ=False`, read as UTC) and as SQLite stores them (a space for the `T`), in
/// Unix seconds.
pub fn parse_datetime(text: &str) -> Option<i64> {
    use time::{OffsetDateTime, format_description::well_known::Rfc3339};
    let mut normal = text.trim().replacen(' ', "T", 1);
    let has_offset = normal.ends_with('Z') || normal.get(19..).is_some_and(|rest| rest.contains(['+', '-']));
    if !has_offset {
        normal.push('Z');
    }
    OffsetDateTime::parse(&normal, &Rfc3339).ok().map(OffsetDateTime::unix_timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn django_datetimes_in_every_spelling() {
        assert_eq!(parse_datetime("2026-12-01T10:00:00Z"), Some(1_796_119_200));
        assert_eq!(parse_datetime("2026-12-01T10:00:00.123Z"), Some(1_796_119_200));
        assert_eq!(parse_datetime("2026-12-01T11:00:00.123456+01:00"), Some(1_796_119_200));
        assert_eq!(parse_datetime("2026-12-01T10:00:00"), Some(1_796_119_200));
        assert_eq!(parse_datetime("2026-12-01 10:00:00.5"), Some(1_796_119_200));
        assert_eq!(parse_datetime("yesterday"), None);
        assert_eq!(parse_datetime(""), None);
    }

    #[test]
    fn errors_name_the_record_and_field() {
        let error = RecordError::new("auth.user", 7, "unknown hasher \"sha1\"").field("password");
        assert_eq!(error.to_string(), "auth.user pk=7, field \"password\": unknown hasher \"sha1\"");
    }
}
