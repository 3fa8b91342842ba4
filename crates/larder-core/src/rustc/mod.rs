//! rustc invocations as a [`CachedAction`]: what `larder <rustc> <args...>` caches.
//!
//! - **Parse** the invocation ([`larder_key::Invocation::parse`]); an invocation that
//!   cannot be cached (probes, `--print`, unknown emit kinds...) runs rustc as it is.
//! - **Key**, two steps: the invocation key ([`larder_key::KeyInputs`]: compiler
//!   identity, normalized arguments and environment, externs, the transitive link
//!   closure of linked outputs ([`linkage`]), native libraries, the linker, files named
//!   by arguments), whose manifest lists entries by the content of the files and
//!   variables dep-info names; an entry's result key leads to the action record.
//! - **Restore**: only outputs this invocation would write; dep-info is rewritten to
//!   this build's paths; rustc's stdout and stderr (diagnostics and artifact
//!   notifications) are replayed. No rustc process runs on a hit.
//! - **Collect** after a compile: dep-info gives the files and variables read; the
//!   expected outputs are stored, in a background process. A failed compile is stored
//!   (its messages and exit code, no outputs) only when its errors are deterministic
//!   ([`failure`]); a hit on it replays the messages and exits with 1.
//! - After a build script's binary is compiled or restored, the build-script run cache
//!   is put in front of it ([`crate::buildrun`]).

pub mod failure;
pub mod linkage;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use larder_digest::Digest;
use larder_key::depinfo::DepInfo;
use larder_key::key::{alternate_module_file, normalized_args};
use larder_key::paths::find_target_dir;
use larder_key::{CrateType, Invocation, KeyInputs, ManifestEntry, NotCacheable, Roots, env};
use larder_store::{ActionRecord, OutputFile};

use crate::action::{
    self, ActionError, BlobSource, CachedAction, Collected, Ctx, Key, Stop, Tool, Unit, UnitKind,
};
use crate::config::Config;
use crate::exec::Captured;
use crate::identity;
use crate::report::warn_once;
use linkage::{link_closure, link_name, native_libraries};

/// Runs the wrapper for `rustc args...` and returns the exit code.
pub fn run(rustc: PathBuf, args: Vec<std::ffi::OsString>) -> i32 {
    action::run::<RustcAction>(Tool {
        program: rustc,
        args,
    })
}

/// A rustc invocation being cached.
pub struct RustcAction {
    inv: Invocation,
    expected: Vec<PathBuf>,
    /// What the invocation key was made of, and the compiler's name for people.
    key_inputs: Option<(KeyInputs, String)>,
}

impl RustcAction {
    fn digest(cx: &mut Ctx<'_>, path: &Path) -> Result<Digest, NotCacheable> {
        cx.hasher
            .digest(path)
            .ok_or_else(|| NotCacheable::UnreadableInput(path.display().to_string()))
    }
}

/// `args` without `-C incremental=DIR` (`-Cincremental=DIR`, `--codegen incremental=DIR`,
/// `--codegen=incremental=DIR`).
fn without_incremental(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let mut out = Vec::with_capacity(args.len());
    let mut it = args.into_iter().peekable();
    while let Some(a) = it.next() {
        let text = a.to_str().unwrap_or_default();
        if matches!(text, "-C" | "--codegen")
            && it
                .peek()
                .and_then(|v| v.to_str())
                .is_some_and(|v| v.starts_with("incremental="))
        {
            it.next();
            continue;
        }
        if ["-Cincremental=", "--codegen=incremental="]
            .iter()
            .any(|p| text.starts_with(p))
        {
            continue;
        }
        out.push(a);
    }
    out
}

/// `--crate-name` of raw arguments (`None` for `___`, cargo's probe name).
fn crate_name_arg(args: &[std::ffi::OsString]) -> Option<String> {
    let mut iter = args.iter().filter_map(|a| a.to_str());
    while let Some(a) = iter.next() {
        let name = match a.strip_prefix("--crate-name") {
            Some("") => iter.next()?,
            Some(rest) => match rest.strip_prefix('=') {
                Some(v) => v,
                None => continue,
            },
            None => continue,
        };
        return (name != "___").then(|| name.to_string());
    }
    None
}

impl CachedAction for RustcAction {
    type Reason = NotCacheable;

    fn unit_of(tool: &Tool) -> Unit {
        Unit {
            name: crate_name_arg(&tool.args),
            kind: UnitKind::Rustc,
        }
    }

    /// Drops `-C incremental` where the configuration says so ([`crate::config::incremental`]).
    fn prepare(config: &Config, tool: &mut Tool) {
        if !config.incremental.keep {
            tool.args = without_incremental(std::mem::take(&mut tool.args));
        }
    }

    fn parse(config: &Config, tool: &Tool) -> Result<Self, NotCacheable> {
        if config.disable {
            return Err(NotCacheable::Disabled);
        }
        let args = tool
            .utf8_args()
            .ok_or_else(|| NotCacheable::NonUtf8("argument".into()))?;
        if let Some(first) = args.first()
            && !first.starts_with('-')
            && !first.ends_with(".rs")
            && Path::new(first).is_file()
            && std::fs::metadata(first).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
        {
            return Err(NotCacheable::NestedWrapper);
        }
        let cwd = std::env::current_dir()
            .map_err(|e| NotCacheable::UnreadableInput(format!("working directory: {e}")))?;
        let inv = Invocation::parse(tool.program.clone(), args, cwd)?;
        let mut expected = inv.expected_outputs();
        expected.sort();
        Ok(RustcAction {
            inv,
            expected,
            key_inputs: None,
        })
    }

    /// Any unit whose outputs are where cargo puts them; seedable if it is a library,
    /// proc macro or build script of a registry or git package, compiled without
    /// incremental state.
    fn fingerprint_dir(&self) -> Option<(PathBuf, bool)> {
        let inv = &self.inv;
        let package = crate::config::env::var("CARGO_PKG_NAME")?;
        let hash = inv.extra_filename.strip_prefix('-')?;
        let build_script = inv.is_build_script();
        let profile = if build_script {
            // `<profile>/build/<package>-<hash>/`
            let dir = inv.out_dir.as_path();
            (dir.file_name()? == format!("{package}-{hash}").as_str())
                .then(|| dir.parent()?.parent())??
        } else if inv.out_dir.file_name()? == "deps" {
            inv.out_dir.parent()?
        } else {
            return None;
        };
        let seedable = crate::config::env::var_os("CARGO_MANIFEST_DIR")
            .is_some_and(|d| crate::roots::is_immutable_package(Path::new(&d)))
            && inv.incremental.is_none()
            && (build_script || !inv.crate_types.contains(&CrateType::Bin));
        Some((
            crate::seed::fingerprint_dir(profile, &package, hash),
            seedable,
        ))
    }

    fn unit(&self) -> Unit {
        Unit {
            name: Some(self.inv.crate_name.clone()),
            kind: UnitKind::Crate(self.inv.crate_types.clone()),
        }
    }

    fn cwd(&self) -> &Path {
        &self.inv.cwd
    }

    fn key(&mut self, cx: &mut Ctx<'_>) -> Result<Key, Stop<NotCacheable>> {
        let inv = &self.inv;
        let tools = cx.tools_dir();
        let compiler = identity::compiler(&inv.rustc, inv.target.as_deref(), Some(&tools))
            .map_err(ActionError::identity("compiler", &inv.rustc))?;
        let mut roots = vec![
            ("cwd", inv.cwd.clone()),
            ("sysroot", compiler.sysroot.clone()),
        ];
        if let Some(t) = find_target_dir(&inv.out_dir) {
            roots.push(("target", t));
        }
        if let Some(h) = crate::roots::cargo_home() {
            roots.push(("cargo-home", h));
        }
        cx.set_roots(Roots::new(roots));

        let mut key = KeyInputs {
            compiler: Some(compiler.digest),
            args: normalized_args(inv, &cx.roots),
            ..KeyInputs::default()
        };
        for (name, _) in crate::config::env::vars_os() {
            let Some(name) = name.to_str() else { continue };
            if env::is_keyed(name, &cx.config.extra_env) {
                let value = crate::action::env_dep_value(name)
                    .map_err(|_| NotCacheable::NonUtf8(format!("value of {name}")))?
                    .map(|v| cx.roots.normalize_text(&v))
                    .unwrap_or_default();
                key.env.push((name.to_string(), value));
            }
        }
        key.env.sort();
        for e in &inv.externs {
            if let Some(p) = &e.path {
                let d = Self::digest(cx, p)?;
                key.libraries.push((
                    format!("extern:{}={}", e.name, cx.roots.normalize_path(p)),
                    d,
                ));
            }
        }
        if inv.is_linked() {
            key.libraries
                .extend(link_closure(inv, cx.store, &mut cx.hasher)?);
            let linker = inv.linker.clone().unwrap_or_else(|| "cc".to_string());
            key.linker = Some(
                identity::link_tools(Path::new(&linker), &inv.link_args, Some(&tools))
                    .map_err(ActionError::identity("linker", Path::new(&linker)))?,
            );
        }
        if inv.emits.contains(&larder_key::Emit::Link) {
            key.libraries
                .extend(native_libraries(inv, &cx.roots, &mut cx.hasher)?);
        }
        if crate::host::rustc_wants_native(&inv.args) {
            let cpu = crate::host::native_cpu()
                .ok_or_else(|| NotCacheable::UnreadableInput("/proc/cpuinfo".into()))?;
            key.files.push(("host-cpu:native".into(), cpu));
        }
        for f in &inv.arg_files {
            let d = Self::digest(cx, f)?;
            key.files
                .push((format!("arg-file:{}", cx.roots.normalize_path(f)), d));
        }
        for f in &cx.config.extra_files {
            let p = inv.cwd.join(f);
            let d = cx
                .hasher
                .digest(&p)
                .unwrap_or_else(|| Digest::of(b"larder:absent-file"));
            key.files
                .push((format!("extra-file:{}", cx.roots.normalize_path(&p)), d));
        }
        let digest = key.invocation_key();
        self.key_inputs = Some((key, compiler.release));
        Ok(Key::Manifest(digest))
    }

    fn inputs(&mut self, _cx: &mut Ctx<'_>) -> Vec<larder_key::Input> {
        self.key_inputs
            .as_ref()
            .map(|(k, release)| k.inputs(release))
            .unwrap_or_default()
    }

    fn destination(&self, cx: &Ctx<'_>, output: &OutputFile) -> Result<PathBuf, String> {
        let dest = self.inv.cwd.join(cx.roots.denormalize_path(&output.path));
        if self.expected.binary_search(&dest).is_err() {
            return Err(format!(
                "output {} is not an output of this invocation",
                dest.display()
            ));
        }
        Ok(dest)
    }

    /// rustc's arguments name its outputs, and they are in the key.
    fn misfit_is_wrong(&self) -> bool {
        true
    }

    fn replayable(&self) -> bool {
        true
    }

    fn check_record(&self, record: &ActionRecord, destinations: &[PathBuf]) -> Result<(), String> {
        if record.exit_code == 0 && destinations.len() != self.expected.len() {
            return Err(format!(
                "record has {} outputs, this invocation {}",
                destinations.len(),
                self.expected.len()
            ));
        }
        Ok(())
    }

    /// Remembers the restored files' digests (a later link in this process hashes
    /// them) and keeps each rlib's link record: one that is missing, corrupt or lists
    /// other dependencies is rewritten from the action record.
    fn restored(
        &mut self,
        cx: &mut Ctx<'_>,
        record: &ActionRecord,
        files: &[(PathBuf, Digest, u64)],
    ) {
        for (dest, digest, size) in files {
            cx.hasher.remember(dest, *digest, *size);
            if dest.extension().is_some_and(|x| x == "rlib") {
                crate::action::storejob::keep_link_record(cx.store, digest, &record.link_deps);
            }
        }
    }

    fn cache_failure(&self, captured: &Captured) -> bool {
        crate::exec::exit_code(captured.status) == 1
            && !self.inv.is_linked()
            && failure::is_deterministic_failure(&String::from_utf8_lossy(&captured.stderr))
    }

    fn failure_detail(&self) -> String {
        NotCacheable::CompileFailed.to_string()
    }

    fn collect(
        &mut self,
        cx: &mut Ctx<'_>,
        key: &Key,
        captured: &Captured,
        wall_start: SystemTime,
    ) -> Result<Collected, Stop<NotCacheable>> {
        let inv = &self.inv;
        let failed = !captured.status.success();
        let dep_info_path = inv.dep_info_path().ok_or(NotCacheable::NoDepInfo)?;
        // A failed compile's dep-info must be its own, not one left by an earlier run.
        let fresh = std::fs::metadata(&dep_info_path)
            .and_then(|m| m.modified())
            .is_ok_and(|m| m >= wall_start);
        if failed && !fresh {
            return Err(NotCacheable::NoDepInfo.into());
        }
        let dep_text = std::fs::read_to_string(&dep_info_path)
            .map_err(|_| NotCacheable::UnreadableInput(dep_info_path.display().to_string()))?;
        let info = DepInfo::parse(&dep_text);

        // What the compile read. Hashes memoized before the compile are valid: a file
        // modified since this wrapper started is rejected by its modification time.
        let mut files = Vec::with_capacity(info.files.len());
        let mut absent = Vec::new();
        for f in &info.files {
            let path = inv.cwd.join(f);
            let meta =
                std::fs::metadata(&path).map_err(|_| NotCacheable::UnreadableInput(f.clone()))?;
            if meta.modified().map_or(true, |m| m >= wall_start) {
                return Err(NotCacheable::InputModifiedDuringCompile(f.clone()).into());
            }
            let d = Self::digest(cx, &path)?;
            files.push((cx.roots.normalize_text(f), d));
            if let Some(alt) = alternate_module_file(f)
                && !inv.cwd.join(&alt).exists()
            {
                absent.push(cx.roots.normalize_text(&alt));
            }
        }
        let read: Vec<PathBuf> = info.files.iter().map(|f| inv.cwd.join(f)).collect();
        let mut env_deps = Vec::with_capacity(info.env.len());
        for name in &info.env {
            let value = crate::action::env_dep_value(name)
                .map_err(|_| NotCacheable::NonUtf8(format!("value of {name}")))?
                .map(|v| larder_key::key::env_dep_value(name, &v, &read, &cx.roots));
            env_deps.push((name.clone(), value));
        }
        let entry = ManifestEntry::new(key.digest(), files, env_deps, absent);

        // What it wrote (nothing is kept of a failed compile but its messages).
        let expected = if failed {
            Vec::new()
        } else {
            inv.expected_outputs()
        };
        let stderr = String::from_utf8(captured.stderr.clone())
            .map_err(|_| NotCacheable::BinaryOutput("stderr".into()))?;
        let stdout = String::from_utf8(captured.stdout.clone())
            .map_err(|_| NotCacheable::BinaryOutput("stdout".into()))?;
        for line in stderr
            .lines()
            .filter(|l| !failed && l.starts_with('{') && l.contains("\"artifact\""))
        {
            let artifact = serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| {
                    v.get("artifact")
                        .and_then(|a| a.as_str())
                        .map(|a| inv.cwd.join(a))
                });
            if let Some(a) = artifact
                && !expected.contains(&a)
            {
                return Err(NotCacheable::UnexpectedOutputs(format!(
                    "rustc wrote {}",
                    a.display()
                ))
                .into());
            }
        }
        let mut outputs = Vec::with_capacity(expected.len());
        let mut sources = Vec::with_capacity(expected.len());
        for path in &expected {
            let not_written =
                |_| NotCacheable::UnexpectedOutputs(format!("{} was not written", path.display()));
            let executable =
                std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0);
            let rewrite_paths = path == &dep_info_path;
            let (digest, size, source) = if rewrite_paths {
                let data = std::fs::read(path).map_err(not_written)?;
                let text = String::from_utf8(data)
                    .map_err(|_| NotCacheable::BinaryOutput(path.display().to_string()))?;
                let text = cx.roots.normalize_text(&text);
                (
                    Digest::of(text.as_bytes()),
                    text.len() as u64,
                    BlobSource::Inline(text),
                )
            } else {
                // rustc writes a library (an archive, metadata) to a temporary file and
                // renames it into place; a linker's output is another program's, and
                // people strip and patch executables in place (GNU strip writes into a
                // file with several links, as cargo's uplifted binaries have).
                let replaced = crate::fsio::only_replaced(path);
                // Hashed as it is read: a binary of hundreds of MiB is never held whole.
                // For an uncompressed local store and no remote to write, with its
                // check in the same pass: the store job then takes the file without
                // reading it again (a remote needs its bytes read anyway).
                let file = std::fs::File::open(path).map_err(not_written)?;
                let unread = cx.config.compression_level == 0
                    && cx.config.remotes.iter().all(|r| r.read_only);
                let (digest, size, hashed) = if unread {
                    larder_store::check::Hashed::file(&file).map_err(not_written)?
                } else {
                    let (digest, size) = Digest::of_reader(&file).map_err(not_written)?;
                    (digest, size, None)
                };
                (
                    digest,
                    size,
                    if replaced {
                        BlobSource::Replaced(path.clone(), hashed)
                    } else {
                        BlobSource::File(path.clone(), hashed)
                    },
                )
            };
            sources.push(source);
            outputs.push(OutputFile {
                path: cx.roots.normalize_path(path),
                digest,
                size,
                executable,
                rewrite_paths,
            });
        }
        let link_deps: Vec<String> = inv
            .externs
            .iter()
            .filter_map(|e| e.path.as_deref().and_then(link_name))
            .collect();
        let record = ActionRecord {
            link_deps,
            ..cx.record(inv.crate_name.clone(), outputs, captured, &stdout, &stderr)
        };
        // The next compile that links an rlib needs its link record at once.
        action::storejob::put_link_records(cx.store, &record).map_err(ActionError::from)?;
        // Off cargo's critical path, except a build script's binary: it is replaced by
        // its shim as soon as this returns (build scripts are small and few).
        let shimmed = cx.config.build_script_cache && self.inv.is_build_script();
        let background = !failed && !shimmed;
        Ok(Collected {
            entry: Some(entry),
            record,
            sources,
            background,
        })
    }

    /// After a build script's binary is compiled or restored, puts the run cache in
    /// front of it.
    fn finish(&self, cx: &Ctx<'_>, code: i32) {
        if code != 0 || !(cx.config.build_script_cache && self.inv.is_build_script()) {
            return;
        }
        let inv = &self.inv;
        let binary = inv
            .out_dir
            .join(CrateType::Bin.file_name(&inv.crate_name, &inv.extra_filename));
        if let Err(e) = crate::buildrun::install_shim(&binary) {
            warn_once(
                "shim",
                &format!("cannot cache the runs of {}: {e}", binary.display()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_incremental_is_dropped_and_nothing_else() {
        let args = |s: &str| -> Vec<std::ffi::OsString> { s.split(' ').map(Into::into).collect() };
        let kept = "--crate-name a src/lib.rs -C opt-level=0 --out-dir /t";
        for with in [
            "-C incremental=/t/inc",
            "-Cincremental=/t/inc",
            "--codegen incremental=/t/inc",
            "--codegen=incremental=/t/inc",
        ] {
            assert_eq!(
                without_incremental(args(&format!("{kept} {with} -C debuginfo=2"))),
                args(&format!("{kept} -C debuginfo=2")),
                "{with}"
            );
        }
        assert_eq!(without_incremental(args(kept)), args(kept));
    }
}
