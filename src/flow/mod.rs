//! The login transaction: an explicit state machine, persisted between pages.
//!
//! ```text
//! Password --PasswordAccepted--> Consent --ConsentGiven--> Done
//!     |                             \--ConsentRefused--> Refused
//!     \------(no consent needed)--------------------------> Done
//! ```
//!
//! [`step`] is pure: the handlers gather the facts (was the password right, does this
//! client need consent), feed them in as an [`Event`], persist the new state (guarded by
//! the transaction's version, so a replayed form cannot step twice) and act on it. The
//! second-factor and enrolment steps slot in between `Password` and `Consent`.

pub mod throttle;

use serde::{Deserialize, Serialize};

use crate::clock::UnixTime;

/// Who has been authenticated, how and when.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Authenticated {
    pub user_id: String,
    pub auth_time: UnixTime,
    /// RFC 8176 method references, in the order they were satisfied.
    pub amr: Vec<String>,
    pub acr: String,
    /// The browser session this login continues (single sign-on), if any.
    pub session_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum LoginState {
    /// Waiting for the login name and password.
    Password,
    /// Waiting for the user to allow a third-party client the requested scopes.
    Consent { auth: Authenticated },
    /// Finished: an authorization code was issued for `auth`. Terminal.
    Done { auth: Authenticated },
    /// The user refused consent. Terminal.
    Refused,
}

impl LoginState {
    pub fn name(&self) -> &'static str {
        match self {
            LoginState::Password => "password",
            LoginState::Consent { .. } => "consent",
            LoginState::Done { .. } => "done",
            LoginState::Refused => "refused",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The password was right for `auth.user_id`; `needs_consent` says whether the client
    /// still needs the user's consent for the requested scopes.
    PasswordAccepted {
        auth: Authenticated,
        needs_consent: bool,
    },
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
            Event::PasswordAccepted { .. } => "password accepted",
            Event::ConsentGiven => "consent given",
            Event::ConsentRefused => "consent refused",
        }
    }
}

/// The next state, or an error when the event does not apply to the current state (a
/// page posted out of order, or a replay).
pub fn step(state: &LoginState, event: Event) -> Result<LoginState, FlowError> {
    match (state, event) {
        (LoginState::Password, Event::PasswordAccepted { auth, needs_consent }) => Ok(if needs_consent {
            LoginState::Consent { auth }
        } else {
            LoginState::Done { auth }
        }),
        (LoginState::Consent { auth }, Event::ConsentGiven) => Ok(LoginState::Done { auth: auth.clone() }),
        (LoginState::Consent { .. }, Event::ConsentRefused) => Ok(LoginState::Refused),
        (state, event) => Err(FlowError {
            state: state.name(),
            event: event.name(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Authenticated {
        Authenticated {
            user_id: "u1".into(),
            auth_time: 100,
            amr: vec!["pwd".into()],
            acr: "urn:portcullis:acr:pwd".into(),
            session_id: None,
        }
    }

    #[test]
    fn password_leads_to_done_or_consent() {
        assert_eq!(
            step(
                &LoginState::Password,
                Event::PasswordAccepted {
                    auth: auth(),
                    needs_consent: false
                }
            ),
            Ok(LoginState::Done { auth: auth() })
        );
        let consent = step(
            &LoginState::Password,
            Event::PasswordAccepted {
                auth: auth(),
                needs_consent: true,
            },
        )
        .unwrap();
        assert_eq!(consent, LoginState::Consent { auth: auth() });
        assert_eq!(
            step(&consent, Event::ConsentGiven),
            Ok(LoginState::Done { auth: auth() })
        );
        assert_eq!(step(&consent, Event::ConsentRefused), Ok(LoginState::Refused));
    }

    #[test]
    fn out_of_order_and_replayed_events_are_refused() {
        assert!(step(&LoginState::Password, Event::ConsentGiven).is_err());
        let done = LoginState::Done { auth: auth() };
        assert!(
            step(
                &done,
                Event::PasswordAccepted {
                    auth: auth(),
                    needs_consent: false
                }
            )
            .is_err()
        );
        assert!(step(&done, Event::ConsentGiven).is_err());
        assert!(step(&LoginState::Refused, Event::ConsentGiven).is_err());
    }

    #[test]
    fn states_round_trip_through_json() {
        for state in [
            LoginState::Password,
            LoginState::Consent { auth: auth() },
            LoginState::Done { auth: auth() },
            LoginState::Refused,
        ] {
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(serde_json::from_str::<LoginState>(&json).unwrap(), state);
        }
    }
}
