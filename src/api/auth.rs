//! Who is calling the admin API, and what they may touch.
//!
//! A caller presents a bearer access token issued by Portcullis with the `admin` scope:
//! either an administrator's (company_admin or reseller_admin, from a normal sign-in, so
//! their own MFA applied), or a service client's (`client_credentials`), whose authority
//! is the reseller or company it is bound to. A service client bound to neither is an
//! operator of the whole instance (created only with `client create --service --instance`).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;

use super::error::ApiError;
use crate::audit::Actor;
use crate::model::{Company, Role};
use crate::protocol::access_token::{self, TokenProblem};
use crate::state::AppState;

/// The scope a service client needs, and a user's token too.
pub const ADMIN_SCOPE: &str = "admin";

/// The part of the tenancy tree a caller administers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    Instance,
    Reseller(String),
    Company { company: String, reseller: String },
}

#[derive(Debug, Clone)]
pub struct Caller {
    pub reach: Reach,
    pub actor: Actor,
    pub ip: Option<IpAddr>,
}

impl Caller {
    /// Whether the caller administers this reseller.
    pub fn reaches_reseller(&self, reseller_id: &str) -> bool {
        match &self.reach {
            Reach::Instance => true,
            Reach::Reseller(r) => r == reseller_id,
            Reach::Company { .. } => false,
        }
    }

    /// Whether the caller administers this company.
    pub fn reaches(&self, company: &Company) -> bool {
        match &self.reach {
            Reach::Instance => true,
            Reach::Reseller(r) => *r == company.reseller_id,
            Reach::Company { company: c, .. } => *c == company.id,
        }
    }

    /// The reseller filter of listings (None: every reseller).
    pub fn reseller_filter(&self) -> Option<&str> {
        match &self.reach {
            Reach::Instance => None,
            Reach::Reseller(r) | Reach::Company { reseller: r, .. } => Some(r),
        }
    }

    /// The company filter of listings (None: every company in reach).
    pub fn company_filter(&self) -> Option<&str> {
        match &self.reach {
            Reach::Company { company, .. } => Some(company),
            _ => None,
        }
    }

    /// The highest role this caller may give or manage.
    pub fn may_manage(&self, role: Role) -> bool {
        match &self.reach {
            Reach::Instance | Reach::Reseller(_) => true,
            Reach::Company { .. } => role != Role::ResellerAdmin,
        }
    }

    /// Resellers only (and the instance operator): enforcement, reseller admins.
    pub fn require_reseller_level(&self) -> Result<(), ApiError> {
        match self.reach {
            Reach::Company { .. } => Err(ApiError::forbidden(
                "only the reseller's administrators may do this",
            )),
            _ => Ok(()),
        }
    }

    pub fn audit(&self, kind: &'static str) -> crate::audit::Event {
        crate::audit::event(kind, self.actor.clone()).ip(self.ip)
    }
}

fn unauthorized(message: impl Into<String>) -> ApiError {
    ApiError::new(axum::http::StatusCode::UNAUTHORIZED, message)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                unauthorized("send an access token with the admin scope: Authorization: Bearer <token>")
            })?;
        let claims = access_token::validate(state, token)
            .await
            .map_err(|problem| match problem {
                TokenProblem::Unavailable => ApiError::internal("checking an access token failed"),
                other => unauthorized(format!("the access token is not valid: {other}")),
            })?;
        if !claims.scope.split(' ').any(|s| s == ADMIN_SCOPE) {
            return Err(ApiError::forbidden("the access token lacks the admin scope"));
        }
        let ip = crate::http::client_ip(
            state.config.trust_forwarded_for,
            parts.extensions.get::<ConnectInfo<SocketAddr>>(),
            &parts.headers,
        );
        let service = claims.auth_time.is_none() && claims.sub == claims.client_id;
        if service {
            let client = state
                .store
                .get_client(&claims.client_id)
                .await?
                .ok_or_else(|| unauthorized("the client of this token no longer exists"))?;
            let reach = match (&client.company_id, &client.reseller_id) {
                (Some(company_id), _) => {
                    let company = state
                        .store
                        .get_company(company_id)
                        .await?
                        .ok_or_else(|| unauthorized("the client's company no longer exists"))?;
                    Reach::Company {
                        company: company.id,
                        reseller: company.reseller_id,
                    }
                }
                (None, Some(reseller)) => Reach::Reseller(reseller.clone()),
                (None, None) => Reach::Instance,
            };
            return Ok(Caller {
                reach,
                actor: Actor::client(&client.id),
                ip,
            });
        }
        let found = state
            .store
            .get_user_with_tenancy(&claims.sub)
            .await?
            .filter(|u| u.user.active)
            .ok_or_else(|| unauthorized("the user of this token is not active"))?;
        let reach = match found.user.role {
            Role::ResellerAdmin => Reach::Reseller(found.reseller_id),
            Role::CompanyAdmin => Reach::Company {
                company: found.user.company_id.clone(),
                reseller: found.reseller_id,
            },
            Role::User => return Err(ApiError::forbidden("only administrators may use the admin API")),
        };
        Ok(Caller {
            reach,
            actor: Actor::user(&found.user.id),
            ip,
        })
    }
}
