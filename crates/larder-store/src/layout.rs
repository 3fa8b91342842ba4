//! Every path under a store directory (`LARDER_DIR`), named in one place.
//!
//! ```text
//! <dir>/stats.json, stats.lock   running totals of `larder stats` (outside the version:
//!                                they survive a layout change)
//! <dir>/reports/<build>.jsonl    the report of each of the last builds
//!                                (`larder report`), outside the version too
//! <dir>/v1/                      the versioned root: a future layout never reads it
//!   cas/ab/abcdef...             blob, zstd-compressed (`.raw`: uncompressed), by the
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
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for e in entries.flatten() {
                if e.metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t < cutoff)
                {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
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
}
