//! MFA operations that touch the store, the master key and the mail queue: starting and
//! confirming an enrolment, checking a code at a challenge, and the per-user lockout.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::{otp, recovery, totp};
use crate::clock::UnixTime;
use crate::flow::throttle::{Counters, account_lock};
use crate::model::{Company, User, new_id};
use crate::notify::email::{Kind, compose, format_time};
use crate::policy::Method;
use crate::policy::load::Inputs;
use crate::state::AppState;
use crate::storage::{Factor, LoginFacts, LoginUser, OutgoingEmail, StoreError};
use crate::templates::TemplateError;

#[derive(Debug, thiserror::Error)]
pub enum MfaError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sealed(#[from] crate::crypto::OpenError),
    #[error(transparent)]
    Totp(#[from] totp::TotpError),
    #[error(transparent)]
    Template(#[from] TemplateError),
}

/// The context every user notification renders with.
pub fn email_context(state: &AppState, user: &User, company: &Company, now: UnixTime, extra: Value) -> Value {
    let mut context = json!({
        "name": user.name.clone().unwrap_or_else(|| user.username.clone()),
        "username": user.username,
        "company": company.name,
        "when": format_time(now),
        "account_url": state.url("/account/security"),
    });
    if let (Value::Object(map), Value::Object(extra)) = (&mut context, extra) {
        map.extend(extra);
    }
    context
}

/// A notification to the user about their own MFA set-up.
pub fn user_email(
    state: &AppState,
    kind: Kind,
    user: &User,
    company: &Company,
    extra: Value,
    now: UnixTime,
) -> Result<OutgoingEmail, TemplateError> {
    compose(
        &state.templates,
        kind,
        &user.email,
        &email_context(state, user, company, now, extra),
        now,
    )
}

/// Wakes the sender after messages were queued.
pub fn emails_queued(state: &AppState) {
    state.mailer.wakeup.notify_one();
}

/// Starts a TOTP enrolment: a new secret, sealed, in a pending factor.
pub async fn start_totp(state: &AppState, user_id: &str, now: UnixTime) -> Result<Factor, MfaError> {
    let id = new_id();
    let factor = Factor {
        secret: Some(state.master.seal(&id, &totp::new_secret())),
        id,
        user_id: user_id.to_owned(),
        kind: Method::Totp.as_str().into(),
        destination: None,
        last_step: None,
        created_at: now,
        confirmed_at: None,
        verified_at: None,
    };
    state.store.insert_pending_factor(&factor).await?;
    Ok(factor)
}

fn totp_secret(state: &AppState, factor: &Factor) -> Result<Vec<u8>, MfaError> {
    let sealed = factor.secret.as_deref().unwrap_or_default();
    Ok(state.master.open(&factor.id, sealed)?)
}

/// The QR code and text secret for a pending TOTP factor.
pub fn provisioning(
    state: &AppState,
    factor: &Factor,
    company: &Company,
    user: &User,
) -> Result<totp::Provisioning, MfaError> {
    Ok(totp::provisioning(
        &totp_secret(state, factor)?,
        &company.name,
        &user.username,
    )?)
}

/// A verified second factor, with its RFC 8176 `amr` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    Totp,
    Email,
    Sms,
    RecoveryCode,
}

impl Verified {
    pub fn amr(self) -> &'static str {
        match self {
            // RFC 8176: "otp" for one-time passwords, TOTP or sent by email.
            Verified::Totp | Verified::Email => "otp",
            Verified::Sms => "sms",
            // Not in the IANA registry: "rc" says a single-use recovery code was used.
            Verified::RecoveryCode => "rc",
        }
    }
}

/// A method as the user's notification emails name it.
pub fn method_label(method: Method) -> &'static str {
    match method {
        Method::Totp => "authenticator app",
        Method::Email => "email codes",
        Method::Sms => "text message codes",
        Method::Webauthn => "security key",
    }
}

/// The `amr` value a factor of `method` proves.
pub fn method_amr(method: Method) -> &'static str {
    match method {
        Method::Sms => "sms",
        Method::Webauthn => "hwk",
        Method::Totp | Method::Email => "otp",
    }
}

/// Checks a code typed at a challenge or before a sensitive action: six digits against the
/// user's TOTP factors (refusing a time step already used) and against the code sent to
/// an email or SMS factor, anything else as a recovery code (single use). Only factors of
/// methods the policy allows count. None when the code is wrong or replayed.
pub async fn check_code(
    state: &AppState,
    inputs: &Inputs,
    user: &User,
    code: &str,
    now: UnixTime,
) -> Result<Option<Verified>, MfaError> {
    let code = code.trim();
    let allowed = &inputs.effective.methods;
    if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
        for (factor, method) in inputs.confirmed() {
            if !allowed.contains(&method) {
                continue;
            }
            match method {
                Method::Totp => {
                    if let Some(step) = totp::matching_step(&totp_secret(state, factor)?, code, now) {
                        // RFC 6238 section 5.2: the same (or an earlier) step is never
                        // accepted twice.
                        return Ok(state
                            .store
                            .accept_totp_step(&factor.id, step)
                            .await?
                            .then_some(Verified::Totp));
                    }
                }
                Method::Email | Method::Sms => {
                    if !otp::outstanding(state, &factor.id, now).await? {
                        continue;
                    }
                    if otp::check(state, &factor.id, code, now).await? == otp::Checked::Right {
                        return Ok(Some(if method == Method::Sms {
                            Verified::Sms
                        } else {
                            Verified::Email
                        }));
                    }
                }
                Method::Webauthn => {}
            }
        }
        return Ok(None);
    }
    let Some(hash) = recovery::hash(&state.master, code) else {
        return Ok(None);
    };
    if !state.store.use_recovery_code(&user.id, &hash, now).await? {
        return Ok(None);
    }
    let left = state.store.recovery_codes_left(&user.id).await?;
    let email = user_email(
        state,
        Kind::RecoveryCodeUsed,
        user,
        &inputs.company,
        json!({ "left": left }),
        now,
    )?;
    state.store.queue_emails(&[email]).await?;
    emails_queued(state);
    Ok(Some(Verified::RecoveryCode))
}

/// Why a new factor was not confirmed.
#[derive(Debug, thiserror::Error)]
pub enum ConfirmError {
    #[error("the code is not the one the authenticator shows now")]
    WrongCode,
    #[error("this set-up was replaced or finished elsewhere; start it again")]
    Gone,
    #[error(transparent)]
    Mfa(#[from] MfaError),
}

/// Confirms a pending TOTP factor with the code the user's app shows. A first factor
/// comes with new recovery codes, returned (in clear, to show once) and stored hashed.
pub async fn confirm_totp(
    state: &AppState,
    factor: &Factor,
    code: &str,
    user: &User,
    company: &Company,
    now: UnixTime,
) -> Result<Option<Vec<String>>, ConfirmError> {
    let secret = totp_secret(state, factor)?;
    let step = totp::matching_step(&secret, code, now).ok_or(ConfirmError::WrongCode)?;
    activate(
        state,
        factor,
        Some(step),
        method_label(Method::Totp),
        user,
        company,
        now,
    )
    .await
}

/// Activates a pending email or SMS factor whose code was verified: the user selected
/// Finish. Recovery codes as for [`confirm_totp`].
pub async fn finish_otp(
    state: &AppState,
    factor: &Factor,
    user: &User,
    company: &Company,
    now: UnixTime,
) -> Result<Option<Vec<String>>, ConfirmError> {
    if factor.verified_at.is_none() {
        return Err(ConfirmError::WrongCode);
    }
    let label = method_label(factor.kind.parse::<Method>().unwrap_or(Method::Email));
    activate(state, factor, None, label, user, company, now).await
}

async fn activate(
    state: &AppState,
    factor: &Factor,
    last_step: Option<i64>,
    label: &str,
    user: &User,
    company: &Company,
    now: UnixTime,
) -> Result<Option<Vec<String>>, ConfirmError> {
    let step = last_step;
    let first = !state
        .store
        .factors_of(&user.id)
        .await
        .map_err(MfaError::from)?
        .iter()
        .any(|f| f.confirmed_at.is_some());
    let codes = first.then(recovery::generate);
    let hashes: Option<Vec<String>> = codes.as_ref().map(|codes| {
        codes
            .iter()
            .filter_map(|c| recovery::hash(&state.master, c))
            .collect()
    });
    let email = user_email(
        state,
        Kind::MfaEnrolled,
        user,
        company,
        json!({ "method": label }),
        now,
    )
    .map_err(MfaError::from)?;
    let confirmed = state
        .store
        .confirm_factor(factor, step, hashes.as_deref(), &[email], now)
        .await
        .map_err(MfaError::from)?;
    if !confirmed {
        return Err(ConfirmError::Gone);
    }
    emails_queued(state);
    crate::audit::event("mfa.enrolled", crate::audit::Actor::user(&user.id))
        .subject(&user.id)
        .tenant(Some(&company.id), Some(&company.reseller_id))
        .detail(json!({ "method": factor.kind, "first": first }))
        .record(&state.store, now)
        .await;
    Ok(codes)
}

/// New recovery codes for a user who has a factor (the caller checked a fresh code).
pub async fn regenerate_codes(
    state: &AppState,
    user: &User,
    company: &Company,
    now: UnixTime,
) -> Result<Vec<String>, MfaError> {
    let codes = recovery::generate();
    let hashes: Vec<String> = codes
        .iter()
        .filter_map(|c| recovery::hash(&state.master, c))
        .collect();
    let email = user_email(
        state,
        Kind::RecoveryCodesRegenerated,
        user,
        company,
        json!({}),
        now,
    )?;
    state
        .store
        .regenerate_recovery_codes(&user.id, &hashes, &[email], now)
        .await?;
    emails_queued(state);
    Ok(codes)
}

/// Recovery codes sealed for keeping in a login transaction until the user saved them.
pub fn seal_codes(state: &AppState, login_id: &str, codes: &[String]) -> String {
    URL_SAFE_NO_PAD.encode(state.master.seal(login_id, codes.join(" ").as_bytes()))
}

pub fn open_codes(state: &AppState, login_id: &str, sealed: &str) -> Option<Vec<String>> {
    let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
    let plain = state.master.open(login_id, &bytes).ok()?;
    Some(
        String::from_utf8(plain)
            .ok()?
            .split(' ')
            .map(str::to_owned)
            .collect(),
    )
}

/// The throttle key of a user's wrong codes is this followed by their id.
const LOCK_KEY_PREFIX: &str = "mfa:user:";

fn lock_key(user_id: &str) -> String {
    format!("{LOCK_KEY_PREFIX}{user_id}")
}

/// The user's count of wrong codes, read before checking one (`locked_until` says whether
/// the second factor is locked now).
pub async fn failures(state: &AppState, user_id: &str) -> Result<Counters, StoreError> {
    Counters::read(&state.store, &lock_key(user_id), None).await
}

/// What the challenge step reads before it checks a code, in one statement: login
/// `login_id`, the user it names with their policy context and factors, and their count of
/// wrong codes.
pub async fn challenge_facts(state: &AppState, login_id: &str) -> Result<LoginFacts, StoreError> {
    let user = LoginUser::OfLogin {
        key_prefix: LOCK_KEY_PREFIX,
    };
    state.store.login_facts(login_id, user).await
}

/// Until when the user's second factor is locked after repeated wrong codes, if it is.
pub async fn locked_until(
    state: &AppState,
    user_id: &str,
    now: UnixTime,
) -> Result<Option<UnixTime>, StoreError> {
    Ok(failures(state, user_id).await?.locked_until(now))
}

/// Counts a wrong code: after `login.max_failures_per_account` within the window, the
/// user's MFA is locked for a growing delay (like a password lockout).
pub async fn record_failure(state: &AppState, user_id: &str, now: UnixTime) -> Result<(), StoreError> {
    let window = i64::try_from(state.config.login.failure_window.as_secs()).unwrap_or(900);
    let config = &state.config.login;
    state
        .store
        .record_failure(&lock_key(user_id), now, window, |n| account_lock(config, n))
        .await
        .map(|_| ())
}

/// Clears the wrong codes counted `before` a right one (nothing to do when there were none).
pub async fn clear_failures(state: &AppState, user_id: &str, before: &Counters) -> Result<(), StoreError> {
    crate::flow::throttle::clear(&state.store, before, &lock_key(user_id)).await
}
