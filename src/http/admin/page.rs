//! DRF's `PageNumberPagination` and `SearchFilter`, as the admin API's lists speak them:
//! `?page=` (1-based), `?page_size=` (capped), `?search=` (terms that must all match), and pages
//! `{"count","next","previous","results"}` whose links are absolute URLs with the other query
//! parameters kept, so a DRF client follows `next` unchanged.

use axum::{
    extract::{FromRef, FromRequestParts},
    http::{HeaderMap, Uri, header, request::Parts, uri::Authority},
};
use serde::Serialize;

use super::super::{HttpSettings, client_addr::forwarded_https, error::AppError};
use crate::store::{Found, Window};

pub const DEFAULT_PAGE_SIZE: i64 = 50;
pub const MAX_PAGE_SIZE: i64 = 500;
/// A search is a few words; a long one would only cost a long scan.
pub const SEARCH_MAX_CHARS: usize = 200;

/// What a list request asks for, and where it was asked (for the page links).
pub struct PageRequest {
    page: i64,
    size: i64,
    /// `?search=` as sent; `terms` reads it, for the lists that search.
    search: String,
    /// Every query parameter, in order, for the links.
    params: Vec<(String, String)>,
    /// `scheme://host/path`, or just the path when the `Host` header is unusable.
    base: String,
}

impl PageRequest {
    /// DRF's SearchFilter: `?search=` split on whitespace and commas, NULs dropped; every term
    /// must match (the length bound bounds how many there are).
    pub fn terms(&self) -> Result<Vec<String>, AppError> {
        if self.search.chars().count() > SEARCH_MAX_CHARS {
            let message = format!("Ensure this field has no more than {SEARCH_MAX_CHARS} characters.");
            return Err(AppError::field("search", &message));
        }
        let terms = self.search.split(|c: char| c.is_whitespace() || c == ',').filter(|t| !t.is_empty());
        Ok(terms.map(|t| t.replace('\0', "")).collect())
    }

    pub fn window(&self) -> Window {
        Window { offset: (self.page - 1).saturating_mul(self.size), limit: self.size }
    }

    /// The page of `found`, each row rendered by `render`. A page past the last is DRF's 404.
    pub fn page<T, R: Serialize>(&self, found: Found<T>, render: impl Fn(T) -> R) -> Result<Page<R>, AppError> {
        let pages = (found.count + self.size - 1) / self.size;
        if self.page > pages.max(1) {
            return Err(AppError::InvalidPage);
        }
        let next = (self.page < pages).then(|| self.link(Some(self.page + 1)));
        let previous = match self.page {
            1 => None,
            2 => Some(self.link(None)),
            n => Some(self.link(Some(n - 1))),
        };
        Ok(Page { count: found.count, next, previous, results: found.rows.into_iter().map(render).collect() })
    }

    /// This request's URL with `page` set (or removed), the parameters sorted by name as DRF's
    /// `replace_query_param` sorts them.
    fn link(&self, page: Option<i64>) -> String {
        let mut params: Vec<(String, String)> = self.params.iter().filter(|(k, _)| k != "page").cloned().collect();
        if let Some(page) = page {
            params.push(("page".to_owned(), page.to_string()));
        }
        params.sort_by(|a, b| a.0.cmp(&b.0));
        match serde_urlencoded::to_string(&params) {
            Ok(query) if !query.is_empty() => format!("{}?{query}", self.base),
            _ => self.base.clone(),
        }
    }
}

/// A DRF page.
#[derive(Serialize)]
pub struct Page<T> {
    pub count: i64,
    pub next: Option<String>,
    pub previous: Option<String>,
    pub results: Vec<T>,
}

impl<S: Send + Sync> FromRequestParts<S> for PageRequest
where
    std::sync::Arc<HttpSettings>: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let settings = std::sync::Arc::<HttpSettings>::from_ref(state);
        let params: Vec<(String, String)> =
            serde_urlencoded::from_str(parts.uri.query().unwrap_or("")).map_err(|_| AppError::Malformed)?;
        let last = |name: &str| params.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        // DRF: a page that is not a positive integer is "Invalid page."; a bad size is ignored.
        let page = match last("page") {
            None => 1,
            Some(text) => text.parse::<i64>().ok().filter(|p| *p >= 1).ok_or(AppError::InvalidPage)?,
        };
        let size = last("page_size")
            .and_then(|s| s.parse::<i64>().ok())
            .filter(|s| *s >= 1)
            .map_or(DEFAULT_PAGE_SIZE, |s| s.min(MAX_PAGE_SIZE));
        let search = last("search").unwrap_or("").to_owned();
        let base = match &settings.public_base {
            Some(public) => format!("{public}{}", parts.uri.path()),
            None => base_url(&parts.headers, &parts.uri, forwarded_https(parts, &settings.trusted_proxies)),
        };
        Ok(Self { page, size, search, params, base })
    }
}

/// `scheme://host/path` from the `Host` header, as DRF's `build_absolute_uri` (without
/// `JWT_ISSUER`, nothing else says what the service's address is; only staff see these links,
/// on their own requests); the path alone when the header is missing or is not a host.
fn base_url(headers: &HeaderMap, uri: &Uri, https: bool) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).and_then(|h| h.parse::<Authority>().ok());
    match host {
        // No user info: `user@host` is an authority, but not a host.
        Some(host) if !host.as_str().contains('@') => {
            let scheme = if https { "https" } else { "http" };
            format!("{scheme}://{host}{}", uri.path())
        }
        _ => uri.path().to_owned(),
    }
}
