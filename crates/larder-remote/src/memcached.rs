//! memcached through the `memcache` crate (binary protocol, `TCP_NODELAY`), on
//! connections kept by [`crate::kept`]: one round trip per call.
//!
//! The crate's own pool (r2d2) checks a connection with a `version` call each time it
//! hands it out, and has to: it never drops a connection after an error, and the crate
//! does not check that a reply is of the request it reads it for, so a connection left
//! with an unread reply (a timeout, a read interrupted by a signal) would answer the next
//! call with the previous one's value. Here each kept connection is a client with a pool
//! of one connection and no check, and [`Kept`] never uses a connection again after a
//! call that may have left it out of step.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use memcache::{MemcacheError, ServerError};
use scheduled_thread_pool::ScheduledThreadPool;

use crate::kept::{Failure, Kept};

/// How many connections are made at once (each waits a round trip for the server).
const CONNECTING: usize = 8;

/// A memcached server, and the connections this process keeps to it.
pub(crate) struct MemcachedClient {
    /// `memcache://host:port?timeout=..&tcp_nodelay=true` (read and write timeouts of
    /// each connection; a pool's would connect to set them).
    target: url::Url,
    timeout: Duration,
    /// The threads that make the connections (r2d2 connects on a pool's threads, and
    /// starts three per pool): [`CONNECTING`], shared, started at the first call.
    threads: OnceLock<Arc<ScheduledThreadPool>>,
    kept: Kept<memcache::Client>,
}

impl MemcachedClient {
    /// The client for `target`; no connection is made yet.
    pub(crate) fn open(target: url::Url, timeout: Duration) -> MemcachedClient {
        MemcachedClient {
            target,
            timeout,
            threads: OnceLock::new(),
            kept: Kept::new(),
        }
    }

    /// Runs `f` on a kept or new connection.
    pub(crate) fn call<T>(
        &self,
        f: impl Fn(&memcache::Client) -> Result<T, MemcacheError>,
    ) -> Result<T, MemcacheError> {
        self.kept.call(|| self.connect(), failure, |c| f(c))
    }

    /// A client of one connection, made at its first call.
    fn connect(&self) -> Result<memcache::Client, MemcacheError> {
        let pool = r2d2::Pool::builder()
            .max_size(1)
            .min_idle(Some(0))
            .test_on_check_out(false)
            .connection_timeout(self.timeout)
            .thread_pool(Arc::clone(
                self.threads
                    .get_or_init(|| Arc::new(ScheduledThreadPool::new(CONNECTING))),
            ))
            .build_unchecked(memcache::ConnectionManager::new(self.target.clone()));
        memcache::Client::with_pool(pool)
    }
}

/// What a failed call says about its connection ([`Failure`]).
fn failure(e: &MemcacheError) -> Failure {
    use std::io::ErrorKind;
    match e {
        MemcacheError::IOError(io) => match io.kind() {
            ErrorKind::TimedOut | ErrorKind::WouldBlock | ErrorKind::ConnectionRefused => {
                Failure::Final
            }
            _ => Failure::Broken,
        },
        MemcacheError::ServerError(ServerError::BadMagic(_) | ServerError::BadResponse(_)) => {
            Failure::Broken
        }
        MemcacheError::ServerError(ServerError::Error(_))
        | MemcacheError::ClientError(_)
        | MemcacheError::CommandError(_) => Failure::Answered,
        _ => Failure::Final,
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;

    use super::*;
    use crate::test_server::TestServer;

    fn memcached_bin() -> Option<String> {
        // Set by scripts/remote-servers.sh (CI); skipped where there is no memcached.
        #[allow(clippy::disallowed_methods)]
        std::env::var("LARDER_TEST_MEMCACHED_BIN").ok()
    }

    /// A memcached of this test's own on `port`.
    fn command(bin: &str, port: u16) -> Command {
        let mut cmd = Command::new(bin);
        cmd.args(["-l", "127.0.0.1", "-U", "0", "-p", &port.to_string()]);
        if nix::unistd::geteuid().is_root() {
            cmd.args(["-u", "nobody"]);
        }
        cmd
    }

    /// A memcached of the test's own, its port, and a client of it that has set `k`.
    fn own_server() -> Option<(TestServer, u16, MemcachedClient)> {
        let bin = memcached_bin()?;
        let (server, port) = crate::test_server::start_on_free_port(|port| command(&bin, port));
        let target = url::Url::parse(&format!(
            "memcache://127.0.0.1:{port}?timeout=5&tcp_nodelay=true"
        ))
        .unwrap();
        let c = MemcachedClient::open(target, Duration::from_secs(5));
        c.call(|m| m.set("k", &b"value"[..], 0)).unwrap();
        Some((server, port, c))
    }

    fn get(c: &MemcachedClient, key: &str) -> Result<Option<Vec<u8>>, MemcacheError> {
        c.call(|m| m.get::<Vec<u8>>(key))
    }

    #[test]
    fn a_restarted_server_is_reached_again() {
        let Some((server, port, c)) = own_server() else {
            return;
        };
        for _ in 0..3 {
            assert_eq!(get(&c, "k").unwrap().as_deref(), Some(&b"value"[..]));
        }
        assert_eq!(get(&c, "absent").unwrap(), None);
        server.stop();
        let server = crate::test_server::start(command(&memcached_bin().unwrap(), port), port);
        // The kept connection is cut: the call is made again on a new one.
        assert_eq!(get(&c, "k").unwrap(), None, "a new server is empty");
        c.call(|m| m.set("k", &b"again"[..], 0)).unwrap();
        assert_eq!(get(&c, "k").unwrap().as_deref(), Some(&b"again"[..]));
        server.stop();
    }

    /// The crate reads a reply with `read_exact`, which reads again after `EINTR` (no
    /// byte is lost): the call is answered on its first connection.
    #[test]
    fn a_call_interrupted_by_a_signal_is_answered() {
        let Some((server, _, c)) = own_server() else {
            return;
        };
        let caught = Arc::new(std::sync::atomic::AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGUSR2, caught.clone()).unwrap();
        // The server is stopped for 300 ms; the call's read is interrupted 100 ms in.
        let pid = Pid::from_raw(server.id() as i32);
        kill(pid, Signal::SIGSTOP).unwrap();
        let caller = nix::sys::pthread::pthread_self();
        let signaller = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            nix::sys::pthread::pthread_kill(caller, Signal::SIGUSR2).unwrap();
            std::thread::sleep(Duration::from_millis(200));
            kill(pid, Signal::SIGCONT).unwrap();
        });
        let got = get(&c, "k");
        signaller.join().unwrap();
        assert!(caught.load(std::sync::atomic::Ordering::Relaxed));
        assert_eq!(got.unwrap().as_deref(), Some(&b"value"[..]));
        server.stop();
    }
}
