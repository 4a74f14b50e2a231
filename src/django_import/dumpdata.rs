//! The JSON of `manage.py dumpdata auth.group auth.user token_blacklist`: a list of
//! `{"model", "pk", "fields"}` objects. Other models are passed over. Group memberships may be
//! primary keys or, with `--natural-foreign`, `["name"]`.

use serde_json::{Map, Value};

use crate::domain::django::{
    BlacklistedRecord, DjangoRecords, DjangoUser, GroupRecord, GroupRef, OutstandingRecord, RecordError, UserRecord,
    parse_datetime,
};

type Fields = Map<String, Value>;

/// Every record of the dump, or the first one that is malformed.
pub fn parse(json: &str) -> Result<DjangoRecords, RecordError> {
    let not_a_dump = |problem: String| RecordError { record: "the dump".into(), field: None, problem };
    let entries: Vec<Value> = serde_json::from_str(json).map_err(|e| not_a_dump(format!("not dumpdata JSON ({e})")))?;
    let mut records = DjangoRecords::default();
    for (index, entry) in entries.iter().enumerate() {
        let unnamed = || RecordError { record: format!("record {}", index + 1), field: None, problem: String::new() };
        let Some(model) = entry.get("model").and_then(Value::as_str) else {
            return Err(RecordError { problem: "no \"model\"".into(), ..unnamed() });
        };
        let Some(fields) = entry.get("fields").and_then(Value::as_object) else {
            return Err(RecordError { problem: format!("{model} without \"fields\""), ..unnamed() });
        };
        let pk = match entry.get("pk").and_then(Value::as_i64) {
            Some(pk) => pk,
            None if is_imported(model) => {
                let problem = format!("{model} without an integer \"pk\" (dump without --natural-primary)");
                return Err(RecordError { problem, ..unnamed() });
            }
            None => continue,
        };
        let record = Record { model, pk, fields };
        match model {
            "auth.group" => records.groups.push(GroupRecord { pk, name: record.string("name")? }),
            "auth.user" => records.users.push(record.user()?),
            "token_blacklist.outstandingtoken" => records.outstanding.push(record.outstanding()?),
            "token_blacklist.blacklistedtoken" => records.blacklisted.push(BlacklistedRecord {
                pk,
                token: record.integer("token")?,
                blacklisted_at: record.datetime("blacklisted_at")?,
            }),
            _ => {}
        }
    }
    Ok(records)
}

fn is_imported(model: &str) -> bool {
    model.starts_with("auth.user") || model.starts_with("auth.group") || model.starts_with("token_blacklist.")
}

struct Record<'a> {
    model: &'a str,
    pk: i64,
    fields: &'a Fields,
}

impl Record<'_> {
    fn error(&self, field: &str, problem: &str) -> RecordError {
        RecordError::new(self.model, self.pk, problem).field(field)
    }

    fn value(&self, field: &str) -> Result<&Value, RecordError> {
        self.fields.get(field).ok_or_else(|| self.error(field, "missing"))
    }

    fn string(&self, field: &str) -> Result<String, RecordError> {
        let value = self.value(field)?.as_str().ok_or_else(|| self.error(field, "not a string"))?;
        Ok(value.to_owned())
    }

    fn boolean(&self, field: &str) -> Result<bool, RecordError> {
        self.value(field)?.as_bool().ok_or_else(|| self.error(field, "not true or false"))
    }

    fn integer(&self, field: &str) -> Result<i64, RecordError> {
        self.value(field)?.as_i64().ok_or_else(|| self.error(field, "not an integer"))
    }

    fn optional_integer(&self, field: &str) -> Result<Option<i64>, RecordError> {
        match self.fields.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.integer(field).map(Some),
        }
    }

    fn datetime(&self, field: &str) -> Result<i64, RecordError> {
        let text = self.value(field)?.as_str().ok_or_else(|| self.error(field, "not a datetime"))?;
        parse_datetime(text).ok_or_else(|| self.error(field, "not a datetime"))
    }

    fn optional_datetime(&self, field: &str) -> Result<Option<i64>, RecordError> {
        match self.fields.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.datetime(field).map(Some),
        }
    }

    fn user(&self) -> Result<UserRecord, RecordError> {
        let user = DjangoUser {
            id: self.pk,
            username: self.string("username")?,
            email: self.string("email")?,
            first_name: self.string("first_name")?,
            last_name: self.string("last_name")?,
            password: self.string("password")?,
            is_active: self.boolean("is_active")?,
            is_staff: self.boolean("is_staff")?,
            is_superuser: self.boolean("is_superuser")?,
            date_joined: self.datetime("date_joined")?,
            last_login: self.optional_datetime("last_login")?,
            groups: Vec::new(),
        };
        Ok(UserRecord { user, groups: self.group_refs()? })
    }

    fn group_refs(&self) -> Result<Vec<GroupRef>, RecordError> {
        let Some(groups) = self.fields.get("groups") else { return Ok(Vec::new()) };
        let groups = groups.as_array().ok_or_else(|| self.error("groups", "not a list"))?;
        let group_ref = |group: &Value| match group {
            Value::Number(pk) => pk.as_i64().map(GroupRef::Pk),
            Value::Array(key) if key.len() == 1 => key[0].as_str().map(|name| GroupRef::Name(name.to_owned())),
            _ => None,
        };
        groups
            .iter()
            .map(|group| group_ref(group).ok_or_else(|| self.error("groups", "a group is neither a pk nor [name]")))
            .collect()
    }

    fn outstanding(&self) -> Result<OutstandingRecord, RecordError> {
        Ok(OutstandingRecord {
            pk: self.pk,
            user: self.optional_integer("user")?,
            jti: self.string("jti")?,
            token: self.string("token")?,
            created_at: self.optional_datetime("created_at")?,
            expires_at: self.datetime("expires_at")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = r#"[
        {"model": "auth.group", "pk": 1, "fields": {"name": "editors", "permissions": []}},
        {"model": "auth.user", "pk": 7, "fields": {"password": "pbkdf2_sha256$1000000$s$h",
         "last_login": null, "is_superuser": false, "username": "alice", "first_name": "Alice",
         "last_name": "", "email": "a@example.com", "is_staff": true, "is_active": true,
         "date_joined": "2026-12-01T10:00:00.123Z", "groups": [1, ["readers"]], "user_permissions": []}},
        {"model": "contenttypes.contenttype", "pk": 1, "fields": {"app_label": "auth"}}
    ]"#;

    #[test]
    fn users_and_groups_are_read_and_other_models_passed_over() {
        let records = parse(ALICE).unwrap();
        assert_eq!(records.groups.len(), 1);
        let alice = &records.users[0];
        assert_eq!(alice.user.id, 7);
        assert_eq!(alice.user.username, "alice");
        assert!(alice.user.is_staff);
        assert_eq!(alice.user.date_joined, 1_796_119_200);
        assert_eq!(alice.user.last_login, None);
        assert_eq!(alice.groups, [GroupRef::Pk(1), GroupRef::Name("readers".into())]);
    }

    #[test]
    fn a_malformed_record_is_named_with_its_field() {
        let bad = ALICE.replace(r#""is_staff": true"#, r#""is_staff": "yes""#);
        assert_eq!(parse(&bad).unwrap_err().to_string(), "auth.user pk=7, field \"is_staff\": not true or false");
        let bad = ALICE.replace(r#""date_joined": "2026-12-01T10:00:00.123Z""#, r#""date_joined": "soon""#);
        assert_eq!(parse(&bad).unwrap_err().to_string(), "auth.user pk=7, field \"date_joined\": not a datetime");
        let bad = ALICE.replace(r#""pk": 7"#, r#""pk": "7""#);
        assert!(parse(&bad).unwrap_err().to_string().starts_with("record 2: auth.user without an integer \"pk\""));
        assert!(parse("{").unwrap_err().to_string().starts_with("the dump: not dumpdata JSON"));
    }
}
