//! The inputs of a key as a list a person can read and two lists can be compared by:
//! what `larder explain` shows for a miss.
//!
//! Every key (a rustc invocation's, a build-script run's, a C compile's) is a hash of
//! named values. Next to each entry it stores, larder keeps those values as an
//! [`InputSet`]: one [`Input`] per argument, variable, file, library and tool, each with
//! a kind, a name that stays the same when the value changes, and the value (a digest
//! for content). [`diff`] pairs two sets by kind and name and gives every
//! [`Difference`]: the input that changed, with its old and new value.
//!
//! Arguments are paired by meaning, not position ([`arg_inputs`]): `-C opt-level=3`
//! is the input `-C opt-level` with the value `3`; `--cfg feature="x"` is the input
//! `--cfg feature="x"`, present or not; `--extern a=path` is `--extern a`.

use std::collections::BTreeMap;

use larder_digest::{Digest, KeyHasher};
use serde::{Deserialize, Serialize};

/// Kinds of input, in the order a difference list shows them (the compiler first: a
/// toolchain change explains everything after it).
pub mod kind {
    /// The compiler's identity (`rustc -vV` and its standard library).
    pub const TOOLCHAIN: &str = "toolchain";
    /// A C compiler's identity.
    pub const C_COMPILER: &str = "c-compiler";
    /// The linker's identity.
    pub const LINKER: &str = "linker";
    /// A build script's own binary.
    pub const SCRIPT: &str = "build-script";
    /// Whether a package's sources are immutable (registry, git) or editable.
    pub const PACKAGE: &str = "package-sources";
    /// A command-line argument.
    pub const ARGUMENT: &str = "argument";
    /// An environment variable in the key.
    pub const ENV: &str = "env";
    /// An `--extern` dependency or a linked library.
    pub const LIBRARY: &str = "library";
    /// A file named by an argument or declared as an input.
    pub const FILE: &str = "file";
    /// A file under a dependency's `DEP_*` path.
    pub const DEP_PATH: &str = "dep-path";
    /// A source file the compile read (dep-info), a header a C compile included.
    pub const SOURCE: &str = "source";
    /// A variable the compile read (`env!`, `rerun-if-env-changed`).
    pub const READ_ENV: &str = "read-env";
    /// A path that must not exist (a module's other file).
    pub const ABSENT: &str = "absent";
    /// The order kinds are shown in.
    pub const ORDER: &[&str] = &[
        TOOLCHAIN, C_COMPILER, LINKER, SCRIPT, PACKAGE, ARGUMENT, ENV, LIBRARY, FILE, DEP_PATH,
        SOURCE, READ_ENV, ABSENT,
    ];
}

/// One named input of a key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Input {
    /// What it is: one of [`kind`].
    pub kind: String,
    /// Its name, the same whatever its value: `-C opt-level`, `RUSTFLAGS`,
    /// `@@larder:cwd@@/src/lib.rs`.
    pub name: String,
    /// Its value as the key saw it (normalized); a content digest in hex for files.
    pub value: String,
}

impl Input {
    /// An input.
    pub fn new(kind: &str, name: impl Into<String>, value: impl Into<String>) -> Input {
        Input {
            kind: kind.to_string(),
            name: name.into(),
            value: value.into(),
        }
    }

    /// An input whose value is a content digest.
    pub fn digest(kind: &str, name: impl Into<String>, digest: &Digest) -> Input {
        Input::new(kind, name, digest.to_hex())
    }

    /// The compiler: its name for people (`rustc 1.95.0 (59807616e 2026-04-14)`) and
    /// its identity digest, which is what the key holds.
    pub fn toolchain(release: &str, identity: &Digest) -> Input {
        Input::new(
            kind::TOOLCHAIN,
            "rustc",
            format!("{release}{IDENTITY}{}", identity.to_hex()),
        )
    }
}

/// Separates a toolchain input's name for people from its identity digest.
const IDENTITY: &str = " identity ";

/// The name for people of a toolchain input's value ([`Input::toolchain`]).
pub fn toolchain_release(value: &str) -> &str {
    value.split(IDENTITY).next().unwrap_or_default()
}

/// The inputs of one stored entry, kept next to it under its result key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputSet {
    /// The unit: crate, package (build-script run) or `cc:<source>`.
    pub unit: String,
    /// Its kind as the report names it: crate types joined by `,`, `build-script-run`,
    /// `c-object`.
    pub kind: String,
    /// The invocation key (the action key of a one-step key).
    pub invocation: Digest,
    /// The result key: where the entry's action record is.
    pub result: Digest,
    /// When it was made, in seconds since the Unix epoch.
    pub created: u64,
    /// The inputs, sorted.
    pub inputs: Vec<Input>,
    /// Only what is known before the tool runs (a miss that stored nothing): the files
    /// and variables it read are missing, not absent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}

/// The kinds only a finished run tells (from dep-info): left out of a comparison with a
/// partial set.
pub const READ_KINDS: &[&str] = &[kind::SOURCE, kind::READ_ENV, kind::ABSENT];

impl InputSet {
    /// Orders the inputs by kind and name, keeping the order of an input's repeated
    /// values (`-C link-arg`s).
    pub fn sorted(mut self) -> InputSet {
        self.inputs
            .sort_by(|a, b| (&a.kind, &a.name).cmp(&(&b.kind, &b.name)));
        self
    }
}

/// One input that differs between two sets. `None` is "not an input there".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    /// The input's kind ([`kind`]).
    pub kind: String,
    /// The input's name.
    pub name: String,
    /// Its value in the older (stored) set.
    pub old: Option<String>,
    /// Its value in the newer set.
    pub new: Option<String>,
}

/// Every input whose value differs between `old` and `new` (present in one only, or with
/// another value), by kind in [`kind::ORDER`], then by name.
pub fn diff(old: &[Input], new: &[Input]) -> Vec<Difference> {
    fn index(set: &[Input]) -> BTreeMap<(usize, &str, &str), Vec<&str>> {
        let mut m: BTreeMap<(usize, &str, &str), Vec<&str>> = BTreeMap::new();
        for i in set {
            let rank = kind::ORDER
                .iter()
                .position(|k| *k == i.kind)
                .unwrap_or(kind::ORDER.len());
            m.entry((rank, i.kind.as_str(), i.name.as_str()))
                .or_default()
                .push(i.value.as_str());
        }
        m
    }
    let (a, b) = (index(old), index(new));
    let mut keys: Vec<_> = a.keys().chain(b.keys()).copied().collect();
    keys.sort_unstable();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| {
            let (o, n) = (a.get(&k), b.get(&k));
            (o != n).then(|| Difference {
                kind: k.1.to_string(),
                name: k.2.to_string(),
                old: o.map(|v| v.join(" ")),
                new: n.map(|v| v.join(" ")),
            })
        })
        .collect()
}

/// Flags of rustc (and C compilers) whose value is the next argument or glued to them.
const VALUE_FLAGS: &[&str] = &[
    "-C",
    "--codegen",
    "-Z",
    "--cfg",
    "--check-cfg",
    "-L",
    "-l",
    "--extern",
    "--crate-type",
    "--crate-name",
    "--edition",
    "--emit",
    "--target",
    "--out-dir",
    "-o",
    "-A",
    "-W",
    "-D",
    "-F",
    "--allow",
    "--warn",
    "--deny",
    "--forbid",
    "--force-warn",
    "--cap-lints",
    "--error-format",
    "--json",
    "--remap-path-prefix",
    "--sysroot",
    "--diagnostic-width",
    "--env-set",
    "--print",
    "-I",
    "-isystem",
    "-iquote",
    "-include",
    "--include",
    "-x",
];

/// Flags that may be given several times, each occurrence its own input (present or
/// not): `--cfg X` is the input `--cfg X`.
const SET_FLAGS: &[&str] = &[
    "--cfg",
    "--check-cfg",
    "-L",
    "-l",
    "-A",
    "-W",
    "-D",
    "-F",
    "--allow",
    "--warn",
    "--deny",
    "--forbid",
    "--force-warn",
    "--remap-path-prefix",
    "--env-set",
    "-I",
    "-isystem",
    "-iquote",
    "-include",
    "--include",
];

/// The value an input has when it is simply there (a flag, a `--cfg`).
pub const PRESENT: &str = "present";

/// Arguments (already normalized) as named inputs of kind [`kind::ARGUMENT`]; see the
/// module docs.
pub fn arg_inputs(args: &[String]) -> Vec<Input> {
    let mut out = Vec::new();
    let mut iter = args.iter().peekable();
    while let Some(a) = iter.next() {
        let (flag, value) = match split_flag(a) {
            Some((flag, Some(v))) => (flag, v.to_string()),
            Some((flag, None)) => match iter.next() {
                Some(v) => (flag, v.clone()),
                None => (flag, String::new()),
            },
            None if a.starts_with('-') && a.len() > 1 => {
                out.push(Input::new(kind::ARGUMENT, a.clone(), PRESENT));
                continue;
            }
            None => {
                out.push(Input::new(kind::ARGUMENT, "input file", a.clone()));
                continue;
            }
        };
        let flag = match flag {
            "--codegen" => "-C",
            f => f,
        };
        let input = if flag == "-C" || flag == "-Z" {
            match value.split_once('=') {
                Some((k, v)) => Input::new(kind::ARGUMENT, format!("{flag} {k}"), v),
                None => Input::new(kind::ARGUMENT, format!("{flag} {value}"), PRESENT),
            }
        } else if flag == "--extern" {
            // The path's metadata hash follows the dependency's own inputs, which its
            // library input shows by content: the path alone is no difference.
            match value.split_once('=') {
                Some((k, v)) => Input::new(
                    kind::ARGUMENT,
                    format!("--extern {k}"),
                    without_metadata_hash(v),
                ),
                None => Input::new(kind::ARGUMENT, format!("--extern {value}"), PRESENT),
            }
        } else if SET_FLAGS.contains(&flag) {
            Input::new(kind::ARGUMENT, format!("{flag} {value}"), PRESENT)
        } else {
            Input::new(kind::ARGUMENT, flag, value)
        };
        out.push(input);
    }
    out
}

/// `--flag=value` / `-Cvalue` to `(flag, Some(value))`; a value flag alone to
/// `(flag, None)`; anything else to `None`.
fn split_flag(a: &str) -> Option<(&'static str, Option<&str>)> {
    for f in VALUE_FLAGS {
        if a == *f {
            return Some((f, None));
        }
        if let Some(rest) = a.strip_prefix(f) {
            if f.starts_with("--") {
                if let Some(v) = rest.strip_prefix('=') {
                    return Some((f, Some(v)));
                }
            } else if f.len() == 2 && !rest.is_empty() {
                return Some((f, Some(rest)));
            }
        }
    }
    None
}

/// `name` with cargo's metadata hashes (`-` and 16 hex digits, as in
/// `libdep-054e37a5e5b0dc4b.rlib`) written `-*`, so that a library keeps its input name
/// when its hash changes and a difference shows as one changed input.
pub fn without_metadata_hash(name: &str) -> String {
    let b = name.as_bytes();
    let mut out = String::with_capacity(name.len());
    let mut i = 0;
    while i < b.len() {
        let hash = b[i] == b'-'
            && b.len() >= i + 17
            && b[i + 1..i + 17].iter().all(u8::is_ascii_hexdigit)
            && b.get(i + 17).is_none_or(|c| !c.is_ascii_alphanumeric());
        if hash {
            out.push_str("-*");
            i += 17;
        } else {
            let c = name[i..].chars().next().unwrap_or_default();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// The key under which the [`InputIndex`] of a unit and kind is kept, in the same
/// namespace as the input sets.
pub fn index_key(unit: &str, kind: &str) -> Digest {
    let mut h = KeyHasher::new();
    h.field("larder-input-index-v1", unit).field("kind", kind);
    h.finish()
}

/// Most entries an [`InputIndex`] keeps, newest first.
pub const MAX_INDEX_ENTRIES: usize = 32;

/// The entries stored for one unit and kind, newest first: where `larder explain`
/// looks for the nearest entry on a tier it cannot list (a remote).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputIndex {
    /// Result keys (each with its [`InputSet`] kept under it), newest first.
    pub results: Vec<Digest>,
}

impl InputIndex {
    /// Puts `result` first, dropping it from further down and the oldest past the limit.
    pub fn insert(&mut self, result: Digest) {
        self.results.retain(|r| *r != result);
        self.results.insert(0, result);
        self.results.truncate(MAX_INDEX_ENTRIES);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_string).collect()
    }

    fn named(inputs: &[Input]) -> Vec<(String, String)> {
        inputs
            .iter()
            .map(|i| (i.name.clone(), i.value.clone()))
            .collect()
    }

    #[test]
    fn arguments_are_named_by_meaning() {
        let got = arg_inputs(&args(
            "--crate-name a --edition=2021 src/lib.rs -C opt-level=3 -Cdebuginfo=2 --cfg feature=\"x\" --cfg=y --extern b=/t/libb-0123456789abcdef.rlib -L dependency=/t/deps --test -Zunstable-options",
        ));
        let want = [
            ("--crate-name", "a"),
            ("--edition", "2021"),
            ("input file", "src/lib.rs"),
            ("-C opt-level", "3"),
            ("-C debuginfo", "2"),
            ("--cfg feature=\"x\"", PRESENT),
            ("--cfg y", PRESENT),
            ("--extern b", "/t/libb-*.rlib"),
            ("-L dependency=/t/deps", PRESENT),
            ("--test", PRESENT),
            ("-Z unstable-options", PRESENT),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(named(&got), want);
    }

    #[test]
    fn a_difference_names_the_input_and_both_values() {
        let old = arg_inputs(&args("--crate-name a -C opt-level=0 --cfg feature=\"x\""));
        let mut new = arg_inputs(&args("--crate-name a -C opt-level=3 --cfg y"));
        new.push(Input::new(kind::TOOLCHAIN, "rustc", "1.96"));
        let d = diff(&old, &new);
        let got: Vec<_> = d
            .iter()
            .map(|d| (d.name.as_str(), d.old.as_deref(), d.new.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("rustc", None, Some("1.96")),
                ("--cfg feature=\"x\"", Some(PRESENT), None),
                ("--cfg y", None, Some(PRESENT)),
                ("-C opt-level", Some("0"), Some("3")),
            ]
        );
        assert!(diff(&new, &new).is_empty());
    }

    #[test]
    fn repeated_inputs_compare_as_a_whole() {
        let old = arg_inputs(&args("-C link-arg=-a -C link-arg=-b"));
        let new = arg_inputs(&args("-C link-arg=-b -C link-arg=-a"));
        let d = diff(&old, &new);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].old.as_deref(), Some("-a -b"));
        assert_eq!(d[0].new.as_deref(), Some("-b -a"));
    }

    #[test]
    fn the_index_keeps_the_newest_first() {
        let mut i = InputIndex::default();
        for n in 0..40u8 {
            i.insert(Digest::of(&[n]));
        }
        i.insert(Digest::of(&[20]));
        assert_eq!(i.results.len(), MAX_INDEX_ENTRIES);
        assert_eq!(i.results[0], Digest::of(&[20]));
        assert_eq!(i.results[1], Digest::of(&[39]));
        assert_ne!(index_key("a", "lib"), index_key("a", "bin"));
    }

    #[test]
    fn metadata_hashes_leave_names() {
        assert_eq!(
            without_metadata_hash("extern:dep=<t>/deps/libdep-054e37a5e5b0dc4b.rlib"),
            "extern:dep=<t>/deps/libdep-*.rlib"
        );
        assert_eq!(without_metadata_hash("a-b-0123"), "a-b-0123");
    }
}
