//! Checking what a source read before any of it is written: every field within Django's own
//! bounds, every hash one tokensmith verifies, every group and user a record names present, every
//! outstanding token a simplejwt refresh or sliding token whose claims agree with its record.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::Deserialize;

use crate::{
    domain::{
        EMAIL_MAX_CHARS, GroupName, MAX_GROUPS_PER_USER, Username,
        django::{
            DjangoRecords, DjangoSnapshot, DjangoToken, DjangoUser, GroupRef, JTI_MAX_CHARS, NAME_MAX_CHARS,
            OutstandingKind, OutstandingRecord, PASSWORD_MAX_CHARS, RecordError, UserRecord,
        },
    },
    passwords,
};

/// The records, checked, with the outstanding tokens that expired by `now` left out.
pub fn check(records: DjangoRecords, now: i64) -> Result<DjangoSnapshot, RecordError> {
    let mut group_names = HashMap::new();
    for group in &records.groups {
        GroupName::parse(&group.name)
            .map_err(|e| RecordError::new("auth.group", group.pk, e.to_string()).field("name"))?;
        group_names.insert(group.pk, group.name.clone());
    }
    let mut snapshot = DjangoSnapshot::default();
    let (mut ids, mut usernames) = (HashSet::new(), HashSet::new());
    for record in records.users {
        let user = checked_user(record, &group_names)?;
        let refused = |problem: &str| RecordError::new("auth.user", user.id, problem);
        if !ids.insert(user.id) {
            return Err(refused("a second user with this pk"));
        }
        if !usernames.insert(user.username.clone()) {
            return Err(refused("a second user with this username").field("username"));
        }
        snapshot.users.push(user);
    }
    snapshot.groups = group_names.into_values().collect::<BTreeSet<_>>().into_iter().collect();
    let blacklisted: HashMap<i64, i64> = records.blacklisted.iter().map(|b| (b.token, b.blacklisted_at)).collect();
    for record in &records.outstanding {
        match checked_token(record, &ids, blacklisted.get(&record.pk).copied(), now)? {
            Some(token) if token.expires_at > now => snapshot.tokens.push(token),
            _ => snapshot.tokens_skipped += 1,
        }
    }
    Ok(snapshot)
}

fn checked_user(record: UserRecord, group_names: &HashMap<i64, String>) -> Result<DjangoUser, RecordError> {
    let mut user = record.user;
    let error = |field: &str, problem: &str| RecordError::new("auth.user", user.id, problem).field(field);
    if user.id <= 0 {
        return Err(RecordError::new("auth.user", user.id, "ids are positive"));
    }
    Username::parse(&user.username).map_err(|e| error("username", &e.to_string()))?;
    for (field, value, max) in [
        ("email", &user.email, EMAIL_MAX_CHARS),
        ("first_name", &user.first_name, NAME_MAX_CHARS),
        ("last_name", &user.last_name, NAME_MAX_CHARS),
        ("password", &user.password, PASSWORD_MAX_CHARS),
    ] {
        if value.chars().count() > max {
            return Err(error(field, &format!("longer than Django's {max} characters")));
        }
    }
    if let Some(hash) = user.password_hash() {
        passwords::check_stored_hash(hash).map_err(|e| error("password", &e.to_string()))?;
    }
    let mut groups = BTreeSet::new();
    for group in record.groups {
        let name = match group {
            GroupRef::Pk(pk) => {
                group_names.get(&pk).cloned().ok_or_else(|| error("groups", &format!("no group {pk}")))?
            }
            GroupRef::Name(name) if group_names.values().any(|n| *n == name) => name,
            GroupRef::Name(name) => return Err(error("groups", &format!("no group {name:?}"))),
        };
        groups.insert(name);
    }
    if groups.len() > MAX_GROUPS_PER_USER as usize {
        return Err(error("groups", &format!("more than the {MAX_GROUPS_PER_USER} groups a user may have")));
    }
    user.groups = groups.into_iter().collect();
    Ok(user)
}

/// The claims of a simplejwt token that say what it is.
#[derive(Deserialize)]
struct OutstandingClaims {
    token_type: String,
    jti: String,
    iat: Option<i64>,
    refresh_exp: Option<i64>,
}

/// The token an outstanding record holds; `None` when its user was deleted in Django.
fn checked_token(
    record: &OutstandingRecord,
    user_ids: &HashSet<i64>,
    blacklisted_at: Option<i64>,
    now: i64,
) -> Result<Option<DjangoToken>, RecordError> {
    let error = |field: &str, problem: &str| {
        RecordError::new("token_blacklist.outstandingtoken", record.pk, problem).field(field)
    };
    let Some(user_id) = record.user else { return Ok(None) };
    if !user_ids.contains(&user_id) {
        return Err(error("user", &format!("no auth.user {user_id} in the import")));
    }
    if record.jti.is_empty() || record.jti.chars().count() > JTI_MAX_CHARS {
        return Err(error("jti", &format!("empty or longer than {JTI_MAX_CHARS} characters")));
    }
    // Read, not verified: the operator's own records; a refresh verifies the token itself.
    let claims = jsonwebtoken::dangerous::insecure_decode_claims::<OutstandingClaims>(&record.token)
        .map_err(|_| error("token", "not a simplejwt token"))?;
    if claims.jti != record.jti {
        return Err(error("token", "its jti is not the record's"));
    }
    let (kind, expires_at) = match (claims.token_type.as_str(), claims.refresh_exp) {
        ("refresh", _) => (OutstandingKind::Refresh, record.expires_at),
        ("sliding", Some(refresh_exp)) => (OutstandingKind::Sliding, refresh_exp),
        _ => return Err(error("token", "neither a refresh token nor a sliding token")),
    };
    Ok(Some(DjangoToken {
        pk: record.pk,
        jti: record.jti.clone(),
        user_id,
        kind,
        issued_at: record.created_at.or(claims.iat).unwrap_or(now),
        expires_at,
        blacklisted_at,
    }))
}
