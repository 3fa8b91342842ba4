//! Every path under a store directory (`LARDER_DIR`), named in one place.
//!
//! ```text
//! <dir>/stats.json, stats.lock   running totals of `larder stats` (outside the version:
//!                                they survive a layout change)
//! <dir>/reports/<build>.jsonl    the report of each of the last builds
//!                                (`larder report`), outside the version too
//! <dir>/v1/                      the versioned root: a future layout never reads it
//!   cas/ab/abcdef...             blob, zstd-compressed (`.raw`: uncompressed, with its
//!                                check in `user.larder.b3`: `crate::check`), by the
//!                                SHA-256 of its content
//!   ac/ab/abcdef...              action record (JSON), by its result key
//!   manifest/ab/abcdef...        manifest (JSON), by its invocation key
//!   link/ab/abcdef...            link record (JSON), by the digest of a library file
//!   inputs/ab/abcdef...          an entry's key inputs (JSON), by its result key; a
//!                                unit's list of entries, by its index key
//!   tmp/                         files being written, renamed into place
//!   jobs/job-*.json              background store jobs waiting to run
//!   locks/<key>                  single-flight locks, one per key being computed
//!   tools/                       memoized tool identities (compilers, linkers), C
//!                                search lists, header facts (`c-facts/ab/...`)
//!   bin/<tag>/cc, c++            compiler shims: symlinks to larder
//!   size, size.lock, gc.lock     the running total of entry bytes and its locks
//!   evictions.json               entries evicted to keep within the bounds
//! ```
//!
//! Everything but the five namespaces is disposable: [`Layout::remove_stale`] deletes
//! what is older than [`STALE_AFTER`] in `tmp`, `jobs` and `locks`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use larder_digest::Digest;

use crate::Namespace;

/// The version of the on-disk layout.
pub const LAYOUT_VERSION: &str = "v1";

/// Age after which temporary files, unrun jobs and unused locks are removed: a writer or
/// a store job that has not finished by then has died.
pub const STALE_AFTER: Duration = Duration::from_secs(3600);

/// The short name of the build `id` in file names: its report, its store jobs.
pub fn build_tag(id: &str) -> String {
    Digest::of(id.as_bytes()).to_hex()[..16].to_string()
}

/// The file-name prefix of the background store jobs of the build tagged `tag`
/// ([`build_tag`]) in [`Layout::jobs`].
pub fn job_prefix(tag: &str) -> String {
    format!("job-{tag}-")
}

/// How many per-build reports [`Layout::reports`] keeps.
pub const KEPT_REPORTS: usize = 20;

/// The paths of one store directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    dir: PathBuf,
}

impl Layout {
    /// The layout of the store directory `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Layout {
        Layout { dir: dir.into() }
    }

    /// The store directory itself.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The versioned root, `<dir>/v1`.
    pub fn root(&self) -> PathBuf {
        self.dir.join(LAYOUT_VERSION)
    }

    /// The directory of a namespace.
    pub fn namespace(&self, ns: Namespace) -> PathBuf {
        self.root().join(ns.as_str())
    }

    /// The file of an entry: sharded by the first two hex digits of its key.
    pub fn entry(&self, ns: Namespace, key: &Digest) -> PathBuf {
        let hex = key.to_hex();
        self.namespace(ns).join(&hex[..2]).join(hex)
    }

    /// Files being written.
    pub fn tmp(&self) -> PathBuf {
        self.root().join("tmp")
    }

    /// Background store jobs.
    pub fn jobs(&self) -> PathBuf {
        self.root().join("jobs")
    }

    /// Single-flight locks.
    pub fn locks(&self) -> PathBuf {
        self.root().join("locks")
    }

    /// Memoized tool identities.
    pub fn tools(&self) -> PathBuf {
        self.root().join("tools")
    }

    /// The memo of C header versions (`tools/c-facts/ab/<digest>`), pruned by
    /// [`Layout::prune_header_memo`].
    pub fn header_memo(&self) -> PathBuf {
        self.tools().join("c-facts")
    }

    /// Compiler shims.
    pub fn bin(&self) -> PathBuf {
        self.root().join("bin")
    }

    /// The running total of entry bytes.
    pub fn size(&self) -> PathBuf {
        self.root().join("size")
    }

    /// The lock of [`Layout::size`].
    pub fn size_lock(&self) -> PathBuf {
        self.root().join("size.lock")
    }

    /// The lock of a collection (only one process evicts at a time).
    pub fn gc_lock(&self) -> PathBuf {
        self.root().join("gc.lock")
    }

    /// The totals of `larder stats`.
    pub fn stats(&self) -> PathBuf {
        self.dir.join("stats.json")
    }

    /// The lock of [`Layout::stats`].
    pub fn stats_lock(&self) -> PathBuf {
        self.dir.join("stats.lock")
    }

    /// The per-build reports: one JSON-lines file per build, the newest
    /// [`KEPT_REPORTS`] kept (`larder report`, `larder explain`).
    pub fn reports(&self) -> PathBuf {
        self.dir.join("reports")
    }

    /// The report of the build `id` ([`crate::build_id`]): `<build tag>.jsonl`.
    pub fn build_report(&self, id: &str) -> PathBuf {
        self.reports().join(format!("{}.jsonl", build_tag(id)))
    }

    /// The quarantine marker of the action record `key`: its presence keeps the record
    /// from ever being restored here again; its content says why.
    pub fn quarantine(&self, key: &Digest) -> PathBuf {
        self.root().join("quarantine").join(key.to_hex())
    }

    /// The counts of entries evicted to keep the store within its bounds.
    pub fn evictions(&self) -> PathBuf {
        self.root().join("evictions.json")
    }

    /// Removes files older than [`STALE_AFTER`] from `tmp`, `jobs` and `locks`. Removing
    /// a lock that is still held costs at most a duplicate compile, never a wrong result;
    /// a job that old belonged to a store process that died.
    pub fn remove_stale(&self) {
        let Some(cutoff) = SystemTime::now().checked_sub(STALE_AFTER) else {
            return;
        };
        for dir in [self.tmp(), self.jobs(), self.locks()] {
            remove_older(&dir, cutoff);
        }
    }

    /// Removes header memo entries written more than [`HEADER_MEMO_KEEP`] ago, at most
    /// once per [`HEADER_MEMO_PRUNE_EVERY`] (entries are not touched when read: one in
    /// use is written again, at the cost of one read). Returns the entries removed.
    pub fn prune_header_memo(&self) -> u64 {
        let dir = self.header_memo();
        let Some(cutoff) = SystemTime::now().checked_sub(HEADER_MEMO_KEEP) else {
            return 0;
        };
        if !dir.is_dir() || !due(&dir.join("pruned"), HEADER_MEMO_PRUNE_EVERY) {
            return 0;
        }
        std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|shard| remove_older(&shard.path(), cutoff))
            .sum()
    }
}

/// How long a header memo entry is kept after it was written.
pub const HEADER_MEMO_KEEP: Duration = Duration::from_secs(7 * 24 * 3600);

/// How often [`Layout::prune_header_memo`] walks the memo.
pub const HEADER_MEMO_PRUNE_EVERY: Duration = Duration::from_secs(24 * 3600);

/// Whether the periodic task whose last run `marker`'s time records is due (never run,
/// or `every` ago); if so, the marker is touched, so that other processes skip it.
pub fn due(marker: &Path, every: Duration) -> bool {
    let due = std::fs::metadata(marker)
        .and_then(|m| m.modified())
        .map_or(true, |t| t.elapsed().map_or(true, |e| e >= every));
    due && std::fs::write(marker, b"").is_ok()
}

/// Removes the files in `dir` last modified before `cutoff`; returns how many.
fn remove_older(dir: &Path, cutoff: SystemTime) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t < cutoff);
        if old && std::fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_versioned_and_sharded() {
        let l = Layout::new("/s");
        let key = Digest::of(b"x");
        let hex = key.to_hex();
        assert_eq!(
            l.entry(Namespace::Action, &key),
            PathBuf::from(format!("/s/v1/ac/{}/{hex}", &hex[..2]))
        );
        assert_eq!(l.stats(), PathBuf::from("/s/stats.json"));
        assert_eq!(l.jobs(), PathBuf::from("/s/v1/jobs"));
    }

    #[test]
    fn stale_files_go_fresh_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::new(dir.path());
        std::fs::create_dir_all(l.jobs()).unwrap();
        let old = l.jobs().join("job-old.json");
        let new = l.jobs().join("job-new.json");
        std::fs::write(&old, b"{}").unwrap();
        std::fs::write(&new, b"{}").unwrap();
        let long_ago = SystemTime::now() - STALE_AFTER - Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        l.remove_stale();
        assert!(!old.exists());
        assert!(new.exists());
    }

    #[test]
    fn old_header_memo_entries_are_pruned_once_a_day() {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::new(dir.path());
        assert_eq!(l.prune_header_memo(), 0, "nothing to walk without a memo");
        let shard = l.header_memo().join("ab");
        std::fs::create_dir_all(&shard).unwrap();
        let (old, new) = (shard.join("old"), shard.join("new"));
        std::fs::write(&old, b"{}").unwrap();
        std::fs::write(&new, b"{}").unwrap();
        let age = |p: &Path| {
            let t = SystemTime::now() - HEADER_MEMO_KEEP - Duration::from_secs(60);
            let f = std::fs::File::options().write(true).open(p).unwrap();
            f.set_modified(t).unwrap();
        };
        age(&old);
        assert_eq!(l.prune_header_memo(), 1);
        assert!(!old.exists() && new.exists());
        // Not again within a day, whatever has aged meanwhile.
        age(&new);
        assert_eq!(l.prune_header_memo(), 0);
        assert!(new.exists());
    }
}
