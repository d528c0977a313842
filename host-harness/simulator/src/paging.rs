//! The OData query options of the two listing endpoints, and server-driven paging.
//! "List MachineActions" (learn.microsoft.com/defender-endpoint/api/
//! get-machineactions-collection): "Maximum page size is 10,000", `$top` "with max value of
//! 10,000", `$skip`, and `$filter` on six properties ([`crate::filter`]); "Get file related
//! machines" (learn.microsoft.com/defender-endpoint/api/get-file-related-machines) documents no
//! options: it pages by next link alone (`$top` is refused there, `crate::listings`). OData's server-driven paging (OData 4.0 Protocol §11.2.5.7, "the
//! service returns a next link"): a page that does not hold every item carries
//! `@odata.nextLink`, the URL of the next page, which a client must follow. The simulator
//! refuses with 400 `ODataError` a `$top` outside 1..=10000, a `$skip` that is not a
//! non-negative integer, `$skiptoken` (the API pages by `$skip`), any other `$` option, and any
//! option given twice.

use super::filter::FilterError;
use std::collections::HashSet;
use thiserror::Error;

/// The documented maximum page size and `$top`.
pub const MAX_PAGE: usize = 10_000;

/// Why a listing's query was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QueryError {
    /// The same option twice.
    #[error("Query option '{0}' is specified more than once")]
    Repeated(String),
    /// A `$` option the endpoint does not support.
    #[error("Query option '{0}' is not supported")]
    Unsupported(String),
    /// A `$top` that is not an integer from 1 to 10000.
    #[error("Invalid value '{0}' for $top: an integer from 1 to 10000 is required")]
    Top(String),
    /// A `$skip` that is not a non-negative integer.
    #[error("Invalid value '{0}' for $skip: a non-negative integer is required")]
    Skip(String),
    /// A `$filter` outside the supported subset.
    #[error("Invalid $filter: {0}")]
    Filter(#[from] FilterError),
}

/// The server's page size: how many items a page holds at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize(usize);

impl Default for PageSize {
    fn default() -> Self {
        Self(MAX_PAGE)
    }
}

impl PageSize {
    /// `n`, clamped to 1..=10000.
    pub fn new(n: usize) -> Self {
        Self(n.clamp(1, MAX_PAGE))
    }
}

/// A listing's query options, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Every parameter, decoded, in order: what the next link repeats.
    pairs: Vec<(String, String)>,
    /// `$top`.
    pub top: Option<usize>,
    /// `$skip` (0 without).
    pub skip: usize,
    /// `$filter`'s text.
    pub filter: Option<String>,
}

/// Parses a listing's raw query (percent-encoded; `+` for a space, as forms write it); `$filter`
/// only when the endpoint takes it.
pub fn parse(query: &str, takes_filter: bool) -> Result<Options, QueryError> {
    let mut options = Options {
        pairs: Vec::new(),
        top: None,
        skip: 0,
        filter: None,
    };
    let mut seen = HashSet::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let (key, value) = (key.into_owned(), value.into_owned());
        if !seen.insert(key.clone()) {
            return Err(QueryError::Repeated(key));
        }
        match key.as_str() {
            "$top" => {
                let top = integer(&value).filter(|top| (1..=MAX_PAGE).contains(top));
                options.top = Some(top.ok_or_else(|| QueryError::Top(value.clone()))?);
            }
            "$skip" => {
                options.skip = integer(&value).ok_or_else(|| QueryError::Skip(value.clone()))?
            }
            "$filter" if takes_filter => options.filter = Some(value.clone()),
            _ if key.starts_with('$') => return Err(QueryError::Unsupported(key)),
            _ => {}
        }
        options.pairs.push((key, value));
    }
    Ok(options)
}

/// A non-negative integer in decimal digits only (no sign, no spaces).
fn integer(text: &str) -> Option<usize> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Which items a page holds, and where the next one starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// The first item's offset.
    pub start: usize,
    /// Past the last item's offset.
    pub end: usize,
    /// The next page's `$skip` and `$top`, when items remain within `$top`.
    pub next: Option<(usize, Option<usize>)>,
}

/// The page of `total` items the options ask for, at most `size` long.
pub fn page(total: usize, options: &Options, size: PageSize) -> Page {
    let start = options.skip.min(total);
    let wanted = options.top.unwrap_or(usize::MAX);
    let taken = size.0.min(wanted).min(total.saturating_sub(start));
    let end = start.saturating_add(taken);
    let more_within_top = options.top.is_none_or(|top| taken < top);
    let next = (end < total && more_within_top)
        .then(|| (end, options.top.map(|top| top.saturating_sub(taken))));
    Page { start, end, next }
}

/// The next page's URL: `{base_url}{path}?{query}`, the query as given with `$skip` set to
/// `skip` (appended when absent) and `$top` to `top`, percent-encoded as a client sends it
/// (`$` kept, a space as `%20`, a quote as `%27`).
pub fn next_link(
    base_url: &str,
    path: &str,
    options: &Options,
    next: (usize, Option<usize>),
) -> String {
    let (skip, top) = next;
    let mut pairs = options.pairs.clone();
    for (key, value) in &mut pairs {
        match (key.as_str(), top) {
            ("$skip", _) => *value = skip.to_string(),
            ("$top", Some(top)) => *value = top.to_string(),
            _ => {}
        }
    }
    if !pairs.iter().any(|(key, _)| key == "$skip") {
        pairs.push(("$skip".into(), skip.to_string()));
    }
    let query = pairs
        .iter()
        .map(|(key, value)| format!("{}={}", encode(key), encode(value)))
        .collect::<Vec<_>>()
        .join("&");
    format!("{base_url}{path}?{query}")
}

/// Percent-encodes all but RFC 3986's unreserved characters and `$`.
fn encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~$".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_top_and_skip() {
        let options = parse("$top=5&$skip=1", true).unwrap();
        let first = page(10, &options, PageSize::new(2));
        assert_eq!(
            (first.start, first.end, first.next),
            (1, 3, Some((3, Some(3))))
        );
        let options = parse("$skip=3", true).unwrap();
        let last = page(4, &options, PageSize::new(2));
        assert_eq!((last.start, last.end, last.next), (3, 4, None));
        let beyond = page(4, &parse("$skip=9", true).unwrap(), PageSize::default());
        assert_eq!((beyond.start, beyond.end, beyond.next), (4, 4, None));
        // `$top` reached: no next page though items remain.
        let topped = page(10, &parse("$top=2", true).unwrap(), PageSize::new(2));
        assert_eq!(topped.next, None);
    }

    #[test]
    fn the_next_link_keeps_the_query() {
        let options = parse("$filter=machineId+eq+%27a%27&$top=5&api=1", true).unwrap();
        let link = next_link(
            "http://127.0.0.1:1",
            "/api/machineactions",
            &options,
            (2, Some(3)),
        );
        assert_eq!(
            link,
            "http://127.0.0.1:1/api/machineactions?$filter=machineId%20eq%20%27a%27&$top=3&api=1&$skip=2"
        );
    }

    #[test]
    fn bad_options_are_refused() {
        for query in [
            "$top=0",
            "$top=10001",
            "$top=-1",
            "$top=%2B5",
            "$top=",
            "$top=99999999999999999999999",
            "$skip=-1",
            "$skip=x",
            "$skiptoken=abc",
            "$orderby=id",
            "$TOP=5",
            "$top=1&$top=1",
            "a=1&a=2",
        ] {
            assert!(parse(query, true).is_err(), "{query} was accepted");
        }
        assert_eq!(
            parse("$filter=id+eq+%27x%27", false),
            Err(QueryError::Unsupported("$filter".into()))
        );
        assert!(parse("$top=10000&$skip=0&%24filter=id%20eq%20'x'", true).is_ok());
    }
}
