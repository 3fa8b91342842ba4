//! `larder cargo <args>`: runs cargo with larder as its rustc wrapper (and as the C and
//! C++ compiler of build scripts that use the `cc` crate, through `CC`/`CXX`) and reports
//! on the build.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::mpsc::Receiver;

use larder_digest::Digest;

use crate::config::Config;
use crate::config::env;
use crate::report::{Event, read_report};
use crate::seed::build::Seeding;
use crate::summary::BuildSummary;

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
    if let Some(Err(e)) = crate::log_filter() {
        eprintln!("larder: warning: {e}; no debug logs (try `debug` or `larder_core=trace`)");
    }
    // Leftovers of writers and store jobs that died, whatever the store's size.
    config.layout().remove_stale();
    // Eviction during this build (by age now, by size as entries are stored) is said
    // once, after it.
    let store = config.open_store().ok();
    let evicted_before = store.as_ref().map(|s| s.evictions()).unwrap_or_default();
    if let Some(s) = &store {
        let _ = s.trim_if_due();
    }
    // The compiler's identity (a hash of its sysroot) is memoized in the store: on an
    // empty one the first compiles would wait for it. It is computed while cargo starts
    // (and the seed's guard waits for it); the C header memo is pruned, when due.
    let layout = config.layout();
    let tools = layout.tools();
    let compiler = crate::later::Later::start(move || {
        crate::identity::compiler(&crate::seed::rustc(), None, Some(&tools)).ok()
    });
    std::thread::spawn(move || layout.prune_header_memo());
    let exe = std::env::current_exe()
        .map_err(|e| RunnerError::Io(format!("cannot find larder's own path: {e}")))?;
    let id = build_id();
    larder_store::join_build(&id);
    // Without a report file of the user's, the build's report in the store is the one.
    let (report, skip) = match &config.report {
        Some(p) if p.is_dir() => {
            return Err(RunnerError::Io(format!(
                "LARDER_REPORT={} is a directory; set it to a file path",
                p.display()
            )));
        }
        Some(p) => {
            let skip = std::fs::read_to_string(p)
                .map(|t| t.lines().count())
                .unwrap_or(0);
            (p.clone(), skip)
        }
        None => (config.layout().build_report(&id), 0),
    };
    let cargo = env::var_os("CARGO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("cargo"));
    let pending = tempfile::Builder::new()
        .prefix("larder-pending-")
        .tempfile()
        .map_err(|e| RunnerError::Io(format!("cannot create a pending file: {e}")))?;
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
    let trace = crate::trace::start_build(&here);
    let tiers = remote_tiers(&config);
    // The prefetch leaves out the units of the seed to be planted, once it is known.
    let (planted_tx, planted_rx) = std::sync::mpsc::channel();
    let prefetch = Prefetch::start(
        &config,
        &id,
        &args,
        tiers.clone(),
        planted_rx,
        trace.clone(),
    );
    let seed = Seeding::plant(
        &config,
        store.as_ref(),
        tiers.as_ref(),
        &args,
        planted_tx,
        trace.as_deref(),
        &compiler,
    );
    let cargo_started = crate::trace::now();
    let status = if crate::progress::wanted() {
        crate::progress::run(&mut command, &report, skip)
    } else {
        command.status()
    }
    .map_err(|e| RunnerError::Io(format!("cannot run {}: {e}", cargo.display())))?;
    let waiting = std::time::Instant::now();
    let cargo_ended = crate::trace::now();
    let may_leave = crate::progress::wanted()
        && crate::config::incremental::ci_variable(&here).is_none()
        && config.remotes.is_empty()
        && config.report.is_none()
        && config.verify.is_none();
    let storing = wait_for_stores(&config, pending.path(), &id, may_leave);
    if let Some(path) = &trace {
        crate::trace::append_build_span(path, "cargo", cargo_started);
        crate::trace::append_build_span(path, "waiting for the stores", cargo_ended);
    }
    if storing.is_empty() {
        // Jobs killed before they stored: their units count as not stored.
        for event in crate::action::storejob::unfinished_jobs(&config.layout(), &id) {
            crate::report::record_for_build(&id, Some(&report), &config.dir, &event);
        }
    }
    let mut events: Vec<Event> = read_report(&report).into_iter().skip(skip).collect();
    // A job that ended since it was listed has recorded its event.
    let recorded: HashSet<Option<String>> = events.iter().map(|e| e.key.clone()).collect();
    let storing: Vec<Event> = storing
        .into_iter()
        .filter(|e| e.key.is_none() || !recorded.contains(&e.key))
        .collect();
    let left = storing.len();
    events.extend(storing);
    let mut summary = BuildSummary::from_events(&events);
    summary.store_wait_secs = waiting.elapsed().as_secs_f64();
    summary.storing = left;
    let warnings = crate::report::warnings_path(&report);
    if let Ok(text) = std::fs::read_to_string(&warnings) {
        eprint!("{text}");
        let _ = std::fs::remove_file(&warnings);
    }
    let recording = crate::trace::now();
    if let Some(p) = prefetch {
        p.finish(&events);
    }
    if let Some(path) = &trace {
        crate::trace::append_build_span(path, "recording the prefetch index", recording);
    }
    if let (Some(seed), Some(store)) = (seed, &store)
        && status.success()
    {
        seed.record(&config, store, tiers.as_deref(), &events);
    }
    if let Some(path) = &trace {
        crate::trace::append_build_span(path, "recording the seed and prefetch index", recording);
    }
    eprint!("{}", summary.render());
    if let Some(path) = &trace {
        crate::trace::finish_build(path);
    }
    let mut code = crate::exec::exit_code(status);
    if let Some(percent) = config.verify
        && code == 0
    {
        code = verify_sample(&config, &events, percent);
    }
    // Every process of the build is done (cargo exited, the store jobs released the
    // pending file, or store only to the local store): its state (warnings said, remotes
    // switched off) has no reader left that needs it.
    larder_store::BuildState::of(&id).remove();
    if let Some(s) = &store {
        let after = s.evictions();
        if after.files > evicted_before.files {
            eprintln!(
                "larder: evicted {} files ({}) to keep the store within its bounds ({}{}); \
                 `larder stats` counts evictions",
                after.files - evicted_before.files,
                crate::human::bytes(after.bytes.saturating_sub(evicted_before.bytes)),
                if config.max_size == u64::MAX {
                    "no size bound".to_string()
                } else {
                    format!("max_size {}", crate::human::bytes(config.max_size))
                },
                config.max_age.map_or(String::new(), |a| format!(
                    ", max_age {}",
                    humantime::format_duration(a)
                )),
            );
        }
    }
    Ok(code)
}

/// Waits until the build's background store jobs are done (they hold a shared lock on
/// the `pending` file until then), and returns no event; or, if the build `may_leave`
/// them running (at a terminal, not in a CI run, with no remote, report file or
/// verification waiting for their results) and every one of them stores a unit of the
/// workspace (not one the seed plants next time), returns without waiting, with the
/// events they will record. An edit's rebuild then ends when cargo does, not after its
/// binary is written to the store; a build that needs the entry waits for it then (the
/// job holds the unit's single-flight lock).
fn wait_for_stores(config: &Config, pending: &Path, id: &str, may_leave: bool) -> Vec<Event> {
    let Ok(f) = std::fs::File::open(pending) else {
        return Vec::new();
    };
    if f.try_lock().is_ok() {
        return Vec::new();
    }
    if may_leave {
        let running = crate::action::storejob::running_jobs(&config.layout(), id);
        if !running.is_empty() && running.iter().all(|e| !e.seedable) {
            return running;
        }
    }
    let _ = f.lock();
    Vec::new()
}

/// The remotes of a build's prefetch and seed, with the local store: `None` without
/// remotes, or with neither `LARDER_PREFETCH` nor `LARDER_SEED` on. Blobs fetched are
/// kept uncompressed: a restore or a plant then hashes and copies each, where a
/// compressed one would be compressed here and decompressed again.
fn remote_tiers(config: &Config) -> Option<Arc<larder_remote::Tiers>> {
    if config.remotes.is_empty() || config.disable || !(config.prefetch || config.seed) {
        return None;
    }
    let raw = Config {
        compression_level: 0,
        ..config.clone()
    };
    let tiers = crate::action::open_tiers(&raw).ok()?.with_quiet_refusals();
    Some(Arc::new(tiers))
}

/// The prefetch of a build ([`crate::prefetch`]): runs while cargo starts, and writes
/// the build's index when it is done.
struct Prefetch {
    key: Digest,
    running: std::thread::JoinHandle<(Arc<larder_remote::Tiers>, crate::prefetch::Prefetched)>,
}

impl Prefetch {
    /// With remotes configured and `LARDER_PREFETCH` on: starts fetching what the index
    /// of this command lists (but the blobs `planted` sends: the seed's), holding the
    /// build's prefetch lock until it is done. The prefetch's span goes to the build's
    /// `trace`, if any.
    fn start(
        config: &Config,
        id: &str,
        args: &[OsString],
        tiers: Option<Arc<larder_remote::Tiers>>,
        planted: Receiver<HashSet<Digest>>,
        trace: Option<PathBuf>,
    ) -> Option<Prefetch> {
        let tiers = tiers.filter(|_| config.prefetch)?;
        let cwd = std::env::current_dir().ok()?;
        let key = crate::command::index_key(args, &cwd, env::var);
        let max_bytes = config.max_size / 2;
        let state = larder_store::BuildState::of(id);
        let lock = std::fs::File::create(state.file(crate::prefetch::LOCK)).ok()?;
        lock.lock().ok()?;
        let running = std::thread::spawn(move || {
            let started = crate::trace::now();
            let planted = || planted.recv().unwrap_or_default();
            let p = crate::prefetch::prefetch(&tiers, &key, max_bytes, &state, planted);
            drop(lock);
            if let Some(path) = &trace {
                crate::trace::append_build_span(path, "prefetch", started);
            }
            (tiers, p)
        });
        Some(Prefetch { key, running })
    }

    /// Says what was prefetched, and writes this build's index for the next one.
    fn finish(self, events: &[Event]) {
        let Ok((tiers, p)) = self.running.join() else {
            return;
        };
        if let Some(from) = p.from.as_deref().filter(|_| p.fetched > 0) {
            let missing = if p.missing > 0 {
                format!(" ({} listed entries not found)", p.missing)
            } else {
                String::new()
            };
            eprintln!(
                "larder: prefetched {} entries ({}) of the last build's {} units from {from} \
                 in {:.2} s{missing}",
                p.fetched,
                crate::human::bytes(p.bytes),
                p.units,
                p.secs
            );
        }
        let index = crate::prefetch::index_of(tiers.local(), events);
        crate::prefetch::record(&tiers, &self.key, &index, p.index.as_ref());
    }
}

/// `LARDER_VERIFY`: compiles a sample of the build's hits again and compares; prints
/// what differs and the totals. Returns 1 if an entry differed (the build used it: it
/// is quarantined, and the next build compiles that unit), else 0.
fn verify_sample(config: &Config, events: &[Event], percent: f64) -> i32 {
    match crate::verify::verify(config, events, Some(percent), None) {
        Ok(r) => {
            let text = crate::verify::render(&r);
            let shown = text.lines().filter(|l| {
                l.starts_with("differs") || l.starts_with("failed") || l.starts_with("verified")
            });
            for line in shown {
                eprintln!("larder: verify: {line}");
            }
            if r.differs > 0 {
                eprintln!(
                    "larder: error: this build restored {} entries that differ from a local \
                     compile; they are quarantined: build again",
                    r.differs
                );
                return 1;
            }
            0
        }
        Err(e) => {
            eprintln!("larder: warning: verify: {e}");
            0
        }
    }
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
pub(crate) fn c_compiler_shims(config: &Config, exe: &Path) -> Vec<(&'static str, OsString)> {
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
}
