//! Recording a build's seed ([`capture`]): the files of each registry and git unit
//! larder cached, each with its digest, its content in the CAS or, for small text, in
//! the record.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use larder_digest::Digest;
use larder_key::Roots;
use larder_key::paths::find_target_dir;
use larder_store::{DiskStore, Namespace, Store};

use super::{
    INLINE_MAX_BYTES, MAX_UNITS, Seed, SeedFile, SeedUnit, file_hash, fingerprints, lexical,
    mtime_ns, relative,
};
use crate::report::Event;

/// Records, after a successful build of `project_dir` whose report is `events`, the
/// registry and git units larder cached in it, with those of the `previous` seed (of
/// the same guard) that this build used without rebuilding them: still in the target
/// directory, not reported uncacheable, and a dependency (through cargo's fingerprints,
/// `used_by`) of a unit this build reported. `None` if the build reported no unit
/// with a known fingerprint directory (the previous seed stands).
pub fn capture(
    store: &DiskStore,
    guard: Digest,
    project_dir: &Path,
    events: &[Event],
    previous: Option<&Seed>,
) -> Option<Seed> {
    let mut reported = Vec::new();
    let mut include = Vec::new();
    let mut exclude = BTreeSet::new();
    for e in events {
        let Some(dir) = e.fingerprint.as_deref().map(PathBuf::from) else {
            continue;
        };
        reported.push(dir.clone());
        if !e.seedable {
            continue;
        }
        if e.outcome == "hit" || (e.outcome == "miss" && e.stored) {
            include.push(dir);
        } else {
            exclude.insert(dir);
        }
    }
    let target = find_target_dir(reported.first()?)?;
    let previous = previous.filter(|p| p.guard == guard);
    let previous_dirs: Vec<PathBuf> = previous
        .iter()
        .flat_map(|p| &p.units)
        .map(|u| target.join(&u.fingerprint))
        .collect();
    let used = fingerprints::used_by(&reported, &previous_dirs);
    let mut seen = BTreeSet::new();
    let mut candidates = Vec::new();
    let from_previous = previous_dirs.into_iter().filter(|d| used.contains(d));
    for dir in include.into_iter().chain(from_previous) {
        if dir.starts_with(&target) && !exclude.contains(&dir) && seen.insert(dir.clone()) {
            candidates.push(dir);
        }
    }
    candidates.truncate(MAX_UNITS);
    let known: HashMap<&str, &SeedFile> = previous
        .iter()
        .flat_map(|p| &p.units)
        .flat_map(|u| &u.files)
        .map(|f| (f.path.as_str(), f))
        .collect();
    let roots = Roots::new([("target", target.clone())]);
    let listed = crate::hashing::KnownDigests::read(&target);
    let mut deps: HashMap<PathBuf, HashMap<String, Vec<PathBuf>>> = HashMap::new();
    let mut units = Vec::new();
    for dir in candidates {
        let Some(profile) = dir.parent().and_then(Path::parent) else {
            continue;
        };
        let by_hash = deps
            .entry(profile.to_path_buf())
            .or_insert_with(|| deps_by_hash(&profile.join("deps")));
        let cx = CaptureCx {
            store,
            target: &target,
            roots: &roots,
            known: &known,
            listed: &listed,
        };
        match capture_unit(&cx, &dir, profile, by_hash) {
            Ok(Some(unit)) => units.push(unit),
            Ok(None) => {}
            Err(e) => tracing::debug!(dir = %dir.display(), %e, "unit not recorded"),
        }
    }
    // Relative where the target directory is the project's own (`target/`, or a
    // workspace's `../../target` from a member); a shared one elsewhere stays absolute.
    let rel = relative(&lexical(project_dir), &target);
    let ups = rel
        .components()
        .take_while(|c| matches!(c, Component::ParentDir))
        .count();
    let target_dir = if ups <= 3 { rel } else { target.clone() }
        .display()
        .to_string();
    Some(Seed {
        guard,
        target_dir,
        units,
    })
}

/// The files of a `deps/` directory by the unit hash in their names.
fn deps_by_hash(deps: &Path) -> HashMap<String, Vec<PathBuf>> {
    let mut out: HashMap<String, Vec<PathBuf>> = HashMap::new();
    let Ok(entries) = std::fs::read_dir(deps) else {
        return out;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(hash) = file_hash(name) {
            out.entry(hash.to_string()).or_default().push(e.path());
        }
    }
    out
}

struct CaptureCx<'a> {
    store: &'a DiskStore,
    target: &'a Path,
    roots: &'a Roots,
    known: &'a HashMap<&'a str, &'a SeedFile>,
    /// The digests larder wrote down for the target directory's files this build
    /// ([`crate::hashing::KNOWN`]): a restored library is not read again.
    listed: &'a crate::hashing::KnownDigests,
}

/// The files of the unit whose fingerprint directory is `dir`, stored in the CAS.
/// `Ok(None)` if the unit is not (or not wholly) there, or holds a symlink or special
/// file.
fn capture_unit(
    cx: &CaptureCx<'_>,
    dir: &Path,
    profile: &Path,
    deps: &HashMap<String, Vec<PathBuf>>,
) -> io::Result<Option<SeedUnit>> {
    let Some(name) = dir.file_name().and_then(|n| n.to_str()) else {
        return Ok(None);
    };
    let Some(hash) = file_hash(name) else {
        return Ok(None);
    };
    let mut outputs: Vec<PathBuf> = deps.get(hash).cloned().unwrap_or_default();
    let build = profile.join("build").join(name);
    if build.exists() && !walk_files(&build, &mut outputs)? {
        return Ok(None);
    }
    let mut fingerprint = Vec::new();
    if !dir.is_dir() || !walk_files(dir, &mut fingerprint)? || fingerprint.is_empty() {
        return Ok(None);
    }
    // A nested directory under `.fingerprint/<unit>` is not cargo's.
    if fingerprint.iter().any(|f| f.parent() != Some(dir)) {
        return Ok(None);
    }
    outputs.sort();
    fingerprint.sort();
    let mut files = Vec::with_capacity(outputs.len() + fingerprint.len());
    for path in outputs.iter().chain(&fingerprint) {
        let mut file = capture_file(cx, path)?;
        if file.link_deps.is_none() && file.path.ends_with(".rlib") {
            file.link_deps = link_deps(cx.store, &file.digest);
        }
        files.push(file);
    }
    let rel = |p: &Path| p.strip_prefix(cx.target).map(|r| r.display().to_string());
    let Ok(fingerprint) = rel(dir) else {
        return Ok(None);
    };
    Ok(Some(SeedUnit { fingerprint, files }))
}

/// The libraries the rlib with `digest` was compiled against, from its link record.
fn link_deps(store: &DiskStore, digest: &Digest) -> Option<Vec<String>> {
    let bytes = store.peek(Namespace::Link, digest).ok()??;
    let record: larder_store::LinkRecord = serde_json::from_slice(&bytes).ok()?;
    Some(record.deps)
}

/// Adds every regular file under `dir` to `out`; `false` if it holds anything else.
pub(super) fn walk_files(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<bool> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let kind = e.file_type()?;
        if kind.is_dir() {
            if !walk_files(&e.path(), out)? {
                return Ok(false);
            }
        } else if kind.is_file() {
            out.push(e.path());
        } else {
            return Ok(false);
        }
    }
    Ok(true)
}

/// One file, its content kept in the record (small text: [`INLINE_MAX_BYTES`]) or put in
/// the CAS unless it is there. A file recorded before with the same size and time, whose
/// content is still kept, is not read again; a binary or large one in the target
/// directory's list of digests with its stamp ([`crate::hashing::KnownDigests`]), whose
/// content the CAS has, is not hashed.
fn capture_file(cx: &CaptureCx<'_>, path: &Path) -> io::Result<SeedFile> {
    let meta = std::fs::symlink_metadata(path)?;
    let rel = path
        .strip_prefix(cx.target)
        .map_err(|_| io::Error::other("outside the target directory"))?
        .display()
        .to_string();
    let mtime_ns = mtime_ns(&meta);
    let executable = meta.permissions().mode() & 0o111 != 0;
    if let Some(known) = cx.known.get(rel.as_str())
        && known.disk_size == meta.len()
        && known.mtime_ns == mtime_ns
        && known.executable == executable
        && (known.text.is_some()
            || cx
                .store
                .contains(Namespace::Cas, &known.digest)
                .unwrap_or(false))
    {
        return Ok(SeedFile {
            path: rel,
            ..(*known).clone()
        });
    }
    // A file larder wrote down this build with its digest, unchanged since, whose
    // content the CAS has (a restored library): not hashed again.
    let listed = cx
        .listed
        .digest(path, &meta)
        .filter(|d| cx.store.contains(Namespace::Cas, d).unwrap_or(false));
    let (digest, size, rewrite, text) = match listed {
        // Large, or binary (a NUL in its first bytes): kept as it is, never normalized,
        // so its listed digest is its stored content's.
        Some(digest)
            if meta.len() > larder_key::paths::REWRITE_MAX_BYTES || starts_binary(path)? =>
        {
            (digest, meta.len(), false, None)
        }
        _ if meta.len() <= larder_key::paths::REWRITE_MAX_BYTES => {
            let bytes = std::fs::read(path)?;
            let text = (!bytes.contains(&0))
                .then(|| std::str::from_utf8(&bytes).ok())
                .flatten();
            let normalized = text
                .map(|t| cx.roots.normalize_text(t))
                .filter(|n| Some(n.as_str()) != text);
            let (content, rewrite) = match &normalized {
                Some(n) => (n.as_bytes(), true),
                None => (&bytes[..], false),
            };
            let digest = Digest::of(content);
            let inline = normalized
                .as_deref()
                .or(text)
                .filter(|t| t.len() <= INLINE_MAX_BYTES)
                .map(str::to_owned);
            if inline.is_none() {
                put_blob(cx.store, &digest, || Ok(content.to_vec()))?;
            }
            (digest, content.len() as u64, rewrite, inline)
        }
        _ => {
            let (digest, size) = Digest::of_reader(std::fs::File::open(path)?)?;
            put_blob(cx.store, &digest, || std::fs::read(path))?;
            (digest, size, false, None)
        }
    };
    Ok(SeedFile {
        path: rel,
        digest,
        size,
        mtime_ns,
        executable,
        rewrite,
        disk_size: meta.len(),
        text,
        link_deps: None,
    })
}

/// Whether the file at `path` has a NUL byte in its first 64 KiB (an rlib, an object, an
/// executable): then it is binary, never normalized as text.
fn starts_binary(path: &Path) -> io::Result<bool> {
    use std::io::Read;
    let mut head = Vec::with_capacity(64 << 10);
    std::fs::File::open(path)?
        .take(64 << 10)
        .read_to_end(&mut head)?;
    Ok(head.contains(&0))
}

fn put_blob(
    store: &DiskStore,
    digest: &Digest,
    content: impl FnOnce() -> io::Result<Vec<u8>>,
) -> io::Result<()> {
    if store.contains(Namespace::Cas, digest).unwrap_or(false) {
        return Ok(());
    }
    store
        .put(Namespace::Cas, digest, &content()?)
        .map_err(|e| io::Error::other(e.to_string()))
}
