//! What the local store holds, entry by entry: each action record with its crate, kind,
//! bytes and last use, and from the key inputs kept with it ([`larder_key::InputSet`])
//! its toolchain, version and time of storing. `larder du` groups it; `larder prune`
//! removes selected entries (and what only they used). Reading it marks nothing used.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, SystemTime};

use larder_digest::Digest;
use larder_key::inputs::kind;
use larder_key::{InputSet, Manifest};
use larder_store::{ActionRecord, Namespace, Store, StoreError};
use serde::Serialize;

/// One action record of the store.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its result key.
    pub key: Digest,
    /// The crate (or package, for a build-script run; `cc:<file>` for a C object).
    pub crate_name: String,
    /// What it is: `lib`, `bin`, `proc-macro`, `metadata`, `build-script-run`,
    /// `c-object`, `failure`.
    pub kind: &'static str,
    /// The bytes of its outputs (a blob shared with another entry counts for both).
    pub bytes: u64,
    /// When it was last stored or restored.
    pub last_used: SystemTime,
    /// The blobs it references.
    pub blobs: Vec<Digest>,
    /// The profile directory its outputs go to (`debug`, `release`), or `unknown`.
    pub profile: String,
    /// The compiler (`rustc 1.95.0 (59807616e 2026-04-14)`; `cc <digest>` for a C
    /// object), or `unknown` where no key inputs were kept.
    pub toolchain: String,
    /// The package (`CARGO_PKG_NAME`), if known: it names a build script's compile.
    pub package: Option<String>,
    /// The package version (`CARGO_PKG_VERSION`), if known.
    pub version: Option<String>,
    /// When it was stored, if known.
    pub created: Option<SystemTime>,
}

/// The profile directory of a normalized output path: the component before `deps`,
/// `build`, `examples` or `incremental`, or before the file itself.
fn profile_of(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').collect();
    let at = parts
        .iter()
        .position(|p| matches!(*p, "deps" | "build" | "examples" | "incremental"))
        .unwrap_or(parts.len().saturating_sub(1));
    at.checked_sub(1)
        .and_then(|i| parts.get(i))
        .filter(|p| !p.starts_with("@@"))
        .map_or_else(|| "unknown".to_string(), |p| (*p).to_string())
}

/// What an entry's key inputs tell about it.
struct Facts {
    toolchain: String,
    package: Option<String>,
    version: Option<String>,
    created: Option<SystemTime>,
}

/// Toolchain, package, version and time of storing, from an entry's key inputs.
fn facts(set: Option<&InputSet>) -> Facts {
    let Some(set) = set else {
        return Facts {
            toolchain: "unknown".into(),
            package: None,
            version: None,
            created: None,
        };
    };
    let find = |kind: &str, name: &str| {
        set.inputs
            .iter()
            .find(|i| i.kind == kind && i.name == name)
            .map(|i| i.value.clone())
    };
    let toolchain = find(kind::TOOLCHAIN, "rustc")
        .map(|v| larder_key::inputs::toolchain_release(&v).to_string())
        .filter(|v| !v.is_empty())
        .or_else(|| {
            find(kind::C_COMPILER, "compiler").map(|d| format!("cc {}", &d[..d.len().min(12)]))
        })
        .unwrap_or_else(|| "unknown".into());
    Facts {
        toolchain,
        package: find(kind::ENV, "CARGO_PKG_NAME"),
        version: find(kind::ENV, "CARGO_PKG_VERSION"),
        created: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(set.created)),
    }
}

impl Entry {
    /// The name `du` shows: the crate, or `pkg (build script)` for a build script's
    /// compile.
    pub fn display_name(&self) -> String {
        match &self.package {
            Some(p) if larder_key::is_build_script_name(&self.crate_name) => {
                format!("{p} (build script)")
            }
            _ => self.crate_name.clone(),
        }
    }
}

/// The store, entry by entry.
#[derive(Debug, Default)]
pub struct Catalog {
    /// Every action record that parses.
    pub entries: Vec<Entry>,
    /// Bytes on disk of the whole store (every namespace).
    pub store_bytes: u64,
}

/// The kind of an action record, from its name and outputs.
fn kind_of(record: &ActionRecord) -> &'static str {
    let has = |ext: &str| record.outputs.iter().any(|o| o.path.ends_with(ext));
    if record.exit_code != 0 {
        "failure"
    } else if record.crate_name.starts_with("cc:") {
        "c-object"
    } else if record.outputs.iter().any(|o| o.path.contains("/out/")) || record.outputs.is_empty() {
        "build-script-run"
    } else if has(".rlib") {
        "lib"
    } else if has(".so") {
        "proc-macro"
    } else if has(".rmeta") {
        "metadata"
    } else {
        "bin"
    }
}

/// Crate names compare with `-` and `_` alike (a package `zstd-sys` is the crate
/// `zstd_sys`).
fn same_crate(a: &str, b: &str) -> bool {
    a.replace('-', "_") == b.replace('-', "_")
}

impl Catalog {
    /// Reads every action record of the store.
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be read.
    pub fn read(store: &dyn Store) -> Result<Catalog, StoreError> {
        let mut store_bytes = 0;
        for ns in Namespace::ALL {
            store_bytes += store.list(ns)?.iter().map(|e| e.bytes).sum::<u64>();
        }
        let mut entries = Vec::new();
        for stored in store.list(Namespace::Action)? {
            let Some(bytes) = store.peek(Namespace::Action, &stored.key)? else {
                continue;
            };
            let Ok(record) = serde_json::from_slice::<ActionRecord>(&bytes) else {
                continue;
            };
            let set = store
                .peek(Namespace::Inputs, &stored.key)?
                .and_then(|b| serde_json::from_slice::<InputSet>(&b).ok());
            let f = facts(set.as_ref());
            entries.push(Entry {
                key: stored.key,
                kind: kind_of(&record),
                bytes: record.outputs.iter().map(|o| o.size).sum(),
                last_used: stored.modified,
                blobs: record.outputs.iter().map(|o| o.digest).collect(),
                profile: record
                    .outputs
                    .first()
                    .map_or_else(|| "(no outputs)".into(), |o| profile_of(&o.path)),
                toolchain: f.toolchain,
                package: f.package,
                version: f.version,
                created: f.created,
                crate_name: record.crate_name,
            });
        }
        Ok(Catalog {
            entries,
            store_bytes,
        })
    }

    /// The entries grouped by `by`, largest first.
    pub fn group(&self, by: GroupBy, now: SystemTime) -> Vec<Group> {
        let mut groups: BTreeMap<String, Group> = BTreeMap::new();
        for e in &self.entries {
            let name = match by {
                GroupBy::Crate => e.display_name(),
                GroupBy::Kind => e.kind.to_string(),
                GroupBy::Toolchain => e.toolchain.clone(),
                GroupBy::Profile => e.profile.clone(),
                GroupBy::Age => age_bucket(now.duration_since(e.last_used).unwrap_or_default()),
            };
            let g = groups.entry(name.clone()).or_insert(Group {
                name,
                bytes: 0,
                entries: 0,
            });
            g.bytes += e.bytes;
            g.entries += 1;
        }
        let mut out: Vec<Group> = groups.into_values().collect();
        out.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.name.cmp(&b.name)));
        out
    }
}

/// How `larder du` groups entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// By crate (package, for build-script runs).
    Crate,
    /// By kind (`lib`, `bin`, `build-script-run`, `c-object`, ...).
    Kind,
    /// By compiler.
    Toolchain,
    /// By profile directory (`debug`, `release`).
    Profile,
    /// By time since last use.
    Age,
}

/// Entries and bytes of one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Group {
    /// The crate, kind or age bucket.
    pub name: String,
    /// The bytes of the group's outputs.
    pub bytes: u64,
    /// How many entries.
    pub entries: u64,
}

fn age_bucket(age: Duration) -> String {
    const DAY: u64 = 24 * 3600;
    match age.as_secs() {
        s if s < DAY => "used within 1 day",
        s if s < 7 * DAY => "1-7 days ago",
        s if s < 30 * DAY => "7-30 days ago",
        _ => "over 30 days ago",
    }
    .to_string()
}

/// What `larder prune` selects: entries of a crate, entries last used before a time, or
/// both (all conditions given must hold).
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Entries of this crate (`-` and `_` alike), and of this version if given as
    /// `name@version`.
    pub crate_name: Option<String>,
    /// Entries last used before this time.
    pub unused_since: Option<SystemTime>,
    /// Entries stored before this time (an entry whose time of storing is not known
    /// counts its last use).
    pub created_before: Option<SystemTime>,
    /// Entries of a toolchain whose name contains this (`1.94.0`, `nightly`).
    pub toolchain: Option<String>,
}

impl Selection {
    /// Whether `e` is selected: every condition given holds.
    pub fn selects(&self, e: &Entry) -> bool {
        let krate = self.crate_name.as_deref().is_none_or(|c| {
            let (name, version) = match c.split_once('@') {
                Some((n, v)) => (n, Some(v)),
                None => (c, None),
            };
            (same_crate(name, &e.crate_name)
                || e.package.as_deref().is_some_and(|p| same_crate(name, p)))
                && version.is_none_or(|v| e.version.as_deref() == Some(v))
        });
        krate
            && self.unused_since.is_none_or(|t| e.last_used < t)
            && self
                .created_before
                .is_none_or(|t| e.created.unwrap_or(e.last_used) < t)
            && self
                .toolchain
                .as_deref()
                .is_none_or(|t| e.toolchain.contains(t))
    }
}

/// What a prune removed (or, dry, would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Pruned {
    /// Action records.
    pub entries: u64,
    /// Blobs no remaining entry references.
    pub blobs: u64,
    /// Manifest entries that led to the removed records.
    pub manifest_entries: u64,
    /// Bytes freed on disk.
    pub bytes: u64,
}

impl Catalog {
    /// Removes the selected entries, the blobs only they reference, and the manifest
    /// entries that lead to them, so the next build misses exactly those units. Link
    /// records (a few bytes under a library's digest) stay: the same library compiled
    /// again finds its record, and links that use it still hit. With `dry_run`, removes
    /// nothing and says what it would.
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be read or written.
    pub fn prune(
        &self,
        store: &dyn Store,
        selection: &Selection,
        dry_run: bool,
    ) -> Result<Pruned, StoreError> {
        let (gone, kept): (Vec<&Entry>, Vec<&Entry>) =
            self.entries.iter().partition(|e| selection.selects(e));
        let still_used: HashSet<Digest> =
            kept.iter().flat_map(|e| e.blobs.iter().copied()).collect();
        let gone_keys: HashSet<Digest> = gone.iter().map(|e| e.key).collect();
        let mut blobs: Vec<Digest> = gone
            .iter()
            .flat_map(|e| e.blobs.iter().copied())
            .filter(|d| !still_used.contains(d))
            .collect();
        blobs.sort();
        blobs.dedup();

        let mut pruned = Pruned {
            entries: gone.len() as u64,
            blobs: blobs.len() as u64,
            ..Pruned::default()
        };
        let sizes: BTreeMap<(u8, Digest), u64> = [
            (0u8, Namespace::Action),
            (1, Namespace::Cas),
            (2, Namespace::Inputs),
        ]
        .into_iter()
        .map(|(i, ns)| {
            store
                .list(ns)
                .map(|l| l.into_iter().map(move |e| ((i, e.key), e.bytes)))
        })
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .collect();
        for e in &gone {
            pruned.bytes += sizes.get(&(0, e.key)).copied().unwrap_or(0);
            pruned.bytes += sizes.get(&(2, e.key)).copied().unwrap_or(0);
        }
        for d in &blobs {
            pruned.bytes += sizes.get(&(1, *d)).copied().unwrap_or(0);
        }
        // Manifest entries leading to a removed record.
        for m in store.list(Namespace::Manifest)? {
            let Some(bytes) = store.peek(Namespace::Manifest, &m.key)? else {
                continue;
            };
            let Ok(mut manifest) = serde_json::from_slice::<Manifest>(&bytes) else {
                continue;
            };
            let before = manifest.entries.len();
            manifest.entries.retain(|e| !gone_keys.contains(&e.key));
            let removed = before - manifest.entries.len();
            if removed == 0 {
                continue;
            }
            pruned.manifest_entries += removed as u64;
            if dry_run {
                continue;
            }
            if manifest.entries.is_empty() {
                store.delete(Namespace::Manifest, &m.key)?;
            } else {
                let json = serde_json::to_vec(&manifest).map_err(std::io::Error::other)?;
                store.delete(Namespace::Manifest, &m.key)?;
                store.put(Namespace::Manifest, &m.key, &json)?;
            }
        }
        if !dry_run {
            for e in &gone {
                store.delete(Namespace::Action, &e.key)?;
                store.delete(Namespace::Inputs, &e.key)?;
            }
            for d in &blobs {
                store.delete(Namespace::Cas, d)?;
            }
        }
        Ok(pruned)
    }
}
