//! MFA policies: companies' own settings and approvers, resellers' minimums and
//! enforcements, and each user's opt-out and remembered skip.

use sqlx::FromRow;

use super::outbox::queue_emails;
use super::tenancy::{UserLoginRow, UserWithTenancy};
use super::{
    BeginWrite, Factor, OutgoingEmail, Store, StoreError, StoreResult, fetch_optional_aggregating, from_json,
    parse, to_json, with_db, write_error,
};
use crate::clock::UnixTime;
use crate::model::{Company, Reseller};
use crate::policy::{CompanyPolicy, Methods, Mode, OptOut};

#[derive(FromRow)]
struct PolicyRow {
    mode: String,
    methods: String,
    allow_skip: bool,
    skip_limit: Option<i64>,
    skip_deadline: Option<i64>,
    allow_self_reset: bool,
    keep_enrollments_when_off: bool,
}

/// A reseller's enforcement on one company.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enforcement {
    pub reseller_id: String,
    pub methods: Option<Methods>,
    pub created_at: i64,
}

/// A user's stored MFA state (not the factors).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserMfa {
    pub opt_out: Option<OptOut>,
    pub skipped_at: Option<i64>,
    pub skip_count: i64,
}

#[derive(FromRow)]
struct UserMfaRow {
    opt_out: bool,
    opt_out_reason: Option<String>,
    opt_out_expires_at: Option<i64>,
    skipped_at: Option<i64>,
    skip_count: i64,
}

fn optional_methods(column: &str, text: Option<String>) -> StoreResult<Option<Methods>> {
    text.map(|t| from_json(column, &t)).transpose()
}

impl PolicyRow {
    fn into_policy(self, reset_approvers: Vec<String>) -> StoreResult<CompanyPolicy> {
        Ok(CompanyPolicy {
            mode: parse("mfa_policies.mode", &self.mode)?,
            methods: from_json("mfa_policies.methods", &self.methods)?,
            allow_skip: self.allow_skip,
            skip_limit: self.skip_limit.map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            skip_deadline: self.skip_deadline,
            allow_self_reset: self.allow_self_reset,
            reset_approvers,
            keep_enrollments_when_off: self.keep_enrollments_when_off,
        })
    }
}

impl From<UserMfaRow> for UserMfa {
    fn from(r: UserMfaRow) -> Self {
        UserMfa {
            opt_out: r.opt_out.then(|| OptOut {
                reason: r.opt_out_reason.unwrap_or_default(),
                expires_at: r.opt_out_expires_at,
            }),
            skipped_at: r.skipped_at,
            skip_count: r.skip_count,
        }
    }
}

fn minimum_from(mode: String, methods: Option<String>) -> StoreResult<(Mode, Option<Methods>)> {
    Ok((
        parse("reseller_mfa_minimums.mode", &mode)?,
        optional_methods("reseller_mfa_minimums.methods", methods)?,
    ))
}

fn enforcement_from(
    reseller_id: String,
    methods: Option<String>,
    created_at: i64,
) -> StoreResult<Enforcement> {
    Ok(Enforcement {
        reseller_id,
        methods: optional_methods("mfa_enforcements.methods", methods)?,
        created_at,
    })
}

/// The tenancy part of what [`Store::policy_inputs`] reads.
#[derive(Debug, Clone)]
pub struct PolicyContext {
    pub company: Company,
    pub reseller: Reseller,
    pub policy: Option<CompanyPolicy>,
    pub minimum: Option<(Mode, Option<Methods>)>,
    pub enforcement: Option<Enforcement>,
    pub mfa: UserMfa,
}

/// The columns of [`ContextRow`], for a query that joins [`context_joins!`] to `companies c`
/// and `user_mfa um`. The approvers come in one column, joined with spaces (ids have
/// none) by `$aggregate`: `group_concat` on SQLite, `string_agg` on PostgreSQL.
macro_rules! context_columns {
    ($aggregate:literal) => {
        concat!(
            "c.id AS company_id, c.reseller_id, c.name AS company_name, c.created_at AS company_created_at,
             r.name AS reseller_name, r.created_at AS reseller_created_at,
             p.mode AS policy_mode, p.methods AS policy_methods, p.allow_skip, p.skip_limit,
             p.skip_deadline, p.allow_self_reset, p.keep_enrollments_when_off,
             (SELECT ",
            $aggregate,
            "(a.user_id, ' ') FROM mfa_policy_approvers a WHERE a.company_id = c.id) AS approvers,
             m.mode AS minimum_mode, m.methods AS minimum_methods,
             e.reseller_id AS enforcing_reseller, e.methods AS enforced_methods, e.created_at AS enforced_at,
             um.opt_out, um.opt_out_reason, um.opt_out_expires_at, um.skipped_at, um.skip_count"
        )
    };
}
pub(super) use context_columns;

/// The tables [`context_columns!`] reads, joined to `companies c`.
macro_rules! context_joins {
    () => {
        "JOIN resellers r ON r.id = c.reseller_id
         LEFT JOIN mfa_policies p ON p.company_id = c.id
         LEFT JOIN reseller_mfa_minimums m ON m.reseller_id = c.reseller_id
         LEFT JOIN mfa_enforcements e ON e.company_id = c.id"
    };
}
pub(super) use context_joins;

/// A user ([`UserLoginRow`]'s columns: the company and reseller ids are the context's) and
/// their [`ContextRow`], joined by [`user_context_joins!`] to `users u`: the columns of
/// [`user_context_columns!`] but `confirmed`. `$aggregate` as for [`context_columns!`].
macro_rules! user_and_context_columns {
    ($aggregate:literal) => {
        concat!(
            "u.id, u.username, u.email, u.email_verified, u.phone, u.name, u.role, u.active,
             u.created_at, u.updated_at, u.password_hash, ",
            context_columns!($aggregate)
        )
    };
}
pub(super) use user_and_context_columns;

/// [`user_and_context_columns!`] and the kinds of the user's confirmed factors (`confirmed`).
macro_rules! user_context_columns {
    ($aggregate:literal) => {
        concat!(
            $crate::storage::mfa::user_and_context_columns!($aggregate),
            ", (SELECT ",
            $aggregate,
            "(f.kind, ' ') FROM mfa_factors f WHERE f.user_id = u.id AND f.confirmed_at IS NOT NULL) AS confirmed"
        )
    };
}
pub(super) use user_context_columns;

/// The tables [`user_context_columns!`] reads, joined to `users u`.
macro_rules! user_context_joins {
    () => {
        concat!(
            "JOIN companies c ON c.id = u.company_id ",
            context_joins!(),
            " LEFT JOIN user_mfa um ON um.user_id = u.id"
        )
    };
}
pub(super) use user_context_joins;

/// One row of [`user_context_columns!`].
#[derive(FromRow)]
pub(super) struct UserContextRow {
    #[sqlx(flatten)]
    user: UserLoginRow,
    #[sqlx(flatten)]
    context: ContextRow,
    confirmed: Option<String>,
}

/// A user with everything a token request is judged on: tenancy, policy context, and the
/// methods (`totp`, `email`, ...) of the confirmed factors.
#[derive(Debug, Clone)]
pub struct UserContext {
    pub user: UserWithTenancy,
    pub policy: PolicyContext,
    pub confirmed: Vec<String>,
}

impl UserContextRow {
    /// A row of [`user_context_columns!`] read inline (`storage::inline`).
    pub(super) fn from_inline(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(UserContextRow {
            user: super::tenancy::UserLoginRow::from_inline(row)?,
            context: ContextRow::from_inline(row)?,
            confirmed: row.get("confirmed")?,
        })
    }

    pub(super) fn into_user_context(self) -> StoreResult<UserContext> {
        Ok(UserContext {
            user: self.user.try_into()?,
            policy: self.context.into_context()?,
            confirmed: self
                .confirmed
                .iter()
                .flat_map(|c| c.split(' '))
                .map(str::to_owned)
                .collect(),
        })
    }
}

/// One object of `factors_json!` (below): [`Factor`]'s columns, the sealed secret in hex.
macro_rules! factor_object {
    ($object:literal, $hex_secret:literal) => {
        concat!(
            $object,
            "('id', f.id, 'user_id', f.user_id, 'kind', f.kind, 'secret', ",
            $hex_secret,
            ", 'destination', f.destination, 'last_step', f.last_step, 'created_at', f.created_at,
             'confirmed_at', f.confirmed_at, 'verified_at', f.verified_at)"
        )
    };
}

pub(super) use factor_object;

/// The factors of user `$user` (an SQL expression) as one JSON array (NULL on PostgreSQL when
/// there are none), in the backend's JSON functions, told apart by `$aggregate` as for
/// [`context_columns!`].
macro_rules! factors_json {
    ("group_concat", $user:literal) => {
        concat!(
            "(SELECT json_group_array(",
            factor_object!(
                "json_object",
                "CASE WHEN f.secret IS NULL THEN NULL ELSE hex(f.secret) END"
            ),
            ") FROM mfa_factors f WHERE f.user_id = ",
            $user,
            ")"
        )
    };
    ("string_agg", $user:literal) => {
        concat!(
            "(SELECT json_agg(",
            factor_object!("json_build_object", "encode(f.secret, 'hex')"),
            ")::text FROM mfa_factors f WHERE f.user_id = ",
            $user,
            ")"
        )
    };
}
pub(super) use factors_json;

/// One row of [`Store::policy_inputs`].
#[derive(FromRow)]
struct InputsRow {
    #[sqlx(flatten)]
    context: ContextRow,
    factors: Option<String>,
}

/// One element of `factors_json!`.
#[derive(serde::Deserialize)]
struct FactorJson {
    id: String,
    user_id: String,
    kind: String,
    secret: Option<String>,
    destination: Option<String>,
    last_step: Option<i64>,
    created_at: i64,
    confirmed_at: Option<i64>,
    verified_at: Option<i64>,
}

/// The factors of a `factors_json!` column, oldest first (as [`Store::factors_of`]).
pub(super) fn factors_from_json(text: Option<&str>) -> StoreResult<Vec<Factor>> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    let mut factors = from_json::<Vec<FactorJson>>("factors", text)?
        .into_iter()
        .map(|f| {
            let secret = match f.secret {
                Some(hex) => Some(
                    from_hex(&hex)
                        .ok_or_else(|| StoreError::Corrupt(format!("factor {}: secret is not hex", f.id)))?,
                ),
                None => None,
            };
            Ok(Factor {
                id: f.id,
                user_id: f.user_id,
                kind: f.kind,
                secret,
                destination: f.destination,
                last_step: f.last_step,
                created_at: f.created_at,
                confirmed_at: f.confirmed_at,
                verified_at: f.verified_at,
            })
        })
        .collect::<StoreResult<Vec<Factor>>>()?;
    factors.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    Ok(factors)
}

/// Decodes hex digits of either case (SQLite's `hex()` writes upper case, PostgreSQL's
/// `encode(..., 'hex')` lower case).
fn from_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    hex.as_bytes()
        .chunks(2)
        .map(|pair| {
            let digit = |b: u8| (b as char).to_digit(16);
            Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8)
        })
        .collect()
}

/// One row of [`context_columns!`].
#[derive(FromRow)]
pub(super) struct ContextRow {
    company_id: String,
    reseller_id: String,
    company_name: String,
    company_created_at: i64,
    reseller_name: String,
    reseller_created_at: i64,
    policy_mode: Option<String>,
    policy_methods: Option<String>,
    allow_skip: Option<bool>,
    skip_limit: Option<i64>,
    skip_deadline: Option<i64>,
    allow_self_reset: Option<bool>,
    keep_enrollments_when_off: Option<bool>,
    approvers: Option<String>,
    minimum_mode: Option<String>,
    minimum_methods: Option<String>,
    enforcing_reseller: Option<String>,
    enforced_methods: Option<String>,
    enforced_at: Option<i64>,
    opt_out: Option<bool>,
    opt_out_reason: Option<String>,
    opt_out_expires_at: Option<i64>,
    skipped_at: Option<i64>,
    skip_count: Option<i64>,
}

impl ContextRow {
    /// A row of [`context_columns!`] read inline (`storage::inline`).
    pub(super) fn from_inline(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(ContextRow {
            company_id: row.get("company_id")?,
            reseller_id: row.get("reseller_id")?,
            company_name: row.get("company_name")?,
            company_created_at: row.get("company_created_at")?,
            reseller_name: row.get("reseller_name")?,
            reseller_created_at: row.get("reseller_created_at")?,
            policy_mode: row.get("policy_mode")?,
            policy_methods: row.get("policy_methods")?,
            allow_skip: row.get("allow_skip")?,
            skip_limit: row.get("skip_limit")?,
            skip_deadline: row.get("skip_deadline")?,
            allow_self_reset: row.get("allow_self_reset")?,
            keep_enrollments_when_off: row.get("keep_enrollments_when_off")?,
            approvers: row.get("approvers")?,
            minimum_mode: row.get("minimum_mode")?,
            minimum_methods: row.get("minimum_methods")?,
            enforcing_reseller: row.get("enforcing_reseller")?,
            enforced_methods: row.get("enforced_methods")?,
            enforced_at: row.get("enforced_at")?,
            opt_out: row.get("opt_out")?,
            opt_out_reason: row.get("opt_out_reason")?,
            opt_out_expires_at: row.get("opt_out_expires_at")?,
            skipped_at: row.get("skipped_at")?,
            skip_count: row.get("skip_count")?,
        })
    }

    pub(super) fn into_context(self) -> StoreResult<PolicyContext> {
        let r = self;
        let policy = match (r.policy_mode, r.policy_methods) {
            (Some(mode), Some(methods)) => Some(
                PolicyRow {
                    mode,
                    methods,
                    allow_skip: r.allow_skip.unwrap_or_default(),
                    skip_limit: r.skip_limit,
                    skip_deadline: r.skip_deadline,
                    allow_self_reset: r.allow_self_reset.unwrap_or_default(),
                    keep_enrollments_when_off: r.keep_enrollments_when_off.unwrap_or_default(),
                }
                .into_policy({
                    let mut approvers: Vec<String> = r
                        .approvers
                        .iter()
                        .flat_map(|a| a.split(' '))
                        .map(str::to_owned)
                        .collect();
                    approvers.sort();
                    approvers
                })?,
            ),
            _ => None,
        };
        let minimum = r
            .minimum_mode
            .map(|mode| minimum_from(mode, r.minimum_methods))
            .transpose()?;
        let enforcement = match (r.enforcing_reseller, r.enforced_at) {
            (Some(reseller_id), Some(created_at)) => {
                Some(enforcement_from(reseller_id, r.enforced_methods, created_at)?)
            }
            _ => None,
        };
        let mfa = match (r.opt_out, r.skip_count) {
            (Some(opt_out), Some(skip_count)) => UserMfaRow {
                opt_out,
                opt_out_reason: r.opt_out_reason,
                opt_out_expires_at: r.opt_out_expires_at,
                skipped_at: r.skipped_at,
                skip_count,
            }
            .into(),
            _ => UserMfa::default(),
        };
        Ok(PolicyContext {
            company: Company {
                id: r.company_id,
                reseller_id: r.reseller_id.clone(),
                name: r.company_name,
                created_at: r.company_created_at,
            },
            reseller: Reseller {
                id: r.reseller_id,
                name: r.reseller_name,
                created_at: r.reseller_created_at,
            },
            policy,
            minimum,
            enforcement,
            mfa,
        })
    }
}

impl Store {
    /// The company's stored policy, if it ever saved one.
    pub async fn get_company_policy(&self, company_id: &str) -> StoreResult<Option<CompanyPolicy>> {
        let row: Option<PolicyRow> = with_db!(self, |pool| {
            sqlx::query_as(
                "SELECT mode, methods, allow_skip, skip_limit, skip_deadline, allow_self_reset, keep_enrollments_when_off
                 FROM mfa_policies WHERE company_id = $1",
            )
            .bind(company_id)
            .fetch_optional(pool)
            .await?
        });
        match row {
            Some(row) => Ok(Some(row.into_policy(self.policy_approvers(company_id).await?)?)),
            None => Ok(None),
        }
    }

    async fn policy_approvers(&self, company_id: &str) -> StoreResult<Vec<String>> {
        Ok(with_db!(self, |pool| {
            sqlx::query_scalar(
                "SELECT user_id FROM mfa_policy_approvers WHERE company_id = $1 ORDER BY user_id",
            )
            .bind(company_id)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Everything the MFA decision reads about a user, in one statement: the company, its
    /// reseller, the company's policy and approvers, the reseller's minimum, an enforcement,
    /// the user's opt-out and skip, and the user's factors ([`Store::factors_of`]) as a JSON
    /// array in one more column. The login steps read this before they decide, twice per
    /// login, so it is one round trip, not nine.
    pub async fn policy_inputs(
        &self,
        user_id: &str,
        company_id: &str,
    ) -> StoreResult<Option<(PolicyContext, Vec<Factor>)>> {
        macro_rules! policy_inputs_sql {
            // A token tree, not a literal fragment: `factors_json!` matches its text.
            ($aggregate:tt) => {
                concat!(
                    "SELECT ",
                    context_columns!($aggregate),
                    ", ",
                    factors_json!($aggregate, "$2"),
                    " AS factors FROM companies c ",
                    context_joins!(),
                    " LEFT JOIN user_mfa um ON um.user_id = $2 WHERE c.id = $1"
                )
            };
        }
        let row: Option<InputsRow> =
            fetch_optional_aggregating!(self, policy_inputs_sql, company_id, user_id);
        row.map(|row| {
            Ok((
                row.context.into_context()?,
                factors_from_json(row.factors.as_deref())?,
            ))
        })
        .transpose()
    }

    /// Saves a company's policy and its approvers. With `drop_enrolments`, also deletes
    /// every factor, recovery code, remembered skip and pending reset request of the
    /// company's users (MFA turned off with `keep_enrollments_when_off = false`). `emails`
    /// are queued in the same transaction.
    pub async fn save_company_policy(
        &self,
        company_id: &str,
        policy: &CompanyPolicy,
        drop_enrolments: bool,
        emails: &[OutgoingEmail],
        now: UnixTime,
    ) -> StoreResult<()> {
        with_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO mfa_policies (company_id, mode, methods, allow_skip, skip_limit, skip_deadline,
                                           allow_self_reset, keep_enrollments_when_off, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (company_id) DO UPDATE SET
                   mode = excluded.mode, methods = excluded.methods, allow_skip = excluded.allow_skip,
                   skip_limit = excluded.skip_limit, skip_deadline = excluded.skip_deadline,
                   allow_self_reset = excluded.allow_self_reset,
                   keep_enrollments_when_off = excluded.keep_enrollments_when_off, updated_at = excluded.updated_at",
            )
            .bind(company_id)
            .bind(policy.mode.as_str())
            .bind(to_json(&policy.methods))
            .bind(policy.allow_skip)
            .bind(policy.skip_limit.map(i64::from))
            .bind(policy.skip_deadline)
            .bind(policy.allow_self_reset)
            .bind(policy.keep_enrollments_when_off)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| write_error(e, "policy", "company"))?;
            sqlx::query("DELETE FROM mfa_policy_approvers WHERE company_id = $1")
                .bind(company_id)
                .execute(&mut *tx)
                .await?;
            for approver in &policy.reset_approvers {
                sqlx::query("INSERT INTO mfa_policy_approvers (company_id, user_id) VALUES ($1, $2)")
                    .bind(company_id)
                    .bind(approver)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| write_error(e, "approver", "approver"))?;
            }
            if drop_enrolments {
                for sql in [
                    "DELETE FROM mfa_factors WHERE user_id IN (SELECT id FROM users WHERE company_id = $1)",
                    "DELETE FROM recovery_codes WHERE user_id IN (SELECT id FROM users WHERE company_id = $1)",
                    "UPDATE user_mfa SET skipped_at = NULL, skip_count = 0
                     WHERE user_id IN (SELECT id FROM users WHERE company_id = $1)",
                    "DELETE FROM mfa_reset_requests WHERE company_id = $1 AND status = 'pending'",
                ] {
                    sqlx::query(sql).bind(company_id).execute(&mut *tx).await?;
                }
            }
            queue_emails!(tx, emails);
            tx.commit().await?;
        });
        Ok(())
    }

    /// The minimum a reseller imposes on all its companies.
    pub async fn get_reseller_minimum(
        &self,
        reseller_id: &str,
    ) -> StoreResult<Option<(Mode, Option<Methods>)>> {
        let row: Option<(String, Option<String>)> = with_db!(self, |pool| {
            sqlx::query_as("SELECT mode, methods FROM reseller_mfa_minimums WHERE reseller_id = $1")
                .bind(reseller_id)
                .fetch_optional(pool)
                .await?
        });
        row.map(|(mode, methods)| minimum_from(mode, methods)).transpose()
    }

    pub async fn set_reseller_minimum(
        &self,
        reseller_id: &str,
        mode: Mode,
        methods: Option<&Methods>,
        now: UnixTime,
    ) -> StoreResult<()> {
        with_db!(self, |pool| {
            sqlx::query(
                "INSERT INTO reseller_mfa_minimums (reseller_id, mode, methods, updated_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (reseller_id) DO UPDATE SET
                   mode = excluded.mode, methods = excluded.methods, updated_at = excluded.updated_at",
            )
            .bind(reseller_id)
            .bind(mode.as_str())
            .bind(methods.map(to_json))
            .bind(now)
            .execute(pool)
            .await
            .map_err(|e| write_error(e, "minimum", "reseller"))?;
        });
        Ok(())
    }

    pub async fn get_enforcement(&self, company_id: &str) -> StoreResult<Option<Enforcement>> {
        let row: Option<(String, Option<String>, i64)> = with_db!(self, |pool| {
            sqlx::query_as(
                "SELECT reseller_id, methods, created_at FROM mfa_enforcements WHERE company_id = $1",
            )
            .bind(company_id)
            .fetch_optional(pool)
            .await?
        });
        row.map(|(reseller_id, methods, created_at)| enforcement_from(reseller_id, methods, created_at))
            .transpose()
    }

    /// Enforces MFA on a company (or changes the narrowed methods of an enforcement).
    pub async fn enforce(
        &self,
        company_id: &str,
        reseller_id: &str,
        methods: Option<&Methods>,
        now: UnixTime,
    ) -> StoreResult<()> {
        with_db!(self, |pool| {
            sqlx::query(
                "INSERT INTO mfa_enforcements (company_id, reseller_id, methods, created_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (company_id) DO UPDATE SET methods = excluded.methods",
            )
            .bind(company_id)
            .bind(reseller_id)
            .bind(methods.map(to_json))
            .bind(now)
            .execute(pool)
            .await
            .map_err(|e| write_error(e, "enforcement", "company or reseller"))?;
        });
        Ok(())
    }

    /// Ends an enforcement. False when there was none.
    pub async fn release(&self, company_id: &str) -> StoreResult<bool> {
        let deleted = with_db!(self, |pool| {
            sqlx::query("DELETE FROM mfa_enforcements WHERE company_id = $1")
                .bind(company_id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(deleted == 1)
    }

    pub async fn get_user_mfa(&self, user_id: &str) -> StoreResult<UserMfa> {
        let row: Option<UserMfaRow> = with_db!(self, |pool| {
            sqlx::query_as(
                "SELECT opt_out, opt_out_reason, opt_out_expires_at, skipped_at, skip_count
                 FROM user_mfa WHERE user_id = $1",
            )
            .bind(user_id)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(Into::into).unwrap_or_default())
    }

    /// Sets or clears a user's opt-out.
    pub async fn set_opt_out(
        &self,
        user_id: &str,
        opt_out: Option<&OptOut>,
        now: UnixTime,
    ) -> StoreResult<()> {
        with_db!(self, |pool| {
            sqlx::query(
                "INSERT INTO user_mfa (user_id, opt_out, opt_out_reason, opt_out_expires_at, skipped_at, skip_count, updated_at)
                 VALUES ($1, $2, $3, $4, NULL, 0, $5)
                 ON CONFLICT (user_id) DO UPDATE SET opt_out = excluded.opt_out, opt_out_reason = excluded.opt_out_reason,
                   opt_out_expires_at = excluded.opt_out_expires_at, updated_at = excluded.updated_at",
            )
            .bind(user_id)
            .bind(opt_out.is_some())
            .bind(opt_out.map(|o| o.reason.as_str()))
            .bind(opt_out.and_then(|o| o.expires_at))
            .bind(now)
            .execute(pool)
            .await
            .map_err(|e| write_error(e, "opt-out", "user"))?;
        });
        Ok(())
    }

    /// Records that the user chose "Skip for now".
    pub async fn record_skip(&self, user_id: &str, now: UnixTime) -> StoreResult<()> {
        with_db!(self, |pool| {
            sqlx::query(
                "INSERT INTO user_mfa (user_id, opt_out, opt_out_reason, opt_out_expires_at, skipped_at, skip_count, updated_at)
                 VALUES ($1, $2, NULL, NULL, $3, 1, $3)
                 ON CONFLICT (user_id) DO UPDATE SET skipped_at = excluded.skipped_at,
                   skip_count = user_mfa.skip_count + 1, updated_at = excluded.updated_at",
            )
            .bind(user_id)
            .bind(false)
            .bind(now)
            .execute(pool)
            .await
            .map_err(|e| write_error(e, "skip", "user"))?;
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::from_hex;

    #[test]
    fn hex_of_either_case_decodes_and_anything_else_is_refused() {
        assert_eq!(from_hex("00ff7Fa0"), Some(vec![0x00, 0xff, 0x7f, 0xa0]));
        assert_eq!(from_hex(""), Some(vec![]));
        assert_eq!(from_hex("abc"), None);
        assert_eq!(from_hex("zz"), None);
        assert_eq!(from_hex("+1"), None);
    }
}
