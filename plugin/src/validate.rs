//! Input checks, done before anything is sent.
//!
//! Every value that ends up in a URL is reduced to lower-case hex here, so no input can change
//! the request's path or query.

use crate::bindings::defender::endpoint::types::{ActionError, InvalidInput};

/// The longest comment accepted, in bytes. The API documents no limit; this one keeps the
/// request body a single small write and stops a runaway caller from sending megabytes.
pub const MAX_COMMENT_BYTES: usize = 16 * 1024;

/// A device ID: 40 lower-case hex characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineId(String);

/// A file's SHA-1: 40 lower-case hex characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sha1(String);

/// The most devices one call acts on unless the request says otherwise: the Defender portal's
/// limit for this action (the API itself names none).
pub const DEFAULT_MAX_MACHINES: usize = 1000;
/// The most a request may raise its cap to: the API's largest page, so a whole outbreak is
/// listed in a bounded number of calls.
pub const LARGEST_MAX_MACHINES: usize = 10_000;

/// An action's ID: a GUID, lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionId(String);

/// A comment: not blank, at most [`MAX_COMMENT_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment(String);

impl MachineId {
    /// Accepts 40 hex characters in either case, ignoring surrounding white space.
    pub fn parse(input: &str) -> Result<Self, ActionError> {
        let value = input.trim();
        if value.len() == 40 && is_hex(value) {
            Ok(Self(value.to_ascii_lowercase()))
        } else {
            Err(invalid(
                "machine-id",
                format!(
                    "expected a device ID of 40 hexadecimal characters, got {}",
                    describe(value)
                ),
            ))
        }
    }

    /// The normalised ID.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A request's device cap: [`DEFAULT_MAX_MACHINES`] when it gives none, otherwise from 1 to
/// [`LARGEST_MAX_MACHINES`].
pub fn max_machines(requested: Option<u32>) -> Result<usize, ActionError> {
    let Some(requested) = requested else {
        return Ok(DEFAULT_MAX_MACHINES);
    };
    match usize::try_from(requested) {
        Ok(max) if (1..=LARGEST_MAX_MACHINES).contains(&max) => Ok(max),
        _ => Err(invalid(
            "max-machines",
            format!("must be from 1 to {LARGEST_MAX_MACHINES}, got {requested}"),
        )),
    }
}

/// Parses a list of device IDs: each valid (the error names `machine-ids[N]`), at most `max`
/// once duplicates are dropped, input order kept.
pub fn machine_ids(inputs: &[String], max: usize) -> Result<Vec<MachineId>, ActionError> {
    let mut ids: Vec<MachineId> = Vec::with_capacity(inputs.len().min(max));
    let mut seen = std::collections::HashSet::new();
    for (index, input) in inputs.iter().enumerate() {
        let id = MachineId::parse(input).map_err(|error| match error {
            ActionError::InvalidInput(invalid) => ActionError::InvalidInput(InvalidInput {
                field: format!("machine-ids[{index}]"),
                message: invalid.message,
            }),
            other => other,
        })?;
        if seen.insert(id.0.clone()) {
            ids.push(id);
        }
    }
    if ids.is_empty() {
        return Err(invalid("machine-ids", "name at least one device".into()));
    }
    if ids.len() > max {
        return Err(invalid(
            "machine-ids",
            format!(
                "{} devices; this request's cap is {max} (max-machines, from 1 to \
                 {LARGEST_MAX_MACHINES}; 1000 by default, the Defender portal's limit)",
                ids.len()
            ),
        ));
    }
    Ok(ids)
}

impl ActionId {
    /// Accepts a GUID (8-4-4-4-12 hex digits) in either case, ignoring surrounding white space.
    pub fn parse(input: &str) -> Result<Self, ActionError> {
        let value = input.trim();
        let groups: Vec<&str> = value.split('-').collect();
        let shaped =
            groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12]) && groups.iter().all(|g| is_hex(g));
        if shaped {
            Ok(Self(value.to_ascii_lowercase()))
        } else {
            Err(invalid(
                "action-id",
                format!("expected an action ID (a GUID), got {}", describe(value)),
            ))
        }
    }

    /// The normalised ID.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Sha1 {
    /// The SHA-1 of a file's content.
    pub fn of_content(content: &[u8]) -> Self {
        Self(sha1_smol::Sha1::from(content).digest().to_string())
    }

    /// Accepts 40 hex characters in either case, ignoring surrounding white space. MD5 (32) and
    /// SHA-256 (64) hashes get an error that says this action does not take them.
    pub fn parse(input: &str) -> Result<Self, ActionError> {
        let value = input.trim();
        if !is_hex(value) || value.is_empty() {
            return Err(invalid(
                "sha1",
                format!(
                    "expected a SHA-1 of 40 hexadecimal characters, got {}",
                    describe(value)
                ),
            ));
        }
        match value.len() {
            40 => Ok(Self(value.to_ascii_lowercase())),
            32 => Err(invalid(
                "sha1",
                "got 32 hexadecimal characters, an MD5: this action accepts only SHA-1 (MD5 and \
                 SHA-256 are not accepted)"
                    .into(),
            )),
            64 => Err(invalid(
                "sha1",
                "got 64 hexadecimal characters, a SHA-256: this action accepts only SHA-1 (MD5 \
                 and SHA-256 are not accepted)"
                    .into(),
            )),
            n => Err(invalid(
                "sha1",
                format!("expected a SHA-1 of 40 hexadecimal characters, got {n}"),
            )),
        }
    }

    /// The normalised hash.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Comment {
    /// Accepts any text that is not blank and fits [`MAX_COMMENT_BYTES`]; it is sent as given.
    pub fn parse(input: &str) -> Result<Self, ActionError> {
        if input.trim().is_empty() {
            return Err(invalid("comment", "must not be empty".into()));
        }
        if input.len() > MAX_COMMENT_BYTES {
            return Err(invalid(
                "comment",
                format!(
                    "is {} bytes long; at most {MAX_COMMENT_BYTES} are accepted",
                    input.len()
                ),
            ));
        }
        Ok(Self(input.to_owned()))
    }

    /// The comment as it will be sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_hex(value: &str) -> bool {
    value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Says what was received without echoing it: the input may be anything, of any length.
fn describe(value: &str) -> String {
    if value.is_empty() {
        "an empty value".into()
    } else if is_hex(value) {
        format!("{} hexadecimal characters", value.len())
    } else {
        format!("{} characters, not all hexadecimal", value.chars().count())
    }
}

fn invalid(field: &str, message: String) -> ActionError {
    ActionError::InvalidInput(InvalidInput {
        field: field.into(),
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::example::{MACHINE as ID, SHA1};

    fn field_of(err: ActionError) -> (String, String) {
        match err {
            ActionError::InvalidInput(i) => (i.field, i.message),
            other => panic!("expected invalid input, got {other:?}"),
        }
    }

    #[test]
    fn machine_id_is_normalised() {
        let id = MachineId::parse(&format!(" {} \n", ID.to_uppercase())).unwrap();
        assert_eq!(id.as_str(), ID);
    }

    #[test]
    fn machine_id_rejects_path_tricks_and_wrong_lengths() {
        for bad in [
            "",
            "../../api/machines",
            &ID[..39],
            &format!("{ID}0"),
            &format!("{}/x", &ID[..38]),
            &format!("{}?a", &ID[..39]),
            &format!("{}é", &ID[..38]),
        ] {
            let (field, _) = field_of(MachineId::parse(bad).unwrap_err());
            assert_eq!(field, "machine-id", "{bad:?}");
        }
    }

    #[test]
    fn sha1_is_lower_cased() {
        let sha = Sha1::parse(&SHA1.to_ascii_uppercase()).unwrap();
        assert_eq!(sha.as_str(), SHA1);
    }

    #[test]
    fn md5_and_sha256_are_named() {
        let (field, message) = field_of(Sha1::parse(&"a".repeat(32)).unwrap_err());
        assert_eq!(field, "sha1");
        assert!(message.contains("MD5"), "{message}");
        let (_, message) = field_of(Sha1::parse(&"b".repeat(64)).unwrap_err());
        assert!(message.contains("SHA-256"), "{message}");
        assert!(message.contains("only SHA-1"), "{message}");
        let (_, message) = field_of(Sha1::parse(&"c".repeat(41)).unwrap_err());
        assert_eq!(
            message,
            "expected a SHA-1 of 40 hexadecimal characters, got 41"
        );
    }

    #[test]
    fn sha1_rejects_non_hex() {
        let (field, message) = field_of(Sha1::parse(&"g".repeat(40)).unwrap_err());
        assert_eq!(field, "sha1");
        assert!(message.contains("not all hexadecimal"), "{message}");
        assert_eq!(field_of(Sha1::parse("").unwrap_err()).0, "sha1");
    }

    #[test]
    fn machine_lists_are_deduplicated_in_order_and_bounded() {
        let other = "ffffffffffffffffffffffffffffffffffffffff".to_string();
        let ids = machine_ids(&[ID.into(), other.clone(), ID.to_uppercase()], 2).unwrap();
        assert_eq!(ids.len(), 2);
        assert_eq!(ids[0].as_str(), ID);
        assert_eq!(ids[1].as_str(), other);
        let (field, _) = field_of(machine_ids(&[ID.into(), "x".into()], 9).unwrap_err());
        assert_eq!(field, "machine-ids[1]");
        assert_eq!(field_of(machine_ids(&[], 9).unwrap_err()).0, "machine-ids");
        let many: Vec<String> = (0..1001).map(|i| format!("{i:040x}")).collect();
        let (field, message) = field_of(machine_ids(&many, 1000).unwrap_err());
        assert_eq!(field, "machine-ids");
        assert!(message.contains("1001"), "{message}");
        assert!(message.contains("max-machines"), "{message}");
        assert_eq!(machine_ids(&many[..1000], 1000).unwrap().len(), 1000);
        assert_eq!(machine_ids(&many, 1001).unwrap().len(), 1001);
    }

    #[test]
    fn the_device_cap_is_the_portals_unless_raised_to_the_apis_page() {
        assert_eq!(max_machines(None).unwrap(), DEFAULT_MAX_MACHINES);
        assert_eq!(max_machines(Some(10_000)).unwrap(), 10_000);
        assert_eq!(max_machines(Some(1)).unwrap(), 1);
        for bad in [0, 10_001, u32::MAX] {
            let (field, message) = field_of(max_machines(Some(bad)).unwrap_err());
            assert_eq!(field, "max-machines");
            assert!(message.contains(&bad.to_string()), "{message}");
        }
    }

    #[test]
    fn action_ids_are_guids() {
        let id = ActionId::parse("141408D1-384C-4C19-8B57-BA39E378011A").unwrap();
        assert_eq!(id.as_str(), "141408d1-384c-4c19-8b57-ba39e378011a");
        for bad in [
            "",
            "141408d1",
            "141408d1-384c-4c19-8b57-ba39e378011a/cancel",
            "../x",
        ] {
            assert_eq!(field_of(ActionId::parse(bad).unwrap_err()).0, "action-id");
        }
    }

    #[test]
    fn sha1_of_content_matches_known_digests() {
        assert_eq!(
            Sha1::of_content(b"").as_str(),
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        );
        assert_eq!(
            Sha1::of_content(b"abc").as_str(),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }

    #[test]
    fn comment_must_not_be_blank_or_huge() {
        assert_eq!(field_of(Comment::parse(" \t\n").unwrap_err()).0, "comment");
        let huge = "x".repeat(MAX_COMMENT_BYTES + 1);
        assert_eq!(field_of(Comment::parse(&huge).unwrap_err()).0, "comment");
        assert_eq!(Comment::parse(" keep  me ").unwrap().as_str(), " keep  me ");
    }
}
