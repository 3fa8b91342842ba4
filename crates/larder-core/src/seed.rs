//! Seeds: the registry and git units a build left in its target directory, planted in
//! the next build's target directory before cargo starts, so that cargo finds them
//! fresh and runs nothing for them.
//!
//! A hit still costs a wrapper process per unit: start, key, lookup, restore (about
//! 7 ms for a library, more for a proc macro; a 780-unit build spends seconds on it
//! where cargo alone, with a filled target directory, spends none). A registry or git
//! package never changes in place, and cargo names each of its units' directories by a
//! hash of everything cargo decides it by (package and version, features, profile,
//! dependencies, compiler, flags). So after each successful `larder cargo` build the
//! units of such packages that larder cached (hits and stored misses) are recorded,
//! file by file, as a [`Seed`] in the local store (their contents in the CAS, as
//! entries' outputs are; small text files, cargo's fingerprints among them, in the
//! record itself: [`INLINE_MAX_BYTES`]), in a [`SeedRecord`] under the same key as the
//! build's prefetch index ([`crate::command::index_key`]: project, command, flags; not
//! the checkout). Before the next build of the same command, [`plant`] writes every unit
//! of the seed with this build's [`guard`] whose fingerprint directory the target
//! directory lacks: another checkout, a fresh clone, after `cargo clean`.
//!
//! What keeps a planted unit equal to what a clean build would write:
//! - **cargo decides.** A planted unit is what the same target directory held after
//!   the recorded build, modification times included (cargo compares them): cargo's own
//!   freshness check then rebuilds it (through larder) if its fingerprint, a
//!   dependency, a variable it declared or a file it lists is not what it was, exactly
//!   as in the target directory it came from.
//! - **larder's own inputs beyond cargo's.** A seed is kept under its [`guard`]:
//!   larder's version, the compiler's identity (`rustc -vV` and its sysroot's
//!   libraries), the C and C++ compilers' identities, `CARGO_HOME`, and every variable
//!   larder keys a compile or a build script's run by. A build plants only the seed of
//!   its own guard.
//! - **only what larder cached.** A unit larder did not cache (a build script that
//!   probed the system, an uncacheable compile) is never recorded, and a unit reported
//!   uncacheable in a later build leaves the seed, as does one a later build did not
//!   use (an older version after a lockfile change). Path packages are never recorded:
//!   their sources change in place.
//! - **contents checked.** Every file is checked as it is written (a blob by its check,
//!   [`larder_store::check`], else its digest; a small text by its digest); a
//!   missing or corrupt blob, or text that does not match its digest, leaves its unit
//!   out. A unit's fingerprint files are written last and moved into place at once, so
//!   an interrupted plant leaves a unit cargo builds, never one it trusts. Nothing
//!   already in the target directory is replaced.
//! - Text files that named the recorded target directory (dep-info, a build script's
//!   `output` and `root-output`, generated sources) are stored with a placeholder and
//!   written with this build's target directory.
//!
//! With remotes, a build's seed is also published to them and planted from them on a
//! machine whose local store has none ([`remote`]: one seed per command and guard,
//! signed like action records).

use std::collections::{BTreeSet, HashSet};
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, UNIX_EPOCH};

use larder_digest::{Digest, KeyHasher};
use larder_key::Roots;
use larder_store::{DiskStore, Namespace, Store};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::config::env;

/// Format version of a [`SeedRecord`].
pub const VERSION: u32 = 2;

/// Text files up to this size (cargo's fingerprints, dependency files, build-script
/// output) are kept in the record itself ([`SeedFile::text`]), not as blobs: a blob is a
/// file created in the store, hundreds of them for one build's units (bytes).
pub const INLINE_MAX_BYTES: usize = 4096;

/// The most units a record holds.
pub const MAX_UNITS: usize = crate::prefetch::MAX_UNITS;

/// Units planted at once: writing files is mostly system calls, which overlap.
const THREADS: usize = 4;

/// The prefix of a fingerprint directory being planted.
const STAGING: &str = ".larder-seed-";

/// What cargo writes at the root of a target directory; larder finds target
/// directories by it ([`find_target_dir`]), and cargo does not write it into a
/// directory that already exists.
const CACHEDIR_TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file is a cache directory tag created by cargo.\n\
# For information about cache directory tags see https://bford.info/cachedir/\n";

/// The seeds of one project and cargo command, newest first: one per [`guard`] (at
/// most [`MAX_SEEDS`]), so that builds that alternate between two environments keep
/// both.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeedRecord {
    /// Format version: [`VERSION`].
    pub version: u32,
    /// The seeds.
    pub seeds: Vec<Seed>,
    /// The digests of the last seeds this store published to the remotes
    /// ([`remote::payload`]), newest first, at most [`MAX_SEEDS`]: an unchanged seed is
    /// not written again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub published: Vec<Digest>,
}

/// The most seeds a record keeps.
pub const MAX_SEEDS: usize = 4;

impl SeedRecord {
    /// The seed left under `guard`, if any.
    pub fn seed_for(&self, guard: &Digest) -> Option<&Seed> {
        self.seeds.iter().find(|s| s.guard == *guard)
    }

    /// Puts `seed` first, in place of the one with its guard; keeps [`MAX_SEEDS`].
    pub fn put(&mut self, seed: Seed) {
        self.version = VERSION;
        self.seeds.retain(|s| s.guard != seed.guard);
        self.seeds.insert(0, seed);
        self.seeds.truncate(MAX_SEEDS);
    }

    /// Remembers that the remote seed whose bytes have digest `payload` was published.
    pub fn mark_published(&mut self, payload: Digest) {
        self.published.retain(|p| *p != payload);
        self.published.insert(0, payload);
        self.published.truncate(MAX_SEEDS);
    }
}

/// A build's registry and git units, file by file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seed {
    /// The [`guard`] of the build that left the units.
    pub guard: Digest,
    /// The target directory the units were taken from: relative to the project's
    /// directory (that of the `Cargo.toml` the command reads) when it can be, else
    /// absolute.
    pub target_dir: String,
    /// The units.
    pub units: Vec<SeedUnit>,
}

impl Seed {
    /// The seed as any machine would record it: a rewritten file's size on disk
    /// (`disk_size`, which depends on the length of the target directory's path) left
    /// out. What a remote keeps ([`remote`]), and what decides whether a seed is new to
    /// it; planting never reads `disk_size`.
    pub fn portable(&self) -> Seed {
        let mut seed = self.clone();
        for f in seed.units.iter_mut().flat_map(|u| &mut u.files) {
            if f.rewrite {
                f.disk_size = 0;
            }
        }
        seed
    }
}

/// One unit of a [`Seed`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedUnit {
    /// Its fingerprint directory, relative to the target directory
    /// (`debug/.fingerprint/serde-3ce5af1e89b878e4`).
    pub fingerprint: String,
    /// Its files: outputs in `deps/`, its directory under `build/`, and its fingerprint
    /// files (last).
    pub files: Vec<SeedFile>,
}

/// One file of a [`SeedUnit`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedFile {
    /// Relative to the target directory.
    pub path: String,
    /// Digest of the content as stored (with the placeholder when `rewrite`).
    pub digest: Digest,
    /// Bytes of the content as stored.
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: u64,
    /// Whether the file is executable.
    pub executable: bool,
    /// Text that named the target directory, stored with a placeholder.
    #[serde(default)]
    pub rewrite: bool,
    /// Bytes on disk when recorded: with `mtime_ns`, whether the file changed since.
    pub disk_size: u64,
    /// The content as stored, for a small text file ([`INLINE_MAX_BYTES`]); else it is
    /// the blob `digest` in the CAS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// For an rlib, the file names of the libraries it was compiled against (its
    /// [`larder_store::LinkRecord`]): a wrapper that links it reads them, and a store
    /// that got the unit only by a plant (a fresh runner, from a remote) has no other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_deps: Option<Vec<String>>,
}

/// What [`plant`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Planted {
    /// Units planted.
    pub units: usize,
    /// Bytes written.
    pub bytes: u64,
    /// Units the target directory already had.
    pub present: usize,
    /// Units left out: a blob missing or corrupt, a file that could not be written.
    pub failed: usize,
    /// The first reason a unit was left out.
    pub why: Option<String>,
    /// Wall time, in seconds.
    pub secs: f64,
    /// The outputs written (not the fingerprint files), with the digests of what was
    /// written: what [`crate::hashing::remember_in`] lists in the target directory.
    pub files: Vec<(PathBuf, Digest)>,
}

/// A unit's fingerprint directory: `<profile>/.fingerprint/<package>-<hash>`, where
/// `profile` is where cargo puts the unit's `deps/` and `build/` (`target/debug`).
pub fn fingerprint_dir(profile: &Path, package: &str, hash: &str) -> PathBuf {
    profile
        .join(".fingerprint")
        .join(format!("{package}-{hash}"))
}

/// What planted units depend on beyond cargo's fingerprints: larder's version, the
/// compiler's identity, the C and C++ compilers' identities, `CARGO_HOME`, and every
/// variable of this process that larder keys a compile or a build script's run by.
/// `None` if the compiler cannot be identified. `compiler` is the identity of the
/// compiler the build runs ([`rustc`]).
pub fn guard(config: &Config, compiler: Option<crate::identity::Compiler>) -> Option<Digest> {
    let tools = config.layout().tools();
    let compiler = compiler?;
    let mut h = KeyHasher::new();
    h.field("seed", "larder-seed-v1")
        .field("larder", env!("CARGO_PKG_VERSION"))
        .digest_field("rustc", &compiler.digest);
    for (var, program) in c_compilers() {
        match crate::identity::c_compiler(Path::new(&program), Some(&tools)) {
            Ok(d) => h.digest_field(var, &d),
            Err(_) => h.field(var, "none"),
        };
    }
    environment(&mut h, &config.extra_env);
    Some(h.finish())
}

/// What a remote seed is kept under besides the command: the [`guard`]'s parts without
/// the compilers' content (larder's version, `rustc -vV`, the C compilers' names,
/// `CARGO_HOME`, the keyed variables). Computed in milliseconds, where the guard hashes
/// the compiler's sysroot (160 MB) on an empty store, so a fresh runner looks its seed
/// up while the guard is computed; the seed found must still have the guard
/// ([`remote::fetch`]). `None` if `rustc -vV` fails.
pub fn remote_context(extra_env: &[String]) -> Option<Digest> {
    let out = std::process::Command::new(rustc())
        .arg("-vV")
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let mut h = KeyHasher::new();
    h.field("seed-context", "larder-seed-context-v1")
        .field("larder", env!("CARGO_PKG_VERSION"))
        .field("rustc -vV", &out.stdout);
    for (var, program) in c_compilers() {
        h.field(var, program.as_encoded_bytes());
    }
    environment(&mut h, extra_env);
    Some(h.finish())
}

/// The compiler a build runs: `RUSTC`, else `rustc` on the `PATH`.
pub fn rustc() -> PathBuf {
    env::var_os("RUSTC").map_or_else(|| PathBuf::from("rustc"), PathBuf::from)
}

/// The C and C++ compilers build scripts run: `CC` and `CXX`, else `cc` and `c++`.
fn c_compilers() -> [(&'static str, std::ffi::OsString); 2] {
    [("CC", "cc"), ("CXX", "c++")].map(|(var, default)| {
        let program = env::var_os(var)
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.into());
        (var, program)
    })
}

/// `CARGO_HOME` and the variables keyed for build scripts (`extra_env` among them).
fn environment(h: &mut KeyHasher, extra_env: &[String]) {
    let home = crate::roots::cargo_home().unwrap_or_default();
    h.field("cargo_home", home.as_os_str().as_encoded_bytes());
    let mut vars: Vec<(String, String)> = env::vars_os()
        .filter_map(|(n, v)| Some((n.into_string().ok()?, v.to_string_lossy().into_owned())))
        .filter(|(n, _)| {
            !n.starts_with("LARDER_") && larder_key::env::is_keyed_for_build_script(n, extra_env)
        })
        .collect();
    vars.sort();
    for (n, v) in &vars {
        h.field(n, v);
    }
}

/// The record under `key` in the local store, if one parses and has this format.
pub fn load(store: &DiskStore, key: &Digest) -> Option<SeedRecord> {
    let bytes = store.peek(Namespace::Seed, key).ok()??;
    let record: SeedRecord = serde_json::from_slice(&bytes).ok()?;
    (record.version == VERSION).then_some(record)
}

/// The target directory to plant `seed` in: `--target-dir` among cargo's `args`,
/// else `CARGO_TARGET_DIR` or `CARGO_BUILD_TARGET_DIR`, else the recorded one, relative
/// to `project_dir` (that of the `Cargo.toml` the command reads).
pub fn target_dir(seed: &Seed, args: &[String], cwd: &Path, project_dir: &Path) -> PathBuf {
    named_target_dir(args, cwd).unwrap_or_else(|| lexical(&project_dir.join(&seed.target_dir)))
}

/// The target directory cargo's `args` or its variables name (`--target-dir`,
/// `CARGO_TARGET_DIR`, `CARGO_BUILD_TARGET_DIR`), relative to `cwd`, if any.
pub fn named_target_dir(args: &[String], cwd: &Path) -> Option<PathBuf> {
    crate::command::cargo_option(args, "--target-dir")
        .or_else(|| env::var("CARGO_TARGET_DIR"))
        .or_else(|| env::var("CARGO_BUILD_TARGET_DIR"))
        .map(|d| lexical(&cwd.join(d)))
}

/// `path` with `.` and `..` components resolved without reading the filesystem.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// `to` relative to `from` (both absolute and lexical), with `..` where needed.
fn relative(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<_> = from.components().collect();
    let to: Vec<_> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for c in &to[common..] {
        out.push(c);
    }
    out
}

fn mtime_ns(meta: &std::fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A relative path that stays inside the directory it is joined to.
fn is_inside(rel: &str) -> bool {
    let p = Path::new(rel);
    !rel.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)))
}

/// The unit hash a cargo output file name carries (`libserde-3ce5af1e89b878e4.rlib`,
/// `serde-3ce5af1e89b878e4.d`, `build_script_build-b2abab732441ffc7`): sixteen hex
/// digits after a `-`, at the end of the name or before a `.`.
fn file_hash(name: &str) -> Option<&str> {
    let stem = name.split('.').next()?;
    let (_, hash) = stem.rsplit_once('-')?;
    (hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hash)
}

/// Writes `record` under `key` in the local store.
///
/// # Errors
/// If the store cannot be written.
pub fn save(
    store: &DiskStore,
    key: &Digest,
    record: &SeedRecord,
) -> Result<(), larder_store::StoreError> {
    let json = serde_json::to_vec(record).map_err(|e| io::Error::other(e.to_string()))?;
    store.put(Namespace::Seed, key, &json)
}

/// Writes every unit of `seed` whose fingerprint directory `target` lacks (and whose
/// directory under `build/` it lacks too), holding cargo's build lock of each profile
/// directory meanwhile. Plants nothing if a cargo holds one of those locks.
pub fn plant(store: &DiskStore, seed: &Seed, target: &Path, fresh: &HashSet<Digest>) -> Planted {
    let started = Instant::now();
    let mut planted = Planted::default();
    let units: Vec<&SeedUnit> = plantable(seed).collect();
    // Cargo's lock of each profile directory (`target/debug/.cargo-lock`).
    let profiles: BTreeSet<PathBuf> = units
        .iter()
        .filter_map(|u| {
            Path::new(&u.fingerprint)
                .parent()?
                .parent()
                .map(Path::to_path_buf)
        })
        .collect();
    if let Err(e) = tag_target_dir(target, &profiles) {
        planted.why = Some(format!("cannot create {}: {e}", target.display()));
        return planted;
    }
    let mut locks = Vec::new();
    for p in &profiles {
        let dir = target.join(p);
        let lock = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::File::create(dir.join(".cargo-lock")));
        match lock.map(|f| f.try_lock().map(|()| f)) {
            Ok(Ok(f)) => locks.push(f),
            _ => {
                planted.why = Some(format!("{} is in use", dir.display()));
                return planted;
            }
        }
    }
    let roots = Roots::new([("target", target.to_path_buf())]);
    let todo: Vec<&SeedUnit> = units
        .into_iter()
        .filter(|u| {
            let there = present(target, u);
            planted.present += usize::from(there);
            !there
        })
        .collect();
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..THREADS.min(todo.len()) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(unit) = todo.get(i) else { break };
                    let r = plant_unit(store, unit, target, &roots, fresh);
                    results.lock().unwrap_or_else(|e| e.into_inner()).push(r);
                }
            });
        }
    });
    for r in results.into_inner().unwrap_or_else(|e| e.into_inner()) {
        match r {
            Ok((bytes, files)) => {
                planted.units += 1;
                planted.bytes += bytes;
                planted.files.extend(files);
            }
            Err(e) => {
                planted.failed += 1;
                planted.why.get_or_insert(e);
            }
        }
    }
    drop(locks);
    planted.secs = started.elapsed().as_secs_f64();
    planted
}

/// The units of `seed` a plant considers: those whose paths stay inside the target
/// directory.
fn plantable(seed: &Seed) -> impl Iterator<Item = &SeedUnit> {
    seed.units
        .iter()
        .filter(|u| is_inside(&u.fingerprint) && u.files.iter().all(|f| is_inside(&f.path)))
}

/// Whether `unit` is in `target` already (its fingerprint directory, or its `build/`
/// one, exists): a plant leaves it as it is.
fn present(target: &Path, unit: &SeedUnit) -> bool {
    target.join(&unit.fingerprint).exists() || build_dir(target, unit).is_some_and(|b| b.exists())
}

/// Whether every unit of every seed of `record` is in its target directory already
/// (for cargo's `args` run in `cwd`, of the project in `project_dir`): a plant would
/// plant nothing whichever seed the guard picks, so the build need not wait for the
/// guard. A few `stat` calls per unit.
pub fn nothing_to_plant(
    record: &SeedRecord,
    args: &[String],
    cwd: &Path,
    project_dir: &Path,
) -> bool {
    record.seeds.iter().all(|seed| {
        let target = target_dir(seed, args, cwd, project_dir);
        plantable(seed).all(|u| present(&target, u))
    })
}

/// The unit's directory under `build/`, if it has one
/// (`debug/.fingerprint/serde-<hash>` -> `debug/build/serde-<hash>`).
fn build_dir(target: &Path, unit: &SeedUnit) -> Option<PathBuf> {
    let fp = Path::new(&unit.fingerprint);
    let name = fp.file_name()?;
    let profile = fp.parent()?.parent()?;
    let build = profile.join("build").join(name);
    unit.files
        .iter()
        .any(|f| Path::new(&f.path).starts_with(&build))
        .then(|| target.join(build))
}

/// Writes `CACHEDIR.TAG` at the root of a new target directory (and of a
/// `<target>/<triple>/` one), as cargo would have.
fn tag_target_dir(target: &Path, profiles: &BTreeSet<PathBuf>) -> io::Result<()> {
    let mut roots = vec![target.to_path_buf()];
    for p in profiles {
        if p.components().count() == 2
            && let Some(triple) = p.parent()
        {
            roots.push(target.join(triple));
        }
    }
    for dir in roots {
        let tag = dir.join("CACHEDIR.TAG");
        if !tag.exists() {
            std::fs::create_dir_all(&dir)?;
            crate::fsio::write_atomic(&tag, CACHEDIR_TAG.as_bytes(), false)?;
        }
    }
    Ok(())
}

/// Plants one unit: its outputs, then its fingerprint files in a staging directory
/// moved into place. Returns the bytes written and the outputs with their digests, or
/// why the unit was left out.
fn plant_unit(
    store: &DiskStore,
    unit: &SeedUnit,
    target: &Path,
    roots: &Roots,
    fresh: &HashSet<Digest>,
) -> Result<(u64, Vec<(PathBuf, Digest)>), String> {
    let fingerprint = target.join(&unit.fingerprint);
    let parent = fingerprint.parent().ok_or("no parent")?;
    let name = fingerprint
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let staging = parent.join(format!("{STAGING}{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let mut bytes = 0;
    let mut outputs = Vec::new();
    let result = (|| {
        for f in &unit.files {
            let path = Path::new(&f.path);
            let (dest, output) = match path.strip_prefix(&unit.fingerprint) {
                Ok(rest) => (staging.join(rest), false),
                Err(_) => (target.join(path), true),
            };
            let (size, digest) = plant_file(store, f, &dest, roots, fresh)
                .map_err(|e| format!("{}: {e}", f.path))?;
            bytes += size;
            if let Some(deps) = &f.link_deps {
                crate::action::storejob::keep_link_record(store, &digest, deps);
            }
            if output {
                outputs.push((dest, digest));
            }
        }
        std::fs::rename(&staging, &fingerprint)
            .map_err(|e| format!("{}: {e}", fingerprint.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    result.map(|()| (bytes, outputs))
}

/// Writes one file, checked against its digest, with its recorded time. Returns its size
/// and the digest of what was written. A library (see [`crate::fsio::only_replaced`]) is
/// linked to the store's file instead where that moves no other checkout's time
/// ([`crate::fsio::link_atomic`]; otherwise copied), read back through the link and
/// checked unless this process fetched its blob (`fresh`: checked as it was stored).
fn plant_file(
    store: &DiskStore,
    f: &SeedFile,
    dest: &Path,
    roots: &Roots,
    fresh: &HashSet<Digest>,
) -> io::Result<(u64, Digest)> {
    let mtime = UNIX_EPOCH + Duration::from_nanos(f.mtime_ns);
    if f.text.is_none()
        && !f.rewrite
        && let Some(raw) = store.raw_blob_path(&f.digest)
    {
        let corrupt = |e: &io::Error| {
            if e.kind() == io::ErrorKind::InvalidData {
                let _ = store.delete(Namespace::Cas, &f.digest);
            }
        };
        // A library by a link: no new file for the filesystem to allocate nor bytes to
        // write. A blob this process fetched was checked as it was stored: not read again.
        let linked = if !f.executable && crate::fsio::only_replaced(dest) {
            let check = !fresh.contains(&f.digest);
            crate::fsio::link_atomic(dest, &raw, &f.digest, mtime, check)
                .inspect_err(corrupt)
                .or_else(|e| match e.kind() {
                    io::ErrorKind::InvalidData => Err(e),
                    // No link here (another filesystem): copied.
                    _ => Ok(None),
                })?
        } else {
            None
        };
        // None: a time another checkout would see move, or not a library: copied.
        let size = match linked {
            Some(size) => size,
            None => crate::fsio::copy_verified_atomic(dest, &raw, &f.digest, f.executable, mtime)
                .inspect_err(corrupt)?,
        };
        // Used: kept by eviction like a restored output.
        if let Ok(file) = std::fs::File::open(&raw) {
            larder_store::mark_used(&file);
        }
        return Ok((size, f.digest));
    }
    let blob = match &f.text {
        Some(text) if Digest::of(text.as_bytes()) == f.digest => text.clone().into_bytes(),
        Some(_) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "its text does not match its digest",
            ));
        }
        None => store
            .get_verified_blob(&f.digest, f.size)
            .map_err(|e| io::Error::other(e.to_string()))?
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("blob {} is missing", f.digest),
                )
            })?,
    };
    let content = if f.rewrite {
        let text = String::from_utf8(blob).map_err(|_| io::Error::other("not text"))?;
        roots.denormalize_text(&text).into_bytes()
    } else {
        blob
    };
    crate::fsio::write_atomic_at(dest, &content, f.executable, mtime)?;
    let digest = if f.rewrite {
        Digest::of(&content)
    } else {
        f.digest
    };
    Ok((content.len() as u64, digest))
}

pub(crate) mod build;
mod capture;
mod fingerprints;
pub mod remote;

pub use capture::capture;

#[cfg(test)]
mod tests;
