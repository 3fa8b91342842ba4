//! Redis through the `redis` crate's blocking connections: GET, SET, DEL and EXISTS,
//! one round trip each, on connections kept for the rest of the process
//! ([`crate::kept`]: never checked before use, dropped after a call that failed on them).
//!
//! Not through opendal: its connection pool sends a `PING` each time it hands out a
//! connection it had before (one more round trip per call: 64 `PING`s for the 96 `GET`s
//! of one fresh runner's build of ripgrep), and its `stat` is `EXISTS` then `STRLEN`. At
//! 50 ms from the server that doubled the time a build waited for its seed's blobs.
//!
//! Each calling thread uses a connection of its own (a prefetch makes
//! [`crate::MAX_CONNECTIONS`] calls at once), so replies are read and parsed on the
//! threads that asked for them. The connection is made without `CLIENT SETINFO` (a round
//! trip that only names the library) and with `TCP_NODELAY`.
//!
//! Deadlines: connecting is bounded by the call's deadline, and so is each read and
//! write on the socket (a server that trickles bytes can take longer in all; the
//! remote's breaker counts slow calls).

use std::time::Duration;

use redis::{Commands, Connection, RedisError, RedisResult};

use crate::kept::{Failure, Kept};

/// A Redis server, and the connections this process keeps to it.
pub(crate) struct RedisClient {
    client: redis::Client,
    kept: Kept<Connection>,
}

impl RedisClient {
    /// The client for `url` (`redis://[user:password@]host:port/db`, `rediss://`); no
    /// connection is made yet.
    pub(crate) fn open(url: &str) -> RedisResult<RedisClient> {
        let info = redis::IntoConnectionInfo::into_connection_info(url)?;
        let settings = info.redis_settings().clone().set_skip_set_lib_name();
        let tcp = info.tcp_settings().clone().set_nodelay(true);
        let info = info.set_redis_settings(settings).set_tcp_settings(tcp);
        Ok(RedisClient {
            client: redis::Client::open(info)?,
            kept: Kept::new(),
        })
    }

    /// The value of `key`, or `None`.
    pub(crate) fn get(&self, key: &str, deadline: Duration) -> RedisResult<Option<Vec<u8>>> {
        self.call(deadline, |c| c.get(key))
    }

    /// Sets `key` to `value`.
    pub(crate) fn set(&self, key: &str, value: &[u8], deadline: Duration) -> RedisResult<()> {
        self.call(deadline, |c| c.set(key, value))
    }

    /// Removes `key` (nothing if it is not there).
    pub(crate) fn del(&self, key: &str, deadline: Duration) -> RedisResult<()> {
        self.call(deadline, |c| c.del(key))
    }

    /// Whether `key` is there.
    pub(crate) fn exists(&self, key: &str, deadline: Duration) -> RedisResult<bool> {
        self.call(deadline, |c| c.exists(key))
    }

    /// `f` on a kept or new connection, each read and write on its socket bounded by
    /// `deadline`.
    fn call<T>(
        &self,
        deadline: Duration,
        f: impl Fn(&mut Connection) -> RedisResult<T>,
    ) -> RedisResult<T> {
        self.kept.call(
            || self.client.get_connection_with_timeout(deadline),
            failure,
            |conn| {
                conn.set_read_timeout(Some(deadline))?;
                conn.set_write_timeout(Some(deadline))?;
                f(conn)
            },
        )
    }
}

/// What a failed call says about its connection ([`Failure`]).
fn failure(e: &RedisError) -> Failure {
    if e.is_timeout() || e.is_connection_refusal() {
        Failure::Final
    } else if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() {
        Failure::Broken
    } else {
        Failure::Answered
    }
}

/// Makes ring the process's TLS provider if none is (the `redis` crate builds its TLS
/// configuration from the process's provider; two are compiled in, so none is chosen).
pub(crate) fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;
    use crate::test_server::TestServer;

    const DEADLINE: Duration = Duration::from_secs(5);

    /// A redis-server of this test's own on `port` (no persistence).
    fn command(bin: &str, port: u16) -> Command {
        let mut cmd = Command::new(bin);
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"]);
        cmd
    }

    /// A redis-server of the test's own (`LARDER_TEST_REDIS_BIN`, set by
    /// scripts/remote-servers.sh; `None` where there is none), its port, and a client of
    /// it that has set `k` to `value`.
    fn own_server() -> Option<(TestServer, u16, RedisClient)> {
        let bin = redis_bin()?;
        let (server, port) = crate::test_server::start_on_free_port(|port| command(&bin, port));
        let c = RedisClient::open(&format!("redis://127.0.0.1:{port}/0")).unwrap();
        c.set("k", b"value", DEADLINE).unwrap();
        Some((server, port, c))
    }

    fn redis_bin() -> Option<String> {
        #[allow(clippy::disallowed_methods)]
        std::env::var("LARDER_TEST_REDIS_BIN").ok()
    }

    /// A connection of its own to the server at `port`, for the test's commands.
    fn admin(port: u16) -> Connection {
        redis::Client::open(format!("redis://127.0.0.1:{port}/0"))
            .unwrap()
            .get_connection()
            .unwrap()
    }

    /// The server's count of calls of each command (`INFO commandstats`).
    fn calls(port: u16) -> String {
        redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut admin(port))
            .unwrap()
    }

    #[test]
    fn a_call_interrupted_by_a_signal_is_made_again() {
        let Some((server, port, c)) = own_server() else {
            return;
        };
        // A handler (installed with `SA_RESTART`: restart what it interrupts, where the
        // system can).
        let caught = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGUSR1, caught.clone()).unwrap();
        // The server holds every client's command for 400 ms; the call's read is then
        // interrupted by the signal, 100 ms in.
        let pause: String = redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(400)
            .query(&mut admin(port))
            .unwrap();
        assert_eq!(pause, "OK");
        let caller = nix::sys::pthread::pthread_self();
        let signaller = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            nix::sys::pthread::pthread_kill(caller, nix::sys::signal::Signal::SIGUSR1)
        });
        let got = c.get("k", DEADLINE);
        signaller.join().unwrap().unwrap();
        assert!(caught.load(std::sync::atomic::Ordering::Relaxed));
        assert_eq!(got.unwrap().as_deref(), Some(&b"value"[..]));
        server.stop();
    }

    #[test]
    fn each_call_is_one_command_and_a_restarted_server_is_reached_again() {
        let Some((server, port, c)) = own_server() else {
            return;
        };
        for _ in 0..5 {
            assert_eq!(
                c.get("k", DEADLINE).unwrap().as_deref(),
                Some(&b"value"[..])
            );
        }
        assert!(c.exists("k", DEADLINE).unwrap());
        c.del("k", DEADLINE).unwrap();
        assert!(!c.exists("k", DEADLINE).unwrap());
        assert_eq!(c.get("k", DEADLINE).unwrap(), None);
        let stats = calls(port);
        assert!(stats.contains("cmdstat_get:calls=6,"), "{stats}");
        // A kept connection is not checked before use, and none names the library.
        assert!(!stats.contains("cmdstat_ping"), "{stats}");
        assert!(!stats.contains("setinfo"), "{stats}");

        // The kept connection is cut: the call is made again on a new one.
        server.stop();
        let server = crate::test_server::start(command(&redis_bin().unwrap(), port), port);
        c.set("k2", b"again", DEADLINE).unwrap();
        assert_eq!(
            c.get("k2", DEADLINE).unwrap().as_deref(),
            Some(&b"again"[..])
        );
        server.stop();
        // Nothing listens: an error, not a hang.
        assert!(c.get("k2", DEADLINE).is_err());
    }
}
