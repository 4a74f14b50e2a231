//! Groups, who belongs to them, and users' custom claims: what access tokens carry besides the
//! user record's own fields.

use super::{Result, Store, is_unique_violation, on_pool, on_writer};

/// A group and how many users it has.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct GroupSummary {
    pub id: i64,
    pub name: String,
    pub members: i64,
}

/// What adding a user to a group came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupJoin {
    Joined,
    AlreadyMember,
    TooManyGroups,
}

impl Store {
    /// `None` when the name is taken.
    pub async fn create_group(&self, name: &str) -> Result<Option<i64>> {
        let result = on_writer!(self, pool => sqlx::query_scalar::<_, i64>(
            "INSERT INTO groups (name) VALUES ($1) RETURNING id",
        )
        .bind(name).fetch_one(pool).await);
        match result {
            Ok(id) => Ok(Some(id)),
            Err(e) if is_unique_violation(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn list_groups(&self) -> Result<Vec<GroupSummary>> {
        const SQL: &str = "SELECT g.id, g.name, (SELECT COUNT(*) FROM user_groups m WHERE m.group_id = g.id) \
                           AS members FROM groups g ORDER BY g.name";
        Ok(on_pool!(self, pool => sqlx::query_as::<_, GroupSummary>(SQL).fetch_all(pool).await)?)
    }

    pub async fn group_id(&self, name: &str) -> Result<Option<i64>> {
        Ok(on_pool!(self, pool => sqlx::query_scalar::<_, i64>("SELECT id FROM groups WHERE name = $1")
            .bind(name).fetch_optional(pool).await)?)
    }

    /// Adds the user to the group while the user is in fewer than `max_groups`; the count and
    /// the insert are one statement.
    pub async fn add_user_to_group(&self, user_id: i64, group_id: i64, max_groups: i64) -> Result<GroupJoin> {
        let added = on_writer!(self, pool => sqlx::query(
            "INSERT INTO user_groups (user_id, group_id) SELECT $1, $2 \
             WHERE (SELECT COUNT(*) FROM user_groups WHERE user_id = $1) < $3 ON CONFLICT DO NOTHING",
        )
        .bind(user_id).bind(group_id).bind(max_groups).execute(pool).await.map(|r| r.rows_affected()))?;
        if added == 1 {
            return Ok(GroupJoin::Joined);
        }
        let member = on_pool!(self, pool => sqlx::query_scalar::<_, i64>(
            "SELECT user_id FROM user_groups WHERE user_id = $1 AND group_id = $2",
        )
        .bind(user_id).bind(group_id).fetch_optional(pool).await)?;
        Ok(if member.is_some() { GroupJoin::AlreadyMember } else { GroupJoin::TooManyGroups })
    }

    /// Returns whether the user was in the group.
    pub async fn remove_user_from_group(&self, user_id: i64, group_id: i64) -> Result<bool> {
        let removed = on_writer!(self, pool => sqlx::query(
            "DELETE FROM user_groups WHERE user_id = $1 AND group_id = $2",
        )
        .bind(user_id).bind(group_id).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(removed == 1)
    }

    /// The names of the user's groups, in name order.
    pub async fn group_names_of(&self, user_id: i64) -> Result<Vec<String>> {
        Ok(on_pool!(self, pool => sqlx::query_scalar::<_, String>(
            "SELECT g.name FROM groups g JOIN user_groups m ON m.group_id = g.id WHERE m.user_id = $1 ORDER BY g.name",
        )
        .bind(user_id).fetch_all(pool).await)?)
    }

    /// Replaces the user's custom claims (a JSON object). Returns whether the user exists.
    pub async fn set_custom_claims(&self, user_id: i64, claims_json: &str) -> Result<bool> {
        let done = on_writer!(self, pool => sqlx::query("UPDATE users SET custom_claims = $1 WHERE id = $2")
            .bind(claims_json).bind(user_id).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }
}
