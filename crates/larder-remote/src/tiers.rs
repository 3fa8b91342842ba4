//! The tier chain: the local store first, then the remotes in the configured order.
//!
//! - **Lookup.** [`Tiers::get`] and [`Tiers::get_blob`] try each tier in turn. A value
//!   found in a remote is written to every faster tier (backfill): the local store
//!   always, earlier writable remotes too (a hit in the public tier fills the team tier).
//!   Every blob from a remote is checked against its digest before it is used or
//!   backfilled; one that does not match counts as corrupt and the next tier is tried.
//! - **Write.** [`Tiers::put`] writes the local store, then every writable remote. A
//!   read-only remote is never written. Remote write failures never fail the put: the
//!   local store has the entry.
//! - **Link records** stay local: they are derived from action records on every restore.
//! - **Failures.** Each call has a deadline (the remote's timeout plus time for the bytes
//!   moved). Failures are counted per build (the build is `LARDER_BUILD_ID`, which
//!   `larder cargo` sets, else the parent process: cargo), in small files shared by the
//!   build's wrapper processes. After [`FAILURES_TO_SWITCH_OFF`] failed reads a remote is
//!   switched off for the rest of the build; after as many failed writes, only its
//!   writes are (a full or read-only server still serves hits). Each switch-off warns
//!   once per build. A remote never fails a build.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use larder_digest::Digest;
pub use larder_store::build_id;
use larder_store::{BuildState, Capabilities, DiskStore, Namespace, Store, StoreError};
use serde::{Deserialize, Serialize};

use crate::RemoteSpec;

/// Failed calls after which a remote's reads (or writes) are switched off for the build.
pub const FAILURES_TO_SWITCH_OFF: u64 = 3;

/// What one remote did, for `larder stats`. Sizes in bytes.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteCounters {
    /// Lookups answered with an entry.
    pub hits: u64,
    /// Lookups that found nothing.
    pub misses: u64,
    /// Entries written.
    pub writes: u64,
    /// Bytes read from the remote (entries as decoded).
    pub bytes_read: u64,
    /// Bytes written to the remote.
    pub bytes_written: u64,
    /// Calls that failed (unreachable, refused, other errors).
    pub errors: u64,
    /// Calls that ran out of time (also counted in `errors`).
    pub timeouts: u64,
    /// Entries that did not match their digest or did not decode (counted as misses).
    pub corrupt: u64,
    /// Writes skipped because the value is over the backend's limit.
    pub skipped_too_large: u64,
    /// Calls skipped because the remote was switched off for the build.
    pub skipped_off: u64,
}

impl RemoteCounters {
    /// Adds `other` to these counters.
    pub fn add(&mut self, other: &RemoteCounters) {
        self.hits += other.hits;
        self.misses += other.misses;
        self.writes += other.writes;
        self.bytes_read += other.bytes_read;
        self.bytes_written += other.bytes_written;
        self.errors += other.errors;
        self.timeouts += other.timeouts;
        self.corrupt += other.corrupt;
        self.skipped_too_large += other.skipped_too_large;
        self.skipped_off += other.skipped_off;
    }

    fn is_zero(&self) -> bool {
        *self == RemoteCounters::default()
    }
}

/// Which calls a failure counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    Read,
    Write,
}

impl Dir {
    fn as_str(self) -> &'static str {
        match self {
            Dir::Read => "read",
            Dir::Write => "write",
        }
    }
}

struct Remote {
    spec: RemoteSpec,
    name: String,
    store: Arc<dyn Store>,
    read_off: AtomicBool,
    write_off: AtomicBool,
}

/// The local store and the remotes behind it, as one [`Store`].
pub struct Tiers {
    local: DiskStore,
    remotes: Vec<Remote>,
    build_id: String,
    counters: Mutex<BTreeMap<String, RemoteCounters>>,
    served_by: Mutex<Option<String>>,
    hooks: Hooks,
    stats_dir: Option<PathBuf>,
}

/// What the tiers report through: the caller's once-per-build warning and its totals.
#[derive(Debug, Clone, Copy)]
pub struct Hooks {
    /// Prints a warning once per build: `(topic, message)`.
    pub warn: fn(&str, &str),
    /// Adds this process's per-remote counters to the totals kept in the given
    /// directory ([`Tiers::with_stats_dir`]); called when the [`Tiers`] are dropped.
    pub flush: fn(&std::path::Path, &BTreeMap<String, RemoteCounters>),
}

impl Drop for Tiers {
    fn drop(&mut self) {
        let counters = self.take_counters();
        if let Some(dir) = &self.stats_dir
            && !counters.is_empty()
        {
            (self.hooks.flush)(dir, &counters);
        }
    }
}

impl Tiers {
    /// Chains `local` and the remotes of `specs`, in order. A remote that cannot be
    /// configured is left out with a warning (through `hooks.warn`).
    pub fn new(local: DiskStore, specs: &[RemoteSpec], hooks: Hooks) -> Tiers {
        let mut remotes = Vec::new();
        for spec in specs {
            match crate::open(spec) {
                Ok(store) => remotes.push(Remote {
                    name: spec.name(),
                    spec: spec.clone(),
                    store,
                    read_off: AtomicBool::new(false),
                    write_off: AtomicBool::new(false),
                }),
                Err(e) => (hooks.warn)(
                    &format!("remote-open:{}", spec.name()),
                    &format!("remote {} is not used: {e}", spec.name()),
                ),
            }
        }
        Tiers {
            local,
            remotes,
            build_id: build_id(),
            counters: Mutex::new(BTreeMap::new()),
            served_by: Mutex::new(None),
            hooks,
            stats_dir: None,
        }
    }

    /// Counts failures in the build `id` instead of [`build_id`]'s.
    pub fn with_build_id(mut self, id: &str) -> Tiers {
        self.build_id = id.to_string();
        self
    }

    /// Flushes the remote counters to the totals in `dir` when dropped (through
    /// [`Hooks::flush`]).
    pub fn with_stats_dir(mut self, dir: &std::path::Path) -> Tiers {
        self.stats_dir = Some(dir.to_path_buf());
        self
    }

    /// The local store.
    pub fn local(&self) -> &DiskStore {
        &self.local
    }

    /// The local store's directory.
    pub fn root(&self) -> &std::path::Path {
        self.local.root()
    }

    /// The local file of an uncompressed blob, for restoring by reflink
    /// ([`DiskStore::raw_blob_path`]).
    pub fn raw_blob_path(&self, digest: &Digest) -> Option<PathBuf> {
        self.local.raw_blob_path(digest)
    }

    /// Whether any remote is configured.
    pub fn has_remotes(&self) -> bool {
        !self.remotes.is_empty()
    }

    /// The name of the first remote that answered a lookup of this process with an
    /// entry, if any.
    pub fn served_by(&self) -> Option<String> {
        self.served_by.lock().ok()?.clone()
    }

    /// Takes the counters this process has gathered, per remote name (credentials
    /// removed), leaving zeros.
    pub fn take_counters(&self) -> BTreeMap<String, RemoteCounters> {
        let mut c = match self.counters.lock() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        std::mem::take(&mut *c)
            .into_iter()
            .filter(|(_, v)| !v.is_zero())
            .collect()
    }

    fn count(&self, r: &Remote, f: impl FnOnce(&mut RemoteCounters)) {
        if let Ok(mut c) = self.counters.lock() {
            f(c.entry(r.name.clone()).or_default());
        }
    }

    /// The per-build state file of `r` ([`BuildState`]).
    fn health_file(&self, r: &Remote, dir: Dir, suffix: &str) -> PathBuf {
        let id = Digest::of(r.name.as_bytes()).to_hex();
        BuildState::of(&self.build_id).file(&format!(
            "remote-{}-{}{suffix}",
            &id[..24],
            dir.as_str()
        ))
    }

    /// Whether `r` is still on for `dir` in this build.
    fn usable(&self, r: &Remote, dir: Dir) -> bool {
        let flag = match dir {
            Dir::Read => &r.read_off,
            Dir::Write => &r.write_off,
        };
        if flag.load(Ordering::Relaxed) || (dir == Dir::Write && r.read_off.load(Ordering::Relaxed))
        {
            self.count(r, |c| c.skipped_off += 1);
            return false;
        }
        let off = self.health_file(r, dir, ".off").exists()
            || (dir == Dir::Write && self.health_file(r, Dir::Read, ".off").exists());
        if off {
            flag.store(true, Ordering::Relaxed);
            self.count(r, |c| c.skipped_off += 1);
        }
        !off
    }

    /// Counts a failure of `r`; switches it off for `dir` once it has failed often
    /// enough in this build.
    fn failed(&self, r: &Remote, dir: Dir, e: &StoreError) {
        tracing::debug!(remote = %r.name, op = dir.as_str(), error = %e, "remote call failed");
        let timeout = e.is_temporary();
        self.count(r, |c| {
            c.errors += 1;
            c.timeouts += u64::from(timeout);
        });
        // One byte per failure, appended: O_APPEND keeps parallel wrappers' counts whole.
        let counter = self.health_file(r, dir, ".failures");
        let failures = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&counter)
            .and_then(|mut f| {
                f.write_all(b"x")?;
                f.metadata()
            })
            .map(|m| m.len())
            .unwrap_or(FAILURES_TO_SWITCH_OFF);
        if failures >= FAILURES_TO_SWITCH_OFF {
            match dir {
                Dir::Read => r.read_off.store(true, Ordering::Relaxed),
                Dir::Write => r.write_off.store(true, Ordering::Relaxed),
            }
            let _ = std::fs::write(self.health_file(r, dir, ".off"), b"");
            let what = match dir {
                Dir::Read => "switched off",
                Dir::Write => "not written to",
            };
            (self.hooks.warn)(
                &format!("remote-off:{}:{}", r.name, dir.as_str()),
                &format!(
                    "remote {} {what} for the rest of this build after {failures} failed calls (last: {e}); the build goes on with the other tiers",
                    r.name
                ),
            );
        }
    }

    fn note_served(&self, r: &Remote) {
        if let Ok(mut s) = self.served_by.lock()
            && s.is_none()
        {
            *s = Some(r.name.clone());
        }
    }

    /// Writes `value` to the local store and the writable remotes before `upto`
    /// (backfill after a hit in remote `upto`).
    fn backfill(&self, upto: usize, ns: Namespace, key: &Digest, value: &[u8]) {
        if let Err(e) = self.local.put(ns, key, value) {
            tracing::debug!(error = %e, "backfill of the local store failed");
        }
        for r in &self.remotes[..upto] {
            self.put_remote(r, ns, key, value);
        }
    }

    fn put_remote(&self, r: &Remote, ns: Namespace, key: &Digest, value: &[u8]) {
        if r.spec.read_only || !self.usable(r, Dir::Write) {
            return;
        }
        match r.store.put(ns, key, value) {
            Ok(()) => self.count(r, |c| {
                c.writes += 1;
                c.bytes_written += value.len() as u64;
            }),
            Err(StoreError::TooLarge { .. }) => self.count(r, |c| c.skipped_too_large += 1),
            Err(e) => self.failed(r, Dir::Write, &e),
        }
    }

    /// How many remote tiers there are.
    pub fn remote_count(&self) -> usize {
        self.remotes.len()
    }

    /// The value under `key` in remote `i` alone (in lookup order), without writing it to
    /// the faster tiers: for manifests, which a caller reads tier by tier and extends
    /// by the entry it uses ([`Tiers::update_faster`]) rather than replaces. `None` if
    /// the remote has none, fails (counted) or is switched off.
    pub fn get_from_remote(&self, i: usize, ns: Namespace, key: &Digest) -> Option<Vec<u8>> {
        let r = self.remotes.get(i)?;
        self.fetch_from(r, key, |s| s.get(ns, key))
    }

    /// Reads one remote with `fetch`, if it is on, and counts the outcome: a hit, a
    /// miss, a corrupt entry (a miss) or a failure.
    fn fetch_from(
        &self,
        r: &Remote,
        key: &Digest,
        fetch: impl Fn(&dyn Store) -> Result<Option<Vec<u8>>, StoreError>,
    ) -> Option<Vec<u8>> {
        if !self.usable(r, Dir::Read) {
            return None;
        }
        match fetch(&*r.store) {
            Ok(Some(v)) => {
                self.count(r, |c| {
                    c.hits += 1;
                    c.bytes_read += v.len() as u64;
                });
                self.note_served(r);
                return Some(v);
            }
            Ok(None) => self.count(r, |c| c.misses += 1),
            Err(StoreError::Corrupt { detail, .. }) => {
                tracing::debug!(remote = %r.name, %key, %detail, "corrupt remote entry");
                self.count(r, |c| {
                    c.corrupt += 1;
                    c.misses += 1;
                });
            }
            Err(e) => self.failed(r, Dir::Read, &e),
        }
        None
    }

    /// [`Store::update`] of the tiers faster than remote `i`: the local store and the
    /// writable remotes before `i`, each applying `f` to its own value. Remote failures
    /// are counted, not returned.
    ///
    /// # Errors
    /// [`StoreError`] if the local store cannot be written.
    pub fn update_faster(
        &self,
        i: usize,
        ns: Namespace,
        key: &Digest,
        f: &dyn Fn(Option<Vec<u8>>) -> Vec<u8>,
    ) -> Result<(), StoreError> {
        let local = self.local.update(ns, key, f);
        for r in self.remotes.iter().take(i) {
            self.update_remote(r, ns, key, f);
        }
        local
    }

    fn update_remote(
        &self,
        r: &Remote,
        ns: Namespace,
        key: &Digest,
        f: &dyn Fn(Option<Vec<u8>>) -> Vec<u8>,
    ) {
        if r.spec.read_only || !self.usable(r, Dir::Write) || !self.usable(r, Dir::Read) {
            return;
        }
        let current = match r.store.get(ns, key) {
            Ok(v) => v,
            Err(StoreError::Corrupt { .. }) => None,
            Err(e) => {
                self.failed(r, Dir::Read, &e);
                return;
            }
        };
        self.put_remote(r, ns, key, &f(current));
    }

    /// The blob from the first remote with a copy that matches its digest, backfilled.
    fn remote_blob(&self, digest: &Digest, size: u64) -> Option<Vec<u8>> {
        self.get_remote(Namespace::Cas, digest, true, |s| {
            verified(s.get_blob(digest, size)?, digest)
        })
    }

    /// Looks `ns`/`key` up in the remotes, in order, and backfills the faster tiers if
    /// `backfill`; `fetch` reads one remote and checks what it read.
    fn get_remote(
        &self,
        ns: Namespace,
        key: &Digest,
        backfill: bool,
        fetch: impl Fn(&dyn Store) -> Result<Option<Vec<u8>>, StoreError>,
    ) -> Option<Vec<u8>> {
        for (i, r) in self.remotes.iter().enumerate() {
            if let Some(v) = self.fetch_from(r, key, &fetch) {
                if backfill {
                    self.backfill(i, ns, key, &v);
                }
                return Some(v);
            }
        }
        None
    }
}

impl Store for Tiers {
    fn name(&self) -> String {
        let mut n = self.local.name();
        for r in &self.remotes {
            n.push_str(" -> ");
            n.push_str(&r.name);
            if r.spec.read_only {
                n.push_str(" (read-only)");
            }
        }
        n
    }

    fn capabilities(&self) -> Capabilities {
        self.local.capabilities()
    }

    fn get(&self, ns: Namespace, key: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = self.local.get(ns, key)? {
            return Ok(Some(v));
        }
        if ns == Namespace::Link {
            return Ok(None);
        }
        Ok(self.get_remote(ns, key, true, |s| {
            if ns == Namespace::Cas {
                verified(s.get(ns, key)?, key)
            } else {
                s.get(ns, key)
            }
        }))
    }

    fn get_blob(&self, digest: &Digest, size: u64) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = self.local.get_blob(digest, size)? {
            return Ok(Some(v));
        }
        Ok(self.remote_blob(digest, size))
    }

    /// The local store checks its own copy; a remote's copy is checked once, before it
    /// is backfilled, and not hashed again.
    fn get_verified_blob(&self, digest: &Digest, size: u64) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = larder_store::get_verified_blob(&self.local, digest, size)? {
            return Ok(Some(v));
        }
        Ok(self.remote_blob(digest, size))
    }

    fn put(&self, ns: Namespace, key: &Digest, value: &[u8]) -> Result<(), StoreError> {
        let local = self.local.put(ns, key, value);
        if ns != Namespace::Link {
            for r in &self.remotes {
                self.put_remote(r, ns, key, value);
            }
        }
        local
    }

    /// Deletes from the local store only: remotes are shared, and a bad remote entry is
    /// replaced by the next write of the same key.
    fn delete(&self, ns: Namespace, key: &Digest) -> Result<(), StoreError> {
        self.local.delete(ns, key)
    }

    fn contains(&self, ns: Namespace, key: &Digest) -> Result<bool, StoreError> {
        if self.local.contains(ns, key)? {
            return Ok(true);
        }
        if ns == Namespace::Link {
            return Ok(false);
        }
        for r in &self.remotes {
            if !self.usable(r, Dir::Read) {
                continue;
            }
            match r.store.contains(ns, key) {
                Ok(true) => return Ok(true),
                Ok(false) => {}
                Err(e) => self.failed(r, Dir::Read, &e),
            }
        }
        Ok(false)
    }

    /// Read-modify-write of `ns`/`key` in each writable tier separately: `f` gets that
    /// tier's current value (`None` if absent or unreadable) and returns the new one.
    /// Used for manifests, which several machines extend: each remote keeps the entries
    /// other machines added.
    fn update(
        &self,
        ns: Namespace,
        key: &Digest,
        f: &dyn Fn(Option<Vec<u8>>) -> Vec<u8>,
    ) -> Result<(), StoreError> {
        self.update_faster(self.remotes.len(), ns, key, f)
    }
}

/// `value` if it hashes to `digest`; a mismatch is [`StoreError::Corrupt`].
fn verified(value: Option<Vec<u8>>, digest: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
    match value {
        Some(v) if Digest::of(&v) != *digest => Err(StoreError::Corrupt {
            namespace: Namespace::Cas.as_str(),
            key: *digest,
            detail: "remote blob does not match its digest".into(),
        }),
        v => Ok(v),
    }
}
