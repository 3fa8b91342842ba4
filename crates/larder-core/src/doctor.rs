//! `larder doctor`: checks of the setup, one line each with a fix when it fails. The
//! configuration parses; no unknown `LARDER_*` variable; the toolchain answers; the local
//! store can be written and read back, and a sample of its blobs match their digests;
//! each remote answers, and a writable one takes a probe entry and gives it back; cargo is
//! told to use larder (or another wrapper is named). Any failure makes the exit code 1.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use larder_digest::Digest;
use larder_store::{Namespace, Store};
use serde::Serialize;

use crate::config::Config;

/// How many blobs are read back and hashed.
const BLOB_SAMPLE: usize = 64;

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// What to do, when it failed.
    pub fix: Option<String>,
}

fn pass(name: &str, detail: String) -> Check {
    Check {
        name: name.to_string(),
        ok: true,
        detail,
        fix: None,
    }
}

fn fail(name: &str, detail: String, fix: &str) -> Check {
    Check {
        name: name.to_string(),
        ok: false,
        detail,
        fix: Some(fix.to_string()),
    }
}

/// Runs every check with the configuration `env` gives.
pub fn run(env: &BTreeMap<String, String>) -> Vec<Check> {
    let mut checks = Vec::new();
    let config = match Config::from_env(env) {
        Ok(c) => {
            checks.push(pass(
                "configuration",
                c.file
                    .as_ref()
                    .map_or("no file; variables and defaults".into(), |f| {
                        format!("file {}", f.display())
                    }),
            ));
            c
        }
        Err(e) => {
            checks.push(fail(
                "configuration",
                e.to_string(),
                "correct the variable or key it names (`larder config` shows the rest)",
            ));
            return checks;
        }
    };
    let unknown = crate::config::show::unknown_vars(env);
    checks.push(if unknown.is_empty() {
        pass("variables", "every LARDER_* variable is known".into())
    } else {
        fail(
            "variables",
            unknown
                .iter()
                .map(crate::config::show::unknown_message)
                .collect::<Vec<_>>()
                .join("; "),
            "rename or unset them",
        )
    });
    if let Some(Err(e)) = crate::log_filter() {
        checks.push(fail(
            "variables",
            e,
            "set LARDER_LOG to a tracing filter such as `debug` or `larder_core=trace`",
        ));
    }
    checks.push(toolchain());
    checks.push(wrapper(env));
    checks.extend(store(&config));
    checks.extend(remotes(&config));
    if let Some(c) = trust(&config) {
        checks.push(c);
    }
    checks
}

fn toolchain() -> Check {
    match std::process::Command::new("rustc").arg("-vV").output() {
        Ok(o) if o.status.success() => pass(
            "toolchain",
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or_default()
                .to_string(),
        ),
        Ok(o) => fail(
            "toolchain",
            format!(
                "`rustc -vV` failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            "install a toolchain (rustup) or fix the one on PATH",
        ),
        Err(e) => fail(
            "toolchain",
            format!("cannot run rustc: {e}"),
            "install a toolchain (rustup) or put rustc on PATH",
        ),
    }
}

/// cargo's `build.rustc-wrapper`, from the environment or the nearest config file.
fn wrapper(env: &BTreeMap<String, String>) -> Check {
    let from_env = ["RUSTC_WRAPPER", "CARGO_BUILD_RUSTC_WRAPPER"]
        .iter()
        .find_map(|v| {
            env.get(*v)
                .filter(|s| !s.is_empty())
                .map(|s| (v.to_string(), s.clone()))
        });
    let found = from_env.or_else(|| wrapper_in_config_files(env));
    match found {
        None => pass(
            "wrapper",
            "cargo is not told to use a wrapper: `larder cargo ...` sets it per build".into(),
        ),
        Some((place, w)) if Path::new(&w).file_name().is_some_and(|n| n == "larder") => {
            pass("wrapper", format!("{place} runs larder ({w})"))
        }
        Some((place, w)) => fail(
            "wrapper",
            format!(
                "{place} names another wrapper, {w}: plain cargo builds do not go through larder"
            ),
            "point build.rustc-wrapper at larder, or build with `larder cargo`",
        ),
    }
}

/// `build.rustc-wrapper` of the cargo config files cargo reads from here: each
/// `.cargo/config.toml` from the current directory up, then `$CARGO_HOME/config.toml`.
fn wrapper_in_config_files(env: &BTreeMap<String, String>) -> Option<(String, String)> {
    let mut files: Vec<PathBuf> = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        for dir in cwd.ancestors() {
            files.push(dir.join(".cargo").join("config.toml"));
            files.push(dir.join(".cargo").join("config"));
        }
    }
    if let Some(home) = env
        .get("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env.get("HOME").map(|h| PathBuf::from(h).join(".cargo")))
    {
        files.push(home.join("config.toml"));
        files.push(home.join("config"));
    }
    files.into_iter().find_map(|f| {
        let text = std::fs::read_to_string(&f).ok()?;
        let table: toml::Table = toml::from_str(&text).ok()?;
        let w = table
            .get("build")?
            .get("rustc-wrapper")?
            .as_str()?
            .to_string();
        Some((format!("build.rustc-wrapper in {}", f.display()), w))
    })
}

fn store(config: &Config) -> Vec<Check> {
    let name = "store";
    let store = match config.open_store() {
        Ok(s) => s,
        Err(e) => {
            return vec![fail(
                name,
                format!("cannot open {}: {e}", config.dir.display()),
                "set LARDER_DIR to a writable directory",
            )];
        }
    };
    let probe = b"larder doctor probe";
    let key = Digest::of(probe);
    let round_trip = store
        .put(Namespace::Cas, &key, probe)
        .and_then(|()| store.get(Namespace::Cas, &key));
    let _ = store.delete(Namespace::Cas, &key);
    let mut checks = vec![match round_trip {
        Ok(Some(v)) if v == probe => pass(
            name,
            format!("{} can be written and read back", config.dir.display()),
        ),
        Ok(_) => fail(
            name,
            format!("{}: a probe entry read back wrong", config.dir.display()),
            "check the filesystem; `larder clear` empties the store",
        ),
        Err(e) => fail(
            name,
            format!("{}: {e}", config.dir.display()),
            "make the directory writable, or set LARDER_DIR to one that is",
        ),
    }];
    // A sample of blobs, spread over the store, must match their digests.
    let blobs = store.list(Namespace::Cas).unwrap_or_default();
    let step = (blobs.len() / BLOB_SAMPLE).max(1);
    let (mut checked, mut bad) = (0, Vec::new());
    for e in blobs.iter().step_by(step).take(BLOB_SAMPLE) {
        checked += 1;
        match store.peek(Namespace::Cas, &e.key) {
            Ok(Some(v)) if Digest::of(&v) == e.key => {}
            Ok(None) => {}
            _ => bad.push(e.key.to_hex()[..12].to_string()),
        }
    }
    checks.push(if bad.is_empty() {
        pass(
            "blobs",
            format!(
                "{checked} of {} blobs read back and match their digests",
                blobs.len()
            ),
        )
    } else {
        fail(
            "blobs",
            format!(
                "{} of {checked} sampled blobs do not match their digests: {}",
                bad.len(),
                bad.join(", ")
            ),
            "builds drop such blobs as they meet them; `larder clear` empties the store",
        )
    });
    checks
}

/// Whether the tiers that require signatures can accept anything: some key must be
/// trusted (or the build sign with its own). `None` when no tier requires them.
fn trust(config: &Config) -> Option<Check> {
    if !config.requires_signatures() {
        return None;
    }
    let mut tiers: Vec<String> = config
        .remotes
        .iter()
        .filter(|r| r.require_signatures)
        .map(larder_remote::RemoteSpec::name)
        .collect();
    if config.require_local_signatures {
        tiers.insert(0, "local".into());
    }
    let keys: Vec<String> = config
        .trusted_keys
        .iter()
        .map(|k| k.name.clone())
        .chain(
            config
                .signing_key
                .as_ref()
                .map(|k| format!("{} (own)", k.name)),
        )
        .collect();
    Some(if keys.is_empty() {
        fail(
            "signatures",
            format!(
                "{} require signed action records, but no key is trusted: every record there is refused",
                tiers.join(", ")
            ),
            "set LARDER_TRUSTED_KEYS to the producers' public keys, or LARDER_REQUIRE_SIGNATURES=0",
        )
    } else {
        pass(
            "signatures",
            format!(
                "{} require records signed by {}",
                tiers.join(", "),
                keys.join(", ")
            ),
        )
    })
}

fn remotes(config: &Config) -> Vec<Check> {
    config
        .remotes
        .iter()
        .map(|spec| {
            let name = format!("remote {}", spec.name());
            let store = match larder_remote::open(spec) {
                Ok(s) => s,
                Err(e) => return fail(&name, e.to_string(), "check the URL and the server"),
            };
            let probe = format!("larder doctor probe {}", std::process::id()).into_bytes();
            let key = Digest::of(&probe);
            if spec.read_only {
                // By digest and size: the REAPI addresses blobs by both.
                return match store.get_blob(&key, probe.len() as u64) {
                    Ok(_) => pass(&name, "answers (read-only)".into()),
                    Err(e) => fail(
                        &name,
                        e.to_string(),
                        "check the URL, the server and the credentials",
                    ),
                };
            }
            let result = store
                .put(Namespace::Cas, &key, &probe)
                .and_then(|()| store.get(Namespace::Cas, &key));
            let _ = store.delete(Namespace::Cas, &key);
            match result {
                Ok(Some(v)) if v == probe => {
                    pass(&name, "answers, takes an entry and gives it back".into())
                }
                Ok(_) => fail(
                    &name,
                    "took a probe entry but did not give it back".into(),
                    "check the server's eviction and size limits",
                ),
                Err(e) => fail(
                    &name,
                    e.to_string(),
                    "check the URL, the server and the write permission",
                ),
            }
        })
        .collect()
}
