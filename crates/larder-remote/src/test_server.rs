//! Servers the unit tests start of their own (a redis-server, a memcached), on a free
//! port of 127.0.0.1, stopped when the test's [`TestServer`] is dropped (a test that
//! panics leaves none running).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nothing listens on, never one this process was given before (tests run on
/// threads at once; the system may hand a released port out again).
pub(crate) fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if GIVEN.lock().unwrap().insert(port) {
            return port;
        }
    }
}

/// A server process of a test's own: killed and reaped when dropped.
pub(crate) struct TestServer(Child);

impl TestServer {
    /// The server's process id.
    pub(crate) fn id(&self) -> u32 {
        self.0.id()
    }

    /// Kills the server and waits until it has exited (its port is then free).
    pub(crate) fn stop(self) {
        drop(self);
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How long a server may take to listen (a loaded CI machine starts a test's server
/// while it compiles and runs others).
const READY: Duration = Duration::from_secs(20);

/// Runs `cmd` (a server told to listen on `port`, its output dropped) until it accepts
/// connections there, or `None` if it exits first (the port was taken meanwhile).
///
/// # Panics
/// If it neither listens nor exits within [`READY`].
fn try_start(mut cmd: Command, port: u16) -> Option<TestServer> {
    let mut child = TestServer(
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + READY;
    while Instant::now() < deadline {
        let listening = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        if child.0.try_wait().unwrap().is_some() {
            return None;
        }
        if listening {
            return Some(child);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(child);
    panic!(
        "{:?} did not listen on 127.0.0.1:{port} within {READY:?}",
        cmd.get_program()
    );
}

/// Runs `cmd` (a server told to listen on `port`) until it accepts connections there:
/// a server started again on the port it had.
///
/// # Panics
/// If it exits first or does not listen within [`READY`].
pub(crate) fn start(cmd: Command, port: u16) -> TestServer {
    let program = cmd.get_program().to_owned();
    try_start(cmd, port)
        .unwrap_or_else(|| panic!("{program:?} exited before it listened on port {port}"))
}

/// A server `make(port)` listening on a free port of 127.0.0.1, and the port: another
/// one if the first was taken between [`free_port`] and the server's bind.
///
/// # Panics
/// If no server listens on 5 free ports in a row.
pub(crate) fn start_on_free_port(make: impl Fn(u16) -> Command) -> (TestServer, u16) {
    for _ in 0..5 {
        let port = free_port();
        if let Some(child) = try_start(make(port), port) {
            return (child, port);
        }
    }
    panic!("no server listened on 5 free ports in a row");
}
