//! A secret (bearer token, client secret) that does not print itself and is wiped from memory
//! when dropped.

use std::fmt;
use zeroize::Zeroizing;

/// A secret string: `Debug` and `Display` show `[redacted]`, every copy is zeroised when
/// dropped, and the only way to the value is [`Secret::expose`], for the places that must send it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(Zeroizing::new(value.into()))
    }

    /// The value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_formats_its_value() {
        let secret = Secret::new("eyJ-token");
        assert_eq!(
            format!("{secret} {secret:?}"),
            "[redacted] Secret([redacted])"
        );
        assert_eq!(secret.expose(), "eyJ-token");
    }

    /// Compiles only while what a `Secret` holds wipes itself on drop: a change to a plain
    /// `String` breaks the build here. (That the bytes are wiped cannot be read back safely
    /// once freed; `zeroize`'s own tests cover that.)
    #[test]
    fn what_it_holds_is_wiped_on_drop() {
        fn wiped_on_drop<T: zeroize::ZeroizeOnDrop>(_: &T) {}
        let secret = Secret::new("eyJ-token");
        wiped_on_drop(&secret.0);
    }
}
