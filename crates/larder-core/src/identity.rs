//! Identities of the tools a compile depends on: the compiler, the linker and, for
//! C compiles in build scripts ([`crate::cc`]), the C compiler ([`c_compiler`]).
//!
//! The compiler identity is the digest of `rustc -vV` (version, commit, host, LLVM
//! version) and of the content of every file under the sysroot's `lib/rustlib/*/lib`
//! (the standard library every crate links; BLAKE3 of each file, on up to 4 threads:
//! `fingerprints`). Computing it reads ~160 MB, so it is cached
//! in `<store>/v1/tools/`, keyed by the sysroot path and the size, modification time and
//! inode of `<sysroot>/bin/rustc`: a toolchain update replaces that file.
//!
//! A rustup proxy (`~/.cargo/bin/rustc`) has no sysroot next to it; for it the sysroot
//! is asked from the proxy (`--print sysroot`) on each call, so a toolchain switch is
//! seen. Cargo itself passes the resolved toolchain path to wrappers.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use larder_digest::{Digest, KeyHasher};
use serde::{Deserialize, Serialize};

/// The compiler's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compiler {
    /// The digest of `rustc -vV` and the sysroot's libraries.
    pub digest: Digest,
    /// The sysroot directory.
    pub sysroot: PathBuf,
    /// The first line of `rustc -vV` (`rustc 1.95.0 (59807616e 2026-04-14)`), for
    /// people.
    #[serde(default)]
    pub release: String,
}

pub use crate::exec::resolve_program;

fn stat_key(tag: &str, path: &Path) -> io::Result<Digest> {
    let meta = std::fs::metadata(path)?;
    let mut h = KeyHasher::new();
    h.field("tool-cache", tag)
        .field("path", path.to_string_lossy().as_bytes())
        .field("len", meta.len().to_le_bytes())
        .field("mtime", meta.mtime().to_le_bytes())
        .field("mtime_nsec", meta.mtime_nsec().to_le_bytes())
        .field("ino", meta.ino().to_le_bytes());
    Ok(h.finish())
}

fn cached<T: Serialize + for<'de> Deserialize<'de>>(
    cache_dir: Option<&Path>,
    key: &Digest,
    compute: impl FnOnce() -> io::Result<T>,
) -> io::Result<T> {
    let path = cache_dir.map(|d| d.join(format!("{}.json", key.to_hex())));
    let read = || -> Option<T> {
        let bytes = std::fs::read(path.as_ref()?).ok()?;
        serde_json::from_slice(&bytes).ok()
    };
    if let Some(v) = read() {
        return Ok(v);
    }
    // One process computes it (hashing a sysroot takes a while); the others of the
    // build, which start at the same moment on an empty store, wait and read its memo.
    let _flight = cache_dir.and_then(|d| {
        std::fs::create_dir_all(d).ok()?;
        let f = std::fs::File::create(d.join(format!("{}.lock", key.to_hex()))).ok()?;
        f.lock().ok()?;
        Some(f)
    });
    if let Some(v) = read() {
        return Ok(v);
    }
    let value = compute()?;
    if let (Some(p), Some(dir)) = (&path, cache_dir) {
        // Best effort: a read-only store recomputes next time.
        let _ = (|| -> io::Result<()> {
            std::fs::create_dir_all(dir)?;
            let tmp = tempfile::NamedTempFile::new_in(dir)?;
            serde_json::to_writer(&tmp, &value)?;
            tmp.persist(p).map_err(|e| e.error)?;
            Ok(())
        })();
    }
    Ok(value)
}

/// The identity of the compiler at `rustc` compiling for `target` (a triple; `None` for
/// the host), cached in `cache_dir`: its `rustc -vV`, the libraries of the host and of
/// `target` in its sysroot (not those of other installed targets: a machine with one
/// more `rustup target` shares entries with one without it), and whether `rust-src` is
/// installed.
///
/// # Errors
/// If the compiler cannot be run or its sysroot cannot be read.
pub fn compiler(
    rustc: &Path,
    target: Option<&str>,
    cache_dir: Option<&Path>,
) -> io::Result<Compiler> {
    let rustc = resolve_program(rustc).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} not found on PATH", rustc.display()),
        )
    })?;
    let beside = rustc.parent().and_then(Path::parent).map(Path::to_path_buf);
    let sysroot = match beside.filter(|s| s.join("lib/rustlib").is_dir()) {
        Some(s) => s,
        None => {
            let out = Command::new(&rustc)
                .arg("--print")
                .arg("sysroot")
                .output()?;
            if !out.status.success() {
                return Err(io::Error::other(format!(
                    "{} --print sysroot failed",
                    rustc.display()
                )));
            }
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        }
    };
    let real_rustc = sysroot.join("bin/rustc");
    let probe = if real_rustc.is_file() {
        real_rustc
    } else {
        rustc.clone()
    };
    // The cache entry is valid while rustc and the library directories keep their
    // size, time and inode: an update replaces rustc, adding or replacing a library
    // changes its directory.
    let mut h = KeyHasher::new();
    // The memo's format: a new field recomputes old memos.
    h.field("memo", "3");
    h.digest_field("rustc", &stat_key("compiler", &probe)?);
    for lib in sysroot_lib_dirs(&sysroot)? {
        h.digest_field("lib-dir", &stat_key("lib-dir", &lib)?);
    }
    h.field("target", target.unwrap_or("host"));
    // Installing or removing `rust-src` changes the directory's presence and time.
    let rust_src = sysroot.join(RUST_SRC);
    match stat_key("rust-src", &rust_src) {
        Ok(k) => h.digest_field("rust-src", &k),
        Err(_) => h.field("rust-src", "absent"),
    };
    let key = h.finish();
    cached(cache_dir, &key, || {
        let out = Command::new(&probe).arg("-vV").output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!("{} -vV failed", probe.display())));
        }
        let mut h = KeyHasher::new();
        h.field("rustc -vV", &out.stdout);
        let rustlib = sysroot.join("lib/rustlib");
        let version = String::from_utf8_lossy(&out.stdout);
        let host = version.lines().find_map(|l| l.strip_prefix("host: "));
        let mut triples: Vec<&str> = host.into_iter().chain(target).collect();
        triples.sort_unstable();
        triples.dedup();
        let mut files = Vec::new();
        for lib in sysroot_lib_dirs(&sysroot)? {
            let triple = lib
                .parent()
                .and_then(Path::file_name)
                .and_then(|n| n.to_str());
            // Without a host line (a fake or odd rustc), every target counts.
            if host.is_none() || triple.is_some_and(|t| triples.contains(&t)) {
                collect_files(&lib, &mut files)?;
            }
        }
        files.sort();
        for (f, fingerprint) in files.iter().zip(fingerprints(&files)?) {
            let rel = f.strip_prefix(&rustlib).unwrap_or(f);
            h.field("sysroot-file", rel.to_string_lossy().as_bytes())
                .field("blake3", fingerprint.as_bytes());
        }
        // With the `rust-src` component, rustc writes the library sources' real paths into
        // panic locations and debug info instead of `/rustc/<hash>/library/...`.
        h.field(
            "rust-src",
            if rust_src.is_dir() {
                "present"
            } else {
                "absent"
            },
        );
        Ok(Compiler {
            digest: h.finish(),
            sysroot: sysroot.clone(),
            release: version.lines().next().unwrap_or_default().to_string(),
        })
    })
}

/// The BLAKE3 hash of each file's content, in the order of `files`. The sysroot's
/// libraries are about 160 MB (one of them, `libcore`'s metadata, 60 MB): hashed by as many
/// threads as the machine has cores (up to 4), each taking the largest file left, on the
/// one miss of an empty store, where every unit of the build waits for this identity.
/// BLAKE3 is about four times as fast as SHA-256 here (8.5 against 2.0 GB/s); these hashes
/// are fields of the identity's SHA-256 digest, never store digests.
fn fingerprints(files: &[PathBuf]) -> io::Result<Vec<blake3::Hash>> {
    let hash = |path: &Path| -> io::Result<blake3::Hash> {
        let mut h = blake3::Hasher::new();
        h.update_reader(std::fs::File::open(path)?)?;
        Ok(h.finalize())
    };
    // Largest first, so that no thread starts the 60 MB file when the others are done.
    let mut order: Vec<usize> = (0..files.len()).collect();
    order.sort_by_cached_key(|&i| {
        std::cmp::Reverse(std::fs::metadata(&files[i]).map_or(0, |m| m.len()))
    });
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let mut done: Vec<(usize, blake3::Hash)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| -> io::Result<Vec<(usize, blake3::Hash)>> {
                    let mut mine = Vec::new();
                    while let Some(&i) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                        mine.push((i, hash(&files[i])?));
                    }
                    Ok(mine)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| io::Error::other("a hashing thread panicked"))?
            })
            .collect::<io::Result<Vec<_>>>()
    })?
    .into_iter()
    .flatten()
    .collect();
    done.sort_unstable_by_key(|&(i, _)| i);
    Ok(done.into_iter().map(|(_, h)| h).collect())
}

/// The standard library's sources that the `rust-src` component installs, under the
/// sysroot.
const RUST_SRC: &str = "lib/rustlib/src/rust/library";

/// `<sysroot>/lib/rustlib/<target>/lib` for every installed target, sorted.
fn sysroot_lib_dirs(sysroot: &Path) -> io::Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    for target in std::fs::read_dir(sysroot.join("lib/rustlib"))? {
        let lib = target?.path().join("lib");
        if lib.is_dir() {
            dirs.push(lib);
        }
    }
    dirs.sort();
    Ok(dirs)
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let ft = e.file_type()?;
        if ft.is_dir() {
            collect_files(&e.path(), out)?;
        } else {
            out.push(e.path());
        }
    }
    Ok(())
}

/// The identity of a linker: the digest of its executable, following symlinks.
///
/// # Errors
/// If the linker cannot be found or read.
pub fn linker(linker: &Path, cache_dir: Option<&Path>) -> io::Result<Digest> {
    let path = resolve_program(linker).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("linker {} not found on PATH", linker.display()),
        )
    })?;
    let real = std::fs::canonicalize(&path)?;
    let key = stat_key("linker", &real)?;
    cached(cache_dir, &key, || {
        let (d, _) = Digest::of_reader(std::fs::File::open(&real)?)?;
        Ok(d)
    })
}

/// The identity of what links a rustc output: the linker rustc runs (`-C linker`, `cc` by
/// default) and, when that is a C compiler driver, the linker the driver runs in turn, so
/// that a linker upgraded behind an unchanged `cc` (`ld`, or `-fuse-ld=gold|lld|mold` among
/// the link arguments, found through their `-B` directories as the driver finds it) is
/// another identity. A linker rustc runs directly (`ld.lld`, `mold`, a script) is hashed
/// alone.
///
/// The driver's answer (`-print-prog-name`) is cached in `cache_dir` while the driver keeps
/// its size, time and inode and the arguments and search variables are the same; the
/// linker it names is hashed while it keeps its own.
///
/// # Errors
/// If the linker rustc runs cannot be found or read.
pub fn link_tools(
    program: &Path,
    link_args: &[String],
    cache_dir: Option<&Path>,
) -> io::Result<Digest> {
    let driver = linker(program, cache_dir)?;
    let mut h = KeyHasher::new();
    h.digest_field("linker", &driver);
    if let Some(path) = resolve_program(program)
        && is_c_driver(&path)
        && let Some(behind) = linker_behind(&path, link_args, cache_dir)?
    {
        h.digest_field("linker-behind-driver", &linker(&behind, cache_dir)?);
    }
    Ok(h.finish())
}

/// Whether a program is a C compiler driver (`cc`, `gcc`, `clang`, versioned or
/// target-prefixed), by the name it is run as or the file it resolves to.
fn is_c_driver(path: &Path) -> bool {
    let named = |p: &Path| {
        let n = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        n == "cc"
            || n == "c++"
            || n.ends_with("-cc")
            || n.ends_with("-c++")
            || n.contains("gcc")
            || n.contains("g++")
            || n.contains("clang")
    };
    named(path) || std::fs::canonicalize(path).is_ok_and(|p| named(&p))
}

/// The linker a C driver runs for these link arguments: `-print-prog-name=ld` with the
/// arguments that choose it (`-fuse-ld=`, `-B`), resolved on `PATH` when the driver
/// answers with a bare name. `None` if it names nothing that exists.
fn linker_behind(
    driver: &Path,
    link_args: &[String],
    cache_dir: Option<&Path>,
) -> io::Result<Option<PathBuf>> {
    let mut choose: Vec<String> = Vec::new();
    let mut args = link_args.iter();
    while let Some(a) = args.next() {
        if a.starts_with("-fuse-ld=") || a.starts_with("--ld-path=") {
            choose.push(a.clone());
        } else if a == "-B" {
            if let Some(dir) = args.next() {
                choose.push(format!("-B{dir}"));
            }
        } else if a.starts_with("-B") {
            choose.push(a.clone());
        }
    }
    let mut h = KeyHasher::new();
    h.digest_field("driver", &stat_key("linker-driver", driver)?);
    for a in &choose {
        h.field("arg", a);
    }
    for var in ["PATH", "COMPILER_PATH", "GCC_EXEC_PREFIX"] {
        h.field(
            var,
            crate::config::env::var_os(var)
                .unwrap_or_default()
                .as_encoded_bytes(),
        );
    }
    cached(cache_dir, &h.finish(), || {
        if let Some(path) = choose
            .iter()
            .rev()
            .find_map(|a| a.strip_prefix("--ld-path="))
        {
            return Ok(Some(PathBuf::from(path)).filter(|p| p.is_file()));
        }
        let out = Command::new(driver)
            .args(&choose)
            .arg("-print-prog-name=ld")
            .output()?;
        let name = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() || name.is_empty() {
            return Ok(None);
        }
        Ok(resolve_program(Path::new(&name)).filter(|p| p.is_file()))
    })
}

/// The identity of a C or C++ compiler driver: the digest of its executable (following
/// symlinks), the file name it is run by (`clang++` is `clang` run as a C++ compiler)
/// and its `--version` output. Cached in `cache_dir` while the executable keeps its
/// size, time and inode.
///
/// The driver's helpers (`cc1`, `as`) are not hashed: a toolchain update replaces the
/// driver too, which changes `--version` or the driver's content.
///
/// # Errors
/// If the compiler cannot be found, read or run.
pub fn c_compiler(compiler: &Path, cache_dir: Option<&Path>) -> io::Result<Digest> {
    let path = resolve_program(compiler).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} not found on PATH", compiler.display()),
        )
    })?;
    let real = std::fs::canonicalize(&path)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut h = KeyHasher::new();
    h.digest_field("driver", &stat_key("c-compiler", &real)?)
        .field("name", &name);
    let key = h.finish();
    cached(cache_dir, &key, || {
        let out = Command::new(&path).arg("--version").output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "{} --version failed",
                path.display()
            )));
        }
        let (d, _) = Digest::of_reader(std::fs::File::open(&real)?)?;
        let mut h = KeyHasher::new();
        h.field("c-compiler", &name)
            .digest_field("executable", &d)
            .field("--version", &out.stdout);
        Ok(h.finish())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiler_identity_is_cached_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let a = compiler(Path::new("rustc"), None, Some(dir.path())).unwrap();
        let b = compiler(Path::new("rustc"), None, Some(dir.path())).unwrap();
        assert_eq!(a, b);
        assert!(a.sysroot.join("lib/rustlib").is_dir());
        // One memo (beside the lock its computation held).
        let memos = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension() == Some("json".as_ref()))
            .count();
        assert_eq!(memos, 1);
    }

    /// The threads hash largest files first; each hash still lands at its file's place.
    #[test]
    fn fingerprints_are_in_the_order_of_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<PathBuf> = [3usize, 200_000, 0, 70_000, 5, 1_000_000, 12]
            .iter()
            .enumerate()
            .map(|(i, &len)| {
                let f = dir.path().join(format!("f{i}"));
                std::fs::write(&f, vec![i as u8 + 1; len]).unwrap();
                f
            })
            .collect();
        let got = fingerprints(&files).unwrap();
        let want: Vec<blake3::Hash> = files
            .iter()
            .map(|f| blake3::hash(&std::fs::read(f).unwrap()))
            .collect();
        assert_eq!(got, want);
        assert!(fingerprints(&[dir.path().join("absent")]).is_err());
    }

    /// A fake toolchain: `bin/rustc` prints `version` for `-vV`; one library file.
    fn fake_toolchain(dir: &Path, version: &str, libstd: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::create_dir_all(dir.join("lib/rustlib/x86_64-unknown-linux-gnu/lib")).unwrap();
        let rustc = dir.join("bin/rustc");
        std::fs::write(
            &rustc,
            format!("#!/bin/sh\necho 'rustc {version}'\necho 'host: x86_64-unknown-linux-gnu'\n"),
        )
        .unwrap();
        std::fs::set_permissions(&rustc, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(
            dir.join("lib/rustlib/x86_64-unknown-linux-gnu/lib/libstd.rlib"),
            libstd,
        )
        .unwrap();
        rustc
    }

    #[test]
    fn another_compiler_or_standard_library_is_another_identity() {
        let cache = tempfile::tempdir().unwrap();
        let t = tempfile::tempdir().unwrap();
        let a = compiler(
            &fake_toolchain(&t.path().join("a"), "1.0", "std"),
            None,
            Some(cache.path()),
        )
        .unwrap();
        let b = compiler(
            &fake_toolchain(&t.path().join("b"), "1.1", "std"),
            None,
            Some(cache.path()),
        )
        .unwrap();
        let c = compiler(
            &fake_toolchain(&t.path().join("c"), "1.0", "patched std"),
            None,
            Some(cache.path()),
        )
        .unwrap();
        assert_ne!(a.digest, b.digest, "rustc -vV");
        assert_ne!(a.digest, c.digest, "sysroot library content");
        // Replacing a library (as an update does) is seen despite the cache.
        let lib = t
            .path()
            .join("a/lib/rustlib/x86_64-unknown-linux-gnu/lib/libstd.rlib");
        std::fs::remove_file(&lib).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(&lib, "new std").unwrap();
        let a2 = compiler(&t.path().join("a/bin/rustc"), None, Some(cache.path())).unwrap();
        assert_ne!(a.digest, a2.digest);
    }

    /// Issue 9, item 10: another installed target does not change the identity for the
    /// host; the target compiled for does.
    #[test]
    fn only_the_host_and_the_target_libraries_count() {
        let cache = tempfile::tempdir().unwrap();
        let t = tempfile::tempdir().unwrap();
        let rustc = fake_toolchain(&t.path().join("a"), "1.0", "std");
        let host = compiler(&rustc, None, Some(cache.path())).unwrap();
        let musl = t.path().join("a/lib/rustlib/x86_64-unknown-linux-musl/lib");
        std::fs::create_dir_all(&musl).unwrap();
        std::fs::write(musl.join("libstd.rlib"), "musl std").unwrap();
        let host_again = compiler(&rustc, None, Some(cache.path())).unwrap();
        assert_eq!(host.digest, host_again.digest, "rustup target add");
        let for_musl = compiler(
            &rustc,
            Some("x86_64-unknown-linux-musl"),
            Some(cache.path()),
        )
        .unwrap();
        assert_ne!(host.digest, for_musl.digest);
        std::fs::write(musl.join("libstd.rlib"), "other musl std").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(musl.join("libcore.rlib"), "core").unwrap();
        let for_musl2 = compiler(
            &rustc,
            Some("x86_64-unknown-linux-musl"),
            Some(cache.path()),
        )
        .unwrap();
        assert_ne!(for_musl.digest, for_musl2.digest);
    }

    /// Issue 9, item 2: the `rust-src` component changes what rustc writes.
    #[test]
    fn installing_rust_src_is_another_identity() {
        let cache = tempfile::tempdir().unwrap();
        let t = tempfile::tempdir().unwrap();
        let rustc = fake_toolchain(&t.path().join("a"), "1.0", "std");
        let without = compiler(&rustc, None, Some(cache.path())).unwrap();
        std::fs::create_dir_all(t.path().join("a").join(RUST_SRC).join("core")).unwrap();
        let with = compiler(&rustc, None, Some(cache.path())).unwrap();
        assert_ne!(without.digest, with.digest);
    }

    #[test]
    fn c_compiler_identity_follows_content_and_name() {
        use std::os::unix::fs::PermissionsExt;
        let cache = tempfile::tempdir().unwrap();
        let t = tempfile::tempdir().unwrap();
        let script = |name: &str, body: &str| {
            let p = t.path().join(name);
            std::fs::write(&p, format!("#!/bin/sh\n# {body}\nexec cc \"$@\"\n")).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            p
        };
        let a = c_compiler(&script("gcc", "a"), Some(cache.path())).unwrap();
        assert_eq!(
            a,
            c_compiler(&t.path().join("gcc"), Some(cache.path())).unwrap()
        );
        let b = c_compiler(&script("g++", "a"), Some(cache.path())).unwrap();
        assert_ne!(a, b, "the name it runs by");
        std::thread::sleep(std::time::Duration::from_millis(10));
        let c = c_compiler(&script("gcc", "changed"), Some(cache.path())).unwrap();
        assert_ne!(a, c, "the content");
        assert!(c_compiler(Path::new("no-such-cc-larder"), None).is_err());
    }

    #[test]
    fn linker_identity() {
        let d = linker(Path::new("cc"), None).unwrap();
        assert_eq!(d, linker(Path::new("cc"), None).unwrap());
        assert!(linker(Path::new("no-such-linker-larder"), None).is_err());
    }

    /// The linker behind `cc`: `-fuse-ld=gold` with a `-B` directory holding `ld.gold` is
    /// that file, and another content of it is another identity, the driver unchanged.
    #[test]
    fn the_linker_behind_the_driver_counts() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        let gold = dir.path().join("ld.gold");
        let write = |body: &str| {
            std::fs::write(&gold, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&gold, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        write("exec ld.gold \"$@\"");
        let args = vec![
            "-fuse-ld=gold".to_string(),
            format!("-B{}", dir.path().display()),
        ];
        assert_eq!(
            linker_behind(Path::new("/usr/bin/cc"), &args, Some(cache.path())).unwrap(),
            Some(gold.clone())
        );
        let a = link_tools(Path::new("cc"), &args, Some(cache.path())).unwrap();
        assert_eq!(
            a,
            link_tools(Path::new("cc"), &args, Some(cache.path())).unwrap()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
        write("exec ld.gold --build-id=none \"$@\"");
        assert_ne!(
            a,
            link_tools(Path::new("cc"), &args, Some(cache.path())).unwrap()
        );
        assert_ne!(
            a,
            link_tools(Path::new("cc"), &[], Some(cache.path())).unwrap()
        );
        assert!(is_c_driver(Path::new("/usr/bin/cc")));
        assert!(!is_c_driver(Path::new("/usr/bin/ld.gold")));
    }
}
