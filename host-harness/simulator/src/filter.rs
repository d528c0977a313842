//! `$filter` on `GET /api/machineactions`, as "List MachineActions" (learn.microsoft.com/
//! defender-endpoint/api/get-machineactions-collection) describes it: "Supports OData V4
//! queries. The OData's `$filter` query is supported on: `id`, `status`, `machineId`, `type`,
//! `requestor`, and `creationDateTimeUtc` properties." The simulator takes exactly that subset
//! and refuses anything else with 400 `ODataError`: terms joined by ` and `, each
//! `field eq 'value'` for the five text properties (a quote inside doubled, as OData escapes
//! it), or `creationDateTimeUtc ge|gt|le|lt|eq <DateTimeOffset>` with an unquoted literal such
//! as `2026-11-28T14:50:00Z`, `2026-11-28T14:50:00.123Z` or `2026-11-28T15:50:00+01:00`,
//! compared as an instant. Keywords, operators and property names are case-sensitive (OData
//! 4.0).

use serde_json::Value;
use std::time::{Duration, SystemTime};
use thiserror::Error;

/// The text properties `$filter` takes, with `eq` only.
const TEXT_FIELDS: [&str; 5] = ["id", "status", "machineId", "type", "requestor"];
/// The date property `$filter` takes, with any comparison.
const DATE_FIELD: &str = "creationDateTimeUtc";

/// Why a `$filter` was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FilterError {
    /// `$filter=` with nothing in it.
    #[error("The value for OData query '$filter' cannot be empty")]
    Empty,
    /// A property `$filter` does not support.
    #[error("Filtering on '{0}' is not supported")]
    Field(String),
    /// An operator the property does not support.
    #[error("Operator '{operator}' is not supported on '{field}'")]
    Operator {
        /// The property.
        field: String,
        /// The operator given.
        operator: String,
    },
    /// A literal of the wrong type or form.
    #[error("'{0}' is not a valid literal for '{1}'")]
    Literal(String, String),
    /// Anything else: a missing quote, an `or`, parentheses...
    #[error("Syntax error in $filter at '{0}'")]
    Syntax(String),
}

/// How `creationDateTimeUtc` is compared with a literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Eq,
    Ge,
    Gt,
    Le,
    Lt,
}

/// One term of a filter.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    /// A text property equals a value.
    Equals(&'static str, String),
    /// The creation instant compares so with an instant.
    Created(Comparison, SystemTime),
}

/// A parsed `$filter`: all its terms must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    terms: Vec<Term>,
}

/// A literal: quoted text (unescaped), or a bare token.
enum Literal<'a> {
    Quoted(String),
    Bare(&'a str),
}

impl Filter {
    /// Parses `$filter`'s (decoded) value.
    pub fn parse(text: &str) -> Result<Self, FilterError> {
        let mut rest = text.trim_matches(' ');
        if rest.is_empty() {
            return Err(FilterError::Empty);
        }
        let mut terms = Vec::new();
        loop {
            let (field, after) = word(rest);
            let (operator, after) = word(spaces(after)?);
            let (literal, after) = literal(spaces(after)?)?;
            terms.push(term(field, operator, literal)?);
            if after.is_empty() {
                return Ok(Self { terms });
            }
            let (and, after) = word(spaces(after)?);
            if and != "and" {
                return Err(FilterError::Syntax(and.to_owned()));
            }
            rest = spaces(after)?;
        }
    }

    /// Whether the action satisfies every term.
    pub fn matches(&self, action: &Value) -> bool {
        self.terms.iter().all(|term| match term {
            Term::Equals(field, value) => action[*field].as_str() == Some(value.as_str()),
            Term::Created(comparison, literal) => action[DATE_FIELD]
                .as_str()
                .and_then(|text| humantime::parse_rfc3339(text).ok())
                .is_some_and(|created| match comparison {
                    Comparison::Eq => created == *literal,
                    Comparison::Ge => created >= *literal,
                    Comparison::Gt => created > *literal,
                    Comparison::Le => created <= *literal,
                    Comparison::Lt => created < *literal,
                }),
        })
    }
}

/// The text up to the next space, and what follows it.
fn word(text: &str) -> (&str, &str) {
    text.split_at(text.find(' ').unwrap_or(text.len()))
}

/// What follows at least one space.
fn spaces(text: &str) -> Result<&str, FilterError> {
    let rest = text.trim_start_matches(' ');
    if rest.len() == text.len() || rest.is_empty() {
        return Err(FilterError::Syntax(text.to_owned()));
    }
    Ok(rest)
}

/// A quoted literal (`''` stands for a quote) or a bare one, and what follows it.
fn literal(text: &str) -> Result<(Literal<'_>, &str), FilterError> {
    let Some(quoted) = text.strip_prefix('\'') else {
        let (bare, rest) = word(text);
        return Ok((Literal::Bare(bare), rest));
    };
    let mut value = String::new();
    let mut chars = quoted.char_indices();
    while let Some((at, c)) = chars.next() {
        if c != '\'' {
            value.push(c);
            continue;
        }
        let rest = quoted.get(at + 1..).unwrap_or_default();
        if rest.starts_with('\'') {
            value.push('\'');
            chars.next();
            continue;
        }
        return Ok((Literal::Quoted(value), rest));
    }
    Err(FilterError::Syntax(text.to_owned()))
}

fn term(field: &str, operator: &str, literal: Literal<'_>) -> Result<Term, FilterError> {
    let refuse_operator = || FilterError::Operator {
        field: field.to_owned(),
        operator: operator.to_owned(),
    };
    if let Some(&field) = TEXT_FIELDS.iter().find(|&&known| known == field) {
        if operator != "eq" {
            return Err(refuse_operator());
        }
        return match literal {
            Literal::Quoted(value) => Ok(Term::Equals(field, value)),
            Literal::Bare(bare) => Err(FilterError::Literal(bare.to_owned(), field.to_owned())),
        };
    }
    if field != DATE_FIELD {
        return Err(FilterError::Field(field.to_owned()));
    }
    let comparison = match operator {
        "eq" => Comparison::Eq,
        "ge" => Comparison::Ge,
        "gt" => Comparison::Gt,
        "le" => Comparison::Le,
        "lt" => Comparison::Lt,
        _ => return Err(refuse_operator()),
    };
    let refuse_literal = |text: &str| FilterError::Literal(text.to_owned(), field.to_owned());
    match literal {
        Literal::Bare(bare) => date_time_offset(bare)
            .map(|at| Term::Created(comparison, at))
            .ok_or_else(|| refuse_literal(bare)),
        Literal::Quoted(text) => Err(refuse_literal(&format!("'{text}'"))),
    }
}

/// An OData `DateTimeOffset` literal: `YYYY-MM-DDTHH:MM:SS`, an optional fraction of 1 to 12
/// digits, then `Z` or `±HH:MM`.
pub fn date_time_offset(text: &str) -> Option<SystemTime> {
    let bytes = text.as_bytes();
    let shape = b"dddd-dd-ddTdd:dd:dd";
    let head = bytes.get(..shape.len())?;
    let head_fits = head.iter().zip(shape).all(|(b, s)| match s {
        b'd' => b.is_ascii_digit(),
        _ => b == s,
    });
    let rest = text.get(shape.len()..)?;
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let (fraction, zone) = match rest.strip_prefix('.') {
        Some(after) => after.split_at(after.find(|c: char| !c.is_ascii_digit())?),
        None => ("", rest),
    };
    let fraction_fits = !rest.starts_with('.') || (1..=12).contains(&fraction.len());
    if !head_fits || !fraction_fits {
        return None;
    }
    let offset = match zone {
        "Z" => (true, Duration::ZERO),
        _ => {
            let sign = zone.get(..1)?;
            let (hours, minutes) = zone.get(1..)?.split_once(':')?;
            let fits = hours.len() == 2 && minutes.len() == 2 && digits(hours) && digits(minutes);
            let (hours, minutes) = (hours.parse::<u64>().ok()?, minutes.parse::<u64>().ok()?);
            if !fits || hours > 23 || minutes > 59 {
                return None;
            }
            let ahead = match sign {
                "+" => true,
                "-" => false,
                _ => return None,
            };
            (ahead, Duration::from_secs(hours * 3600 + minutes * 60))
        }
    };
    let nanos = fraction.get(..fraction.len().min(9)).unwrap_or_default();
    let utc_form = match nanos {
        "" => format!("{}Z", text.get(..shape.len())?),
        _ => format!("{}.{nanos}Z", text.get(..shape.len())?),
    };
    let local = humantime::parse_rfc3339(&utc_form).ok()?;
    // Local time ahead of UTC by the offset: UTC is the local time minus it.
    match offset {
        (true, by) => local.checked_sub(by),
        (false, by) => local.checked_add(by),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_documented_subset_parses() {
        let filter = Filter::parse(
            "machineId eq 'abc' and type eq 'StopAndQuarantineFile' and requestor eq 'O''Brien'",
        );
        let action =
            json!({"machineId": "abc", "type": "StopAndQuarantineFile", "requestor": "O'Brien"});
        assert!(filter.is_ok_and(|f| f.matches(&action)));
        let filter = Filter::parse("creationDateTimeUtc ge 2026-11-28T14:50:00.123Z").unwrap();
        assert!(filter.matches(&json!({"creationDateTimeUtc": "2026-11-28T14:50:00.123000Z"})));
        assert!(filter.matches(&json!({"creationDateTimeUtc": "2026-11-28T14:51:00Z"})));
        assert!(!filter.matches(&json!({"creationDateTimeUtc": "2026-11-28T14:50:00.122999Z"})));
        assert!(!filter.matches(&json!({"creationDateTimeUtc": null})));
    }

    #[test]
    fn offsets_are_instants() {
        let plus = date_time_offset("2026-11-28T15:50:00+01:00");
        assert_eq!(plus, date_time_offset("2026-11-28T14:50:00Z"));
        assert!(plus.is_some());
        let minus = date_time_offset("2026-11-28T13:20:00-01:30");
        assert_eq!(minus, date_time_offset("2026-11-28T14:50:00Z"));
    }

    #[test]
    fn anything_else_is_refused() {
        for text in [
            "",
            "   ",
            "machineId eq abc",
            "machineId ne 'abc'",
            "machineId eq 'abc",
            "machineId eq 'abc' or type eq 'x'",
            "machineId eq 'abc' and",
            "(machineId eq 'abc')",
            "MachineId eq 'abc'",
            "machineId EQ 'abc'",
            "computerDnsName eq 'x'",
            "requestorComment eq 'x'",
            "creationDateTimeUtc ge '2026-11-28T14:50:00Z'",
            "creationDateTimeUtc ge 2026-11-28",
            "creationDateTimeUtc ge 2026-11-28T14:50:00",
            "creationDateTimeUtc ge 2026-11-28T14:50:00.Z",
            "creationDateTimeUtc ge 2026-11-28T24:50:00Z",
            "creationDateTimeUtc ge 2026-11-28T14:50:00+1:00",
            "creationDateTimeUtc ne 2026-11-28T14:50:00Z",
            "creationDateTimeUtc ge 2026-11-28T14:50:00Zé",
            "creationDateTimeUtc ge 2026-11-28T14:50:00.1234567890123Z",
            "machineId eq 'abc' and and type eq 'x'",
            "é eq 'x'",
            "machineId",
        ] {
            assert!(Filter::parse(text).is_err(), "{text:?} was accepted");
        }
    }
}
