//! The MFA policy: what a company sets, what its reseller imposes, and the one function
//! that decides, for one login, whether the user passes, is challenged, must enrol, may
//! enrol or skip, or is refused.
//!
//! Everything here is pure: [`effective`] merges the company's settings with the
//! reseller's floor, [`decide`] takes that, the user's state, the request and `now`, and
//! [`satisfied`] says whether what happened during a login meets a decision. The login
//! pages, the account pages and the token endpoint all ask these functions; nothing else
//! decides.

pub mod admin;
pub mod load;
mod validate;

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::clock::UnixTime;
use crate::model::Invalid;

pub use validate::{PolicyError, validate_company_policy};

/// `off < optional < required`: a floor can only raise the mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Off,
    Optional,
    Required,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Off, Mode::Optional, Mode::Required];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Optional => "optional",
            Mode::Required => "required",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        match s {
            "off" => Ok(Mode::Off),
            "optional" => Ok(Mode::Optional),
            "required" => Ok(Mode::Required),
            other => Err(Invalid::new(format!(
                "unknown MFA mode `{other}` (expected off, optional or required)"
            ))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Totp,
    Email,
    Sms,
    Webauthn,
}

impl Method {
    pub const ALL: [Method; 4] = [Method::Totp, Method::Email, Method::Sms, Method::Webauthn];

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Totp => "totp",
            Method::Email => "email",
            Method::Sms => "sms",
            Method::Webauthn => "webauthn",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Method {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        match s {
            "totp" => Ok(Method::Totp),
            "email" => Ok(Method::Email),
            "sms" => Ok(Method::Sms),
            "webauthn" => Ok(Method::Webauthn),
            other => Err(Invalid::new(format!(
                "unknown MFA method `{other}` (expected totp, email, sms or webauthn)"
            ))),
        }
    }
}

pub type Methods = BTreeSet<Method>;

/// Parses `totp,email` (commas or spaces).
pub fn parse_methods(input: &str) -> Result<Methods, Invalid> {
    input
        .split([',', ' '])
        .filter(|m| !m.is_empty())
        .map(str::parse)
        .collect()
}

pub fn methods_string(methods: &Methods) -> String {
    methods.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(",")
}

/// A company's own settings (DESIGN.md, "MFA policy").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompanyPolicy {
    pub mode: Mode,
    pub methods: Methods,
    pub allow_skip: bool,
    /// How many times a user may skip enrolment; `None`: the skip is remembered.
    pub skip_limit: Option<u32>,
    /// After this time nobody may skip.
    pub skip_deadline: Option<UnixTime>,
    pub allow_self_reset: bool,
    pub reset_approvers: Vec<String>,
    pub keep_enrollments_when_off: bool,
}

impl Default for CompanyPolicy {
    /// A new company: MFA off until an administrator turns it on.
    fn default() -> Self {
        Self {
            mode: Mode::Off,
            methods: [Method::Totp].into_iter().collect(),
            allow_skip: false,
            skip_limit: None,
            skip_deadline: None,
            allow_self_reset: false,
            reset_approvers: Vec::new(),
            keep_enrollments_when_off: true,
        }
    }
}

/// What the reseller imposes on a company: its minimum for every company, raised to
/// `required` (with an optionally narrower method list) where it enforces MFA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Floor {
    pub mode: Mode,
    /// `None`: any method.
    pub methods: Option<Methods>,
}

impl Floor {
    pub fn none() -> Self {
        Self {
            mode: Mode::Off,
            methods: None,
        }
    }

    /// Combines the reseller-wide minimum with an enforcement on this company.
    pub fn of(minimum: Option<(Mode, Option<Methods>)>, enforcement: Option<Option<Methods>>) -> Self {
        let (mut mode, mut methods) = minimum.unwrap_or((Mode::Off, None));
        if let Some(narrowed) = enforcement {
            mode = Mode::Required;
            methods = intersect_optional(methods, narrowed);
        }
        Self { mode, methods }
    }

    /// A floor of `required` is enforcement: no skip and no opt-out.
    pub fn enforces(&self) -> bool {
        self.mode == Mode::Required
    }

    pub fn allows(&self, method: Method) -> bool {
        self.methods.as_ref().is_none_or(|m| m.contains(&method))
    }
}

fn intersect_optional(a: Option<Methods>, b: Option<Methods>) -> Option<Methods> {
    match (a, b) {
        (None, other) | (other, None) => other,
        (Some(a), Some(b)) => Some(a.intersection(&b).copied().collect()),
    }
}

/// The policy that applies to a company's users: its own settings, never below the floor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Effective {
    pub mode: Mode,
    pub methods: Methods,
    pub allow_skip: bool,
    pub skip_limit: Option<u32>,
    pub skip_deadline: Option<UnixTime>,
    pub opt_out_allowed: bool,
    pub enforced: bool,
}

pub fn effective(company: &CompanyPolicy, floor: &Floor) -> Effective {
    let enforced = floor.enforces();
    let methods = match &floor.methods {
        None => company.methods.clone(),
        Some(allowed) => {
            let both: Methods = company.methods.intersection(allowed).copied().collect();
            // The reseller narrowed the list past the company's choice: the reseller wins.
            if both.is_empty() { allowed.clone() } else { both }
        }
    };
    Effective {
        mode: company.mode.max(floor.mode),
        methods,
        allow_skip: company.allow_skip && !enforced,
        skip_limit: company.skip_limit,
        skip_deadline: company.skip_deadline,
        opt_out_allowed: !enforced,
        enforced,
    }
}

/// An administrator's exemption of one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OptOut {
    pub reason: String,
    pub expires_at: Option<UnixTime>,
}

impl OptOut {
    pub fn active(&self, now: UnixTime) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }
}

/// What the policy needs to know about one user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserState {
    pub opt_out: Option<OptOut>,
    /// The user chose "Skip for now" (remembered until enrolment or a reset).
    pub skipped: bool,
    pub skip_count: u32,
    /// Confirmed factors.
    pub factors: Methods,
}

impl UserState {
    /// The state before this login's own skip, for re-checking a login that skipped.
    pub fn before_skip(mut self) -> Self {
        self.skipped = false;
        self.skip_count = self.skip_count.saturating_sub(1);
        self
    }
}

/// What the relying party asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// `acr_values` asks for multi-factor authentication and does not accept less.
    pub wants_mfa: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefuseReason {
    /// The client asked for MFA, but MFA is off for the user's company.
    MfaUnavailable,
    /// No method is allowed, so nobody can enrol (a policy that should not save).
    NoMethodAllowed,
}

impl RefuseReason {
    pub fn describe(self) -> &'static str {
        match self {
            RefuseReason::MfaUnavailable => {
                "the client requires multi-factor authentication, which is not available for the user's organization"
            }
            RefuseReason::NoMethodAllowed => "no multi-factor method is allowed for the user's organization",
        }
    }
}

/// The decision for one login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// The password is enough.
    Pass,
    /// Ask for one of these enrolled factors.
    Challenge {
        methods: Methods,
    },
    /// The user has no usable factor and must enrol one of these.
    MustEnrol {
        methods: Methods,
    },
    /// The user may enrol one of these, or skip for now.
    MayEnrol {
        methods: Methods,
    },
    Refuse {
        reason: RefuseReason,
    },
}

impl Decision {
    pub fn name(&self) -> &'static str {
        match self {
            Decision::Pass => "pass",
            Decision::Challenge { .. } => "challenge",
            Decision::MustEnrol { .. } => "must_enrol",
            Decision::MayEnrol { .. } => "may_enrol",
            Decision::Refuse { .. } => "refuse",
        }
    }
}

/// What skipping enrolment amounts to for this user now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    /// Skipped before and the skip is remembered: no prompt.
    Remembered,
    /// The enrolment page offers "Skip for now".
    Offered,
    /// No (more) skipping.
    Exhausted,
}

fn skip(effective: &Effective, user: &UserState, now: UnixTime) -> Skip {
    if !effective.allow_skip || effective.skip_deadline.is_some_and(|deadline| now >= deadline) {
        return Skip::Exhausted;
    }
    match effective.skip_limit {
        Some(limit) if user.skip_count >= limit => Skip::Exhausted,
        // A limited number of skips: ask every time until they run out.
        Some(_) => Skip::Offered,
        None if user.skipped => Skip::Remembered,
        None => Skip::Offered,
    }
}

/// The one place that decides what a login needs.
pub fn decide(effective: &Effective, user: &UserState, request: &Request, now: UnixTime) -> Decision {
    if effective.mode == Mode::Off {
        // Nobody is challenged, even users who enrolled (seed 000).
        return if request.wants_mfa {
            Decision::Refuse {
                reason: RefuseReason::MfaUnavailable,
            }
        } else {
            Decision::Pass
        };
    }
    let opted_out = effective.opt_out_allowed && user.opt_out.as_ref().is_some_and(|o| o.active(now));
    let usable: Methods = user.factors.intersection(&effective.methods).copied().collect();
    if !usable.is_empty() {
        if opted_out && !request.wants_mfa {
            return Decision::Pass;
        }
        return Decision::Challenge { methods: usable };
    }
    if effective.methods.is_empty() {
        return Decision::Refuse {
            reason: RefuseReason::NoMethodAllowed,
        };
    }
    let methods = effective.methods.clone();
    if request.wants_mfa {
        return Decision::MustEnrol { methods };
    }
    if opted_out {
        return Decision::Pass;
    }
    match effective.mode {
        Mode::Off | Mode::Optional => Decision::Pass,
        Mode::Required => match skip(effective, user, now) {
            Skip::Remembered => Decision::Pass,
            Skip::Offered => Decision::MayEnrol { methods },
            Skip::Exhausted => Decision::MustEnrol { methods },
        },
    }
}

/// What happened during a login, as far as the policy cares.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// RFC 8176 method references; a verified second factor adds `mfa`.
    pub amr: Vec<String>,
    /// The user chose "Skip for now" during this login.
    pub skipped: bool,
}

impl Evidence {
    pub fn has_mfa(&self) -> bool {
        self.amr.iter().any(|m| m == "mfa")
    }
}

/// Whether a login that produced `evidence` meets `decision`.
pub fn satisfied(decision: &Decision, evidence: &Evidence) -> bool {
    match decision {
        Decision::Pass => true,
        Decision::Challenge { .. } | Decision::MustEnrol { .. } => evidence.has_mfa(),
        Decision::MayEnrol { .. } => evidence.has_mfa() || evidence.skipped,
        Decision::Refuse { .. } => false,
    }
}

/// `acr_values` that ask for MFA: ours, and the OpenID PAPE multi-factor policy URI.
pub const MFA_ACR_VALUES: &[&str] = &[
    crate::tokens::claims::ACR_MFA,
    "http://schemas.openid.net/pape/policies/2007/06/multi-factor",
];

/// A request wants MFA when its `acr_values` name an MFA value and not the password-only
/// one (`acr_values` lists acceptable values; any one of them will do).
pub fn wants_mfa(acr_values: &[String]) -> bool {
    acr_values.iter().any(|v| MFA_ACR_VALUES.contains(&v.as_str()))
        && !acr_values
            .iter()
            .any(|v| v == crate::tokens::claims::ACR_PASSWORD)
}

#[cfg(test)]
mod tests;
