//! Per-build state: what the processes of one build share.
//!
//! Every wrapper invocation is its own process, yet some things hold for a whole build:
//! a warning is printed once per build, not once per crate; a remote that failed three
//! times is switched off for the rest of the build. That state lives in small files in
//! one directory per build, `$TMPDIR/larder-build-<digest of the build id>/`:
//!
//! | file | written by | meaning |
//! |---|---|---|
//! | `warned-<topic digest>` | `warn_once` in larder-core | this warning was printed |
//! | `remote-<digest>-{read,write}.failures` | the tiers (larder-remote) | one byte per failed call (appended, so parallel processes' counts stay whole) |
//! | `remote-<digest>-{read,write}.off` | the tiers | the remote is switched off for reads or writes |
//!
//! The build is `LARDER_BUILD_ID` (set by `larder cargo` and passed on to store jobs),
//! else the parent process: the wrapper invocations of one build share cargo as their
//! parent. `larder cargo` removes its build's directory when the build is over
//! ([`BuildState::remove`]); for builds it did not run (plain cargo with
//! `RUSTC_WRAPPER=larder`) or that were killed, the first process of a build to create
//! its directory removes the directories of builds older than [`BUILD_STATE_TTL`] (and
//! the single files that earlier versions of larder left in `$TMPDIR`), so state never
//! accumulates.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use larder_digest::Digest;

/// How long a build's state is kept after its last change.
pub const BUILD_STATE_TTL: Duration = Duration::from_secs(24 * 3600);

const PREFIX: &str = "larder-build-";

/// Names of per-build files that larder versions before [`BuildState`] left directly in
/// `$TMPDIR`.
const LEGACY_PREFIXES: [&str; 2] = ["larder-warned-", "larder-remote-"];

/// The build `larder cargo` runs, named by [`join_build`] in its own process.
static JOINED: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Makes this process part of the build `id` (the process that starts the build and
/// passes `LARDER_BUILD_ID=id` to it): its warnings and remote state are the build's.
/// The first call wins.
pub fn join_build(id: &str) {
    let _ = JOINED.set(id.to_string());
}

/// The build this process belongs to: the one it joined ([`join_build`]), else
/// `LARDER_BUILD_ID` if set, else the parent process (cargo, for a wrapper).
#[allow(clippy::disallowed_methods)] // larder-store's one read of the environment
pub fn build_id() -> String {
    if let Some(id) = JOINED.get() {
        return id.clone();
    }
    match std::env::var("LARDER_BUILD_ID") {
        Ok(id) if !id.is_empty() => id,
        _ => format!("ppid{}", std::os::unix::process::parent_id()),
    }
}

/// The state directory of one build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildState {
    dir: PathBuf,
}

impl BuildState {
    /// The state of this process's build ([`build_id`]).
    pub fn current() -> BuildState {
        BuildState::of(&build_id())
    }

    /// The state of the build `id`, under `$TMPDIR`.
    pub fn of(id: &str) -> BuildState {
        BuildState::in_dir(&std::env::temp_dir(), id)
    }

    fn in_dir(tmp: &Path, id: &str) -> BuildState {
        let hex = Digest::of(id.as_bytes()).to_hex();
        BuildState {
            dir: tmp.join(format!("{PREFIX}{}", &hex[..24])),
        }
    }

    /// The directory (created on first use).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of the state file `name`, creating the build's directory if needed.
    pub fn file(&self, name: &str) -> PathBuf {
        if !self.dir.is_dir()
            && std::fs::create_dir(&self.dir).is_ok()
            && let Some(tmp) = self.dir.parent()
        {
            remove_old_builds(tmp, &self.dir);
        }
        self.dir.join(name)
    }

    /// Removes the directory and everything in it: the build is over, and no process of
    /// it runs any more. Best effort (a directory left behind goes after
    /// [`BUILD_STATE_TTL`]).
    pub fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// Whether `topic` is marked for the first time in this build (then it is marked).
    /// If the state cannot be written, every call is a first time: a warning printed
    /// twice beats a warning lost.
    pub fn first_time(&self, topic: &str) -> bool {
        let hex = Digest::of(topic.as_bytes()).to_hex();
        let marker = self.file(&format!("warned-{}", &hex[..16]));
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&marker)
            .is_ok()
            || !marker.exists()
    }
}

/// Removes build directories (and legacy state files) in `tmp` unchanged for longer
/// than [`BUILD_STATE_TTL`], except `keep`.
fn remove_old_builds(tmp: &Path, keep: &Path) {
    let Some(cutoff) = SystemTime::now().checked_sub(BUILD_STATE_TTL) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let ours = name.starts_with(PREFIX) || LEGACY_PREFIXES.iter().any(|p| name.starts_with(p));
        if !ours || e.path() == keep {
            continue;
        }
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t < cutoff);
        if old {
            let _ = if e.path().is_dir() {
                std::fs::remove_dir_all(e.path())
            } else {
                std::fs::remove_file(e.path())
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn age(path: &Path) {
        let long_ago = SystemTime::now() - BUILD_STATE_TTL - Duration::from_secs(60);
        let f = std::fs::File::open(path).unwrap();
        f.set_modified(long_ago).unwrap();
    }

    #[test]
    fn a_topic_is_first_once_per_build() {
        let tmp = tempfile::tempdir().unwrap();
        let a = BuildState::in_dir(tmp.path(), "build-a");
        let b = BuildState::in_dir(tmp.path(), "build-b");
        assert!(a.first_time("store-open"));
        assert!(!a.first_time("store-open"));
        assert!(a.first_time("corrupt"));
        assert!(b.first_time("store-open"), "another build warns again");
    }

    #[test]
    fn a_finished_build_leaves_no_state() {
        let tmp = tempfile::tempdir().unwrap();
        let a = BuildState::in_dir(tmp.path(), "build-a");
        a.first_time("x");
        std::fs::write(a.file("prefetch.lock"), b"...").unwrap();
        a.remove();
        assert!(!a.dir().exists());
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
        a.remove();
    }

    #[test]
    fn a_new_build_removes_old_builds_state() {
        let tmp = tempfile::tempdir().unwrap();
        let old = BuildState::in_dir(tmp.path(), "old");
        old.first_time("x");
        let legacy = tmp.path().join("larder-warned-ppid1-abc");
        std::fs::write(&legacy, b"").unwrap();
        let unrelated = tmp.path().join("other-file");
        std::fs::write(&unrelated, b"").unwrap();
        age(old.dir());
        age(&legacy);
        age(&unrelated);
        let recent = BuildState::in_dir(tmp.path(), "recent");
        recent.first_time("x");
        let new = BuildState::in_dir(tmp.path(), "new");
        new.first_time("x");
        assert!(!old.dir().exists());
        assert!(!legacy.exists());
        assert!(unrelated.exists(), "only larder's state is removed");
        assert!(recent.dir().exists());
    }
}
