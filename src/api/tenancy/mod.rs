//! Resellers, companies, users and clients, within the caller's reach.

mod clients;
mod companies;
mod resellers;
mod users;

// Globs, not lists: utoipa-axum's `routes!` finds each handler's generated `__path_*` item
// beside it, so both have to be re-exported.
pub use clients::*;
pub use companies::*;
pub use resellers::*;
pub use users::*;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult};
use crate::storage::PageRequest;

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
