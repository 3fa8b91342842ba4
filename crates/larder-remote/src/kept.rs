//! Connections kept for the rest of a process (Redis, memcached): one call at a time on
//! each, never checked before use, and never used again after a call that may have left
//! it out of step with the server.
//!
//! Checking a connection each time it is handed out (a `PING`, a `version`) costs a
//! round trip per call. Without the check, what keeps a reply of one call from being read
//! as the next call's is this: a connection goes back to the pool only after a call that
//! read its whole reply (it succeeded, or the server answered with an error). After a
//! timeout, a cut connection or a read interrupted by a signal it is dropped, and the
//! call is made again on a new connection (up to [`ATTEMPTS`] times; not after a
//! timeout, where the server is there and slow, nor a refused connection).
//!
//! A socket with a read timeout (each call's deadline) is not restarted after a signal,
//! whatever `SA_RESTART` says (`socket(7)`): such a read fails with `EINTR`, and the
//! reply it was reading is lost with the connection. Seen in `larder cargo` in about one
//! build in four with a Redis 50 ms away (the seed's lookup failed, nothing was planted).

use std::sync::Mutex;

/// How many times a call is made at most.
pub(crate) const ATTEMPTS: u32 = 3;

/// What a failed call says about its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The server answered with an error: the connection is in step, and kept.
    Answered,
    /// Cut or interrupted: dropped, and the call made again on a new connection.
    Broken,
    /// Out of time, refused, or anything else: dropped, and the error returned.
    Final,
}

/// The idle connections of one server.
pub(crate) struct Kept<C> {
    idle: Mutex<Vec<C>>,
}

impl<C> Kept<C> {
    pub(crate) fn new() -> Kept<C> {
        Kept {
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `f` on a kept connection, else on one `connect` makes, as above; `failure`
    /// tells what an error means.
    pub(crate) fn call<T, E>(
        &self,
        connect: impl Fn() -> Result<C, E>,
        failure: impl Fn(&E) -> Failure,
        f: impl Fn(&mut C) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut attempt = 1;
        let mut kept = self.lock().pop();
        loop {
            let again = |e: &E| attempt < ATTEMPTS && failure(e) == Failure::Broken;
            let reused = kept.is_some();
            let mut conn = match kept.take() {
                Some(c) => c,
                None => match connect() {
                    Ok(c) => c,
                    Err(e) if again(&e) => {
                        attempt += 1;
                        continue;
                    }
                    Err(e) => return Err(e),
                },
            };
            match f(&mut conn) {
                Ok(v) => {
                    self.put_back(conn);
                    return Ok(v);
                }
                Err(e) if again(&e) => {
                    if reused {
                        // The others were made before it, likely to the same server
                        // process (a restart cuts them all).
                        self.lock().clear();
                    }
                    attempt += 1;
                }
                Err(e) => {
                    if failure(&e) == Failure::Answered {
                        self.put_back(conn);
                    }
                    return Err(e);
                }
            }
        }
    }

    fn put_back(&self, conn: C) {
        let mut idle = self.lock();
        if idle.len() < crate::MAX_CONNECTIONS {
            idle.push(conn);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<C>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}
