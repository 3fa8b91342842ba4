//! One compile per key on a machine.
//!
//! Two builds of the same sources at once (two worktrees, two CI jobs on one runner)
//! reach the same invocation key at about the same time. The first to miss takes an
//! exclusive lock on `<store>/v1/locks/<invocation key>` and compiles; the others block
//! on the lock and, when it is released, look the key up again and restore what the
//! first one stored. The lock is an `flock`: the kernel releases it if its holder dies,
//! so a crashed compile never blocks anyone. Lock files are empty and removed by `gc`
//! when stale.

use std::fs::{File, TryLockError};
use std::io;
use std::path::Path;

use larder_digest::Digest;

/// A held lock; released when dropped.
#[derive(Debug)]
pub struct FlightLock {
    _file: File,
}

impl FlightLock {
    /// The locked file, to hand the lock to a background process.
    pub fn file(&self) -> &File {
        &self._file
    }
}

/// How the lock was obtained.
#[derive(Debug)]
pub enum Flight {
    /// Nobody else was compiling this key.
    Leader(FlightLock),
    /// Another process was; it has finished (or died) since.
    Waited(FlightLock),
}

/// Takes the lock for `key` in the store at `root` (`<dir>/v1`), waiting if another
/// process holds it.
///
/// # Errors
/// If the lock file cannot be created or locked (a read-only store): the caller then
/// compiles without single flight.
pub fn acquire(dir: &Path, key: &Digest) -> io::Result<Flight> {
    std::fs::create_dir_all(dir)?;
    let file = File::create(dir.join(key.to_hex()))?;
    match file.try_lock() {
        Ok(()) => Ok(Flight::Leader(FlightLock { _file: file })),
        Err(TryLockError::WouldBlock) => {
            tracing::debug!(%key, "waiting for a parallel compile of the same key");
            file.lock()?;
            Ok(Flight::Waited(FlightLock { _file: file }))
        }
        Err(TryLockError::Error(e)) => Err(e),
    }
}

/// Single flight around a miss: takes the lock for `key`, waiting if another process
/// holds it. If it had to wait, `relookup` runs again and its hit comes back as `Err`, to
/// be served instead of compiling. Otherwise the lock comes back (`None` where locking is
/// impossible, e.g. a read-only store), to be held until the result is stored.
pub fn lead_or_reuse<H>(
    dir: &Path,
    key: &Digest,
    relookup: impl FnOnce() -> Option<H>,
) -> Result<Option<FlightLock>, H> {
    match acquire(dir, key) {
        Ok(Flight::Leader(lock)) => Ok(Some(lock)),
        Ok(Flight::Waited(lock)) => match relookup() {
            Some(hit) => Err(hit),
            None => Ok(Some(lock)),
        },
        Err(e) => {
            tracing::debug!(%e, "no single flight");
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn second_holder_waits_for_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let key = Digest::of(b"k");
        let first = acquire(dir.path(), &key).unwrap();
        assert!(matches!(first, Flight::Leader(_)));
        let (tx, rx) = mpsc::channel();
        let root = dir.path().to_path_buf();
        let waiter = std::thread::spawn(move || {
            let f = acquire(&root, &key).unwrap();
            tx.send(matches!(f, Flight::Waited(_))).unwrap();
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(200)).is_err(),
            "blocked while held"
        );
        drop(first);
        assert!(
            rx.recv_timeout(Duration::from_secs(5)).unwrap(),
            "then got it as a waiter"
        );
        waiter.join().unwrap();
        // Another key is independent.
        assert!(matches!(
            acquire(dir.path(), &Digest::of(b"other")).unwrap(),
            Flight::Leader(_)
        ));
    }
}
