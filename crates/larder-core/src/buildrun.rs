//! Build-script runs: cached like compiles.
//!
//! Running a build script (one that compiles C through the `cc` crate, as ring, zstd-sys
//! or libsqlite3-sys do) often costs more than compiling it. cargo runs the script's
//! binary directly, so larder puts itself in front of it: when it compiles or restores
//! a build script (`--crate-name build_script_build`), it moves the binary to
//! `<name>.larder-real` and writes a small `/bin/sh` shim under the original name that
//! runs `larder build-script-run <real binary>`. The shim is the only file larder adds
//! to the target directory; it is never stored (each machine writes its own).
//!
//! A run's key, in two steps like a compile's:
//!
//! | input | how | why |
//! |---|---|---|
//! | version | `larder-build-script-run-v1` | a new definition never matches old entries |
//! | the script | content digest of the real binary | the code that runs |
//! | the compiler | identity of `RUSTC` (`rustc -vV`, sysroot) | scripts probe it |
//! | environment | [`larder_key::env::is_keyed_for_build_script`]: what cargo sets for the script (`TARGET`, `PROFILE`, `OPT_LEVEL`, `CARGO_CFG_*`, `CARGO_FEATURE_*`, `OUT_DIR`, `CARGO_ENCODED_RUSTFLAGS`, ...), the C toolchain's variables, `PKG_CONFIG*`, declared variables; normalized | the script reads them |
//! | declared inputs | after a run: each `rerun-if-changed` path (a file's digest, a directory's tree digest; a missing path must stay missing) and each `rerun-if-env-changed` variable's value; without any `rerun-if-*` directive, the tree digest of the whole package (as cargo assumes) | what the script says it read |
//!
//! Outputs: every file in `OUT_DIR`, the script's stdout (its `cargo:` directives) and
//! stderr, paths normalized. A run is not cached when it fails, when an input changed
//! while it ran, when `OUT_DIR` holds a symlink or special file, or when a directive
//! names an absolute path outside the workspace, target directory, `CARGO_HOME` and
//! sysroot (`rustc-link-search=native=/usr/lib/...` from pkg-config): such a script
//! probed the system, and the system is not an input. A script that writes outside
//! `OUT_DIR` is not detected (cargo forbids it, but cannot enforce it either).

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use larder_digest::{Digest, KeyHasher};
use larder_key::paths::find_target_dir;
use larder_key::{Manifest, ManifestEntry, NotCacheable, Roots, env};
use larder_store::{ActionRecord, Namespace, OutputFile, Store, get_verified_blob};

use crate::config::Config;
use crate::exec::{exit_code, run_captured};
use crate::flight;
use crate::hashing::FileHasher;
use crate::identity;
use crate::report::warn_once;
use crate::wrapper::{Reporter, write_atomic};

/// The version of the run key's definition.
pub const RUN_KEY_VERSION: &str = "larder-build-script-run-v1";

/// The suffix of the real build-script binary beside its shim.
pub const REAL_SUFFIX: &str = ".larder-real";

/// The second line of every shim, to recognise one.
const SHIM_MARKER: &str = "# larder build-script shim";

/// Replaces the freshly compiled or restored build-script binary at `binary` by a shim
/// that runs it through larder. On failure the binary is left as it was.
///
/// # Errors
/// If the binary cannot be moved or the shim written.
pub(crate) fn install_shim(binary: &Path) -> std::io::Result<()> {
    let name = binary
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| std::io::Error::other("bad name"))?;
    let real = binary.with_file_name(format!("{name}{REAL_SUFFIX}"));
    let exe = std::env::current_exe()?;
    let exe = exe
        .to_str()
        .ok_or_else(|| std::io::Error::other("larder's path is not UTF-8"))?;
    std::fs::rename(binary, &real)?;
    let shim = format!(
        "#!/bin/sh\n{SHIM_MARKER}: larder caches the runs of {real_name}, the build script beside this file.\nexec {exe} build-script-run \"$(dirname \"$0\")\"/{real_name} \"$@\"\n",
        exe = sh_quote(exe),
        real_name = sh_quote(&format!("{name}{REAL_SUFFIX}")),
    );
    if let Err(e) = write_atomic(binary, shim.as_bytes(), true) {
        let _ = std::fs::rename(&real, binary);
        return Err(e);
    }
    Ok(())
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Runs the build script `real` with `args` through the cache and returns its exit
/// code. Called by the shim as `larder build-script-run <real> <args...>`.
pub fn run(real: PathBuf, args: Vec<OsString>) -> i32 {
    let started = Instant::now();
    let wall_start = SystemTime::now();
    crate::init_logging();
    let Ok(config) = Config::load() else {
        return exec_real(&real, &args);
    };
    let package = std::env::var("CARGO_PKG_NAME").unwrap_or_else(|_| "build-script".into());
    let reporter = Reporter {
        config: &config,
        started,
        crate_name: Some(package),
        crate_types: vec!["build-script-run".into()],
    };
    if config.disable || !config.build_script_cache {
        reporter.not_cacheable(&NotCacheable::Disabled);
        return exec_real(&real, &args);
    }
    let Some(out_dir) = std::env::var_os("OUT_DIR").map(PathBuf::from) else {
        reporter.not_cacheable(&NotCacheable::NoOutDir);
        return exec_real(&real, &args);
    };
    let store = match config.open_store_or_warn() {
        Ok(s) => s,
        Err(msg) => {
            reporter.error(&msg);
            return exec_real(&real, &args);
        }
    };
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let mut run = Run {
        config: &config,
        store: &store,
        out_dir,
        cwd,
        roots: Roots::default(),
        hasher: FileHasher::default(),
    };
    let key = match run.run_key(&real, &args) {
        Ok(k) => k,
        Err(reason) => {
            reporter.not_cacheable(&reason);
            return exec_real(&real, &args);
        }
    };
    if let Some(hit) = run.lookup(&key) {
        reporter.hit(hit.0.compile_secs, hit.1, 0, store.served_by());
        return run.replay(&hit.0);
    }
    let _flight = match flight::lead_or_reuse(store.root(), &key, || run.lookup(&key)) {
        Ok(lock) => lock,
        Err(hit) => {
            reporter.hit(hit.0.compile_secs, hit.1, 0, store.served_by());
            return run.replay(&hit.0);
        }
    };
    let captured = match run_captured(&real, &args) {
        Ok(c) => c,
        Err(_) => return exec_real(&real, &args),
    };
    let code = exit_code(captured.status);
    if !captured.status.success() {
        reporter.miss("no-entry", Some("the build script failed".into()), false);
        return code;
    }
    match run.store_result(&key, &captured, wall_start) {
        Ok(()) => reporter.miss("no-entry", None, true),
        Err(Ok(reason)) => reporter.miss("no-entry", Some(format!("not stored: {reason}")), false),
        Err(Err(msg)) => {
            warn_once(
                "store-write",
                &format!(
                    "cannot store a build-script run in {}: {msg}",
                    config.dir.display()
                ),
            );
            reporter.miss("no-entry", Some(format!("not stored: {msg}")), false);
        }
    }
    code
}

fn exec_real(real: &Path, args: &[OsString]) -> i32 {
    let e = std::process::Command::new(real).args(args).exec();
    eprintln!(
        "larder: error: cannot run build script {}: {e}",
        real.display()
    );
    127
}

struct Run<'a> {
    config: &'a Config,
    store: &'a larder_remote::Tiers,
    out_dir: PathBuf,
    cwd: PathBuf,
    roots: Roots,
    hasher: FileHasher,
}

/// Directives of a build script's stdout.
#[derive(Debug, Default, PartialEq)]
struct Directives {
    rerun_files: Vec<String>,
    rerun_env: Vec<String>,
    /// Values of other directives (link paths, env values, cfgs).
    values: Vec<String>,
}

fn parse_directives(stdout: &str) -> Directives {
    let mut d = Directives::default();
    for line in stdout.lines() {
        let Some(rest) = line
            .strip_prefix("cargo::")
            .or_else(|| line.strip_prefix("cargo:"))
        else {
            continue;
        };
        let Some((key, value)) = rest.split_once('=') else {
            continue;
        };
        match key {
            "rerun-if-changed" => d.rerun_files.push(value.to_string()),
            "rerun-if-env-changed" => d.rerun_env.push(value.to_string()),
            "warning" | "error" => {}
            _ => d.values.push(value.to_string()),
        }
    }
    d
}

/// The first absolute path in `values` that is outside every root.
fn system_path(values: &[String], roots: &Roots) -> Option<String> {
    for v in values {
        let normalized = roots.normalize_text(v);
        for token in normalized.split(|c: char| c == '=' || c == ',' || c.is_whitespace()) {
            if token.starts_with('/') {
                return Some(token.to_string());
            }
        }
    }
    None
}

impl Run<'_> {
    fn skip_in_tree(&self, path: &Path) -> bool {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        name == ".git"
            || name == "target"
            || self
                .roots
                .get("target")
                .is_some_and(|t| path.starts_with(t))
    }

    /// The digest of a file, or of a directory's tree (relative paths and contents,
    /// leaving out `.git`, `target` and the target directory).
    fn digest_of(&mut self, path: &Path) -> Option<Digest> {
        if !path.is_dir() {
            return self.hasher.digest(path);
        }
        let mut files = Vec::new();
        self.walk(path, path, &mut files).ok()?;
        files.sort();
        let mut h = KeyHasher::new();
        for (rel, file) in files {
            let d = self.hasher.digest(&file)?;
            h.field("tree-file", rel).digest_field("digest", &d);
        }
        Some(h.finish())
    }

    /// [`Run::digest_of`] for a path inside the target directory, which tree walks
    /// otherwise leave out.
    fn digest_of_under_target(&mut self, path: &Path) -> Option<Digest> {
        let saved = std::mem::take(&mut self.roots);
        let d = self.digest_of(path);
        self.roots = saved;
        d
    }

    fn walk(
        &self,
        root: &Path,
        dir: &Path,
        out: &mut Vec<(String, PathBuf)>,
    ) -> std::io::Result<()> {
        for e in std::fs::read_dir(dir)? {
            let path = e?.path();
            if self.skip_in_tree(&path) {
                continue;
            }
            if path.is_dir() {
                self.walk(root, &path, out)?;
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

    fn env_value(&self, name: &str) -> Option<String> {
        std::env::var(name)
            .ok()
            .map(|v| self.roots.normalize_text(&v))
    }

    fn run_key(&mut self, real: &Path, args: &[OsString]) -> Result<Digest, NotCacheable> {
        let tools = self.store.root().join("tools");
        let rustc = std::env::var_os("RUSTC").map(PathBuf::from);
        let compiler = rustc
            .as_deref()
            .and_then(|r| identity::compiler(r, Some(&tools)).ok());
        let mut roots = vec![("cwd", self.cwd.clone())];
        if let Some(t) = find_target_dir(&self.out_dir) {
            roots.push(("target", t));
        }
        if let Some(h) = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        {
            roots.push(("cargo-home", h));
        }
        if let Some(c) = &compiler {
            roots.push(("sysroot", c.sysroot.clone()));
        }
        if let Ok(exe) = std::env::current_exe() {
            roots.push(("larder", exe));
        }
        roots.push(("larder-bin", crate::runner::shim_dir(self.config)));
        self.roots = Roots::new(roots);

        let mut h = KeyHasher::new();
        h.field("version", RUN_KEY_VERSION);
        let script = self
            .hasher
            .digest(real)
            .ok_or_else(|| NotCacheable::UnreadableInput(real.display().to_string()))?;
        h.digest_field("script", &script);
        if let Some(c) = &compiler {
            h.digest_field("compiler", &c.digest);
        }
        // The C and C++ compilers a `cc`-crate script would run: their executables'
        // content (a compiler upgrade changes the objects in `OUT_DIR`).
        for (real_var, var, default) in [
            ("LARDER_REAL_CC", "CC", "cc"),
            ("LARDER_REAL_CXX", "CXX", "c++"),
        ] {
            let value = std::env::var(real_var)
                .or_else(|_| std::env::var(var))
                .unwrap_or_else(|_| default.to_string());
            let program = value.split_whitespace().next().unwrap_or(default);
            if let Ok(d) = identity::linker(Path::new(program), Some(&tools)) {
                h.field("c-compiler", var)
                    .digest_field("c-compiler-digest", &d);
            }
        }
        for a in args {
            let a = a
                .to_str()
                .ok_or_else(|| NotCacheable::NonUtf8("argument".into()))?;
            h.field("arg", self.roots.normalize_text(a));
        }
        let mut vars: Vec<(String, String)> = Vec::new();
        for (name, value) in std::env::vars_os() {
            let Some(name) = name.to_str() else { continue };
            if env::is_keyed_for_build_script(name, &self.config.extra_env) {
                let value = value
                    .into_string()
                    .map_err(|_| NotCacheable::NonUtf8(format!("value of {name}")))?;
                vars.push((name.to_string(), self.roots.normalize_text(&value)));
            }
        }
        vars.sort();
        for (k, v) in &vars {
            h.field("env-name", k).field("env-value", v);
        }
        // `DEP_<links>_<key>` values often name a dependency's `OUT_DIR` (headers, a
        // built library): its content is an input, as cargo reruns the script when a
        // dependency's run changes.
        let target = self.roots.get("target").map(PathBuf::from);
        for (k, v) in &vars {
            let Some(target) = &target else { break };
            if !k.starts_with("DEP_") {
                continue;
            }
            for piece in self.roots.denormalize_text(v).split(':') {
                let path = Path::new(piece);
                if path.is_absolute() && path.starts_with(target) && path.exists() {
                    let d = self
                        .digest_of_under_target(path)
                        .ok_or_else(|| NotCacheable::UnreadableInput(piece.to_string()))?;
                    h.field("dep-path", self.roots.normalize_text(piece))
                        .digest_field("dep-digest", &d);
                }
            }
        }
        Ok(h.finish())
    }

    /// Each tier's manifest in turn, the local one first; an entry restored from a
    /// remote's manifest is added to the faster tiers' manifests.
    fn lookup(&mut self, key: &Digest) -> Option<(ActionRecord, u64)> {
        for tier in 0..=self.store.remote_count() {
            let bytes = if tier == 0 {
                self.store
                    .local()
                    .get(Namespace::Manifest, key)
                    .ok()
                    .flatten()
            } else {
                self.store
                    .get_from_remote(tier - 1, Namespace::Manifest, key)
            };
            let Some((hit, entry)) = bytes.and_then(|b| self.lookup_in(&b)) else {
                continue;
            };
            if tier > 0 {
                // Failing to keep the entry costs a later lookup, not this hit.
                let _ = self
                    .store
                    .update_faster(tier - 1, Namespace::Manifest, key, &|c| {
                        crate::storejob::manifest_with(&entry, c)
                    });
            }
            return Some(hit);
        }
        None
    }

    /// The first entry of the manifest `bytes` whose inputs match and whose outputs
    /// restore, with that entry.
    fn lookup_in(&mut self, bytes: &[u8]) -> Option<((ActionRecord, u64), ManifestEntry)> {
        let manifest: Manifest = serde_json::from_slice(bytes).ok()?;
        for entry in &manifest.entries {
            let roots = self.roots.clone();
            let cwd = self.cwd.clone();
            let mut digests = Vec::new();
            for (p, _) in &entry.files {
                digests.push(self.digest_of(&cwd.join(roots.denormalize_path(p))));
            }
            let mut it = digests.into_iter();
            let matched =
                entry.matches(&roots, |_| it.next().flatten(), |n| self.env_value(n), &cwd);
            if matched.is_err() {
                continue;
            }
            if let Ok(r) = self.restore(&entry.key) {
                return Some((r, entry.clone()));
            }
        }
        None
    }

    fn restore(&mut self, key: &Digest) -> Result<(ActionRecord, u64), String> {
        let bytes = self
            .store
            .get(Namespace::Action, key)
            .map_err(|e| e.to_string())?
            .ok_or("no record")?;
        let record: ActionRecord = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        let mut files = Vec::new();
        for o in &record.outputs {
            let dest = self.roots.denormalize_path(&o.path);
            if self.roots.has_unknown_placeholder(&o.path) || !dest.starts_with(&self.out_dir) {
                return Err(format!("{} is not in this OUT_DIR", o.path));
            }
            let blob = get_verified_blob(self.store, &o.digest, o.size)
                .map_err(|e| e.to_string())?
                .ok_or("blob missing")?;
            files.push((dest, blob, o.executable));
        }
        let mut total = 0;
        for (dest, blob, executable) in &files {
            write_atomic(dest, blob, *executable).map_err(|e| e.to_string())?;
            total += blob.len() as u64;
        }
        Ok((record, total))
    }

    fn replay(&self, record: &ActionRecord) -> i32 {
        let _ = std::io::stdout().write_all(self.roots.denormalize_text(&record.stdout).as_bytes());
        let _ = std::io::stderr().write_all(self.roots.denormalize_text(&record.stderr).as_bytes());
        0
    }

    /// Stores a successful run. `Err(Ok(reason))`: not cacheable; `Err(Err(msg))`: the
    /// store failed.
    fn store_result(
        &mut self,
        key: &Digest,
        captured: &crate::exec::Captured,
        wall_start: SystemTime,
    ) -> Result<(), Result<NotCacheable, String>> {
        let stdout = String::from_utf8(captured.stdout.clone())
            .map_err(|_| Ok(NotCacheable::BinaryOutput("stdout".into())))?;
        let stderr = String::from_utf8_lossy(&captured.stderr).into_owned();
        let directives = parse_directives(&stdout);
        if let Some(p) = system_path(&directives.values, &self.roots) {
            return Err(Ok(NotCacheable::SystemPath(p)));
        }

        // What the run read.
        let declared = !directives.rerun_files.is_empty() || !directives.rerun_env.is_empty();
        let inputs: Vec<String> = if declared {
            directives.rerun_files.clone()
        } else {
            vec![".".to_string()]
        };
        let mut files = Vec::new();
        let mut absent = Vec::new();
        for f in &inputs {
            let path = self.cwd.join(f);
            let norm = self.roots.normalize_text(&path.to_string_lossy());
            if !path.exists() {
                absent.push(norm);
                continue;
            }
            if modified_since(&path, wall_start, self) {
                return Err(Ok(NotCacheable::InputModifiedDuringCompile(f.clone())));
            }
            let d = self
                .digest_of(&path)
                .ok_or_else(|| Ok(NotCacheable::UnreadableInput(f.clone())))?;
            files.push((norm, d));
        }
        let env: Vec<(String, Option<String>)> = directives
            .rerun_env
            .iter()
            .map(|n| (n.clone(), self.env_value(n)))
            .collect();
        let entry = ManifestEntry::new(key, files, env, absent);

        // What it wrote.
        let mut written = Vec::new();
        collect_outputs(&self.out_dir, &mut written).map_err(Ok)?;
        let mut outputs = Vec::new();
        for path in written {
            let data = std::fs::read(&path).map_err(|e| Err(e.to_string()))?;
            let executable =
                std::fs::metadata(&path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0);
            let digest = Digest::of(&data);
            self.store
                .put(Namespace::Cas, &digest, &data)
                .map_err(|e| Err(e.to_string()))?;
            outputs.push(OutputFile {
                path: self.roots.normalize_path(&path),
                digest,
                size: data.len() as u64,
                executable,
                rewrite_paths: false,
            });
        }
        let record = ActionRecord {
            crate_name: std::env::var("CARGO_PKG_NAME").unwrap_or_default(),
            outputs,
            stdout: self.roots.normalize_text(&stdout),
            stderr: self.roots.normalize_text(&stderr),
            compile_secs: captured.elapsed.as_secs_f64(),
            exit_code: 0,
            link_deps: Vec::new(),
        };
        let json = serde_json::to_vec(&record).map_err(|e| Err(e.to_string()))?;
        self.store
            .put(Namespace::Action, &entry.key, &json)
            .map_err(|e| Err(e.to_string()))?;
        let mut manifest: Manifest = match self.store.get(Namespace::Manifest, key) {
            Ok(Some(b)) => serde_json::from_slice(&b).unwrap_or_default(),
            _ => Manifest::default(),
        };
        manifest.insert(entry);
        let json = serde_json::to_vec(&manifest).map_err(|e| Err(e.to_string()))?;
        self.store
            .put(Namespace::Manifest, key, &json)
            .map_err(|e| Err(e.to_string()))?;
        Ok(())
    }
}

/// Whether `path` (a file, or any file in a directory tree) changed since `since`.
fn modified_since(path: &Path, since: SystemTime, run: &Run<'_>) -> bool {
    if path.is_dir() {
        let mut files = Vec::new();
        if run.walk(path, path, &mut files).is_err() {
            return true;
        }
        return files.iter().any(|(_, f)| modified_since(f, since, run));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_old_and_new_syntax() {
        let d = parse_directives(
            "cargo:rerun-if-changed=build.rs\ncargo::rerun-if-env-changed=CC\ncargo:rustc-cfg=has_x\ncargo:warning=/not/a/probe\nplain output\n",
        );
        assert_eq!(d.rerun_files, vec!["build.rs"]);
        assert_eq!(d.rerun_env, vec!["CC"]);
        assert_eq!(d.values, vec!["has_x"]);
    }

    #[test]
    fn system_paths_are_found_outside_roots_only() {
        let roots = Roots::new([("target", PathBuf::from("/w/target"))]);
        let inside = vec!["native=/w/target/debug/build/x/out".to_string()];
        assert_eq!(system_path(&inside, &roots), None);
        let outside = vec!["native=/usr/lib/x86_64-linux-gnu".to_string()];
        assert_eq!(
            system_path(&outside, &roots).as_deref(),
            Some("/usr/lib/x86_64-linux-gnu")
        );
    }

    #[test]
    fn shim_runs_the_real_binary_name() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("build_script_build-abc");
        std::fs::write(&bin, b"\x7fELF real").unwrap();
        install_shim(&bin).unwrap();
        let shim = std::fs::read_to_string(&bin).unwrap();
        assert!(shim.starts_with("#!/bin/sh\n"));
        assert!(shim.contains(SHIM_MARKER));
        assert!(shim.contains("build-script-run"));
        assert!(shim.contains("'build_script_build-abc.larder-real'"));
        assert_eq!(
            std::fs::read(dir.path().join("build_script_build-abc.larder-real")).unwrap(),
            b"\x7fELF real"
        );
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
    }
}
