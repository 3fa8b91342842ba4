//! Outcomes of wrapper invocations: the per-build report and the running totals.
//!
//! Each wrapper invocation ends with one [`Event`]. If `LARDER_REPORT` names a file (as
//! `larder cargo` arranges), the event is appended to it as one JSON line; the write is a
//! single `O_APPEND` write, so parallel compiles never interleave lines. The totals that
//! `larder stats` shows live in `<store dir>/stats.json`, updated under a file lock.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use larder_store::Layout;
use serde::{Deserialize, Serialize};

/// What happened to one invocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// `--crate-name`, or `None` for invocations that are not compiles (probes).
    #[serde(rename = "crate")]
    pub crate_name: Option<String>,
    /// The crate types, as given to rustc.
    pub crate_types: Vec<String>,
    /// `hit`, `miss`, `not_cacheable` or `error`.
    pub outcome: String,
    /// For `not_cacheable`: the reason's label. For `miss`: why it missed
    /// (`no-entry`, `inputs-changed`, `entry-incomplete`) and, if the result was not
    /// stored, `stored: false` with the reason in `detail`.
    pub reason: Option<String>,
    /// Human-readable detail.
    pub detail: Option<String>,
    /// Whether a miss stored its result.
    #[serde(default)]
    pub stored: bool,
    /// Wall time of the invocation, in seconds.
    pub secs: f64,
    /// For a hit: compile seconds saved (the recorded compile time less this
    /// invocation's time).
    pub saved_secs: f64,
    /// For a hit: bytes of output restored.
    pub bytes_restored: u64,
    /// The remote tier that answered this invocation's lookup, if it was not the
    /// local store (its URL, credentials removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    /// The result key (hex) of the entry a hit restored or a miss stored, under which
    /// its key inputs are kept (`larder explain`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The invocation key (hex): the manifest listing the entries of this unit's
    /// invocation, which a lookup reads first (`larder export --last-build`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invocation: Option<String>,
    /// The package the unit belongs to (`CARGO_PKG_NAME`), which names a build script
    /// (`build_script_build`) for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    /// For a hit: the exit code replayed (1 for a cached compile error).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub exit_code: i32,
    /// For a hit of a rustc unit: how to compile it again (`larder verify`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<crate::replay::Replay>,
    /// The unit's directory under cargo's `.fingerprint` (absolute), where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// Whether `larder cargo` may plant the unit in the next build's target directory
    /// (a unit of a registry or git package: [`crate::seed`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub seedable: bool,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

/// Running totals across builds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Lookups that restored a stored result.
    pub hits: u64,
    /// Lookups that compiled.
    pub misses: u64,
    /// Invocations passed straight through.
    pub not_cacheable: u64,
    /// Invocations where larder itself failed and fell back to a plain compile.
    pub errors: u64,
    /// Misses whose result was stored.
    pub stored: u64,
    /// Hits that replayed a cached compile error (not counted in `hits`: nothing was
    /// saved, the build failed as it would have).
    #[serde(default)]
    pub replayed_errors: u64,
    /// Compile seconds saved by hits.
    pub compile_secs_saved: f64,
    /// Bytes restored by hits.
    pub bytes_restored: u64,
    /// Not-cacheable invocations by reason label.
    pub not_cacheable_reasons: BTreeMap<String, u64>,
    /// Misses by reason label.
    pub miss_reasons: BTreeMap<String, u64>,
    /// What each remote tier did, by URL (credentials removed).
    #[serde(default)]
    pub remotes: BTreeMap<String, larder_remote::RemoteCounters>,
    /// Hits compiled again and compared (`larder verify`, `LARDER_VERIFY`).
    #[serde(default)]
    pub verified: u64,
    /// Of those, entries that differed from the local compile (quarantined).
    #[serde(default)]
    pub verify_differs: u64,
    /// Of those, units that are not reproducible by nature.
    #[serde(default)]
    pub verify_not_reproducible: u64,
}

impl Totals {
    /// Adds one event.
    pub fn add(&mut self, e: &Event) {
        match e.outcome.as_str() {
            "hit" if e.exit_code != 0 => self.replayed_errors += 1,
            "hit" => {
                self.hits += 1;
                self.compile_secs_saved += e.saved_secs.max(0.0);
                self.bytes_restored += e.bytes_restored;
            }
            "miss" => {
                self.misses += 1;
                if e.stored {
                    self.stored += 1;
                }
                if let Some(r) = &e.reason {
                    *self.miss_reasons.entry(r.clone()).or_default() += 1;
                }
            }
            "not_cacheable" => {
                self.not_cacheable += 1;
                if let Some(r) = &e.reason {
                    *self.not_cacheable_reasons.entry(r.clone()).or_default() += 1;
                }
            }
            _ => self.errors += 1,
        }
    }
}

/// The path of the totals file in a store directory.
pub fn totals_path(dir: &Path) -> PathBuf {
    Layout::new(dir).stats()
}

/// Reads the totals (zero if there are none yet), after any update under way.
pub fn read_totals(dir: &Path) -> Totals {
    // Best effort: without a lock file there has been no update to wait for.
    let _lock = File::open(Layout::new(dir).stats_lock())
        .and_then(|f| f.lock_shared().map(|()| f))
        .ok();
    std::fs::read(totals_path(dir))
        .map(|b| parse_totals(&b))
        .unwrap_or_default()
}

/// The totals in a totals file's text: its first JSON value (an update cut short after
/// its write leaves the end of a longer, older text behind it); zero if it has none.
fn parse_totals(text: &[u8]) -> Totals {
    serde_json::Deserializer::from_slice(text)
        .into_iter::<Totals>()
        .next()
        .and_then(Result::ok)
        .unwrap_or_default()
}

/// Updates the totals under their lock.
///
/// Every wrapper process updates them, so the file is rewritten in place (one write,
/// then cut to length) rather than through a temporary file and a rename. The totals
/// are counters for `larder stats`: an update torn by a power loss sets them to zero,
/// and nothing else depends on them.
///
/// # Errors
/// If the store directory cannot be written.
pub fn update_totals(dir: &Path, f: impl FnOnce(&mut Totals)) -> std::io::Result<()> {
    use std::io::Read;
    use std::os::unix::fs::FileExt;
    std::fs::create_dir_all(dir)?;
    let lock = File::create(Layout::new(dir).stats_lock())?;
    lock.lock()?;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(totals_path(dir))?;
    let mut text = Vec::new();
    file.read_to_end(&mut text)?;
    let mut t = parse_totals(&text);
    f(&mut t);
    let text = serde_json::to_vec_pretty(&t)?;
    file.write_all_at(&text, 0)?;
    file.set_len(text.len() as u64)?;
    Ok(())
}

/// Records an event: appends it to this build's report in the store
/// ([`Layout::build_report`]) and to the report file `report` (`LARDER_REPORT`) if that
/// is another file, and adds it to the totals. Failures are ignored: reporting never
/// fails a build.
pub fn record(report: Option<&Path>, dir: &Path, event: &Event) {
    record_for_build(&larder_store::build_id(), report, dir, event);
}

/// [`record`] for the build `id` (`larder cargo` recording for the processes it ran).
pub fn record_for_build(id: &str, report: Option<&Path>, dir: &Path, event: &Event) {
    if let Ok(mut line) = serde_json::to_vec(event) {
        line.push(b'\n');
        let layout = Layout::new(dir);
        let build = layout.build_report(id);
        let first = !build.exists();
        if first {
            let _ = std::fs::create_dir_all(layout.reports());
        }
        let _ = append(&build, &line);
        if first {
            keep_newest_reports(&layout.reports(), larder_store::KEPT_REPORTS);
        }
        if let Some(path) = report.filter(|p| *p != build)
            && let Err(e) = append(path, &line)
        {
            warn_once(
                "report-file",
                &format!(
                    "cannot write the report LARDER_REPORT={}: {e}; set it to a file path",
                    path.display()
                ),
            );
        }
    }
    let _ = update_totals(dir, |t| t.add(event));
}

/// One `O_APPEND` write: parallel writers never interleave lines.
fn append(path: &Path, line: &[u8]) -> std::io::Result<()> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(line)
}

/// Removes all but the `keep` newest reports of `dir`.
fn keep_newest_reports(dir: &Path, keep: usize) {
    let mut reports = list_reports(dir);
    if reports.len() > keep {
        let drop = reports.len() - keep;
        for (_, path) in reports.drain(..drop) {
            let _ = std::fs::remove_file(&path);
            let _ = std::fs::remove_file(warnings_path(&path));
        }
    }
}

/// The build reports in `dir`, oldest first, with their last change.
pub fn list_reports(dir: &Path) -> Vec<(std::time::SystemTime, PathBuf)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".jsonl"))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    out.sort();
    out
}

/// Waits, at most `timeout`, until the background store jobs (written less than
/// `timeout` ago) of the build whose report is `report` are done: they record their units' events when they end (a plain
/// `RUSTC_WRAPPER` build has nobody waiting for them, as `larder cargo` does).
pub fn wait_for_stores(dir: &Path, report: &Path, timeout: std::time::Duration) {
    let Some(tag) = report.file_stem().and_then(|s| s.to_str()) else {
        return;
    };
    let prefix = larder_store::job_prefix(tag);
    let jobs = Layout::new(dir).jobs();
    let started = std::time::Instant::now();
    while started.elapsed() < timeout
        && std::fs::read_dir(&jobs)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            // A job written longer ago than the whole wait has died (or is still
            // uploading): it is not waited for.
            .any(|e| {
                e.metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().is_ok_and(|age| age < timeout))
            })
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The report of the last build in the store `dir`: the one changed last.
pub fn last_report(dir: &Path) -> Option<PathBuf> {
    list_reports(&Layout::new(dir).reports())
        .pop()
        .map(|(_, p)| p)
}

/// Reads the events of a report file, skipping lines that do not parse.
pub fn read_report(path: &Path) -> Vec<Event> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// How the tiers warn and count: [`warn_once`], and remote counters added to the totals.
pub const HOOKS: larder_remote::Hooks = larder_remote::Hooks {
    warn: warn_once,
    flush: add_remote_counters,
};

/// Adds per-remote counters to the totals of the store in `dir`. Failures are ignored.
pub fn add_remote_counters(dir: &Path, counters: &BTreeMap<String, larder_remote::RemoteCounters>) {
    let _ = update_totals(dir, |t| {
        for (name, c) in counters {
            t.remotes.entry(name.clone()).or_default().add(c);
        }
    });
}

/// Prints `larder: warning: {message}` once per build and `topic`, so a broken store
/// warns once per build, not once per crate ([`larder_store::BuildState`]).
pub fn warn_once(topic: &str, message: &str) {
    if larder_store::BuildState::current().first_time(topic) {
        emit_warning(message);
    }
}

/// The file where background store jobs leave their warnings for `larder cargo` to
/// print (their own stderr goes nowhere): `<report>.warnings`.
pub fn warnings_path(report: &Path) -> PathBuf {
    let mut p = report.as_os_str().to_owned();
    p.push(".warnings");
    PathBuf::from(p)
}

/// Whether this process's warnings go to the report's side file ([`warnings_path`])
/// rather than stderr: set in processes whose stderr the user does not see.
static RELAY: AtomicBool = AtomicBool::new(false);

/// Sends this process's warnings to the report's side file, which `larder cargo` prints
/// after the build, where it has one (`LARDER_REPORT`): for build-script runs, whose
/// stderr cargo keeps in `target/.../build/<pkg>/stderr` unless the script fails, and
/// for background store jobs, whose stderr goes nowhere.
pub fn relay_warnings() {
    RELAY.store(true, Ordering::Relaxed);
}

fn emit_warning(message: &str) {
    let line = format!("larder: warning: {message}\n");
    if RELAY.load(Ordering::Relaxed)
        && let Some(report) = crate::config::env::var_os("LARDER_REPORT")
        && let Ok(mut f) = OpenOptions::new()
            .create(true)
            .append(true)
            .open(warnings_path(Path::new(&report)))
    {
        let _ = f.write_all(line.as_bytes());
        return;
    }
    eprint!("{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_take_every_parallel_update_and_survive_a_cut_short_one() {
        let dir = tempfile::tempdir().unwrap();
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..25 {
                        update_totals(dir.path(), |t| t.hits += 1).unwrap();
                    }
                });
            }
        });
        assert_eq!(read_totals(dir.path()).hits, 200);
        // Written in place, cut to length: a smaller total leaves nothing behind.
        update_totals(dir.path(), |t| *t = Totals::default()).unwrap();
        update_totals(dir.path(), |t| t.misses = 3).unwrap();
        let text = std::fs::read(totals_path(dir.path())).unwrap();
        let whole: Totals = serde_json::from_slice(&text).expect("one JSON value");
        assert_eq!((whole.hits, whole.misses), (0, 3));
        // An update stopped between its write and the cut: the first value counts.
        let mut cut = text.clone();
        cut.extend_from_slice(b"\n  \"hits\": 12345\n}\n");
        std::fs::write(totals_path(dir.path()), &cut).unwrap();
        assert_eq!(read_totals(dir.path()).misses, 3);
        update_totals(dir.path(), |t| t.misses += 1).unwrap();
        assert_eq!(read_totals(dir.path()).misses, 4);
    }
}
