//! The login transaction: an explicit state machine, persisted between pages.
//!
//! ```text
//!                      Pass ─────────────────────────────────────────┐
//! Password ──accepted──┼─ Challenge ─▶ SecondFactor ──passed───────────┤
//!                      │                  └─ 5 wrong codes ─▶ Failed   ├─▶ Consent ─▶ Done
//!                      ├─ Must/MayEnrol ─▶ Enrol ──enrolled─▶ RecoveryCodes ─saved─┤       └─▶ Refused
//!                      │                    └─ skipped (MayEnrol only) ────────────┘
//!                      └─ Refuse ─▶ Refused
//! ```
//!
//! [`step`] is pure: the handlers gather the facts (was the password right, what did the
//! policy decide, was the code right), feed them in as an [`Event`], persist the new state
//! (guarded by the transaction's version, so a replayed form cannot step twice) and act on
//! it. The MFA decision taken for the login travels in [`Authenticated`] and is checked
//! again, against the current policy, before a code is issued and when it is exchanged.

pub mod throttle;

use serde::{Deserialize, Serialize};

use crate::clock::UnixTime;
use crate::policy::{Decision, Evidence, Method};
use crate::tokens::claims::ACR_MFA;

/// Wrong second-factor codes that end a login.
pub const MAX_CODE_ATTEMPTS: u32 = 5;

/// Who has been authenticated, how and when, and what the MFA policy asked for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Authenticated {
    pub user_id: String,
    pub auth_time: UnixTime,
    /// RFC 8176 method references, in the order they were satisfied.
    pub amr: Vec<String>,
    pub acr: String,
    /// The browser session this login continues (single sign-on), if any.
    pub session_id: Option<String>,
    /// The MFA decision taken for this login.
    pub decision: Decision,
    /// The user chose "Skip for now".
    pub skipped: bool,
    /// A third-party client still needs the user's consent.
    pub needs_consent: bool,
}

impl Authenticated {
    pub fn evidence(&self) -> Evidence {
        Evidence {
            amr: self.amr.clone(),
            skipped: self.skipped,
        }
    }

    /// Records a verified second factor (`otp`, `rc`, ...).
    fn with_factor(mut self, method: &str) -> Self {
        if !self.amr.iter().any(|m| m == method) {
            self.amr.push(method.to_owned());
        }
        if !self.amr.iter().any(|m| m == "mfa") {
            self.amr.push("mfa".into());
        }
        self.acr = ACR_MFA.into();
        self
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum LoginState {
    /// Waiting for the login name and password.
    Password,
    /// Waiting for a code from an enrolled factor (or a recovery code).
    SecondFactor {
        auth: Authenticated,
        failures: u32,
        /// The method the user chose among several enrolled ones (None: not chosen yet,
        /// or only one is enrolled).
        #[serde(default)]
        method: Option<Method>,
        /// A code was sent to the chosen email or SMS factor for this login.
        #[serde(default)]
        sent: bool,
    },
    /// Waiting for the user to set up a new factor, or skip.
    Enrol {
        auth: Authenticated,
        /// The pending TOTP factor, when the policy allows TOTP.
        factor_id: Option<String>,
        /// The method the user chose among several allowed ones.
        #[serde(default)]
        method: Option<Method>,
        /// The pending email or SMS factor a code was sent to.
        #[serde(default)]
        otp_factor: Option<String>,
    },
    /// Showing the recovery codes of a first enrolment until the user says they saved them.
    /// The codes are sealed under the master key (bound to the login id).
    RecoveryCodes {
        auth: Authenticated,
        sealed_codes: String,
    },
    /// Waiting for the user to allow a third-party client the requested scopes.
    Consent { auth: Authenticated },
    /// Finished: an authorization code was issued for `auth`. Terminal.
    Done { auth: Authenticated },
    /// Refused: consent denied, or (`policy`) the MFA policy cannot be met. Terminal.
    Refused { reason: String, policy: bool },
    /// Too many wrong codes. Terminal.
    Failed,
}

impl LoginState {
    pub fn name(&self) -> &'static str {
        match self {
            LoginState::Password => "password",
            LoginState::SecondFactor { .. } => "second factor",
            LoginState::Enrol { .. } => "enrolment",
            LoginState::RecoveryCodes { .. } => "recovery codes",
            LoginState::Consent { .. } => "consent",
            LoginState::Done { .. } => "done",
            LoginState::Refused { .. } => "refused",
            LoginState::Failed => "failed",
        }
    }

    pub fn auth(&self) -> Option<&Authenticated> {
        match self {
            LoginState::SecondFactor { auth, .. }
            | LoginState::Enrol { auth, .. }
            | LoginState::RecoveryCodes { auth, .. }
            | LoginState::Consent { auth }
            | LoginState::Done { auth } => Some(auth),
            LoginState::Password | LoginState::Refused { .. } | LoginState::Failed => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The first factor is established (a password, or an existing session) and the policy
    /// decided `auth.decision`. `pending_factor` is the factor created for enrolment, when
    /// the decision asks for one.
    Authenticated {
        auth: Authenticated,
        pending_factor: Option<String>,
    },
    /// The user picked a method (None: back to the list). `sent`: a code went out to it.
    ChoseMethod {
        method: Option<Method>,
        sent: bool,
    },
    /// A code was sent to the new, pending email or SMS factor `factor_id`.
    CodeSent {
        factor_id: String,
    },
    /// A second factor was verified; `method` is its RFC 8176 value.
    SecondFactorPassed {
        method: &'static str,
    },
    SecondFactorFailed,
    /// A new factor was confirmed; `sealed_codes` carries the recovery codes of a first
    /// enrolment.
    Enrolled {
        method: &'static str,
        sealed_codes: Option<String>,
    },
    Skipped,
    CodesSaved,
    ConsentGiven,
    ConsentRefused,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{event}` does not apply to a login waiting for {state}")]
pub struct FlowError {
    pub state: &'static str,
    pub event: &'static str,
}

impl Event {
    fn name(&self) -> &'static str {
        match self {
            Event::Authenticated { .. } => "authenticated",
            Event::ChoseMethod { .. } => "method chosen",
            Event::CodeSent { .. } => "code sent",
            Event::SecondFactorPassed { .. } => "second factor passed",
            Event::SecondFactorFailed => "second factor failed",
            Event::Enrolled { .. } => "enrolled",
            Event::Skipped => "skipped",
            Event::CodesSaved => "codes saved",
            Event::ConsentGiven => "consent given",
            Event::ConsentRefused => "consent refused",
        }
    }
}

/// Where a login goes once the first factor is established, by the policy's decision.
pub fn route(auth: Authenticated, pending_factor: Option<String>) -> LoginState {
    match (&auth.decision, pending_factor) {
        (Decision::Pass, _) => after_mfa(auth),
        (Decision::Challenge { .. }, _) => LoginState::SecondFactor {
            auth,
            failures: 0,
            method: None,
            sent: false,
        },
        (Decision::MustEnrol { .. } | Decision::MayEnrol { .. }, factor_id) => LoginState::Enrol {
            auth,
            factor_id,
            method: None,
            otp_factor: None,
        },
        (Decision::Refuse { reason }, _) => LoginState::Refused {
            reason: reason.describe().into(),
            policy: true,
        },
    }
}

/// After the MFA steps: consent if needed, else done.
fn after_mfa(auth: Authenticated) -> LoginState {
    if auth.needs_consent {
        LoginState::Consent { auth }
    } else {
        LoginState::Done { auth }
    }
}

/// The next state, or an error when the event does not apply to the current state (a
/// page posted out of order, or a replay).
pub fn step(state: &LoginState, event: Event) -> Result<LoginState, FlowError> {
    let refuse = |state: &LoginState, event: &Event| FlowError {
        state: state.name(),
        event: event.name(),
    };
    match (state, event) {
        (LoginState::Password, Event::Authenticated { auth, pending_factor }) => {
            Ok(route(auth, pending_factor))
        }
        (LoginState::SecondFactor { auth, .. }, Event::SecondFactorPassed { method }) => {
            Ok(after_mfa(auth.clone().with_factor(method)))
        }
        (
            LoginState::SecondFactor {
                auth,
                failures,
                method,
                sent,
            },
            Event::SecondFactorFailed,
        ) => {
            let failures = failures + 1;
            Ok(if failures >= MAX_CODE_ATTEMPTS {
                LoginState::Failed
            } else {
                LoginState::SecondFactor {
                    auth: auth.clone(),
                    failures,
                    method: *method,
                    sent: *sent,
                }
            })
        }
        (LoginState::SecondFactor { auth, failures, .. }, Event::ChoseMethod { method, sent }) => {
            Ok(LoginState::SecondFactor {
                auth: auth.clone(),
                failures: *failures,
                method,
                sent,
            })
        }
        (LoginState::Enrol { auth, factor_id, .. }, Event::ChoseMethod { method, .. }) => {
            Ok(LoginState::Enrol {
                auth: auth.clone(),
                factor_id: factor_id.clone(),
                method,
                otp_factor: None,
            })
        }
        (
            LoginState::Enrol {
                auth,
                factor_id,
                method,
                ..
            },
            Event::CodeSent { factor_id: sent_to },
        ) => Ok(LoginState::Enrol {
            auth: auth.clone(),
            factor_id: factor_id.clone(),
            method: *method,
            otp_factor: Some(sent_to),
        }),
        (LoginState::Enrol { auth, .. }, Event::Enrolled { method, sealed_codes }) => {
            let auth = auth.clone().with_factor(method);
            Ok(match sealed_codes {
                Some(sealed_codes) => LoginState::RecoveryCodes { auth, sealed_codes },
                None => after_mfa(auth),
            })
        }
        (LoginState::Enrol { auth, .. }, Event::Skipped)
            if matches!(auth.decision, Decision::MayEnrol { .. }) =>
        {
            let mut auth = auth.clone();
            auth.skipped = true;
            Ok(after_mfa(auth))
        }
        (LoginState::RecoveryCodes { auth, .. }, Event::CodesSaved) => Ok(after_mfa(auth.clone())),
        (LoginState::Consent { auth }, Event::ConsentGiven) => Ok(LoginState::Done { auth: auth.clone() }),
        (LoginState::Consent { .. }, Event::ConsentRefused) => Ok(LoginState::Refused {
            reason: "the user denied the request".into(),
            policy: false,
        }),
        (state, event) => Err(refuse(state, &event)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Method, Methods, RefuseReason};

    fn methods() -> Methods {
        [Method::Totp].into_iter().collect()
    }

    fn auth(decision: Decision) -> Authenticated {
        Authenticated {
            user_id: "u1".into(),
            auth_time: 100,
            amr: vec!["pwd".into()],
            acr: "urn:portcullis:acr:pwd".into(),
            session_id: None,
            decision,
            skipped: false,
            needs_consent: false,
        }
    }

    fn authenticated(decision: Decision, pending: Option<&str>) -> Event {
        Event::Authenticated {
            auth: auth(decision),
            pending_factor: pending.map(str::to_owned),
        }
    }

    #[test]
    fn the_decision_routes_the_login() {
        assert!(matches!(
            step(&LoginState::Password, authenticated(Decision::Pass, None)),
            Ok(LoginState::Done { .. })
        ));
        assert!(matches!(
            step(
                &LoginState::Password,
                authenticated(Decision::Challenge { methods: methods() }, None)
            ),
            Ok(LoginState::SecondFactor { failures: 0, .. })
        ));
        assert!(matches!(
            step(
                &LoginState::Password,
                authenticated(Decision::MustEnrol { methods: methods() }, Some("f1"))
            ),
            Ok(LoginState::Enrol { .. })
        ));
        assert!(matches!(
            step(
                &LoginState::Password,
                authenticated(
                    Decision::Refuse {
                        reason: RefuseReason::MfaUnavailable
                    },
                    None
                )
            ),
            Ok(LoginState::Refused { .. })
        ));
        let mut consent = auth(Decision::Pass);
        consent.needs_consent = true;
        assert!(matches!(
            step(
                &LoginState::Password,
                Event::Authenticated {
                    auth: consent,
                    pending_factor: None
                }
            ),
            Ok(LoginState::Consent { .. })
        ));
    }

    #[test]
    fn a_passed_challenge_records_the_factor_and_mfa() {
        let state = LoginState::SecondFactor {
            auth: auth(Decision::Challenge { methods: methods() }),
            failures: 2,
            method: None,
            sent: false,
        };
        let Ok(LoginState::Done { auth }) = step(&state, Event::SecondFactorPassed { method: "otp" }) else {
            panic!("expected done");
        };
        assert_eq!(auth.amr, vec!["pwd", "otp", "mfa"]);
        assert_eq!(auth.acr, ACR_MFA);
        assert!(crate::policy::satisfied(&auth.decision, &auth.evidence()));
    }

    #[test]
    fn five_wrong_codes_end_the_login() {
        let mut state = LoginState::SecondFactor {
            auth: auth(Decision::Challenge { methods: methods() }),
            failures: 0,
            method: None,
            sent: false,
        };
        for _ in 0..4 {
            state = step(&state, Event::SecondFactorFailed).unwrap();
            assert!(matches!(state, LoginState::SecondFactor { .. }));
        }
        assert_eq!(step(&state, Event::SecondFactorFailed), Ok(LoginState::Failed));
        assert!(step(&LoginState::Failed, Event::SecondFactorPassed { method: "otp" }).is_err());
    }

    #[test]
    fn only_may_enrol_can_be_skipped() {
        let may = LoginState::Enrol {
            auth: auth(Decision::MayEnrol { methods: methods() }),
            factor_id: Some("f".into()),
            method: None,
            otp_factor: None,
        };
        let Ok(LoginState::Done { auth: done }) = step(&may, Event::Skipped) else {
            panic!("expected done");
        };
        assert!(done.skipped);
        let must = LoginState::Enrol {
            auth: auth(Decision::MustEnrol { methods: methods() }),
            factor_id: Some("f".into()),
            method: None,
            otp_factor: None,
        };
        assert!(step(&must, Event::Skipped).is_err());
    }

    #[test]
    fn a_first_enrolment_shows_recovery_codes_before_continuing() {
        let state = LoginState::Enrol {
            auth: auth(Decision::MustEnrol { methods: methods() }),
            factor_id: Some("f".into()),
            method: None,
            otp_factor: None,
        };
        let codes = step(
            &state,
            Event::Enrolled {
                method: "otp",
                sealed_codes: Some("sealed".into()),
            },
        )
        .unwrap();
        assert!(matches!(codes, LoginState::RecoveryCodes { .. }));
        assert!(matches!(
            step(&codes, Event::CodesSaved),
            Ok(LoginState::Done { .. })
        ));
    }

    #[test]
    fn pages_posted_out_of_order_are_refused() {
        // Straight to a later step.
        assert!(step(&LoginState::Password, Event::SecondFactorPassed { method: "otp" }).is_err());
        assert!(step(&LoginState::Password, Event::CodesSaved).is_err());
        assert!(step(&LoginState::Password, Event::Skipped).is_err());
        assert!(step(&LoginState::Password, Event::ConsentGiven).is_err());
        // Replaying an earlier step.
        let done = LoginState::Done {
            auth: auth(Decision::Pass),
        };
        assert!(step(&done, authenticated(Decision::Pass, None)).is_err());
        assert!(step(&done, Event::SecondFactorPassed { method: "otp" }).is_err());
        let challenge = LoginState::SecondFactor {
            auth: auth(Decision::Challenge { methods: methods() }),
            failures: 0,
            method: None,
            sent: false,
        };
        assert!(step(&challenge, authenticated(Decision::Pass, None)).is_err());
        assert!(step(&challenge, Event::Skipped).is_err());
    }

    #[test]
    fn choosing_a_method_keeps_the_count_of_wrong_codes() {
        let state = LoginState::SecondFactor {
            auth: auth(Decision::Challenge { methods: methods() }),
            failures: 3,
            method: None,
            sent: false,
        };
        let chosen = step(
            &state,
            Event::ChoseMethod {
                method: Some(Method::Sms),
                sent: true,
            },
        )
        .unwrap();
        let LoginState::SecondFactor {
            failures,
            method,
            sent,
            ..
        } = &chosen
        else {
            panic!("expected the challenge");
        };
        assert_eq!((*failures, *method, *sent), (3, Some(Method::Sms), true));
        let failed = step(&chosen, Event::SecondFactorFailed).unwrap();
        assert!(matches!(
            failed,
            LoginState::SecondFactor {
                failures: 4,
                sent: true,
                ..
            }
        ));
        let Ok(LoginState::Done { auth }) = step(&failed, Event::SecondFactorPassed { method: "sms" }) else {
            panic!("expected done");
        };
        assert_eq!(auth.amr, vec!["pwd", "sms", "mfa"]);
    }

    #[test]
    fn an_enrolment_sends_a_code_only_after_a_method_is_chosen() {
        let state = LoginState::Enrol {
            auth: auth(Decision::MustEnrol { methods: methods() }),
            factor_id: None,
            method: None,
            otp_factor: None,
        };
        let chosen = step(
            &state,
            Event::ChoseMethod {
                method: Some(Method::Email),
                sent: false,
            },
        )
        .unwrap();
        let sent = step(
            &chosen,
            Event::CodeSent {
                factor_id: "f2".into(),
            },
        )
        .unwrap();
        assert!(
            matches!(&sent, LoginState::Enrol { otp_factor: Some(f), method: Some(Method::Email), .. } if f == "f2")
        );
        // Choosing again starts over: the pending factor is forgotten.
        let again = step(
            &sent,
            Event::ChoseMethod {
                method: None,
                sent: false,
            },
        )
        .unwrap();
        assert!(matches!(
            again,
            LoginState::Enrol {
                otp_factor: None,
                method: None,
                ..
            }
        ));
        assert!(
            step(
                &LoginState::Password,
                Event::CodeSent {
                    factor_id: "f".into()
                }
            )
            .is_err()
        );
    }

    #[test]
    fn states_stored_before_email_and_sms_still_load() {
        let json = r#"{"step":"enrol","auth":{"user_id":"u1","auth_time":1,"amr":["pwd"],"acr":"a","session_id":null,
            "decision":{"decision":"must_enrol","methods":["totp"]},"skipped":false,"needs_consent":false},"factor_id":"f"}"#;
        let state: LoginState = serde_json::from_str(json).unwrap();
        assert!(matches!(state, LoginState::Enrol { factor_id: Some(ref f), method: None, .. } if f == "f"));
    }

    #[test]
    fn states_round_trip_through_json() {
        let states = [
            LoginState::Password,
            LoginState::SecondFactor {
                auth: auth(Decision::Challenge { methods: methods() }),
                failures: 1,
                method: Some(Method::Email),
                sent: true,
            },
            LoginState::Enrol {
                auth: auth(Decision::MayEnrol { methods: methods() }),
                factor_id: Some("f".into()),
                method: Some(Method::Sms),
                otp_factor: Some("g".into()),
            },
            LoginState::RecoveryCodes {
                auth: auth(Decision::Pass),
                sealed_codes: "s".into(),
            },
            LoginState::Consent {
                auth: auth(Decision::Pass),
            },
            LoginState::Done {
                auth: auth(Decision::Pass),
            },
            LoginState::Refused {
                reason: "r".into(),
                policy: false,
            },
            LoginState::Failed,
        ];
        for state in states {
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(serde_json::from_str::<LoginState>(&json).unwrap(), state);
        }
    }
}
