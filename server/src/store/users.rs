//! Users, sessions and the token signing key.

use super::{Db, StoreError, StoreResult, flag, is_unique_violation};
use callcenter_proto::Role;
use callcenter_proto::http::User;
use sqlx::Row;
use sqlx::any::AnyRow;

/// A user with their password hash, for login.
pub struct UserCredentials {
    pub user: User,
    pub password_hash: String,
}

const USER_COLUMNS: &str = "id, username, display_name, role, disabled";

fn user_from_row(row: &AnyRow) -> StoreResult<User> {
    let role: String = row.try_get("role")?;
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        display_name: row.try_get("display_name")?,
        role: Role::parse(&role).ok_or(StoreError::NotFound("role"))?,
        disabled: row.try_get::<i64, _>("disabled")? != 0,
    })
}

impl Db {
    pub async fn create_user(
        &self,
        username: &str,
        display_name: &str,
        role: Role,
        password_hash: &str,
        now_ms: i64,
    ) -> StoreResult<User> {
        let row = sqlx::query(&format!(
            "INSERT INTO users (username, display_name, role, password_hash, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5) RETURNING {USER_COLUMNS}"
        ))
        .bind(username)
        .bind(display_name)
        .bind(role.as_str())
        .bind(password_hash)
        .bind(now_ms)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict(format!("a user named {username:?} already exists"))
            } else {
                e.into()
            }
        })?;
        user_from_row(&row)
    }

    pub async fn count_users(&self) -> StoreResult<i64> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?)
    }

    pub async fn user(&self, id: i64) -> StoreResult<User> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound("user"))?;
        user_from_row(&row)
    }

    pub async fn user_by_username(&self, username: &str) -> StoreResult<User> {
        Ok(self.credentials(username).await?.user)
    }

    pub async fn credentials(&self, username: &str) -> StoreResult<UserCredentials> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, password_hash FROM users WHERE username = $1"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound("user"))?;
        Ok(UserCredentials {
            user: user_from_row(&row)?,
            password_hash: row.try_get("password_hash")?,
        })
    }

    pub async fn users(&self) -> StoreResult<Vec<User>> {
        sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY id"))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(user_from_row)
            .collect()
    }

    pub async fn update_user(
        &self,
        id: i64,
        display_name: Option<&str>,
        disabled: Option<bool>,
        password_hash: Option<&str>,
    ) -> StoreResult<User> {
        let mut tx = crate::store::begin(&self.pool).await?;
        if let Some(name) = display_name {
            sqlx::query("UPDATE users SET display_name = $1 WHERE id = $2")
                .bind(name)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(disabled) = disabled {
            sqlx::query("UPDATE users SET disabled = $1 WHERE id = $2")
                .bind(flag(disabled))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(hash) = password_hash {
            sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                .bind(hash)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound("user"))?;
        tx.commit().await?;
        // A disabled user's sessions end at once (their name or role in a
        // cached session would be stale too).
        self.cache.invalidate(super::cache::Scope::Sessions);
        user_from_row(&row)
    }

    pub async fn create_session(
        &self,
        session_id: &str,
        user_id: i64,
        refresh_hash: &str,
        now_ms: i64,
        refresh_expires_ms: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO sessions (id, user_id, refresh_hash, created_at_ms, refresh_expires_ms) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(session_id)
        .bind(user_id)
        .bind(refresh_hash)
        .bind(now_ms)
        .bind(refresh_expires_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The user of a live session: not revoked, user not disabled.
    ///
    /// Served from this node's cache for up to [`super::cache::TTL`]; every
    /// revocation empties the cache on the revoking node at once and on the
    /// others through the bus.
    pub async fn session_user(&self, session_id: &str, user_id: i64) -> StoreResult<Option<User>> {
        if let Some(user) = self.cache.session(session_id, user_id) {
            return Ok(Some(user));
        }
        let generation = self.cache.generation();
        let user = self.session_user_uncached(session_id, user_id).await?;
        if let Some(user) = &user {
            self.cache.put_session(generation, session_id, user);
        }
        Ok(user)
    }

    async fn session_user_uncached(
        &self,
        session_id: &str,
        user_id: i64,
    ) -> StoreResult<Option<User>> {
        let row = sqlx::query(
            "SELECT u.id, u.username, u.display_name, u.role, u.disabled FROM sessions s \
             JOIN users u ON u.id = s.user_id \
             WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at_ms IS NULL AND u.disabled = 0",
        )
        .bind(session_id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// Swap a refresh token for a new one (single use). Returns the session id
    /// and user when the old token was live.
    pub async fn rotate_refresh(
        &self,
        old_hash: &str,
        new_hash: &str,
        now_ms: i64,
        refresh_expires_ms: i64,
    ) -> StoreResult<Option<(String, User)>> {
        let mut tx = crate::store::begin(&self.pool).await?;
        let row = sqlx::query(
            "UPDATE sessions SET refresh_hash = $1, refresh_expires_ms = $2 \
             WHERE refresh_hash = $3 AND revoked_at_ms IS NULL AND refresh_expires_ms > $4 \
             RETURNING id, user_id",
        )
        .bind(new_hash)
        .bind(refresh_expires_ms)
        .bind(old_hash)
        .bind(now_ms)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let session_id: String = row.try_get("id")?;
        let user_id: i64 = row.try_get("user_id")?;
        let user = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id = $1 AND disabled = 0"
        ))
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(user) = user else {
            return Ok(None);
        };
        tx.commit().await?;
        Ok(Some((session_id, user_from_row(&user)?)))
    }

    pub async fn revoke_session(&self, session_id: &str, now_ms: i64) -> StoreResult<()> {
        sqlx::query(
            "UPDATE sessions SET revoked_at_ms = $1 WHERE id = $2 AND revoked_at_ms IS NULL",
        )
        .bind(now_ms)
        .bind(session_id)
        .execute(&self.pool)
        .await?;
        self.cache.invalidate(super::cache::Scope::Sessions);
        Ok(())
    }

    pub async fn revoke_user_sessions(&self, user_id: i64, now_ms: i64) -> StoreResult<()> {
        sqlx::query(
            "UPDATE sessions SET revoked_at_ms = $1 WHERE user_id = $2 AND revoked_at_ms IS NULL",
        )
        .bind(now_ms)
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        self.cache.invalidate(super::cache::Scope::Sessions);
        Ok(())
    }

    /// The shared signing key, created by whichever node asks first.
    pub async fn signing_key(
        &self,
        generate: impl FnOnce() -> String,
        now_ms: i64,
    ) -> StoreResult<String> {
        sqlx::query(
            "INSERT INTO signing_keys (id, private_pem, created_at_ms) VALUES ('access', $1, $2) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(generate())
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(
            sqlx::query("SELECT private_pem FROM signing_keys WHERE id = 'access'")
                .fetch_one(&self.pool)
                .await?
                .try_get("private_pem")?,
        )
    }
}
