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

impl Sha1 {
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

    const ID: &str = "1e5bc9d7e413ddd7902c2932e418702b84d0cc07";

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
        let sha = Sha1::parse("87662BC3D60E4200CEAF7AAE249D1C343F4B83C9").unwrap();
        assert_eq!(sha.as_str(), "87662bc3d60e4200ceaf7aae249d1c343f4b83c9");
    }

    #[test]
    fn md5_and_sha256_are_named() {
        let (field, message) = field_of(Sha1::parse(&"a".repeat(32)).unwrap_err());
        assert_eq!(field, "sha1");
        assert!(message.contains("MD5"), "{message}");
        let (_, message) = field_of(Sha1::parse(&"b".repeat(64)).unwrap_err());
        assert!(message.contains("SHA-256"), "{message}");
        assert!(message.contains("only SHA-1"), "{message}");
    }

    #[test]
    fn sha1_rejects_non_hex() {
        let (field, message) = field_of(Sha1::parse(&"g".repeat(40)).unwrap_err());
        assert_eq!(field, "sha1");
        assert!(message.contains("not all hexadecimal"), "{message}");
        assert_eq!(field_of(Sha1::parse("").unwrap_err()).0, "sha1");
    }

    #[test]
    fn comment_must_not_be_blank_or_huge() {
        assert_eq!(field_of(Comment::parse(" \t\n").unwrap_err()).0, "comment");
        let huge = "x".repeat(MAX_COMMENT_BYTES + 1);
        assert_eq!(field_of(Comment::parse(&huge).unwrap_err()).0, "comment");
        assert_eq!(Comment::parse(" keep  me ").unwrap().as_str(), " keep  me ");
    }
}
