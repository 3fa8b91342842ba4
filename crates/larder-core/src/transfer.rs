//! `larder export` and `larder import`: entries moved between the local store and a
//! directory or tarball that a CI cache step saves and restores (BuildKit never exports
//! its cache mounts; `actions/cache` and GitLab's `cache:` keep a path).
//!
//! An export is a store in the local store's layout (`v1/<namespace>/<shard>/<key>`,
//! blobs as they lie, compressed): a directory, usable as a `file://` remote too, or the
//! same tree as a tar archive (`.tar`, or zstd-compressed `.tar.zst`). `--last-build`
//! exports what the last build used: each entry its report names (restored or stored),
//! with its blobs, its key inputs, the manifest that leads to it, its unit's index and
//! the link records of its libraries.
//!
//! An import trusts nothing: every blob is decompressed and hashed (one that does not
//! match its key is skipped and counted), an action record is imported only if every
//! blob it names is in the store afterwards, a manifest keeps only entries whose record
//! is there, and manifests and indexes are merged into the local ones, not replaced.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use larder_digest::Digest;
use larder_key::inputs::{InputIndex, index_key};
use larder_key::{InputSet, Manifest};
use larder_store::{ActionRecord, DiskStore, Layout, Namespace, Store, StoreError};
use serde::Serialize;

use crate::report::Event;

/// What to export.
#[derive(Debug, Clone)]
pub enum Selection {
    /// Every entry of the store.
    All,
    /// The entries the events of a build name (their `key`).
    Build(Vec<Event>),
}

/// An export or import failure, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file of the export could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TransferError + '_ {
    move |source| TransferError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Exported {
    /// Action records (entries).
    pub entries: u64,
    /// Files written (blobs, records, manifests, inputs, links).
    pub files: u64,
    /// Bytes written, as stored (blobs compressed).
    pub bytes: u64,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Imported {
    /// Action records added.
    pub entries: u64,
    /// Blobs added (verified).
    pub blobs: u64,
    /// Files already in the store.
    pub present: u64,
    /// Blobs that did not match their digest: skipped.
    pub corrupt: u64,
    /// Action records skipped because a blob they name is missing or corrupt.
    pub incomplete: u64,
}

/// Whether `path` names a tar archive rather than a directory.
fn is_archive(path: &Path) -> bool {
    let name = path.to_string_lossy();
    name.ends_with(".tar") || name.ends_with(".tar.zst")
}

/// The `(namespace, key)` pairs to export.
fn selected(store: &DiskStore, what: &Selection) -> Result<Vec<(Namespace, Digest)>, StoreError> {
    let mut out: Vec<(Namespace, Digest)> = Vec::new();
    match what {
        Selection::All => {
            // Seeds are this machine's ([`crate::seed`]): never exported.
            for ns in Namespace::ALL.into_iter().filter(|n| *n != Namespace::Seed) {
                out.extend(store.list(ns)?.into_iter().map(|e| (ns, e.key)));
            }
        }
        Selection::Build(events) => {
            let keys: HashSet<Digest> = events
                .iter()
                .filter_map(|e| e.key.as_deref().and_then(Digest::from_hex))
                .collect();
            // The manifests a lookup reads first: from the events, as a unit restored
            // from a remote has no key inputs here to name its manifest.
            out.extend(
                events
                    .iter()
                    .filter(|e| e.key.is_some())
                    .filter_map(|e| e.invocation.as_deref().and_then(Digest::from_hex))
                    .map(|k| (Namespace::Manifest, k)),
            );
            for key in keys {
                let Some(bytes) = store.peek(Namespace::Action, &key)? else {
                    continue;
                };
                let Ok(record) = serde_json::from_slice::<ActionRecord>(&bytes) else {
                    continue;
                };
                out.push((Namespace::Action, key));
                for o in &record.outputs {
                    out.push((Namespace::Cas, o.digest));
                    if o.path.ends_with(".rlib") {
                        out.push((Namespace::Link, o.digest));
                    }
                }
                if let Some(set) = store
                    .peek(Namespace::Inputs, &key)?
                    .and_then(|b| serde_json::from_slice::<InputSet>(&b).ok())
                {
                    out.push((Namespace::Inputs, key));
                    out.push((Namespace::Inputs, index_key(&set.unit, &set.kind)));
                    out.push((Namespace::Manifest, set.invocation));
                }
            }
        }
    }
    out.sort_by_key(|(ns, k)| (ns.as_str(), *k));
    out.dedup();
    Ok(out)
}

/// The files of an entry in a store's layout (a blob may lie compressed and raw),
/// relative to the store directory.
fn entry_files(layout: &Layout, ns: Namespace, key: &Digest) -> Vec<PathBuf> {
    let path = layout.entry(ns, key);
    let mut files = vec![path.clone()];
    if ns == Namespace::Cas {
        files.push(path.with_extension("raw"));
    }
    files
        .into_iter()
        .filter(|p| p.is_file())
        .filter_map(|p| p.strip_prefix(layout.dir()).ok().map(Path::to_path_buf))
        .collect()
}

/// Exports the selected entries of `store` to `out`: a directory, or a tar archive if
/// `out` ends in `.tar` or `.tar.zst`.
///
/// # Errors
/// [`TransferError`] if the store cannot be read or `out` written.
pub fn export(store: &DiskStore, what: &Selection, out: &Path) -> Result<Exported, TransferError> {
    let layout = store.layout();
    let mut exported = Exported::default();
    let pairs = selected(store, what)?;
    exported.entries = pairs
        .iter()
        .filter(|(ns, _)| *ns == Namespace::Action)
        .count() as u64;
    let files: Vec<PathBuf> = pairs
        .iter()
        .flat_map(|(ns, k)| entry_files(layout, *ns, k))
        .collect();
    if is_archive(out) {
        let file = File::create(out).map_err(io(out))?;
        let sink: Box<dyn Write> = if out.to_string_lossy().ends_with(".zst") {
            Box::new(zstd::Encoder::new(file, 3).map_err(io(out))?.auto_finish())
        } else {
            Box::new(file)
        };
        let mut tar = tar::Builder::new(sink);
        for rel in &files {
            let src = layout.dir().join(rel);
            let mut f = File::open(&src).map_err(io(&src))?;
            tar.append_file(rel, &mut f).map_err(io(out))?;
            exported.files += 1;
            exported.bytes += f.metadata().map(|m| m.len()).unwrap_or(0);
        }
        tar.into_inner()
            .and_then(|mut w| w.flush())
            .map_err(io(out))?;
    } else {
        for rel in &files {
            let (src, dest) = (layout.dir().join(rel), out.join(rel));
            if let Some(dir) = dest.parent() {
                std::fs::create_dir_all(dir).map_err(io(dir))?;
            }
            exported.bytes += std::fs::copy(&src, &dest).map_err(io(&dest))?;
            exported.files += 1;
        }
    }
    Ok(exported)
}

/// Imports an export (a directory or a tar archive) into `store`, verifying every blob.
///
/// # Errors
/// [`TransferError`] if the export cannot be read or the store written.
pub fn import(store: &DiskStore, from: &Path) -> Result<Imported, TransferError> {
    let unpacked;
    let dir = if is_archive(from) {
        unpacked = tempfile::Builder::new()
            .prefix("larder-import-")
            .tempdir()
            .map_err(io(from))?;
        let file = File::open(from).map_err(io(from))?;
        let source: Box<dyn Read> = if from.to_string_lossy().ends_with(".zst") {
            Box::new(zstd::Decoder::new(file).map_err(io(from))?)
        } else {
            Box::new(file)
        };
        tar::Archive::new(source)
            .unpack(unpacked.path())
            .map_err(io(from))?;
        unpacked.path().to_path_buf()
    } else {
        from.to_path_buf()
    };
    let src = DiskStore::open(&dir, u64::MAX)?;
    let mut imported = Imported::default();

    let mut blobs_ok: HashSet<Digest> = HashSet::new();
    for e in src.list(Namespace::Cas)? {
        let value = match src.peek(Namespace::Cas, &e.key) {
            Ok(Some(v)) if Digest::of(&v) == e.key => v,
            Ok(None) => continue,
            _ => {
                imported.corrupt += 1;
                continue;
            }
        };
        blobs_ok.insert(e.key);
        if store.contains(Namespace::Cas, &e.key)? {
            imported.present += 1;
        } else {
            store.put(Namespace::Cas, &e.key, &value)?;
            imported.blobs += 1;
        }
    }
    let mut records: HashSet<Digest> = HashSet::new();
    for e in src.list(Namespace::Action)? {
        let Some(bytes) = src.peek(Namespace::Action, &e.key)? else {
            continue;
        };
        let Ok(record) = serde_json::from_slice::<ActionRecord>(&bytes) else {
            imported.incomplete += 1;
            continue;
        };
        let mut whole = true;
        for o in &record.outputs {
            if !blobs_ok.contains(&o.digest) && !store.contains(Namespace::Cas, &o.digest)? {
                whole = false;
            }
        }
        if !whole {
            imported.incomplete += 1;
            continue;
        }
        records.insert(e.key);
        if store.contains(Namespace::Action, &e.key)? {
            imported.present += 1;
        } else {
            store.put(Namespace::Action, &e.key, &bytes)?;
            imported.entries += 1;
        }
    }
    for e in src.list(Namespace::Manifest)? {
        let Some(m) = src
            .peek(Namespace::Manifest, &e.key)?
            .and_then(|b| serde_json::from_slice::<Manifest>(&b).ok())
        else {
            continue;
        };
        let mut keep = Vec::new();
        for entry in m.entries {
            if records.contains(&entry.key) || store.contains(Namespace::Action, &entry.key)? {
                keep.push(entry);
            }
        }
        if keep.is_empty() {
            continue;
        }
        store.update(Namespace::Manifest, &e.key, &|current| {
            let mut merged: Manifest = current
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default();
            for entry in keep.iter().rev() {
                merged.insert(entry.clone());
            }
            serde_json::to_vec(&merged).unwrap_or_default()
        })?;
    }
    for ns in [Namespace::Link, Namespace::Inputs] {
        for e in src.list(ns)? {
            let Some(bytes) = src.peek(ns, &e.key)? else {
                continue;
            };
            if let Ok(index) = serde_json::from_slice::<InputIndex>(&bytes) {
                store.update(ns, &e.key, &|current| {
                    let mut merged: InputIndex = current
                        .and_then(|b| serde_json::from_slice(&b).ok())
                        .unwrap_or_default();
                    for r in index.results.iter().rev() {
                        merged.insert(*r);
                    }
                    serde_json::to_vec(&merged).unwrap_or_default()
                })?;
            } else if !store.contains(ns, &e.key)? {
                store.put(ns, &e.key, &bytes)?;
            }
        }
    }
    Ok(imported)
}
