//! Every environment variable larder defines, with its meaning, and the one door
//! through which larder-core reads the environment.
//!
//! `clippy.toml` forbids `std::env::var`, `var_os`, `vars` and `vars_os` elsewhere
//! (`disallowed-methods`), so each read of the environment goes through [`var`],
//! [`var_os`] or [`vars_os`] here, and each `LARDER_*` variable is listed in
//! [`ENV_VARS`] with who sets it. Other variables larder reads are those of the tools
//! it wraps (cargo's `CARGO_*`, `OUT_DIR`, `RUSTC`, `CC`...); which of them enter a key
//! is decided in `larder_key::env`.

use std::ffi::OsString;

/// Who sets a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetBy {
    /// The user (the configuration table of [`crate::config`]).
    User,
    /// `larder cargo`, for the processes of the build it runs.
    LarderCargo,
}

/// A variable larder defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvVar {
    /// Its name.
    pub name: &'static str,
    /// What it means.
    pub doc: &'static str,
    /// Who sets it.
    pub set_by: SetBy,
}

const fn user(name: &'static str, doc: &'static str) -> EnvVar {
    EnvVar {
        name,
        doc,
        set_by: SetBy::User,
    }
}

const fn internal(name: &'static str, doc: &'static str) -> EnvVar {
    EnvVar {
        name,
        doc,
        set_by: SetBy::LarderCargo,
    }
}

/// Every `LARDER_*` variable, with its meaning.
pub const ENV_VARS: &[EnvVar] = &[
    user("LARDER_CONFIG", "path of the TOML configuration file"),
    user("LARDER_DIR", "store directory"),
    user("LARDER_MAX_SIZE", "size bound of the local store"),
    user(
        "LARDER_DISABLE",
        "pass every invocation straight to the tool",
    ),
    user(
        "LARDER_EXTRA_ENV",
        "extra environment variables in every key",
    ),
    user(
        "LARDER_EXTRA_FILES",
        "extra files whose content is in every key",
    ),
    user("LARDER_BUILD_SCRIPT_CACHE", "cache build-script runs"),
    user(
        "LARDER_BACKGROUND_STORE",
        "store results in a background process",
    ),
    user("LARDER_COMPRESSION_LEVEL", "zstd level for stored blobs"),
    user(
        "LARDER_C_DEPEND",
        "key C compiles by their dependency file, not their preprocessed text",
    ),
    user(
        "LARDER_TRACE",
        "file for a timeline of each larder cargo build (Chrome trace format)",
    ),
    user(
        "LARDER_INCREMENTAL",
        "whether rustc compiles with cargo's -C incremental (auto: not in a CI run)",
    ),
    user(
        "LARDER_PREFETCH",
        "fetch the last build's entries from the remotes before cargo starts",
    ),
    user(
        "LARDER_SEED",
        "plant the last build's registry units in the target directory before cargo starts",
    ),
    user(
        "LARDER_MAX_AGE",
        "entries unused for this long are removed when the store is trimmed",
    ),
    user(
        "LARDER_DEBUG",
        "keep the key inputs of every invocation for `larder explain`",
    ),
    user("LARDER_REMOTE", "remote tiers, read and written (URLs)"),
    user("LARDER_REMOTE_READ_ONLY", "remote tiers, only read (URLs)"),
    user(
        "LARDER_REMOTE_TIMEOUT",
        "deadline of one remote call, in seconds",
    ),
    user(
        "LARDER_REMOTE_WRITE",
        "when remote tiers are written: always, never or protected",
    ),
    user(
        "LARDER_SIGNING_KEY",
        "secret key file that signs every action record stored",
    ),
    user(
        "LARDER_TRUSTED_KEYS",
        "public keys whose signatures are trusted",
    ),
    user(
        "LARDER_VERIFY",
        "percentage of each `larder cargo` build's hits compiled again and compared",
    ),
    user(
        "LARDER_REQUIRE_SIGNATURES",
        "tiers whose action records need a trusted signature",
    ),
    user(
        "LARDER_REPORT",
        "per-build JSON-lines report file (`larder cargo` sets one when unset)",
    ),
    user("LARDER_LOG", "tracing filter for debug logs on stderr"),
    user(
        "LARDER_BUILD_PIE",
        "when building larder (crates/larder/build.rs): link a position-independent executable",
    ),
    internal(
        "LARDER_PENDING",
        "lock file `larder cargo` waits on for background stores",
    ),
    internal(
        "LARDER_BUILD_ID",
        "the build whose per-build state (warnings, remote failures) a process shares",
    ),
    internal(
        "LARDER_REAL_CC",
        "the C compiler behind the `cc` shim that `CC` names",
    ),
    internal(
        "LARDER_REAL_CXX",
        "the C++ compiler behind the `c++` shim that `CXX` names",
    ),
];

/// The value of `name`, if set and UTF-8.
#[allow(clippy::disallowed_methods)] // the one door
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The value of `name`, if set.
#[allow(clippy::disallowed_methods)] // the one door
pub fn var_os(name: &str) -> Option<OsString> {
    std::env::var_os(name)
}

/// Every variable of the environment.
#[allow(clippy::disallowed_methods)] // the one door
pub fn vars_os() -> std::env::VarsOs {
    std::env::vars_os()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_larder_variable_read_is_listed_once() {
        let mut names: Vec<&str> = ENV_VARS.iter().map(|v| v.name).collect();
        names.sort();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n, "a variable is listed twice");
        // Every `LARDER_*` name spelled in larder-core's sources is listed.
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut stack = vec![src];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                    continue;
                }
                let text = std::fs::read_to_string(&p).unwrap();
                for (i, _) in text.match_indices("\"LARDER_") {
                    let name: String = text[i + 1..]
                        .chars()
                        .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                        .collect();
                    if name.ends_with('_') {
                        continue; // a prefix, as in "LARDER_" itself
                    }
                    assert!(
                        names.contains(&name.as_str()),
                        "{name} (in {}) is not in ENV_VARS",
                        p.display()
                    );
                }
            }
        }
    }
}
