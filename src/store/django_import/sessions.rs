//! The sessions of an import: simplejwt's outstanding tokens, carried over as sessions here.

macro_rules! session_steps {
    ($backend:ident, $db:ty) => {
        pub(super) mod $backend {
            use super::super::*;
            use crate::domain::django::{DjangoToken, OutstandingKind};

            type Conn = <$db as sqlx::Database>::Connection;
            type Outcome<T> = Result<Result<T, RecordError>>;

            /// An outstanding simplejwt token becomes a session here: a refresh token's record
            /// (by its own jti, in a session of its own), or a sliding token's session; revoked
            /// when Django blacklisted it, or when it was issued before the user's sessions were
            /// last ended here. One that was carried over before is only revoked, if Django
            /// blacklisted it since.
            pub(in crate::store::django_import) async fn import_token(
                conn: &mut Conn,
                token: &DjangoToken,
                run: &ImportRun,
                counts: &mut ImportCounts,
            ) -> Outcome<()> {
                let session_id = match token.kind {
                    OutstandingKind::Refresh => format!("django:{}", token.jti),
                    OutstandingKind::Sliding => token.jti.clone(),
                };
                let revoked: Option<Option<i64>> =
                    sqlx::query_scalar("SELECT revoked_at FROM refresh_families WHERE id = $1")
                        .bind(&session_id)
                        .fetch_optional(&mut *conn)
                        .await?;
                match (revoked, token.blacklisted_at) {
                    (Some(None), Some(blacklisted_at)) => {
                        revoke_session(conn, &session_id, blacklisted_at).await?;
                        counts.sessions_blacklisted += 1;
                    }
                    (Some(_), _) => counts.sessions_unchanged += 1,
                    (None, _) => return create_session(conn, &session_id, token, run, counts).await,
                }
                Ok(Ok(()))
            }

            async fn create_session(
                conn: &mut Conn,
                session_id: &str,
                token: &DjangoToken,
                run: &ImportRun,
                counts: &mut ImportCounts,
            ) -> Outcome<()> {
                let user_here: Option<Option<i64>> =
                    sqlx::query_scalar("SELECT sessions_ended_at FROM users WHERE id = $1")
                        .bind(token.user_id)
                        .fetch_optional(&mut *conn)
                        .await?;
                let Some(sessions_ended_at) = user_here else {
                    counts.tokens_skipped += 1;
                    return Ok(Ok(()));
                };
                // Issued before the user's sessions were last ended here: ended with them.
                let ended_here = sessions_ended_at.filter(|ended| token.issued_at <= *ended);
                let revoked_at = token.blacklisted_at.or(ended_here);
                let sliding = token.kind == OutstandingKind::Sliding;
                let session_expires_at = match token.kind {
                    OutstandingKind::Refresh => token.issued_at.saturating_add(run.session_max_lifetime),
                    OutstandingKind::Sliding => token.expires_at,
                };
                // A refresh token's session holds it as its current token; it names no session
                // itself (simplejwt wrote it), so its record below says which one it is in.
                let current = (!sliding).then_some((token.jti.as_str(), token.expires_at));
                let inserted = sqlx::query(
                    "INSERT INTO refresh_families (id, user_id, created_at, expires_at, revoked_at, sliding, provider, \
                     current_jti, refresh_expires_at) VALUES ($1, $2, $3, $4, $5, $6, 'django', $7, $8) \
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(session_id)
                .bind(token.user_id)
                .bind(token.issued_at)
                .bind(session_expires_at)
                .bind(revoked_at)
                .bind(sliding)
                .bind(current.map(|(jti, _)| jti))
                .bind(current.map(|(_, expires_at)| expires_at))
                .execute(&mut *conn)
                .await?
                .rows_affected();
                let jti_taken = |inserted: u64| {
                    (inserted == 0).then(|| {
                        let problem = "a token with this jti already exists in tokensmith";
                        RecordError::new("token_blacklist.outstandingtoken", token.pk, problem).field("jti")
                    })
                };
                if let Some(refused) = jti_taken(inserted) {
                    return Ok(Err(refused));
                }
                if !sliding {
                    let inserted = sqlx::query(
                        "INSERT INTO refresh_tokens (jti, family_id, user_id, issued_at, expires_at, revoked_at) \
                         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (jti) DO NOTHING",
                    )
                    .bind(&token.jti)
                    .bind(session_id)
                    .bind(token.user_id)
                    .bind(token.issued_at)
                    .bind(token.expires_at)
                    .bind(revoked_at)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
                    if let Some(refused) = jti_taken(inserted) {
                        return Ok(Err(refused));
                    }
                }
                counts.sessions_created += 1;
                Ok(Ok(()))
            }

            /// Ends the session; its token's record needs nothing: a session's row decides.
            async fn revoke_session(conn: &mut Conn, session_id: &str, at: i64) -> Result<()> {
                sqlx::query("UPDATE refresh_families SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                    .bind(at)
                    .bind(session_id)
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            }
        }
    };
}

session_steps!(sqlite, sqlx::Sqlite);
session_steps!(postgres, sqlx::Postgres);
