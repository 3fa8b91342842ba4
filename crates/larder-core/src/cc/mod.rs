//! The C and C++ compiler wrapper: what `larder cc <args...>` does.
//!
//! `larder cargo` sets `CC="<larder> cc"` and `CXX="<larder> c++"`. The `cc` crate
//! (cc-rs) splits such a value on whitespace: the first word is not a wrapper it knows
//! (sccache, ccache, ...), so it is the compiler and `cc` its first argument, and every
//! object compile in a build script runs `larder cc <flags> -o <obj> -c <src>`. The
//! binary sends any invocation whose first argument names a C or C++ compiler
//! ([`is_compiler_name`]) here ([`run`]).
//!
//! 1. Parse the command line ([`CInvocation::parse`]): only a compile of one source to
//!    one object with known, harmless flags is cached; anything else (links, probes,
//!    several sources, dependency files, flags that write or read other files, unknown
//!    flags) runs the compiler as it is, with a [`CNotCacheable`] reason in the report.
//! 2. Compute the key ("preprocessor mode", as ccache's): run the compiler with `-E`
//!    instead of `-c` and hash its output, see the table below.
//! 3. On a hit, fetch and verify the object, write it atomically where `-o` says, replay
//!    the compiler's messages, exit 0. No compiler runs but the preprocessor.
//! 4. On a miss, compile (messages streamed), and if it succeeded store the object and
//!    an action record. Failed compiles are not stored.
//!
//! A store that cannot be opened, read or written never fails the compile: it runs as
//! without larder, with one warning per build.
//!
//! cc-rs also runs larder itself as the compiler, without the `cc` word: it detects
//! the compiler family with `larder -E detect_compiler_family.c` and checks flags with
//! `larder <flag> -c flag_check.c`. [`run_probe`] answers those with the compiler named
//! in `CC` (or `CXX` for C++ sources), uncached, so the answers are the real compiler's.
//!
//! # The key
//!
//! | input | how it is hashed | why |
//! |---|---|---|
//! | key version | the string [`key::C_KEY_VERSION`] | a new definition never matches old entries, nor rustc keys |
//! | compiler identity | content digest of the compiler executable after following symlinks, the file name it runs by, its `--version` output ([`crate::identity::c_compiler`]; cached in `<store>/v1/tools/`) | another compiler or version gives another object; `clang++` is `clang` by another name |
//! | arguments | every argument in order except `-o <object>`, absolute roots normalized | defines, include paths, optimization, target, debug info, warnings (they shape the messages) |
//! | source | plain C, C++, Objective-C, `.S`: the preprocessed text (`-E`, same flags) with the absolute roots in its line markers normalized; `.s`, `.i`, `.ii`: the file's content | every header included, with its content, and every macro |
//! | environment | name and normalized value of each set variable among [`key::C_TOOL_VARS`] (`CPATH`, `C_INCLUDE_PATH`, `CPLUS_INCLUDE_PATH`, `SOURCE_DATE_EPOCH`, `GCC_EXEC_PREFIX`, `COMPILER_PATH`, locale, Apple SDK variables) and the declared `LARDER_EXTRA_ENV` | the driver reads them |
//! | declared files | content of `LARDER_EXTRA_FILES`, as for rustc | same contract as for rustc |
//!
//! Roots: the working directory, the cargo target directory (from `OUT_DIR`, else from
//! the object's directory, by cargo's `CACHEDIR.TAG`) and `CARGO_HOME`.
//!
//! # Left out, and refused
//!
//! - The object's path and the working directory's location: two checkouts share
//!   entries. As for rustc, a restored object's debug information names the source
//!   paths of the checkout that compiled it (`DW_AT_comp_dir`, `DW_AT_name`).
//! - Paths outside line markers are not rewritten: `__FILE__` of an absolute source
//!   path makes the text, and so the key, differ per checkout (a miss, never a wrong
//!   hit).
//! - The driver's helpers (`cc1`, `as`) are not hashed; a toolchain update replaces
//!   the driver, whose content or `--version` changes.
//! - Refused (not cacheable): `-MD`/`-MMD` and other dependency-file outputs (cc-rs
//!   does not use them), `.incbin` anywhere and `.include` in assembler (the assembler
//!   reads files the preprocessor does not show), `-fplugin`, `-specs`, `-B`,
//!   `-Xclang`, sanitizer lists, profile feedback and coverage, `-save-temps`,
//!   `-gsplit-dwarf`, `@file` arguments, and any argument larder does not know.

mod args;
mod key;
mod reason;

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use larder_digest::Digest;
use larder_key::Roots;
use larder_key::paths::find_target_dir;
use larder_store::{ActionRecord, Namespace, OutputFile, Store, get_verified_blob};

pub use args::{CInvocation, Language, SourceKind, compile_name, is_compiler_name};
pub use key::{C_KEY_VERSION, C_TOOL_VARS, CKeyInputs};
pub use reason::CNotCacheable;

use crate::config::Config;
use crate::exec::{exec_passthrough, exit_code, run_captured};
use crate::flight;
use crate::identity;
use crate::report::warn_once;
use crate::wrapper::{Reporter, write_atomic};

/// The crate type reported for C and C++ objects.
pub const C_OBJECT: &str = "c-object";

/// Runs `compiler args...` through the cache and returns the exit code.
pub fn run(compiler: PathBuf, args: Vec<OsString>) -> i32 {
    let started = Instant::now();
    let wall_start = SystemTime::now();
    crate::init_logging();
    let utf8: Option<Vec<String>> = args
        .iter()
        .map(|a| a.to_str().map(str::to_string))
        .collect();
    let name = utf8.as_deref().and_then(compile_name);
    let config = match Config::load() {
        Ok(c) => c,
        Err(e) => {
            if name.is_some() {
                warn_once("config", &format!("{e}; caching is off"));
            }
            return passthrough(&compiler, &args);
        }
    };
    let reporter = Reporter {
        config: &config,
        started,
        crate_name: name,
        crate_types: vec![C_OBJECT.to_string()],
    };
    let Some(utf8) = utf8 else {
        reporter.not_cacheable(&CNotCacheable::NonUtf8("argument".into()));
        return passthrough(&compiler, &args);
    };
    let inv = match parse(&config, utf8) {
        Ok(inv) => inv,
        Err(reason) => {
            reporter.not_cacheable(&reason);
            return passthrough(&compiler, &args);
        }
    };
    let store = match config.open_store_or_warn() {
        Ok(s) => s,
        Err(msg) => {
            reporter.error(&msg);
            return passthrough(&compiler, &args);
        }
    };
    let cwd = match std::env::current_dir() {
        Ok(d) => d,
        Err(e) => {
            reporter.error(&format!("working directory: {e}"));
            return passthrough(&compiler, &args);
        }
    };
    let session = Session {
        roots: roots(&cwd, &inv),
        output: cwd.join(&inv.output),
        cwd,
        inv: &inv,
        compiler: &compiler,
        config: &config,
        store: &store,
    };

    let (key, inputs) = match session.key() {
        Ok(k) => k,
        Err(Stop::NotCacheable(reason)) => {
            reporter.not_cacheable(&reason);
            return passthrough(&compiler, &args);
        }
        Err(Stop::Error(msg)) => {
            warn_once(
                &format!("cc-key:{msg}"),
                &format!("{msg}; compiling without cache"),
            );
            reporter.error(&msg);
            return passthrough(&compiler, &args);
        }
    };
    let miss = match session.lookup(&key) {
        Lookup::Hit { record, bytes } => {
            session.replay(&record);
            reporter.hit(record.compile_secs, bytes, 0, store.served_by());
            return 0;
        }
        Lookup::Miss(reason) => reason,
    };
    let relookup = || match session.lookup(&key) {
        Lookup::Hit { record, bytes } => Some((record, bytes)),
        Lookup::Miss(_) => None,
    };
    let _flight = match flight::lead_or_reuse(store.root(), &key, relookup) {
        Ok(lock) => lock,
        Err((record, bytes)) => {
            session.replay(&record);
            reporter.hit(record.compile_secs, bytes, 0, store.served_by());
            return 0;
        }
    };

    let captured = match run_captured(&compiler, &args) {
        Ok(c) => c,
        Err(e) => {
            warn_once("spawn", &format!("cannot run {}: {e}", compiler.display()));
            return passthrough(&compiler, &args);
        }
    };
    let code = exit_code(captured.status);
    if !captured.status.success() {
        reporter.miss(miss, Some(CNotCacheable::CompileFailed.to_string()), false);
        return code;
    }
    match session.store_result(&key, &inputs, &captured, wall_start) {
        Ok(()) => reporter.miss(miss, None, true),
        Err(Stop::NotCacheable(reason)) => {
            reporter.miss(miss, Some(format!("not stored: {reason}")), false)
        }
        Err(Stop::Error(msg)) => {
            warn_once(
                "store-write",
                &format!("cannot store the result in {}: {msg}", config.dir.display()),
            );
            reporter.miss(miss, Some(format!("not stored: {msg}")), false);
        }
    }
    code
}

/// Runs larder invoked through a compiler shim named `invoked_as` (`cc`, `c++`; see
/// `runner::c_compiler_shims`): the real compiler is `LARDER_REAL_CXX` for C++ names,
/// else `LARDER_REAL_CC`, or the same name on `PATH`. Returns the exit code.
pub fn run_masquerade(invoked_as: &str, args: Vec<OsString>) -> i32 {
    let cxx = invoked_as.contains("++");
    let var = if cxx {
        "LARDER_REAL_CXX"
    } else {
        "LARDER_REAL_CC"
    };
    let real = std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(invoked_as));
    let me = std::env::current_exe().and_then(std::fs::canonicalize).ok();
    let resolved =
        crate::identity::resolve_program(&real).and_then(|p| std::fs::canonicalize(p).ok());
    if resolved.is_none() || resolved == me {
        eprintln!(
            "larder: error: invoked as `{invoked_as}` but {var} does not name another compiler ({})",
            real.display()
        );
        return 127;
    }
    run(real, args)
}

/// Runs an invocation in which cc-rs named larder itself as the compiler (`larder -E
/// detect_compiler_family.c`, `larder -Wflag -c flag_check.c`): passes it to the
/// compiler that follows larder in `CXX` for C++ sources or `CC` otherwise (the other
/// one if that one does not name larder), uncached. Without either, the arguments are
/// an unknown command. Returns the exit code.
pub fn run_probe(args: Vec<OsString>) -> i32 {
    crate::init_logging();
    let cxx = args.iter().filter_map(|a| a.to_str()).any(|a| {
        let ext = Path::new(a).extension().and_then(|e| e.to_str());
        matches!(
            ext,
            Some("cc" | "cp" | "cxx" | "cpp" | "CPP" | "c++" | "C" | "mm")
        )
    });
    let vars = if cxx { ["CXX", "CC"] } else { ["CC", "CXX"] };
    let Some(compiler) = vars.iter().find_map(|v| {
        std::env::var(v)
            .ok()
            .and_then(|v| compiler_after_larder(&v))
    }) else {
        // Not run by the `cc` crate through `CC="larder cc"`: an unknown command.
        let first = args
            .first()
            .map(|a| a.to_string_lossy())
            .unwrap_or_default();
        eprintln!("larder: error: unknown command `{first}` (see `larder --help`)");
        return 2;
    };
    if let Ok(config) = Config::load() {
        Reporter {
            config: &config,
            started: Instant::now(),
            crate_name: None,
            crate_types: vec![C_OBJECT.to_string()],
        }
        .not_cacheable(&CNotCacheable::Probe);
    }
    passthrough(&compiler, &args)
}

/// In a `CC` value `<larder> <compiler> ...`, the compiler.
fn compiler_after_larder(value: &str) -> Option<PathBuf> {
    let mut words = value.split_whitespace();
    let first = std::fs::canonicalize(words.next()?).ok()?;
    let exe = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .ok()?;
    let compiler = words.next()?;
    (first == exe && is_compiler_name(compiler)).then(|| PathBuf::from(compiler))
}

fn parse(config: &Config, args: Vec<String>) -> Result<CInvocation, CNotCacheable> {
    if config.disable {
        return Err(CNotCacheable::Disabled);
    }
    let inv = CInvocation::parse(args)?;
    if let Some(var) = key::DEP_FILE_VARS
        .iter()
        .find(|v| std::env::var_os(v).is_some())
    {
        return Err(CNotCacheable::DepFile(format!("${var}")));
    }
    Ok(inv)
}

fn roots(cwd: &Path, inv: &CInvocation) -> Roots {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let mut roots = vec![("cwd", cwd.to_path_buf())];
    let target = std::env::var_os("OUT_DIR")
        .and_then(|o| find_target_dir(Path::new(&o)))
        .or_else(|| cwd.join(&inv.output).parent().and_then(find_target_dir));
    if let Some(t) = target {
        roots.push(("target", t));
    }
    if let Some(h) = cargo_home {
        roots.push(("cargo-home", h));
    }
    Roots::new(roots)
}

fn passthrough(compiler: &Path, args: &[OsString]) -> i32 {
    let e = exec_passthrough(compiler, args);
    eprintln!("larder: error: cannot run {}: {e}", compiler.display());
    127
}

/// Why work on an invocation stopped short of caching.
enum Stop {
    NotCacheable(CNotCacheable),
    Error(String),
}

impl From<CNotCacheable> for Stop {
    fn from(r: CNotCacheable) -> Stop {
        Stop::NotCacheable(r)
    }
}

enum Lookup {
    Hit { record: ActionRecord, bytes: u64 },
    Miss(&'static str),
}

struct Session<'a> {
    inv: &'a CInvocation,
    compiler: &'a Path,
    config: &'a Config,
    store: &'a larder_remote::Tiers,
    cwd: PathBuf,
    output: PathBuf,
    roots: Roots,
}

impl Session<'_> {
    fn env_value(&self, name: &str) -> Result<Option<String>, CNotCacheable> {
        match std::env::var_os(name) {
            None => Ok(None),
            Some(v) => v
                .into_string()
                .map(|v| Some(self.roots.normalize_text(&v)))
                .map_err(|_| CNotCacheable::NonUtf8(format!("value of {name}"))),
        }
    }

    /// The key, and the files the compile reads (for the check after it).
    fn key(&self) -> Result<(Digest, Vec<PathBuf>), Stop> {
        let tools = self.store.root().join("tools");
        let compiler = identity::c_compiler(self.compiler, Some(&tools)).map_err(|e| {
            Stop::Error(format!(
                "cannot identify the C compiler {}: {e}",
                self.compiler.display()
            ))
        })?;
        let source = match self.inv.kind {
            SourceKind::Preprocessed => key::preprocess(self.compiler, self.inv, &self.roots)?,
            SourceKind::Raw => {
                key::raw_source(&self.cwd.join(&self.inv.source), self.inv.language)?
            }
        };
        let mut env = Vec::new();
        let names = C_TOOL_VARS
            .iter()
            .copied()
            .chain(self.config.extra_env.iter().map(String::as_str));
        for name in names {
            if let Some(v) = self.env_value(name)?
                && !env.iter().any(|(n, _): &(String, String)| n == name)
            {
                env.push((name.to_string(), v));
            }
        }
        env.sort();
        let mut files = Vec::new();
        for f in &self.config.extra_files {
            let p = self.cwd.join(f);
            let d = std::fs::File::open(&p)
                .and_then(Digest::of_reader)
                .map(|(d, _)| d)
                .unwrap_or_else(|_| Digest::of(b"larder:absent-file"));
            files.push((format!("extra-file:{}", self.roots.normalize_path(&p)), d));
        }
        let inputs = CKeyInputs {
            compiler,
            args: self
                .inv
                .key_args()
                .map(|a| self.roots.normalize_text(a))
                .collect(),
            env,
            source: source.digest,
            files,
        };
        Ok((inputs.key(), source.files))
    }

    fn lookup(&self, key: &Digest) -> Lookup {
        let bytes = match self.store.get(Namespace::Action, key) {
            Ok(Some(b)) => b,
            Ok(None) => return Lookup::Miss("no-entry"),
            Err(e) => {
                warn_once(
                    "store-read",
                    &format!(
                        "cannot read the store in {}: {e}; compiling",
                        self.config.dir.display()
                    ),
                );
                return Lookup::Miss("store-error");
            }
        };
        let record: ActionRecord = match serde_json::from_slice(&bytes) {
            Ok(r) => r,
            Err(_) => {
                let _ = self.store.delete(Namespace::Action, key);
                return Lookup::Miss("entry-incomplete");
            }
        };
        match self.restore(&record) {
            Ok(bytes) => Lookup::Hit { record, bytes },
            Err(why) => {
                tracing::debug!(%why, "C entry could not be restored");
                Lookup::Miss("entry-incomplete")
            }
        }
    }

    /// Fetches and verifies the object, then writes it where `-o` says.
    fn restore(&self, record: &ActionRecord) -> Result<u64, String> {
        let [object] = record.outputs.as_slice() else {
            return Err(format!("{} outputs, expected 1", record.outputs.len()));
        };
        if record.exit_code != 0 {
            return Err("a failed compile".into());
        }
        // The compiler does not create the object's directory; neither does a hit.
        if !self.output.parent().is_none_or(Path::is_dir) {
            return Err(format!("no directory for {}", self.output.display()));
        }
        let blob = match get_verified_blob(self.store, &object.digest, object.size) {
            Ok(Some(b)) => b,
            Ok(None) => return Err(format!("blob {} is missing", object.digest)),
            Err(e) => {
                warn_once("corrupt", &format!("{e} (removed; compiling instead)"));
                return Err(e.to_string());
            }
        };
        write_atomic(&self.output, &blob, object.executable)
            .map_err(|e| format!("cannot write {}: {e}", self.output.display()))?;
        Ok(blob.len() as u64)
    }

    fn replay(&self, record: &ActionRecord) {
        let out = self.roots.denormalize_text(&record.stdout);
        let err = self.roots.denormalize_text(&record.stderr);
        let _ = std::io::stdout().write_all(out.as_bytes());
        let _ = std::io::stderr().write_all(err.as_bytes());
    }

    fn store_result(
        &self,
        key: &Digest,
        inputs: &[PathBuf],
        captured: &crate::exec::Captured,
        wall_start: SystemTime,
    ) -> Result<(), Stop> {
        // The object must be this compile's, and no input may have changed since the
        // key was computed (the object would not match the key's content).
        let fresh = std::fs::metadata(&self.output)
            .and_then(|m| m.modified())
            .is_ok_and(|m| m >= wall_start);
        if !fresh {
            return Err(CNotCacheable::NoOutput(self.output.display().to_string()).into());
        }
        for f in inputs {
            let path = self.cwd.join(f);
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if meta.is_file() && meta.modified().map_or(true, |m| m >= wall_start) {
                return Err(
                    CNotCacheable::InputModifiedDuringCompile(f.display().to_string()).into(),
                );
            }
        }
        let stderr = String::from_utf8(captured.stderr.clone())
            .map_err(|_| CNotCacheable::BinaryOutput("stderr".into()))?;
        let stdout = String::from_utf8(captured.stdout.clone())
            .map_err(|_| CNotCacheable::BinaryOutput("stdout".into()))?;
        let data = std::fs::read(&self.output)
            .map_err(|_| CNotCacheable::NoOutput(self.output.display().to_string()))?;
        let digest = Digest::of(&data);
        self.store
            .put(Namespace::Cas, &digest, &data)
            .map_err(|e| Stop::Error(e.to_string()))?;
        let record = ActionRecord {
            crate_name: compile_name(&self.inv.args).unwrap_or_else(|| "cc".into()),
            outputs: vec![OutputFile {
                path: self.roots.normalize_path(&self.output),
                digest,
                size: data.len() as u64,
                executable: false,
                rewrite_paths: false,
            }],
            stdout: self.roots.normalize_text(&stdout),
            stderr: self.roots.normalize_text(&stderr),
            compile_secs: captured.elapsed.as_secs_f64(),
            exit_code: 0,
            link_deps: Vec::new(),
        };
        let json = serde_json::to_vec(&record).map_err(|e| Stop::Error(e.to_string()))?;
        self.store
            .put(Namespace::Action, key, &json)
            .map_err(|e| Stop::Error(e.to_string()))?;
        Ok(())
    }
}
