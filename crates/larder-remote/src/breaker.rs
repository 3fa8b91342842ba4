//! [`Breaker`]: a store layer that keeps a failing remote from failing or slowing a
//! build.
//!
//! A remote never fails a build: every error of the layers below becomes a miss (for a
//! read) or a skipped write, after it is counted. Failures are counted per build in the
//! build's state directory ([`larder_store::BuildState`]), shared by the build's wrapper
//! processes. After [`FAILURES_TO_SWITCH_OFF`] failed reads the remote is switched off
//! for the rest of the build; after as many failed writes, only its writes are (a full
//! or read-only server still serves hits). Each switch-off warns once per build. A
//! corrupt entry or a value over the backend's limit is not a failure of the server.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use larder_digest::Digest;
use larder_store::{BuildState, Capabilities, Namespace, Store, StoreError};

use crate::counted::ChainState;

/// Failed calls after which a remote's reads (or writes) are switched off for the build.
pub const FAILURES_TO_SWITCH_OFF: u64 = 3;

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

/// Isolates the failures of `S`: counts them per build, switches `S` off, never
/// returns them.
pub struct Breaker<S> {
    inner: S,
    name: String,
    state: Arc<ChainState>,
    read_off: AtomicBool,
    write_off: AtomicBool,
}

impl<S: Store> Breaker<S> {
    /// Wraps `inner`, known as `name` in warnings and counters.
    pub fn new(inner: S, name: String, state: Arc<ChainState>) -> Breaker<S> {
        Breaker {
            inner,
            name,
            state,
            read_off: AtomicBool::new(false),
            write_off: AtomicBool::new(false),
        }
    }

    /// The per-build state file of this remote.
    fn health_file(&self, dir: Dir, suffix: &str) -> PathBuf {
        let id = Digest::of(self.name.as_bytes()).to_hex();
        BuildState::of(&self.state.build_id()).file(&format!(
            "remote-{}-{}{suffix}",
            &id[..24],
            dir.as_str()
        ))
    }

    /// Whether the remote is still on for `dir` in this build (switched-off writes also
    /// follow switched-off reads). A skipped call is counted.
    fn usable(&self, dir: Dir) -> bool {
        let flag = match dir {
            Dir::Read => &self.read_off,
            Dir::Write => &self.write_off,
        };
        if flag.load(Ordering::Relaxed)
            || (dir == Dir::Write && self.read_off.load(Ordering::Relaxed))
        {
            self.state.count(&self.name, |c| c.skipped_off += 1);
            return false;
        }
        let off = self.health_file(dir, ".off").exists()
            || (dir == Dir::Write && self.health_file(Dir::Read, ".off").exists());
        if off {
            flag.store(true, Ordering::Relaxed);
            self.state.count(&self.name, |c| c.skipped_off += 1);
        }
        !off
    }

    /// Counts a failure; switches the remote off for `dir` once it has failed often
    /// enough in this build.
    fn failed(&self, dir: Dir, e: &StoreError) {
        tracing::debug!(remote = %self.name, op = dir.as_str(), error = %e, "remote call failed");
        // One byte per failure, appended: O_APPEND keeps parallel wrappers' counts whole.
        let failures = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.health_file(dir, ".failures"))
            .and_then(|mut f| {
                f.write_all(b"x")?;
                f.metadata()
            })
            .map(|m| m.len())
            .unwrap_or(FAILURES_TO_SWITCH_OFF);
        if failures < FAILURES_TO_SWITCH_OFF {
            return;
        }
        let (flag, what) = match dir {
            Dir::Read => (&self.read_off, "switched off"),
            Dir::Write => (&self.write_off, "not written to"),
        };
        flag.store(true, Ordering::Relaxed);
        let _ = std::fs::write(self.health_file(dir, ".off"), b"");
        self.state.warn(
            &format!("remote-off:{}:{}", self.name, dir.as_str()),
            &format!(
                "remote {} {what} for the rest of this build after {failures} failed calls (last: {e}); the build goes on with the other tiers",
                self.name
            ),
        );
    }

    /// A read through the breaker: `None` when off, on a failure or a corrupt entry.
    fn read<T: Default>(&self, call: impl FnOnce(&S) -> Result<T, StoreError>) -> T {
        if !self.usable(Dir::Read) {
            return T::default();
        }
        match call(&self.inner) {
            Ok(v) => v,
            Err(StoreError::Corrupt { .. }) => T::default(),
            Err(e) => {
                self.failed(Dir::Read, &e);
                T::default()
            }
        }
    }
}

impl<S: Store> Store for Breaker<S> {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn get(&self, ns: Namespace, key: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.read(|s| s.get(ns, key)))
    }

    fn get_blob(&self, digest: &Digest, size: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.read(|s| s.get_blob(digest, size)))
    }

    fn get_verified_blob(&self, digest: &Digest, size: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.read(|s| s.get_verified_blob(digest, size)))
    }

    fn contains(&self, ns: Namespace, key: &Digest) -> Result<bool, StoreError> {
        Ok(self.read(|s| s.contains(ns, key)))
    }

    fn put(&self, ns: Namespace, key: &Digest, value: &[u8]) -> Result<(), StoreError> {
        if !self.usable(Dir::Write) {
            return Ok(());
        }
        match self.inner.put(ns, key, value) {
            Ok(()) | Err(StoreError::TooLarge { .. }) => {}
            Err(e) => self.failed(Dir::Write, &e),
        }
        Ok(())
    }

    /// Shared entries are not deleted: a bad one is replaced by the next write.
    /// Deletes on the remote unless it is switched off; a failure is not returned (a
    /// quarantine deletes wherever it can).
    fn delete(&self, ns: Namespace, key: &Digest) -> Result<(), StoreError> {
        if !self.write_off.load(Ordering::Relaxed) && !self.read_off.load(Ordering::Relaxed) {
            let _ = self.inner.delete(ns, key);
        }
        Ok(())
    }

    /// Read-modify-write of this remote's own value. A failed read writes nothing: it
    /// would replace entries other machines added.
    fn update(
        &self,
        ns: Namespace,
        key: &Digest,
        f: &dyn Fn(Option<Vec<u8>>) -> Vec<u8>,
    ) -> Result<(), StoreError> {
        if !self.usable(Dir::Write) || !self.usable(Dir::Read) {
            return Ok(());
        }
        let current = match self.inner.get(ns, key) {
            Ok(v) => v,
            Err(StoreError::Corrupt { .. }) => None,
            Err(e) => {
                self.failed(Dir::Read, &e);
                return Ok(());
            }
        };
        self.put(ns, key, &f(current))
    }
}

/// A remote that is only read: writes, updates and deletes do nothing.
pub struct ReadOnly<S> {
    inner: S,
}

impl<S: Store> ReadOnly<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> ReadOnly<S> {
        ReadOnly { inner }
    }
}

impl<S: Store> Store for ReadOnly<S> {
    fn name(&self) -> String {
        format!("{} (read-only)", self.inner.name())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            write: false,
            delete: false,
            ..self.inner.capabilities()
        }
    }

    fn get(&self, ns: Namespace, key: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(ns, key)
    }

    fn get_blob(&self, digest: &Digest, size: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get_blob(digest, size)
    }

    fn get_verified_blob(&self, digest: &Digest, size: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get_verified_blob(digest, size)
    }

    fn contains(&self, ns: Namespace, key: &Digest) -> Result<bool, StoreError> {
        self.inner.contains(ns, key)
    }

    fn put(&self, _ns: Namespace, _key: &Digest, _value: &[u8]) -> Result<(), StoreError> {
        Ok(())
    }

    fn delete(&self, _ns: Namespace, _key: &Digest) -> Result<(), StoreError> {
        Ok(())
    }

    fn update(
        &self,
        _ns: Namespace,
        _key: &Digest,
        _f: &dyn Fn(Option<Vec<u8>>) -> Vec<u8>,
    ) -> Result<(), StoreError> {
        Ok(())
    }
}
