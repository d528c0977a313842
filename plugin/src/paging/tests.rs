use super::*;
use crate::example::SHA1;
use crate::request::{Api, machines_with_file};
use crate::response::RawResponse;
use crate::script::{Script, answer};
use crate::validate::Sha1;

const BASE: &str = "https://api.security.microsoft.com";

fn first(per_page: usize) -> ApiRequest {
    machines_with_file(&Sha1::parse(SHA1).unwrap()).page(0, per_page)
}

fn page(ids: &[&str], next: Option<&str>) -> Result<RawResponse, crate::call::SendError> {
    let items: Vec<String> = ids.iter().map(|id| format!(r#"{{"id":"{id}"}}"#)).collect();
    let link = next.map_or(String::new(), |link| {
        format!(r#","@odata.nextLink":"{link}""#)
    });
    answer(200, &format!(r#"{{"value":[{}]{link}}}"#, items.join(",")))
}

fn link(query: &str) -> String {
    format!("{BASE}/api/files/{SHA1}/machines?{query}")
}

fn ids(listing: &Listing) -> Vec<String> {
    listing
        .items
        .iter()
        .map(|i| i.members["id"].as_str().unwrap().to_owned())
        .collect()
}

fn paths(script: &Script) -> Vec<String> {
    script
        .sent
        .iter()
        .map(|s| {
            let path = s.split(' ').nth(1).unwrap();
            path.split_once("/machines").unwrap().1.to_owned()
        })
        .collect()
}

fn read_with(script: &mut Script, per_page: usize, enough: usize) -> Result<Listing, ActionError> {
    read(
        script,
        &first(per_page),
        per_page,
        enough,
        |_| true,
        &RetryPolicy::default(),
    )
}

fn failure(listing: &Listing) -> String {
    match &listing.stopped {
        Some(Stopped::Failed(ActionError::Upstream(api))) => api.message.clone().unwrap(),
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn follows_next_links_to_the_end_and_charges_each_page_to_its_api() {
    let (second, third) = (link("$top=2&$skip=2"), link("$top=2&$skip=4"));
    let mut script = Script {
        answers: [
            page(&["a", "b"], Some(&second)),
            page(&["c", "d"], Some(&third)),
            page(&["e"], None),
            page(&[], None),
        ]
        .into(),
        ..Default::default()
    };
    let listing = read_with(&mut script, 2, 100).unwrap();
    assert_eq!(ids(&listing), ["a", "b", "c", "d", "e"]);
    assert!(listing.stopped.is_none());
    // The links gave more than the $top asked for, so there may be more: asked for by $skip.
    let expected = [
        "?$top=2",
        "?$top=2&$skip=2",
        "?$top=2&$skip=4",
        "?$top=2&$skip=5",
    ];
    assert_eq!(paths(&script), expected);
    assert_eq!(script.permit_apis, [Api::FileMachines; 4]);
}

#[test]
fn a_full_page_without_a_link_is_followed_by_skip() {
    let mut script = Script {
        answers: [page(&["a", "b"], None), page(&["c"], None)].into(),
        ..Default::default()
    };
    let listing = read_with(&mut script, 2, 100).unwrap();
    assert_eq!(ids(&listing), ["a", "b", "c"]);
    assert_eq!(paths(&script), ["?$top=2", "?$top=2&$skip=2"]);
}

#[test]
fn a_link_elsewhere_is_not_followed_and_the_first_page_is_kept() {
    for (bad, says) in [
        (
            format!("https://evil.example/api/files/{SHA1}/machines?$skip=2"),
            "leads away from https://api.security.microsoft.com",
        ),
        (
            format!("{BASE}.evil.example/api/files/{SHA1}/machines"),
            "leads away",
        ),
        (format!("{BASE}/api/machines?$skip=2"), "another listing"),
        (link("$skip=2 HTTP/1.1\\r\\nX: y"), "is not a URL"),
    ] {
        let mut script = Script {
            answers: [page(&["a", "b"], Some(&bad))].into(),
            ..Default::default()
        };
        let listing = read_with(&mut script, 2, 100).unwrap();
        assert_eq!(ids(&listing), ["a", "b"]);
        let why = failure(&listing);
        assert!(why.contains(says), "{why}");
        assert!(!why.contains('\r'), "{why}");
        assert_eq!(script.sent.len(), 1, "{bad}");
    }
}

#[test]
fn a_link_seen_before_ends_the_loop() {
    let second = link("$top=2&$skip=2");
    let mut script = Script {
        answers: [
            page(&["a", "b"], Some(&second)),
            page(&["c", "d"], Some(&second)),
        ]
        .into(),
        ..Default::default()
    };
    let listing = read_with(&mut script, 2, 100).unwrap();
    assert_eq!(ids(&listing), ["a", "b", "c", "d"]);
    assert!(failure(&listing).contains("was sent before"));
    assert_eq!(script.sent.len(), 2);
}

#[test]
fn a_later_page_that_fails_keeps_what_was_read_and_the_first_fails_the_call() {
    let mut script = Script {
        answers: [
            page(&["a", "b"], Some(&link("$skip=2"))),
            answer(200, "<html>"),
        ]
        .into(),
        ..Default::default()
    };
    let listing = read_with(&mut script, 2, 100).unwrap();
    assert_eq!(ids(&listing), ["a", "b"]);
    assert!(failure(&listing).contains("not JSON"));

    let mut script = Script {
        answers: [answer(200, "<html>")].into(),
        ..Default::default()
    };
    assert!(matches!(
        read_with(&mut script, 2, 100),
        Err(ActionError::Upstream(_))
    ));
}

#[test]
fn reading_stops_once_more_than_enough_was_read() {
    let mut script = Script {
        answers: [page(&["a", "b"], Some(&link("$skip=2")))].into(),
        ..Default::default()
    };
    let listing = read_with(&mut script, 2, 1).unwrap();
    assert_eq!(ids(&listing), ["a", "b"]);
    assert!(matches!(listing.stopped, Some(Stopped::Enough)));
    assert_eq!(script.sent.len(), 1);
}

#[test]
fn a_page_too_large_is_asked_for_again_in_halves() {
    let mut too_large = page(&["a"], None).unwrap();
    too_large.truncated = true;
    let mut script = Script {
        answers: [Ok(too_large), page(&["a", "b"], None), page(&[], None)].into(),
        ..Default::default()
    };
    let listing = read_with(&mut script, 4, 100).unwrap();
    assert_eq!(ids(&listing), ["a", "b"]);
    assert_eq!(paths(&script), ["?$top=4", "?$top=2", "?$top=2&$skip=2"]);
}

#[test]
fn a_listing_without_end_stops_at_the_page_limit() {
    let mut script = Script {
        answers: (0..MAX_PAGES)
            .map(|n| page(&[format!("a{n}").as_str()], None))
            .collect(),
        ..Default::default()
    };
    let listing = read_with(&mut script, 1, usize::MAX).unwrap();
    assert_eq!(listing.items.len(), MAX_PAGES);
    assert!(failure(&listing).contains("pages"));
}

#[test]
fn a_page_sent_again_ends_the_listing() {
    // An API that ignores `$skip` answers the first page again.
    let mut script = Script {
        answers: [page(&["a", "b"], None), page(&["a", "b"], None)].into(),
        ..Default::default()
    };
    let listing = read_with(&mut script, 2, 100).unwrap();
    assert_eq!(ids(&listing), ["a", "b"]);
    assert!(failure(&listing).contains("same page again"));
}

#[test]
fn a_server_page_smaller_than_asked_is_followed_to_the_end() {
    // Asked for 4, the server pages by 2 within them: after its last link, 4 arrived, so
    // there may be more, asked for by $skip.
    let mut script = Script {
        answers: [
            page(&["a", "b"], Some(&link("$top=2&$skip=2"))),
            page(&["c", "d"], None),
            page(&["e"], None),
        ]
        .into(),
        ..Default::default()
    };
    let listing = read_with(&mut script, 4, 100).unwrap();
    assert_eq!(ids(&listing), ["a", "b", "c", "d", "e"]);
    assert_eq!(paths(&script)[2], "?$top=4&$skip=4");
}

#[test]
fn members_that_are_not_objects_still_count_for_skip() {
    let mut script = Script {
        answers: [
            answer(200, r#"{"value":[{"id":"a"},null]}"#),
            page(&["c"], None),
        ]
        .into(),
        ..Default::default()
    };
    let listing = read_with(&mut script, 2, 100).unwrap();
    assert_eq!(ids(&listing), ["a", "c"]);
    assert_eq!(paths(&script)[1], "?$top=2&$skip=2");
}

#[test]
fn a_failure_before_any_page_is_the_calls_even_after_halving() {
    let mut too_large = page(&["a"], None).unwrap();
    too_large.truncated = true;
    let mut script = Script {
        answers: [Ok(too_large), answer(200, "<html>")].into(),
        ..Default::default()
    };
    assert!(read_with(&mut script, 4, 100).is_err());
}

#[test]
fn a_listing_that_names_no_size_is_paged_once_too_large() {
    let mut too_large = page(&["a"], None).unwrap();
    too_large.truncated = true;
    let mut script = Script {
        answers: [Ok(too_large), page(&["a", "b"], None)].into(),
        ..Default::default()
    };
    let first = machines_with_file(&Sha1::parse(SHA1).unwrap());
    let listing = read(
        &mut script,
        &first,
        200,
        100,
        |_| true,
        &RetryPolicy::default(),
    )
    .unwrap();
    assert_eq!(ids(&listing), ["a", "b"]);
    assert_eq!(paths(&script), ["", "?$top=200"]);
}

#[test]
fn only_the_objects_kept_count_as_enough() {
    let mut script = Script {
        answers: [
            page(&["x", "a"], Some(&link("$skip=2"))),
            page(&["y", "b"], Some(&link("$skip=4"))),
        ]
        .into(),
        ..Default::default()
    };
    let keep = |item: &Listed| item.members["id"] != "x" && item.members["id"] != "y";
    let listing = read(&mut script, &first(2), 2, 1, keep, &RetryPolicy::default()).unwrap();
    assert_eq!(ids(&listing), ["a", "b"]);
    assert!(matches!(listing.stopped, Some(Stopped::Enough)));
    assert_eq!(script.sent.len(), 2);
}
