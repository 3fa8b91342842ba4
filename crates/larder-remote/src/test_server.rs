//! Servers the unit tests start of their own (a redis-server, a memcached), on a free
//! port of 127.0.0.1.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A port nothing listens on.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `cmd` (a server told to listen on `port`, its output dropped) until it accepts
/// connections there.
pub(crate) fn start(mut cmd: Command, port: u16) -> Child {
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}
