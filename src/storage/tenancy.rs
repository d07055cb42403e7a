//! Resellers, companies and users.

use sqlx::FromRow;

use super::{BeginWrite, Store, StoreError, StoreResult, parse, with_db, write_error};
use crate::clock::UnixTime;
use crate::model::{Company, NewUser, Reseller, User};

#[derive(FromRow)]
pub(super) struct ResellerRow {
    id: String,
    name: String,
    created_at: i64,
}

impl From<ResellerRow> for Reseller {
    fn from(r: ResellerRow) -> Self {
        Reseller {
            id: r.id,
            name: r.name,
            created_at: r.created_at,
        }
    }
}

#[derive(FromRow)]
pub(super) struct CompanyRow {
    id: String,
    reseller_id: String,
    name: String,
    created_at: i64,
}

impl From<CompanyRow> for Company {
    fn from(r: CompanyRow) -> Self {
        Company {
            id: r.id,
            reseller_id: r.reseller_id,
            name: r.name,
            created_at: r.created_at,
        }
    }
}

#[derive(FromRow)]
pub(super) struct UserRow {
    id: String,
    company_id: String,
    username: String,
    email: String,
    email_verified: bool,
    phone: Option<String>,
    name: Option<String>,
    role: String,
    active: bool,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(r: UserRow) -> StoreResult<User> {
        Ok(User {
            role: parse("users.role", &r.role)?,
            id: r.id,
            company_id: r.company_id,
            username: r.username,
            email: r.email,
            email_verified: r.email_verified,
            phone: r.phone,
            name: r.name,
            active: r.active,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

macro_rules! user_columns {
    () => {
        "id, company_id, username, email, email_verified, phone, name, role, active, created_at, updated_at"
    };
}

macro_rules! user_with_tenancy_sql {
    ($condition:literal) => {
        concat!(
            "SELECT u.id, u.company_id, u.username, u.email, u.email_verified, u.phone, u.name, u.role,
                    u.active, u.created_at, u.updated_at, c.reseller_id, u.password_hash
             FROM users u JOIN companies c ON c.id = u.company_id WHERE ",
            $condition
        )
    };
}

/// A user with what login needs beside the profile.
#[derive(Debug, Clone)]
pub struct UserWithTenancy {
    pub user: User,
    pub reseller_id: String,
    pub password_hash: Option<String>,
}

#[derive(FromRow)]
pub(super) struct UserLoginRow {
    #[sqlx(flatten)]
    user: UserRow,
    reseller_id: String,
    password_hash: Option<String>,
}

impl UserLoginRow {
    /// A row of `user_context_columns!` read inline (`storage::inline`).
    pub(super) fn from_inline(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(UserLoginRow {
            user: UserRow {
                id: row.get("id")?,
                company_id: row.get("company_id")?,
                username: row.get("username")?,
                email: row.get("email")?,
                email_verified: row.get("email_verified")?,
                phone: row.get("phone")?,
                name: row.get("name")?,
                role: row.get("role")?,
                active: row.get("active")?,
                created_at: row.get("created_at")?,
                updated_at: row.get("updated_at")?,
            },
            reseller_id: row.get("reseller_id")?,
            password_hash: row.get("password_hash")?,
        })
    }
}

impl TryFrom<UserLoginRow> for UserWithTenancy {
    type Error = StoreError;
    fn try_from(r: UserLoginRow) -> StoreResult<UserWithTenancy> {
        Ok(UserWithTenancy {
            user: r.user.try_into()?,
            reseller_id: r.reseller_id,
            password_hash: r.password_hash,
        })
    }
}

impl Store {
    pub async fn insert_reseller(&self, reseller: &Reseller) -> StoreResult<()> {
        with_db!(self, |pool| {
            sqlx::query("INSERT INTO resellers (id, name, created_at) VALUES ($1, $2, $3)")
                .bind(&reseller.id)
                .bind(&reseller.name)
                .bind(reseller.created_at)
                .execute(pool)
                .await
                .map_err(|e| write_error(e, "reseller", "reseller"))?;
        });
        Ok(())
    }

    pub async fn get_reseller(&self, id: &str) -> StoreResult<Option<Reseller>> {
        let row: Option<ResellerRow> = with_db!(self, |pool| {
            sqlx::query_as("SELECT id, name, created_at FROM resellers WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(Into::into))
    }

    pub async fn list_resellers(&self) -> StoreResult<Vec<Reseller>> {
        let rows: Vec<ResellerRow> = with_db!(self, |pool| {
            sqlx::query_as("SELECT id, name, created_at FROM resellers ORDER BY id")
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(Into::into).collect())
    }

    pub async fn insert_company(&self, company: &Company) -> StoreResult<()> {
        with_db!(self, |pool| {
            sqlx::query("INSERT INTO companies (id, reseller_id, name, created_at) VALUES ($1, $2, $3, $4)")
                .bind(&company.id)
                .bind(&company.reseller_id)
                .bind(&company.name)
                .bind(company.created_at)
                .execute(pool)
                .await
                .map_err(|e| write_error(e, "company", "reseller"))?;
        });
        Ok(())
    }

    pub async fn get_company(&self, id: &str) -> StoreResult<Option<Company>> {
        let row: Option<CompanyRow> = with_db!(self, |pool| {
            sqlx::query_as("SELECT id, reseller_id, name, created_at FROM companies WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(Into::into))
    }

    pub async fn list_companies(&self, reseller_id: Option<&str>) -> StoreResult<Vec<Company>> {
        let rows: Vec<CompanyRow> = with_db!(self, |pool| {
            sqlx::query_as(
                "SELECT id, reseller_id, name, created_at FROM companies
                 WHERE $1 IS NULL OR reseller_id = $1 ORDER BY id",
            )
            .bind(reseller_id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(Into::into).collect())
    }

    pub async fn insert_user(
        &self,
        id: &str,
        user: &NewUser,
        password_hash: Option<&str>,
        now: UnixTime,
    ) -> StoreResult<User> {
        with_db!(self, |pool| {
            sqlx::query(
                "INSERT INTO users (id, company_id, username, email, email_verified, phone, name, role,
                                    password_hash, active, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
            )
            .bind(id)
            .bind(&user.company_id)
            .bind(user.username.as_str())
            .bind(user.email.as_str())
            .bind(false)
            .bind(user.phone.as_ref().map(|p| p.as_str()))
            .bind(user.name.as_deref())
            .bind(user.role.as_str())
            .bind(password_hash)
            .bind(true)
            .bind(now)
            .execute(pool)
            .await
            .map_err(|e| write_error(e, "a user with this login name", "company"))?;
        });
        self.get_user(id)
            .await?
            .ok_or(StoreError::Missing("the user just created"))
    }

    pub async fn get_user(&self, id: &str) -> StoreResult<Option<User>> {
        let row: Option<UserRow> = with_db!(self, |pool| {
            sqlx::query_as(concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1"))
                .bind(id)
                .fetch_optional(&mut *pool.read_conn().await?)
                .await?
        });
        row.map(TryInto::try_into).transpose()
    }

    /// The user (with reseller and password hash) for an id, if any.
    pub async fn get_user_with_tenancy(&self, id: &str) -> StoreResult<Option<UserWithTenancy>> {
        self.user_with_tenancy(user_with_tenancy_sql!("u.id = $1"), id)
            .await
    }

    async fn user_with_tenancy(
        &self,
        sql: &'static str,
        value: &str,
    ) -> StoreResult<Option<UserWithTenancy>> {
        let row: Option<UserLoginRow> = with_db!(self, |pool| {
            sqlx::query_as(sql)
                .bind(value)
                .fetch_optional(&mut *pool.read_conn().await?)
                .await?
        });
        row.map(TryInto::try_into).transpose()
    }

    pub async fn list_users(&self, company_id: Option<&str>) -> StoreResult<Vec<User>> {
        let rows: Vec<UserRow> = with_db!(self, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                user_columns!(),
                " FROM users WHERE $1 IS NULL OR company_id = $1 ORDER BY id"
            ))
            .bind(company_id)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Replaces a user's password hash. Returns false when there is no such user.
    pub async fn set_password_hash(&self, user_id: &str, hash: &str, now: UnixTime) -> StoreResult<bool> {
        let result = with_db!(self, |pool| {
            sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
                .bind(hash)
                .bind(now)
                .bind(user_id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(result == 1)
    }
}

impl Store {
    /// Active reseller admins of a reseller (users with that role in any of its companies).
    pub async fn reseller_admins(&self, reseller_id: &str) -> StoreResult<Vec<User>> {
        let rows: Vec<UserRow> = with_db!(self, |pool| {
            sqlx::query_as(
                "SELECT u.id, u.company_id, u.username, u.email, u.email_verified, u.phone, u.name, u.role,
                        u.active, u.created_at, u.updated_at
                 FROM users u JOIN companies c ON c.id = u.company_id
                 WHERE c.reseller_id = $1 AND u.role = 'reseller_admin' AND u.active = $2
                 ORDER BY u.id",
            )
            .bind(reseller_id)
            .bind(true)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(TryInto::try_into).collect()
    }
}
