//! The absolute roots every tool's paths are normalized against, where they are found
//! the same way for all of them.

use std::path::PathBuf;

/// `CARGO_HOME`, else `$HOME/.cargo` (cargo's own default).
pub fn cargo_home() -> Option<PathBuf> {
    crate::config::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| crate::config::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
}

/// Whether the package in `dir` is a registry or git checkout under [`cargo_home`],
/// whose sources never change in place.
pub fn is_immutable_package(dir: &std::path::Path) -> bool {
    cargo_home().is_some_and(|home| {
        ["registry/src", "git/checkouts"]
            .iter()
            .any(|d| dir.starts_with(home.join(d)))
    })
}
