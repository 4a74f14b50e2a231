//! Groups, who belongs to them, and users' custom claims: what access tokens carry besides the
//! user record's own fields.

use super::{
    Found, Result, Store, Window,
    audit::insert_audit,
    is_unique_violation, on_pool, on_writer,
    user_admin::{Search, fetch_found},
};
use crate::domain::AuditEvent;

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

impl Store {
    /// Groups whose name contains every term (ignoring ASCII case), by name.
    pub async fn search_groups(&self, terms: &[String], window: Window) -> Result<Found<GroupSummary>> {
        let search = self.search(terms, &["g.name"]);
        let Search { filter, limit, offset, .. } = &search;
        let count_sql = format!("SELECT COUNT(*) FROM groups g WHERE {filter}");
        let rows_sql = format!(
            "SELECT g.id, g.name, (SELECT COUNT(*) FROM user_groups m WHERE m.group_id = g.id) AS members \
             FROM groups g WHERE {filter} ORDER BY g.name LIMIT ${limit} OFFSET ${offset}"
        );
        fetch_found!(self, search, count_sql, rows_sql, GroupSummary, window)
    }

    /// The ids of the groups named `names`, by name; names of no group are left out.
    pub async fn group_ids(&self, names: &[String]) -> Result<Vec<(String, i64)>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (1..=names.len()).map(|n| format!("${n}")).collect();
        let sql = format!("SELECT name, id FROM groups WHERE name IN ({})", placeholders.join(", "));
        Ok(on_pool!(self, pool => {
            let mut query = sqlx::query_as::<_, (String, i64)>(&sql);
            for name in names {
                query = query.bind(name);
            }
            query.fetch_all(pool).await
        })?)
    }

    pub async fn group_name(&self, group_id: i64) -> Result<Option<String>> {
        Ok(on_pool!(self, pool => sqlx::query_scalar::<_, String>("SELECT name FROM groups WHERE id = $1")
            .bind(group_id).fetch_optional(pool).await)?)
    }

    /// Deletes the group (its memberships go with it) and records `audit`. `false`, and nothing
    /// written, when there was no such group.
    pub async fn delete_group(&self, group_id: i64, now: i64, audit: &AuditEvent<'_>) -> Result<bool> {
        on_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            let deleted = sqlx::query("DELETE FROM groups WHERE id = $1")
                .bind(group_id).execute(&mut *tx).await?.rows_affected() == 1;
            if !deleted {
                tx.rollback().await?;
                return Ok(false);
            }
            insert_audit!(audit, now, &mut *tx)?;
            tx.commit().await?;
            Ok(true)
        })
    }
}
