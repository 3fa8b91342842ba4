//! The key of a C or C++ compile: what [`super`]'s table lists, hashed as tagged fields.
//!
//! The source goes in as its preprocessed text ([`preprocess`]): the compiler runs with
//! the same arguments, `-E` instead of `-c`, writing to a pipe. The line markers in that
//! text name every file read (`# 12 "/home/u/ws/include/v.h" 2`); their absolute roots
//! are replaced by placeholders ([`normalize_markers`]) so checkouts share entries. The
//! rest of the text is hashed as it is.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use larder_digest::{Digest, KeyHasher};
use larder_key::Roots;
use larder_key::inputs::{Input, arg_inputs, kind};

use super::args::{CInvocation, Language};
use super::reason::CNotCacheable;

/// The version of the C key. A new definition never matches entries of an old one, nor
/// a rustc key (those start with `larder-key-v1`).
pub const C_KEY_VERSION: &str = "larder-c-key-v1";

/// Environment variables the compiler driver, preprocessor or assembler read.
pub const C_TOOL_VARS: &[&str] = &[
    "CPATH",
    "C_INCLUDE_PATH",
    "CPLUS_INCLUDE_PATH",
    "OBJC_INCLUDE_PATH",
    "OBJCPLUS_INCLUDE_PATH",
    "SOURCE_DATE_EPOCH",
    "GCC_EXEC_PREFIX",
    "COMPILER_PATH",
    "LIBRARY_PATH",
    "GCC_COMPARE_DEBUG",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "SDKROOT",
    "MACOSX_DEPLOYMENT_TARGET",
    "IPHONEOS_DEPLOYMENT_TARGET",
];

/// Variables that make the compiler write a dependency file.
pub const DEP_FILE_VARS: &[&str] = &["DEPENDENCIES_OUTPUT", "SUNPRO_DEPENDENCIES"];

/// Everything the key is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CKeyInputs {
    /// [`crate::identity::c_compiler`].
    pub compiler: Digest,
    /// The arguments without `-o <object>`, roots normalized.
    pub args: Vec<String>,
    /// `(name, normalized value)` of the set variables among [`C_TOOL_VARS`] and the
    /// declared `extra_env`, sorted.
    pub env: Vec<(String, String)>,
    /// The digest of the preprocessed text (markers normalized), or of the raw file;
    /// with `depend`, of the source file.
    pub source: Digest,
    /// Keyed by the dependency file ([`super::depend`]): this is an invocation key, whose
    /// manifest lists what each compile read.
    pub depend: bool,
    /// `(normalized path, digest)` of the declared `extra_files`.
    pub files: Vec<(String, Digest)>,
}

impl CKeyInputs {
    /// The inputs as named values (`larder explain`). The source is the digest of the
    /// preprocessed text; the headers it read are added by the caller.
    pub fn inputs(&self) -> Vec<Input> {
        let mut out = vec![
            Input::digest(kind::C_COMPILER, "compiler", &self.compiler),
            Input::digest(
                kind::SOURCE,
                if self.depend {
                    "source"
                } else {
                    "preprocessed source"
                },
                &self.source,
            ),
        ];
        out.extend(arg_inputs(&self.args));
        for (k, v) in &self.env {
            out.push(Input::new(kind::ENV, k.clone(), v.clone()));
        }
        for (p, d) in &self.files {
            out.push(Input::digest(kind::FILE, p.clone(), d));
        }
        out
    }

    /// The key.
    pub fn key(&self) -> Digest {
        let mut h = KeyHasher::new();
        let version = if self.depend {
            super::depend::C_DEPEND_KEY_VERSION
        } else {
            C_KEY_VERSION
        };
        h.field("version", version)
            .digest_field("compiler", &self.compiler);
        for a in &self.args {
            h.field("arg", a);
        }
        for (name, value) in &self.env {
            h.field("env-name", name).field("env-value", value);
        }
        h.digest_field("source", &self.source);
        for (path, d) in &self.files {
            h.field("file", path).digest_field("file-digest", d);
        }
        h.finish()
    }
}

/// What preprocessing found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preprocessed {
    /// The digest of the normalized text.
    pub digest: Digest,
    /// The files named by line markers (absolute or relative to the working directory),
    /// deduplicated: what the compile reads.
    pub files: Vec<PathBuf>,
}

/// Runs `compiler <args with -E>` and digests its standard output with the markers'
/// roots normalized. Its standard error is discarded: the compile prints the same
/// messages.
///
/// # Errors
/// [`CNotCacheable::PreprocessorFailed`] if the compiler fails; `AssemblerInclude` if
/// the text uses `.incbin` (or `.include` in assembler).
pub fn preprocess(
    compiler: &Path,
    inv: &CInvocation,
    roots: &Roots,
) -> Result<Preprocessed, CNotCacheable> {
    let out = Command::new(compiler)
        .args(inv.preprocess_args().into_iter().map(OsString::from))
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|_| CNotCacheable::PreprocessorFailed)?;
    if !out.status.success() {
        return Err(CNotCacheable::PreprocessorFailed);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    check_directives(&text, inv.language)?;
    let (normalized, files) = normalize_markers(&text, roots);
    Ok(Preprocessed {
        digest: Digest::of(normalized.as_bytes()),
        files,
    })
}

/// Digests a source that is not preprocessed (`.s`, `.i`).
///
/// # Errors
/// `UnreadableInput`, or `AssemblerInclude` as for [`preprocess`].
pub fn raw_source(path: &Path, language: Language) -> Result<Preprocessed, CNotCacheable> {
    let bytes = std::fs::read(path)
        .map_err(|_| CNotCacheable::UnreadableInput(path.display().to_string()))?;
    check_directives(&String::from_utf8_lossy(&bytes), language)?;
    Ok(Preprocessed {
        digest: Digest::of(&bytes),
        files: vec![path.to_path_buf()],
    })
}

/// Assembler directives that read files: `.incbin` anywhere (inline assembly in C
/// too), `.include` in assembler sources.
fn check_directives(text: &str, language: Language) -> Result<(), CNotCacheable> {
    if text.contains(".incbin") {
        return Err(CNotCacheable::AssemblerInclude(".incbin".into()));
    }
    if language == Language::Assembler && text.contains(".include") {
        return Err(CNotCacheable::AssemblerInclude(".include".into()));
    }
    Ok(())
}

/// The path in a line marker (`# 1 "path" flags` or `#line 1 "path"`), with the byte
/// range of the quoted path, quotes excluded.
fn marker_path(line: &str) -> Option<(usize, usize)> {
    let rest = line.strip_prefix('#')?;
    let rest = rest.strip_prefix("line").unwrap_or(rest);
    let trimmed = rest.trim_start();
    let digits = trimmed.chars().take_while(char::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let after = trimmed[digits..].trim_start();
    let after = after.strip_prefix('"')?;
    let start = line.len() - after.len();
    // Find the closing quote, skipping backslash escapes.
    let mut escaped = false;
    for (i, c) in after.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return Some((start, start + i)),
            _ => escaped = false,
        }
    }
    None
}

/// Replaces the roots in every line marker's path and lists the files the markers name
/// (pseudo-files such as `<built-in>` are left out).
pub fn normalize_markers(text: &str, roots: &Roots) -> (String, Vec<PathBuf>) {
    let mut out = String::with_capacity(text.len());
    let mut files: Vec<PathBuf> = Vec::new();
    for line in text.split_inclusive('\n') {
        match marker_path(line) {
            Some((s, e)) => {
                let path = &line[s..e];
                if !path.starts_with('<') && !path.is_empty() {
                    let unescaped = path.replace("\\\\", "\\").replace("\\\"", "\"");
                    let p = PathBuf::from(unescaped);
                    if !files.contains(&p) {
                        files.push(p);
                    }
                }
                out.push_str(&line[..s]);
                out.push_str(&roots.normalize_text(path));
                out.push_str(&line[e..]);
            }
            None => out.push_str(line),
        }
    }
    (out, files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots() -> Roots {
        Roots::new([
            ("cwd", PathBuf::from("/home/u/ws")),
            ("target", PathBuf::from("/home/u/ws/target")),
        ])
    }

    /// Golden key: a refactor must not change the key of fixed inputs by accident. If the
    /// definition changes on purpose, bump [`C_KEY_VERSION`] and pin the new value.
    #[test]
    fn a_fixed_c_compile_has_its_pinned_key() {
        let k = CKeyInputs {
            compiler: Digest::of(b"gcc 12 (fixture)"),
            args: [
                "-O2",
                "-g",
                "-fPIC",
                "-I",
                "@@larder:cwd@@/include",
                "-c",
                "src/a.c",
            ]
            .map(str::to_string)
            .to_vec(),
            env: vec![("SOURCE_DATE_EPOCH".into(), "0".into())],
            source: Digest::of(b"int a(void) { return 1; }\n"),
            files: vec![(
                "@@larder:cwd@@/extra.h".into(),
                Digest::of(b"#define X 1\n"),
            )],
            depend: false,
        };
        assert_eq!(
            k.key().to_hex(),
            "6c52d7c25d062583256b13766c1c534ec812a3eced909b308cb42658e0a1613e"
        );
    }

    #[test]
    fn markers_are_normalized_and_listed() {
        let text = "# 0 \"/home/u/ws/src/a.c\"\n# 0 \"<built-in>\"\n# 1 \"/home/u/ws/src/a.c\"\n# 1 \"/home/u/ws/target/debug/build/x/out/v.h\" 1\nint v = 1; /* /home/u/ws */\n#line 7 \"/usr/include/stdio.h\"\n";
        let (n, files) = normalize_markers(text, &roots());
        assert_eq!(
            n,
            "# 0 \"@@larder:cwd@@/src/a.c\"\n# 0 \"<built-in>\"\n# 1 \"@@larder:cwd@@/src/a.c\"\n# 1 \"@@larder:target@@/debug/build/x/out/v.h\" 1\nint v = 1; /* /home/u/ws */\n#line 7 \"/usr/include/stdio.h\"\n"
        );
        assert_eq!(
            files,
            [
                PathBuf::from("/home/u/ws/src/a.c"),
                PathBuf::from("/home/u/ws/target/debug/build/x/out/v.h"),
                PathBuf::from("/usr/include/stdio.h"),
            ]
        );
    }

    #[test]
    fn same_text_in_another_checkout_has_the_same_digest() {
        let other = Roots::new([
            ("cwd", PathBuf::from("/ci/w")),
            ("target", PathBuf::from("/ci/t")),
        ]);
        let a = normalize_markers("# 1 \"/home/u/ws/a.c\"\nint x;\n", &roots()).0;
        let b = normalize_markers("# 1 \"/ci/w/a.c\"\nint x;\n", &other).0;
        assert_eq!(a, b);
        // Code that mentions a path is not rewritten: a different text, a different key.
        let c = normalize_markers("char *f = \"/home/u/ws/a.c\";\n", &roots()).0;
        assert_eq!(c, "char *f = \"/home/u/ws/a.c\";\n");
    }

    #[test]
    fn not_markers() {
        for l in ["#pragma once\n", "# define X \"a\"\n", "#\n", "# 12\n"] {
            assert_eq!(marker_path(l), None, "{l}");
        }
        assert_eq!(marker_path("# 3 \"a\\\"b.c\" 2\n"), Some((5, 11)));
    }

    #[test]
    fn incbin_is_refused() {
        assert!(check_directives("asm(\".incbin \\\"x.bin\\\"\");", Language::C).is_err());
        assert!(check_directives(".include \"x.s\"", Language::Assembler).is_err());
        assert!(check_directives("s.include = 1;", Language::C).is_ok());
    }

    #[test]
    fn key_depends_on_every_field() {
        let base = CKeyInputs {
            compiler: Digest::of(b"gcc"),
            args: vec!["-c".into(), "a.c".into()],
            env: vec![],
            source: Digest::of(b"int x;"),
            files: vec![],
            depend: false,
        };
        let mut variants = vec![base.clone()];
        let mut v = base.clone();
        v.compiler = Digest::of(b"clang");
        variants.push(v);
        let mut v = base.clone();
        v.args.push("-DX".into());
        variants.push(v);
        let mut v = base.clone();
        v.env.push(("CPATH".into(), "/x".into()));
        variants.push(v);
        let mut v = base.clone();
        v.source = Digest::of(b"int y;");
        variants.push(v);
        let mut v = base.clone();
        v.files.push(("f".into(), Digest::of(b"")));
        variants.push(v);
        let mut v = base.clone();
        v.depend = true;
        variants.push(v);
        let keys: std::collections::BTreeSet<_> = variants.iter().map(CKeyInputs::key).collect();
        assert_eq!(keys.len(), variants.len());
        for v in &variants[1..] {
            let d = larder_key::inputs::diff(&base.inputs(), &v.inputs());
            // Depend mode names the source's digest otherwise.
            let want = if v.depend { 2 } else { 1 };
            assert_eq!(d.len(), want, "{v:?}: {d:?}");
        }
        assert_eq!(base.key(), base.clone().key());
    }
}
