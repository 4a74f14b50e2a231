use super::{Result, Store, on_pool, on_writer};

#[derive(Clone, sqlx::FromRow)]
pub struct StoredKey {
    pub kid: String,
    pub algorithm: String,
    pub private_key_pem: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

const KEY_COLUMNS: &str = "kid, algorithm, private_key_pem, created_at, retired_at";
const INSERT_KEY: &str = "INSERT INTO signing_keys (kid, algorithm, private_key_pem, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";

impl Store {
    pub async fn active_signing_key(&self, algorithm: &str) -> Result<Option<StoredKey>> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM signing_keys WHERE algorithm = $1 AND retired_at IS NULL");
        Ok(on_pool!(self, pool => sqlx::query_as::<_, StoredKey>(&sql).bind(algorithm).fetch_optional(pool).await)?)
    }

    /// Inserts `key` unless another process got there first (one active key per algorithm);
    /// keys of other algorithms stop signing, since the configured algorithm changed.
    pub async fn insert_first_signing_key(&self, key: &StoredKey) -> Result<()> {
        on_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE algorithm <> $2 AND retired_at IS NULL")
                .bind(key.created_at).bind(&key.algorithm).execute(&mut *tx).await?;
            sqlx::query(INSERT_KEY)
                .bind(&key.kid).bind(&key.algorithm).bind(&key.private_key_pem).bind(key.created_at)
                .execute(&mut *tx).await?;
            Ok(tx.commit().await?)
        })
    }

    /// Retires every active key and makes `key` the signing key, in one transaction.
    /// `false`: another rotation committed meanwhile and its key is the signing key; nothing
    /// was written.
    pub async fn rotate_signing_key(&self, key: &StoredKey) -> Result<bool> {
        on_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL")
                .bind(key.created_at).execute(&mut *tx).await?;
            let inserted = sqlx::query(INSERT_KEY)
                .bind(&key.kid).bind(&key.algorithm).bind(&key.private_key_pem).bind(key.created_at)
                .execute(&mut *tx).await?.rows_affected() == 1;
            if inserted { tx.commit().await? } else { tx.rollback().await? }
            Ok(inserted)
        })
    }

    /// Keys still signing, or retired after `retired_after` (their tokens may be live).
    pub async fn published_keys(&self, retired_after: i64) -> Result<Vec<StoredKey>> {
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM signing_keys WHERE retired_at IS NULL OR retired_at > $1 \
             ORDER BY created_at DESC, kid"
        );
        Ok(on_pool!(self, pool => sqlx::query_as::<_, StoredKey>(&sql).bind(retired_after).fetch_all(pool).await)?)
    }

    pub async fn all_signing_keys(&self) -> Result<Vec<StoredKey>> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM signing_keys ORDER BY created_at DESC, kid");
        Ok(on_pool!(self, pool => sqlx::query_as::<_, StoredKey>(&sql).fetch_all(pool).await)?)
    }
}
