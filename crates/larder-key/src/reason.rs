//! Why an invocation is not cacheable.
//!
//! Each reason is a variant so that `larder stats` can count them and a report can name
//! them; [`NotCacheable::label`] is the stable short name used in stats and JSON.

use std::fmt;

/// What is wrong with a library a link needs ([`NotCacheable::UnknownDependency`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DependencyGap {
    /// The store has no link record for its content.
    NoLinkRecord,
    /// Its link record does not parse.
    CorruptLinkRecord,
    /// A dependency a link record names is not in the search directories.
    NotFound,
}

/// Why larder passes an invocation straight through to rustc.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NotCacheable {
    /// `LARDER_DISABLE` or `disable = true` in the config file.
    Disabled,
    /// `--print`: rustc answers a query instead of compiling (cargo's probes).
    Print,
    /// `-V`, `-vV`, `--version`, `--help`, `--explain`.
    InfoQuery,
    /// The source is read from standard input (`-`).
    StdinInput,
    /// No input file, or more than one.
    InputCount(usize),
    /// An emit kind other than `dep-info`, `metadata` and `link`.
    UnsupportedEmit(String),
    /// `--emit kind=path` or `-o`: outputs outside `--out-dir` are not tracked.
    ExplicitOutputPath,
    /// No `--out-dir`.
    NoOutDir,
    /// No `--crate-name`: the name would come from the source.
    NoCrateName,
    /// No `--crate-type`: the type would come from the source.
    NoCrateType,
    /// A crate type rustc may know but larder does not.
    UnknownCrateType(String),
    /// An argument larder does not know, so it cannot tell whether it is an input.
    UnknownFlag(String),
    /// An unstable `-Z` option: some of them write files larder does not track.
    UnstableFlag(String),
    /// A codegen option that writes extra files (`save-temps`, `split-debuginfo`).
    ExtraOutputs(String),
    /// `--sysroot`: a custom standard library larder does not fingerprint.
    CustomSysroot,
    /// An argument or environment value that is not UTF-8.
    NonUtf8(String),
    /// An `@argfile` could not be read.
    ArgFile(String),
    /// A second wrapper (such as clippy-driver) stands between larder and rustc.
    NestedWrapper,
    /// A library this compile links has no usable link record, so its own dependencies
    /// are unknown: the library and what is wrong.
    UnknownDependency(String, DependencyGap),
    /// An input named by dep-info or by an argument could not be read.
    UnreadableInput(String),
    /// An input changed while rustc was running: the output may not match any content.
    InputModifiedDuringCompile(String),
    /// rustc wrote outputs larder did not predict, or not the ones it predicted.
    UnexpectedOutputs(String),
    /// rustc exited with an error; failures are not cached.
    CompileFailed,
    /// No dep-info is emitted, so the files the compile reads are unknown.
    NoDepInfo,
    /// rustc's output is not UTF-8 text, so its paths cannot be rewritten.
    BinaryOutput(String),
    /// A build script's output names a path outside the workspace, target directory,
    /// `CARGO_HOME` and sysroot: it probed the system, which is not an input.
    SystemPath(String),
    /// A build script left something in `OUT_DIR` that is not a regular file.
    SpecialFile(String),
}

impl NotCacheable {
    /// A stable short label, used as the key in `larder stats` and JSON reports.
    pub fn label(&self) -> &'static str {
        match self {
            NotCacheable::Disabled => "disabled",
            NotCacheable::Print => "print-request",
            NotCacheable::InfoQuery => "info-query",
            NotCacheable::StdinInput => "stdin-input",
            NotCacheable::InputCount(_) => "input-count",
            NotCacheable::UnsupportedEmit(_) => "unsupported-emit",
            NotCacheable::ExplicitOutputPath => "explicit-output-path",
            NotCacheable::NoOutDir => "no-out-dir",
            NotCacheable::NoCrateName => "no-crate-name",
            NotCacheable::NoCrateType => "no-crate-type",
            NotCacheable::UnknownCrateType(_) => "unknown-crate-type",
            NotCacheable::UnknownFlag(_) => "unknown-flag",
            NotCacheable::UnstableFlag(_) => "unstable-flag",
            NotCacheable::ExtraOutputs(_) => "extra-outputs",
            NotCacheable::CustomSysroot => "custom-sysroot",
            NotCacheable::NonUtf8(_) => "non-utf8",
            NotCacheable::ArgFile(_) => "argfile",
            NotCacheable::NestedWrapper => "nested-wrapper",
            NotCacheable::UnknownDependency(..) => "unknown-dependency",
            NotCacheable::UnreadableInput(_) => "unreadable-input",
            NotCacheable::InputModifiedDuringCompile(_) => "input-modified-during-compile",
            NotCacheable::UnexpectedOutputs(_) => "unexpected-outputs",
            NotCacheable::CompileFailed => "compile-failed",
            NotCacheable::NoDepInfo => "no-dep-info",
            NotCacheable::BinaryOutput(_) => "binary-output",
            NotCacheable::SystemPath(_) => "system-path",
            NotCacheable::SpecialFile(_) => "special-file",
        }
    }
}

impl fmt::Display for NotCacheable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotCacheable::Disabled => f.write_str("larder is disabled"),
            NotCacheable::Print => f.write_str("a --print request"),
            NotCacheable::InfoQuery => f.write_str("a version or help query"),
            NotCacheable::StdinInput => f.write_str("source read from standard input"),
            NotCacheable::InputCount(n) => write!(f, "{n} input files (expected 1)"),
            NotCacheable::UnsupportedEmit(k) => write!(f, "unsupported emit kind `{k}`"),
            NotCacheable::ExplicitOutputPath => {
                f.write_str("an explicit output path (-o or --emit kind=path)")
            }
            NotCacheable::NoOutDir => f.write_str("no --out-dir"),
            NotCacheable::NoCrateName => f.write_str("no --crate-name"),
            NotCacheable::NoCrateType => f.write_str("no --crate-type"),
            NotCacheable::UnknownCrateType(t) => write!(f, "unknown crate type `{t}`"),
            NotCacheable::UnknownFlag(a) => write!(f, "unknown argument `{a}`"),
            NotCacheable::UnstableFlag(a) => write!(f, "unstable option `-Z {a}`"),
            NotCacheable::ExtraOutputs(a) => {
                write!(f, "`-C {a}` writes files larder does not track")
            }
            NotCacheable::CustomSysroot => f.write_str("a custom --sysroot"),
            NotCacheable::NonUtf8(w) => write!(f, "non-UTF-8 {w}"),
            NotCacheable::ArgFile(p) => write!(f, "unreadable argument file {p}"),
            NotCacheable::NestedWrapper => f.write_str("another wrapper runs rustc"),
            NotCacheable::UnknownDependency(d, gap) => {
                let why = match gap {
                    DependencyGap::NoLinkRecord => {
                        "has no link record (it was not built or restored through larder with this store, or its record was evicted)"
                    }
                    DependencyGap::CorruptLinkRecord => "has a corrupt link record",
                    DependencyGap::NotFound => "is not in any -L dependency directory",
                };
                write!(
                    f,
                    "dependency {d} {why}, so its own dependencies are unknown; a build through larder restores or rewrites it"
                )
            }
            NotCacheable::UnreadableInput(p) => write!(f, "input {p} cannot be read"),
            NotCacheable::InputModifiedDuringCompile(p) => {
                write!(f, "input {p} changed during the compile")
            }
            NotCacheable::UnexpectedOutputs(w) => write!(f, "unexpected outputs: {w}"),
            NotCacheable::CompileFailed => f.write_str("the compile failed"),
            NotCacheable::NoDepInfo => {
                f.write_str("no dep-info emitted, so the inputs are unknown")
            }
            NotCacheable::BinaryOutput(w) => write!(f, "{w} is not UTF-8 text"),
            NotCacheable::SystemPath(p) => {
                write!(
                    f,
                    "the build script names {p}, outside the workspace: it probed the system"
                )
            }
            NotCacheable::SpecialFile(p) => write!(f, "{p} in OUT_DIR is not a regular file"),
        }
    }
}
