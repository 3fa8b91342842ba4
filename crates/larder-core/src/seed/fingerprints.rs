//! Which recorded units a build used, read from cargo's fingerprint files.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// Which of the fingerprint directories `among` the units in `roots` depend on,
/// directly or not, through cargo's fingerprints: each unit's `*.json` lists its
/// dependencies' fingerprint hashes (`deps`: `[package hash, name, public, hash]`),
/// and each unit's hash file (`lib-serde`) holds its own, as sixteen hex digits of the
/// hash's little-endian bytes. The walk goes through every unit of the `.fingerprint`
/// directories involved, not only `among`: a path package's units are never recorded,
/// yet they link a reported unit to recorded ones (a build script's dependencies are
/// reached only through the path package's build script). A format this does not read
/// finds no dependency: the unit is then not carried to the next seed (it is recorded
/// again when a build restores it), never planted wrongly.
pub(super) fn used_by(roots: &[PathBuf], among: &[PathBuf]) -> BTreeSet<PathBuf> {
    let wanted: BTreeSet<&PathBuf> = among.iter().collect();
    let parents: BTreeSet<&Path> = roots
        .iter()
        .chain(among)
        .filter_map(|d| d.parent())
        .collect();
    let mut by_hash: HashMap<u64, PathBuf> = HashMap::new();
    for parent in parents {
        let Ok(entries) = std::fs::read_dir(parent) else {
            continue;
        };
        for dir in entries.flatten().map(|e| e.path()) {
            by_hash.extend(own_hashes(&dir).into_iter().map(|h| (h, dir.clone())));
        }
    }
    // `among`'s own spelling of each directory wins, for the lookup in `wanted`.
    for dir in among {
        by_hash.extend(own_hashes(dir).into_iter().map(|h| (h, dir.clone())));
    }
    let mut used = BTreeSet::new();
    let mut todo: Vec<PathBuf> = roots.to_vec();
    let mut visited = BTreeSet::new();
    while let Some(dir) = todo.pop() {
        if !visited.insert(dir.clone()) {
            continue;
        }
        for h in dependency_hashes(&dir) {
            if let Some(dep) = by_hash.get(&h) {
                if wanted.contains(dep) {
                    used.insert(dep.clone());
                }
                todo.push(dep.clone());
            }
        }
    }
    used
}

/// The fingerprint hashes a unit's directory holds (a file of sixteen hex digits).
fn own_hashes(dir: &Path) -> Vec<u64> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.metadata().is_ok_and(|m| m.len() == 16))
        .filter_map(|e| {
            let text = std::fs::read_to_string(e.path()).ok()?;
            let mut bytes = [0u8; 8];
            for (i, b) in bytes.iter_mut().enumerate() {
                *b = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
            }
            Some(u64::from_le_bytes(bytes))
        })
        .collect()
}

/// The fingerprint hashes of a unit's dependencies, from its `*.json` files.
fn dependency_hashes(dir: &Path) -> Vec<u64> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        if e.path().extension().is_none_or(|x| x != "json") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        let Ok(doc) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let deps = doc.get("deps").and_then(|d| d.as_array());
        out.extend(
            deps.into_iter()
                .flatten()
                .filter_map(|d| d.as_array()?.get(3)?.as_u64()),
        );
    }
    out
}
