//! `limit`/`offset` paging (spec/platform.md §7.2) and the `{total, limit, offset, data}` page.
//!
//! Handlers take [`Pagination`] (default 50, 1..=1000) or call [`Pagination::from_query`] with
//! their own bounds, document the parameters with `params(PageQuery)`, and answer a
//! [`Page<T>`]. Out-of-range or non-numeric values are 422 naming the parameter.

use std::collections::HashMap;
use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use serde::Serialize;

use crate::http::error::ApiError;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 1000;
pub const MAX_OFFSET: i64 = 2_147_483_647;

/// Documentation of the paging query parameters (for `#[utoipa::path(params(PageQuery))]`).
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1..=1000 (some routes cap lower), default 50.
    #[param(minimum = 1, maximum = 1000, default = 50)]
    pub limit: Option<i64>,
    /// Rows to skip, 0..=2147483647, default 0.
    #[param(minimum = 0, maximum = 2147483647, default = 0)]
    pub offset: Option<i64>,
}

/// Validated paging parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pagination {
    pub limit: i64,
    pub offset: i64,
}

fn parse_bounded(
    params: &HashMap<String, String>,
    name: &str,
    default: i64,
    min: i64,
    max: i64,
) -> Result<i64, ApiError> {
    let Some(raw) = params.get(name) else {
        return Ok(default);
    };
    let v: i64 = raw
        .trim()
        .parse()
        .map_err(|_| ApiError::invalid_field(name, "must be an integer"))?;
    if v < min || v > max {
        return Err(ApiError::invalid_field(
            name,
            &format!("must be between {min} and {max}"),
        ));
    }
    Ok(v)
}

impl Pagination {
    /// Parse `limit`/`offset` from a raw query string with a route-specific default and cap.
    pub fn from_query(query: &str, default_limit: i64, max_limit: i64) -> Result<Self, ApiError> {
        let params = web::Query::<HashMap<String, String>>::from_query(query)
            .map_err(|_| ApiError::invalid_field("query", "is not a valid query string"))?
            .into_inner();
        Ok(Pagination {
            limit: parse_bounded(&params, "limit", default_limit, 1, max_limit)?,
            offset: parse_bounded(&params, "offset", 0, 0, MAX_OFFSET)?,
        })
    }

    /// Wrap one page of rows with the echoed parameters.
    pub fn page<T>(self, total: i64, data: Vec<T>) -> Page<T> {
        Page {
            total,
            limit: self.limit,
            offset: self.offset,
            data,
        }
    }
}

impl FromRequest for Pagination {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Pagination::from_query(
            req.query_string(),
            DEFAULT_LIMIT,
            MAX_LIMIT,
        ))
    }
}

/// Envelope P of the dashboard contract.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    /// Rows matching the filter (all pages).
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
    pub data: Vec<T>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::ResponseError;

    #[test]
    fn defaults_and_echo() {
        let p = Pagination::from_query("", DEFAULT_LIMIT, MAX_LIMIT).unwrap();
        assert_eq!(
            p,
            Pagination {
                limit: 50,
                offset: 0
            }
        );
        let p = Pagination::from_query("limit=1000&offset=2147483647&q=x", 50, 1000).unwrap();
        assert_eq!((p.limit, p.offset), (1000, 2_147_483_647));
        let page = p.page(3, vec![1, 2]);
        let v = serde_json::to_value(&page).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"total":3,"limit":1000,"offset":2147483647,"data":[1,2]})
        );
    }

    #[test]
    fn bounds_are_422_naming_the_parameter() {
        for (q, field) in [
            ("limit=0", "limit"),
            ("limit=1001", "limit"),
            ("limit=abc", "limit"),
            ("offset=-1", "offset"),
            ("offset=2147483648", "offset"),
            ("limit=5.5", "limit"),
        ] {
            let err = Pagination::from_query(q, 50, 1000).unwrap_err();
            assert_eq!(err.status_code().as_u16(), 422, "{q}");
            assert!(err.to_string().contains(field), "{q}: {err}");
        }
        // a route-specific cap
        assert!(Pagination::from_query("limit=201", 50, 200).is_err());
        assert_eq!(Pagination::from_query("", 25, 200).unwrap().limit, 25);
    }
}
