//! `LARDER_INCREMENTAL`: whether rustc compiles with cargo's `-C incremental`.
//!
//! cargo asks for incremental compilation of the workspace's own crates in the dev
//! profile. The state it keeps (`target/<profile>/incremental`) only pays off at the
//! next compile of the same crate in the same target directory: a CI runner throws it
//! away, and a compile with no earlier state is slower than one without
//! `-C incremental` (ripgrep's `rg`, debug: 3.5 s against 2.6 s). So in a CI run larder
//! drops `-C incremental` from every rustc invocation before it is keyed and compiled,
//! as rust-cache sets `CARGO_INCREMENTAL=0`; the key then is that of a non-incremental
//! compile (incremental compiles partition code differently), and a hit is what one
//! gives. Elsewhere cargo's request is kept: an edit loop needs the state.
//!
//! | value | `-C incremental` |
//! |---|---|
//! | `auto` (default) | dropped in a CI run (`CI` set and not `false`/`0`, `TF_BUILD`, or `JENKINS_URL`), kept elsewhere |
//! | `on` (`true`) | kept as cargo asks |
//! | `off` (`false`) | always dropped |

use std::collections::BTreeMap;

/// The configured policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncrementalPolicy {
    /// Dropped in a CI run, kept elsewhere.
    Auto,
    /// Kept as cargo asks.
    On,
    /// Always dropped.
    Off,
}

/// What the values of `LARDER_INCREMENTAL` may be, for errors.
pub const EXPECTED: &str = "auto, on (true) or off (false)";

impl IncrementalPolicy {
    /// Parses `auto`, `on`/`true` or `off`/`false`.
    pub fn parse(text: &str) -> Option<IncrementalPolicy> {
        match text.trim() {
            "auto" => Some(IncrementalPolicy::Auto),
            "on" | "true" => Some(IncrementalPolicy::On),
            "off" | "false" => Some(IncrementalPolicy::Off),
            _ => None,
        }
    }

    /// The name in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            IncrementalPolicy::Auto => "auto",
            IncrementalPolicy::On => "on",
            IncrementalPolicy::Off => "off",
        }
    }

    /// Whether rustc keeps `-C incremental` under this policy in the environment
    /// `env`, and why.
    pub fn decide(self, env: &BTreeMap<String, String>) -> Incremental {
        let (keep, why) = match (self, ci_variable(env)) {
            (IncrementalPolicy::On, _) => (true, "on".to_string()),
            (IncrementalPolicy::Off, _) => (false, "off".to_string()),
            (IncrementalPolicy::Auto, Some(var)) => (
                false,
                format!("a CI run ({var}): its incremental state is thrown away"),
            ),
            (IncrementalPolicy::Auto, None) => (true, "not a CI run".to_string()),
        };
        Incremental {
            policy: self,
            keep,
            why,
        }
    }
}

/// Whether rustc compiles with cargo's `-C incremental`, by which policy, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incremental {
    /// The policy configured.
    pub policy: IncrementalPolicy,
    /// Whether `-C incremental` is kept.
    pub keep: bool,
    /// Why, in words (`a CI run (CI=true): ...`).
    pub why: String,
}

/// The variable that says this is a CI run (`CI=true`), if one does.
pub fn ci_variable(env: &BTreeMap<String, String>) -> Option<String> {
    let var = |k: &str| env.get(k).map(String::as_str).filter(|v| !v.is_empty());
    if let Some(v) = var("CI").filter(|v| !matches!(*v, "false" | "0")) {
        return Some(format!("CI={v}"));
    }
    ["TF_BUILD", "JENKINS_URL"]
        .into_iter()
        .find(|k| var(k).is_some())
        .map(|k| format!("{k} set"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::env;

    #[test]
    fn auto_drops_incremental_in_a_ci_run_only() {
        let auto = IncrementalPolicy::Auto;
        assert!(auto.decide(&env(&[])).keep);
        assert!(auto.decide(&env(&[("CI", "false")])).keep);
        assert!(auto.decide(&env(&[("CI", "0")])).keep);
        assert!(auto.decide(&env(&[("CI", "")])).keep);
        let ci = auto.decide(&env(&[("CI", "true")]));
        assert!(!ci.keep);
        assert!(ci.why.contains("CI=true"), "{}", ci.why);
        assert!(!auto.decide(&env(&[("TF_BUILD", "True")])).keep);
        assert!(!auto.decide(&env(&[("JENKINS_URL", "http://j")])).keep);
        assert!(IncrementalPolicy::On.decide(&env(&[("CI", "true")])).keep);
        assert!(!IncrementalPolicy::Off.decide(&env(&[])).keep);
    }

    #[test]
    fn values_parse() {
        assert_eq!(
            IncrementalPolicy::parse("auto"),
            Some(IncrementalPolicy::Auto)
        );
        assert_eq!(
            IncrementalPolicy::parse("true"),
            Some(IncrementalPolicy::On)
        );
        assert_eq!(
            IncrementalPolicy::parse(" off "),
            Some(IncrementalPolicy::Off)
        );
        assert_eq!(IncrementalPolicy::parse("yes"), None);
    }
}
