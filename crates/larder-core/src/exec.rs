//! Running the wrapped tool (rustc, a C compiler), and finding a program as `execvp`
//! would ([`resolve_program`]).
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
//!
//! A bare program name (`cc`) is looked up on `PATH` before the child starts
//! ([`spawn_path`]): given a name and an environment of its own, std's `Command` starts
//! the child with `fork` instead of `posix_spawn`, copying this process's page tables and
//! taking a page fault for every page it writes until the child has started.

use std::borrow::Cow;
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
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
    let mut child = Command::new(spawn_path(rustc).as_ref())
        // The name it was given, as `execvp` would pass it (a compiler driver may look
        // itself up by it).
        .arg0(rustc)
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

/// `program` as std's `Command` can start it with `posix_spawn`: a path as it is, a bare
/// name as [`resolve_program`] finds it, or the name itself if none is found (then
/// starting it fails as it would have).
pub fn spawn_path(program: &Path) -> Cow<'_, Path> {
    match resolve_program(program) {
        Some(found) if found != program => Cow::Owned(found),
        _ => Cow::Borrowed(program),
    }
}

/// The program `execvp` would run for `program`: a path as it is, a bare name looked up
/// on `PATH` (the first regular file with an execute bit; an empty entry is the
/// working directory; `PATH` unset: `/bin:/usr/bin`). `None` if no such
/// program is found.
pub fn resolve_program(program: &Path) -> Option<PathBuf> {
    if program.as_os_str().is_empty() {
        return None;
    }
    if program.components().count() > 1 {
        return Some(program.to_path_buf());
    }
    let path = crate::config::env::var_os("PATH").unwrap_or_else(|| "/bin:/usr/bin".into());
    find_on_path(program, &path)
}

/// The first `<dir>/<name>` of the list `path` (`PATH`'s form) that is a regular file
/// with an execute bit, as `execvp` takes it; an empty entry is the working directory
/// (`./<name>`).
fn find_on_path(name: &Path, path: &std::ffi::OsStr) -> Option<PathBuf> {
    std::env::split_paths(path)
        .map(|dir| {
            if dir.as_os_str().is_empty() {
                Path::new(".").join(name)
            } else {
                dir.join(name)
            }
        })
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_name_is_found_on_path_as_execvp_would() {
        let d = tempfile::tempdir().unwrap();
        let (a, b, c) = (d.path().join("a"), d.path().join("b"), d.path().join("c"));
        for dir in [&a, &b, &c] {
            std::fs::create_dir(dir).unwrap();
        }
        let put = |dir: &Path, mode: u32| {
            let f = dir.join("cc");
            std::fs::write(&f, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        put(&a, 0o644); // not executable: skipped
        std::fs::create_dir(b.join("cc")).unwrap(); // a directory: skipped
        put(&c, 0o755);
        let path = std::env::join_paths([&a, &b, &c]).unwrap();
        assert_eq!(find_on_path(Path::new("cc"), &path), Some(c.join("cc")));
        assert_eq!(find_on_path(Path::new("gcc-none"), &path), None);
        // A path is started as it is; an unknown name is left to fail as before.
        assert_eq!(spawn_path(Path::new("./cc")), Path::new("./cc"));
        assert_eq!(spawn_path(Path::new("/x/cc")), Path::new("/x/cc"));
        assert_eq!(
            spawn_path(Path::new("larder-no-such-tool")),
            Path::new("larder-no-such-tool")
        );
    }
}
