//! Running rustc.
//!
//! [`exec_passthrough`] replaces the wrapper process with rustc, so output, exit status
//! and the jobserver are exactly rustc's. [`run_captured`] runs rustc as a child and
//! copies its stdout and stderr through as they come (cargo reads rustc's JSON artifact
//! notifications from stderr to start dependent compiles early; holding them back would
//! break pipelining) while keeping a copy to store. The jobserver file descriptors cargo
//! passes are inherited by the child.
//!
//! The child gets this process's environment sorted by name, the order cargo gives every
//! process it starts (std's `Command` keeps a modified environment in a sorted map). A
//! build script reaches larder through a `/bin/sh` shim, which reorders the environment,
//! and scripts that print `std::env::vars()` in order (libm's `CFG_CARGO_FEATURES`) would
//! otherwise write other output than under plain cargo.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// What a captured rustc run produced.
#[derive(Debug)]
pub struct Captured {
    /// rustc's exit status.
    pub status: ExitStatus,
    /// Everything rustc wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything rustc wrote to stderr.
    pub stderr: Vec<u8>,
    /// Wall time of the run.
    pub elapsed: Duration,
}

/// Replaces this process with `rustc args...`. Returns only if the exec failed.
pub fn exec_passthrough(rustc: &Path, args: &[OsString]) -> io::Error {
    Command::new(rustc)
        .args(args)
        .env_clear()
        .envs(sorted_env())
        .exec()
}

/// Runs `rustc args...`, streaming and capturing its output.
///
/// # Errors
/// If rustc cannot be started or its output cannot be read.
pub fn run_captured(rustc: &Path, args: &[OsString]) -> io::Result<Captured> {
    let start = Instant::now();
    let mut child = Command::new(rustc)
        .args(args)
        .env_clear()
        .envs(sorted_env())
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let out = child.stdout.take().expect("piped");
    let err = child.stderr.take().expect("piped");
    let (stdout, stderr) = std::thread::scope(|s| {
        let o = s.spawn(|| tee(out, io::stdout()));
        let e = tee(err, io::stderr());
        (
            o.join()
                .unwrap_or_else(|_| Err(io::Error::other("stdout copier panicked"))),
            e,
        )
    });
    let status = child.wait()?;
    Ok(Captured {
        status,
        stdout: stdout?,
        stderr: stderr?,
        elapsed: start.elapsed(),
    })
}

/// This process's environment, sorted by name.
fn sorted_env() -> Vec<(OsString, OsString)> {
    let mut vars: Vec<(OsString, OsString)> = crate::config::env::vars_os().collect();
    vars.sort();
    vars
}

fn tee(mut from: impl Read, mut to: impl Write) -> io::Result<Vec<u8>> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        kept.extend_from_slice(&buf[..n]);
        // The consumer going away must not stop us reading: rustc would block.
        let _ = to.write_all(&buf[..n]).and_then(|()| to.flush());
    }
    Ok(kept)
}

/// The exit code a wrapper should return for `status`: rustc's code, or 128 plus the
/// signal that killed it.
pub fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(1))
}
