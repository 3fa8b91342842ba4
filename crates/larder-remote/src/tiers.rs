//! The tier chain: the local store first, then the remotes in the configured order.
//!
//! [`Tiers`] composes store layers (as nativelink's `FastSlowStore` and `VerifyStore`,
//! opendal's layers): each remote is its backend wrapped in [`Verified`] (blobs checked
//! against their digests), [`Counted`] (counters for `larder stats`), [`Breaker`]
//! (failures isolated, counted per build, switch-off) and, for a read-only tier,
//! [`ReadOnly`]. A remote stack therefore never returns an error; only the local store
//! can.
//!
//! - **Lookup.** [`Store::get`] and [`Store::get_blob`] try each tier in turn. A value
//!   found in a remote is written to every faster tier (backfill): the local store
//!   always, earlier writable remotes too (a hit in the public tier fills the team
//!   tier). A corrupt remote copy is a miss there, and the next tier is tried.
//! - **Per-tier reads.** Manifests are each tier's own document, extended by every
//!   machine: [`Tiers::tiers`] gives each tier in turn ([`Tier`]), and a manifest entry
//!   used from one tier is merged into the faster tiers' manifests
//!   ([`Tier::update_faster`]), never replacing them.
//! - **Write.** [`Store::put`] writes the local store, then every writable remote;
//!   [`Store::update`] merges into each tier's own value. Remote failures never fail a
//!   write: the local store has the entry.
//! - **Link records** stay local: they are derived from action records on every restore.
//! - **Gate.** With [`Tiers::with_gate`], a read of an entry that the local store lacks
//!   first waits at the gate for that entry, then looks in the local store again before
//!   it asks a remote (the wrappers of a build wait for its prefetch to bring their
//!   entries, each its own, instead of fetching them one call after another).
//! - **Admission.** With [`Tiers::with_admission`], every action record read is put to
//!   an [`Admit`] first, with whether its tier requires a trusted signature: a refused
//!   record is counted, warned about once per build and tier, never backfilled, and the
//!   next tier is tried ([`crate::admit`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use larder_digest::Digest;
use larder_store::{Capabilities, DiskStore, Namespace, Store, StoreError, build_id};

use crate::RemoteSpec;
use crate::admit::Admit;
use crate::breaker::{Breaker, ReadOnly};
use crate::counted::{ChainState, Counted, RemoteCounters};
use crate::verify::Verified;

/// The local store and the remotes behind it, as one [`Store`].
pub struct Tiers {
    local: DiskStore,
    /// Each remote's layered stack, in lookup order.
    remotes: Vec<Box<dyn Store>>,
    /// Each remote's name and whether it requires trusted signatures, in the order of
    /// `remotes`.
    remote_requires: Vec<(String, bool)>,
    admission: Option<Admission>,
    gate: Option<Gate>,
    state: Arc<ChainState>,
    hooks: Hooks,
    stats_dir: Option<PathBuf>,
}

/// Waits until an entry (namespace, key) may be in the local store: [`Tiers::with_gate`].
type GateWait = dyn Fn(Namespace, &Digest) -> bool + Send + Sync;

/// What a read waits for before it asks a remote.
struct Gate {
    wait: Box<GateWait>,
    /// Set once `wait` said it will never wait again.
    open: std::sync::atomic::AtomicBool,
}

/// What decides on action records, and whether the local store's need a signature.
struct Admission {
    admit: Arc<dyn Admit>,
    local_requires: bool,
    /// Refusals are neither counted nor warned about ([`Tiers::with_quiet_refusals`]).
    quiet: bool,
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

/// One tier of the chain, for reads that look at each tier's own value (manifests).
pub struct Tier<'a> {
    tiers: &'a Tiers,
    /// 0: the local store; `i > 0`: remote `i - 1`.
    at: usize,
}

impl Tier<'_> {
    fn store(&self) -> &dyn Store {
        match self.at {
            0 => &self.tiers.local,
            i => &*self.tiers.remotes[i - 1],
        }
    }

    /// The tier's name: `local` for the local store, else the remote's URL with
    /// credentials removed.
    pub fn name(&self) -> String {
        match self.at {
            0 => "local".to_string(),
            _ => self.store().name(),
        }
    }

    /// This tier's value. Only the local store returns errors: a remote's failure is
    /// a miss (counted, and switched off after repeated failures).
    ///
    /// # Errors
    /// [`StoreError`] if the local store cannot be read.
    pub fn get(&self, ns: Namespace, key: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        if self.at > 0 {
            self.tiers.pass_gate(ns, key);
        }
        self.store().get(ns, key)
    }

    /// Whether an action record (or anything signed like one) read from this tier is
    /// used only with a trusted signature: the remote's
    /// [`RemoteSpec::require_signatures`]; for the local store, what
    /// [`Tiers::with_admission`] said (`false` without admission).
    pub fn requires_signatures(&self) -> bool {
        match self.at {
            0 => self
                .tiers
                .admission
                .as_ref()
                .is_some_and(|a| a.local_requires),
            i => self.tiers.remote_requires[i - 1].1,
        }
    }

    /// Whether this tier has the entry; a remote's failure is `false`.
    pub fn contains(&self, ns: Namespace, key: &Digest) -> bool {
        self.store().contains(ns, key).unwrap_or(false)
    }

    /// Whether this tier has the CAS blob `digest` of `size` bytes ([`Store::contains_blob`]:
    /// the REAPI needs the size); a remote's failure is `false`.
    pub fn contains_blob(&self, digest: &Digest, size: u64) -> bool {
        self.store().contains_blob(digest, size).unwrap_or(false)
    }

    /// Whether this tier is a remote that can be written.
    pub fn is_writable_remote(&self) -> bool {
        self.at > 0 && self.store().capabilities().write
    }

    /// Writes `value` to this tier if it is a writable remote (the local store and a
    /// read-only remote are left alone). Returns whether the remote was written to: a
    /// failed write is counted (and may switch the remote off), never returned.
    pub fn put_remote(&self, ns: Namespace, key: &Digest, value: &[u8]) -> bool {
        self.is_writable_remote() && self.store().put(ns, key, value).is_ok()
    }

    /// Drops a corrupt entry where larder owns it: in the local store. A shared entry is
    /// replaced by the next write instead.
    pub fn discard(&self, ns: Namespace, key: &Digest) {
        let _ = self.store().delete(ns, key);
    }

    /// [`Store::update`] of every tier faster than this one (the local store and the
    /// writable remotes before it), each applying `f` to its own value. Nothing for the
    /// local store, the fastest.
    ///
    /// # Errors
    /// [`StoreError`] if the local store cannot be written.
    pub fn update_faster(
        &self,
        ns: Namespace,
        key: &Digest,
        f: &dyn Fn(Option<Vec<u8>>) -> Vec<u8>,
    ) -> Result<(), StoreError> {
        if self.at == 0 {
            return Ok(());
        }
        self.tiers.update_upto(self.at, ns, key, f)
    }
}

impl Tiers {
    /// Chains `local` and the remotes of `specs`, in order. A remote that cannot be
    /// configured is left out with a warning (through `hooks.warn`).
    pub fn new(local: DiskStore, specs: &[RemoteSpec], hooks: Hooks) -> Tiers {
        let state = ChainState::new(build_id(), hooks.warn);
        let mut remotes: Vec<Box<dyn Store>> = Vec::new();
        let mut remote_requires = Vec::new();
        for spec in specs {
            let backend = match crate::open(spec) {
                Ok(b) => b,
                Err(e) => {
                    (hooks.warn)(
                        &format!("remote-open:{}", spec.name()),
                        &format!("remote {} is not used: {e}", spec.name()),
                    );
                    continue;
                }
            };
            let name = spec.name();
            let counted = Counted::new(Verified::new(backend), name.clone(), state.clone());
            remote_requires.push((name.clone(), spec.require_signatures));
            let stack = Breaker::new(counted, name, state.clone());
            remotes.push(if spec.read_only {
                Box::new(ReadOnly::new(stack))
            } else {
                Box::new(stack)
            });
        }
        Tiers {
            local,
            remotes,
            remote_requires,
            admission: None,
            gate: None,
            state,
            hooks,
            stats_dir: None,
        }
    }

    /// Counts failures in the build `id` instead of [`build_id`]'s.
    pub fn with_build_id(self, id: &str) -> Tiers {
        self.state.set_build_id(id);
        self
    }

    /// Puts every action record read to `admit` first; `local_requires`: whether the
    /// local store's records need a trusted signature too (a remote's need is its
    /// [`RemoteSpec::require_signatures`]).
    pub fn with_admission(mut self, admit: Arc<dyn Admit>, local_requires: bool) -> Tiers {
        self.admission = Some(Admission {
            admit,
            local_requires,
            quiet: false,
        });
        self
    }

    /// Refused records are misses that are not counted or warned about: for reads
    /// ahead of the build (a prefetch), whose refusals the lookups that need the
    /// record count and report.
    pub fn with_quiet_refusals(mut self) -> Tiers {
        if let Some(a) = &mut self.admission {
            a.quiet = true;
        }
        self
    }

    /// Calls `wait(namespace, key)` before a remote is asked for an entry that the
    /// local store lacks, and looks in the local store again after it: `wait` returns
    /// once whatever may bring the entry into the local store (a prefetch) is done with
    /// it, `true` while it may still bring others, `false` once it never will (the gate
    /// then stays open).
    pub fn with_gate(
        mut self,
        wait: impl Fn(Namespace, &Digest) -> bool + Send + Sync + 'static,
    ) -> Tiers {
        self.gate = Some(Gate {
            wait: Box::new(wait),
            open: std::sync::atomic::AtomicBool::new(false),
        });
        self
    }

    /// Waits at the gate ([`Tiers::with_gate`]) for `key`, if there is a gate, it is
    /// not open yet and there are remotes. Returns whether it did (the local store may
    /// have the entry now).
    pub fn pass_gate(&self, ns: Namespace, key: &Digest) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let Some(g) = self.gate.as_ref().filter(|_| !self.remotes.is_empty()) else {
            return false;
        };
        if g.open.load(Relaxed) {
            return false;
        }
        if !(g.wait)(ns, key) {
            g.open.store(true, Relaxed);
        }
        true
    }

    /// Quarantines the action record `record` (its bytes) under `key` (a verification
    /// found it differs from a local compile, or it led to a failed restore): marked in
    /// the local store so that no tier's copy of it is restored here again, and deleted
    /// from the local store and from every writable remote that can delete.
    pub fn quarantine(&self, key: &Digest, record: &[u8], reason: &str) {
        if let Err(e) = self.local.quarantine(key, record, reason) {
            tracing::debug!(error = %e, "cannot write the quarantine marker");
        }
        for r in writable(&self.remotes) {
            let _ = r.delete(Namespace::Action, key);
        }
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

    /// Each tier in lookup order, the local store first.
    pub fn tiers(&self) -> impl Iterator<Item = Tier<'_>> {
        (0..=self.remotes.len()).map(move |at| Tier { tiers: self, at })
    }

    /// The name of the first remote that answered a lookup of this process with an
    /// entry, if any.
    pub fn served_by(&self) -> Option<String> {
        self.state.served_by()
    }

    /// Takes the counters this process has gathered, per remote name (credentials
    /// removed), leaving zeros.
    pub fn take_counters(&self) -> BTreeMap<String, RemoteCounters> {
        self.state.take_counters()
    }

    /// [`Store::update`] of the local store and the first `upto - 1` remotes.
    fn update_upto(
        &self,
        upto: usize,
        ns: Namespace,
        key: &Digest,
        f: &dyn Fn(Option<Vec<u8>>) -> Vec<u8>,
    ) -> Result<(), StoreError> {
        let local = self.local.update(ns, key, f);
        for r in writable(&self.remotes[..upto.saturating_sub(1)]) {
            let _ = r.update(ns, key, f);
        }
        local
    }

    /// Writes `value` to the local store and the remotes before remote `i` (backfill
    /// after a hit there). A blob came through remote `i`'s [`Verified`] layer (every
    /// remote has one: [`Tiers::new`]), which hashed it: the local store keeps it without
    /// hashing it again.
    fn backfill(&self, i: usize, ns: Namespace, key: &Digest, value: &[u8]) {
        let local = if ns == Namespace::Cas {
            self.local.put_verified_blob(key, value)
        } else {
            self.local.put(ns, key, value)
        };
        if let Err(e) = local {
            tracing::debug!(error = %e, "backfill of the local store failed");
        }
        for r in writable(&self.remotes[..i]) {
            let _ = r.put(ns, key, value);
        }
    }

    /// Admits the action record `value` read from tier `at` (0: the local store), or
    /// counts, warns about and returns the refusal.
    fn admitted(&self, at: usize, key: &Digest, value: &[u8]) -> Result<(), StoreError> {
        let Some(a) = &self.admission else {
            return Ok(());
        };
        let (tier, required) = match at {
            0 => ("local", a.local_requires),
            i => {
                let (name, required) = &self.remote_requires[i - 1];
                (name.as_str(), *required)
            }
        };
        a.admit.admit(required, key, value).map_err(|reason| {
            let tier = tier.to_string();
            if a.quiet {
                return StoreError::Untrusted {
                    tier,
                    key: *key,
                    reason,
                };
            }
            self.state.count(&tier, |c| c.refused += 1);
            self.state.warn(
                &format!("refused:{tier}"),
                &format!(
                    "action records from {tier} are refused ({reason}) and compiled instead \
                     (LARDER_TRUSTED_KEYS, LARDER_REQUIRE_SIGNATURES)"
                ),
            );
            StoreError::Untrusted {
                tier,
                key: *key,
                reason,
            }
        })
    }

    /// The action record under `key` from the first tier that has one it admits
    /// (backfilled into the faster tiers), else the first refusal, else nothing.
    fn get_record(&self, key: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        let ns = Namespace::Action;
        let mut refused = None;
        let mut local = self.local.get(ns, key)?;
        if local.is_none() && self.pass_gate(ns, key) {
            local = self.local.get(ns, key)?;
        }
        if let Some(v) = local {
            match self.admitted(0, key, &v) {
                Ok(()) => return Ok(Some(v)),
                Err(e) => refused = Some(e),
            }
        }
        for (i, r) in self.remotes.iter().enumerate() {
            if let Ok(Some(v)) = r.get(ns, key) {
                match self.admitted(i + 1, key, &v) {
                    Ok(()) => {
                        self.backfill(i, ns, key, &v);
                        return Ok(Some(v));
                    }
                    Err(e) => {
                        refused.get_or_insert(e);
                    }
                }
            }
        }
        refused.map_or(Ok(None), Err)
    }

    /// Whether the local store has `ns`/`key` (after the gate, which may bring it there),
    /// else whether a remote has it, as `remote` asks one (a failure counts as no).
    fn contains_anywhere(
        &self,
        ns: Namespace,
        key: &Digest,
        remote: impl Fn(&dyn Store) -> Result<bool, StoreError>,
    ) -> Result<bool, StoreError> {
        if self.local.contains(ns, key)? {
            return Ok(true);
        }
        if ns == Namespace::Link {
            return Ok(false);
        }
        if self.pass_gate(ns, key) && self.local.contains(ns, key)? {
            return Ok(true);
        }
        Ok(self.remotes.iter().any(|r| remote(&**r).unwrap_or(false)))
    }

    /// `local()`'s value, else (after the gate, which may bring it into the local store:
    /// then `local()` again) the first remote value that `fetch` finds, backfilled into
    /// the faster tiers.
    fn get_local_or_remote(
        &self,
        ns: Namespace,
        key: &Digest,
        local: impl Fn() -> Result<Option<Vec<u8>>, StoreError>,
        fetch: impl Fn(&dyn Store) -> Result<Option<Vec<u8>>, StoreError>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = local()? {
            return Ok(Some(v));
        }
        if ns == Namespace::Link {
            return Ok(None);
        }
        if self.pass_gate(ns, key)
            && let Some(v) = local()?
        {
            return Ok(Some(v));
        }
        for (i, r) in self.remotes.iter().enumerate() {
            if let Ok(Some(v)) = fetch(&**r) {
                self.backfill(i, ns, key, &v);
                return Ok(Some(v));
            }
        }
        Ok(None)
    }
}

/// The remotes among `remotes` that declare they can be written.
fn writable(remotes: &[Box<dyn Store>]) -> impl Iterator<Item = &dyn Store> {
    remotes
        .iter()
        .map(|r| &**r)
        .filter(|r| r.capabilities().write)
}

impl Store for Tiers {
    fn name(&self) -> String {
        let mut n = self.local.name();
        for r in &self.remotes {
            n.push_str(" -> ");
            n.push_str(&r.name());
        }
        n
    }

    fn capabilities(&self) -> Capabilities {
        self.local.capabilities()
    }

    fn get(&self, ns: Namespace, key: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        if ns == Namespace::Action {
            return self.get_record(key);
        }
        self.get_local_or_remote(ns, key, || self.local.get(ns, key), |s| s.get(ns, key))
    }

    fn get_blob(&self, digest: &Digest, size: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_local_or_remote(
            Namespace::Cas,
            digest,
            || self.local.get_blob(digest, size),
            |s| s.get_blob(digest, size),
        )
    }

    /// The local store checks its own copy; a remote's copy is checked once
    /// ([`Verified`]), before it is backfilled, and not hashed again.
    fn get_verified_blob(&self, digest: &Digest, size: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_local_or_remote(
            Namespace::Cas,
            digest,
            || larder_store::get_verified_blob(&self.local, digest, size),
            |s| s.get_blob(digest, size),
        )
    }

    fn put(&self, ns: Namespace, key: &Digest, value: &[u8]) -> Result<(), StoreError> {
        let local = self.local.put(ns, key, value);
        // Bytes that are not the blob (the local store hashes what it stores) go nowhere.
        if matches!(local, Err(StoreError::Corrupt { .. })) {
            return local;
        }
        if ns != Namespace::Link {
            for r in writable(&self.remotes) {
                let _ = r.put(ns, key, value);
            }
        }
        local
    }

    /// Links into the local store only when no remote is written: a remote needs the
    /// bytes, read and checked once by [`Store::put`].
    fn link_blob(
        &self,
        digest: &Digest,
        path: &std::path::Path,
        hashed: Option<&larder_store::check::Hashed>,
    ) -> Result<Option<larder_store::Linked>, StoreError> {
        if writable(&self.remotes).next().is_some() {
            return Ok(None);
        }
        self.local.link_blob(digest, path, hashed)
    }

    /// Copies into the local store only when no remote is written, as
    /// [`Store::link_blob`].
    fn copy_blob(
        &self,
        digest: &Digest,
        file: &mut std::fs::File,
        hashed: Option<&larder_store::check::Hashed>,
    ) -> Result<bool, StoreError> {
        if writable(&self.remotes).next().is_some() {
            return Ok(false);
        }
        self.local.copy_blob(digest, file, hashed)
    }

    /// Deletes from the local store only: remotes are shared, and a bad remote entry is
    /// replaced by the next write of the same key.
    fn delete(&self, ns: Namespace, key: &Digest) -> Result<(), StoreError> {
        self.local.delete(ns, key)
    }

    fn contains(&self, ns: Namespace, key: &Digest) -> Result<bool, StoreError> {
        self.contains_anywhere(ns, key, |r| r.contains(ns, key))
    }

    fn contains_blob(&self, digest: &Digest, size: u64) -> Result<bool, StoreError> {
        self.contains_anywhere(Namespace::Cas, digest, |r| r.contains_blob(digest, size))
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
        self.update_upto(self.remotes.len() + 1, ns, key, f)
    }
}
