//! The C and C++ compiler wrapper: what `larder cc <args...>` does.
//!
//! `larder cargo` points the `cc` crate (cc-rs) at a symlink to larder named `cc`
//! (`HOST_CC`, or `CC` when the user has one; see `runner::c_compiler_shims`), which
//! [`run_masquerade`] answers; with plain cargo a user sets `CC="larder cc"`, which cc-rs
//! splits on whitespace (the first word is not a wrapper it knows, so it is the
//! compiler and `cc` its first argument), and every object compile in a build script
//! runs `larder cc <flags> -o <obj> -c <src>`. The binary sends any invocation whose
//! first argument names a C or C++ compiler ([`is_compiler_name`]) here ([`run`]): a
//! [`CachedAction`] with a one-step key, driven by [`crate::action::run`].
//!
//! 1. Parse the command line ([`CInvocation::parse`]): only a compile of one source to
//!    one object with known, harmless flags is cached; anything else (links, probes,
//!    several sources, dependency files, flags that write or read other files, unknown
//!    flags) runs the compiler as it is, with a [`CNotCacheable`] reason in the report.
//! 2. Compute the key. Sources the preprocessor reads (C, C++, Objective-C, `.S`) are
//!    keyed by the dependency file the compile writes ("depend mode", [`depend`]):
//!    an invocation key of the table below with the source file's content, whose
//!    manifest lists what each compile read (headers by content, the directories where
//!    a shadowing header could appear by listing). With `LARDER_C_DEPEND=0`, arguments
//!    that pass options to the preprocessor unseen, or a compiler that cannot write a
//!    dependency file, they use "preprocessor mode" (as ccache's): run the compiler
//!    with `-E` instead of `-c` and hash its output. `.s`, `.i` and `.ii` are keyed by
//!    their content.
//! 3. On a hit, fetch and verify the object, write it atomically where `-o` says, replay
//!    the compiler's messages, exit 0. No compiler runs (in preprocessor mode, the
//!    preprocessor does).
//! 4. On a miss, compile (messages streamed; in depend mode with `-MD -MF <temporary>`
//!    added), and if it succeeded store the object and an action record (and the
//!    manifest entry). Failed compiles are not stored.
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
//! | input | how it is hashed | why | test that changes it and expects a miss |
//! |---|---|---|---|
//! | key version | the string [`key::C_KEY_VERSION`] | a new definition never matches old entries, nor rustc keys | none: a constant, changed only with the definition |
//! | compiler identity | content digest of the compiler executable after following symlinks, the file name it runs by, its `--version` output ([`crate::identity::c_compiler`]; cached in `<store>/v1/tools/`) | another compiler or version gives another object; `clang++` is `clang` by another name | `cc.rs`: `compiler_change_misses`; `larder-core` `identity::tests::c_compiler_identity_follows_content_and_name` |
//! | arguments | every argument in order except `-o <object>`, absolute roots normalized | defines, include paths, optimization, target, debug info, warnings (they shape the messages) | `cc.rs`: `define_change_misses` |
//! | source | depend mode: the source file's content (its headers are in the manifest entry, [`depend`]); preprocessor mode (`LARDER_C_DEPEND=0`, `-Wp,`, a compiler without `-MD`): the preprocessed text (`-E`, same flags) with the absolute roots in its line markers normalized; `.s`, `.i`, `.ii`: the file's content | every header included, with its content, and every macro | `cc.rs`: `header_change_misses_only_its_object` |
//! | environment | name and normalized value of each set variable among [`key::C_TOOL_VARS`] (`CPATH`, `C_INCLUDE_PATH`, `CPLUS_INCLUDE_PATH`, `SOURCE_DATE_EPOCH`, `GCC_EXEC_PREFIX`, `COMPILER_PATH`, locale, Apple SDK variables) and the declared `LARDER_EXTRA_ENV` | the driver reads them | `cc.rs`: `tool_variables_and_declared_inputs_are_in_the_c_key` |
//! | host CPU | with `-march=native`, `-mtune=native` or `-mcpu=native`: this machine's CPU identification and feature flags (`/proc/cpuinfo`) | code for one CPU must not reach a machine with another | `larder-core` `host::tests::another_cpu_is_another_native` |
//! | declared files | content of `LARDER_EXTRA_FILES`, as for rustc | same contract as for rustc | `cc.rs`: `tool_variables_and_declared_inputs_are_in_the_c_key` |
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
//!   hit). In depend mode, any `__FILE__` in a file read pins the roots the read paths
//!   lie under ([`depend::ROOT_PIN`]), with the same effect.
//! - The driver's helpers (`cc1`, `as`) are not hashed; a toolchain update replaces
//!   the driver, whose content or `--version` changes.
//! - Refused (not cacheable): `-MD`/`-MMD` and other dependency-file outputs of the
//!   caller's own (cc-rs does not ask for them), `.incbin` anywhere and `.include` in assembler (the assembler
//!   reads files the preprocessor does not show), `-fplugin`, `-specs`, `-B`,
//!   `-Xclang`, sanitizer lists, profile feedback and coverage, `-save-temps`,
//!   `-gsplit-dwarf`, `@file` arguments, and any argument larder does not know.

mod args;
pub mod depend;
pub mod directives;
pub mod header_memo;
mod key;
mod reason;
pub mod search;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use larder_digest::Digest;
use larder_key::paths::find_target_dir;
use larder_key::{ManifestEntry, Mismatch, Roots};
use larder_store::{ActionRecord, OutputFile};

pub use args::{CInvocation, Language, SourceKind, compile_name, is_compiler_name};
pub use key::{C_KEY_VERSION, C_TOOL_VARS, CKeyInputs};
pub use reason::CNotCacheable;

use crate::action::{
    self, ActionError, BlobSource, CachedAction, Collected, Ctx, Key, Outcome, Reporter, Stop,
    Tool, Unit, UnitKind,
};
use crate::config::Config;
use crate::config::env;
use crate::exec::Captured;
use crate::identity;

/// Runs `compiler args...` through the cache and returns the exit code.
pub fn run(compiler: PathBuf, args: Vec<OsString>) -> i32 {
    action::run::<CCompile>(Tool {
        program: compiler,
        args,
    })
}

/// A C or C++ compile being cached.
pub struct CCompile {
    inv: CInvocation,
    compiler: PathBuf,
    cwd: PathBuf,
    /// The object, absolute.
    output: PathBuf,
    /// The files the compile reads (from the preprocessor, or from the dependency
    /// file after the compile), for the check after it.
    inputs: Vec<PathBuf>,
    /// What the key was made of.
    key_inputs: Option<CKeyInputs>,
    /// Keyed by the dependency file ([`depend`]) rather than the preprocessed text.
    depend: bool,
    /// The dependency file a miss's compile writes (removed when dropped).
    depfile: Option<tempfile::TempPath>,
    /// The compiler's header search list, in depend mode.
    search: Option<search::SearchList>,
    /// The preprocessed text's digest, once computed for a fallback entry (`None`
    /// inside: the preprocessor failed).
    preprocessed: Option<Option<Digest>>,
}

impl CachedAction for CCompile {
    type Reason = CNotCacheable;

    fn unit_of(tool: &Tool) -> Unit {
        Unit {
            name: tool.utf8_args().as_deref().and_then(compile_name),
            kind: UnitKind::CObject,
        }
    }

    fn parse(config: &Config, tool: &Tool) -> Result<Self, CNotCacheable> {
        let args = tool
            .utf8_args()
            .ok_or_else(|| CNotCacheable::NonUtf8("argument".into()))?;
        if config.disable {
            return Err(CNotCacheable::Disabled);
        }
        let inv = CInvocation::parse(args)?;
        if let Some(var) = key::DEP_FILE_VARS.iter().find(|v| env::var_os(v).is_some()) {
            return Err(CNotCacheable::DepFile(format!("${var}")));
        }
        let cwd = std::env::current_dir()
            .map_err(|e| CNotCacheable::UnreadableInput(format!("working directory: {e}")))?;
        Ok(CCompile {
            output: cwd.join(&inv.output),
            inv,
            compiler: tool.program.clone(),
            cwd,
            inputs: Vec::new(),
            key_inputs: None,
            depend: false,
            depfile: None,
            search: None,
            preprocessed: None,
        })
    }

    fn unit(&self) -> Unit {
        Unit {
            name: compile_name(&self.inv.args),
            kind: UnitKind::CObject,
        }
    }

    fn cwd(&self) -> &Path {
        &self.cwd
    }

    fn key(&mut self, cx: &mut Ctx<'_>) -> Result<Key, Stop<CNotCacheable>> {
        cx.set_roots(roots(&self.cwd, &self.output));
        let compiler = identity::c_compiler(&self.compiler, Some(&cx.tools_dir()))
            .map_err(ActionError::identity("C compiler", &self.compiler))?;
        // Depend mode needs the compiler's search list, and a compiler that takes `-MD
        // -MF` (the probe passes them): otherwise preprocessor mode.
        self.search = (self.inv.depend_eligible() && cx.config.c_depend)
            .then(|| {
                search::search_dirs(
                    &self.compiler,
                    &compiler,
                    &self.inv,
                    &self.cwd,
                    Some(&cx.tools_dir()),
                )
                .inspect_err(|e| tracing::debug!(%e, "preprocessor mode"))
                .ok()
            })
            .flatten();
        self.depend = self.search.is_some();
        let source = if self.depend {
            let path = self.cwd.join(&self.inv.source);
            let digest = cx
                .hasher
                .digest(&path)
                .ok_or_else(|| CNotCacheable::UnreadableInput(path.display().to_string()))?;
            key::Preprocessed {
                digest,
                files: Vec::new(),
            }
        } else {
            match self.inv.kind {
                SourceKind::Preprocessed => key::preprocess(&self.compiler, &self.inv, &cx.roots)?,
                SourceKind::Raw => {
                    key::raw_source(&self.cwd.join(&self.inv.source), self.inv.language)?
                }
            }
        };
        let mut env = Vec::new();
        let names = C_TOOL_VARS
            .iter()
            .copied()
            .chain(cx.config.extra_env.iter().map(String::as_str));
        for name in names {
            let value = match env::var_os(name) {
                None => continue,
                Some(v) => v
                    .into_string()
                    .map_err(|_| CNotCacheable::NonUtf8(format!("value of {name}")))?,
            };
            if !env.iter().any(|(n, _): &(String, String)| n == name) {
                env.push((name.to_string(), cx.roots.normalize_text(&value)));
            }
        }
        env.sort();
        let mut files = Vec::new();
        for f in &cx.config.extra_files {
            let p = self.cwd.join(f);
            let d = std::fs::File::open(&p)
                .and_then(Digest::of_reader)
                .map(|(d, _)| d)
                .unwrap_or_else(|_| Digest::of(b"larder:absent-file"));
            files.push((format!("extra-file:{}", cx.roots.normalize_path(&p)), d));
        }
        if crate::host::c_wants_native(&self.inv.args) {
            let cpu = crate::host::native_cpu()
                .ok_or_else(|| CNotCacheable::UnreadableInput("/proc/cpuinfo".into()))?;
            files.push(("host-cpu:native".into(), cpu));
        }
        let inputs = CKeyInputs {
            compiler,
            args: self
                .inv
                .key_args()
                .map(|a| cx.roots.normalize_text(a))
                .collect(),
            env,
            source: source.digest,
            files,
            depend: self.depend,
        };
        self.inputs = source.files;
        let digest = inputs.key();
        self.key_inputs = Some(inputs);
        Ok(if self.depend {
            Key::Manifest(digest)
        } else {
            Key::Direct(digest)
        })
    }

    /// A depend-mode entry's files, names looked up in watched directories ([`depend::names_digest`]), the
    /// preprocessed fallback ([`depend::PREPROCESSED`]) and pinned roots
    /// ([`depend::ROOT_PIN`]) against this build.
    fn entry_matches(&mut self, cx: &mut Ctx<'_>, entry: &ManifestEntry) -> Result<(), Mismatch> {
        let roots = cx.roots.clone();
        let hasher = &mut cx.hasher;
        let (compiler, inv, memo) = (&self.compiler, &self.inv, &mut self.preprocessed);
        entry.matches(
            &roots,
            |p| {
                if p.file_name().is_some_and(|n| n == depend::PREPROCESSED) {
                    *memo.get_or_insert_with(|| {
                        key::preprocess(compiler, inv, &roots)
                            .ok()
                            .map(|p| p.digest)
                    })
                } else if let Some((dir, names)) = depend::split_names(p) {
                    depend::names_digest(dir, names)
                } else {
                    hasher.digest(p)
                }
            },
            |name| match name.strip_prefix(depend::ROOT_PIN) {
                Some(root) => roots.get(root).map(str::to_string),
                None => action::env_dep_value(name)
                    .unwrap_or_else(|_| Some(action::NON_UTF8.to_string())),
            },
            &self.cwd,
        )
    }

    /// With depend mode, the compile also writes its dependency file.
    fn run_args(&mut self, tool: &Tool) -> Vec<OsString> {
        if !self.depend {
            return tool.args.clone();
        }
        let temp = tempfile::Builder::new()
            .prefix("larder-dep-")
            .suffix(".d")
            .tempfile()
            .map(tempfile::NamedTempFile::into_temp_path);
        match temp {
            Ok(path) => {
                let args = self.inv.with_depfile(&path);
                self.depfile = Some(path);
                args.into_iter().map(OsString::from).collect()
            }
            Err(e) => {
                tracing::debug!(%e, "no dependency file: this compile is not stored");
                tool.args.clone()
            }
        }
    }

    /// The key's inputs and, in preprocessor mode, by content, each file the
    /// preprocessor read (the source and its headers), so a miss names the header that
    /// changed.
    fn inputs(&mut self, cx: &mut Ctx<'_>) -> Vec<larder_key::Input> {
        let mut out = self
            .key_inputs
            .as_ref()
            .map(CKeyInputs::inputs)
            .unwrap_or_default();
        if self.depend {
            // The manifest entry lists them.
            return out;
        }
        for f in &self.inputs {
            let path = self.cwd.join(f);
            if let Some(d) = cx.hasher.digest(&path) {
                out.push(larder_key::Input::digest(
                    larder_key::inputs::kind::SOURCE,
                    cx.roots.normalize_path(&path),
                    &d,
                ));
            }
        }
        out
    }

    /// The object goes where `-o` says, whatever the record's path.
    fn destination(&self, _cx: &Ctx<'_>, _output: &OutputFile) -> Result<PathBuf, String> {
        Ok(self.output.clone())
    }

    fn check_record(&self, record: &ActionRecord, destinations: &[PathBuf]) -> Result<(), String> {
        if destinations.len() != 1 {
            return Err(format!("{} outputs, expected 1", destinations.len()));
        }
        if record.exit_code != 0 {
            return Err("a failed compile".into());
        }
        // The compiler does not create the object's directory; neither does a hit.
        if !self.output.parent().is_none_or(Path::is_dir) {
            return Err(format!("no directory for {}", self.output.display()));
        }
        Ok(())
    }

    fn failure_detail(&self) -> String {
        CNotCacheable::CompileFailed.to_string()
    }

    fn collect(
        &mut self,
        cx: &mut Ctx<'_>,
        key: &Key,
        captured: &Captured,
        wall_start: SystemTime,
    ) -> Result<Collected, Stop<CNotCacheable>> {
        let read = if self.depend {
            let path = self.depfile.as_ref().ok_or_else(|| {
                CNotCacheable::UnreadableInput("the dependency file (not created)".into())
            })?;
            let text = std::fs::read_to_string(path)
                .map_err(|e| CNotCacheable::UnreadableInput(format!("the dependency file: {e}")))?;
            let read = depend::parse_depfile(&text);
            if read.is_empty() {
                return Err(
                    CNotCacheable::UnreadableInput("an empty dependency file".into()).into(),
                );
            }
            self.inputs = read.iter().map(PathBuf::from).collect();
            read
        } else {
            Vec::new()
        };
        // The object must be this compile's, and no input may have changed since the
        // key was computed (the object would not match the key's content).
        let fresh = std::fs::metadata(&self.output)
            .and_then(|m| m.modified())
            .is_ok_and(|m| m >= wall_start);
        if !fresh {
            return Err(CNotCacheable::NoOutput(self.output.display().to_string()).into());
        }
        for f in &self.inputs {
            let path = self.cwd.join(f);
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if meta.is_file() && crate::hashing::changed_at_or_after(&meta, wall_start) {
                return Err(
                    CNotCacheable::InputModifiedDuringCompile(f.display().to_string()).into(),
                );
            }
        }
        let stderr = String::from_utf8(captured.stderr.clone())
            .map_err(|_| CNotCacheable::BinaryOutput("stderr".into()))?;
        let stdout = String::from_utf8(captured.stdout.clone())
            .map_err(|_| CNotCacheable::BinaryOutput("stdout".into()))?;
        let (digest, size) = std::fs::File::open(&self.output)
            .and_then(Digest::of_reader)
            .map_err(|_| CNotCacheable::NoOutput(self.output.display().to_string()))?;
        let object = OutputFile {
            path: cx.roots.normalize_path(&self.output),
            digest,
            size,
            executable: false,
            rewrite_paths: false,
        };
        let entry = if self.depend {
            Some(self.depend_entry(cx, key.digest(), &read, wall_start)?)
        } else {
            None
        };
        let name = compile_name(&self.inv.args).unwrap_or_else(|| "cc".into());
        let record = cx.record(name, vec![object], captured, &stdout, &stderr);
        Ok(Collected {
            entry,
            record,
            sources: vec![BlobSource::File(self.output.clone(), None)],
            background: false,
        })
    }
}

impl CCompile {
    /// The manifest entry of a depend-mode compile that read `read` (spelled as in its
    /// dependency file, the source first); see [`depend`].
    fn depend_entry(
        &mut self,
        cx: &mut Ctx<'_>,
        invocation_key: &Digest,
        read: &[String],
        wall_start: SystemTime,
    ) -> Result<ManifestEntry, Stop<CNotCacheable>> {
        let mut scan = directives::Scan::default();
        scan.has_include.extend(self.inv.forced_includes());
        let mut files = Vec::new();
        let mut directives = Vec::new();
        let memo_dir = cx.store.local().layout().header_memo();
        for (i, f) in read.iter().enumerate() {
            let path = self.cwd.join(f);
            // The source (first) is read by this compile only: not worth an entry.
            let memo = (i > 0).then_some(memo_dir.as_path());
            let file = header_memo::read(memo, &path)
                .map_err(|_| CNotCacheable::UnreadableInput(path.display().to_string()))?;
            scan.merge(&file.facts, self.inv.language == Language::Assembler);
            cx.hasher.remember(&path, file.digest, file.size);
            files.push((cx.roots.normalize_path(&path), file.digest));
            directives.push((f.clone(), file.facts.includes));
        }
        if let Some(why) = &scan.refusal {
            tracing::debug!(%why, "keyed by the preprocessed text");
            let digest = key::preprocess(&self.compiler, &self.inv, &cx.roots)?.digest;
            self.preprocessed = Some(Some(digest));
            return Ok(ManifestEntry::new(
                invocation_key,
                vec![(depend::PREPROCESSED.to_string(), digest)],
                Vec::new(),
                Vec::new(),
            ));
        }
        let search = self.search.take().unwrap_or_default();
        // A name created in a watched directory while the compiler ran may or may not
        // have been seen: such a compile is not stored.
        let since = wall_start - std::time::Duration::from_millis(20);
        let mut absent = Vec::new();
        for (w, names) in depend::watched_dirs(&search, &directives, &scan.has_include) {
            let dir = if w.is_empty() {
                self.cwd.clone()
            } else {
                self.cwd.join(&w)
            };
            match depend::names_digest_since(&dir, names.iter().map(String::as_str), since) {
                Some((_, Some(new))) => {
                    return Err(CNotCacheable::InputModifiedDuringCompile(
                        new.display().to_string(),
                    )
                    .into());
                }
                Some((d, None)) => {
                    let normalized = cx.roots.normalize_path(&dir);
                    files.push((depend::names_path(&normalized, &names), d));
                }
                None if dir.symlink_metadata().is_ok() => {
                    return Err(CNotCacheable::UnreadableInput(dir.display().to_string()).into());
                }
                None => absent.push(cx.roots.normalize_path(&dir)),
            }
        }
        let mut pins = Vec::new();
        if scan.file_macro {
            for r in cx.roots.roots() {
                let under = |f: &String| {
                    f.strip_prefix(r.path.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
                };
                if read.iter().any(under) {
                    pins.push((
                        format!("{}{}", depend::ROOT_PIN, r.name),
                        Some(r.path.clone()),
                    ));
                }
            }
        }
        Ok(ManifestEntry::new(invocation_key, files, pins, absent))
    }
}

/// The roots of a C compile: the working directory, the target directory (from
/// `OUT_DIR`, else from the object's directory) and `CARGO_HOME`.
fn roots(cwd: &Path, output: &Path) -> Roots {
    let mut roots = vec![("cwd", cwd.to_path_buf())];
    let target = env::var_os("OUT_DIR")
        .and_then(|o| find_target_dir(Path::new(&o)))
        .or_else(|| output.parent().and_then(find_target_dir));
    if let Some(t) = target {
        roots.push(("target", t));
    }
    if let Some(h) = crate::roots::cargo_home() {
        roots.push(("cargo-home", h));
    }
    Roots::new(roots)
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
    let real = env::var_os(var)
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
    let Some(compiler) = vars
        .iter()
        .find_map(|v| env::var(v).and_then(|v| compiler_after_larder(&v)))
    else {
        // Not run by the `cc` crate through `CC="larder cc"`: an unknown command.
        let first = args
            .first()
            .map(|a| a.to_string_lossy())
            .unwrap_or_default();
        eprintln!("larder: error: unknown command `{first}` (see `larder --help`)");
        return 2;
    };
    if let Ok(config) = Config::load() {
        let unit = Unit {
            name: None,
            kind: UnitKind::CObject,
        };
        Reporter::new(&config, Instant::now(), unit)
            .report(&Outcome::not_cacheable(&CNotCacheable::Probe));
    }
    Tool {
        program: compiler,
        args,
    }
    .passthrough()
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
