//! Text from outside (Entra's and the API's answers, proxies, files) made safe to show: control
//! characters are written as escapes, so nothing received can move a terminal's cursor, set its
//! title or forge a log line; so are the characters that reorder or break text where it is shown
//! (bidirectional overrides and isolates, line and paragraph separators), so nothing received
//! can make a line read other than it is.

/// `text` with every control character (C0, DEL, C1), bidirectional formatting character and
/// line or paragraph separator written as `\u{..}` (tab, newline and carriage return as `\t`,
/// `\n`, `\r`).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if is_unsafe(c) => {
                out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out
}

/// Whether `c` is one [`escape`] writes as an escape: a control character, a bidirectional
/// formatting character, or a line or paragraph separator.
pub fn is_unsafe(c: char) -> bool {
    c.is_control() || reorders(c)
}

/// Marks, embeddings, overrides and isolates (Unicode's bidirectional formatting characters),
/// and the line and paragraph separators.
fn reorders(c: char) -> bool {
    matches!(
        c,
        '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
            | '\u{2028}' | '\u{2029}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_escapes_and_the_rest_stays() {
        assert_eq!(escape("AADSTS7000215: Invalid"), "AADSTS7000215: Invalid");
        assert_eq!(escape("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(escape("x\u{7}\u{9b}y\r\n\t"), "x\\u{7}\\u{9b}y\\r\\n\\t");
        assert_eq!(escape("é ✓"), "é ✓");
        assert_eq!(
            escape("a\u{202e}b\u{2066}c\u{2028}d"),
            "a\\u{202e}b\\u{2066}c\\u{2028}d"
        );
    }
}
