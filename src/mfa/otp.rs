//! One-time codes by email or SMS: 6 digits from the CSPRNG, stored as a keyed hash,
//! valid `otp.code_ttl`, single use, `otp.max_attempts` guesses, one outstanding per factor.
//! Sending is limited by a cooldown ("Send again") and per hour per user, per company and
//! per destination, so nobody can use Portcullis to flood an address or number.

use serde_json::json;

use crate::clock::UnixTime;
use crate::crypto::{constant_time_eq, keyed_hash, random_below};
use crate::model::{Company, User, new_id};
use crate::notify::email::{Kind, compose};
use crate::policy::Method;
use crate::state::AppState;
use crate::storage::{Factor, StoreError};

/// A new code: six decimal digits, uniformly random.
pub fn new_code() -> String {
    format!("{:06}", random_below(1_000_000))
}

fn hash(state: &AppState, factor_id: &str, code: &str) -> String {
    let key = state.master.derive("portcullis one-time codes v1");
    keyed_hash(&key, &format!("{factor_id}:{}", code.trim()))
}

/// An address or number as pages show it: `a•••@example.com`, `+1 ••• 0100`.
pub fn mask(destination: &str) -> String {
    if let Some((local, domain)) = destination.split_once('@') {
        let first: String = local.chars().take(1).collect();
        return format!("{first}•••@{domain}");
    }
    let digits: Vec<char> = destination.chars().collect();
    let tail: String = digits[digits.len().saturating_sub(4)..].iter().collect();
    format!("{}••• {tail}", destination.chars().take(2).collect::<String>())
}

/// Why a code was not sent: each a sentence for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendProblem {
    #[error("A code was just sent. Wait {0} seconds before asking for another one.")]
    Cooldown(i64),
    #[error(
        "Too many codes were sent {0} in the last hour. Try again in {1} minutes, or use another method."
    )]
    Throttled(&'static str, i64),
    #[error("That number cannot receive text messages. Check it and try again.")]
    BadDestination,
    #[error("We could not send the code just now ({0}). Try again in a moment, or use another method.")]
    Unavailable(String),
}

fn minutes(seconds: i64) -> i64 {
    (seconds + 59) / 60
}

/// Sends a new code for `factor` (email or SMS) to its destination.
pub async fn send_code(
    state: &AppState,
    factor: &Factor,
    user: &User,
    company: &Company,
    now: UnixTime,
) -> Result<(), SendError> {
    let destination = factor.destination.as_deref().unwrap_or_default();
    let otp = &state.config.otp;
    // "Send again" waits for the cooldown while the last code can still be used; a code
    // that was used or expired does not hold up the next sign-in.
    if let Some(last) = state.store.get_otp(&factor.id).await? {
        let cooldown = i64::try_from(otp.resend_cooldown.as_secs()).unwrap_or(60);
        if last.used_at.is_none() && last.expires_at > now && last.created_at + cooldown > now {
            return Err(SendProblem::Cooldown(last.created_at + cooldown - now).into());
        }
    }
    let limits = [
        (
            format!("otp:user:{}", user.id),
            otp.sends_per_user_per_hour,
            "to you",
        ),
        (
            format!("otp:company:{}", company.id),
            otp.sends_per_company_per_hour,
            "for your organization",
        ),
        (
            format!("otp:destination:{destination}"),
            otp.sends_per_destination_per_hour,
            "to this destination",
        ),
    ];
    for (key, limit, what) in &limits {
        if let Some(counter) = state.store.get_throttle(key).await?
            && counter.window_start + 3600 > now
            && counter.failures >= *limit
        {
            return Err(SendProblem::Throttled(what, minutes(counter.window_start + 3600 - now)).into());
        }
    }
    // Count the send before attempting it: a failing provider is not hammered either.
    for (key, _, _) in &limits {
        state.store.record_failure(key, now, 3600, |_| None).await?;
    }
    let code = new_code();
    let ttl = i64::try_from(otp.code_ttl.as_secs()).unwrap_or(600);
    let ttl_minutes = minutes(ttl);
    let delivered = match factor.kind.parse::<Method>() {
        Ok(Method::Email) => {
            let context = json!({
                "name": user.name.clone().unwrap_or_else(|| user.username.clone()),
                "company": company.name,
                "code": code,
                "minutes": ttl_minutes,
            });
            let email = compose(&state.templates, Kind::OtpCode, destination, &context, now)?;
            tokio::time::timeout(state.config.email.smtp.timeout * 2, state.mailer.send(&email))
                .await
                .unwrap_or_else(|_| Err("timed out".into()))
                .map_err(|e| {
                    tracing::warn!(error = %e, "sending a code by email failed");
                    SendProblem::Unavailable("the mail server did not accept it".into())
                })
        }
        Ok(Method::Sms) => {
            let body = format!(
                "{code} is your {} verification code. It expires in {ttl_minutes} minutes.",
                company.name
            );
            state
                .sms
                .send(&new_id(), destination, &body, now)
                .await
                .map_err(|e| {
                    tracing::warn!(error = %e, "sending a code by SMS failed");
                    if e.bad_number() {
                        SendProblem::BadDestination
                    } else {
                        SendProblem::Unavailable("the text message service did not accept it".into())
                    }
                })
        }
        _ => Err(SendProblem::Unavailable(
            "this factor does not receive codes".into(),
        )),
    };
    delivered?;
    // Stored once delivered, so a failed send does not spoil the previous code.
    state
        .store
        .store_otp(&factor.id, &hash(state, &factor.id, &code), now, now + ttl)
        .await?;
    Ok(())
}

/// Starts an email or SMS enrolment: a pending factor for `destination` (already
/// validated and normalised) and a code sent to it. When the code cannot be sent, the
/// pending factor is removed again: nothing is half-enrolled.
pub async fn start(
    state: &AppState,
    method: Method,
    destination: &str,
    user: &User,
    company: &Company,
    now: UnixTime,
) -> Result<Factor, SendError> {
    let factor = Factor {
        id: new_id(),
        user_id: user.id.clone(),
        kind: method.as_str().into(),
        secret: None,
        destination: Some(destination.to_owned()),
        last_step: None,
        created_at: now,
        confirmed_at: None,
        verified_at: None,
    };
    state.store.insert_pending_factor(&factor).await?;
    if let Err(e) = send_code(state, &factor, user, company, now).await {
        state.store.delete_pending_factor(&factor.id).await?;
        return Err(e);
    }
    Ok(factor)
}

/// Checks the code sent to a pending factor; a right code marks it verified (it becomes
/// active when the user selects Finish).
pub async fn verify_pending(
    state: &AppState,
    factor: &Factor,
    typed: &str,
    now: UnixTime,
) -> Result<Checked, StoreError> {
    let checked = check(state, &factor.id, typed, now).await?;
    if checked == Checked::Right && !state.store.set_factor_verified(&factor.id, now).await? {
        return Ok(Checked::Spent);
    }
    Ok(checked)
}

/// Whether a factor has a code outstanding that can still be guessed.
pub async fn outstanding(state: &AppState, factor_id: &str, now: UnixTime) -> Result<bool, StoreError> {
    Ok(state.store.get_otp(factor_id).await?.is_some_and(|c| {
        c.used_at.is_none() && c.expires_at > now && c.attempts < i64::from(state.config.otp.max_attempts)
    }))
}

/// The page's words for a method, with the destination masked.
pub fn describe(method: Method, destination: Option<&str>) -> String {
    let to = destination.map(mask).unwrap_or_default();
    match method {
        Method::Totp => "Authenticator app".into(),
        Method::Email => format!("Email a code to {to}"),
        Method::Sms => format!("Text a code to {to}"),
        Method::Webauthn => "Security key".into(),
    }
}

/// Validates and normalises what a user typed as the destination of a new factor.
pub fn parse_destination(method: Method, input: &str) -> Result<String, String> {
    match method {
        Method::Email => crate::model::Email::parse(input)
            .map(|e| e.as_str().to_owned())
            .map_err(|_| "Enter a valid email address, like name@example.com.".to_owned()),
        Method::Sms => crate::model::Phone::parse(input)
            .map(|p| p.as_str().to_owned())
            .map_err(|e| {
                let why = e.to_string();
                let why = why.rsplit_once(": ").map_or(why.as_str(), |(_, w)| w).to_owned();
                format!("Enter a mobile number in international form, like +14155550100 ({why}).")
            }),
        Method::Totp | Method::Webauthn => Err("This method has no address.".into()),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Problem(#[from] SendProblem),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Template(#[from] crate::templates::TemplateError),
}

/// What a typed code did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    Right,
    Wrong,
    /// Expired, used, or out of guesses: a new code is needed.
    Spent,
}

/// Checks a code typed for `factor_id`; a right code is used up.
pub async fn check(
    state: &AppState,
    factor_id: &str,
    typed: &str,
    now: UnixTime,
) -> Result<Checked, StoreError> {
    let typed = typed.trim();
    if typed.len() != 6 || !typed.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(Checked::Wrong);
    }
    let max = i64::from(state.config.otp.max_attempts);
    let Some(code) = state.store.guess_otp(factor_id, now, max).await? else {
        return Ok(Checked::Spent);
    };
    if constant_time_eq(
        hash(state, factor_id, typed).as_bytes(),
        code.code_hash.as_bytes(),
    ) {
        return Ok(if state.store.use_otp(factor_id, now).await? {
            Checked::Right
        } else {
            Checked::Spent
        });
    }
    Ok(Checked::Wrong)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits() {
        for _ in 0..200 {
            let code = new_code();
            assert_eq!(code.len(), 6);
            assert!(code.bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn destinations_are_validated_and_normalised() {
        assert_eq!(
            parse_destination(Method::Sms, " +1 (415) 555-0100 ").unwrap(),
            "+14155550100"
        );
        assert_eq!(
            parse_destination(Method::Sms, "0044 20 7946 0958").unwrap(),
            "+442079460958"
        );
        for bad in [
            "",
            "4155550100",
            "+0123456789",
            "+1 415 CALL ME",
            "+12",
            "+1234567890123456",
        ] {
            let error = parse_destination(Method::Sms, bad).unwrap_err();
            assert!(error.starts_with("Enter a mobile number"), "{bad}: {error}");
        }
        assert_eq!(
            parse_destination(Method::Email, "Alice@Example.COM").unwrap(),
            "Alice@example.com"
        );
        for bad in [
            "",
            "alice",
            "alice@",
            "@example.com",
            "a b@example.com",
            "alice@localhost",
        ] {
            assert!(parse_destination(Method::Email, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn destinations_are_masked() {
        assert_eq!(mask("alice@example.com"), "a•••@example.com");
        assert_eq!(mask("+14155550100"), "+1••• 0100");
    }
}
