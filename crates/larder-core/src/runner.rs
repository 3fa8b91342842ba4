//! `larder cargo <args>`: runs cargo with larder as its rustc wrapper (and as the C and
//! C++ compiler of build scripts that use the `cc` crate, through `CC`/`CXX`) and reports
//! on the build.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::action::outcome::BUILD_SCRIPT_RUN;
use crate::config::Config;
use crate::config::env;
use crate::report::{Event, Totals, read_report};

/// What a build did, from its events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BuildSummary {
    /// Compile invocations (probes excluded).
    pub units: u64,
    /// Totals over those units.
    pub totals: Totals,
    /// `(crate, reason)` of every not-cacheable unit.
    pub not_cacheable: Vec<(String, String)>,
    /// Crates that missed.
    pub missed: Vec<String>,
    /// Hits answered by each remote tier (by URL), for units the local store lacked.
    pub remote_hits: std::collections::BTreeMap<String, u64>,
    /// Seconds `larder cargo` waited after cargo for background stores and uploads.
    pub store_wait_secs: f64,
}

impl BuildSummary {
    /// Summarizes the events of one build.
    pub fn from_events(events: &[Event]) -> BuildSummary {
        let mut s = BuildSummary::default();
        for e in events {
            let Some(name) = &e.crate_name else { continue };
            let name = &if e.crate_types.iter().any(|t| t == BUILD_SCRIPT_RUN) {
                format!("{name} (build script run)")
            } else {
                name.clone()
            };
            s.units += 1;
            s.totals.add(e);
            match e.outcome.as_str() {
                "not_cacheable" | "error" => {
                    s.not_cacheable.push((
                        name.clone(),
                        e.detail.clone().or(e.reason.clone()).unwrap_or_default(),
                    ));
                }
                "miss" => s.missed.push(name.clone()),
                _ => {}
            }
            if let Some(r) = &e.remote {
                *s.remote_hits.entry(r.clone()).or_default() += 1;
            }
        }
        s
    }

    /// The report printed at the end of `larder cargo`.
    pub fn render(&self) -> String {
        let t = &self.totals;
        let mut out = format!(
            "larder: {} units: {} hits, {} misses ({} stored), {} not cacheable; {:.1} s of compile saved, {} restored\n",
            self.units,
            t.hits,
            t.misses,
            t.stored,
            t.not_cacheable + t.errors,
            t.compile_secs_saved,
            crate::human::bytes(t.bytes_restored),
        );
        if !self.missed.is_empty() && self.missed.len() <= 12 {
            out += &format!("larder: missed: {}\n", self.missed.join(", "));
        }
        for (name, reason) in &self.not_cacheable {
            out += &format!("larder: not cacheable: {name}: {reason}\n");
        }
        for (remote, n) in &self.remote_hits {
            out += &format!("larder: {n} hits from {remote}\n");
        }
        if self.store_wait_secs >= 0.05 {
            out += &format!(
                "larder: waited {:.1} s after cargo for background stores and uploads\n",
                self.store_wait_secs
            );
        }
        out
    }
}

/// An error of the runner itself.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// cargo or the report file could not be set up.
    #[error("{0}")]
    Io(String),
}

/// Runs cargo with `args`, larder as its wrapper, and prints the build report to stderr.
/// Returns cargo's exit code.
///
/// # Errors
/// [`RunnerError`] if the configuration is invalid or cargo cannot be started.
pub fn run_cargo(args: Vec<OsString>) -> Result<i32, RunnerError> {
    let here = Config::env_here();
    let config = Config::from_env(&here)?;
    for unknown in crate::config::show::unknown_vars(&here) {
        eprintln!(
            "larder: warning: {}",
            crate::config::show::unknown_message(&unknown)
        );
    }
    // Leftovers of writers and store jobs that died, whatever the store's size.
    config.layout().remove_stale();
    let exe = std::env::current_exe()
        .map_err(|e| RunnerError::Io(format!("cannot find larder's own path: {e}")))?;
    let (report, _guard, skip) = match &config.report {
        Some(p) => {
            let skip = std::fs::read_to_string(p)
                .map(|t| t.lines().count())
                .unwrap_or(0);
            (p.clone(), None, skip)
        }
        None => {
            let f = tempfile::Builder::new()
                .prefix("larder-report-")
                .suffix(".jsonl")
                .tempfile()
                .map_err(|e| RunnerError::Io(format!("cannot create a report file: {e}")))?;
            (f.path().to_path_buf(), Some(f), 0)
        }
    };
    let cargo = env::var_os("CARGO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("cargo"));
    let pending = tempfile::Builder::new()
        .prefix("larder-pending-")
        .tempfile()
        .map_err(|e| RunnerError::Io(format!("cannot create a pending file: {e}")))?;
    let id = build_id();
    let mut command = Command::new(&cargo);
    command
        .args(&args)
        // Resolved here: each compile runs in its own package's directory.
        .envs(crate::config::resolved_path_vars())
        .env("RUSTC_WRAPPER", &exe)
        .env("LARDER_REPORT", &report)
        .env("LARDER_PENDING", pending.path())
        .env("LARDER_BUILD_ID", &id)
        .env("LARDER_DIR", &config.dir);
    for (var, value) in c_compiler_shims(&config, &exe) {
        command.env(var, value);
    }
    let status = command
        .status()
        .map_err(|e| RunnerError::Io(format!("cannot run {}: {e}", cargo.display())))?;
    // Background stores hold a shared lock on the pending file until they are done.
    let waiting = std::time::Instant::now();
    if let Ok(f) = std::fs::File::open(pending.path()) {
        let _ = f.lock();
    }
    // Jobs killed before they stored: their units count as not stored.
    for event in crate::action::storejob::unfinished_jobs(&config.layout(), &id) {
        crate::report::record(Some(&report), &config.dir, &event);
    }
    let events: Vec<Event> = read_report(&report).into_iter().skip(skip).collect();
    let mut summary = BuildSummary::from_events(&events);
    summary.store_wait_secs = waiting.elapsed().as_secs_f64();
    let warnings = crate::report::warnings_path(&report);
    if let Ok(text) = std::fs::read_to_string(&warnings) {
        eprint!("{text}");
        let _ = std::fs::remove_file(&warnings);
    }
    eprint!("{}", summary.render());
    Ok(crate::exec::exit_code(status))
}

/// A name for this build, unique on the machine: remote failures and warnings are
/// counted per build.
fn build_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("cargo{}-{nanos}", std::process::id())
}

/// The C and C++ compilers for the cargo that `larder cargo` runs, so that `cc`-crate
/// build scripts compile C through larder: a symlink to larder under
/// `<store>/v1/bin/<tag>/cc`, which larder recognises by its name and runs as the C
/// wrapper in front of the real compiler (`LARDER_REAL_CC`, else `cc` on `PATH`).
///
/// - Without a `CC` of the user's, the shim goes in `HOST_CC`, which the `cc` crate uses
///   only when compiling for the host: a `--target` build for another platform finds
///   its own cross compiler (`aarch64-linux-gnu-gcc`), as under plain cargo.
/// - With one, `CC` becomes the shim and the user's compiler `LARDER_REAL_CC`: it
///   applies to every target, as the user's `CC` would. A `CC` with arguments
///   (`ccache gcc`) is left alone, and so is everything if the shims cannot be made.
fn c_compiler_shims(config: &Config, exe: &Path) -> Vec<(&'static str, OsString)> {
    let dir = config.layout().bin();
    let mut env = Vec::new();
    for (var, host_var, real_var, name) in [
        ("CC", "HOST_CC", "LARDER_REAL_CC", "cc"),
        ("CXX", "HOST_CXX", "LARDER_REAL_CXX", "c++"),
    ] {
        let current = env::var_os(var).filter(|v| !v.is_empty());
        if current
            .as_ref()
            .is_some_and(|v| v.to_string_lossy().contains(char::is_whitespace))
        {
            continue;
        }
        let real = current.clone().unwrap_or_else(|| OsString::from(name));
        // One directory per real compiler: when the user's `CC` changes, so does the
        // `CC` cargo and build scripts see (cc-rs declares `rerun-if-env-changed=CC`).
        let tag = &larder_digest::Digest::of(real.as_encoded_bytes()).to_hex()[..16];
        let shim = dir.join(tag).join(name);
        if let Err(e) = ensure_symlink(&shim, exe) {
            tracing::debug!(%e, "no C compiler shim");
            continue;
        }
        match current {
            Some(current) => {
                env.push((var, shim.into_os_string()));
                env.push((real_var, current));
            }
            None if env::var_os(host_var).is_none() => env.push((host_var, shim.into_os_string())),
            None => {}
        }
    }
    env
}

/// Makes `link` a symlink to `target`, replacing whatever is there.
fn ensure_symlink(link: &Path, target: &Path) -> std::io::Result<()> {
    if std::fs::read_link(link).is_ok_and(|t| t == target) {
        return Ok(());
    }
    let dir = link.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}",
        link.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)?;
    std::fs::rename(&tmp, link)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(name: Option<&str>, outcome: &str, reason: Option<&str>) -> Event {
        Event {
            crate_name: name.map(str::to_string),
            crate_types: vec![],
            outcome: outcome.into(),
            reason: reason.map(str::to_string),
            detail: None,
            stored: outcome == "miss",
            secs: 0.1,
            saved_secs: if outcome == "hit" { 2.0 } else { 0.0 },
            bytes_restored: if outcome == "hit" { 2048 } else { 0 },
            remote: None,
        }
    }

    #[test]
    fn compiler_shims_are_symlinks_to_larder() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::from_env(
            &[("HOME", "/h"), ("LARDER_DIR", dir.path().to_str().unwrap())]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
        .unwrap();
        let exe = Path::new("/opt/larder");
        let env = c_compiler_shims(&config, exe);
        let get = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
        // The user's `CC` (if any) is replaced; else the shim is the host's compiler.
        let user_cc = env::var_os("CC").is_some_and(|v| !v.is_empty());
        let cc = get(if user_cc { "CC" } else { "HOST_CC" }).expect("a shim");
        assert_eq!(std::fs::read_link(&cc).unwrap(), exe);
        assert_eq!(get("LARDER_REAL_CC").is_some(), user_cc);
        let user_cxx = env::var_os("CXX").is_some_and(|v| !v.is_empty());
        let cxx = get(if user_cxx { "CXX" } else { "HOST_CXX" }).expect("a shim");
        assert_eq!(std::fs::read_link(cxx).unwrap(), exe);
        // Idempotent, and follows a moved larder.
        c_compiler_shims(&config, Path::new("/elsewhere/larder"));
        assert_eq!(
            std::fs::read_link(&cc).unwrap(),
            Path::new("/elsewhere/larder")
        );
    }

    #[test]
    fn summary_counts_units_not_probes() {
        let s = BuildSummary::from_events(&[
            ev(None, "not_cacheable", Some("print-request")),
            ev(Some("a"), "hit", None),
            ev(Some("b"), "miss", Some("no-entry")),
            ev(Some("c"), "not_cacheable", Some("unknown-flag")),
        ]);
        assert_eq!(s.units, 3);
        assert_eq!(
            (s.totals.hits, s.totals.misses, s.totals.not_cacheable),
            (1, 1, 1)
        );
        let text = s.render();
        assert!(text.starts_with("larder: 3 units: 1 hits, 1 misses (1 stored), 1 not cacheable; 2.0 s of compile saved, 2.0 KiB restored"), "{text}");
        assert!(text.contains("not cacheable: c"), "{text}");
    }
}
