//! The second-factor steps.
//!
//! Challenge: `POST /login/challenge` (a code from an enrolled factor, or a recovery code),
//! `POST /login/challenge/method` (pick one of several enrolled factors; an email or SMS
//! factor is sent a code), `POST /login/challenge/resend` ("Send again").
//!
//! Enrolment: `POST /login/enrol/method` (pick one of several allowed methods),
//! `POST /login/enrol/destination` (the `email` or `phone` of a new email or SMS factor: a
//! code is sent to it), `POST /login/enrol` (the `code` that confirms it, or `skip` when the
//! policy allows), `POST /login/enrol/resend`, `POST /login/enrol/finish` (activate a
//! confirmed email or SMS factor), and `POST /login/recovery-codes` (the user saved their
//! codes).

mod challenge;
mod codes;
mod enrol;

pub(crate) use challenge::challenge_page;
pub use challenge::{challenge_method_post, challenge_post, challenge_resend_post};
pub use codes::codes_post;
pub(crate) use codes::{codes_page, render_codes};
pub(crate) use enrol::{EnrolContext, Stage, enrol_page, render_enrolment, render_otp_enrolment};
pub use enrol::{
    enrol_destination_post, enrol_finish_post, enrol_method_post, enrol_post, enrol_resend_post,
};

use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use crate::http::pages::internal_error;
use crate::mfa::otp::{SendError, SendProblem};
use crate::policy::Method;
use crate::policy::load::Inputs;
use crate::state::AppState;
use crate::storage::Factor;

/// One choice on a page listing methods.
#[derive(Serialize)]
pub(crate) struct Choice {
    pub method: &'static str,
    pub label: String,
}

/// The confirmed factors a challenge can use: of a method the policy allows, one per method.
pub(crate) fn usable(inputs: &Inputs) -> Vec<(Factor, Method)> {
    inputs
        .confirmed()
        .filter(|(_, m)| inputs.effective.methods.contains(m))
        .map(|(f, m)| (f.clone(), m))
        .collect()
}

/// The method a page is about: the one the user chose, if still available, else the only
/// available one (None: the user has to choose).
fn in_use(choice: Option<Method>, available: &[Method]) -> Option<Method> {
    match available {
        [only] => choice.filter(|m| m == only).or(Some(*only)),
        _ => choice.filter(|m| available.contains(m)),
    }
}

fn sends_codes(method: Method) -> bool {
    matches!(method, Method::Email | Method::Sms)
}

/// The status and the user's words for a code that could not be sent.
pub(crate) fn send_problem(state: &AppState, error: SendError) -> Result<(StatusCode, String), Response> {
    match error {
        SendError::Problem(problem) => {
            let status = match problem {
                SendProblem::Cooldown(_) | SendProblem::Throttled(..) => StatusCode::TOO_MANY_REQUESTS,
                SendProblem::BadDestination => StatusCode::BAD_REQUEST,
                SendProblem::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            };
            Ok((status, problem.to_string()))
        }
        other => Err(internal_error(state, other)),
    }
}

/// A code that can no longer be used.
pub(crate) const SPENT: &str =
    "That code has expired or was tried too many times. Select \"Send again\" for a new one.";

/// The notice after "Send again": a new code went out, and the ones before it were retired.
pub(crate) const RESENT: &str = "A new code is on its way. Codes sent before it no longer work.";
