//! The audit log: every security event, appended and never changed (the tables refuse
//! updates and deletes).

use serde::Serialize;
use sqlx::FromRow;

use super::{Store, StoreResult, with_db};

#[derive(Debug, Clone, FromRow, Serialize, PartialEq, Eq)]
pub struct AuditEvent {
    pub id: String,
    pub at: i64,
    /// `login.succeeded`, `mfa.reset`, `api.user.created`, ...
    #[sqlx(rename = "type")]
    #[serde(rename = "type")]
    pub kind: String,
    /// `success` or `failure`.
    pub outcome: String,
    /// Who acted: a user id, a client id, `cli`; none for an unknown user at login.
    pub actor: Option<String>,
    /// `user`, `client`, `cli`, `system` or `anonymous`.
    pub actor_kind: String,
    /// Whom or what it was about (a user id, a company id, a client id).
    pub subject: Option<String>,
    pub company_id: Option<String>,
    pub reseller_id: Option<String>,
    pub client_ip: Option<String>,
    /// A JSON object with event-specific facts (never secrets).
    pub detail: String,
}

/// Which events to list. Tenancy first (`reseller`, `company`), then the caller's filters.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub reseller: Option<String>,
    pub company: Option<String>,
    pub subject: Option<String>,
    pub kind: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub after: Option<String>,
    pub limit: i64,
}

/// The columns of an [`AuditEvent`], in the order of [`bind_audit!`].
macro_rules! audit_columns {
    () => {
        "id, at, type, outcome, actor, actor_kind, subject, company_id, reseller_id, client_ip, detail"
    };
}
pub(super) use audit_columns;

/// Binds an [`AuditEvent`] to `$query`: eleven parameters, as [`audit_columns!`].
macro_rules! bind_audit {
    ($query:expr, $event:expr) => {{
        let event: &AuditEvent = $event;
        $query
            .bind(&event.id)
            .bind(event.at)
            .bind(&event.kind)
            .bind(&event.outcome)
            .bind(event.actor.as_deref())
            .bind(&event.actor_kind)
            .bind(event.subject.as_deref())
            .bind(event.company_id.as_deref())
            .bind(event.reseller_id.as_deref())
            .bind(event.client_ip.as_deref())
            .bind(&event.detail)
    }};
}
pub(super) use bind_audit;

/// Appends an [`AuditEvent`] through `$executor` (a pool or a transaction of either backend).
macro_rules! insert_audit {
    ($executor:expr, $event:expr) => {
        bind_audit!(
            sqlx::query(concat!(
                "INSERT INTO audit_events (",
                audit_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
            )),
            $event
        )
        .execute($executor)
        .await
    };
}
pub(super) use insert_audit;

impl Store {
    pub async fn insert_audit(&self, event: &AuditEvent) -> StoreResult<()> {
        with_db!(self, |pool| {
            insert_audit!(pool, event)?;
        });
        Ok(())
    }

    /// Events matching `filter`, oldest first (ids are UUIDv7: time order).
    pub async fn list_audit(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditEvent>> {
        Ok(with_db!(self, |pool| {
            sqlx::query_as(
                "SELECT id, at, type, outcome, actor, actor_kind, subject, company_id, reseller_id, client_ip, detail
                 FROM audit_events
                 WHERE ($1 IS NULL OR reseller_id = $1) AND ($2 IS NULL OR company_id = $2)
                   AND ($3 IS NULL OR subject = $3) AND ($4 IS NULL OR type = $4)
                   AND ($5 IS NULL OR at >= $5) AND ($6 IS NULL OR at < $6) AND ($7 IS NULL OR id > $7)
                 ORDER BY id LIMIT $8",
            )
            .bind(filter.reseller.as_deref())
            .bind(filter.company.as_deref())
            .bind(filter.subject.as_deref())
            .bind(filter.kind.as_deref())
            .bind(filter.since)
            .bind(filter.until)
            .bind(filter.after.as_deref())
            .bind(filter.limit)
            .fetch_all(pool)
            .await?
        }))
    }
}
