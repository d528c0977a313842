//! A listing read to its end: page after page, by the API's `@odata.nextLink` (OData
//! server-driven paging), or by `$skip` when a full page came without one, each page within the
//! body limit and retried as any call. A link that leaves the API's base URL or the listing, a
//! link seen before, a page that is not a listing, or too many pages stop the reading; what was
//! read until then is kept.

use crate::bindings::defender::endpoint::types::{ActionError, ApiError};
use crate::call::{Host, api_base, perform};
use crate::machine_action::Listed;
use crate::request::ApiRequest;
use crate::response::{self, shortened};
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

/// Reads the listing `first` begins, keeping the objects `keep` wants, until its end or until
/// more than `enough` were kept. A page of ours too large to read is asked for again with half the `$top` (or with
/// `page_size`, when `first` named none). Failing before any page was read is the call's
/// failure (nothing was listed); a later failure, or a link that cannot be followed, stops the
/// reading with what was read until then.
pub fn read(
    host: &mut impl Host,
    first: &ApiRequest,
    page_size: usize,
    enough: usize,
    mut keep: impl FnMut(&Listed) -> bool,
    policy: &RetryPolicy,
) -> Result<Listing, ActionError> {
    let mut reading = Reading {
        items: Vec::new(),
        pages: 0,
        offset: 0,
        asked: first.per_page(),
        since_asked: 0,
        last_first: None,
    };
    let mut links = HashSet::new();
    let (mut request, mut ours) = (first.clone(), true);
    for _ in 0..MAX_PAGES {
        let answer = match perform(host, &request, policy) {
            Ok(answer) => answer,
            Err(failure) => return reading.failed(failure.into()),
        };
        let smaller = match reading.asked {
            None => Some(page_size.max(1)),
            Some(size) => Some(size / 2).filter(|half| *half > 0),
        };
        if let (true, true, Some(size)) = (answer.truncated, ours, smaller) {
            (reading.asked, reading.since_asked) = (Some(size), 0);
            request = first.page(reading.offset, size);
            continue;
        }
        let page = match response::listing(&answer) {
            Ok(page) => page,
            Err(error) => return reading.failed(error),
        };
        // An API that ignores `$skip`, or a link that leads back, sends a page again.
        let page_first = page.items.first().map(|item| item.raw.clone());
        if page_first.is_some() && page_first == reading.last_first {
            return reading.failed(upstream("the API sent the same page again".into()));
        }
        reading.pages += 1;
        reading.offset = reading.offset.saturating_add(page.count);
        reading.since_asked = reading.since_asked.saturating_add(page.count);
        reading.last_first = page_first;
        reading
            .items
            .extend(page.items.into_iter().filter(|item| keep(item)));
        // The pages since our last request hold all it asked for: there may be more.
        let full = reading
            .asked
            .is_some_and(|size| reading.since_asked >= size);
        let next = match page.next_link {
            Some(link) if !links.insert(link.clone()) => Err(unfollowed(&link, "was sent before")),
            Some(link) => follow(host, first, &link).map(|next| Some((next, false))),
            None if full => Ok(reading
                .asked
                .map(|size| (first.page(reading.offset, size), true))),
            None => Ok(None),
        };
        match next {
            Ok(None) => return Ok(reading.done(None)),
            Err(error) => return reading.failed(error),
            Ok(Some(_)) if reading.items.len() > enough => {
                return Ok(reading.done(Some(Stopped::Enough)));
            }
            Ok(Some((next, is_ours))) => {
                if is_ours {
                    reading.since_asked = 0;
                }
                (request, ours) = (next, is_ours);
            }
        }
    }
    let past = format!("the listing went on past {MAX_PAGES} pages");
    reading.failed(upstream(past))
}

/// A listing being read.
struct Reading {
    items: Vec<Listed>,
    /// Pages read.
    pages: usize,
    /// Members of `value` received, objects or not: where the next `$skip` starts.
    offset: usize,
    /// The `$top` of our last request, if it named one.
    asked: Option<usize>,
    /// Members received since our last request.
    since_asked: usize,
    /// The first object of the last page, as sent.
    last_first: Option<String>,
}

impl Reading {
    fn done(self, stopped: Option<Stopped>) -> Listing {
        Listing {
            items: self.items,
            stopped,
        }
    }

    /// The call's failure before any page was read; after, what was read and why it stopped.
    fn failed(self, error: ActionError) -> Result<Listing, ActionError> {
        match self.pages {
            0 => Err(error),
            _ => Ok(self.done(Some(Stopped::Failed(error)))),
        }
    }
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
    let shown: String = shortened(link, MAX_SHOWN_LINK)
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
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
