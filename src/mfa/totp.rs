//! TOTP (RFC 6238): SHA-1, 6 digits, 30-second steps, one step of clock skew.

use qrcode::QrCode;
use qrcode::render::svg;
use totp_rs::{Algorithm, Builder, Totp};

use crate::clock::UnixTime;

pub const STEP_SECONDS: u64 = 30;
pub const DIGITS: u8 = 6;

/// A new 160-bit secret (RFC 4226 section 4 recommends 160 bits).
pub fn new_secret() -> Vec<u8> {
    crate::crypto::random_bytes::<20>().to_vec()
}

#[derive(Debug, thiserror::Error)]
#[error("TOTP error: {0}")]
pub struct TotpError(String);

/// Authenticator apps split the label at `:`, so neither part may contain one.
fn label_part(value: &str) -> String {
    value.replace(':', " ").trim().to_owned()
}

fn totp(secret: &[u8], issuer: &str, account: &str) -> Result<Totp, TotpError> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS)
        .with_skew(1)
        .with_step_duration(STEP_SECONDS)
        .with_secret(secret.to_vec())
        .with_issuer(Some(label_part(issuer)))
        .with_account_name(label_part(account))
        .build()
        .map_err(|e| TotpError(e.to_string()))
}

/// What the enrolment page shows: the `otpauth://` URI as a QR code and the secret as text.
#[derive(Debug, Clone)]
pub struct Provisioning {
    pub uri: String,
    pub secret_base32: String,
    pub qr_svg: String,
}

/// The provisioning data for an authenticator app; `issuer` is the company's name and
/// `account` the login name (seed 001).
pub fn provisioning(secret: &[u8], issuer: &str, account: &str) -> Result<Provisioning, TotpError> {
    let totp = totp(secret, issuer, account)?;
    let uri = totp.to_url().map_err(|e| TotpError(e.to_string()))?;
    let qr_svg = QrCode::new(uri.as_bytes())
        .map_err(|e| TotpError(e.to_string()))?
        .render::<svg::Color>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    Ok(Provisioning {
        secret_base32: totp.secret().to_base32(),
        uri,
        qr_svg,
    })
}

/// The time step a code matches (within one step of skew), compared in constant time.
/// The caller must refuse a step at or before the last one accepted (replay).
pub fn matching_step(secret: &[u8], code: &str, now: UnixTime) -> Option<i64> {
    let code = code.trim();
    if code.len() != usize::from(DIGITS) || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = u64::try_from(now).ok()?;
    let totp = totp(secret, "x", "x").ok()?;
    totp.check(code, now).and_then(|step| i64::try_from(step).ok())
}

/// The code for `time` (tests and the benchmark's virtual users compute codes with it).
pub fn code_at(secret: &[u8], time: UnixTime) -> Option<String> {
    let totp = totp(secret, "x", "x").ok()?;
    Some(totp.generate(u64::try_from(time).ok()?).to_string())
}

/// Decodes a base32 secret as shown on the enrolment page.
pub fn secret_from_base32(text: &str) -> Option<Vec<u8>> {
    totp_rs::Secret::try_from_base32(text)
        .ok()
        .map(|s| s.as_ref().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1, truncated to 6 digits.
    #[test]
    fn rfc_6238_test_vectors() {
        let secret = b"12345678901234567890";
        for (time, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            assert_eq!(code_at(secret, time).unwrap(), code, "{time}");
        }
    }

    #[test]
    fn one_step_of_skew_is_accepted_and_no_more() {
        let secret = new_secret();
        let now = 1_800_000_015;
        let current = now / 30;
        assert_eq!(
            matching_step(&secret, &code_at(&secret, now).unwrap(), now),
            Some(current)
        );
        assert_eq!(
            matching_step(&secret, &code_at(&secret, now - 30).unwrap(), now),
            Some(current - 1)
        );
        assert_eq!(
            matching_step(&secret, &code_at(&secret, now + 30).unwrap(), now),
            Some(current + 1)
        );
        assert_eq!(
            matching_step(&secret, &code_at(&secret, now - 60).unwrap(), now),
            None
        );
        assert_eq!(
            matching_step(&secret, &code_at(&secret, now + 60).unwrap(), now),
            None
        );
        assert_eq!(matching_step(&secret, "12345", now), None);
        assert_eq!(matching_step(&secret, "abcdef", now), None);
    }

    #[test]
    fn provisioning_names_issuer_and_account_and_round_trips_the_secret() {
        let secret = new_secret();
        let p = provisioning(&secret, "Globex: Inc", "alice").unwrap();
        assert!(
            p.uri.starts_with("otpauth://totp/Globex%20%20Inc:alice?"),
            "{}",
            p.uri
        );
        assert!(p.uri.contains("issuer=Globex"), "{}", p.uri);
        assert_eq!(secret_from_base32(&p.secret_base32).unwrap(), secret);
        assert!(p.qr_svg.contains("<svg"));
    }
}
