//! Which CI run this is, read from the variables CI systems set: whether it builds a
//! pull request, and whether its ref is protected. `LARDER_REMOTE_WRITE` decides from
//! it whether a build writes the remote tiers ([`WritePolicy`]).
//!
//! | system | detected by | pull request | protected ref |
//! |---|---|---|---|
//! | GitHub Actions | `GITHUB_ACTIONS=true` | `GITHUB_EVENT_NAME` is `pull_request`, `pull_request_target`, `pull_request_review` or `pull_request_review_comment` | `GITHUB_REF_PROTECTED=true` |
//! | GitLab CI | `GITLAB_CI=true` | `CI_MERGE_REQUEST_IID` set, or `CI_PIPELINE_SOURCE=merge_request_event` | `CI_COMMIT_REF_PROTECTED=true` |
//! | Buildkite | `BUILDKITE=true` | `BUILDKITE_PULL_REQUEST` set and not `false` | `BUILDKITE_BRANCH` equals `BUILDKITE_PIPELINE_DEFAULT_BRANCH` (Buildkite has no protection flag) |

use std::collections::BTreeMap;

/// What the CI variables say of this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiRun {
    /// `GitHub Actions`, `GitLab CI` or `Buildkite`.
    pub system: &'static str,
    /// The run builds a pull (merge) request.
    pub pull_request: bool,
    /// The run builds a protected ref (and is not a pull request).
    pub protected: bool,
    /// The variables that said so (`GITHUB_EVENT_NAME=pull_request`), for messages.
    pub evidence: String,
}

/// The CI run the variables `env` describe, if any.
pub fn detect(env: &BTreeMap<String, String>) -> Option<CiRun> {
    let var = |k: &str| env.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let is_true = |k: &str| var(k) == Some("true");
    let shown = |k: &str| format!("{k}={}", var(k).unwrap_or("(unset)"));
    if is_true("GITHUB_ACTIONS") {
        let event = var("GITHUB_EVENT_NAME").unwrap_or("");
        let pull_request = matches!(
            event,
            "pull_request"
                | "pull_request_target"
                | "pull_request_review"
                | "pull_request_review_comment"
        );
        return Some(CiRun {
            system: "GitHub Actions",
            pull_request,
            protected: !pull_request && is_true("GITHUB_REF_PROTECTED"),
            evidence: format!(
                "{} {}",
                shown("GITHUB_EVENT_NAME"),
                shown("GITHUB_REF_PROTECTED")
            ),
        });
    }
    if is_true("GITLAB_CI") {
        let pull_request = var("CI_MERGE_REQUEST_IID").is_some()
            || var("CI_PIPELINE_SOURCE") == Some("merge_request_event");
        return Some(CiRun {
            system: "GitLab CI",
            pull_request,
            protected: !pull_request && is_true("CI_COMMIT_REF_PROTECTED"),
            evidence: format!(
                "{} {} {}",
                shown("CI_PIPELINE_SOURCE"),
                shown("CI_MERGE_REQUEST_IID"),
                shown("CI_COMMIT_REF_PROTECTED")
            ),
        });
    }
    if is_true("BUILDKITE") {
        let pull_request = var("BUILDKITE_PULL_REQUEST").is_some_and(|v| v != "false");
        let branch = var("BUILDKITE_BRANCH");
        let default = var("BUILDKITE_PIPELINE_DEFAULT_BRANCH");
        return Some(CiRun {
            system: "Buildkite",
            pull_request,
            protected: !pull_request && branch.is_some() && branch == default,
            evidence: format!(
                "{} {} {}",
                shown("BUILDKITE_PULL_REQUEST"),
                shown("BUILDKITE_BRANCH"),
                shown("BUILDKITE_PIPELINE_DEFAULT_BRANCH")
            ),
        });
    }
    None
}

/// `LARDER_REMOTE_WRITE`: when a build writes the remote tiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WritePolicy {
    /// Unset: write, except in a CI run for a pull request.
    Default,
    /// Write wherever the build runs.
    Always,
    /// Never write: read only.
    Never,
    /// Write only in a CI run of a protected ref (not a pull request, not a laptop).
    Protected,
}

impl WritePolicy {
    /// Parses `always`, `never` or `protected`.
    pub fn parse(text: &str) -> Option<WritePolicy> {
        match text.trim() {
            "always" => Some(WritePolicy::Always),
            "never" => Some(WritePolicy::Never),
            "protected" => Some(WritePolicy::Protected),
            _ => None,
        }
    }

    /// The name in the configuration (`default` when unset).
    pub fn as_str(self) -> &'static str {
        match self {
            WritePolicy::Default => "default",
            WritePolicy::Always => "always",
            WritePolicy::Never => "never",
            WritePolicy::Protected => "protected",
        }
    }

    /// Whether a build in `ci` writes the remotes under this policy, and why.
    pub fn decide(self, ci: Option<&CiRun>) -> RemoteWrite {
        let (writes, why) = match (self, ci) {
            (WritePolicy::Always, _) => (true, "always".to_string()),
            (WritePolicy::Never, _) => (false, "never".to_string()),
            (WritePolicy::Default, Some(ci)) if ci.pull_request => (
                false,
                format!("a {} pull-request run ({})", ci.system, ci.evidence),
            ),
            (WritePolicy::Default, _) => (true, "not a pull-request run".to_string()),
            (WritePolicy::Protected, Some(ci)) if ci.protected => (
                true,
                format!("a {} run of a protected ref ({})", ci.system, ci.evidence),
            ),
            (WritePolicy::Protected, Some(ci)) => (
                false,
                format!(
                    "a {} run not of a protected ref ({})",
                    ci.system, ci.evidence
                ),
            ),
            (WritePolicy::Protected, None) => (false, "not a CI run".to_string()),
        };
        RemoteWrite {
            policy: self,
            writes,
            why,
        }
    }
}

/// Whether this build writes the remote tiers, by which policy, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteWrite {
    /// The policy configured.
    pub policy: WritePolicy,
    /// Whether the remotes are written.
    pub writes: bool,
    /// Why, in words (`a GitHub Actions pull-request run (GITHUB_EVENT_NAME=pull_request ...)`).
    pub why: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::env;

    #[test]
    fn pull_requests_and_protected_refs_of_each_system() {
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<(bool, bool)>);
        let cases: [Case<'_>; 9] = [
            (&[], None),
            (&[("CI", "true")], None),
            (
                &[
                    ("GITHUB_ACTIONS", "true"),
                    ("GITHUB_EVENT_NAME", "pull_request"),
                ],
                Some((true, false)),
            ),
            (
                &[
                    ("GITHUB_ACTIONS", "true"),
                    ("GITHUB_EVENT_NAME", "push"),
                    ("GITHUB_REF_PROTECTED", "true"),
                ],
                Some((false, true)),
            ),
            (
                &[
                    ("GITHUB_ACTIONS", "true"),
                    ("GITHUB_EVENT_NAME", "push"),
                    ("GITHUB_REF_PROTECTED", "false"),
                ],
                Some((false, false)),
            ),
            (
                &[
                    ("GITLAB_CI", "true"),
                    ("CI_MERGE_REQUEST_IID", "7"),
                    ("CI_COMMIT_REF_PROTECTED", "true"),
                ],
                Some((true, false)),
            ),
            (
                &[
                    ("GITLAB_CI", "true"),
                    ("CI_PIPELINE_SOURCE", "push"),
                    ("CI_COMMIT_REF_PROTECTED", "true"),
                ],
                Some((false, true)),
            ),
            (
                &[
                    ("BUILDKITE", "true"),
                    ("BUILDKITE_PULL_REQUEST", "42"),
                    ("BUILDKITE_BRANCH", "main"),
                    ("BUILDKITE_PIPELINE_DEFAULT_BRANCH", "main"),
                ],
                Some((true, false)),
            ),
            (
                &[
                    ("BUILDKITE", "true"),
                    ("BUILDKITE_PULL_REQUEST", "false"),
                    ("BUILDKITE_BRANCH", "main"),
                    ("BUILDKITE_PIPELINE_DEFAULT_BRANCH", "main"),
                ],
                Some((false, true)),
            ),
        ];
        for (vars, want) in cases {
            let got = detect(&env(vars)).map(|c| (c.pull_request, c.protected));
            assert_eq!(got, want, "{vars:?}");
        }
    }

    #[test]
    fn each_policy_decides() {
        let pr = detect(&env(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_EVENT_NAME", "pull_request"),
        ]));
        let main = detect(&env(&[
            ("GITLAB_CI", "true"),
            ("CI_COMMIT_REF_PROTECTED", "true"),
        ]));
        let writes = |p: WritePolicy, ci: &Option<CiRun>| p.decide(ci.as_ref()).writes;
        assert!(!writes(WritePolicy::Default, &pr));
        assert!(writes(WritePolicy::Default, &main));
        assert!(writes(WritePolicy::Default, &None));
        assert!(writes(WritePolicy::Always, &pr));
        assert!(!writes(WritePolicy::Never, &main));
        assert!(!writes(WritePolicy::Protected, &pr));
        assert!(writes(WritePolicy::Protected, &main));
        assert!(!writes(WritePolicy::Protected, &None));
        let why = WritePolicy::Default.decide(pr.as_ref()).why;
        assert!(why.contains("GITHUB_EVENT_NAME=pull_request"), "{why}");
    }
}
