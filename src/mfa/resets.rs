//! Acting on a user's reset request, from the approver's page or the admin API: approving
//! resets the user's MFA (and closes the request); declining closes it. The user is emailed
//! either way, and the decision goes to the audit log.

use serde_json::json;

use crate::audit::Actor;
use crate::model::{Company, User};
use crate::notify::email::{Kind, format_time};
use crate::policy::admin::{Admin, AdminError};
use crate::state::AppState;
use crate::storage::ResetRequest;

/// What the approver decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Approve,
    Decline,
}

/// The request's user and company.
pub async fn parties(state: &AppState, request: &ResetRequest) -> Result<(User, Company), AdminError> {
    let user = state
        .store
        .get_user(&request.user_id)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("user {}", request.user_id)))?;
    let company = state
        .store
        .get_company(&request.company_id)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("company {}", request.company_id)))?;
    Ok((user, company))
}

/// Decides a pending request. `by` names the approver in the user's email. False when the
/// request was no longer pending.
pub async fn decide(
    state: &AppState,
    request: &ResetRequest,
    verdict: Verdict,
    actor: &Actor,
    by: &str,
    ip: Option<std::net::IpAddr>,
) -> Result<bool, AdminError> {
    if request.status != "pending" {
        return Ok(false);
    }
    let (user, company) = parties(state, request).await?;
    let now = state.now();
    let decided = match verdict {
        Verdict::Approve => {
            let admin = Admin {
                store: &state.store,
                templates: &state.templates,
                issuer: &state.issuer,
            };
            admin.reset_user(&user.id, Some(by), now).await?;
            true
        }
        Verdict::Decline => {
            let context = json!({
                "name": user.name.clone().unwrap_or_else(|| user.username.clone()),
                "username": user.username,
                "company": company.name,
                "requested": format_time(request.created_at),
                "when": format_time(now),
                "by": by,
            });
            let email = crate::notify::email::compose(
                &state.templates,
                Kind::ResetDeclined,
                &user.email,
                &context,
                now,
            )?;
            state
                .store
                .decline_reset_request(&request.id, by, &[email], now)
                .await?
        }
    };
    if decided {
        crate::mfa::service::emails_queued(state);
        crate::audit::event(
            match verdict {
                Verdict::Approve => "mfa.reset_request.approved",
                Verdict::Decline => "mfa.reset_request.declined",
            },
            actor.clone(),
        )
        .subject(&user.id)
        .tenant(Some(&company.id), Some(&company.reseller_id))
        .ip(ip)
        .detail(json!({ "request": request.id }))
        .record(&state.store, now)
        .await;
    }
    Ok(decided)
}
