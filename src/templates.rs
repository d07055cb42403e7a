//! Server-rendered pages. Templates are compiled into the binary (one file to deploy);
//! HTML is auto-escaped.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;

/// Every template, embedded at build time.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("login.html", include_str!("../templates/login.html")),
    ("consent.html", include_str!("../templates/consent.html")),
    ("error.html", include_str!("../templates/error.html")),
    ("logout.html", include_str!("../templates/logout.html")),
    ("logged_out.html", include_str!("../templates/logged_out.html")),
    ("index.html", include_str!("../templates/index.html")),
    ("challenge.html", include_str!("../templates/challenge.html")),
    ("enrol_totp.html", include_str!("../templates/enrol_totp.html")),
    ("enrol_otp.html", include_str!("../templates/enrol_otp.html")),
    (
        "enrol_choose.html",
        include_str!("../templates/enrol_choose.html"),
    ),
    (
        "reset_request.html",
        include_str!("../templates/reset_request.html"),
    ),
    (
        "admin_reset_requests.html",
        include_str!("../templates/admin_reset_requests.html"),
    ),
    (
        "recovery_codes.html",
        include_str!("../templates/recovery_codes.html"),
    ),
    (
        "account_security.html",
        include_str!("../templates/account_security.html"),
    ),
    ("email/body.html", include_str!("../templates/email/body.html")),
    (
        "email/mfa_enrolled/subject.txt",
        include_str!("../templates/email/mfa_enrolled/subject.txt"),
    ),
    (
        "email/mfa_enrolled/body.txt",
        include_str!("../templates/email/mfa_enrolled/body.txt"),
    ),
    (
        "email/mfa_disabled/subject.txt",
        include_str!("../templates/email/mfa_disabled/subject.txt"),
    ),
    (
        "email/mfa_disabled/body.txt",
        include_str!("../templates/email/mfa_disabled/body.txt"),
    ),
    (
        "email/mfa_reset/subject.txt",
        include_str!("../templates/email/mfa_reset/subject.txt"),
    ),
    (
        "email/mfa_reset/body.txt",
        include_str!("../templates/email/mfa_reset/body.txt"),
    ),
    (
        "email/recovery_codes_regenerated/subject.txt",
        include_str!("../templates/email/recovery_codes_regenerated/subject.txt"),
    ),
    (
        "email/recovery_codes_regenerated/body.txt",
        include_str!("../templates/email/recovery_codes_regenerated/body.txt"),
    ),
    (
        "email/recovery_code_used/subject.txt",
        include_str!("../templates/email/recovery_code_used/subject.txt"),
    ),
    (
        "email/recovery_code_used/body.txt",
        include_str!("../templates/email/recovery_code_used/body.txt"),
    ),
    (
        "email/otp_code/subject.txt",
        include_str!("../templates/email/otp_code/subject.txt"),
    ),
    (
        "email/otp_code/body.txt",
        include_str!("../templates/email/otp_code/body.txt"),
    ),
    (
        "email/reset_declined/subject.txt",
        include_str!("../templates/email/reset_declined/subject.txt"),
    ),
    (
        "email/reset_declined/body.txt",
        include_str!("../templates/email/reset_declined/body.txt"),
    ),
    (
        "email/reset_requested/subject.txt",
        include_str!("../templates/email/reset_requested/subject.txt"),
    ),
    (
        "email/reset_requested/body.txt",
        include_str!("../templates/email/reset_requested/body.txt"),
    ),
];

pub const STYLESHEET: &str = include_str!("../static/portcullis.css");

pub struct Templates {
    tera: tera::Tera,
}

#[derive(Debug, thiserror::Error)]
#[error("template error: {0}")]
pub struct TemplateError(String);

impl TemplateError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl Templates {
    pub fn load() -> Result<Self, TemplateError> {
        let mut tera = tera::Tera::new();
        tera.add_raw_templates(TEMPLATES.iter().copied())
            .map_err(|e| TemplateError(e.to_string()))?;
        Ok(Self { tera })
    }

    pub fn render<C: Serialize>(&self, name: &str, context: &C) -> Result<String, TemplateError> {
        let context = tera::Context::from_serialize(context).map_err(|e| TemplateError(e.to_string()))?;
        self.tera
            .render(name, &context)
            .map_err(|e| TemplateError(format!("{name}: {e}")))
    }

    /// Renders a page with a status. A template failure becomes a plain 500 (and is logged).
    pub fn page<C: Serialize>(&self, status: StatusCode, name: &str, context: &C) -> Response {
        match self.render(name, context) {
            Ok(html) => (status, Html(html)).into_response(),
            Err(error) => {
                tracing::error!(%error, "rendering a page failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
            }
        }
    }

    /// A readable error page.
    pub fn error_page(&self, status: StatusCode, title: &str, message: &str) -> Response {
        #[derive(Serialize)]
        struct Context<'a> {
            title: &'a str,
            message: &'a str,
        }
        self.page(status, "error.html", &Context { title, message })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses_and_escapes_html() {
        let templates = Templates::load().unwrap();
        let html = templates
            .render(
                "error.html",
                &serde_json::json!({"title": "Oops", "message": "<script>alert(1)</script>"}),
            )
            .unwrap();
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<script>alert"), "{html}");
    }
}
