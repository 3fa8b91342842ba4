//! Why a C or C++ compiler invocation is not cached.
//!
//! Like [`larder_key::NotCacheable`] for rustc: one variant per reason, a stable
//! [`CNotCacheable::label`] for `larder stats` and the JSON report, and a sentence for
//! people ([`std::fmt::Display`]).

use std::fmt;

/// Why larder passes a C or C++ compiler invocation straight through.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CNotCacheable {
    /// `LARDER_DISABLE` or `disable = true` in the config file.
    Disabled,
    /// cc-rs ran larder itself as the compiler (`larder -E file.c`, a flag check): a
    /// probe, answered by the real compiler.
    Probe,
    /// No `-c`: a link, a query (`--version`, `-dumpmachine`, `-?`) or a probe.
    NotACompile,
    /// `-E`, `-S`, `-M`, `-MM`, `-fsyntax-only`: the output is not an object.
    OtherOutput(String),
    /// No source file, or more than one.
    InputCount(usize),
    /// The source is read from standard input (`-`).
    StdinInput,
    /// A source whose kind larder does not cache (a header, an object, an unknown
    /// extension or `-x` language).
    InputKind(String),
    /// `@file`: the arguments are in a response file.
    ResponseFile,
    /// `-MD`, `-MMD`, `-MF`, `-Wp,-MD,..`, `DEPENDENCIES_OUTPUT`: a dependency file is
    /// written next to the object, which larder does not restore.
    DepFile(String),
    /// A flag that writes files larder does not track (`-save-temps`, `-fprofile-*`,
    /// `--coverage`, `-gsplit-dwarf`, `-fdump-*`, `-fstack-usage`, ...).
    ExtraOutputs(String),
    /// A flag that makes the compiler read inputs larder does not see (`-fplugin`,
    /// `-specs`, `-B`, `-Xclang`, sanitizer ignore lists, profile data, ...).
    UnsupportedFlag(String),
    /// An argument larder does not know.
    UnknownFlag(String),
    /// A flag without its value at the end of the arguments.
    MissingValue(String),
    /// An argument or environment value that is not UTF-8.
    NonUtf8(String),
    /// Preprocessing the source (`-E`) failed; the compile will report why.
    PreprocessorFailed,
    /// The source uses `.incbin` or `.include`: the assembler reads a file the
    /// preprocessor does not show.
    AssemblerInclude(String),
    /// The source or an included file could not be read.
    UnreadableInput(String),
    /// An input changed while the compiler was running.
    InputModifiedDuringCompile(String),
    /// The compiler did not write the object it was asked for.
    NoOutput(String),
    /// The compile failed; failures are not cached.
    CompileFailed,
    /// The compiler's messages are not UTF-8 text.
    BinaryOutput(String),
}

impl CNotCacheable {
    /// A stable short label, used in `larder stats` and JSON reports.
    pub fn label(&self) -> &'static str {
        match self {
            CNotCacheable::Disabled => "disabled",
            CNotCacheable::Probe => "c-probe",
            CNotCacheable::NotACompile => "c-not-a-compile",
            CNotCacheable::OtherOutput(_) => "c-other-output",
            CNotCacheable::InputCount(_) => "input-count",
            CNotCacheable::StdinInput => "stdin-input",
            CNotCacheable::InputKind(_) => "c-input-kind",
            CNotCacheable::ResponseFile => "argfile",
            CNotCacheable::DepFile(_) => "c-dep-file",
            CNotCacheable::ExtraOutputs(_) => "extra-outputs",
            CNotCacheable::UnsupportedFlag(_) => "c-unsupported-flag",
            CNotCacheable::UnknownFlag(_) => "unknown-flag",
            CNotCacheable::MissingValue(_) => "c-missing-value",
            CNotCacheable::NonUtf8(_) => "non-utf8",
            CNotCacheable::PreprocessorFailed => "c-preprocessor-failed",
            CNotCacheable::AssemblerInclude(_) => "c-assembler-include",
            CNotCacheable::UnreadableInput(_) => "unreadable-input",
            CNotCacheable::InputModifiedDuringCompile(_) => "input-modified-during-compile",
            CNotCacheable::NoOutput(_) => "unexpected-outputs",
            CNotCacheable::CompileFailed => "compile-failed",
            CNotCacheable::BinaryOutput(_) => "binary-output",
        }
    }
}

impl fmt::Display for CNotCacheable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CNotCacheable::Disabled => f.write_str("larder is disabled"),
            CNotCacheable::Probe => f.write_str("a compiler probe run through larder itself"),
            CNotCacheable::NotACompile => f.write_str("no -c: not a compile to an object"),
            CNotCacheable::OtherOutput(a) => write!(f, "`{a}` does not produce an object"),
            CNotCacheable::InputCount(n) => write!(f, "{n} source files (expected 1)"),
            CNotCacheable::StdinInput => f.write_str("source read from standard input"),
            CNotCacheable::InputKind(k) => write!(f, "source kind {k} is not cached"),
            CNotCacheable::ResponseFile => f.write_str("arguments in an @file"),
            CNotCacheable::DepFile(a) => {
                write!(f, "`{a}` writes a dependency file larder does not restore")
            }
            CNotCacheable::ExtraOutputs(a) => {
                write!(f, "`{a}` writes files larder does not track")
            }
            CNotCacheable::UnsupportedFlag(a) => {
                write!(
                    f,
                    "`{a}` makes the compiler read inputs larder does not see"
                )
            }
            CNotCacheable::UnknownFlag(a) => write!(f, "unknown argument `{a}`"),
            CNotCacheable::MissingValue(a) => write!(f, "`{a}` without its value"),
            CNotCacheable::NonUtf8(w) => write!(f, "non-UTF-8 {w}"),
            CNotCacheable::PreprocessorFailed => f.write_str("preprocessing the source failed"),
            CNotCacheable::AssemblerInclude(d) => {
                write!(
                    f,
                    "the source uses `{d}`, which reads a file larder does not see"
                )
            }
            CNotCacheable::UnreadableInput(p) => write!(f, "input {p} cannot be read"),
            CNotCacheable::InputModifiedDuringCompile(p) => {
                write!(f, "input {p} changed during the compile")
            }
            CNotCacheable::NoOutput(p) => write!(f, "the compiler did not write {p}"),
            CNotCacheable::CompileFailed => f.write_str("the compile failed"),
            CNotCacheable::BinaryOutput(w) => write!(f, "{w} is not UTF-8 text"),
        }
    }
}

impl crate::action::Reason for CNotCacheable {
    fn label(&self) -> &'static str {
        CNotCacheable::label(self)
    }
}

impl From<CNotCacheable> for crate::action::Stop<CNotCacheable> {
    fn from(r: CNotCacheable) -> Self {
        crate::action::Stop::NotCacheable(r)
    }
}
