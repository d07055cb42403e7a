//! Relying-party clients, within the caller's reach.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::{Listing, Page, checked_name, company_in_reach, listing, reseller_in_reach, rfc3339};
use crate::api::auth::{ADMIN_SCOPE, Caller, Reach};
use crate::api::error::{ApiError, ApiQuery, ApiResult, ErrorBody, JsonBody};
use crate::crypto::random_token;
use crate::model::{Client, GrantType, RedirectUri, ScopeSet, SigningAlg};
use crate::state::AppState;
use crate::storage::Deleted;

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
