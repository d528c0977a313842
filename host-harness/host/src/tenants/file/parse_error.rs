//! A TOML error as one line that names where it is, without the file's text: the TOML crate's
//! own message quotes the offending line, which in a credential table may be a secret pasted in
//! the wrong place. Inside a credential table only messages that name keys are kept.

/// `line L, column C: what`, never quoting the file; inside a credential table, a message that
/// would quote a value is replaced by one that does not.
pub fn describe(error: &toml::de::Error, text: &str) -> String {
    let Some(span) = error.span() else {
        return escaped_message(error.message(), false);
    };
    let start = span.start.min(text.len());
    let end = span.end.clamp(start, text.len());
    let (line, column) = position(text, start);
    let in_credential = (line..=position(text, end).0).any(|l| credential_context(text, l));
    format!(
        "line {line}, column {column}: {}",
        escaped_message(error.message(), in_credential)
    )
}

/// Messages that name a key or the file's structure, never a value.
fn names_keys_only(message: &str) -> bool {
    [
        "unknown field",
        "missing field",
        "duplicate key",
        "missing `kind`",
    ]
    .iter()
    .any(|prefix| message.starts_with(prefix))
}

fn escaped_message(message: &str, in_credential: bool) -> String {
    if in_credential && !names_keys_only(message) {
        return "a credential setting is not valid (its value is not shown); see README's \
                tenants file section for the keys each kind takes"
            .to_owned();
    }
    crate::escape::escape(message)
}

/// The 1-based line and column of byte `offset`.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Whether 1-based `line` is in a credential table: after a `[tenant.credential]` header and
/// before the next header, or a line whose key names it however it is spelled (`credential =
/// { ... }`, `"credential" = ...`, `credential.secret-env = ...`).
fn credential_context(text: &str, line: usize) -> bool {
    let lines: Vec<&str> = text.lines().collect();
    let Some(index) = line.checked_sub(1) else {
        return false;
    };
    let here = lines.get(index).copied().unwrap_or_default();
    if here
        .split('=')
        .next()
        .is_some_and(|key| key.contains("credential"))
    {
        return true;
    }
    lines
        .iter()
        .take(index.saturating_add(1))
        .rev()
        .map(|l| l.trim())
        .find(|l| l.starts_with('['))
        .is_some_and(|header| header.contains("credential"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_for(text: &str) -> String {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct File {
            tenant: Vec<Tenant>,
        }
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Tenant {
            name: String,
            credential: Credential,
        }
        #[derive(Debug, serde::Deserialize)]
        #[serde(tag = "kind", deny_unknown_fields)]
        #[allow(dead_code)]
        enum Credential {
            #[serde(rename = "client-secret")]
            Secret {
                #[serde(rename = "secret-env")]
                secret_env: String,
            },
        }
        let error = toml::from_str::<File>(text).expect_err("an error");
        describe(&error, text)
    }

    #[test]
    fn a_secret_in_the_wrong_place_is_never_echoed() {
        let cases = [
            "[[tenant]]\nname = \"a\"\ncredential = \"hunter2-secret\"\n",
            "[[tenant]]\nname = \"a\"\n[tenant.credential]\nkind = \"client-secret\"\nsecret-env = 5\n",
            "[[tenant]]\nname = \"a\"\n[tenant.credential]\nkind = \"client-secret\"\nsecret-env = \"hunter2-secret\nx = 1\n",
            "[[tenant]]\nname = \"a\"\n[tenant.credential]\nkind = \"hunter2-secret\"\n",
            "[[tenant]]\nname = \"a\"\n\"credential\" = \"hunter2-secret\"\n",
            "[[tenant]]\nname = \"a\"\n'credential' = 5\nx = \"hunter2-secret\n",
        ];
        for text in cases {
            let message = error_for(text);
            assert!(!message.contains("hunter2"), "{message}");
            assert!(message.starts_with("line "), "{message}");
        }
    }

    #[test]
    fn keys_and_places_are_named() {
        let text = "[[tenant]]\nname = \"a\"\n[tenant.credential]\nkind = \"client-secret\"\nsecret-env = \"S\"\nsecret = \"hunter2\"\n";
        let message = error_for(text);
        assert!(message.contains("unknown field `secret`"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
        let outside = "[[tenant]]\nname = 5\n";
        let message = error_for(outside);
        assert!(message.starts_with("line 2, column 8"), "{message}");
        assert!(message.contains("invalid type"), "{message}");
    }

    #[test]
    fn positions_count_lines_and_characters() {
        assert_eq!(position("ab\ncd", 4), (2, 2));
        assert_eq!(position("", 0), (1, 1));
        assert!(credential_context(
            "[[tenant]]\n[tenant.credential]\nkind = 1",
            3
        ));
        assert!(!credential_context("[[tenant]]\nname = 1", 2));
    }
}
