//! The API page's example values, for the component's own tests (the host's tests and demo
//! take theirs from the simulator crate's `example` module).

/// The page's device.
pub const MACHINE: &str = "1e5bc9d7e413ddd7902c2932e418702b84d0cc07";
/// The page's file.
pub const SHA1: &str = "87662bc3d60e4200ceaf7aae249d1c343f4b83c9";
