//! A listing read to its end: page after page, by the API's `@odata.nextLink` (OData
//! server-driven paging), or by `$skip` when a full page came without one, each page within the
//! body limit and retried as any call. A link that leaves the API's base URL or the listing, a
//! link seen before, a page that is not a listing, or too many pages stop the reading; what was
//! read until then is kept.

use crate::bindings::defender::endpoint::types::{ActionError, ApiError};
use crate::call::{Host, api_base, perform};
use crate::machine_action::Listed;
use crate::request::ApiRequest;
use crate::response;
use crate::retry::RetryPolicy;
use std::collections::HashSet;

/// The most pages one listing reads: 10,000 devices at 200 a page are 50.
const MAX_PAGES: usize = 100;
/// The most characters of a link the API sent shown in an error.
const MAX_SHOWN_LINK: usize = 200;

/// What a listing read.
#[derive(Debug)]
pub struct Listing {
    /// The objects of every page read, in order.
    pub items: Vec<Listed>,
    /// Why the reading stopped before the listing's end, if it did.
    pub stopped: Option<Stopped>,
}

/// Why a listing was not read to its end.
#[derive(Debug)]
pub enum Stopped {
    /// More than the caller needed was read, and pages remained.
    Enough,
    /// A page failed, or could not be followed.
    Failed(ActionError),
}

/// Reads the listing `first` begins, until its end or until more than `enough` objects were
/// read. The first page's failure is the call's (nothing was listed); a later one, or a link
/// that cannot be followed, stops the reading with what was read until then.
pub fn read(
    host: &mut impl Host,
    first: &ApiRequest,
    enough: usize,
    policy: &RetryPolicy,
) -> Result<Listing, ActionError> {
    let mut items = Vec::new();
    let mut links = HashSet::new();
    let mut request = first.clone();
    let mut per_page = first.per_page();
    let mut from_link = false;
    for page in 0..MAX_PAGES {
        let stop = |items, error| match page {
            0 => Err(error),
            _ => Ok(Listing {
                items,
                stopped: Some(Stopped::Failed(error)),
            }),
        };
        let answer = match perform(host, &request, policy) {
            Ok(answer) => answer,
            Err(failure) => return stop(items, failure.into()),
        };
        // A page of ours too large to read is asked for again in halves.
        if let (true, false, Some(size @ 2..)) = (answer.truncated, from_link, per_page) {
            per_page = Some(size / 2);
            request = first.page(items.len(), size / 2);
            continue;
        }
        let parsed = match response::listing(&answer) {
            Ok(parsed) => parsed,
            Err(error) => return stop(items, error),
        };
        let full = per_page.is_some_and(|size| parsed.items.len() >= size);
        items.extend(parsed.items);
        let next = match parsed.next_link {
            Some(link) if !links.insert(link.clone()) => Err(unfollowed(&link, "was sent before")),
            Some(link) => follow(host, first, &link).map(|next| Some((next, true))),
            None if full => Ok(per_page.map(|size| (first.page(items.len(), size), false))),
            None => Ok(None),
        };
        let (next, linked) = match next {
            Ok(Some(next)) => next,
            Ok(None) => {
                return Ok(Listing {
                    items,
                    stopped: None,
                });
            }
            Err(error) => {
                return Ok(Listing {
                    items,
                    stopped: Some(Stopped::Failed(error)),
                });
            }
        };
        if items.len() > enough {
            return Ok(Listing {
                items,
                stopped: Some(Stopped::Enough),
            });
        }
        (request, from_link) = (next, linked);
    }
    Ok(Listing {
        items,
        stopped: Some(Stopped::Failed(upstream(format!(
            "the listing went on past {MAX_PAGES} pages"
        )))),
    })
}

/// The request for `link`, the API's `@odata.nextLink`: only a link below the granted base URL,
/// to the same listing, made of URL characters, is followed (the host's outbound policy would
/// refuse any other origin anyway).
fn follow(host: &mut impl Host, first: &ApiRequest, link: &str) -> Result<ApiRequest, ActionError> {
    let base = api_base(host)?.url();
    let Some(rest) = link
        .strip_prefix(&base)
        .filter(|rest| rest.starts_with('/'))
    else {
        return Err(unfollowed(link, &format!("leads away from {base}")));
    };
    if !rest.bytes().all(is_url_byte) {
        return Err(unfollowed(link, "is not a URL"));
    }
    let listing_path = |path: &str| path.split('?').next().unwrap_or_default().to_owned();
    if listing_path(rest) != listing_path(&first.path) {
        return Err(unfollowed(link, "leads to another listing"));
    }
    Ok(ApiRequest {
        path: rest.to_owned(),
        ..first.clone()
    })
}

/// RFC 3986's unreserved and reserved characters and `%`: nothing that could split a request.
fn is_url_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-._~:/?[]@!$&'()*+,;=%".contains(&byte)
}

fn unfollowed(link: &str, why: &str) -> ActionError {
    let mut shown: String = link
        .chars()
        .take(MAX_SHOWN_LINK)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if link.chars().count() > MAX_SHOWN_LINK {
        shown.push('…');
    }
    upstream(format!(
        "the API's @odata.nextLink {shown:?} {why}; it was not followed"
    ))
}

fn upstream(message: String) -> ActionError {
    ActionError::Upstream(ApiError {
        status: 200,
        code: None,
        message: Some(message),
        target: None,
    })
}

#[cfg(test)]
mod tests;
