//! Rules for saving a company policy. Pure: the caller looks up the approvers.

use super::{CompanyPolicy, Floor, Method, Methods, Mode, methods_string};

/// Why a policy cannot be saved: a sentence for the administrator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("a policy that is not off must allow at least one method")]
    NoMethod,
    #[error("the method `{method}` is not available (available: {available})")]
    Unsupported { method: Method, available: String },
    #[error("choose at least one reset approver: the administrators notified of reset requests")]
    NoApprover,
    #[error("user {0} cannot approve resets: approvers must be active administrators of this company")]
    NotAnApprover(String),
    /// The reseller enforces or sets a minimum that this change would break.
    #[error("{0}")]
    ResellerEnforces(String),
    #[error("{0}")]
    Invalid(String),
}

/// Checks a company policy before it is saved. `approvers` pairs each approver's id with
/// whether they are an active administrator of the company (or of its reseller).
pub fn validate_company_policy(
    policy: &CompanyPolicy,
    floor: &Floor,
    reseller_name: &str,
    supported: &Methods,
    approvers: &[(String, bool)],
) -> Result<(), PolicyError> {
    if let Some(method) = policy.methods.iter().find(|m| !supported.contains(m)) {
        return Err(PolicyError::Unsupported {
            method: *method,
            available: methods_string(supported),
        });
    }
    if policy.mode < floor.mode {
        return Err(PolicyError::ResellerEnforces(if floor.enforces() {
            format!(
                "your reseller {reseller_name} enforces MFA on this company: the mode must stay `required`"
            )
        } else {
            format!(
                "your reseller {reseller_name} requires MFA to be at least `{}`",
                floor.mode
            )
        }));
    }
    if let Some(allowed) = &floor.methods
        && let Some(method) = policy.methods.iter().find(|m| !allowed.contains(m))
    {
        return Err(PolicyError::ResellerEnforces(format!(
            "your reseller {reseller_name} allows only {}: `{method}` cannot be enabled",
            methods_string(allowed)
        )));
    }
    if policy.allow_skip && floor.enforces() {
        return Err(PolicyError::ResellerEnforces(format!(
            "your reseller {reseller_name} enforces MFA on this company: users cannot skip enrolment"
        )));
    }
    if policy.mode != Mode::Off {
        if policy.methods.is_empty() {
            return Err(PolicyError::NoMethod);
        }
        if policy.reset_approvers.is_empty() {
            return Err(PolicyError::NoApprover);
        }
    }
    if let Some((id, _)) = approvers.iter().find(|(_, admin)| !admin) {
        return Err(PolicyError::NotAnApprover(id.clone()));
    }
    if policy.skip_limit == Some(0) && policy.allow_skip {
        return Err(PolicyError::Invalid(
            "a skip limit of 0 means no skipping: turn allow_skip off instead".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totp() -> Methods {
        [Method::Totp].into_iter().collect()
    }

    fn required() -> CompanyPolicy {
        CompanyPolicy {
            mode: Mode::Required,
            methods: totp(),
            reset_approvers: vec!["admin".into()],
            ..CompanyPolicy::default()
        }
    }

    fn check(policy: &CompanyPolicy, floor: &Floor) -> Result<(), PolicyError> {
        let approvers: Vec<(String, bool)> = policy
            .reset_approvers
            .iter()
            .map(|a| (a.clone(), a == "admin"))
            .collect();
        validate_company_policy(policy, floor, "Acme", &totp(), &approvers)
    }

    #[test]
    fn a_complete_required_policy_saves() {
        assert_eq!(check(&required(), &Floor::none()), Ok(()));
    }

    #[test]
    fn required_needs_a_method_and_an_approver() {
        let no_method = CompanyPolicy {
            methods: Methods::new(),
            ..required()
        };
        assert_eq!(check(&no_method, &Floor::none()), Err(PolicyError::NoMethod));
        let no_approver = CompanyPolicy {
            reset_approvers: vec![],
            ..required()
        };
        assert_eq!(check(&no_approver, &Floor::none()), Err(PolicyError::NoApprover));
        let not_admin = CompanyPolicy {
            reset_approvers: vec!["bob".into()],
            ..required()
        };
        assert_eq!(
            check(&not_admin, &Floor::none()),
            Err(PolicyError::NotAnApprover("bob".into()))
        );
        // Off needs neither.
        let off = CompanyPolicy {
            mode: Mode::Off,
            methods: Methods::new(),
            reset_approvers: vec![],
            ..required()
        };
        assert_eq!(check(&off, &Floor::none()), Ok(()));
    }

    #[test]
    fn what_the_reseller_enforces_cannot_be_loosened() {
        let enforced = Floor::of(None, Some(None));
        let off = CompanyPolicy {
            mode: Mode::Off,
            ..required()
        };
        let error = check(&off, &enforced).unwrap_err().to_string();
        assert!(error.contains("reseller Acme enforces MFA"), "{error}");
        let skip = CompanyPolicy {
            allow_skip: true,
            ..required()
        };
        let error = check(&skip, &enforced).unwrap_err().to_string();
        assert!(error.contains("cannot skip"), "{error}");
        let minimum = Floor::of(Some((Mode::Optional, Some(totp()))), None);
        let error = check(&off, &minimum).unwrap_err().to_string();
        assert!(error.contains("at least `optional`"), "{error}");
    }

    #[test]
    fn methods_must_be_available_and_within_the_resellers_list() {
        let email = CompanyPolicy {
            methods: [Method::Email].into_iter().collect(),
            ..required()
        };
        assert!(matches!(
            check(&email, &Floor::none()),
            Err(PolicyError::Unsupported { .. })
        ));
        let floor = Floor::of(Some((Mode::Off, Some([Method::Sms].into_iter().collect()))), None);
        let error = check(&required(), &floor).unwrap_err().to_string();
        assert!(error.contains("allows only sms"), "{error}");
    }
}
