//! Computing the cache key of an invocation in two steps (see the crate docs).
//!
//! 1. The *invocation key* covers everything known before rustc runs: the compiler, the
//!    normalized arguments and environment, and the content of every library and file the
//!    arguments name ([`KeyInputs::invocation_key`]).
//! 2. The *result key* adds the content of every file the compile read and the value of
//!    every variable it read, as dep-info reported them after a compile. These are kept in
//!    a [`Manifest`] stored under the invocation key; a lookup re-hashes the files a
//!    manifest entry lists and, if they all match, knows the result key without running
//!    rustc ([`ManifestEntry::matches`]).

use std::path::{Path, PathBuf};

use larder_digest::{Digest, KeyHasher};
use serde::{Deserialize, Serialize};

use crate::inputs::{Input, arg_inputs, kind, without_metadata_hash};
use crate::invocation::Invocation;
use crate::paths::Roots;

/// The version of the key's definition. Changing what goes into a key, or how, bumps it,
/// so that old entries are never matched by a different definition.
pub const KEY_VERSION: &str = "larder-key-v1";

/// How an input set shows a variable that was not set.
pub const UNSET: &str = "(unset)";

/// Most manifest entries kept per invocation key, newest first.
pub const MAX_MANIFEST_ENTRIES: usize = 16;

/// Everything that goes into the invocation key, already normalized.
#[derive(Debug, Clone, Default)]
pub struct KeyInputs {
    /// The compiler identity: `rustc -vV` and the sysroot's libraries.
    pub compiler: Option<Digest>,
    /// The arguments, normalized ([`normalized_args`]).
    pub args: Vec<String>,
    /// Keyed environment variables with normalized values, sorted by name.
    pub env: Vec<(String, String)>,
    /// Libraries: each `--extern` file, and for linked outputs every Rust library linked
    /// transitively and every native static library found on the search path, as
    /// (normalized name or path, content digest), sorted.
    pub libraries: Vec<(String, Digest)>,
    /// The linker's identity, for linked outputs.
    pub linker: Option<Digest>,
    /// Files named by arguments (`-C profile-use`, target spec, linker scripts) and files
    /// the user declared as extra inputs, as (normalized path, content digest).
    pub files: Vec<(String, Digest)>,
}

impl KeyInputs {
    /// The inputs as named values (`larder explain`), one or more per field. `toolchain`
    /// names the compiler for people (`rustc 1.95.0 (59807616e 2026-04-14)`); its
    /// identity digest follows it.
    pub fn inputs(&self, toolchain: &str) -> Vec<Input> {
        let mut out = Vec::new();
        if let Some(c) = &self.compiler {
            out.push(Input::toolchain(toolchain, c));
        }
        out.extend(arg_inputs(&self.args));
        for (k, v) in &self.env {
            out.push(Input::new(kind::ENV, k.clone(), v.clone()));
        }
        for (name, d) in &self.libraries {
            out.push(Input::digest(kind::LIBRARY, without_metadata_hash(name), d));
        }
        if let Some(l) = &self.linker {
            out.push(Input::digest(kind::LINKER, "linker", l));
        }
        for (p, d) in &self.files {
            out.push(Input::digest(kind::FILE, without_metadata_hash(p), d));
        }
        out
    }

    /// The invocation key.
    pub fn invocation_key(&self) -> Digest {
        self.invocation_key_of_version(KEY_VERSION)
    }

    fn invocation_key_of_version(&self, version: &str) -> Digest {
        let mut h = KeyHasher::new();
        h.field("version", version);
        if let Some(c) = &self.compiler {
            h.digest_field("compiler", c);
        }
        for a in &self.args {
            h.field("arg", a);
        }
        for (k, v) in &self.env {
            h.field("env-name", k).field("env-value", v);
        }
        for (name, d) in &self.libraries {
            h.field("lib", name).digest_field("lib-digest", d);
        }
        if let Some(l) = &self.linker {
            h.digest_field("linker", l);
        }
        for (p, d) in &self.files {
            h.field("file", p).digest_field("file-digest", d);
        }
        h.finish()
    }
}

/// The arguments as they go into the key: paths normalized, and the incremental
/// directory's location dropped (its presence stays: incremental builds split code
/// differently).
pub fn normalized_args(inv: &Invocation, roots: &Roots) -> Vec<String> {
    let mut out = Vec::with_capacity(inv.args.len());
    let mut after_c = false;
    for a in &inv.args {
        let norm = if after_c && a.starts_with("incremental=") {
            "incremental".to_string()
        } else if a.starts_with("-Cincremental=") || a.starts_with("--codegen=incremental=") {
            "-Cincremental".to_string()
        } else {
            roots.normalize_text(a)
        };
        after_c = a == "-C" || a == "--codegen";
        out.push(norm);
    }
    out
}

/// The form in which a manifest entry keeps the value of a variable rustc read through
/// `env!`/`option_env!` (a `# env-dep` line of dep-info), given the files the compile
/// read (absolute).
///
/// rustc writes such a value into the code: `concat!(env!("CARGO_MANIFEST_DIR"), "/f")`
/// is a string in the binary, `env!("CARGO_BIN_EXE_x")` a program a test runs. So the
/// value is kept as it is, and a unit that reads a path this way hits only where the path
/// is the same. One exception: `OUT_DIR` when the compile read a file under it, which is
/// `include!(concat!(env!("OUT_DIR"), "/gen.rs"))`, the use nearly every crate makes of
/// it. There the path reaches the output only as the location of included source, as
/// every other source path does, so the value is normalized and the unit hits in another
/// checkout. (A crate that both includes from `OUT_DIR` and opens files under it at run
/// time is the documented limit.)
pub fn env_dep_value(name: &str, value: &str, read: &[PathBuf], roots: &Roots) -> String {
    if name == "OUT_DIR" && read.iter().any(|f| f.starts_with(value)) {
        roots.normalize_text(value)
    } else {
        value.to_string()
    }
}

/// One compile's record of what it read, stored in the manifest of its invocation key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// The result key this entry leads to.
    pub key: Digest,
    /// Every file the compile read, as (normalized path, content digest).
    pub files: Vec<(String, Digest)>,
    /// Every variable the compile read, as (name, value or `None` if unset). A value is
    /// kept as it was unless [`env_dep_value`] normalized it; a normalized value (one
    /// with a placeholder) matches the current value normalized, any other the current
    /// value as it is.
    pub env: Vec<(String, Option<String>)>,
    /// Paths that did not exist and would change the compile if they did: the other
    /// possible file of each module (`a.rs` versus `a/mod.rs`).
    pub absent: Vec<String>,
}

/// Why a manifest entry does not match the current state of the inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// A listed file's content changed.
    FileChanged(String),
    /// A listed file is gone or unreadable.
    FileMissing(String),
    /// A listed variable has another value.
    EnvChanged(String),
    /// A module file appeared where there was none.
    FileAppeared(String),
}

impl ManifestEntry {
    /// Builds an entry and computes its result key from the invocation key.
    pub fn new(
        invocation_key: &Digest,
        mut files: Vec<(String, Digest)>,
        mut env: Vec<(String, Option<String>)>,
        mut absent: Vec<String>,
    ) -> ManifestEntry {
        files.sort();
        files.dedup();
        env.sort();
        env.dedup();
        absent.sort();
        absent.dedup();
        let mut h = KeyHasher::new();
        h.field("version", KEY_VERSION)
            .digest_field("invocation", invocation_key);
        for (p, d) in &files {
            h.field("input", p).digest_field("input-digest", d);
        }
        for (k, v) in &env {
            h.field("env-dep", k);
            match v {
                Some(v) => h.field("set", v),
                None => h.field("unset", ""),
            };
        }
        for a in &absent {
            h.field("absent", a);
        }
        ManifestEntry {
            key: h.finish(),
            files,
            env,
            absent,
        }
    }

    /// Whether this entry of the manifest of `invocation_key` names the result key its
    /// inputs make: one that does not was forged or damaged, and must not be followed
    /// (it could send a unit to another unit's record, or to an older version's).
    pub fn is_for(&self, invocation_key: &Digest) -> bool {
        let own = ManifestEntry::new(
            invocation_key,
            self.files.clone(),
            self.env.clone(),
            self.absent.clone(),
        );
        own.key == self.key
    }

    /// What the entry lists, as named inputs (`larder explain`): each file read, each
    /// variable read (`unset` if it was not set), each path that must not exist.
    pub fn inputs(&self) -> Vec<Input> {
        let mut out = Vec::new();
        // Named without metadata hashes: a file generated in `OUT_DIR` keeps its name
        // when the build directory's hash changes.
        for (p, d) in &self.files {
            out.push(Input::digest(kind::SOURCE, without_metadata_hash(p), d));
        }
        for (k, v) in &self.env {
            out.push(Input::new(
                kind::READ_ENV,
                k.clone(),
                v.clone().unwrap_or_else(|| UNSET.to_string()),
            ));
        }
        for a in &self.absent {
            out.push(Input::new(kind::ABSENT, without_metadata_hash(a), "absent"));
        }
        out
    }

    /// Checks the entry against the current inputs. `digest_of` hashes a file (`None` if
    /// it cannot be read); `env_of` gives a variable's current value as it is.
    pub fn matches(
        &self,
        roots: &Roots,
        mut digest_of: impl FnMut(&Path) -> Option<Digest>,
        env_of: impl Fn(&str) -> Option<String>,
        cwd: &Path,
    ) -> Result<(), Mismatch> {
        for (name, value) in &self.env {
            let current = env_of(name);
            let same = match (value, &current) {
                (None, None) => true,
                (Some(kept), Some(now)) if Roots::has_placeholder(kept) => {
                    roots.normalize_text(now) == *kept
                }
                (Some(kept), Some(now)) => kept == now,
                _ => false,
            };
            if !same {
                return Err(Mismatch::EnvChanged(name.clone()));
            }
        }
        for a in &self.absent {
            if cwd.join(roots.denormalize_path(a)).exists() {
                return Err(Mismatch::FileAppeared(a.clone()));
            }
        }
        for (p, d) in &self.files {
            if roots.has_unknown_placeholder(p) {
                return Err(Mismatch::FileMissing(p.clone()));
            }
            match digest_of(&cwd.join(roots.denormalize_path(p))) {
                None => return Err(Mismatch::FileMissing(p.clone())),
                Some(actual) if actual != *d => return Err(Mismatch::FileChanged(p.clone())),
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// The manifest of one invocation key: the input sets seen for it, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The entries, newest first, at most [`MAX_MANIFEST_ENTRIES`].
    pub entries: Vec<ManifestEntry>,
}

impl Manifest {
    /// Puts `entry` first, dropping an older entry with the same key and the oldest past
    /// the limit.
    pub fn insert(&mut self, entry: ManifestEntry) {
        self.entries.retain(|e| e.key != entry.key);
        self.entries.insert(0, entry);
        self.entries.truncate(MAX_MANIFEST_ENTRIES);
    }
}

/// The other file a module could have been loaded from: `a/mod.rs` for `a.rs` and `a.rs`
/// for `a/mod.rs`. If it appears, rustc's module resolution changes (it becomes an
/// error), so it must not exist for a manifest entry to match.
pub fn alternate_module_file(path: &str) -> Option<String> {
    let p = Path::new(path);
    if p.extension()? != "rs" {
        return None;
    }
    let stem = p.file_stem()?.to_str()?;
    let parent = p.parent()?;
    let alt: PathBuf = if stem == "mod" {
        let dir = parent.file_name()?.to_str()?;
        parent.parent()?.join(format!("{dir}.rs"))
    } else {
        parent.join(stem).join("mod.rs")
    };
    alt.to_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alternate_module_files() {
        assert_eq!(
            alternate_module_file("src/a.rs").as_deref(),
            Some("src/a/mod.rs")
        );
        assert_eq!(
            alternate_module_file("src/a/mod.rs").as_deref(),
            Some("src/a.rs")
        );
        assert_eq!(alternate_module_file("src/data.txt"), None);
    }

    #[test]
    fn every_field_changes_the_invocation_key() {
        let base = KeyInputs {
            compiler: Some(Digest::of(b"rustc 1")),
            args: vec!["--crate-name".into(), "a".into()],
            env: vec![("CARGO_PKG_VERSION".into(), "1.0.0".into())],
            libraries: vec![("b".into(), Digest::of(b"libb"))],
            linker: Some(Digest::of(b"cc")),
            files: vec![("x.json".into(), Digest::of(b"{}"))],
        };
        let k = base.invocation_key();
        let mut variants = Vec::new();
        let mut v = base.clone();
        v.compiler = Some(Digest::of(b"rustc 2"));
        variants.push(v);
        let mut v = base.clone();
        v.args[1] = "b".into();
        variants.push(v);
        let mut v = base.clone();
        v.env[0].1 = "1.0.1".into();
        variants.push(v);
        let mut v = base.clone();
        v.libraries[0].1 = Digest::of(b"libb2");
        variants.push(v);
        let mut v = base.clone();
        v.linker = None;
        variants.push(v);
        let mut v = base.clone();
        v.files[0].1 = Digest::of(b"{ }");
        variants.push(v);
        for v in variants {
            assert_ne!(v.invocation_key(), k, "{v:?}");
            // `larder explain` sees each change as exactly one differing input.
            let d = crate::inputs::diff(&base.inputs("rustc"), &v.inputs("rustc"));
            assert_eq!(d.len(), 1, "{v:?}: {d:?}");
        }
    }

    #[test]
    fn key_version_changes_the_invocation_key() {
        let k = KeyInputs::default();
        assert_ne!(
            k.invocation_key(),
            k.invocation_key_of_version("larder-key-v0")
        );
    }

    #[test]
    fn result_key_covers_files_env_and_absence() {
        let ik = Digest::of(b"ik");
        let e = ManifestEntry::new(
            &ik,
            vec![("src/lib.rs".into(), Digest::of(b"1"))],
            vec![],
            vec![],
        );
        let f = ManifestEntry::new(
            &ik,
            vec![("src/lib.rs".into(), Digest::of(b"2"))],
            vec![],
            vec![],
        );
        let g = ManifestEntry::new(
            &ik,
            vec![("src/lib.rs".into(), Digest::of(b"1"))],
            vec![("X".into(), None)],
            vec![],
        );
        let h = ManifestEntry::new(
            &ik,
            vec![("src/lib.rs".into(), Digest::of(b"1"))],
            vec![],
            vec!["src/lib/mod.rs".into()],
        );
        let keys = [e.key, f.key, g.key, h.key];
        for i in 0..keys.len() {
            for j in i + 1..keys.len() {
                assert_ne!(keys[i], keys[j]);
            }
        }
        assert_ne!(
            ManifestEntry::new(&Digest::of(b"other"), e.files.clone(), vec![], vec![]).key,
            e.key
        );
    }

    #[test]
    fn variable_values_are_kept_as_they_are_but_an_include_root() {
        let roots = Roots::new([("target", PathBuf::from("/a/t"))]);
        let out = "/a/t/debug/build/x-1/out";
        let read = vec![
            PathBuf::from("/a/src/lib.rs"),
            PathBuf::from(format!("{out}/gen.rs")),
        ];
        assert_eq!(
            env_dep_value("OUT_DIR", out, &read, &roots),
            "@@larder:target@@/debug/build/x-1/out"
        );
        assert_eq!(env_dep_value("OUT_DIR", out, &read[..1], &roots), out);
        assert_eq!(
            env_dep_value("CARGO_MANIFEST_DIR", "/a", &read, &roots),
            "/a"
        );

        // A normalized value matches the same place in another checkout; a value kept
        // as it is matches only itself.
        let entry = ManifestEntry::new(
            &Digest::of(b"ik"),
            vec![],
            vec![
                ("OUT_DIR".into(), Some("@@larder:target@@/o".into())),
                ("CARGO_MANIFEST_DIR".into(), Some("/a".into())),
            ],
            vec![],
        );
        let here = |other_dir: &'static str| {
            move |n: &str| match n {
                "OUT_DIR" => Some("/b/t/o".to_string()),
                _ => Some(other_dir.to_string()),
            }
        };
        let b = Roots::new([("target", PathBuf::from("/b/t"))]);
        let cwd = Path::new("/");
        assert_eq!(entry.matches(&b, |_| None, here("/a"), cwd), Ok(()));
        assert_eq!(
            entry.matches(&b, |_| None, here("/b"), cwd),
            Err(Mismatch::EnvChanged("CARGO_MANIFEST_DIR".into()))
        );
    }

    #[test]
    fn manifest_keeps_newest_first_and_bounded() {
        let mut m = Manifest::default();
        for i in 0..(MAX_MANIFEST_ENTRIES + 3) {
            m.insert(ManifestEntry::new(
                &Digest::of(&[i as u8]),
                vec![],
                vec![],
                vec![],
            ));
        }
        assert_eq!(m.entries.len(), MAX_MANIFEST_ENTRIES);
        assert_eq!(
            m.entries[0].key,
            ManifestEntry::new(
                &Digest::of(&[(MAX_MANIFEST_ENTRIES + 2) as u8]),
                vec![],
                vec![],
                vec![]
            )
            .key
        );
    }

    #[test]
    fn incremental_location_is_dropped_but_presence_kept() {
        let roots = Roots::new([("cwd", PathBuf::from("/w"))]);
        let inv = Invocation::parse(
            "rustc".into(),
            "--crate-name a src/lib.rs --crate-type lib --out-dir /w/t -C incremental=/w/t/inc"
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            "/w".into(),
        )
        .unwrap();
        let args = normalized_args(&inv, &roots);
        assert!(args.contains(&"incremental".to_string()));
        assert!(args.contains(&"@@larder:cwd@@/t".to_string()));
        assert!(!args.iter().any(|a| a.contains("/inc")));
    }
}
