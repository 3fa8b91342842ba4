//! The `cargo:` directives a build script prints: what it says it read, and the values
//! that tell whether it probed the system.

use larder_key::Roots;

/// Directives of a build script's stdout.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Directives {
    /// `rerun-if-changed` paths.
    pub(super) rerun_files: Vec<String>,
    /// `rerun-if-env-changed` variables.
    pub(super) rerun_env: Vec<String>,
    /// Values of other directives (link paths, env values, cfgs).
    pub(super) values: Vec<String>,
}

/// Parses `cargo:` and `cargo::` lines; other lines are ignored.
pub(super) fn parse_directives(stdout: &str) -> Directives {
    let mut d = Directives::default();
    for line in stdout.lines() {
        let Some(rest) = line
            .strip_prefix("cargo::")
            .or_else(|| line.strip_prefix("cargo:"))
        else {
            continue;
        };
        let Some((key, value)) = rest.split_once('=') else {
            continue;
        };
        match key {
            "rerun-if-changed" => d.rerun_files.push(value.to_string()),
            "rerun-if-env-changed" => d.rerun_env.push(value.to_string()),
            "warning" | "error" => {}
            _ => d.values.push(value.to_string()),
        }
    }
    d
}

/// The first absolute path in `values` that is outside every root.
pub(super) fn system_path(values: &[String], roots: &Roots) -> Option<String> {
    for v in values {
        let normalized = roots.normalize_text(v);
        for token in normalized.split(|c: char| c == '=' || c == ',' || c.is_whitespace()) {
            if token.starts_with('/') {
                return Some(token.to_string());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn directives_old_and_new_syntax() {
        let d = parse_directives(
            "cargo:rerun-if-changed=build.rs\ncargo::rerun-if-env-changed=CC\ncargo:rustc-cfg=has_x\ncargo:warning=/not/a/probe\nplain output\n",
        );
        assert_eq!(d.rerun_files, vec!["build.rs"]);
        assert_eq!(d.rerun_env, vec!["CC"]);
        assert_eq!(d.values, vec!["has_x"]);
    }

    #[test]
    fn system_paths_are_found_outside_roots_only() {
        let roots = Roots::new([("target", PathBuf::from("/w/target"))]);
        let inside = vec!["native=/w/target/debug/build/x/out".to_string()];
        assert_eq!(system_path(&inside, &roots), None);
        let outside = vec!["native=/usr/lib/x86_64-linux-gnu".to_string()];
        assert_eq!(
            system_path(&outside, &roots).as_deref(),
            Some("/usr/lib/x86_64-linux-gnu")
        );
    }
}
