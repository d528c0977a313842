//! Answers scripted for any API route, chosen by method and path pattern
//! ([`crate::Simulator::script_route`]). The pages document no such thing: this is the
//! simulator's own way to make the API misbehave on purpose. A scripted answer is given only to a
//! request the endpoint has found valid (`crate::routes`), so a script never hides a client's
//! mistake.

use super::answers::Reply;
use http::Method;
use std::collections::VecDeque;
use thiserror::Error;

/// Why [`crate::Simulator::script_route`] refused a method or a path pattern.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PatternError {
    /// The pattern does not start with `/`, so it could never match a request's path.
    #[error("the path pattern {0:?} does not start with '/'")]
    NotAbsolute(String),
    /// The method is not an HTTP method token (RFC 9110 §9.1), so no request could carry it.
    #[error("{0:?} is not an HTTP method")]
    Method(String),
}

/// One segment of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// `*`: any one non-empty segment.
    Any,
    /// This segment exactly (case-sensitive).
    Exact(String),
}

/// A method and a path pattern: which requests a route script answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePattern {
    method: Method,
    segments: Vec<Segment>,
}

impl RoutePattern {
    /// Parses a method (compared exactly) and a pattern: a path starting with `/`, split on `/`,
    /// where `*` stands for any one non-empty segment.
    pub fn parse(method: &str, path: &str) -> Result<Self, PatternError> {
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|_| PatternError::Method(method.to_owned()))?;
        let Some(rest) = path.strip_prefix('/') else {
            return Err(PatternError::NotAbsolute(path.to_owned()));
        };
        let segments = rest
            .split('/')
            .map(|segment| match segment {
                "*" => Segment::Any,
                exact => Segment::Exact(exact.to_owned()),
            })
            .collect();
        Ok(Self { method, segments })
    }

    /// `POST /api/machines/*/StopAndQuarantineFile`, the route [`crate::Simulator::script`]
    /// scripts (built directly, as it cannot fail to parse).
    pub fn create_action() -> Self {
        let exact = |segment: &str| Segment::Exact(segment.to_owned());
        Self {
            method: Method::POST,
            segments: vec![
                exact("api"),
                exact("machines"),
                Segment::Any,
                exact("StopAndQuarantineFile"),
            ],
        }
    }

    /// Whether a request with this method and path (without its query) matches.
    fn matches(&self, method: &Method, path: &str) -> bool {
        let Some(rest) = path.strip_prefix('/') else {
            return false;
        };
        let mut requested = rest.split('/');
        let mut pattern = self.segments.iter();
        *method == self.method
            && loop {
                match (pattern.next(), requested.next()) {
                    (None, None) => break true,
                    (Some(Segment::Any), Some(segment)) if !segment.is_empty() => {}
                    (Some(Segment::Exact(exact)), Some(segment)) if exact == segment => {}
                    _ => break false,
                }
            }
    }
}

/// Every route script, in the order they were registered.
#[derive(Debug, Default)]
pub struct RouteScripts {
    routes: Vec<(RoutePattern, VecDeque<Reply>)>,
}

impl RouteScripts {
    /// Registers `replies` for `pattern`, after every route already registered.
    pub fn add(&mut self, pattern: RoutePattern, replies: impl IntoIterator<Item = Reply>) {
        let replies: VecDeque<Reply> = replies.into_iter().collect();
        if !replies.is_empty() {
            self.routes.push((pattern, replies));
        }
    }

    /// The next reply of the earliest registered route that matches and still has one.
    pub fn take(&mut self, method: &Method, path: &str) -> Option<Reply> {
        let index = self
            .routes
            .iter()
            .position(|(pattern, _)| pattern.matches(method, path))?;
        let replies = &mut self.routes.get_mut(index)?.1;
        let reply = replies.pop_front();
        if replies.is_empty() {
            self.routes.remove(index);
        }
        reply
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(path: &str) -> RoutePattern {
        RoutePattern::parse("GET", path).unwrap()
    }

    #[test]
    fn patterns_need_a_leading_slash_and_a_method_token() {
        assert_eq!(
            RoutePattern::parse("GET", "api/machineactions"),
            Err(PatternError::NotAbsolute("api/machineactions".into()))
        );
        assert_eq!(
            RoutePattern::parse("GET", ""),
            Err(PatternError::NotAbsolute(String::new()))
        );
        for method in ["", "GE T", "GET\r\n", "(GET)"] {
            assert_eq!(
                RoutePattern::parse(method, "/api"),
                Err(PatternError::Method(method.into()))
            );
        }
        assert!(RoutePattern::parse("PURGE", "/api").is_ok());
    }

    #[test]
    fn the_create_route_is_its_parsed_pattern() {
        let parsed = RoutePattern::parse("POST", "/api/machines/*/StopAndQuarantineFile");
        assert_eq!(parsed, Ok(RoutePattern::create_action()));
    }

    #[test]
    fn a_star_matches_exactly_one_non_empty_segment() {
        let one = pattern("/api/machineactions/*");
        assert!(one.matches(&Method::GET, "/api/machineactions/abc"));
        assert!(!one.matches(&Method::GET, "/api/machineactions/"));
        assert!(!one.matches(&Method::GET, "/api/machineactions"));
        assert!(!one.matches(&Method::GET, "/api/machineactions/abc/cancel"));
        assert!(!one.matches(&Method::GET, "/api/MachineActions/abc"));
        assert!(!one.matches(&Method::POST, "/api/machineactions/abc"));
        assert!(!one.matches(&Method::GET, "api/machineactions/abc"));
        let root = pattern("/");
        assert!(root.matches(&Method::GET, "/"));
        assert!(!root.matches(&Method::GET, "/api"));
    }

    #[test]
    fn the_earliest_route_with_replies_answers() {
        let mut scripts = RouteScripts::default();
        scripts.add(pattern("/api/*"), [Reply::error(500, "First")]);
        scripts.add(pattern("/api/machineactions"), []);
        scripts.add(
            pattern("/api/machineactions"),
            [Reply::error(500, "Second"), Reply::error(500, "Third")],
        );
        let mut next = || scripts.take(&Method::GET, "/api/machineactions");
        assert_eq!(next(), Some(Reply::error(500, "First")));
        assert_eq!(next(), Some(Reply::error(500, "Second")));
        assert_eq!(next(), Some(Reply::error(500, "Third")));
        assert_eq!(next(), None);
    }
}
