//! What the admin API needs beyond the CLI: pages of resellers, companies and users within
//! a tenant, updates and deletions, reset requests by company, and client changes.

use super::outbox::queue_emails;
use super::tenancy::{CompanyRow, ResellerRow, UserRow};
use super::{BeginWrite, ResetRequest, Store, StoreResult, to_json, with_db, write_error};
use crate::clock::UnixTime;
use crate::model::{Client, Company, Reseller, User};

/// A page of a listing: at most `limit` rows with ids after `after`, in id order (ids are
/// UUIDv7, so that is creation order).
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub after: Option<String>,
    pub limit: i64,
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserChanges {
    pub email: Option<String>,
    pub phone: Option<Option<String>>,
    pub name: Option<Option<String>>,
    pub role: Option<String>,
    pub active: Option<bool>,
}

/// What a deletion did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    Deleted,
    NotFound,
    /// Other rows still refer to it.
    InUse,
}

fn deleted(result: Result<u64, sqlx::Error>) -> StoreResult<Deleted> {
    match result {
        Ok(0) => Ok(Deleted::NotFound),
        Ok(_) => Ok(Deleted::Deleted),
        Err(e)
            if e.as_database_error()
                .is_some_and(|d| d.is_foreign_key_violation()) =>
        {
            Ok(Deleted::InUse)
        }
        Err(e) => Err(e.into()),
    }
}

impl Store {
    /// Resellers, all or (`only`) one.
    pub async fn page_resellers(&self, only: Option<&str>, page: &PageRequest) -> StoreResult<Vec<Reseller>> {
        let rows: Vec<ResellerRow> = with_db!(self, |pool| {
            sqlx::query_as(
                "SELECT id, name, created_at FROM resellers
                 WHERE ($1 IS NULL OR id = $1) AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3",
            )
            .bind(only)
            .bind(page.after.as_deref())
            .bind(page.limit)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(Into::into).collect())
    }

    pub async fn rename_reseller(&self, id: &str, name: &str) -> StoreResult<bool> {
        let updated = with_db!(self, |pool| {
            sqlx::query("UPDATE resellers SET name = $1 WHERE id = $2")
                .bind(name)
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(updated == 1)
    }

    /// Deletes a reseller that has no companies and no clients.
    pub async fn delete_reseller(&self, id: &str) -> StoreResult<Deleted> {
        deleted(with_db!(self, |pool| {
            sqlx::query("DELETE FROM resellers WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        }))
    }

    /// Companies of a reseller, or (`only`) one company.
    pub async fn page_companies(
        &self,
        reseller: Option<&str>,
        only: Option<&str>,
        page: &PageRequest,
    ) -> StoreResult<Vec<Company>> {
        let rows: Vec<CompanyRow> = with_db!(self, |pool| {
            sqlx::query_as(
                "SELECT id, reseller_id, name, created_at FROM companies
                 WHERE ($1 IS NULL OR reseller_id = $1) AND ($2 IS NULL OR id = $2) AND ($3 IS NULL OR id > $3)
                 ORDER BY id LIMIT $4",
            )
            .bind(reseller)
            .bind(only)
            .bind(page.after.as_deref())
            .bind(page.limit)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(Into::into).collect())
    }

    pub async fn rename_company(&self, id: &str, name: &str) -> StoreResult<bool> {
        let updated = with_db!(self, |pool| {
            sqlx::query("UPDATE companies SET name = $1 WHERE id = $2")
                .bind(name)
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(updated == 1)
    }

    /// Deletes a company that has no users and no service clients (its policy goes with it).
    pub async fn delete_company(&self, id: &str) -> StoreResult<Deleted> {
        deleted(with_db!(self, |pool| {
            sqlx::query("DELETE FROM companies WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        }))
    }

    /// Users of a reseller's companies or of one company.
    pub async fn page_users(
        &self,
        reseller: Option<&str>,
        company: Option<&str>,
        page: &PageRequest,
    ) -> StoreResult<Vec<User>> {
        let rows: Vec<UserRow> = with_db!(self, |pool| {
            sqlx::query_as(
                "SELECT u.id, u.company_id, u.username, u.email, u.email_verified, u.phone, u.name, u.role,
                        u.active, u.created_at, u.updated_at
                 FROM users u JOIN companies c ON c.id = u.company_id
                 WHERE ($1 IS NULL OR c.reseller_id = $1) AND ($2 IS NULL OR u.company_id = $2)
                   AND ($3 IS NULL OR u.id > $3)
                 ORDER BY u.id LIMIT $4",
            )
            .bind(reseller)
            .bind(company)
            .bind(page.after.as_deref())
            .bind(page.limit)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Applies `changes` to a user; a deactivated user's sessions end. False when there is
    /// no such user.
    pub async fn update_user(&self, id: &str, changes: &UserChanges, now: UnixTime) -> StoreResult<bool> {
        Ok(with_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let updated = sqlx::query(
                "UPDATE users SET
                    email = COALESCE($1, email),
                    phone = CASE WHEN $2 THEN $3 ELSE phone END,
                    name = CASE WHEN $4 THEN $5 ELSE name END,
                    role = COALESCE($6, role),
                    active = COALESCE($7, active),
                    updated_at = $8
                 WHERE id = $9",
            )
            .bind(changes.email.as_deref())
            .bind(changes.phone.is_some())
            .bind(changes.phone.clone().flatten())
            .bind(changes.name.is_some())
            .bind(changes.name.clone().flatten())
            .bind(changes.role.as_deref())
            .bind(changes.active)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(|e| write_error(e, "a user with this login name", "company"))?
            .rows_affected();
            if updated == 1 && changes.active == Some(false) {
                sqlx::query("UPDATE sessions SET ended_at = $1 WHERE user_id = $2 AND ended_at IS NULL")
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("UPDATE grants SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            updated == 1
        }))
    }

    /// Replaces what an administrator may change of a client: name, URIs, scopes and the
    /// companies it is restricted to. False when there is no such client.
    pub async fn update_client(&self, client: &Client) -> StoreResult<bool> {
        Ok(with_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let updated = sqlx::query(
                "UPDATE clients SET name = $1, redirect_uris = $2, post_logout_redirect_uris = $3, scopes = $4
                 WHERE id = $5",
            )
            .bind(&client.name)
            .bind(to_json(&client.redirect_uris))
            .bind(to_json(&client.post_logout_redirect_uris))
            .bind(client.scopes.to_string())
            .bind(&client.id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated == 1 {
                sqlx::query("DELETE FROM client_companies WHERE client_id = $1")
                    .bind(&client.id)
                    .execute(&mut *tx)
                    .await?;
                for company in &client.allowed_companies {
                    sqlx::query("INSERT INTO client_companies (client_id, company_id) VALUES ($1, $2)")
                        .bind(&client.id)
                        .bind(company)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| write_error(e, "company restriction", "company"))?;
                }
            }
            tx.commit().await?;
            updated == 1
        }))
    }

    /// Deletes a client with everything issued to it.
    pub async fn delete_client(&self, id: &str) -> StoreResult<Deleted> {
        deleted(with_db!(self, |pool| {
            sqlx::query("DELETE FROM clients WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        }))
    }

    pub async fn get_reset_request(&self, id: &str) -> StoreResult<Option<ResetRequest>> {
        Ok(with_db!(self, |pool| {
            sqlx::query_as(
                "SELECT id, user_id, company_id, status, source, created_at, decided_at, decided_by
                 FROM mfa_reset_requests WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Pending reset requests of a company, oldest first.
    pub async fn pending_reset_requests(&self, company_id: &str) -> StoreResult<Vec<ResetRequest>> {
        Ok(with_db!(self, |pool| {
            sqlx::query_as(
                "SELECT id, user_id, company_id, status, source, created_at, decided_at, decided_by
                 FROM mfa_reset_requests WHERE company_id = $1 AND status = 'pending' ORDER BY created_at, id",
            )
            .bind(company_id)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Declines a pending request and queues the user's notification. False when it was
    /// not pending.
    pub async fn decline_reset_request(
        &self,
        id: &str,
        decided_by: &str,
        emails: &[super::OutgoingEmail],
        now: UnixTime,
    ) -> StoreResult<bool> {
        Ok(with_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let declined = sqlx::query(
                "UPDATE mfa_reset_requests SET status = 'declined', decided_at = $1, decided_by = $2
                 WHERE id = $3 AND status = 'pending'",
            )
            .bind(now)
            .bind(decided_by)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if declined == 1 {
                queue_emails!(tx, emails);
            }
            tx.commit().await?;
            declined == 1
        }))
    }
}
