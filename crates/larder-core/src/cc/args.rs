//! Reading a C or C++ compiler command line (GCC and Clang syntax).
//!
//! [`CInvocation::parse`] accepts only what larder knows to be safe: a compile (`-c`)
//! of exactly one source file to one object, with flags from families that change
//! nothing but that object (`-O*`, `-g*`, `-W*`, `-f*`, `-m*`, `-D`, `-I`, `-std=`,
//! ...). Everything else is a [`CNotCacheable`] and runs as a plain compile: links,
//! probes, several sources, standard input, response files, dependency files, flags
//! that write extra files (`-save-temps`, `-fprofile-*`, `--coverage`) or read files
//! the preprocessor does not show (`-fplugin`, `-specs`, `-B`, `-Xclang`), and any
//! argument it does not recognise.

use std::path::{Path, PathBuf};

use super::reason::CNotCacheable;

/// Whether a file name is a C or C++ compiler driver: `cc`, `gcc`, `clang`, `c++`,
/// `g++`, `clang++`, optionally with a target prefix (`x86_64-linux-gnu-gcc`) and a
/// version suffix (`gcc-12`, `clang++-17`).
pub fn is_compiler_name(program: &str) -> bool {
    let name = Path::new(program)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    // `gcc-12`, `clang-17.0`: drop a trailing `-<version>`.
    let name = match name.rsplit_once('-') {
        Some((rest, version))
            if !version.is_empty() && version.chars().all(|c| c.is_ascii_digit() || c == '.') =>
        {
            rest
        }
        _ => name,
    };
    // `x86_64-linux-gnu-gcc`: the driver is the last `-` component.
    let base = name.rsplit('-').next().unwrap_or(name);
    matches!(base, "cc" | "gcc" | "clang" | "c++" | "g++" | "clang++")
}

/// How the source's content reaches the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// C, C++, Objective-C and assembler-with-cpp (`.S`): the preprocessed text.
    Preprocessed,
    /// Plain assembler (`.s`) and preprocessed sources (`.i`, `.ii`): the file itself.
    Raw,
}

/// Whether the source is assembler (which may `.include` files).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// C, C++, Objective-C.
    C,
    /// Assembler, with or without the preprocessor.
    Assembler,
}

/// A compile of one source to one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CInvocation {
    /// Every argument, as given.
    pub args: Vec<String>,
    /// The source file, as given.
    pub source: PathBuf,
    /// The object file, as given (`-o`) or the compiler's default (`<stem>.o`).
    pub output: PathBuf,
    /// How the source goes into the key.
    pub kind: SourceKind,
    /// C-like or assembler.
    pub language: Language,
    /// Indices of `-o` and its value: left out of the key and of the preprocessor run.
    output_args: Vec<usize>,
    /// Index of `-c`: replaced by `-E` for the preprocessor run.
    compile_arg: usize,
}

/// Flags whose value is the next argument when given alone.
const SEPARATE_VALUE: &[&str] = &[
    "-I",
    "-D",
    "-U",
    "-include",
    // GCC's and Clang's long spelling of `-include` (aws-lc-sys passes it).
    "--include",
    "-imacros",
    "-isystem",
    "-iquote",
    "-idirafter",
    "-iprefix",
    "-iwithprefix",
    "-iwithprefixbefore",
    "-isysroot",
    "-imultilib",
    "-L",
    "-l",
    "-Xlinker",
    "-Xpreprocessor",
    "-T",
    "-u",
    "-z",
    "-e",
    "-arch",
    "-target",
    "--target",
    "--sysroot",
    "--param",
    "-mllvm",
    "-x",
];

/// Exact flags that are safe: they change nothing but the object and the messages.
const SAFE_EXACT: &[&str] = &[
    "-c",
    "-w",
    "-v",
    "-H",
    "-P",
    "-C",
    "-CC",
    "-ansi",
    "-pipe",
    "-pthread",
    "-pthreads",
    "-p",
    "-pg",
    "-pie",
    "-no-pie",
    "-static",
    "-shared",
    "-rdynamic",
    "-s",
    "-undef",
    "-trigraphs",
    "-traditional-cpp",
    "-integrated-as",
    "-no-integrated-as",
    "-Qunused-arguments",
    "-Qn",
    "-Qy",
];

/// Prefixes of flag families that are safe, apart from the exceptions in
/// [`classify_flag`].
const SAFE_PREFIXES: &[&str] = &[
    "-O",
    "-W",
    "-f",
    "-g",
    "-m",
    "-D",
    "-U",
    "-I",
    "-L",
    "-l",
    "-std=",
    "-pedantic",
    "-include",
    // Not `--include-directory` and the like: those are unknown and not cacheable.
    "--include=",
    "-imacros",
    "-isystem",
    "-iquote",
    "-idirafter",
    "-iprefix",
    "-iwithprefix",
    "-isysroot",
    "-imultilib",
    "-nostdinc",
    "-nostdlib",
    "-nodefaultlibs",
    "-nostartfiles",
    "-stdlib=",
    "-rtlib=",
    "-unwindlib=",
    "--sysroot=",
    "--target=",
    "--param=",
    "-static-",
];

/// `-f` options that write files or read files larder does not see.
const F_EXTRA_OUTPUTS: &[&str] = &[
    "-fprofile",
    "-fcs-profile",
    "-fauto-profile",
    "-fbranch-probabilities",
    "-ftest-coverage",
    "-fcreate-profile",
    "-fdump",
    "-fstack-usage",
    "-fcallgraph-info",
    "-fsave-optimization-record",
    "-fopt-record",
    "-ftime-trace",
    "-fcompare-debug",
    "-fcrash-diagnostics",
    "-fmodules",
    "-fmodule",
    "-fcxx-modules",
    "-fimplicit-modules",
    "-fprebuilt-module",
];

const F_UNSUPPORTED: &[&str] = &[
    "-fplugin",
    "-fpass-plugin",
    "-fsanitize-blacklist",
    "-fsanitize-ignorelist",
    "-fsanitize-system-ignorelist",
    "-fsanitize-coverage-allowlist",
    "-fsanitize-coverage-ignorelist",
    "-fxray-attr-list",
    "-fxray-always-instrument",
    "-fxray-never-instrument",
    "-fembed-offload-object",
];

fn classify_flag(a: &str) -> Result<(), CNotCacheable> {
    let extra = || Err(CNotCacheable::ExtraOutputs(a.to_string()));
    let unsupported = || Err(CNotCacheable::UnsupportedFlag(a.to_string()));
    if matches!(a, "-E" | "-S" | "-M" | "-MM" | "-fsyntax-only" | "-###")
        || a.starts_with("--analyze")
    {
        return Err(CNotCacheable::OtherOutput(a.to_string()));
    }
    if a.starts_with("-M") {
        return Err(CNotCacheable::DepFile(a.to_string()));
    }
    if a.starts_with("-save-temps") || a.starts_with("--save-temps") || a == "--coverage" {
        return extra();
    }
    if a.starts_with("-Xclang")
        || a.starts_with("-Xassembler")
        || a.starts_with("-B")
        || a.starts_with("-specs")
        || a.starts_with("--specs")
        || a == "-wrapper"
        || a.starts_with("-ivfsoverlay")
        || a.starts_with("-index-store-path")
    {
        return unsupported();
    }
    if a.starts_with("-f") {
        if F_EXTRA_OUTPUTS.iter().any(|p| a.starts_with(p))
            || (a.starts_with("-fopt-info") && a.contains('='))
            || (a.starts_with("-fdiagnostics") && a.contains("sarif"))
        {
            return extra();
        }
        if F_UNSUPPORTED.iter().any(|p| a.starts_with(p)) {
            return unsupported();
        }
    }
    if a.starts_with("-gsplit-dwarf") {
        return extra();
    }
    if a == "-gmodules" {
        return unsupported();
    }
    if let Some(list) = a.strip_prefix("-Wp,") {
        if list.split(',').any(|o| o.starts_with("-M")) {
            return Err(CNotCacheable::DepFile(a.to_string()));
        }
        return Ok(());
    }
    if let Some(list) = a.strip_prefix("-Wa,") {
        if list.split(',').any(|o| {
            o.starts_with("-a")
                || o.starts_with("--MD")
                || o.starts_with("--listing")
                || o.starts_with("-I")
        }) {
            return extra();
        }
        return Ok(());
    }
    if SAFE_EXACT.contains(&a) || SAFE_PREFIXES.iter().any(|p| a.starts_with(p)) {
        return Ok(());
    }
    Err(CNotCacheable::UnknownFlag(a.to_string()))
}

/// The source kind for an `-x` language, or `None` to go by the file's extension.
fn language_kind(lang: &str) -> Result<Option<(SourceKind, Language)>, CNotCacheable> {
    Ok(Some(match lang {
        "none" => return Ok(None),
        "c" | "c++" | "objective-c" | "objective-c++" => (SourceKind::Preprocessed, Language::C),
        "assembler-with-cpp" => (SourceKind::Preprocessed, Language::Assembler),
        "assembler" => (SourceKind::Raw, Language::Assembler),
        "cpp-output" | "c++-cpp-output" | "objective-c-cpp-output" => {
            (SourceKind::Raw, Language::C)
        }
        other => return Err(CNotCacheable::InputKind(format!("-x {other}"))),
    }))
}

fn extension_kind(source: &str) -> Result<(SourceKind, Language), CNotCacheable> {
    let ext = Path::new(source)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default();
    Ok(match ext {
        "c" | "cc" | "cp" | "cxx" | "cpp" | "CPP" | "c++" | "C" | "m" | "mm" | "M" => {
            (SourceKind::Preprocessed, Language::C)
        }
        "S" | "sx" => (SourceKind::Preprocessed, Language::Assembler),
        "s" => (SourceKind::Raw, Language::Assembler),
        "i" | "ii" | "mi" | "mii" => (SourceKind::Raw, Language::C),
        other => return Err(CNotCacheable::InputKind(format!("`.{other}`"))),
    })
}

/// The name reports use for a compile: `cc:<source file name>`, when the arguments
/// have `-c` and an argument that looks like a source file; `None` for probes and links.
pub fn compile_name(args: &[String]) -> Option<String> {
    if !args.iter().any(|a| a == "-c") {
        return None;
    }
    args.iter()
        .filter(|a| !a.starts_with('-'))
        .find(|a| extension_kind(a).is_ok())
        .and_then(|a| Path::new(a).file_name())
        .map(|n| format!("cc:{}", n.to_string_lossy()))
}

impl CInvocation {
    /// Parses a compiler command line.
    ///
    /// # Errors
    /// [`CNotCacheable`] if the invocation is not a compile larder can cache.
    pub fn parse(args: Vec<String>) -> Result<CInvocation, CNotCacheable> {
        if !args.iter().any(|a| a == "-c") {
            let other = ["-E", "-S", "-M", "-MM", "-fsyntax-only"];
            return Err(match args.iter().find(|a| other.contains(&a.as_str())) {
                Some(a) => CNotCacheable::OtherOutput(a.clone()),
                None => CNotCacheable::NotACompile,
            });
        }
        let mut compile_arg = None;
        let mut output: Option<PathBuf> = None;
        let mut output_args = Vec::new();
        let mut lang: Option<(SourceKind, Language)> = None;
        let mut inputs: Vec<(usize, Option<(SourceKind, Language)>)> = Vec::new();
        let mut i = 0;
        while i < args.len() {
            let a = args[i].as_str();
            let next = || {
                args.get(i + 1)
                    .map(String::as_str)
                    .ok_or_else(|| CNotCacheable::MissingValue(a.to_string()))
            };
            if a == "-c" {
                compile_arg = Some(i);
            } else if a == "-o" {
                output = Some(PathBuf::from(next()?));
                output_args.extend([i, i + 1]);
                i += 1;
            } else if let Some(o) = a.strip_prefix("-o") {
                output = Some(PathBuf::from(o));
                output_args.push(i);
            } else if a == "-" {
                return Err(CNotCacheable::StdinInput);
            } else if a.starts_with('@') {
                return Err(CNotCacheable::ResponseFile);
            } else if a == "-x" {
                lang = language_kind(next()?)?;
                i += 1;
            } else if let Some(l) = a.strip_prefix("-x") {
                lang = language_kind(l)?;
            } else if SEPARATE_VALUE.contains(&a) {
                let v = next()?;
                if a == "-Xpreprocessor" && v.starts_with("-M") {
                    return Err(CNotCacheable::DepFile(v.to_string()));
                }
                i += 1;
            } else if a.starts_with('-') {
                classify_flag(a)?;
            } else {
                inputs.push((i, lang));
            }
            i += 1;
        }
        let compile_arg = compile_arg.ok_or(CNotCacheable::NotACompile)?;
        if inputs.len() != 1 {
            return Err(CNotCacheable::InputCount(inputs.len()));
        }
        let (index, lang) = inputs[0];
        let source = args[index].clone();
        let (kind, language) = match lang {
            Some(k) => k,
            None => extension_kind(&source)?,
        };
        let output = match output {
            Some(o) if o.as_os_str() == "-" => {
                return Err(CNotCacheable::OtherOutput("-o -".into()));
            }
            Some(o) => o,
            None => {
                let stem = Path::new(&source)
                    .file_stem()
                    .ok_or_else(|| CNotCacheable::InputKind(source.clone()))?;
                PathBuf::from(format!("{}.o", stem.to_string_lossy()))
            }
        };
        Ok(CInvocation {
            source: PathBuf::from(source),
            output,
            kind,
            language,
            output_args,
            compile_arg,
            args,
        })
    }

    /// The arguments that go into the key: all but `-o <object>`.
    pub fn key_args(&self) -> impl Iterator<Item = &str> {
        self.args
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.output_args.contains(i))
            .map(|(_, a)| a.as_str())
    }

    /// Whether the compile can be keyed by the dependency file it writes
    /// ([`super::depend`]): a source the preprocessor reads (C, C++, Objective-C,
    /// assembler with `cpp`; an assembler text that may `.include` is keyed by its
    /// preprocessed text), without arguments that pass options to the preprocessor
    /// unseen (`-Wp,`, `-Xpreprocessor`) or build the search list from a prefix
    /// (`-iprefix`, `-iwithprefix`, `-imultilib`).
    pub fn depend_eligible(&self) -> bool {
        self.kind == SourceKind::Preprocessed
            && !self.args.iter().any(|a| {
                a.starts_with("-Wp,")
                    || a.starts_with("-Xpreprocessor")
                    || a.starts_with("-iprefix")
                    || a.starts_with("-iwithprefix")
                    || a.starts_with("-imultilib")
            })
    }

    /// The arguments of the compile with a dependency file written to `depfile`.
    pub fn with_depfile(&self, depfile: &Path) -> Vec<String> {
        let mut args = self.args.clone();
        args.extend(["-MD".to_string(), "-MF".to_string()]);
        args.push(depfile.to_string_lossy().into_owned());
        args
    }

    /// The arguments that make the compiler print its header search list (`-E -v` of an
    /// empty source in the same language): the source, the object, `-c`, and flags that
    /// cannot change the list (`-D`, `-U`, `-W`, `-O`, `-g`, `-f`, `-include`,
    /// `-imacros` and their values) are left out.
    pub fn search_probe_args(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut skip_next = false;
        let source = self.source.to_string_lossy();
        for (i, a) in self.args.iter().enumerate() {
            if skip_next {
                skip_next = false;
                continue;
            }
            if self.output_args.contains(&i) || i == self.compile_arg || *a == source {
                continue;
            }
            if matches!(
                a.as_str(),
                "-D" | "-U" | "-include" | "--include" | "-imacros"
            ) {
                skip_next = true;
                continue;
            }
            let dropped = ["-D", "-U", "-W", "-O", "-g", "-f", "-include", "--include="]
                .iter()
                .any(|p| a.starts_with(p))
                || a.starts_with("-imacros");
            if !dropped {
                out.push(a.clone());
            }
        }
        // `-MD -MF /dev/null`: a compiler that does not take them fails the probe.
        out.extend(
            [
                "-E",
                "-v",
                "-MD",
                "-MF",
                "/dev/null",
                "-x",
                self.language_name(),
                "/dev/null",
            ]
            .map(str::to_string),
        );
        out
    }

    /// The files `-include` and `-imacros` name, as given.
    pub fn forced_includes(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut args = self.args.iter();
        while let Some(a) = args.next() {
            if matches!(a.as_str(), "-include" | "--include" | "-imacros") {
                out.extend(args.next().cloned());
            } else if let Some(v) = a
                .strip_prefix("--include=")
                .or_else(|| a.strip_prefix("-include"))
                .or_else(|| a.strip_prefix("-imacros"))
            {
                out.push(v.to_string());
            }
        }
        out
    }

    /// The `-x` name of the source's language: the last `-x` before it, else its
    /// extension's.
    fn language_name(&self) -> &'static str {
        let source = self.source.to_string_lossy();
        let mut lang: Option<&str> = None;
        let mut i = 0;
        while i < self.args.len() {
            let a = self.args[i].as_str();
            if a == source {
                break;
            }
            if a == "-x" {
                lang = self.args.get(i + 1).map(String::as_str);
                i += 1;
            } else if let Some(l) = a.strip_prefix("-x") {
                lang = Some(l);
            }
            i += 1;
        }
        let ext = Path::new(source.as_ref())
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default();
        match lang.filter(|l| *l != "none") {
            Some("c++") => "c++",
            Some("objective-c") => "objective-c",
            Some("objective-c++") => "objective-c++",
            Some(_) => "c",
            None => match ext {
                "cc" | "cp" | "cxx" | "cpp" | "CPP" | "c++" | "C" => "c++",
                "m" => "objective-c",
                "mm" | "M" => "objective-c++",
                _ => "c",
            },
        }
    }

    /// The arguments that preprocess the source to standard output: `-c` becomes `-E`,
    /// `-o <object>` is left out.
    pub fn preprocess_args(&self) -> Vec<String> {
        self.args
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.output_args.contains(i))
            .map(|(i, a)| {
                if i == self.compile_arg {
                    "-E".to_string()
                } else {
                    a.clone()
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<CInvocation, CNotCacheable> {
        CInvocation::parse(line.split_whitespace().map(str::to_string).collect())
    }

    #[test]
    fn compiler_names() {
        for n in [
            "cc",
            "gcc",
            "clang",
            "c++",
            "g++",
            "clang++",
            "/usr/bin/cc",
            "x86_64-linux-gnu-gcc",
            "x86_64-linux-gnu-gcc-12",
            "aarch64-linux-gnu-g++",
            "gcc-12",
            "clang-17",
            "clang++-17.0",
            "/tmp/bin/gcc",
        ] {
            assert!(is_compiler_name(n), "{n}");
        }
        for n in [
            "rustc",
            "/home/u/.rustup/toolchains/stable/bin/rustc",
            "cargo",
            "ld",
            "cpp",
            "ar",
            "mycc",
            "gcc-ar",
            "clippy-driver",
            "-E",
            "",
        ] {
            assert!(!is_compiler_name(n), "{n}");
        }
    }

    /// What cc-rs passes for one object (cc 1.x, debug profile, x86_64 Linux).
    #[test]
    fn cc_rs_compile_is_cacheable() {
        let inv = parse(
            "-O0 -ffunction-sections -fdata-sections -fPIC -gdwarf-4 -fno-omit-frame-pointer \
             -m64 -I /w/include -Wall -Wextra -DVALUE=2 -o /t/out/abc-hello.o -c /w/src/hello.c",
        )
        .unwrap();
        assert_eq!(inv.source, PathBuf::from("/w/src/hello.c"));
        assert_eq!(inv.output, PathBuf::from("/t/out/abc-hello.o"));
        assert_eq!(inv.kind, SourceKind::Preprocessed);
        assert!(
            !inv.key_args()
                .any(|a| a.contains("abc-hello.o") || a == "-o")
        );
        let pre = inv.preprocess_args();
        assert!(pre.contains(&"-E".to_string()) && !pre.contains(&"-c".to_string()));
        assert!(!pre.iter().any(|a| a.contains("abc-hello.o")));
    }

    #[test]
    fn default_output_and_joined_forms() {
        let inv = parse("-c -Iinc -DX=1 src/a.cpp").unwrap();
        assert_eq!(inv.output, PathBuf::from("a.o"));
        let inv = parse("-c a.c -oout/a.o").unwrap();
        assert_eq!(inv.output, PathBuf::from("out/a.o"));
        assert_eq!(inv.key_args().collect::<Vec<_>>(), ["-c", "a.c"]);
    }

    #[test]
    fn source_kinds() {
        assert_eq!(parse("-c a.S").unwrap().kind, SourceKind::Preprocessed);
        assert_eq!(parse("-c a.S").unwrap().language, Language::Assembler);
        assert_eq!(parse("-c a.s").unwrap().kind, SourceKind::Raw);
        assert_eq!(parse("-c a.i").unwrap().kind, SourceKind::Raw);
        assert_eq!(
            parse("-c -x c a.txt").unwrap().kind,
            SourceKind::Preprocessed
        );
        assert_eq!(
            parse("-c -x assembler a.txt").unwrap().kind,
            SourceKind::Raw
        );
        assert!(matches!(parse("-c a.h"), Err(CNotCacheable::InputKind(_))));
        assert!(matches!(
            parse("-c -x c-header a.h"),
            Err(CNotCacheable::InputKind(_))
        ));
    }

    #[test]
    fn not_cacheable_cases() {
        let cases: &[(&str, &str)] = &[
            ("a.o b.o -o app", "c-not-a-compile"),
            ("--version", "c-not-a-compile"),
            ("-E detect.c", "c-other-output"),
            ("-S -c a.c", "c-other-output"),
            ("-c -M a.c", "c-other-output"),
            ("-c -fsyntax-only a.c", "c-other-output"),
            ("-c a.c b.c", "input-count"),
            ("-c", "input-count"),
            ("-c -", "stdin-input"),
            ("-c -x c -", "stdin-input"),
            ("-c @args", "argfile"),
            ("-c -MD -MF a.d a.c", "c-dep-file"),
            ("-c -MMD a.c", "c-dep-file"),
            ("-c -Wp,-MD,a.d a.c", "c-dep-file"),
            ("-c -Xpreprocessor -MD a.c", "c-dep-file"),
            ("-c -save-temps a.c", "extra-outputs"),
            ("-c -fprofile-generate a.c", "extra-outputs"),
            ("-c -fprofile-use=a.gcda a.c", "extra-outputs"),
            ("-c --coverage a.c", "extra-outputs"),
            ("-c -ftest-coverage a.c", "extra-outputs"),
            ("-c -gsplit-dwarf a.c", "extra-outputs"),
            ("-c -fdump-tree-all a.c", "extra-outputs"),
            ("-c -fstack-usage a.c", "extra-outputs"),
            ("-c -fopt-info-all=x.txt a.c", "extra-outputs"),
            ("-c -Wa,-adhln=a.lst a.c", "extra-outputs"),
            ("-c -Xclang -load a.c", "c-unsupported-flag"),
            ("-c -fplugin=x.so a.c", "c-unsupported-flag"),
            ("-c -specs=x.specs a.c", "c-unsupported-flag"),
            ("-c -B/opt/bin a.c", "c-unsupported-flag"),
            ("-c -fsanitize-ignorelist=x.txt a.c", "c-unsupported-flag"),
            ("-c --frobnicate a.c", "unknown-flag"),
            ("-c -dD a.c", "unknown-flag"),
            ("-c a.c -o", "c-missing-value"),
            ("-c a.c -o -", "c-other-output"),
        ];
        for (line, label) in cases {
            match parse(line) {
                Ok(inv) => panic!("`{line}` parsed as cacheable: {inv:?}"),
                Err(r) => assert_eq!(r.label(), *label, "`{line}`: {r}"),
            }
        }
    }

    #[test]
    fn harmless_flags_are_accepted() {
        for line in [
            "-c -O2 -g -Wall -Werror=format -fPIC -fvisibility=hidden -std=c11 a.c",
            "-c -march=native -mavx2 -ffunction-sections -pthread a.c",
            "-c -isystem /usr/include/x -include cfg.h -D NDEBUG -U FOO a.c",
            "-c --include=/r/aws-lc/prefix.h --include cfg.h a.S",
            "-c --target=x86_64-unknown-linux-gnu --sysroot /s a.c",
            "-c -target x86_64-apple-darwin -arch x86_64 a.c",
            "-c -Wa,--noexecstack -Wl,-z,now a.c",
            "-c -fdebug-prefix-map=/a=/b -fmacro-prefix-map=/a=. a.c",
            "-c -mllvm -x86-asm-syntax=intel a.c",
        ] {
            if let Err(e) = parse(line) {
                panic!("`{line}`: {e}");
            }
        }
    }

    #[test]
    fn compile_names_for_reports() {
        let v = |s: &str| s.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        assert_eq!(
            compile_name(&v("-O0 -c /w/src/hello.c -o /t/x.o")).as_deref(),
            Some("cc:hello.c")
        );
        assert_eq!(compile_name(&v("-E /w/src/hello.c")), None);
        assert_eq!(compile_name(&v("--version")), None);
    }
}
