//! Resellers, companies, users and clients, within the caller's reach.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::auth::{ADMIN_SCOPE, Caller, Reach};
use super::error::{ApiError, ApiQuery, ApiResult, ErrorBody, JsonBody};
use crate::crypto::random_token;
use crate::model::{
    Client, Company, Email, GrantType, NewUser, Phone, RedirectUri, Reseller, Role, ScopeSet, SigningAlg,
    User, Username, new_id,
};
use crate::state::AppState;
use crate::storage::{Deleted, PageRequest, UserChanges};

pub use crate::clock::format_rfc3339 as rfc3339;

/// Paging of every listing: `limit` (1 to 200, default 50) items after `cursor`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// At most this many items (1 to 200; default 50).
    pub limit: Option<i64>,
    /// The `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

impl Page {
    pub fn request(&self) -> ApiResult<PageRequest> {
        let limit = self.limit.unwrap_or(50);
        if !(1..=200).contains(&limit) {
            return Err(ApiError::invalid("limit must be between 1 and 200"));
        }
        Ok(PageRequest {
            after: self.cursor.clone(),
            // One more than asked for, to know whether there is a next page.
            limit: limit + 1,
        })
    }
}

/// A page of items; `nextCursor` fetches the next one (absent on the last page).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Listing<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

pub fn listing<T, V>(
    mut rows: Vec<T>,
    page: &PageRequest,
    id: impl Fn(&T) -> String,
    view: impl Fn(T) -> V,
) -> Listing<V> {
    let wanted = usize::try_from(page.limit - 1).unwrap_or(0);
    let next_cursor = (rows.len() > wanted).then(|| {
        rows.truncate(wanted);
        rows.last().map(&id)
    });
    Listing {
        items: rows.into_iter().map(view).collect(),
        next_cursor: next_cursor.flatten(),
    }
}

fn checked_name(name: &str, what: &str) -> ApiResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::invalid(format!(
            "the {what} name must be 1 to 200 characters"
        )));
    }
    Ok(name.to_owned())
}

// ----- resellers -----

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResellerView {
    pub id: String,
    pub name: String,
    pub created_at: String,
}

impl From<Reseller> for ResellerView {
    fn from(r: Reseller) -> Self {
        Self {
            id: r.id,
            name: r.name,
            created_at: rfc3339(r.created_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NameBody {
    pub name: String,
}

async fn reseller_in_reach(state: &AppState, caller: &Caller, id: &str) -> ApiResult<Reseller> {
    match state.store.get_reseller(id).await? {
        Some(reseller) if caller.reaches_reseller(&reseller.id) => Ok(reseller),
        _ => Err(ApiError::not_found("reseller")),
    }
}

/// The resellers the caller administers.
#[utoipa::path(get, path = "/resellers", tag = "tenancy", params(Page),
    responses((status = 200, body = Listing<ResellerView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_resellers(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(page): ApiQuery<Page>,
) -> ApiResult<Json<Listing<ResellerView>>> {
    caller.require_reseller_level()?;
    let request = page.request()?;
    let only = match &caller.reach {
        Reach::Reseller(r) => Some(r.as_str()),
        _ => None,
    };
    let rows = state.store.page_resellers(only, &request).await?;
    Ok(Json(listing(
        rows,
        &request,
        |r| r.id.clone(),
        ResellerView::from,
    )))
}

/// Creates a reseller (instance operators only).
#[utoipa::path(post, path = "/resellers", tag = "tenancy", request_body = NameBody,
    responses((status = 201, body = ResellerView), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_reseller(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<NameBody>,
) -> ApiResult<(StatusCode, Json<ResellerView>)> {
    if caller.reach != Reach::Instance {
        return Err(ApiError::forbidden(
            "only an operator of the instance may create resellers",
        ));
    }
    let reseller = Reseller {
        id: new_id(),
        name: checked_name(&body.name, "reseller")?,
        created_at: state.now(),
    };
    state.store.insert_reseller(&reseller).await?;
    caller
        .audit("reseller.created")
        .subject(&reseller.id)
        .tenant(None, Some(&reseller.id))
        .record(&state.store, state.now())
        .await;
    Ok((StatusCode::CREATED, Json(reseller.into())))
}

#[utoipa::path(get, path = "/resellers/{id}", tag = "tenancy", params(("id" = String, Path)),
    responses((status = 200, body = ResellerView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_reseller(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ResellerView>> {
    Ok(Json(reseller_in_reach(&state, &caller, &id).await?.into()))
}

/// Renames a reseller.
#[utoipa::path(patch, path = "/resellers/{id}", tag = "tenancy", params(("id" = String, Path)), request_body = NameBody,
    responses((status = 200, body = ResellerView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_reseller(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<NameBody>,
) -> ApiResult<Json<ResellerView>> {
    let reseller = reseller_in_reach(&state, &caller, &id).await?;
    let name = checked_name(&body.name, "reseller")?;
    state.store.rename_reseller(&reseller.id, &name).await?;
    caller
        .audit("reseller.updated")
        .subject(&reseller.id)
        .tenant(None, Some(&reseller.id))
        .detail(json!({ "name": name }))
        .record(&state.store, state.now())
        .await;
    Ok(Json(ResellerView {
        name,
        ..reseller.into()
    }))
}

/// Deletes a reseller that has no companies left (instance operators only).
#[utoipa::path(delete, path = "/resellers/{id}", tag = "tenancy", params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_reseller(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let reseller = reseller_in_reach(&state, &caller, &id).await?;
    if caller.reach != Reach::Instance {
        return Err(ApiError::forbidden(
            "only an operator of the instance may delete resellers",
        ));
    }
    match state.store.delete_reseller(&reseller.id).await? {
        Deleted::Deleted => {}
        Deleted::NotFound => return Err(ApiError::not_found("reseller")),
        Deleted::InUse => return Err(ApiError::conflict("the reseller still has companies or clients")),
    }
    caller
        .audit("reseller.deleted")
        .subject(&reseller.id)
        .tenant(None, Some(&reseller.id))
        .record(&state.store, state.now())
        .await;
    Ok(StatusCode::NO_CONTENT)
}

// ----- companies -----

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompanyView {
    pub id: String,
    pub reseller_id: String,
    pub name: String,
    pub created_at: String,
}

impl From<Company> for CompanyView {
    fn from(c: Company) -> Self {
        Self {
            id: c.id,
            reseller_id: c.reseller_id,
            name: c.name,
            created_at: rfc3339(c.created_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewCompanyBody {
    /// Defaults to the caller's reseller.
    pub reseller_id: Option<String>,
    pub name: String,
}

/// A company the caller administers, or 404.
pub async fn company_in_reach(state: &AppState, caller: &Caller, id: &str) -> ApiResult<Company> {
    match state.store.get_company(id).await? {
        Some(company) if caller.reaches(&company) => Ok(company),
        _ => Err(ApiError::not_found("company")),
    }
}

#[utoipa::path(get, path = "/companies", tag = "tenancy", params(Page),
    responses((status = 200, body = Listing<CompanyView>), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_companies(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(page): ApiQuery<Page>,
) -> ApiResult<Json<Listing<CompanyView>>> {
    let request = page.request()?;
    let rows = state
        .store
        .page_companies(caller.reseller_filter(), caller.company_filter(), &request)
        .await?;
    Ok(Json(listing(rows, &request, |c| c.id.clone(), CompanyView::from)))
}

/// Creates a company under a reseller the caller administers.
#[utoipa::path(post, path = "/companies", tag = "tenancy", request_body = NewCompanyBody,
    responses((status = 201, body = CompanyView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_company(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<NewCompanyBody>,
) -> ApiResult<(StatusCode, Json<CompanyView>)> {
    caller.require_reseller_level()?;
    let reseller_id = match (&body.reseller_id, &caller.reach) {
        (Some(id), _) => id.clone(),
        (None, Reach::Reseller(r)) => r.clone(),
        (None, _) => return Err(ApiError::invalid("resellerId is required")),
    };
    let reseller = reseller_in_reach(&state, &caller, &reseller_id).await?;
    let company = Company {
        id: new_id(),
        reseller_id: reseller.id,
        name: checked_name(&body.name, "company")?,
        created_at: state.now(),
    };
    state.store.insert_company(&company).await?;
    caller
        .audit("company.created")
        .subject(&company.id)
        .tenant(Some(&company.id), Some(&company.reseller_id))
        .record(&state.store, state.now())
        .await;
    Ok((StatusCode::CREATED, Json(company.into())))
}

#[utoipa::path(get, path = "/companies/{id}", tag = "tenancy", params(("id" = String, Path)),
    responses((status = 200, body = CompanyView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_company(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<CompanyView>> {
    Ok(Json(company_in_reach(&state, &caller, &id).await?.into()))
}

/// Renames a company.
#[utoipa::path(patch, path = "/companies/{id}", tag = "tenancy", params(("id" = String, Path)), request_body = NameBody,
    responses((status = 200, body = CompanyView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_company(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<NameBody>,
) -> ApiResult<Json<CompanyView>> {
    let company = company_in_reach(&state, &caller, &id).await?;
    let name = checked_name(&body.name, "company")?;
    state.store.rename_company(&company.id, &name).await?;
    caller
        .audit("company.updated")
        .subject(&company.id)
        .tenant(Some(&company.id), Some(&company.reseller_id))
        .detail(json!({ "name": name }))
        .record(&state.store, state.now())
        .await;
    Ok(Json(CompanyView {
        name,
        ..company.into()
    }))
}

/// Deletes a company that has no users or service clients left (reseller level).
#[utoipa::path(delete, path = "/companies/{id}", tag = "tenancy", params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_company(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let company = company_in_reach(&state, &caller, &id).await?;
    caller.require_reseller_level()?;
    match state.store.delete_company(&company.id).await? {
        // Clients restricted to the company lose that restriction with it.
        Deleted::Deleted => state.clients.clear(),
        Deleted::NotFound => return Err(ApiError::not_found("company")),
        Deleted::InUse => return Err(ApiError::conflict("the company still has users or clients")),
    }
    caller
        .audit("company.deleted")
        .subject(&company.id)
        .tenant(Some(&company.id), Some(&company.reseller_id))
        .record(&state.store, state.now())
        .await;
    Ok(StatusCode::NO_CONTENT)
}

// ----- users -----

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

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientView {
    pub id: String,
    pub name: String,
    pub public: bool,
    pub third_party: bool,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    pub signing_alg: String,
    /// The reseller or company a service client acts for (and that owns the client).
    pub reseller_id: Option<String>,
    pub company_id: Option<String>,
    pub allowed_companies: Vec<String>,
    pub created_at: String,
}

impl From<Client> for ClientView {
    fn from(c: Client) -> Self {
        Self {
            id: c.id,
            name: c.name,
            public: c.public,
            third_party: !c.first_party,
            redirect_uris: c.redirect_uris,
            post_logout_redirect_uris: c.post_logout_redirect_uris,
            grant_types: c.grant_types.iter().map(|g| g.as_str().to_owned()).collect(),
            scopes: c.scopes.iter().map(str::to_owned).collect(),
            signing_alg: c.id_token_alg.as_str().into(),
            reseller_id: c.reseller_id,
            company_id: c.company_id,
            allowed_companies: c.allowed_companies,
            created_at: rfc3339(c.created_at),
        }
    }
}

/// A new client, with its secret (shown once; absent for public clients).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedClient {
    pub client_id: String,
    pub client_secret: Option<String>,
    pub client: ClientView,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewClientBody {
    pub name: String,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    #[serde(default)]
    pub public: bool,
    #[serde(default)]
    pub third_party: bool,
    /// Default: `authorization_code` and `refresh_token`; a service client: `client_credentials`.
    pub grant_types: Option<Vec<String>>,
    /// Default: `openid profile email phone`; a service client: `admin`.
    pub scopes: Option<Vec<String>>,
    /// `RS256` (default) or `ES256`.
    pub signing_alg: Option<String>,
    /// A service client: `client_credentials` with the `admin` scope, acting for its owner.
    #[serde(default)]
    pub service: bool,
    /// The owner: a company in reach (default: the caller's company or reseller).
    pub company_id: Option<String>,
    pub reseller_id: Option<String>,
    #[serde(default)]
    pub allowed_companies: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientPatchBody {
    pub name: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
    pub allowed_companies: Option<Vec<String>>,
}

/// Whether a client belongs to the caller's reach.
async fn client_reached(state: &AppState, caller: &Caller, client: &Client) -> ApiResult<bool> {
    if client.id == crate::http::ACCOUNT_CLIENT_ID {
        return Ok(false);
    }
    Ok(match (&caller.reach, &client.company_id, &client.reseller_id) {
        (Reach::Instance, _, _) => true,
        (_, Some(company), _) => match state.store.get_company(company).await? {
            Some(company) => caller.reaches(&company),
            None => false,
        },
        (Reach::Reseller(r), None, Some(reseller)) => r == reseller,
        _ => false,
    })
}

async fn client_in_reach(state: &AppState, caller: &Caller, id: &str) -> ApiResult<Client> {
    match state.store.get_client(id).await? {
        Some(client) if client_reached(state, caller, &client).await? => Ok(client),
        _ => Err(ApiError::not_found("client")),
    }
}

/// Checks that every restriction names a company in reach.
async fn check_allowed_companies(state: &AppState, caller: &Caller, companies: &[String]) -> ApiResult<()> {
    for id in companies {
        company_in_reach(state, caller, id).await?;
    }
    Ok(())
}

fn parse_uris(uris: &[String]) -> ApiResult<Vec<RedirectUri>> {
    uris.iter()
        .map(|u| RedirectUri::parse(u).map_err(|e| ApiError::invalid(e.to_string())))
        .collect()
}

fn parse_scopes(scopes: &[String]) -> ApiResult<ScopeSet> {
    ScopeSet::parse(&scopes.join(" ")).map_err(|e| ApiError::invalid(e.to_string()))
}

#[utoipa::path(get, path = "/clients", tag = "tenancy", params(Page),
    responses((status = 200, body = Listing<ClientView>)), security(("bearer" = [])))]
pub async fn list_clients(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(page): ApiQuery<Page>,
) -> ApiResult<Json<Listing<ClientView>>> {
    let request = page.request()?;
    let mut reached = Vec::new();
    for client in state.store.list_clients().await? {
        if request.after.as_ref().is_some_and(|after| client.id <= *after) {
            continue;
        }
        if client_reached(&state, &caller, &client).await? {
            reached.push(client);
            if i64::try_from(reached.len()).unwrap_or(i64::MAX) >= request.limit {
                break;
            }
        }
    }
    Ok(Json(listing(
        reached,
        &request,
        |c| c.id.clone(),
        ClientView::from,
    )))
}

/// Registers a client owned by a company or reseller in reach. The secret is returned once.
#[utoipa::path(post, path = "/clients", tag = "tenancy", request_body = NewClientBody,
    responses((status = 201, body = CreatedClient), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_client(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<NewClientBody>,
) -> ApiResult<(StatusCode, Json<CreatedClient>)> {
    // The owner: a company or reseller in reach; an unowned client only for the instance.
    let (company_id, reseller_id) = match (&body.company_id, &body.reseller_id, &caller.reach) {
        (Some(company), _, _) => (Some(company_in_reach(&state, &caller, company).await?.id), None),
        (None, Some(reseller), _) => (None, Some(reseller_in_reach(&state, &caller, reseller).await?.id)),
        (None, None, Reach::Company { company, .. }) => (Some(company.clone()), None),
        (None, None, Reach::Reseller(reseller)) => (None, Some(reseller.clone())),
        (None, None, Reach::Instance) => (None, None),
    };
    let grant_types: Vec<GrantType> = match (&body.grant_types, body.service) {
        (Some(grants), _) => grants
            .iter()
            .map(|g| {
                g.parse::<GrantType>()
                    .map_err(|e| ApiError::invalid(e.to_string()))
            })
            .collect::<ApiResult<_>>()?,
        (None, true) => vec![GrantType::ClientCredentials],
        (None, false) => vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
    };
    let scopes = match (&body.scopes, body.service) {
        (Some(scopes), _) => parse_scopes(scopes)?,
        (None, true) => parse_scopes(&[ADMIN_SCOPE.to_owned()])?,
        (None, false) => parse_scopes(&["openid", "profile", "email", "phone"].map(String::from))?,
    };
    // The admin scope with client_credentials is the owner's authority: only as a service.
    if scopes.contains(ADMIN_SCOPE) && grant_types.contains(&GrantType::ClientCredentials) && !body.service {
        return Err(ApiError::invalid(
            "a client that acts for itself with the admin scope must be created with \"service\": true",
        ));
    }
    check_allowed_companies(&state, &caller, &body.allowed_companies).await?;
    let new = crate::model::NewClient {
        name: checked_name(&body.name, "client")?,
        public: body.public,
        first_party: !body.third_party,
        redirect_uris: parse_uris(&body.redirect_uris)?,
        post_logout_redirect_uris: parse_uris(&body.post_logout_redirect_uris)?,
        grant_types,
        scopes,
        id_token_alg: body
            .signing_alg
            .as_deref()
            .unwrap_or("RS256")
            .parse::<SigningAlg>()
            .map_err(|e| ApiError::invalid(e.to_string()))?,
        reseller_id,
        company_id,
        allowed_companies: body.allowed_companies.clone(),
    };
    new.check().map_err(|e| ApiError::invalid(e.to_string()))?;
    let (client, secret) = new.into_client(random_token(), state.now());
    state.store.insert_client(&client).await?;
    caller
        .audit("client.created")
        .subject(&client.id)
        .tenant(client.company_id.as_deref(), client.reseller_id.as_deref())
        .detail(json!({ "name": client.name, "service": body.service }))
        .record(&state.store, state.now())
        .await;
    Ok((
        StatusCode::CREATED,
        Json(CreatedClient {
            client_id: client.id.clone(),
            client_secret: secret,
            client: client.into(),
        }),
    ))
}

#[utoipa::path(get, path = "/clients/{id}", tag = "tenancy", params(("id" = String, Path)),
    responses((status = 200, body = ClientView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_client(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ClientView>> {
    Ok(Json(client_in_reach(&state, &caller, &id).await?.into()))
}

/// Changes a client's name, URIs, scopes or company restrictions.
#[utoipa::path(patch, path = "/clients/{id}", tag = "tenancy", params(("id" = String, Path)), request_body = ClientPatchBody,
    responses((status = 200, body = ClientView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_client(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ClientPatchBody>,
) -> ApiResult<Json<ClientView>> {
    let mut client = client_in_reach(&state, &caller, &id).await?;
    if let Some(name) = &body.name {
        client.name = checked_name(name, "client")?;
    }
    let redirect_uris = parse_uris(body.redirect_uris.as_ref().unwrap_or(&client.redirect_uris))?;
    let post_logout_redirect_uris = parse_uris(
        body.post_logout_redirect_uris
            .as_ref()
            .unwrap_or(&client.post_logout_redirect_uris),
    )?;
    if let Some(scopes) = &body.scopes {
        let scopes = parse_scopes(scopes)?;
        if scopes.contains(ADMIN_SCOPE) != client.scopes.contains(ADMIN_SCOPE) {
            return Err(ApiError::invalid(
                "the admin scope is set when a client is created",
            ));
        }
        client.scopes = scopes;
    }
    if let Some(companies) = &body.allowed_companies {
        check_allowed_companies(&state, &caller, companies).await?;
        client.allowed_companies = companies.clone();
    }
    client.redirect_uris = redirect_uris.iter().cloned().map(String::from).collect();
    client.post_logout_redirect_uris = post_logout_redirect_uris
        .iter()
        .cloned()
        .map(String::from)
        .collect();
    let changed = crate::model::NewClient {
        name: client.name.clone(),
        public: client.public,
        first_party: client.first_party,
        redirect_uris,
        post_logout_redirect_uris,
        grant_types: client.grant_types.clone(),
        scopes: client.scopes.clone(),
        id_token_alg: client.id_token_alg,
        reseller_id: client.reseller_id.clone(),
        company_id: client.company_id.clone(),
        allowed_companies: client.allowed_companies.clone(),
    };
    changed.check().map_err(|e| ApiError::invalid(e.to_string()))?;
    state.store.update_client(&client).await?;
    state.clients.forget(&client.id);
    caller
        .audit("client.updated")
        .subject(&client.id)
        .tenant(client.company_id.as_deref(), client.reseller_id.as_deref())
        .record(&state.store, state.now())
        .await;
    Ok(Json(client.into()))
}

/// Deletes a client and everything issued to it.
#[utoipa::path(delete, path = "/clients/{id}", tag = "tenancy", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn delete_client(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let client = client_in_reach(&state, &caller, &id).await?;
    let deleted = state.store.delete_client(&client.id).await?;
    state.clients.forget(&client.id);
    if deleted != Deleted::Deleted {
        return Err(ApiError::not_found("client"));
    }
    caller
        .audit("client.deleted")
        .subject(&client.id)
        .tenant(client.company_id.as_deref(), client.reseller_id.as_deref())
        .record(&state.store, state.now())
        .await;
    Ok(StatusCode::NO_CONTENT)
}
