//! Recording security events in the audit log (`storage::audit`). A failed write is logged
//! as an error and does not undo the action it reports: the action already happened. The
//! exception is `login.succeeded`, written in the same transaction as the code and session
//! it reports (`Event::at`, `Store::complete_login`): no login without its event.

use std::net::IpAddr;

use serde_json::Value;

use crate::clock::UnixTime;
use crate::model::new_id;
use crate::storage::{AuditEvent, Store};

tokio::task_local! {
    /// The client address of the request being served (set by the HTTP layer), for events
    /// that do not name one.
    pub static CLIENT_IP: Option<IpAddr>;
}

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub id: Option<String>,
    pub kind: &'static str,
}

impl Actor {
    pub fn user(id: &str) -> Self {
        Self {
            id: Some(id.to_owned()),
            kind: "user",
        }
    }

    pub fn client(id: &str) -> Self {
        Self {
            id: Some(id.to_owned()),
            kind: "client",
        }
    }

    pub fn cli() -> Self {
        Self {
            id: Some("cli".into()),
            kind: "cli",
        }
    }

    pub fn system() -> Self {
        Self {
            id: None,
            kind: "system",
        }
    }

    pub fn anonymous() -> Self {
        Self {
            id: None,
            kind: "anonymous",
        }
    }
}

/// One event, built up and then recorded.
#[derive(Debug, Clone)]
pub struct Event {
    kind: &'static str,
    success: bool,
    actor: Actor,
    subject: Option<String>,
    company: Option<String>,
    reseller: Option<String>,
    ip: Option<IpAddr>,
    detail: Value,
}

/// Starts an event of `kind` (`login.succeeded`, `mfa.reset`, ...) by `actor`.
pub fn event(kind: &'static str, actor: Actor) -> Event {
    Event {
        kind,
        success: true,
        actor,
        subject: None,
        company: None,
        reseller: None,
        ip: None,
        detail: Value::Object(Default::default()),
    }
}

impl Event {
    pub fn failed(mut self) -> Self {
        self.success = false;
        self
    }

    pub fn subject(mut self, subject: &str) -> Self {
        self.subject = Some(subject.to_owned());
        self
    }

    pub fn tenant(mut self, company: Option<&str>, reseller: Option<&str>) -> Self {
        self.company = company.map(str::to_owned);
        self.reseller = reseller.map(str::to_owned);
        self
    }

    /// Files the event under a user's company and reseller (one query).
    pub async fn tenant_of_user(mut self, store: &Store, user_id: &str) -> Self {
        match store.get_user_with_tenancy(user_id).await {
            Ok(Some(found)) => {
                self.company = Some(found.user.company_id);
                self.reseller = Some(found.reseller_id);
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "looking up a user for the audit log failed"),
        }
        self
    }

    pub fn ip(mut self, ip: Option<IpAddr>) -> Self {
        self.ip = ip;
        self
    }

    pub fn detail(mut self, detail: Value) -> Self {
        self.detail = detail;
        self
    }

    /// Appends the event. The company's reseller is looked up when only the company is known.
    pub async fn record(mut self, store: &Store, now: UnixTime) {
        if self.reseller.is_none()
            && let Some(company) = &self.company
        {
            match store.get_company(company).await {
                Ok(found) => self.reseller = found.map(|c| c.reseller_id),
                Err(e) => tracing::error!(error = %e, "looking up a company for the audit log failed"),
            }
        }
        let event = self.at(now);
        if let Err(e) = store.insert_audit(&event).await {
            tracing::error!(error = %e, kind = %event.kind, "writing an audit event failed");
        }
    }

    /// The event as stored, for a caller that writes it together with what it reports
    /// (`Store::complete_login`). The client address is the request's unless one was set.
    pub fn at(self, now: UnixTime) -> AuditEvent {
        let ip = self.ip.or_else(|| CLIENT_IP.try_with(|ip| *ip).ok().flatten());
        AuditEvent {
            id: new_id(),
            at: now,
            kind: self.kind.to_owned(),
            outcome: if self.success { "success" } else { "failure" }.to_owned(),
            actor: self.actor.id,
            actor_kind: self.actor.kind.to_owned(),
            subject: self.subject,
            company_id: self.company,
            reseller_id: self.reseller,
            client_ip: ip.map(|ip| ip.to_string()),
            detail: self.detail.to_string(),
        }
    }
}
