//! Build-script runs: cached like compiles.
//!
//! Running a build script (one that compiles C through the `cc` crate, as ring, zstd-sys
//! or libsqlite3-sys do) often costs more than compiling it. cargo runs the script's
//! binary directly, so larder puts a shim in front of it ([`shim`]) that runs
//! `larder build-script-run <real binary>`: a [`CachedAction`] like a compile, driven by
//! [`crate::action::run`].
//!
//! A run's key, in two steps like a compile's:
//!
//! | input | how | why | test that changes it and expects a miss |
//! |---|---|---|---|
//! | version | `larder-build-script-run-v1` | a new definition never matches old entries | none: a constant, changed only with the definition |
//! | the script | content digest of the real binary | the code that runs | `buildrun.rs`: `script_code_is_an_input` |
//! | package sources | whether the package is a registry or git checkout under `CARGO_HOME` (immutable) or a path or vendored package (editable) | the two kinds of entry list different inputs; a registry entry keyed by variables alone must never answer for a vendored copy with the same package id | `buildrun.rs`: `a_registry_entry_never_answers_for_a_vendored_copy` |
//! | the compiler | identity of `RUSTC` (`rustc -vV`, sysroot) | scripts probe it | `larder-core` `identity::tests::another_compiler_or_standard_library_is_another_identity` |
//! | the C compilers | content of the `CC` and `CXX` executables a `cc`-crate script would run (the compiler behind larder's shim, not the shim) | a compiler upgrade changes the objects in `OUT_DIR` | `larder-core` `identity::tests::linker_identity` |
//! | environment | [`larder_key::env::is_keyed_for_build_script`]: what cargo sets for the script (`TARGET`, `PROFILE`, `OPT_LEVEL`, `CARGO_CFG_*`, `CARGO_FEATURE_*`, `OUT_DIR`, `CARGO_ENCODED_RUSTFLAGS`, ...), the C toolchain's variables, `PKG_CONFIG*`, declared variables; normalized; `RUSTC` by the compiler's identity (above) and `RUSTDOC`/`RUSTC_LINKER` by their content, not by where they are (`rustc` on a container's `PATH`, a rustup toolchain path on a laptop) | the script reads them | `buildrun.rs`: `script_environment_is_an_input`, `runs_hit_with_the_toolchain_elsewhere` |
//! | dependencies' exports | the content of each path inside the target directory named by a `DEP_<links>_<key>` value (a dependency's `OUT_DIR`) | a dependency's run changed what this script reads | `buildrun.rs`: `dependency_metadata_content_is_an_input` |
//! | declared inputs | after a run: each `rerun-if-changed` path (a file's digest, a directory's tree digest; a missing path must stay missing) and each `rerun-if-env-changed` variable's value; without any `rerun-if-changed` directive, the tree digest of the whole package (as cargo assumes), unless the script declared only variables and its package is a registry or git checkout (immutable) | what the script says it read; for a path or vendored package, what a clean build reads | `buildrun.rs`: `declared_file_change_misses`, `run_is_restored_with_its_out_dir_and_keyed_by_declared_variables`, `undeclared_package_files_are_inputs`, `a_path_package_declaring_only_variables_is_keyed_by_its_files` |
//!
//! Outputs: every file in `OUT_DIR`, the script's stdout (its `cargo:` directives) and
//! stderr, paths normalized. A generated text file that names the build's directories
//! (a `paths.rs` with the `OUT_DIR` path, a probe's dep-info) is stored with placeholders
//! and written back with this build's directories, as the script would have written it
//! here (`buildrun.rs`: `generated_text_naming_its_directory_is_rewritten`); binary files
//! are restored as they are. A run is not cached when it fails, when an input changed
//! while it ran, when `OUT_DIR` holds a symlink or special file, or when a directive
//! names an absolute path outside the workspace, target directory, `CARGO_HOME` and
//! sysroot (`rustc-link-search=native=/usr/lib/...` from pkg-config): such a script
//! probed the system, and the system is not an input. A script that writes outside
//! `OUT_DIR` is not detected (cargo forbids it, but cannot enforce it either).

mod directives;
mod key;
pub mod shim;

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use larder_digest::{Digest, KeyHasher};
use larder_key::paths::find_target_dir;
use larder_key::{ManifestEntry, Mismatch, NotCacheable, Roots};
use larder_store::OutputFile;

use crate::action::{
    self, BlobSource, CachedAction, Collected, Ctx, Key, Stop, Tool, Unit, UnitKind,
};
use crate::config::Config;
use crate::config::env;
use crate::exec::Captured;
use crate::hashing::FileHasher;
use crate::identity;
use directives::{parse_directives, system_path};
pub use key::{RUN_KEY_VERSION, RunKeyInputs};
pub use shim::{REAL_SUFFIX, install_shim};

/// Runs the build script `real` with `args` through the cache and returns its exit
/// code. Called by the shim as `larder build-script-run <real> <args...>`.
pub fn run(real: PathBuf, args: Vec<OsString>) -> i32 {
    crate::report::relay_warnings();
    action::run::<BuildScriptRun>(Tool {
        program: real,
        args,
    })
}

/// A build script's run being cached.
pub struct BuildScriptRun {
    real: PathBuf,
    args: Vec<OsString>,
    package: String,
    out_dir: PathBuf,
    cwd: PathBuf,
    /// What the run key was made of, and the compiler's name for people.
    key_inputs: Option<(RunKeyInputs, String)>,
}

fn package() -> String {
    env::var("CARGO_PKG_NAME").unwrap_or_else(|| "build-script".into())
}

/// The value of `name` as the script's key sees it: larder's compiler shims are replaced
/// by the compilers behind them. `larder cargo` sets `CC` (or, without a `CC` of the
/// user's, `HOST_CC`) to `<store>/v1/bin/<tag>/cc`, with the user's own `CC` in
/// `LARDER_REAL_CC`: a shim is keyed as that, or as unset, so a run is keyed the same
/// under `larder cargo` and plain `RUSTC_WRAPPER=larder`.
fn script_var(bin: &Path, name: &str) -> Option<String> {
    let value = env::var(name)?;
    if !Path::new(&value).starts_with(bin) {
        return Some(value);
    }
    let real_var = if name.contains("CXX") {
        "LARDER_REAL_CXX"
    } else {
        "LARDER_REAL_CC"
    };
    env::var(real_var).filter(|v| !v.is_empty())
}

/// Whether a tree walk leaves `path` out: `.git`, `target` and the target directory.
fn skip_in_tree(roots: &Roots, path: &Path) -> bool {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    name == ".git" || name == "target" || roots.get("target").is_some_and(|t| path.starts_with(t))
}

/// Every file under `dir` (relative path, path), leaving out what [`skip_in_tree`] does.
fn walk(
    roots: &Roots,
    root: &Path,
    dir: &Path,
    out: &mut Vec<(String, PathBuf)>,
) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let path = e?.path();
        if skip_in_tree(roots, &path) {
            continue;
        }
        if path.is_dir() {
            walk(roots, root, &path, out)?;
        } else {
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            out.push((rel, path));
        }
    }
    Ok(())
}

/// The digest of a file, or of a directory's tree (relative paths and contents, leaving
/// out `.git`, `target` and the target directory).
fn digest_of(hasher: &mut FileHasher, roots: &Roots, path: &Path) -> Option<Digest> {
    if !path.is_dir() {
        return hasher.digest(path);
    }
    let mut files = Vec::new();
    walk(roots, path, path, &mut files).ok()?;
    files.sort();
    let mut h = KeyHasher::new();
    for (rel, file) in files {
        let d = hasher.digest(&file)?;
        h.field("tree-file", rel).digest_field("digest", &d);
    }
    Some(h.finish())
}

/// Whether `path` (a file, or any file in a directory tree) changed since `since`.
fn modified_since(roots: &Roots, path: &Path, since: SystemTime) -> bool {
    if path.is_dir() {
        let mut files = Vec::new();
        if walk(roots, path, path, &mut files).is_err() {
            return true;
        }
        return files.iter().any(|(_, f)| modified_since(roots, f, since));
    }
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map_or(true, |m| m >= since)
}

/// Every regular file under `dir`; a symlink or special file makes the run not
/// cacheable.
fn collect_outputs(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), NotCacheable> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries {
        let e = e.map_err(|e| NotCacheable::UnreadableInput(e.to_string()))?;
        let ft = e
            .file_type()
            .map_err(|e| NotCacheable::UnreadableInput(e.to_string()))?;
        if ft.is_dir() {
            collect_outputs(&e.path(), out)?;
        } else if ft.is_file() {
            out.push(e.path());
        } else {
            return Err(NotCacheable::SpecialFile(e.path().display().to_string()));
        }
    }
    Ok(())
}

/// A generated file in `OUT_DIR` as stored: a text file that names one of the build's
/// directories (the package, the target directory, `CARGO_HOME`, the sysroot: a
/// `paths.rs` with `pub const OUT: &str = "/home/u/ws/target/debug/build/x-1/out"`, an
/// `include!` of an absolute path, a probe's dep-info) is stored with those directories
/// as placeholders and written back with this build's on restore, as the script would
/// have written it here. Binary files (objects, archives), which name paths only in
/// debug info, are stored as they are. Returns (digest, size, source, rewritten).
fn generated_output(
    roots: &Roots,
    path: &Path,
) -> Result<(Digest, u64, BlobSource, bool), NotCacheable> {
    let unreadable = || NotCacheable::UnreadableInput(path.display().to_string());
    let as_is = |digest: Digest, size: u64| {
        (
            digest,
            size,
            BlobSource::File(path.to_path_buf(), None),
            false,
        )
    };
    let len = std::fs::metadata(path).map_err(|_| unreadable())?.len();
    if len > larder_key::paths::REWRITE_MAX_BYTES {
        // Hashed afresh: the run just wrote it.
        let (digest, size) = std::fs::File::open(path)
            .and_then(Digest::of_reader)
            .map_err(|_| unreadable())?;
        return Ok(as_is(digest, size));
    }
    let bytes = std::fs::read(path).map_err(|_| unreadable())?;
    if !bytes.contains(&0)
        && let Ok(text) = std::str::from_utf8(&bytes)
    {
        let normalized = roots.normalize_text(text);
        if normalized != text {
            return Ok((
                Digest::of(normalized.as_bytes()),
                normalized.len() as u64,
                BlobSource::Inline(normalized),
                true,
            ));
        }
    }
    Ok(as_is(Digest::of(&bytes), bytes.len() as u64))
}

impl BuildScriptRun {
    /// Whether the script's package is a registry or git checkout under `CARGO_HOME`,
    /// whose sources never change in place.
    fn immutable_package(&self) -> bool {
        crate::roots::is_immutable_package(&self.cwd)
    }
}

impl CachedAction for BuildScriptRun {
    type Reason = NotCacheable;

    fn unit_of(_tool: &Tool) -> Unit {
        Unit {
            name: Some(package()),
            kind: UnitKind::BuildScriptRun,
        }
    }

    fn parse(config: &Config, tool: &Tool) -> Result<Self, NotCacheable> {
        if config.disable || !config.build_script_cache {
            return Err(NotCacheable::Disabled);
        }
        let out_dir = env::var_os("OUT_DIR")
            .map(PathBuf::from)
            .ok_or(NotCacheable::NoOutDir)?;
        Ok(BuildScriptRun {
            real: tool.program.clone(),
            args: tool.args.clone(),
            package: package(),
            out_dir,
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            key_inputs: None,
        })
    }

    /// A run whose `OUT_DIR` is where cargo puts it (`<profile>/build/<package>-<hash>/out`);
    /// seedable if the package is a registry or git one.
    fn fingerprint_dir(&self) -> Option<(PathBuf, bool)> {
        if self.out_dir.file_name()? != "out" {
            return None;
        }
        let unit = self.out_dir.parent()?;
        let name = unit.file_name()?.to_str()?;
        let hash = name.strip_prefix(&format!("{}-", self.package))?;
        let profile = unit.parent()?.parent()?;
        let dir = crate::seed::fingerprint_dir(profile, &self.package, hash);
        Some((dir, self.immutable_package()))
    }

    fn unit(&self) -> Unit {
        Unit {
            name: Some(self.package.clone()),
            kind: UnitKind::BuildScriptRun,
        }
    }

    fn cwd(&self) -> &Path {
        &self.cwd
    }

    fn key(&mut self, cx: &mut Ctx<'_>) -> Result<Key, Stop<NotCacheable>> {
        let tools = cx.tools_dir();
        let rustc = env::var_os("RUSTC").map(PathBuf::from);
        // A build for the host is the host's identity (cargo names both triples), so
        // that its memo is the one `larder cargo` and rustc's units without `--target`
        // share: one hashing of the sysroot per store, not two.
        let target = env::var("TARGET").filter(|t| env::var("HOST").as_ref() != Some(t));
        let compiler = rustc
            .as_deref()
            .and_then(|r| identity::compiler(r, target.as_deref(), Some(&tools)).ok());
        let mut roots = vec![("cwd", self.cwd.clone())];
        if let Some(t) = find_target_dir(&self.out_dir) {
            roots.push(("target", t));
        }
        if let Some(h) = crate::roots::cargo_home() {
            roots.push(("cargo-home", h));
        }
        if let Some(c) = &compiler {
            roots.push(("sysroot", c.sysroot.clone()));
        }
        if let Ok(exe) = std::env::current_exe() {
            roots.push(("larder", exe));
        }
        roots.push(("larder-bin", cx.config.layout().bin()));
        cx.set_roots(Roots::new(roots));

        let script = cx
            .hasher
            .digest(&self.real)
            .ok_or_else(|| NotCacheable::UnreadableInput(self.real.display().to_string()))?;
        let mut key = RunKeyInputs {
            script,
            immutable_package: self.immutable_package(),
            compiler: compiler.as_ref().map(|c| c.digest),
            c_compilers: Vec::new(),
            args: Vec::new(),
            env: Vec::new(),
            dep_paths: Vec::new(),
        };
        // The C and C++ compilers a `cc`-crate script would run: their executables'
        // content (a compiler upgrade changes the objects in `OUT_DIR`).
        let bin = cx.config.layout().bin();
        for (var, default) in [("CC", "cc"), ("CXX", "c++")] {
            let value = script_var(&bin, var).unwrap_or_else(|| default.to_string());
            let program = value.split_whitespace().next().unwrap_or(default);
            if let Ok(d) = identity::linker(Path::new(program), Some(&tools)) {
                key.c_compilers.push((var.to_string(), d));
            }
        }
        for a in &self.args {
            let a = a
                .to_str()
                .ok_or_else(|| NotCacheable::NonUtf8("argument".into()))?;
            key.args.push(cx.roots.normalize_text(a));
        }
        for (name, value) in env::vars_os() {
            let Some(name) = name.to_str() else { continue };
            if larder_key::env::is_keyed_for_build_script(name, &cx.config.extra_env) {
                if value.to_str().is_none() {
                    return Err(NotCacheable::NonUtf8(format!("value of {name}")).into());
                }
                if let Some(value) = script_var(&bin, name) {
                    let keyed = match name {
                        // The compiler is keyed by its identity, not by where it is or
                        // how it is named (`rustc` on a container's PATH, rustup's
                        // toolchain path on a laptop).
                        "RUSTC" if compiler.is_some() => continue,
                        // Other tools by their content, wherever they are.
                        "RUSTDOC" | "RUSTC_LINKER" => {
                            identity::linker(Path::new(&value), Some(&tools)).map_or_else(
                                |_| cx.roots.normalize_text(&value),
                                |d| format!("content:{}", d.to_hex()),
                            )
                        }
                        _ => cx.roots.normalize_text(&value),
                    };
                    key.env.push((name.to_string(), keyed));
                }
            }
        }
        key.env.sort();
        // `DEP_<links>_<key>` values often name a dependency's `OUT_DIR` (headers, a
        // built library): its content is an input, as cargo reruns the script when a
        // dependency's run changes. Tree walks inside the target directory take no
        // roots (they would leave the target directory out).
        let target = cx.roots.get("target").map(PathBuf::from);
        for (k, v) in &key.env {
            let Some(target) = &target else { break };
            if !k.starts_with("DEP_") {
                continue;
            }
            for piece in cx.roots.denormalize_text(v).split(':') {
                let path = Path::new(piece);
                if path.is_absolute() && path.starts_with(target) && path.exists() {
                    let d = digest_of(&mut cx.hasher, &Roots::default(), path)
                        .ok_or_else(|| NotCacheable::UnreadableInput(piece.to_string()))?;
                    key.dep_paths.push((cx.roots.normalize_text(piece), d));
                }
            }
        }
        let digest = key.key();
        let release = compiler.map(|c| c.release).unwrap_or_default();
        self.key_inputs = Some((key, release));
        Ok(Key::Manifest(digest))
    }

    fn inputs(&mut self, _cx: &mut Ctx<'_>) -> Vec<larder_key::Input> {
        self.key_inputs
            .as_ref()
            .map(|(k, release)| k.inputs(release))
            .unwrap_or_default()
    }

    /// Files and directory trees, by content.
    fn entry_matches(&mut self, cx: &mut Ctx<'_>, entry: &ManifestEntry) -> Result<(), Mismatch> {
        let roots = cx.roots.clone();
        let hasher = &mut cx.hasher;
        let bin = cx.config.layout().bin();
        entry.matches(
            &roots,
            |p| digest_of(hasher, &roots, p),
            |n| script_var(&bin, n),
            &self.cwd,
        )
    }

    fn destination(&self, cx: &Ctx<'_>, output: &OutputFile) -> Result<PathBuf, String> {
        let dest = cx.roots.denormalize_path(&output.path);
        if !dest.starts_with(&self.out_dir) {
            return Err(format!("{} is not in this OUT_DIR", output.path));
        }
        Ok(dest)
    }

    fn failure_detail(&self) -> String {
        "the build script failed".into()
    }

    fn collect(
        &mut self,
        cx: &mut Ctx<'_>,
        key: &Key,
        captured: &Captured,
        wall_start: SystemTime,
    ) -> Result<Collected, Stop<NotCacheable>> {
        let stdout = String::from_utf8(captured.stdout.clone())
            .map_err(|_| NotCacheable::BinaryOutput("stdout".into()))?;
        let stderr = String::from_utf8_lossy(&captured.stderr).into_owned();
        let directives = parse_directives(&stdout);
        if let Some(p) = system_path(&directives.values, &cx.roots) {
            return Err(NotCacheable::SystemPath(p).into());
        }

        // What the run read: the declared files; without any, the whole package (as
        // cargo assumes), unless the script declared only variables and its package's
        // sources cannot change (a registry or git checkout under `CARGO_HOME`). A path
        // or vendored package's files are what a clean build reads, whatever the script
        // declares about variables.
        let inputs: Vec<String> = if !directives.rerun_files.is_empty() {
            directives.rerun_files.clone()
        } else if directives.rerun_env.is_empty() || !self.immutable_package() {
            vec![".".to_string()]
        } else {
            Vec::new()
        };
        let mut files = Vec::new();
        let mut absent = Vec::new();
        for f in &inputs {
            let path = self.cwd.join(f);
            let norm = cx.roots.normalize_text(&path.to_string_lossy());
            if !path.exists() {
                absent.push(norm);
                continue;
            }
            if modified_since(&cx.roots, &path, wall_start) {
                return Err(NotCacheable::InputModifiedDuringCompile(f.clone()).into());
            }
            let d = digest_of(&mut cx.hasher, &cx.roots, &path)
                .ok_or_else(|| NotCacheable::UnreadableInput(f.clone()))?;
            files.push((norm, d));
        }
        let bin = cx.config.layout().bin();
        let env: Vec<(String, Option<String>)> = directives
            .rerun_env
            .iter()
            .map(|n| {
                (
                    n.clone(),
                    script_var(&bin, n).map(|v| cx.roots.normalize_text(&v)),
                )
            })
            .collect();

        // What it wrote.
        let mut written = Vec::new();
        collect_outputs(&self.out_dir, &mut written)?;
        let entry = ManifestEntry::new(key.digest(), files, env, absent);
        let mut outputs = Vec::new();
        let mut sources = Vec::new();
        for path in written {
            let (digest, size, source, rewrite_paths) = generated_output(&cx.roots, &path)?;
            let executable =
                std::fs::metadata(&path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0);
            outputs.push(OutputFile {
                path: cx.roots.normalize_path(&path),
                digest,
                size,
                executable,
                rewrite_paths,
            });
            sources.push(source);
        }
        let record = cx.record(self.package.clone(), outputs, captured, &stdout, &stderr);
        Ok(Collected {
            entry: Some(entry),
            record,
            sources,
            background: false,
        })
    }
}
