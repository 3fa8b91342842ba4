//! Parsing a rustc command line into what larder needs to know about it.
//!
//! [`Invocation::parse`] expands `@argfile`s, splits the arguments into options and the
//! one input file, and extracts the facts the key and the restore step need: crate name
//! and types, emit kinds, output directory, externs, library search paths, incremental
//! directory. Anything it does not understand makes the invocation not cacheable
//! ([`NotCacheable`]); it never guesses.

use std::path::{Path, PathBuf};

use crate::reason::NotCacheable;

/// The kinds of output rustc can be asked to emit that larder caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Emit {
    /// A Makefile-style `.d` file listing the source files read.
    DepInfo,
    /// `lib<name>.rmeta`.
    Metadata,
    /// The linked or archived artifact of each crate type.
    Link,
}

/// A crate type (`--crate-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CrateType {
    /// An executable.
    Bin,
    /// `lib` or `rlib`: a Rust library archive.
    Rlib,
    /// A Rust dynamic library.
    Dylib,
    /// A C-compatible dynamic library.
    Cdylib,
    /// A C-compatible static library.
    Staticlib,
    /// A procedural macro, loaded by the compiler.
    ProcMacro,
}

impl CrateType {
    fn parse(s: &str) -> Option<CrateType> {
        Some(match s {
            "bin" => CrateType::Bin,
            "lib" | "rlib" => CrateType::Rlib,
            "dylib" => CrateType::Dylib,
            "cdylib" => CrateType::Cdylib,
            "staticlib" => CrateType::Staticlib,
            "proc-macro" => CrateType::ProcMacro,
            _ => return None,
        })
    }

    /// Whether the output of this crate type is produced by the system linker, so that
    /// every library it links (transitively) and the linker itself are inputs.
    pub fn is_linked(self) -> bool {
        !matches!(self, CrateType::Rlib)
    }

    /// The file name rustc gives the `link` output of this crate type on Linux.
    pub fn file_name(self, crate_name: &str, extra: &str) -> String {
        match self {
            CrateType::Bin => format!("{crate_name}{extra}"),
            CrateType::Rlib => format!("lib{crate_name}{extra}.rlib"),
            CrateType::Dylib | CrateType::Cdylib | CrateType::ProcMacro => {
                format!("lib{crate_name}{extra}.so")
            }
            CrateType::Staticlib => format!("lib{crate_name}{extra}.a"),
        }
    }
}

/// Whether `crate_name` is cargo's name for a build script's crate: `build_script_`
/// and the script's file stem (`build_script_build`, `build_script_main`).
pub fn is_build_script_name(crate_name: &str) -> bool {
    crate_name
        .strip_prefix("build_script_")
        .is_some_and(|stem| !stem.is_empty())
}

/// An `--extern` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extern {
    /// The crate name, without options such as `priv:` or `noprelude:`.
    pub name: String,
    /// The library file, if given (absent for sysroot crates such as `proc_macro`).
    pub path: Option<PathBuf>,
}

/// The kind of a `-L` search path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchKind {
    /// `dependency=`: where transitive Rust dependencies are found.
    Dependency,
    /// `crate=`: direct Rust dependencies.
    Crate,
    /// `native=`: native libraries.
    Native,
    /// `framework=` (macOS).
    Framework,
    /// No kind, or `all=`.
    All,
}

/// A parsed rustc invocation.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The compiler executable the wrapper was given.
    pub rustc: PathBuf,
    /// The arguments after `@argfile` expansion, in order.
    pub args: Vec<String>,
    /// The working directory rustc runs in.
    pub cwd: PathBuf,
    /// `--crate-name`.
    pub crate_name: String,
    /// `--crate-type`, deduplicated, in order.
    pub crate_types: Vec<CrateType>,
    /// `--emit`, sorted (default: `link`).
    pub emits: Vec<Emit>,
    /// `--out-dir`, absolute.
    pub out_dir: PathBuf,
    /// The source file, as given.
    pub input: String,
    /// `-C extra-filename`, or empty.
    pub extra_filename: String,
    /// `-C incremental`, absolute, if given.
    pub incremental: Option<PathBuf>,
    /// `--externs`, in order.
    pub externs: Vec<Extern>,
    /// `-L` paths with their kinds, absolute.
    pub search_paths: Vec<(SearchKind, PathBuf)>,
    /// `-l` libraries: (kind, name) where kind is `static`, `dylib`, ... or empty.
    pub link_libs: Vec<(String, String)>,
    /// `--target`, if given.
    pub target: Option<String>,
    /// `-C linker`, if given.
    pub linker: Option<String>,
    /// The words of `-C link-arg(s)` and `-C pre-link-arg(s)`, in order: what rustc passes
    /// on to the linker (a `-fuse-ld=` among them chooses the linker a C driver runs).
    pub link_args: Vec<String>,
    /// Files named by arguments whose content is an input (`-C profile-use`, a target
    /// spec `.json`, files named in `-C link-arg(s)`).
    pub arg_files: Vec<PathBuf>,
    /// Whether `--json` includes `artifacts`, so cargo expects artifact notifications.
    pub json_artifacts: bool,
}

/// Options that take a value, as separate argument or joined (`-Cx`, `--emit=x`).
const VALUE_OPTS: &[&str] = &[
    "--cfg",
    "--check-cfg",
    "-L",
    "-l",
    "--crate-type",
    "--crate-name",
    "--edition",
    "--emit",
    "--print",
    "-o",
    "--out-dir",
    "--explain",
    "--target",
    "--cap-lints",
    "--error-format",
    "--json",
    "--color",
    "--diagnostic-width",
    "--remap-path-prefix",
    "--sysroot",
    "--extern",
    "-C",
    "--codegen",
    "-Z",
    "-W",
    "--warn",
    "-A",
    "--allow",
    "-D",
    "--deny",
    "-F",
    "--forbid",
    "--force-warn",
];

/// Options without a value.
const FLAG_OPTS: &[&str] = &["--test", "-g", "-O", "-v", "--verbose"];

/// Options that make rustc answer a question instead of compiling.
const INFO_OPTS: &[&str] = &["-V", "-vV", "-Vv", "--version", "-h", "--help"];

impl Invocation {
    /// Parses `args` (everything after the compiler path) for a rustc run in `cwd`.
    ///
    /// # Errors
    /// [`NotCacheable`] with the first reason the invocation cannot be cached.
    pub fn parse(
        rustc: PathBuf,
        raw_args: Vec<String>,
        cwd: PathBuf,
    ) -> Result<Invocation, NotCacheable> {
        let args = expand_argfiles(raw_args, &cwd)?;
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut inputs: Vec<String> = Vec::new();
        let mut i = 0;
        while i < args.len() {
            let a = &args[i];
            i += 1;
            if INFO_OPTS.contains(&a.as_str()) {
                return Err(NotCacheable::InfoQuery);
            }
            if FLAG_OPTS.contains(&a.as_str()) {
                pairs.push((a.clone(), String::new()));
                continue;
            }
            if a == "-" {
                return Err(NotCacheable::StdinInput);
            }
            if !a.starts_with('-') {
                inputs.push(a.clone());
                continue;
            }
            let (opt, value) =
                if let Some((o, v)) = a.split_once('=').filter(|(o, _)| o.starts_with("--")) {
                    (o.to_string(), Some(v.to_string()))
                } else if a.starts_with("--") {
                    (a.clone(), None)
                } else if a.len() > 2 {
                    (a[..2].to_string(), Some(a[2..].to_string()))
                } else {
                    (a.clone(), None)
                };
            if !VALUE_OPTS.contains(&opt.as_str()) {
                return Err(NotCacheable::UnknownFlag(a.clone()));
            }
            let value = match value {
                Some(v) => v,
                None => {
                    let Some(v) = args.get(i) else {
                        return Err(NotCacheable::UnknownFlag(a.clone()));
                    };
                    i += 1;
                    v.clone()
                }
            };
            let opt = match opt.as_str() {
                "--codegen" => "-C".to_string(),
                _ => opt,
            };
            pairs.push((opt, value));
        }

        let mut inv = Invocation {
            rustc,
            args,
            cwd: cwd.clone(),
            crate_name: String::new(),
            crate_types: Vec::new(),
            emits: Vec::new(),
            out_dir: PathBuf::new(),
            input: String::new(),
            extra_filename: String::new(),
            incremental: None,
            externs: Vec::new(),
            search_paths: Vec::new(),
            link_libs: Vec::new(),
            target: None,
            linker: None,
            link_args: Vec::new(),
            arg_files: Vec::new(),
            json_artifacts: false,
        };
        let abs = |p: &str| cwd.join(p);
        let mut out_dir = None;
        for (opt, value) in &pairs {
            match opt.as_str() {
                "--print" => return Err(NotCacheable::Print),
                "--explain" => return Err(NotCacheable::InfoQuery),
                "-o" => return Err(NotCacheable::ExplicitOutputPath),
                "--sysroot" => return Err(NotCacheable::CustomSysroot),
                "-Z" => return Err(NotCacheable::UnstableFlag(value.clone())),
                "--crate-name" => inv.crate_name = value.clone(),
                "--crate-type" => {
                    for t in value.split(',') {
                        let ty = CrateType::parse(t)
                            .ok_or_else(|| NotCacheable::UnknownCrateType(t.to_string()))?;
                        if !inv.crate_types.contains(&ty) {
                            inv.crate_types.push(ty);
                        }
                    }
                }
                "--emit" => {
                    for e in value.split(',') {
                        if e.contains('=') {
                            return Err(NotCacheable::ExplicitOutputPath);
                        }
                        let emit = match e {
                            "dep-info" => Emit::DepInfo,
                            "metadata" => Emit::Metadata,
                            "link" => Emit::Link,
                            other => return Err(NotCacheable::UnsupportedEmit(other.to_string())),
                        };
                        if !inv.emits.contains(&emit) {
                            inv.emits.push(emit);
                        }
                    }
                }
                "--out-dir" => out_dir = Some(abs(value)),
                "--extern" => {
                    let (lhs, path) = match value.split_once('=') {
                        Some((l, p)) => (l, Some(abs(p))),
                        None => (value.as_str(), None),
                    };
                    let name = lhs.rsplit(':').next().unwrap_or(lhs).to_string();
                    inv.externs.push(Extern { name, path });
                }
                "-L" => {
                    let (kind, path) = match value.split_once('=') {
                        Some(("dependency", p)) => (SearchKind::Dependency, p),
                        Some(("crate", p)) => (SearchKind::Crate, p),
                        Some(("native", p)) => (SearchKind::Native, p),
                        Some(("framework", p)) => (SearchKind::Framework, p),
                        Some(("all", p)) => (SearchKind::All, p),
                        _ => (SearchKind::All, value.as_str()),
                    };
                    inv.search_paths.push((kind, abs(path)));
                }
                "-l" => {
                    let (kind, name) = match value.split_once('=') {
                        Some((k, n)) => (k.split(':').next().unwrap_or(k).to_string(), n),
                        None => (String::new(), value.as_str()),
                    };
                    let name = name.split(':').next().unwrap_or(name).to_string();
                    inv.link_libs.push((kind, name));
                }
                "--target" => {
                    if value.ends_with(".json") {
                        inv.arg_files.push(abs(value));
                    }
                    inv.target = Some(value.clone());
                }
                "--json" => inv.json_artifacts |= value.split(',').any(|v| v == "artifacts"),
                "-C" => {
                    let (name, v) = match value.split_once('=') {
                        Some((n, v)) => (n, Some(v)),
                        None => (value.as_str(), None),
                    };
                    match (name, v) {
                        ("extra-filename", Some(v)) => inv.extra_filename = v.to_string(),
                        ("incremental", Some(v)) => inv.incremental = Some(abs(v)),
                        ("save-temps", _) => return Err(NotCacheable::ExtraOutputs(value.clone())),
                        ("split-debuginfo", Some(v)) if v != "off" => {
                            return Err(NotCacheable::ExtraOutputs(value.clone()));
                        }
                        ("linker", Some(v)) => inv.linker = Some(v.to_string()),
                        ("profile-use", Some(v)) => inv.arg_files.push(abs(v)),
                        ("link-arg" | "link-args" | "pre-link-arg" | "pre-link-args", Some(v)) => {
                            inv.arg_files.extend(files_named_in(v, &cwd));
                            if name.ends_with("args") {
                                inv.link_args
                                    .extend(v.split_whitespace().map(str::to_string));
                            } else {
                                inv.link_args.push(v.to_string());
                            }
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        if inputs.len() != 1 {
            return Err(NotCacheable::InputCount(inputs.len()));
        }
        inv.input = inputs.remove(0);
        if inv.crate_name.is_empty() {
            return Err(NotCacheable::NoCrateName);
        }
        if inv.crate_types.is_empty() {
            // `--test` builds a test harness, an executable, and needs no crate type.
            if !pairs.iter().any(|(o, _)| o == "--test") {
                return Err(NotCacheable::NoCrateType);
            }
            inv.crate_types.push(CrateType::Bin);
        }
        if inv.emits.is_empty() {
            inv.emits.push(Emit::Link);
        }
        inv.emits.sort();
        inv.out_dir = out_dir.ok_or(NotCacheable::NoOutDir)?;
        Ok(inv)
    }

    /// Whether this invocation compiles a package's build script: cargo names the crate
    /// `build_script_<file stem>` (`build_script_build` for `build.rs`,
    /// `build_script_main` for aws-lc-sys's `build = "builder/main.rs"`), links it as a
    /// binary, and writes it under `build/<package>-<hash>/`, never `deps/`.
    pub fn is_build_script(&self) -> bool {
        is_build_script_name(&self.crate_name)
            && self.crate_types == [CrateType::Bin]
            && self.emits.contains(&Emit::Link)
            && self
                .out_dir
                .parent()
                .and_then(|p| p.file_name())
                .is_some_and(|n| n == "build")
    }

    /// Whether any output of this invocation is produced by the system linker.
    pub fn is_linked(&self) -> bool {
        self.emits.contains(&Emit::Link) && self.crate_types.iter().any(|t| t.is_linked())
    }

    /// The files rustc will write, all in `--out-dir`, as predicted from rustc's naming
    /// rules for Linux targets. The dep-info file, if emitted, comes first.
    pub fn expected_outputs(&self) -> Vec<PathBuf> {
        let (name, extra) = (&self.crate_name, &self.extra_filename);
        let mut out = Vec::new();
        if self.emits.contains(&Emit::DepInfo) {
            out.push(self.out_dir.join(format!("{name}{extra}.d")));
        }
        if self.emits.contains(&Emit::Metadata) {
            out.push(self.out_dir.join(format!("lib{name}{extra}.rmeta")));
        }
        if self.emits.contains(&Emit::Link) {
            for t in &self.crate_types {
                let p = self.out_dir.join(t.file_name(name, extra));
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
        out
    }

    /// The dep-info file rustc writes, if `--emit` asks for one.
    pub fn dep_info_path(&self) -> Option<PathBuf> {
        self.emits.contains(&Emit::DepInfo).then(|| {
            self.out_dir
                .join(format!("{}{}.d", self.crate_name, self.extra_filename))
        })
    }
}

/// Expands `@path` arguments (one argument per line) as rustc does.
fn expand_argfiles(raw: Vec<String>, cwd: &Path) -> Result<Vec<String>, NotCacheable> {
    let mut out = Vec::with_capacity(raw.len());
    for a in raw {
        if let Some(p) = a.strip_prefix('@') {
            let path = cwd.join(p);
            let text = std::fs::read_to_string(&path)
                .map_err(|_| NotCacheable::ArgFile(path.display().to_string()))?;
            out.extend(text.lines().map(str::to_string));
        } else {
            out.push(a);
        }
    }
    Ok(out)
}

/// Existing files named in a linker argument such as `-Wl,--version-script=v.map`.
fn files_named_in(value: &str, cwd: &Path) -> Vec<PathBuf> {
    value
        .split(|c: char| c.is_whitespace() || c == ',')
        .map(|t| t.rsplit('=').next().unwrap_or(t))
        .filter(|t| !t.is_empty() && !t.starts_with('-'))
        .map(|t| cwd.join(t))
        .filter(|p| p.is_file())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &str) -> Result<Invocation, NotCacheable> {
        Invocation::parse(
            "rustc".into(),
            args.split_whitespace().map(str::to_string).collect(),
            "/ws".into(),
        )
    }

    #[test]
    fn cargo_lib_invocation() {
        let inv = parse(
            "--crate-name a --edition=2024 a/src/lib.rs --error-format=json --json=diagnostic-rendered-ansi,artifacts,future-incompat \
             --crate-type lib --emit=dep-info,metadata,link -C embed-bitcode=no -C metadata=cd28 -C extra-filename=-5784 \
             --out-dir /ws/target/debug/deps -C incremental=/ws/target/debug/incremental -L dependency=/ws/target/debug/deps \
             --extern b=/ws/target/debug/deps/libb-1.rmeta --extern proc_macro",
        )
        .unwrap();
        assert_eq!(inv.crate_name, "a");
        assert_eq!(inv.crate_types, vec![CrateType::Rlib]);
        assert_eq!(inv.emits, vec![Emit::DepInfo, Emit::Metadata, Emit::Link]);
        assert_eq!(inv.input, "a/src/lib.rs");
        assert!(inv.json_artifacts);
        assert_eq!(
            inv.incremental,
            Some(PathBuf::from("/ws/target/debug/incremental"))
        );
        assert_eq!(inv.externs.len(), 2);
        assert_eq!(inv.externs[1].path, None);
        assert!(!inv.is_linked());
        let outs = inv.expected_outputs();
        assert_eq!(
            outs,
            vec![
                PathBuf::from("/ws/target/debug/deps/a-5784.d"),
                PathBuf::from("/ws/target/debug/deps/liba-5784.rmeta"),
                PathBuf::from("/ws/target/debug/deps/liba-5784.rlib"),
            ]
        );
    }

    #[test]
    fn build_scripts_by_crate_name_and_directory() {
        let script = |name: &str, out: &str| {
            parse(&format!(
                "--crate-name {name} b.rs --crate-type bin --emit=dep-info,link --out-dir {out}"
            ))
            .unwrap()
            .is_build_script()
        };
        assert!(script("build_script_build", "/ws/target/debug/build/a-1"));
        assert!(script(
            "build_script_main",
            "/ws/target/debug/build/aws-lc-sys-2"
        ));
        // A package's own binary that happens to be called so is compiled into `deps/`.
        assert!(!script("build_script_main", "/ws/target/debug/deps"));
        assert!(!script("build_script_", "/ws/target/debug/build/a-1"));
        assert!(!script("build_main", "/ws/target/debug/build/a-1"));
    }

    #[test]
    fn bin_and_cdylib_outputs() {
        let inv = parse("--crate-name x src/main.rs --crate-type bin --crate-type cdylib --out-dir o -C extra-filename=-h").unwrap();
        assert!(inv.is_linked());
        assert_eq!(
            inv.expected_outputs(),
            vec![PathBuf::from("/ws/o/x-h"), PathBuf::from("/ws/o/libx-h.so")]
        );
    }

    #[test]
    fn test_harness_is_an_executable() {
        let inv = parse("--crate-name a src/lib.rs --emit=dep-info,link --test -C extra-filename=-9 --out-dir /ws/t").unwrap();
        assert_eq!(inv.crate_types, vec![CrateType::Bin]);
        assert!(inv.is_linked());
        assert_eq!(inv.expected_outputs()[1], PathBuf::from("/ws/t/a-9"));
    }

    #[test]
    fn not_cacheable_cases() {
        assert_eq!(
            parse("- --crate-name ___ --print=file-names").unwrap_err(),
            NotCacheable::StdinInput
        );
        assert_eq!(parse("-vV").unwrap_err(), NotCacheable::InfoQuery);
        assert_eq!(
            parse("x.rs --crate-name x --crate-type lib --print cfg").unwrap_err(),
            NotCacheable::Print
        );
        assert_eq!(
            parse("x.rs --crate-name x --crate-type lib --emit=asm --out-dir o").unwrap_err(),
            NotCacheable::UnsupportedEmit("asm".into())
        );
        assert_eq!(
            parse("x.rs --crate-name x --out-dir o").unwrap_err(),
            NotCacheable::NoCrateType
        );
        assert_eq!(
            parse("x.rs --crate-type lib --out-dir o").unwrap_err(),
            NotCacheable::NoCrateName
        );
        assert_eq!(
            parse("x.rs --crate-name x --crate-type lib").unwrap_err(),
            NotCacheable::NoOutDir
        );
        assert!(matches!(
            parse("x.rs --crate-name x --crate-type lib --out-dir o --frobnicate"),
            Err(NotCacheable::UnknownFlag(_))
        ));
        assert!(matches!(
            parse("x.rs --crate-name x --crate-type lib --out-dir o -Csave-temps"),
            Err(NotCacheable::ExtraOutputs(_))
        ));
        assert!(matches!(
            parse("x.rs --crate-name x --crate-type lib --out-dir o -Zthreads=2"),
            Err(NotCacheable::UnstableFlag(_))
        ));
        assert_eq!(
            parse("a.rs b.rs --crate-name x --crate-type lib --out-dir o").unwrap_err(),
            NotCacheable::InputCount(2)
        );
    }

    #[test]
    fn argfiles_are_expanded() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("args"),
            "--crate-name\nz\n--crate-type\nlib\n",
        )
        .unwrap();
        let inv = Invocation::parse(
            "rustc".into(),
            vec![
                "z.rs".into(),
                "@args".into(),
                "--out-dir".into(),
                "o".into(),
            ],
            dir.path().to_path_buf(),
        )
        .unwrap();
        assert_eq!(inv.crate_name, "z");
        assert!(inv.args.contains(&"--crate-type".to_string()));
    }
}
