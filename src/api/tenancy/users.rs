//! Users, within the caller's reach.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::{Listing, Page, company_in_reach, listing, rfc3339};
use crate::api::auth::Caller;
use crate::api::error::{ApiError, ApiQuery, ApiResult, ErrorBody, JsonBody};
use crate::model::{Company, Email, NewUser, Phone, Role, User, Username, new_id};
use crate::state::AppState;
use crate::storage::UserChanges;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub id: String,
    pub company_id: String,
    pub username: String,
    pub email: String,
    pub phone: Option<String>,
    pub name: Option<String>,
    /// `user`, `company_admin` or `reseller_admin`.
    pub role: String,
    pub active: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            company_id: u.company_id,
            username: u.username,
            email: u.email,
            phone: u.phone,
            name: u.name,
            role: u.role.as_str().into(),
            active: u.active,
            created_at: rfc3339(u.created_at),
            updated_at: rfc3339(u.updated_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewUserBody {
    pub company_id: String,
    pub username: String,
    pub email: String,
    /// E.164, e.g. `+14155550100`.
    pub phone: Option<String>,
    pub name: Option<String>,
    /// `user` (default), `company_admin` or `reseller_admin`.
    pub role: Option<String>,
    /// Checked against the password policy and stored as an argon2id hash.
    pub password: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserPatchBody {
    pub email: Option<String>,
    /// A number, or null to remove it.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<Option<String>>,
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    pub role: Option<String>,
    /// False deactivates the user: sign-in is refused and their sessions and grants end.
    pub active: Option<bool>,
    pub password: Option<String>,
}

/// `null` and absent differ for fields that can be cleared.
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UserQuery {
    /// Only this company's users.
    pub company: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// A user the caller administers, or 404.
pub async fn user_in_reach(state: &AppState, caller: &Caller, id: &str) -> ApiResult<(User, Company)> {
    let Some(user) = state.store.get_user(id).await? else {
        return Err(ApiError::not_found("user"));
    };
    let company = company_in_reach(state, caller, &user.company_id)
        .await
        .map_err(|_| ApiError::not_found("user"))?;
    Ok((user, company))
}

fn parse_role(role: &str) -> ApiResult<Role> {
    role.parse::<Role>().map_err(|e| ApiError::invalid(e.to_string()))
}

#[utoipa::path(get, path = "/users", tag = "tenancy", params(UserQuery),
    responses((status = 200, body = Listing<UserView>), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<UserQuery>,
) -> ApiResult<Json<Listing<UserView>>> {
    let request = Page {
        limit: query.limit,
        cursor: query.cursor.clone(),
    }
    .request()?;
    let company = match &query.company {
        Some(id) => Some(company_in_reach(&state, &caller, id).await?.id),
        None => caller.company_filter().map(str::to_owned),
    };
    let rows = state
        .store
        .page_users(caller.reseller_filter(), company.as_deref(), &request)
        .await?;
    Ok(Json(listing(rows, &request, |u| u.id.clone(), UserView::from)))
}

/// Creates a user in a company the caller administers.
#[utoipa::path(post, path = "/users", tag = "tenancy", request_body = NewUserBody,
    responses((status = 201, body = UserView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<NewUserBody>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    let company = company_in_reach(&state, &caller, &body.company_id).await?;
    let role = parse_role(body.role.as_deref().unwrap_or("user"))?;
    if !caller.may_manage(role) {
        return Err(ApiError::forbidden(
            "only the reseller's administrators may create reseller admins",
        ));
    }
    let invalid = |e: crate::model::Invalid| ApiError::invalid(e.to_string());
    let new = NewUser {
        company_id: company.id.clone(),
        username: Username::parse(&body.username).map_err(invalid)?,
        email: Email::parse(&body.email).map_err(invalid)?,
        phone: body
            .phone
            .as_deref()
            .map(Phone::parse)
            .transpose()
            .map_err(invalid)?,
        name: body.name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()),
        role,
    };
    let hash = match body.password {
        Some(password) => {
            state.passwords.check_policy(&password).map_err(invalid)?;
            Some(state.passwords.hash(password).await.map_err(ApiError::internal)?)
        }
        None => None,
    };
    let user = state
        .store
        .insert_user(&new_id(), &new, hash.as_deref(), state.now())
        .await?;
    caller
        .audit("user.created")
        .subject(&user.id)
        .tenant(Some(&company.id), Some(&company.reseller_id))
        .detail(json!({ "username": user.username, "role": user.role.as_str() }))
        .record(&state.store, state.now())
        .await;
    Ok((StatusCode::CREATED, Json(user.into())))
}

#[utoipa::path(get, path = "/users/{id}", tag = "tenancy", params(("id" = String, Path)),
    responses((status = 200, body = UserView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<UserView>> {
    Ok(Json(user_in_reach(&state, &caller, &id).await?.0.into()))
}

/// Changes a user's profile, role, password or activity.
#[utoipa::path(patch, path = "/users/{id}", tag = "tenancy", params(("id" = String, Path)), request_body = UserPatchBody,
    responses((status = 200, body = UserView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<UserPatchBody>,
) -> ApiResult<Json<UserView>> {
    let (user, company) = user_in_reach(&state, &caller, &id).await?;
    let role = body.role.as_deref().map(parse_role).transpose()?;
    if !caller.may_manage(user.role) || role.is_some_and(|r| !caller.may_manage(r)) {
        return Err(ApiError::forbidden(
            "only the reseller's administrators may manage reseller admins",
        ));
    }
    let invalid = |e: crate::model::Invalid| ApiError::invalid(e.to_string());
    let changes = UserChanges {
        email: body
            .email
            .as_deref()
            .map(Email::parse)
            .transpose()
            .map_err(invalid)?
            .map(|e| e.as_str().to_owned()),
        phone: match body.phone {
            Some(Some(phone)) => Some(Some(Phone::parse(&phone).map_err(invalid)?.as_str().to_owned())),
            Some(None) => Some(None),
            None => None,
        },
        name: body
            .name
            .map(|n| n.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty())),
        role: role.map(|r| r.as_str().to_owned()),
        active: body.active,
    };
    let hash = match body.password {
        Some(password) => {
            state.passwords.check_policy(&password).map_err(invalid)?;
            Some(state.passwords.hash(password).await.map_err(ApiError::internal)?)
        }
        None => None,
    };
    let now = state.now();
    if !state.store.update_user(&user.id, &changes, now).await? {
        return Err(ApiError::not_found("user"));
    }
    let password_changed = hash.is_some();
    if let Some(hash) = hash {
        state.store.set_password_hash(&user.id, &hash, now).await?;
    }
    let changed: Vec<&str> = [
        ("email", changes.email.is_some()),
        ("phone", changes.phone.is_some()),
        ("name", changes.name.is_some()),
        ("role", changes.role.is_some()),
        ("active", changes.active.is_some()),
        ("password", password_changed),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect();
    let kind = if changes.active == Some(false) {
        "user.deactivated"
    } else {
        "user.updated"
    };
    caller
        .audit(kind)
        .subject(&user.id)
        .tenant(Some(&company.id), Some(&company.reseller_id))
        .detail(json!({ "changed": changed }))
        .record(&state.store, now)
        .await;
    let updated = state
        .store
        .get_user(&user.id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    Ok(Json(updated.into()))
}

/// Deactivates a user (their history stays; sign-in is refused; sessions and grants end).
#[utoipa::path(delete, path = "/users/{id}", tag = "tenancy", params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn delete_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let (user, company) = user_in_reach(&state, &caller, &id).await?;
    if !caller.may_manage(user.role) {
        return Err(ApiError::forbidden(
            "only the reseller's administrators may manage reseller admins",
        ));
    }
    let changes = UserChanges {
        active: Some(false),
        ..UserChanges::default()
    };
    state.store.update_user(&user.id, &changes, state.now()).await?;
    caller
        .audit("user.deactivated")
        .subject(&user.id)
        .tenant(Some(&company.id), Some(&company.reseller_id))
        .record(&state.store, state.now())
        .await;
    Ok(StatusCode::NO_CONTENT)
}

// ----- clients -----
