//! Gathering a user's policy inputs from the store.

use super::{
    CompanyPolicy, Decision, Effective, Floor, Method, Methods, Request, UserState, decide, effective,
};
use crate::clock::UnixTime;
use crate::model::{Company, Reseller, User};
use crate::storage::{Factor, PolicyContext, Store, StoreError, StoreResult, UserMfa};

/// The methods this build can enrol and challenge (WebAuthn is not built yet).
pub fn supported_methods() -> Methods {
    [Method::Totp, Method::Email, Method::Sms].into_iter().collect()
}

/// The floor a company's reseller imposes on it.
pub async fn floor_for(store: &Store, company: &Company) -> StoreResult<Floor> {
    let minimum = store.get_reseller_minimum(&company.reseller_id).await?;
    let enforcement = store.get_enforcement(&company.id).await?;
    Ok(Floor::of(minimum, enforcement.map(|e| e.methods)))
}

/// Everything the decision for one user depends on.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub company: Company,
    pub reseller: Reseller,
    pub policy: CompanyPolicy,
    pub floor: Floor,
    pub effective: Effective,
    pub mfa: UserMfa,
    pub factors: Vec<Factor>,
}

impl Inputs {
    /// One statement: the tenancy and MFA settings and the user's factors.
    pub async fn load(store: &Store, user: &User) -> StoreResult<Inputs> {
        let (context, factors) = store
            .policy_inputs(&user.id, &user.company_id)
            .await?
            .ok_or(StoreError::Missing("company"))?;
        Ok(Inputs::new(context, factors))
    }

    pub fn new(context: PolicyContext, factors: Vec<Factor>) -> Inputs {
        let policy = context.policy.unwrap_or_default();
        let floor = Floor::of(context.minimum, context.enforcement.map(|e| e.methods));
        let effective = effective(&policy, &floor);
        Inputs {
            company: context.company,
            reseller: context.reseller,
            policy,
            floor,
            effective,
            mfa: context.mfa,
            factors,
        }
    }

    /// Confirmed factors, by method.
    pub fn confirmed(&self) -> impl Iterator<Item = (&Factor, Method)> {
        self.factors
            .iter()
            .filter(|f| f.confirmed_at.is_some())
            .filter_map(|f| f.kind.parse::<Method>().ok().map(|m| (f, m)))
    }

    pub fn user_state(&self) -> UserState {
        user_state(&self.mfa, self.confirmed().map(|(_, m)| m).collect())
    }

    pub fn decide(&self, request: &Request, now: UnixTime) -> Decision {
        decide(&self.effective, &self.user_state(), request, now)
    }

    /// The decision the current policy takes, when a login that produced `evidence` does
    /// not satisfy it. None: the evidence is enough. A login that skipped enrolment is
    /// judged by the user's state before that skip.
    pub fn unmet(&self, request: &Request, evidence: &super::Evidence, now: UnixTime) -> Option<Decision> {
        unmet(&self.effective, self.user_state(), request, evidence, now)
    }
}

fn user_state(mfa: &UserMfa, factors: Methods) -> UserState {
    UserState {
        opt_out: mfa.opt_out.clone(),
        skipped: mfa.skipped_at.is_some(),
        skip_count: u32::try_from(mfa.skip_count).unwrap_or(u32::MAX),
        factors,
    }
}

fn unmet(
    effective: &Effective,
    mut state: UserState,
    request: &Request,
    evidence: &super::Evidence,
    now: UnixTime,
) -> Option<Decision> {
    if evidence.skipped {
        state = state.before_skip();
    }
    let decision = decide(effective, &state, request, now);
    (!super::satisfied(&decision, evidence)).then_some(decision)
}

/// [`Inputs::unmet`] on a policy context read together with the methods of the user's
/// confirmed factors (the refresh grant reads no factor's secret, so no factor rows).
pub fn unmet_in_context(
    context: PolicyContext,
    confirmed: &[String],
    request: &Request,
    evidence: &super::Evidence,
    now: UnixTime,
) -> Option<Decision> {
    let factors = confirmed
        .iter()
        .filter_map(|kind| kind.parse::<Method>().ok())
        .collect();
    let inputs = Inputs::new(context, Vec::new());
    unmet(
        &inputs.effective,
        user_state(&inputs.mfa, factors),
        request,
        evidence,
        now,
    )
}
