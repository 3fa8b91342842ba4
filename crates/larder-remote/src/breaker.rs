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
//!
//! Time counts as well as failures:
//! - **A latency budget.** A call slower than [`SLOW_CALL`] plus the time its bytes need
//!   at [`SLOW_BYTES_PER_SEC`] (a slow answer), or a failed call that took that long (a
//!   timeout), spends its time from the remote's budget for the build, kept per
//!   direction in the build's state; once the spent time passes [`LATENCY_BUDGET`] for
//!   reads (on cargo's critical path) or [`WRITE_LATENCY_BUDGET`] for writes (in
//!   background store jobs), the remote is switched off for that direction. A remote
//!   that answers every call in 4 s, under its 5 s deadline, so costs a build about the
//!   budget, not 4 s per call.
//!   Slow calls are counted (`slow` in `larder stats`). A call's time is the time it
//!   kept its thread waiting ([`Stopwatch`]): its wall time less the time the thread
//!   spent on a CPU or queued for one meanwhile, so that a loaded machine (a
//!   prefetch's threads and a build's compiles on 2 cores) does not make a remote that
//!   answers at once look slow.
//! - **A refused connection** switches the remote off at once. The first process of a
//!   build probes the remote before its first call ([`Store::probe`]: a TCP connect for
//!   memcached and Redis, whose clients would retry until the deadline), so a dead
//!   server costs one connect per build.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use larder_digest::Digest;
use larder_store::{BuildState, Capabilities, Namespace, Store, StoreError};

use crate::counted::ChainState;

/// Failed calls after which a remote's reads (or writes) are switched off for the build.
pub const FAILURES_TO_SWITCH_OFF: u64 = 3;

/// A call that takes longer than this (plus its bytes' time) is slow.
pub const SLOW_CALL: Duration = Duration::from_secs(1);

/// The transfer rate below which a call that moved bytes is slow, in bytes per second.
pub const SLOW_BYTES_PER_SEC: f64 = 8.0 * 1024.0 * 1024.0;

/// The time slow reads of one remote may cost one build before it is switched off: reads
/// are on cargo's critical path.
pub const LATENCY_BUDGET: Duration = Duration::from_secs(3);

/// The same for writes, which run in background store jobs off cargo's critical path (a
/// loaded machine's uploads of large blobs are slow and still worth it); it bounds how
/// long `larder cargo` waits for the uploads after cargo.
pub const WRITE_LATENCY_BUDGET: Duration = Duration::from_secs(20);

/// Times a remote call by what it kept its thread waiting: the wall time less the time
/// the thread spent on a CPU or queued for one meanwhile (the first two fields of
/// `/proc/thread-self/schedstat`, nanoseconds). Verifying and decompressing what came
/// back, and the other threads and processes on the same cores, are the machine's time,
/// not the remote's. Where that file cannot be read, the wall time.
struct Stopwatch {
    started: Instant,
    local: Option<Duration>,
}

impl Stopwatch {
    fn start() -> Stopwatch {
        Stopwatch {
            local: thread_local_time(),
            started: Instant::now(),
        }
    }

    /// The time the call spent waiting for the remote so far.
    fn remote_time(&self) -> Duration {
        let wall = self.started.elapsed();
        match (self.local, thread_local_time()) {
            (Some(before), Some(now)) => wall.saturating_sub(now.saturating_sub(before)),
            _ => wall,
        }
    }
}

/// This thread's time on a CPU plus its time queued for one, since it started.
fn thread_local_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let mut fields = text.split_whitespace().map(str::parse::<u64>);
    let on_cpu = fields.next()?.ok()?;
    let queued = fields.next()?.ok()?;
    Some(Duration::from_nanos(on_cpu.saturating_add(queued)))
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

/// Isolates the failures of `S`: counts them per build, switches `S` off, never
/// returns them.
pub struct Breaker<S> {
    inner: S,
    name: String,
    state: Arc<ChainState>,
    read_off: AtomicBool,
    write_off: AtomicBool,
    /// Whether this process has made sure the build probed the remote.
    probe_done: AtomicBool,
}

/// The bytes a read moved.
fn moved(v: &Option<Vec<u8>>) -> u64 {
    v.as_ref().map_or(0, |b| b.len() as u64)
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
            probe_done: AtomicBool::new(false),
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

    /// Counts a failure that took `took`; switches the remote off for `dir` once it has
    /// failed often enough in this build, at once if it refused the connection, or when
    /// the time its failures and slow calls took passes the budget.
    fn failed(&self, dir: Dir, e: &StoreError, took: Duration) {
        tracing::debug!(remote = %self.name, op = dir.as_str(), error = %e, "remote call failed");
        if e.is_refused() {
            self.switch_off(dir, &format!("it refuses connections ({e})"));
            return;
        }
        if took > SLOW_CALL && self.spend(dir, took) {
            return;
        }
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
        if failures >= FAILURES_TO_SWITCH_OFF {
            self.switch_off(dir, &format!("{failures} failed calls (last: {e})"));
        }
    }

    /// Counts a call that succeeded in `took` having moved `bytes`: a slow one spends
    /// from the budget.
    fn succeeded(&self, dir: Dir, took: Duration, bytes: u64) {
        let allowance = SLOW_CALL + Duration::from_secs_f64(bytes as f64 / SLOW_BYTES_PER_SEC);
        if took > allowance {
            self.state.count(&self.name, |c| c.slow += 1);
            self.spend(dir, took);
        }
    }

    /// Spends `took` from the build's budget for `dir` (milliseconds, one line per call,
    /// appended); switches the remote off once the budget is spent. Whether it did.
    fn spend(&self, dir: Dir, took: Duration) -> bool {
        let file = self.health_file(dir, ".spent");
        let line = format!("{}\n", took.as_millis());
        let appended = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        let spent_ms: u128 = match appended.and_then(|()| std::fs::read_to_string(&file)) {
            Ok(text) => text.lines().filter_map(|l| l.parse::<u128>().ok()).sum(),
            Err(_) => took.as_millis(),
        };
        let budget = match dir {
            Dir::Read => LATENCY_BUDGET,
            Dir::Write => WRITE_LATENCY_BUDGET,
        };
        if spent_ms <= budget.as_millis() {
            return false;
        }
        self.switch_off(
            dir,
            &format!(
                "its slow calls took {:.1} s of this build (budget {} s; last call {:.1} s)",
                spent_ms as f64 / 1000.0,
                budget.as_secs(),
                took.as_secs_f64()
            ),
        );
        true
    }

    /// Switches the remote off for `dir` for the rest of the build, with one warning.
    fn switch_off(&self, dir: Dir, why: &str) {
        let (flag, what) = match dir {
            Dir::Read => (&self.read_off, "switched off"),
            Dir::Write => (&self.write_off, "not written to"),
        };
        flag.store(true, Ordering::Relaxed);
        let _ = std::fs::write(self.health_file(dir, ".off"), b"");
        self.state.warn(
            &format!("remote-off:{}:{}", self.name, dir.as_str()),
            &format!(
                "remote {} {what} for the rest of this build: {why}; the build goes on with the other tiers",
                self.name
            ),
        );
    }

    /// Probes the remote once per build, before the first call of the build's first
    /// process: a refused connection switches it off at once.
    fn probed(&self) -> bool {
        if self.probe_done.load(Ordering::Relaxed) {
            return true;
        }
        self.probe_done.store(true, Ordering::Relaxed);
        let marker = self.health_file(Dir::Read, ".probed");
        if marker.exists() {
            return true;
        }
        // Written only once the probe passed: parallel first processes each probe.
        match self.inner.probe() {
            Ok(()) => {
                let _ = std::fs::write(&marker, b"");
                true
            }
            Err(e) => {
                self.switch_off(Dir::Read, &format!("it refuses connections ({e})"));
                false
            }
        }
    }

    /// A read through the breaker: `None` when off, on a failure or a corrupt entry.
    /// `bytes` tells how much a result moved (for the latency budget).
    fn read<T: Default>(
        &self,
        call: impl FnOnce(&S) -> Result<T, StoreError>,
        bytes: impl FnOnce(&T) -> u64,
    ) -> T {
        if !self.usable(Dir::Read) || !self.probed() {
            return T::default();
        }
        let watch = Stopwatch::start();
        let result = call(&self.inner);
        let took = watch.remote_time();
        match result {
            Ok(v) => {
                self.succeeded(Dir::Read, took, bytes(&v));
                v
            }
            Err(StoreError::Corrupt { .. }) => T::default(),
            Err(e) => {
                self.failed(Dir::Read, &e, took);
                T::default()
            }
        }
    }

    /// A write through the breaker of `value` (or of nothing, a delete).
    fn write(&self, len: u64, call: impl FnOnce(&S) -> Result<(), StoreError>) {
        if !self.usable(Dir::Write) || !self.probed() {
            return;
        }
        let watch = Stopwatch::start();
        let result = call(&self.inner);
        let took = watch.remote_time();
        match result {
            Ok(()) => self.succeeded(Dir::Write, took, len),
            Err(StoreError::TooLarge { .. }) => {}
            Err(e) => self.failed(Dir::Write, &e, took),
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
        Ok(self.read(|s| s.get(ns, key), moved))
    }

    fn get_blob(&self, digest: &Digest, size: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.read(|s| s.get_blob(digest, size), moved))
    }

    fn get_verified_blob(&self, digest: &Digest, size: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.read(|s| s.get_verified_blob(digest, size), moved))
    }

    fn contains(&self, ns: Namespace, key: &Digest) -> Result<bool, StoreError> {
        Ok(self.read(|s| s.contains(ns, key), |_| 0))
    }

    fn contains_blob(&self, digest: &Digest, size: u64) -> Result<bool, StoreError> {
        Ok(self.read(|s| s.contains_blob(digest, size), |_| 0))
    }

    fn put(&self, ns: Namespace, key: &Digest, value: &[u8]) -> Result<(), StoreError> {
        self.write(value.len() as u64, |s| s.put(ns, key, value));
        Ok(())
    }

    /// Shared entries are not deleted: a bad one is replaced by the next write.
    /// Deletes on the remote unless it is switched off; a failure is not returned (a
    /// quarantine deletes wherever it can).
    fn delete(&self, ns: Namespace, key: &Digest) -> Result<(), StoreError> {
        self.write(0, |s| s.delete(ns, key));
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
        let watch = Stopwatch::start();
        let current = match self.inner.get(ns, key) {
            Ok(v) => v,
            Err(StoreError::Corrupt { .. }) => None,
            Err(e) => {
                self.failed(Dir::Read, &e, watch.remote_time());
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

    fn contains_blob(&self, digest: &Digest, size: u64) -> Result<bool, StoreError> {
        self.inner.contains_blob(digest, size)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_is_timed_by_its_wait_not_by_the_machines_work() {
        if thread_local_time().is_none() {
            return; // no /proc/thread-self/schedstat: wall time, as before
        }
        // Waiting (a remote's answer) counts.
        let watch = Stopwatch::start();
        std::thread::sleep(Duration::from_millis(300));
        assert!(watch.remote_time() >= Duration::from_millis(250));
        // Working on a CPU (verifying, decompressing) does not.
        let watch = Stopwatch::start();
        let mut x = 0u64;
        let spin = Instant::now();
        while spin.elapsed() < Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        assert!(
            watch.remote_time() < Duration::from_millis(150),
            "{:?} of 300 ms of work counted as waiting",
            watch.remote_time()
        );
    }
}
