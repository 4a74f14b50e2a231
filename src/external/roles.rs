//! A provider's roles, read by the configured path from a token's claims or a user object, and
//! mapped to `is_staff` / `is_superuser`: one reading for Clerk and the configured issuers.

use serde_json::{Map, Value};

use crate::config::RoleMapping;

/// The flags `source` gives, or `None` when it does not carry the path's first name at all: a
/// Clerk session token whose template adds no metadata says nothing about roles, while one that
/// carries the metadata without the role says "no role". A role is a string, or a list of them;
/// anything else holds no role.
pub fn flags(mapping: &RoleMapping, source: &Map<String, Value>) -> Option<(bool, bool)> {
    let root = mapping.claim.split('.').next().unwrap_or_default();
    if !source.contains_key(&mapping.claim) && !source.contains_key(root) {
        return None;
    }
    let held: Vec<&str> = match lookup(source, &mapping.claim) {
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(one)) => vec![one.as_str()],
        _ => vec![],
    };
    let any = |wanted: &[String]| held.iter().any(|r| wanted.iter().any(|w| w == r));
    Some((any(&mapping.staff_roles), any(&mapping.superuser_roles)))
}

/// A claim by name (Auth0's namespaced `https://example.com/roles` included), else by dotted
/// path (`tenants.T1.roles`).
pub(crate) fn lookup<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(value) = claims.get(path) {
        return Some(value);
    }
    let mut parts = path.split('.');
    let mut value = claims.get(parts.next()?)?;
    for part in parts {
        value = value.get(part)?;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn mapping(claim: &str) -> RoleMapping {
        RoleMapping { claim: claim.to_owned(), staff_roles: vec!["admin".into()], superuser_roles: vec!["root".into()] }
    }

    fn flags_of(claim: &str, source: Value) -> Option<(bool, bool)> {
        flags(&mapping(claim), source.as_object().unwrap())
    }

    #[test]
    fn a_role_or_a_list_of_roles_along_a_dotted_path() {
        assert_eq!(flags_of("meta.role", json!({"meta": {"role": "admin"}})), Some((true, false)));
        assert_eq!(flags_of("meta.roles", json!({"meta": {"roles": ["x", "root", "admin"]}})), Some((true, true)));
        assert_eq!(flags_of("https://x.io/roles", json!({"https://x.io/roles": ["root"]})), Some((false, true)));
    }

    #[test]
    fn missing_container_says_nothing_missing_role_says_none() {
        assert_eq!(flags_of("meta.role", json!({"sub": "u"})), None);
        assert_eq!(flags_of("meta.role", json!({"meta": {}})), Some((false, false)));
        assert_eq!(flags_of("meta.role", json!({"meta": {"role": 7}})), Some((false, false)));
        assert_eq!(flags_of("meta.role", json!({"meta": null})), Some((false, false)));
    }
}
