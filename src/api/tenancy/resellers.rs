//! Resellers, within the caller's reach.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::{Listing, Page, checked_name, listing, rfc3339};
use crate::api::auth::{Caller, Reach};
use crate::api::error::{ApiError, ApiQuery, ApiResult, ErrorBody, JsonBody};
use crate::model::{Reseller, new_id};
use crate::state::AppState;
use crate::storage::Deleted;

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

pub(super) async fn reseller_in_reach(state: &AppState, caller: &Caller, id: &str) -> ApiResult<Reseller> {
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
