//! `larder config`: the effective configuration, each setting with where it came from (a
//! variable, the file, the default), remote credentials redacted; and the `LARDER_*`
//! variables larder does not know, each with the known name it is closest to.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Config;
use super::env::ENV_VARS;
use crate::human::bytes as human_bytes;

/// One setting as it is in effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Setting {
    /// The variable that sets it.
    pub variable: &'static str,
    /// The file key that sets it, if the file can.
    pub key: Option<&'static str>,
    /// The value in effect, credentials redacted.
    pub value: String,
    /// `env`, `file <path>` or `default`.
    pub origin: String,
}

/// A `LARDER_*` variable larder does not read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unknown {
    /// Its name.
    pub variable: String,
    /// The known variable it is likely a misspelling of.
    pub did_you_mean: Option<&'static str>,
}

/// The settings of `config` loaded from `env`, in the order of the configuration table.
pub fn settings(config: &Config, env: &BTreeMap<String, String>) -> Vec<Setting> {
    let list = |v: Vec<String>| {
        if v.is_empty() {
            "(none)".to_string()
        } else {
            v.join(",")
        }
    };
    let remotes = |read_only: bool| {
        list(
            config
                .remotes
                .iter()
                .filter(|r| r.read_only == read_only)
                .map(larder_remote::RemoteSpec::name)
                .collect(),
        )
    };
    let timeout = config
        .remotes
        .first()
        .map_or(larder_remote::DEFAULT_TIMEOUT, |r| r.timeout);
    let requiring: Vec<String> = config
        .require_local_signatures
        .then(|| "local".to_string())
        .into_iter()
        .chain(
            config
                .remotes
                .iter()
                .filter(|r| r.require_signatures)
                .map(larder_remote::RemoteSpec::name),
        )
        .collect();
    let rows: [(&'static str, Option<&'static str>, String); 26] = [
        (
            "LARDER_CONFIG",
            None,
            config
                .file
                .as_ref()
                .map_or("(none)".into(), |f| f.display().to_string()),
        ),
        ("LARDER_DIR", Some("dir"), config.dir.display().to_string()),
        (
            "LARDER_MAX_SIZE",
            Some("max_size"),
            if config.max_size == u64::MAX {
                "no bound".to_string()
            } else {
                format!(
                    "{} ({} bytes)",
                    human_bytes(config.max_size),
                    config.max_size
                )
            },
        ),
        (
            "LARDER_MAX_AGE",
            Some("max_age"),
            config.max_age.map_or("(none)".into(), |d| {
                humantime::format_duration(d).to_string()
            }),
        ),
        ("LARDER_DEBUG", Some("debug"), config.debug.to_string()),
        (
            "LARDER_DISABLE",
            Some("disable"),
            config.disable.to_string(),
        ),
        (
            "LARDER_EXTRA_ENV",
            Some("extra_env"),
            list(config.extra_env.clone()),
        ),
        (
            "LARDER_EXTRA_FILES",
            Some("extra_files"),
            list(
                config
                    .extra_files
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect(),
            ),
        ),
        (
            "LARDER_BUILD_SCRIPT_CACHE",
            Some("build_script_cache"),
            config.build_script_cache.to_string(),
        ),
        (
            "LARDER_BACKGROUND_STORE",
            Some("background_store"),
            config.background_store.to_string(),
        ),
        (
            "LARDER_C_DEPEND",
            Some("c_depend"),
            config.c_depend.to_string(),
        ),
        (
            "LARDER_COMPRESSION_LEVEL",
            Some("compression_level"),
            config.compression_level.to_string(),
        ),
        (
            "LARDER_INCREMENTAL",
            Some("incremental"),
            format!(
                "{} ({}: {})",
                config.incremental.policy.as_str(),
                if config.incremental.keep {
                    "kept"
                } else {
                    "dropped"
                },
                config.incremental.why
            ),
        ),
        (
            "LARDER_PREFETCH",
            Some("prefetch"),
            config.prefetch.to_string(),
        ),
        ("LARDER_SEED", Some("seed"), config.seed.to_string()),
        ("LARDER_REMOTE", Some("remote"), remotes(false)),
        (
            "LARDER_REMOTE_READ_ONLY",
            Some("remote_read_only"),
            remotes(true),
        ),
        (
            "LARDER_REMOTE_TIMEOUT",
            Some("remote_timeout"),
            format!("{} s", timeout.as_secs_f64()),
        ),
        (
            "LARDER_REMOTE_WRITE",
            Some("remote_write"),
            format!(
                "{} ({}: {})",
                config.remote_write.policy.as_str(),
                if config.remote_write.writes {
                    "writes"
                } else {
                    "no writes"
                },
                config.remote_write.why
            ),
        ),
        (
            "LARDER_SIGNING_KEY",
            Some("signing_key"),
            config.signing_key.as_ref().map_or("(none)".into(), |k| {
                format!("{} (public {})", k.name, k.public())
            }),
        ),
        (
            "LARDER_TRUSTED_KEYS",
            Some("trusted_keys"),
            list(
                config
                    .trusted_keys
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
            ),
        ),
        (
            "LARDER_REQUIRE_SIGNATURES",
            Some("require_signatures"),
            list(requiring),
        ),
        (
            "LARDER_VERIFY",
            Some("verify"),
            config
                .verify
                .map_or("(none)".into(), |p| format!("{p}% of hits")),
        ),
        (
            "LARDER_REPORT",
            None,
            config
                .report
                .as_ref()
                .map_or("(none)".into(), |f| f.display().to_string()),
        ),
        (
            "LARDER_LOG",
            None,
            env.get("LARDER_LOG").cloned().unwrap_or("(none)".into()),
        ),
        (
            crate::trace::VAR,
            None,
            env.get(crate::trace::VAR)
                .cloned()
                .unwrap_or("(none)".into()),
        ),
    ];
    rows.into_iter()
        .map(|(variable, key, value)| {
            let origin = if env.get(variable).is_some_and(|v| !v.is_empty()) {
                "env".to_string()
            } else if let (Some(k), Some(file)) = (key, &config.file)
                && config.file_keys.iter().any(|f| f == k)
            {
                format!("file {}", file.display())
            } else {
                "default".to_string()
            };
            Setting {
                variable,
                key,
                value,
                origin,
            }
        })
        .collect()
}

/// Prefixes (after `LARDER_`) of the variables larder's own scripts and tests read
/// (`scripts/`, `bench/`, the test suite): not larder's settings, and not warned about.
const SCRIPT_PREFIXES: &[&str] = &["TEST_", "E2E_", "DIFF_", "BENCH_", "SERVERS_", "BIN"];

/// The `LARDER_*` variables of `env` that larder does not read.
pub fn unknown_vars(env: &BTreeMap<String, String>) -> Vec<Unknown> {
    env.keys()
        .filter(|k| {
            k.strip_prefix("LARDER_").is_some_and(|rest| {
                !SCRIPT_PREFIXES.iter().any(|p| rest.starts_with(p))
                    && !ENV_VARS.iter().any(|v| v.name == *k)
            })
        })
        .map(|k| Unknown {
            variable: k.clone(),
            did_you_mean: ENV_VARS
                .iter()
                .map(|v| (strsim::levenshtein(k, v.name), v.name))
                .filter(|(d, _)| *d <= 3)
                .min()
                .map(|(_, name)| name),
        })
        .collect()
}

/// One line per unknown variable, for a warning.
pub fn unknown_message(u: &Unknown) -> String {
    match u.did_you_mean {
        Some(known) => format!(
            "unknown variable {} (did you mean {known}?); it is ignored",
            u.variable
        ),
        None => format!("unknown variable {}; it is ignored", u.variable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::env;

    /// `LARDER_<suffix>`, spelled so that the check that every variable larder reads is
    /// listed does not take these made-up names for ones it reads.
    fn larder(suffix: &str) -> String {
        format!("LARDER_{suffix}")
    }

    #[test]
    fn misspelled_variables_are_named_with_the_likely_one() {
        let names = [
            "DIRR",
            "MAXSIZE",
            "DIR",
            "SOMETHING_ELSE_ENTIRELY",
            "TEST_REDIS",
        ]
        .map(larder);
        let e: BTreeMap<String, String> = names.iter().map(|n| (n.clone(), "x".into())).collect();
        let u = unknown_vars(&e);
        assert_eq!(u.len(), 3, "{u:?}");
        assert_eq!(u[0].variable, larder("DIRR"));
        assert_eq!(u[0].did_you_mean.map(str::to_string), Some(larder("DIR")));
        assert_eq!(
            u[1].did_you_mean.map(str::to_string),
            Some(larder("MAX_SIZE"))
        );
        assert_eq!(u[2].did_you_mean, None);
    }

    #[test]
    fn origins_and_redaction() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(
            &file,
            "compression_level = 3\nremote = [\"redis://:hunter2@127.0.0.1:6379/0\"]\n",
        )
        .unwrap();
        let e = env(&[
            ("HOME", dir.path().to_str().unwrap()),
            ("LARDER_CONFIG", file.to_str().unwrap()),
            ("LARDER_MAX_SIZE", "5G"),
        ]);
        let config = Config::from_env(&e).unwrap();
        let s = settings(&config, &e);
        let get = |v: &str| s.iter().find(|x| x.variable == v).unwrap();
        assert_eq!(get("LARDER_MAX_SIZE").origin, "env");
        assert_eq!(
            get("LARDER_COMPRESSION_LEVEL").origin,
            format!("file {}", file.display())
        );
        assert_eq!(get("LARDER_COMPRESSION_LEVEL").value, "3");
        assert_eq!(get("LARDER_DISABLE").origin, "default");
        let remote = &get("LARDER_REMOTE").value;
        assert!(!remote.contains("hunter2"), "{remote}");
        assert!(remote.contains("127.0.0.1:6379"), "{remote}");
    }
}
