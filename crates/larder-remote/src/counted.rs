//! [`Counted`]: a store layer that counts what one remote did, for `larder stats`.
//!
//! Hits, misses, bytes, writes, errors, timeouts, corrupt entries and values too large
//! for the backend, per remote name (credentials removed), gathered in the process's
//! [`ChainState`] and added to the store's totals when the chain is dropped. The first
//! remote to answer a lookup with an entry is remembered ([`ChainState::served_by`]):
//! the report names it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use larder_digest::Digest;
use larder_store::{Capabilities, Namespace, Store, StoreError};
use serde::{Deserialize, Serialize};

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
    /// Action records refused for their signature (missing, invalid or untrusted where
    /// the tier requires one); counted for the local store too, under `local`.
    #[serde(default)]
    pub refused: u64,
    /// Calls that answered, but slowly (they spend from the build's latency budget).
    #[serde(default)]
    pub slow: u64,
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
        self.refused += other.refused;
        self.slow += other.slow;
    }

    fn is_zero(&self) -> bool {
        *self == RemoteCounters::default()
    }
}

/// What the layers of one chain share in this process: counters per remote, the remote
/// that first answered, the build whose failures count, and how to warn.
pub struct ChainState {
    counters: Mutex<BTreeMap<String, RemoteCounters>>,
    served_by: Mutex<Option<String>>,
    build_id: Mutex<String>,
    warn: fn(&str, &str),
}

impl ChainState {
    pub(crate) fn new(build_id: String, warn: fn(&str, &str)) -> Arc<ChainState> {
        Arc::new(ChainState {
            counters: Mutex::new(BTreeMap::new()),
            served_by: Mutex::new(None),
            build_id: Mutex::new(build_id),
            warn,
        })
    }

    /// Adds to the counters of remote `name`.
    pub(crate) fn count(&self, name: &str, f: impl FnOnce(&mut RemoteCounters)) {
        if let Ok(mut c) = self.counters.lock() {
            f(c.entry(name.to_string()).or_default());
        }
    }

    /// Takes the counters gathered so far, leaving zeros.
    pub(crate) fn take_counters(&self) -> BTreeMap<String, RemoteCounters> {
        let mut c = match self.counters.lock() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        std::mem::take(&mut *c)
            .into_iter()
            .filter(|(_, v)| !v.is_zero())
            .collect()
    }

    /// The first remote that answered a lookup with an entry, if any.
    pub(crate) fn served_by(&self) -> Option<String> {
        self.served_by.lock().ok()?.clone()
    }

    fn note_served(&self, name: &str) {
        if let Ok(mut s) = self.served_by.lock()
            && s.is_none()
        {
            *s = Some(name.to_string());
        }
    }

    pub(crate) fn build_id(&self) -> String {
        self.build_id.lock().map(|b| b.clone()).unwrap_or_default()
    }

    pub(crate) fn set_build_id(&self, id: &str) {
        if let Ok(mut b) = self.build_id.lock() {
            *b = id.to_string();
        }
    }

    pub(crate) fn warn(&self, topic: &str, message: &str) {
        (self.warn)(topic, message);
    }
}

/// Counts the calls made to `S` under `name`.
pub struct Counted<S> {
    inner: S,
    name: String,
    state: Arc<ChainState>,
}

impl<S: Store> Counted<S> {
    /// Wraps `inner`, counting under `name` in `state`.
    pub fn new(inner: S, name: String, state: Arc<ChainState>) -> Counted<S> {
        Counted { inner, name, state }
    }

    fn count_read(
        &self,
        key: &Digest,
        result: Result<Option<Vec<u8>>, StoreError>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        match &result {
            Ok(Some(v)) => {
                self.state.count(&self.name, |c| {
                    c.hits += 1;
                    c.bytes_read += v.len() as u64;
                });
                self.state.note_served(&self.name);
            }
            Ok(None) => self.state.count(&self.name, |c| c.misses += 1),
            Err(StoreError::Corrupt { detail, .. }) => {
                tracing::debug!(remote = %self.name, %key, %detail, "corrupt remote entry");
                self.state.count(&self.name, |c| {
                    c.corrupt += 1;
                    c.misses += 1;
                });
            }
            Err(e) => self.count_error(e),
        }
        result
    }

    fn count_error(&self, e: &StoreError) {
        let timeout = e.is_temporary();
        self.state.count(&self.name, |c| {
            c.errors += 1;
            c.timeouts += u64::from(timeout);
        });
    }
}

impl<S: Store> Store for Counted<S> {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn get(&self, ns: Namespace, key: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        self.count_read(key, self.inner.get(ns, key))
    }

    fn get_blob(&self, digest: &Digest, size: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.count_read(digest, self.inner.get_blob(digest, size))
    }

    fn get_verified_blob(&self, digest: &Digest, size: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.count_read(digest, self.inner.get_verified_blob(digest, size))
    }

    fn put(&self, ns: Namespace, key: &Digest, value: &[u8]) -> Result<(), StoreError> {
        let result = self.inner.put(ns, key, value);
        match &result {
            Ok(()) => self.state.count(&self.name, |c| {
                c.writes += 1;
                c.bytes_written += value.len() as u64;
            }),
            Err(StoreError::TooLarge { .. }) => {
                self.state.count(&self.name, |c| c.skipped_too_large += 1)
            }
            Err(e) => self.count_error(e),
        }
        result
    }

    fn delete(&self, ns: Namespace, key: &Digest) -> Result<(), StoreError> {
        self.inner.delete(ns, key)
    }

    fn probe(&self) -> Result<(), StoreError> {
        self.inner.probe()
    }

    fn contains(&self, ns: Namespace, key: &Digest) -> Result<bool, StoreError> {
        let result = self.inner.contains(ns, key);
        if let Err(e) = &result {
            self.count_error(e);
        }
        result
    }

    fn contains_blob(&self, digest: &Digest, size: u64) -> Result<bool, StoreError> {
        let result = self.inner.contains_blob(digest, size);
        if let Err(e) = &result {
            self.count_error(e);
        }
        result
    }
}
