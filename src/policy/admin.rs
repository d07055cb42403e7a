//! Administering MFA: saving a company's policy, a reseller's minimum and enforcement, a
//! user's opt-out, and resetting a user. The CLI uses these today and the admin API will;
//! each validates, writes in one transaction, and queues the users' notifications.

use serde_json::json;

use super::load::{floor_for, supported_methods};
use super::{CompanyPolicy, Floor, Methods, Mode, OptOut, PolicyError, effective, validate_company_policy};
use crate::clock::UnixTime;
use crate::model::{Company, Role, User};
use crate::notify::email::{Kind, compose, format_time};
use crate::storage::{Store, StoreError};
use crate::templates::{TemplateError, Templates};

/// What the operations need besides the store.
pub struct Admin<'a> {
    pub store: &'a Store,
    pub templates: &'a Templates,
    /// For links in emails.
    pub issuer: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0} does not exist")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Template(#[from] TemplateError),
}

/// A company's stored policy, its floor and the effective policy, for display.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PolicyView {
    pub company_id: String,
    pub policy: CompanyPolicy,
    pub floor: Floor,
    pub enforced_by: Option<String>,
    pub effective: super::Effective,
}

impl Admin<'_> {
    async fn company(&self, id: &str) -> Result<Company, AdminError> {
        self.store
            .get_company(id)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("company {id}")))
    }

    async fn user(&self, id: &str) -> Result<User, AdminError> {
        self.store
            .get_user(id)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("user {id}")))
    }

    pub async fn view(&self, company_id: &str) -> Result<PolicyView, AdminError> {
        let company = self.company(company_id).await?;
        let policy = self
            .store
            .get_company_policy(company_id)
            .await?
            .unwrap_or_default();
        let floor = floor_for(self.store, &company).await?;
        let enforcement = self.store.get_enforcement(company_id).await?;
        Ok(PolicyView {
            company_id: company.id,
            effective: effective(&policy, &floor),
            policy,
            floor,
            enforced_by: enforcement.map(|e| e.reseller_id),
        })
    }

    /// Whether `user_id` may approve resets for `company`: an active company admin of it,
    /// or an active reseller admin of its reseller.
    async fn can_approve(&self, company: &Company, user_id: &str) -> Result<bool, AdminError> {
        let Some(user) = self.store.get_user(user_id).await?.filter(|u| u.active) else {
            return Ok(false);
        };
        Ok(match user.role {
            Role::CompanyAdmin => user.company_id == company.id,
            Role::ResellerAdmin => self
                .store
                .get_company(&user.company_id)
                .await?
                .is_some_and(|c| c.reseller_id == company.reseller_id),
            Role::User => false,
        })
    }

    /// Validates and saves a company's policy. Turning MFA off with
    /// `keep_enrollments_when_off = false` drops every enrolment in the company (seed 002)
    /// and tells the users concerned.
    pub async fn save_policy(
        &self,
        company_id: &str,
        policy: CompanyPolicy,
        now: UnixTime,
    ) -> Result<PolicyView, AdminError> {
        let company = self.company(company_id).await?;
        let reseller = self
            .store
            .get_reseller(&company.reseller_id)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("reseller {}", company.reseller_id)))?;
        let floor = floor_for(self.store, &company).await?;
        let mut approvers = Vec::new();
        for id in &policy.reset_approvers {
            approvers.push((id.clone(), self.can_approve(&company, id).await?));
        }
        validate_company_policy(&policy, &floor, &reseller.name, &supported_methods(), &approvers)?;
        let before = effective(
            &self
                .store
                .get_company_policy(company_id)
                .await?
                .unwrap_or_default(),
            &floor,
        );
        let after = effective(&policy, &floor);
        let drop = before.mode != Mode::Off && after.mode == Mode::Off && !policy.keep_enrollments_when_off;
        let mut emails = Vec::new();
        if drop {
            for user_id in self.store.users_with_factors(company_id).await? {
                let user = self.user(&user_id).await?;
                emails.push(self.reset_email(
                    &user,
                    &company,
                    Some("a change of your organization's policy"),
                    false,
                    now,
                )?);
            }
        }
        self.store
            .save_company_policy(company_id, &policy, drop, &emails, now)
            .await?;
        self.view(company_id).await
    }

    fn reset_email(
        &self,
        user: &User,
        company: &Company,
        by: Option<&str>,
        required: bool,
        now: UnixTime,
    ) -> Result<crate::storage::OutgoingEmail, TemplateError> {
        let context = json!({
            "name": user.name.clone().unwrap_or_else(|| user.username.clone()),
            "username": user.username,
            "company": company.name,
            "when": format_time(now),
            "by": by,
            "required": required,
            "account_url": format!("{}/account/security", self.issuer),
        });
        compose(self.templates, Kind::MfaReset, &user.email, &context, now)
    }

    /// Sets the minimum a reseller imposes on all its companies.
    pub async fn set_minimum(
        &self,
        reseller_id: &str,
        mode: Mode,
        methods: Option<Methods>,
        now: UnixTime,
    ) -> Result<(), AdminError> {
        if self.store.get_reseller(reseller_id).await?.is_none() {
            return Err(AdminError::NotFound(format!("reseller {reseller_id}")));
        }
        check_methods(methods.as_ref())?;
        self.store
            .set_reseller_minimum(reseller_id, mode, methods.as_ref(), now)
            .await?;
        Ok(())
    }

    /// A reseller enforces MFA on one of its companies, optionally narrowing the methods.
    pub async fn enforce(
        &self,
        reseller_id: &str,
        company_id: &str,
        methods: Option<Methods>,
        now: UnixTime,
    ) -> Result<PolicyView, AdminError> {
        let company = self.company(company_id).await?;
        if company.reseller_id != reseller_id {
            return Err(AdminError::Invalid(format!(
                "company {company_id} does not belong to reseller {reseller_id}"
            )));
        }
        check_methods(methods.as_ref())?;
        self.store
            .enforce(company_id, reseller_id, methods.as_ref(), now)
            .await?;
        self.view(company_id).await
    }

    pub async fn release(&self, reseller_id: &str, company_id: &str) -> Result<PolicyView, AdminError> {
        let company = self.company(company_id).await?;
        if company.reseller_id != reseller_id {
            return Err(AdminError::Invalid(format!(
                "company {company_id} does not belong to reseller {reseller_id}"
            )));
        }
        if !self.store.release(company_id).await? {
            return Err(AdminError::Invalid(format!(
                "MFA is not enforced on company {company_id}"
            )));
        }
        self.view(company_id).await
    }

    /// Exempts a user from a required (not enforced) policy, with a reason and an optional
    /// expiry; `None` ends the exemption.
    pub async fn set_opt_out(
        &self,
        user_id: &str,
        opt_out: Option<OptOut>,
        now: UnixTime,
    ) -> Result<(), AdminError> {
        self.user(user_id).await?;
        if let Some(opt_out) = &opt_out {
            let reason = opt_out.reason.trim();
            if reason.is_empty() || reason.chars().count() > 500 {
                return Err(AdminError::Invalid(
                    "an opt-out needs a reason of 1 to 500 characters".into(),
                ));
            }
            if opt_out.expires_at.is_some_and(|at| at <= now) {
                return Err(AdminError::Invalid(
                    "the opt-out's expiry must be in the future".into(),
                ));
            }
        }
        self.store.set_opt_out(user_id, opt_out.as_ref(), now).await?;
        Ok(())
    }

    /// Resets a user's MFA: factors, recovery codes, the remembered skip and a pending
    /// request are cleared, and the user is told.
    pub async fn reset_user(&self, user_id: &str, by: Option<&str>, now: UnixTime) -> Result<(), AdminError> {
        let user = self.user(user_id).await?;
        let company = self.company(&user.company_id).await?;
        let view = self.view(&company.id).await?;
        let email = self.reset_email(&user, &company, by, view.effective.mode == Mode::Required, now)?;
        self.store.reset_user_mfa(user_id, by, &[email], now).await?;
        Ok(())
    }
}

fn check_methods(methods: Option<&Methods>) -> Result<(), AdminError> {
    if let Some(methods) = methods {
        if methods.is_empty() {
            return Err(AdminError::Invalid("the method list must not be empty".into()));
        }
        let supported = supported_methods();
        if let Some(method) = methods.iter().find(|m| !supported.contains(m)) {
            return Err(AdminError::Policy(PolicyError::Unsupported {
                method: *method,
                available: super::methods_string(&supported),
            }));
        }
    }
    Ok(())
}
