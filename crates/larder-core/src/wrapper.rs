//! The rustc wrapper: what `larder <rustc> <args...>` does.
//!
//! 1. Parse the invocation; if it cannot be cached, replace this process with rustc.
//! 2. Compute the invocation key ([`larder_key::KeyInputs`]): compiler identity,
//!    normalized arguments and environment, externs, the transitive link closure of
//!    linked outputs, native libraries, the linker, files named by arguments.
//! 3. Read the manifest stored under it; for each entry, re-hash the files it lists.
//!    The first entry that matches gives the result key, whose action record lists the
//!    outputs. Fetch every blob, verify it against its digest, then write the outputs
//!    (dep-info rewritten to this build's paths) and replay rustc's stdout and stderr
//!    (diagnostics and artifact notifications, with this build's paths). No rustc
//!    process runs on a hit.
//! 4. Otherwise run rustc, streaming its output, and store what it produced: blobs,
//!    the action record, the manifest entry, link records. A failed compile is stored
//!    (its messages and exit code, no outputs) only when its errors are deterministic
//!    ([`crate::failure`]); a hit on it replays the messages and exits with 1.
//!
//! Any failure of larder itself (store unreadable, full disk, corrupt entry) falls back
//! to a plain compile with a warning; the build succeeds or fails as it would without
//! larder.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use larder_digest::Digest;
use larder_key::depinfo::DepInfo;
use larder_key::key::{alternate_module_file, normalized_args};
use larder_key::paths::find_target_dir;
use larder_key::{
    CrateType, Invocation, KeyInputs, Manifest, ManifestEntry, Mismatch, NotCacheable, Roots, env,
};
use larder_store::{ActionRecord, LinkRecord, Namespace, OutputFile, Store, get_verified_blob};

use crate::config::Config;
use crate::exec::{Captured, exec_passthrough, exit_code, run_captured};
use crate::failure;
use crate::flight::{self, FlightLock};
use crate::hashing::FileHasher;
use crate::identity;
use crate::linkage::{link_closure, link_name, native_libraries};
use crate::report::{Event, record, warn_once};
use crate::storejob::{self, BlobSource, StoreJob};

/// Runs the wrapper for `rustc args...` and returns the exit code.
pub fn run(rustc: PathBuf, args: Vec<OsString>) -> i32 {
    let started = Instant::now();
    let wall_start = SystemTime::now();
    crate::init_logging();
    let config = match Config::load() {
        Ok(c) => c,
        Err(e) => {
            // cargo hides the stderr of its probes (`rustc -vV`, `--print`): warn on a
            // compile, where the one warning of the build is seen.
            if crate_name_arg(&args).is_some() {
                warn_once("config", &format!("{e}; caching is off"));
            }
            return passthrough(&rustc, &args);
        }
    };
    let reporter = Reporter {
        config: &config,
        started,
        crate_name: crate_name_arg(&args),
        crate_types: Vec::new(),
    };

    let parsed = parse(&config, &rustc, &args);
    let inv = match parsed {
        Ok(inv) => inv,
        Err(reason) => {
            reporter.not_cacheable(&reason);
            return passthrough(&rustc, &args);
        }
    };
    let reporter = Reporter {
        crate_types: inv
            .crate_types
            .iter()
            .map(|t| crate_type_name(*t).to_string())
            .collect(),
        ..reporter
    };

    let store = match config.open_store_or_warn() {
        Ok(s) => s,
        Err(msg) => {
            reporter.error(&msg);
            return passthrough(&rustc, &args);
        }
    };
    let mut session = Session {
        inv: &inv,
        config: &config,
        store: &store,
        hasher: FileHasher::default(),
        roots: Roots::default(),
        used_entry: None,
    };

    let invocation_key = match session.invocation_key() {
        Ok(k) => k,
        Err(Stop::NotCacheable(reason)) => {
            reporter.not_cacheable(&reason);
            return passthrough(&rustc, &args);
        }
        Err(Stop::Error(msg)) => {
            warn_once(
                &format!("key:{msg}"),
                &format!("{msg}; compiling without cache"),
            );
            reporter.error(&msg);
            return passthrough(&rustc, &args);
        }
    };

    let miss = match session.lookup(&invocation_key) {
        Lookup::Hit {
            record,
            bytes,
            cloned,
        } => {
            session.replay(&record);
            reporter.hit(record.compile_secs, bytes, cloned, store.served_by());
            shim_build_script(&config, &inv);
            return record.exit_code;
        }
        Lookup::Miss { reason, detail } => (reason, detail),
    };

    // Single flight: if another process is compiling this key, wait for it and look
    // again. The lock is held until this compile is stored.
    let relookup = || match session.lookup(&invocation_key) {
        Lookup::Hit {
            record,
            bytes,
            cloned,
        } => Some((record, bytes, cloned)),
        Lookup::Miss { .. } => None,
    };
    let _flight = match flight::lead_or_reuse(store.root(), &invocation_key, relookup) {
        Ok(lock) => lock,
        Err((record, bytes, cloned)) => {
            session.replay(&record);
            reporter.hit(record.compile_secs, bytes, cloned, store.served_by());
            shim_build_script(&config, &inv);
            return record.exit_code;
        }
    };

    let captured = match run_captured(&rustc, &args) {
        Ok(c) => c,
        Err(e) => {
            warn_once("spawn", &format!("cannot run {}: {e}", rustc.display()));
            return passthrough(&rustc, &args);
        }
    };
    let code = exit_code(captured.status);
    let failed = !captured.status.success();
    if failed
        && !(code == 1
            && !inv.is_linked()
            && failure::is_deterministic_failure(&String::from_utf8_lossy(&captured.stderr)))
    {
        reporter.miss(miss.0, Some(NotCacheable::CompileFailed.to_string()), false);
        return code;
    }
    match session.store_result(
        &invocation_key,
        &captured,
        wall_start,
        failed,
        _flight.as_ref(),
    ) {
        Ok(()) => reporter.miss(miss.0, miss.1, true),
        Err(Stop::NotCacheable(reason)) => {
            reporter.miss(miss.0, Some(format!("not stored: {reason}")), false)
        }
        Err(Stop::Error(msg)) => {
            warn_once(
                "store-write",
                &format!("cannot store the result in {}: {msg}", config.dir.display()),
            );
            reporter.miss(miss.0, Some(format!("not stored: {msg}")), false);
        }
    }
    if code == 0 {
        shim_build_script(&config, &inv);
    }
    code
}

/// Whether `inv` compiles a build script's binary.
fn is_build_script(inv: &Invocation) -> bool {
    inv.crate_name == "build_script_build"
        && inv.crate_types == [CrateType::Bin]
        && inv.emits.contains(&larder_key::Emit::Link)
}

/// After a build script's binary is compiled or restored, puts the run cache in front
/// of it ([`crate::buildrun`]).
fn shim_build_script(config: &Config, inv: &Invocation) {
    if !(config.build_script_cache && is_build_script(inv)) {
        return;
    }
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

fn parse(config: &Config, rustc: &Path, args: &[OsString]) -> Result<Invocation, NotCacheable> {
    if config.disable {
        return Err(NotCacheable::Disabled);
    }
    let args: Vec<String> = args
        .iter()
        .map(|a| a.to_str().map(str::to_string))
        .collect::<Option<_>>()
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
    Invocation::parse(rustc.to_path_buf(), args, cwd)
}

fn passthrough(rustc: &Path, args: &[OsString]) -> i32 {
    let e = exec_passthrough(rustc, args);
    eprintln!("larder: error: cannot run {}: {e}", rustc.display());
    127
}

fn crate_name_arg(args: &[OsString]) -> Option<String> {
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

fn crate_type_name(t: CrateType) -> &'static str {
    match t {
        CrateType::Bin => "bin",
        CrateType::Rlib => "lib",
        CrateType::Dylib => "dylib",
        CrateType::Cdylib => "cdylib",
        CrateType::Staticlib => "staticlib",
        CrateType::ProcMacro => "proc-macro",
    }
}

/// Writes the invocation's [`Event`].
pub(crate) struct Reporter<'a> {
    pub(crate) config: &'a Config,
    pub(crate) started: Instant,
    pub(crate) crate_name: Option<String>,
    pub(crate) crate_types: Vec<String>,
}

impl Reporter<'_> {
    fn emit(
        &self,
        outcome: &str,
        reason: Option<String>,
        detail: Option<String>,
        stored: bool,
        hit: crate::report::Restored,
    ) {
        let secs = self.started.elapsed().as_secs_f64();
        let event = Event {
            crate_name: self.crate_name.clone(),
            crate_types: self.crate_types.clone(),
            outcome: outcome.to_string(),
            reason,
            detail,
            stored,
            secs,
            saved_secs: if outcome == "hit" {
                (hit.compile_secs - secs).max(0.0)
            } else {
                0.0
            },
            bytes_restored: hit.bytes,
            remote: hit.remote,
        };
        tracing::debug!(?event, "invocation done");
        record(self.config.report.as_deref(), &self.config.dir, &event);
    }

    pub(crate) fn not_cacheable(&self, reason: &dyn crate::report::Reason) {
        self.emit(
            "not_cacheable",
            Some(reason.label().to_string()),
            Some(reason.to_string()),
            false,
            Default::default(),
        );
    }

    pub(crate) fn error(&self, msg: &str) {
        self.emit(
            "error",
            None,
            Some(msg.to_string()),
            false,
            Default::default(),
        );
    }

    pub(crate) fn hit(&self, compile_secs: f64, bytes: u64, cloned: usize, remote: Option<String>) {
        let detail = (cloned > 0).then(|| format!("cloned {cloned} files"));
        self.emit(
            "hit",
            None,
            detail,
            false,
            crate::report::Restored {
                compile_secs,
                bytes,
                remote,
            },
        );
    }

    pub(crate) fn miss(&self, reason: &str, detail: Option<String>, stored: bool) {
        self.emit(
            "miss",
            Some(reason.to_string()),
            detail,
            stored,
            Default::default(),
        );
    }
}

/// Why work on an invocation stopped short of caching.
enum Stop {
    NotCacheable(NotCacheable),
    Error(String),
}

impl From<NotCacheable> for Stop {
    fn from(r: NotCacheable) -> Stop {
        Stop::NotCacheable(r)
    }
}

enum Lookup {
    Hit {
        record: ActionRecord,
        bytes: u64,
        cloned: usize,
    },
    Miss {
        reason: &'static str,
        detail: Option<String>,
    },
}

struct Session<'a> {
    inv: &'a Invocation,
    config: &'a Config,
    store: &'a larder_remote::Tiers,
    hasher: FileHasher,
    roots: Roots,
    /// The manifest entry the last hit of [`Session::lookup_in`] restored.
    used_entry: Option<ManifestEntry>,
}

impl Session<'_> {
    fn digest(&mut self, path: &Path) -> Result<Digest, NotCacheable> {
        self.hasher
            .digest(path)
            .ok_or_else(|| NotCacheable::UnreadableInput(path.display().to_string()))
    }

    fn env_value(&self, name: &str) -> Result<Option<String>, NotCacheable> {
        match std::env::var_os(name) {
            None => Ok(None),
            Some(v) => v
                .into_string()
                .map(|v| Some(self.roots.normalize_text(&v)))
                .map_err(|_| NotCacheable::NonUtf8(format!("value of {name}"))),
        }
    }

    fn invocation_key(&mut self) -> Result<Digest, Stop> {
        let inv = self.inv;
        let tools = self.store.root().join("tools");
        let compiler = identity::compiler(&inv.rustc, Some(&tools)).map_err(|e| {
            Stop::Error(format!(
                "cannot identify the compiler {}: {e}",
                inv.rustc.display()
            ))
        })?;
        let cargo_home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
        let mut roots = vec![
            ("cwd", inv.cwd.clone()),
            ("sysroot", compiler.sysroot.clone()),
        ];
        if let Some(t) = find_target_dir(&inv.out_dir) {
            roots.push(("target", t));
        }
        if let Some(h) = cargo_home {
            roots.push(("cargo-home", h));
        }
        self.roots = Roots::new(roots);

        let mut key = KeyInputs {
            compiler: Some(compiler.digest),
            args: normalized_args(inv, &self.roots),
            ..KeyInputs::default()
        };
        for (name, _) in std::env::vars_os() {
            let Some(name) = name.to_str() else { continue };
            if env::is_keyed(name, &self.config.extra_env) {
                let value = self.env_value(name)?.unwrap_or_default();
                key.env.push((name.to_string(), value));
            }
        }
        key.env.sort();
        for e in &inv.externs {
            if let Some(p) = &e.path {
                let d = self.digest(p)?;
                key.libraries.push((
                    format!("extern:{}={}", e.name, self.roots.normalize_path(p)),
                    d,
                ));
            }
        }
        if inv.is_linked() {
            key.libraries
                .extend(link_closure(inv, self.store, &mut self.hasher)?);
            let linker = inv.linker.clone().unwrap_or_else(|| "cc".to_string());
            key.linker = Some(
                identity::linker(Path::new(&linker), Some(&tools)).map_err(|e| {
                    Stop::Error(format!("cannot identify the linker {linker}: {e}"))
                })?,
            );
        }
        if inv.emits.contains(&larder_key::Emit::Link) {
            key.libraries
                .extend(native_libraries(inv, &self.roots, &mut self.hasher)?);
        }
        for f in &inv.arg_files {
            let d = self.digest(f)?;
            key.files
                .push((format!("arg-file:{}", self.roots.normalize_path(f)), d));
        }
        for f in &self.config.extra_files {
            let p = inv.cwd.join(f);
            let d = self
                .hasher
                .digest(&p)
                .unwrap_or_else(|| Digest::of(b"larder:absent-file"));
            key.files
                .push((format!("extra-file:{}", self.roots.normalize_path(&p)), d));
        }
        Ok(key.invocation_key())
    }

    /// Looks the invocation up in each tier's manifest in turn: the local one, then each
    /// remote's. An entry restored from a remote's manifest is added to the manifests of
    /// the faster tiers, which keep their own entries.
    fn lookup(&mut self, ik: &Digest) -> Lookup {
        let mut miss = None;
        for tier in 0..=self.store.remote_count() {
            let bytes = if tier == 0 {
                match self.store.local().get(Namespace::Manifest, ik) {
                    Ok(b) => b,
                    Err(e) => {
                        warn_once(
                            "store-read",
                            &format!(
                                "cannot read the store in {}: {e}; compiling",
                                self.config.dir.display()
                            ),
                        );
                        return Lookup::Miss {
                            reason: "store-error",
                            detail: Some(e.to_string()),
                        };
                    }
                }
            } else {
                self.store
                    .get_from_remote(tier - 1, Namespace::Manifest, ik)
            };
            let Some(bytes) = bytes else { continue };
            let manifest = match serde_json::from_slice::<Manifest>(&bytes) {
                Ok(m) => m,
                Err(e) => {
                    if tier == 0 {
                        let _ = self.store.delete(Namespace::Manifest, ik);
                    }
                    miss.get_or_insert(Lookup::Miss {
                        reason: "entry-incomplete",
                        detail: Some(format!("corrupt manifest: {e}")),
                    });
                    continue;
                }
            };
            match self.lookup_in(&manifest) {
                hit @ Lookup::Hit { .. } => {
                    if tier > 0
                        && let Some(entry) = self.used_entry.take()
                    {
                        // Failing to keep the entry costs a later lookup, not this hit.
                        let _ = self
                            .store
                            .update_faster(tier - 1, Namespace::Manifest, ik, &|c| {
                                storejob::manifest_with(&entry, c)
                            });
                    }
                    return hit;
                }
                m => {
                    miss.get_or_insert(m);
                }
            }
        }
        miss.unwrap_or(Lookup::Miss {
            reason: "no-entry",
            detail: None,
        })
    }

    /// The first entry of `manifest` whose inputs match and whose outputs restore.
    fn lookup_in(&mut self, manifest: &Manifest) -> Lookup {
        let mut first_mismatch: Option<Mismatch> = None;
        let mut incomplete: Option<String> = None;
        for entry in &manifest.entries {
            let roots = self.roots.clone();
            let hasher = &mut self.hasher;
            let matched = entry.matches(
                &roots,
                |p| hasher.digest(p),
                |name| std::env::var(name).ok().map(|v| roots.normalize_text(&v)),
                &self.inv.cwd,
            );
            if let Err(m) = matched {
                first_mismatch.get_or_insert(m);
                continue;
            }
            match self.restore(&entry.key) {
                Ok((record, bytes, cloned)) => {
                    self.used_entry = Some(entry.clone());
                    return Lookup::Hit {
                        record,
                        bytes,
                        cloned,
                    };
                }
                Err(why) => {
                    tracing::debug!(%why, "matched entry could not be restored");
                    incomplete = Some(why);
                }
            }
        }
        match (incomplete, first_mismatch) {
            (Some(why), _) => Lookup::Miss {
                reason: "entry-incomplete",
                detail: Some(why),
            },
            (None, Some(m)) => Lookup::Miss {
                reason: "inputs-changed",
                detail: Some(describe(&m)),
            },
            (None, None) => Lookup::Miss {
                reason: "no-entry",
                detail: None,
            },
        }
    }

    /// Fetches and verifies every output of the record under `key`, then writes them.
    fn restore(&mut self, key: &Digest) -> Result<(ActionRecord, u64, usize), String> {
        let bytes = self
            .store
            .get(Namespace::Action, key)
            .map_err(|e| e.to_string())?
            .ok_or("no action record")?;
        let record: ActionRecord = match serde_json::from_slice(&bytes) {
            Ok(r) => r,
            Err(e) => {
                let _ = self.store.delete(Namespace::Action, key);
                return Err(format!("corrupt action record: {e}"));
            }
        };
        let mut expected = self.inv.expected_outputs();
        expected.sort();
        let mut files = Vec::with_capacity(record.outputs.len());
        for o in &record.outputs {
            if self.roots.has_unknown_placeholder(&o.path) {
                return Err(format!("output {} has no place in this build", o.path));
            }
            let dest = self.inv.cwd.join(self.roots.denormalize_path(&o.path));
            if expected.binary_search(&dest).is_err() {
                return Err(format!(
                    "output {} is not an output of this invocation",
                    dest.display()
                ));
            }
            // An uncompressed blob is checked by hashing it once, then cloned into place.
            if !o.rewrite_paths
                && let Some(raw) = self.store.raw_blob_path(&o.digest)
            {
                let ok = std::fs::File::open(&raw)
                    .and_then(Digest::of_reader)
                    .is_ok_and(|(d, _)| d == o.digest);
                if !ok {
                    let _ = self.store.delete(Namespace::Cas, &o.digest);
                    warn_once(
                        "corrupt",
                        &format!("corrupt blob {} removed; compiling instead", o.digest),
                    );
                    return Err(format!("corrupt blob {}", o.digest));
                }
                files.push((dest, Content::Clone(raw), o.executable, o.digest, o.size));
                continue;
            }
            let blob = match get_verified_blob(self.store, &o.digest, o.size) {
                Ok(Some(b)) => b,
                Ok(None) => return Err(format!("blob {} of {} is missing", o.digest, o.path)),
                Err(e) => {
                    warn_once("corrupt", &format!("{e} (removed; compiling instead)"));
                    return Err(e.to_string());
                }
            };
            let content = if o.rewrite_paths {
                let text =
                    String::from_utf8(blob).map_err(|_| format!("{} is not text", o.path))?;
                self.roots.denormalize_text(&text).into_bytes()
            } else {
                blob
            };
            let size = content.len() as u64;
            files.push((dest, Content::Bytes(content), o.executable, o.digest, size));
        }
        if record.exit_code == 0 && files.len() != expected.len() {
            return Err(format!(
                "record has {} outputs, this invocation {}",
                files.len(),
                expected.len()
            ));
        }
        let mut total = 0;
        let mut cloned = 0;
        for (dest, content, executable, _, size) in &files {
            let write = match content {
                Content::Bytes(b) => write_atomic(dest, b, *executable),
                Content::Clone(src) => {
                    clone_atomic(dest, src, *executable).map(|c| cloned += usize::from(c))
                }
            };
            write.map_err(|e| format!("cannot write {}: {e}", dest.display()))?;
            total += size;
        }
        for (dest, _, _, digest, size) in &files {
            self.hasher.remember(dest, *digest, *size);
            if dest.extension().is_some_and(|x| x == "rlib")
                && !self.store.contains(Namespace::Link, digest).unwrap_or(true)
            {
                let rec = LinkRecord {
                    deps: record.link_deps.clone(),
                };
                let _ = self.store.put(
                    Namespace::Link,
                    digest,
                    &serde_json::to_vec(&rec).unwrap_or_default(),
                );
            }
        }
        Ok((record, total, cloned))
    }

    fn replay(&self, record: &ActionRecord) {
        let out = self.roots.denormalize_text(&record.stdout);
        let err = self.roots.denormalize_text(&record.stderr);
        let _ = std::io::stdout().write_all(out.as_bytes());
        let _ = std::io::stderr().write_all(err.as_bytes());
    }

    fn store_result(
        &mut self,
        ik: &Digest,
        captured: &Captured,
        wall_start: SystemTime,
        failed: bool,
        flight: Option<&FlightLock>,
    ) -> Result<(), Stop> {
        let inv = self.inv;
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
            let d = self.digest(&path)?;
            files.push((self.roots.normalize_text(f), d));
            if let Some(alt) = alternate_module_file(f)
                && !inv.cwd.join(&alt).exists()
            {
                absent.push(self.roots.normalize_text(&alt));
            }
        }
        let mut env_deps = Vec::with_capacity(info.env.len());
        for name in &info.env {
            env_deps.push((name.clone(), self.env_value(name)?));
        }
        let entry = ManifestEntry::new(ik, files, env_deps, absent);

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
            let data = std::fs::read(path).map_err(|_| {
                NotCacheable::UnexpectedOutputs(format!("{} was not written", path.display()))
            })?;
            let executable =
                std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0);
            let rewrite_paths = Some(path) == Some(&dep_info_path);
            let (digest, size, source) = if rewrite_paths {
                let text = String::from_utf8(data)
                    .map_err(|_| NotCacheable::BinaryOutput(path.display().to_string()))?;
                let text = self.roots.normalize_text(&text);
                (
                    Digest::of(text.as_bytes()),
                    text.len() as u64,
                    BlobSource::Inline(text),
                )
            } else {
                (
                    Digest::of(&data),
                    data.len() as u64,
                    BlobSource::File(path.clone()),
                )
            };
            sources.push(source);
            outputs.push(OutputFile {
                path: self.roots.normalize_path(path),
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
            crate_name: inv.crate_name.clone(),
            outputs,
            stdout: self.roots.normalize_text(&stdout),
            stderr: self.roots.normalize_text(&stderr),
            compile_secs: captured.elapsed.as_secs_f64(),
            exit_code: i32::from(failed),
            link_deps,
        };
        storejob::put_link_records(self.store, &record).map_err(Stop::Error)?;
        let job = StoreJob {
            invocation_key: *ik,
            entry,
            record,
            sources,
        };
        // Off cargo's critical path: compression and writes happen in a background
        // process that holds this key's single-flight lock and the build's pending lock.
        // A build script's binary is replaced by its shim as soon as this returns: store
        // it here (build scripts are small and few).
        let shimmed = self.config.build_script_cache && is_build_script(inv);
        if self.config.background_store && !failed && !shimmed {
            let pending = storejob::pending_lock();
            let mut locks: Vec<&std::fs::File> = flight.map(FlightLock::file).into_iter().collect();
            locks.extend(pending.as_ref());
            match storejob::spawn(&job, self.store.root(), &locks) {
                Ok(()) => return Ok(()),
                Err(e) => tracing::debug!(%e, "storing in the wrapper"),
            }
        }
        job.execute(self.store).map_err(Stop::Error)
    }
}

fn describe(m: &Mismatch) -> String {
    match m {
        Mismatch::FileChanged(p) => format!("{p} changed"),
        Mismatch::FileMissing(p) => format!("{p} is gone"),
        Mismatch::EnvChanged(v) => format!("${v} changed"),
        Mismatch::FileAppeared(p) => format!("{p} appeared"),
    }
}

/// Writes `content` to `dest` through a temporary file in the same directory and a
/// rename, so cargo and other readers never see a partial file.
/// What a restored output is written from.
enum Content {
    /// Bytes in memory (decompressed, or rewritten dep-info).
    Bytes(Vec<u8>),
    /// An uncompressed blob file, cloned (or copied) into place.
    Clone(PathBuf),
}

/// Writes a copy of `src` to `dest` like [`write_atomic`], by reflink (`FICLONE`) where
/// the filesystem can, else by copying. Returns whether it cloned.
fn clone_atomic(dest: &Path, src: &Path, executable: bool) -> std::io::Result<bool> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".larder-")
        .tempfile_in(dir)?;
    let mut from = std::fs::File::open(src)?;
    let cloned = rustix::fs::ioctl_ficlone(tmp.as_file(), &from).is_ok();
    if !cloned {
        std::io::copy(&mut from, &mut tmp)?;
    }
    let mode = if executable { 0o755 } else { 0o644 };
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    tmp.persist(dest).map_err(|e| e.error)?;
    Ok(cloned)
}

pub(crate) fn write_atomic(dest: &Path, content: &[u8], executable: bool) -> std::io::Result<()> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".larder-")
        .tempfile_in(dir)?;
    tmp.write_all(content)?;
    let mode = if executable { 0o755 } else { 0o644 };
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    tmp.persist(dest).map_err(|e| e.error)?;
    Ok(())
}
