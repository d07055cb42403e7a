//! Companies, within the caller's reach.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::{Listing, NameBody, Page, checked_name, listing, reseller_in_reach, rfc3339};
use crate::api::auth::{Caller, Reach};
use crate::api::error::{ApiError, ApiQuery, ApiResult, ErrorBody, JsonBody};
use crate::model::{Company, new_id};
use crate::state::AppState;
use crate::storage::Deleted;

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
