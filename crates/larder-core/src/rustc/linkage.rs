//! The libraries a linked output consumes.
//!
//! A bin, dylib, cdylib, staticlib or proc macro links every Rust library below it, not
//! only the ones cargo names with `--extern`: rustc finds the rest in the `-L dependency`
//! directories through the metadata of the direct ones. A change two levels down that
//! leaves the metadata of the levels above unchanged (a bundled C library rebuilt with
//! other flags, a codegen-only option) changes the linked output, so all of them are
//! inputs. When larder stores or restores a library it keeps a [`LinkRecord`] under the
//! library's digest listing the file names of the libraries it was compiled against;
//! [`link_closure`] walks those records from the direct externs. A library without a
//! usable record (never built through larder with this store, evicted, corrupt) makes
//! the link not cacheable; every restore of the library rewrites a missing or corrupt
//! record.
//!
//! Native static libraries (`lib*.a`) in `-L` directories inside the workspace or the
//! target directory (build scripts' `OUT_DIR`s) are inputs of every compile that links or
//! bundles them, and so is every static library named with `-l static=NAME`, wherever
//! it is found on the search path.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use larder_digest::Digest;
use larder_key::{DependencyGap, Invocation, NotCacheable, Roots, SearchKind};
use larder_store::{LinkRecord, Namespace, Store};

use crate::hashing::FileHasher;

/// The file name an extern stands for at link time: an `.rmeta` given during pipelined
/// compilation stands for the `.rlib` beside it.
pub fn link_name(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    Some(match name.strip_suffix(".rmeta") {
        Some(stem) => format!("{stem}.rlib"),
        None => name.to_string(),
    })
}

/// Every Rust library `inv` links, transitively, as (`link:<file name>`, digest), sorted.
///
/// # Errors
/// [`NotCacheable::UnknownDependency`] when a library has no link record or cannot be
/// found, [`NotCacheable::UnreadableInput`] when it cannot be read.
pub fn link_closure(
    inv: &Invocation,
    store: &dyn Store,
    hasher: &mut FileHasher,
) -> Result<Vec<(String, Digest)>, NotCacheable> {
    let dirs: Vec<&PathBuf> = inv
        .search_paths
        .iter()
        .filter(|(k, _)| {
            matches!(
                k,
                SearchKind::Dependency | SearchKind::Crate | SearchKind::All
            )
        })
        .map(|(_, p)| p)
        .collect();
    let mut queue: Vec<PathBuf> = Vec::new();
    let mut seen = BTreeSet::new();
    for e in &inv.externs {
        let Some(p) = &e.path else { continue };
        let Some(name) = link_name(p) else { continue };
        if seen.insert(name.clone()) {
            queue.push(p.with_file_name(name));
        }
    }
    let mut out = Vec::new();
    while let Some(path) = queue.pop() {
        let name = link_name(&path).unwrap_or_default();
        let digest = hasher
            .digest(&path)
            .ok_or_else(|| NotCacheable::UnreadableInput(path.display().to_string()))?;
        out.push((format!("link:{name}"), digest));
        if !name.ends_with(".rlib") {
            // Dynamic libraries and proc macros are loaded, not linked in: their own
            // dependencies are not part of this output.
            continue;
        }
        let gap = |g| NotCacheable::UnknownDependency(name.clone(), g);
        let bytes = store
            .get(Namespace::Link, &digest)
            .ok()
            .flatten()
            .ok_or_else(|| gap(DependencyGap::NoLinkRecord))?;
        let record: LinkRecord =
            serde_json::from_slice(&bytes).map_err(|_| gap(DependencyGap::CorruptLinkRecord))?;
        for dep in record.deps {
            if !seen.insert(dep.clone()) {
                continue;
            }
            let found = dirs
                .iter()
                .map(|d| d.join(&dep))
                .find(|p| p.is_file())
                .ok_or_else(|| {
                    NotCacheable::UnknownDependency(dep.clone(), DependencyGap::NotFound)
                })?;
            queue.push(found);
        }
    }
    out.sort();
    Ok(out)
}

/// Native static libraries in `-L` directories inside the workspace or target
/// directory, as (`native:<normalized path>`, digest), sorted.
///
/// # Errors
/// [`NotCacheable::UnreadableInput`] when one cannot be read.
pub fn native_libraries(
    inv: &Invocation,
    roots: &Roots,
    hasher: &mut FileHasher,
) -> Result<Vec<(String, Digest)>, NotCacheable> {
    let inside: Vec<&str> = ["target", "cwd"]
        .iter()
        .filter_map(|r| roots.get(r))
        .collect();
    let mut out = Vec::new();
    for (kind, dir) in &inv.search_paths {
        if !matches!(kind, SearchKind::Native | SearchKind::All) {
            continue;
        }
        if !inside.iter().any(|r| dir.starts_with(r)) {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "a") && p.is_file())
            .collect();
        files.sort();
        for f in files {
            let d = hasher
                .digest(&f)
                .ok_or_else(|| NotCacheable::UnreadableInput(f.display().to_string()))?;
            out.push((format!("native:{}", roots.normalize_path(&f)), d));
        }
    }
    // A static library named with `-l static=NAME` is an input wherever it is on the
    // search path: it is bundled into the rlib or linked into the output.
    for (kind, name) in &inv.link_libs {
        if kind != "static" {
            continue;
        }
        let file = format!("lib{name}.a");
        let found = inv
            .search_paths
            .iter()
            .filter(|(k, _)| matches!(k, SearchKind::Native | SearchKind::All))
            .map(|(_, d)| d.join(&file))
            .find(|p| p.is_file());
        if let Some(f) = found {
            let d = hasher
                .digest(&f)
                .ok_or_else(|| NotCacheable::UnreadableInput(f.display().to_string()))?;
            out.push((format!("static-lib:{}", roots.normalize_path(&f)), d));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}
