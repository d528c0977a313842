//! The API page's example ("Stop and quarantine file", learn.microsoft.com/defender-endpoint/api/
//! stop-and-quarantine-file): the device, the file and the comment it shows, and two more
//! devices that have seen the file, so a fan-out to `everywhere` has something to find. The
//! demo, `simulate` and the tests all use these values.

/// The page's device.
pub const MACHINE: &str = "1e5bc9d7e413ddd7902c2932e418702b84d0cc07";
/// The page's file.
pub const SHA1: &str = "87662bc3d60e4200ceaf7aae249d1c343f4b83c9";
/// The page's comment.
pub const COMMENT: &str =
    "Stop and quarantine file on machine due to alert 441688558380765161_2136280442";
/// The devices `simulate` says have seen [`SHA1`]: the page's device and two more.
pub const FLEET: [&str; 3] = [
    MACHINE,
    "7f1c0a3e5b2d4c6e8f9a0b1c2d3e4f5a6b7c8d9e",
    "a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9",
];
