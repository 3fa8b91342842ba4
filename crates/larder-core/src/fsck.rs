//! `larder fsck [--repair]`: checks every entry of the local store, and with `--repair`
//! removes what is broken.
//!
//! - every blob (either form) is decompressed and hashed: it must match its digest;
//! - every action record must parse; its signatures are checked against the trusted
//!   keys ([`Config::trust`]): counted as trusted, unsigned or by other keys, and a
//!   signature under a trusted key's name that does not verify is a problem; every blob
//!   it names must be present with the recorded size;
//! - every manifest must parse, and each entry must lead to its own result key
//!   ([`larder_key::ManifestEntry::is_for`]) and to a record that is present and sound;
//! - link records and key inputs must parse;
//! - files that are not entries (stray names in the namespaces) and temporary files
//!   older than [`larder_store::STALE_AFTER`] (left by a process that died) are
//!   leftovers.
//!
//! Repair goes in that order, so a record whose blob was removed goes too, and a
//! manifest keeps only the entries whose record stays (one with none left is removed).

use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

use larder_digest::Digest;
use larder_key::Manifest;
use larder_store::{
    ActionRecord, DiskStore, LinkRecord, Namespace, STALE_AFTER, Store, StoreError,
};
use serde::Serialize;

use crate::config::Config;
use crate::trust::Verdict;

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The namespace (`cas`, `ac`, `manifest`, `link`, `inputs`) or `file`.
    pub namespace: &'static str,
    /// The entry's key (hex), or the file's path.
    pub key: String,
    /// What is wrong.
    pub problem: String,
    /// Whether `--repair` removed it.
    pub repaired: bool,
}

/// What `larder fsck` checked and found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FsckReport {
    /// Blobs checked.
    pub blobs: u64,
    /// Action records checked.
    pub records: u64,
    /// Records signed by a trusted key.
    pub trusted: u64,
    /// Records without a signature.
    pub unsigned: u64,
    /// Records signed only by keys not trusted here.
    pub untrusted: u64,
    /// Manifests checked.
    pub manifests: u64,
    /// Manifest entries checked.
    pub manifest_entries: u64,
    /// Link records and key-input files checked.
    pub others: u64,
    /// Temporary files older than [`STALE_AFTER`].
    pub leftovers: u64,
    /// Everything found wrong, in the order found.
    pub problems: Vec<Problem>,
}

impl FsckReport {
    /// Whether a problem is left (found and not repaired).
    pub fn broken(&self) -> bool {
        self.problems.iter().any(|p| !p.repaired)
    }
}

/// Checks the local store of `config`; with `repair`, removes what is broken.
///
/// # Errors
/// [`StoreError`] if the store cannot be read (or, repairing, written).
pub fn fsck(config: &Config, repair: bool) -> Result<FsckReport, StoreError> {
    let store = config.open_store()?;
    let trust = config.trust();
    let mut r = FsckReport::default();
    let found = |r: &mut FsckReport,
                 ns: Namespace,
                 key: &Digest,
                 problem: String|
     -> Result<(), StoreError> {
        if repair {
            store.delete(ns, key)?;
        }
        r.problems.push(Problem {
            namespace: ns.as_str(),
            key: key.to_hex(),
            problem,
            repaired: repair,
        });
        Ok(())
    };

    // Blobs: each hashed; the sizes of the sound ones.
    let mut sizes: HashMap<Digest, u64> = HashMap::new();
    for e in store.list(Namespace::Cas)? {
        r.blobs += 1;
        match store.peek(Namespace::Cas, &e.key) {
            Ok(Some(v)) if Digest::of(&v) == e.key => {
                // An uncompressed blob's check is what restores verify it by.
                let check = store
                    .raw_blob_path(&e.key)
                    .and_then(|p| std::fs::File::open(p).ok())
                    .and_then(|f| larder_store::check::recorded(&f));
                if check.is_some_and(|c| c != larder_store::check::of(&e.key, &v)) {
                    found(
                        &mut r,
                        Namespace::Cas,
                        &e.key,
                        format!(
                            "its check ({}) does not match its content: restores refuse it",
                            larder_store::check::XATTR
                        ),
                    )?;
                    continue;
                }
                sizes.insert(e.key, v.len() as u64);
            }
            Ok(Some(_)) => found(
                &mut r,
                Namespace::Cas,
                &e.key,
                "content does not match its digest".into(),
            )?,
            Ok(None) => {}
            Err(StoreError::Corrupt { detail, .. }) => {
                found(
                    &mut r,
                    Namespace::Cas,
                    &e.key,
                    format!("does not decompress: {detail}"),
                )?;
            }
            Err(e) => return Err(e),
        }
    }

    // Action records: parsed, signatures checked, blobs present with their sizes.
    let mut records: HashSet<Digest> = HashSet::new();
    for e in store.list(Namespace::Action)? {
        let Some(bytes) = store.peek(Namespace::Action, &e.key)? else {
            continue;
        };
        r.records += 1;
        let record = match serde_json::from_slice::<ActionRecord>(&bytes) {
            Ok(rec) => rec,
            Err(err) => {
                found(
                    &mut r,
                    Namespace::Action,
                    &e.key,
                    format!("does not parse: {err}"),
                )?;
                continue;
            }
        };
        let mut problem = None;
        match trust.check(&e.key, &record) {
            Verdict::Trusted(_) => r.trusted += 1,
            Verdict::Unsigned => r.unsigned += 1,
            Verdict::Untrusted(_) => r.untrusted += 1,
            Verdict::Invalid(name) => problem = Some(format!("invalid signature by {name}")),
        }
        for o in &record.outputs {
            if problem.is_some() {
                break;
            }
            problem = match sizes.get(&o.digest) {
                None => Some(format!("blob {} of {} is missing", o.digest, o.path)),
                Some(&n) if n != o.size => Some(format!(
                    "blob {} of {} is {n} bytes, the record says {}",
                    o.digest, o.path, o.size
                )),
                Some(_) => None,
            };
        }
        match problem {
            Some(p) => found(&mut r, Namespace::Action, &e.key, p)?,
            None => {
                records.insert(e.key);
            }
        }
    }

    // Manifests: parsed; each entry leads to its own key and to a sound record.
    for e in store.list(Namespace::Manifest)? {
        let Some(bytes) = store.peek(Namespace::Manifest, &e.key)? else {
            continue;
        };
        r.manifests += 1;
        let manifest = match serde_json::from_slice::<Manifest>(&bytes) {
            Ok(m) => m,
            Err(err) => {
                found(
                    &mut r,
                    Namespace::Manifest,
                    &e.key,
                    format!("does not parse: {err}"),
                )?;
                continue;
            }
        };
        r.manifest_entries += manifest.entries.len() as u64;
        let mut bad = Vec::new();
        let mut kept = Manifest::default();
        for entry in manifest.entries.iter().rev() {
            if !entry.is_for(&e.key) {
                bad.push(format!("entry {} is not its inputs' result key", entry.key));
            } else if !records.contains(&entry.key) {
                bad.push(format!("entry {} leads to no sound record", entry.key));
            } else {
                kept.insert(entry.clone());
            }
        }
        for problem in bad {
            r.problems.push(Problem {
                namespace: Namespace::Manifest.as_str(),
                key: e.key.to_hex(),
                problem,
                repaired: repair,
            });
        }
        if repair && kept.entries.len() != manifest.entries.len() {
            if kept.entries.is_empty() {
                store.delete(Namespace::Manifest, &e.key)?;
            } else {
                let json = serde_json::to_vec(&kept).map_err(|err| {
                    StoreError::corrupt(Namespace::Manifest, &e.key, err.to_string())
                })?;
                store.replace(Namespace::Manifest, &e.key, &json)?;
            }
        }
    }

    // Link records, key inputs, build indexes and seed records: they parse.
    for ns in [
        Namespace::Link,
        Namespace::Inputs,
        Namespace::Index,
        Namespace::Seed,
    ] {
        for e in store.list(ns)? {
            let Some(bytes) = store.peek(ns, &e.key)? else {
                continue;
            };
            r.others += 1;
            let ok = match ns {
                Namespace::Link => serde_json::from_slice::<LinkRecord>(&bytes).is_ok(),
                Namespace::Index => {
                    serde_json::from_slice::<crate::prefetch::BuildIndex>(&bytes).is_ok()
                }
                Namespace::Seed => {
                    serde_json::from_slice::<crate::seed::SeedRecord>(&bytes).is_ok()
                }
                _ => {
                    serde_json::from_slice::<larder_key::InputSet>(&bytes).is_ok()
                        || serde_json::from_slice::<larder_key::inputs::InputIndex>(&bytes).is_ok()
                }
            };
            if !ok {
                found(&mut r, ns, &e.key, "does not parse".into())?;
            }
        }
    }

    // Leftovers: stray files in the namespaces, old temporary files.
    for ns in Namespace::ALL {
        for path in store.strays(ns)? {
            if repair {
                let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
            }
            r.problems.push(Problem {
                namespace: "file",
                key: path.display().to_string(),
                problem: format!("not an entry of {}", ns.as_str()),
                repaired: repair,
            });
        }
    }
    r.leftovers = stale_files(&store).len() as u64;
    if repair {
        store.layout().remove_stale();
    }
    Ok(r)
}

/// Files in the store's temporary and job directories older than [`STALE_AFTER`].
fn stale_files(store: &DiskStore) -> Vec<std::path::PathBuf> {
    let Some(cutoff) = SystemTime::now().checked_sub(STALE_AFTER) else {
        return Vec::new();
    };
    let layout = store.layout();
    [layout.tmp(), layout.jobs()]
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|entries| entries.flatten())
        .filter(|e| {
            e.metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < cutoff)
        })
        .map(|e| e.path())
        .collect()
}

/// The report as text: what was checked, each problem, the leftovers.
pub fn render(r: &FsckReport, repair: bool) -> String {
    let mut out = format!(
        "checked {} blobs, {} action records ({} signed by a trusted key, {} unsigned, {} signed by other keys), {} manifests ({} entries), {} link records and key inputs\n",
        r.blobs,
        r.records,
        r.trusted,
        r.unsigned,
        r.untrusted,
        r.manifests,
        r.manifest_entries,
        r.others
    );
    for p in &r.problems {
        let done = if p.repaired { " (removed)" } else { "" };
        out += &format!("  {} {}: {}{done}\n", p.namespace, p.key, p.problem);
    }
    let leftovers = if r.leftovers == 0 {
        String::new()
    } else if repair {
        format!("; {} stale temporary files removed", r.leftovers)
    } else {
        format!(
            "; {} stale temporary files (--repair removes them)",
            r.leftovers
        )
    };
    out += &match (r.problems.len(), repair) {
        (0, _) => format!("no problems{leftovers}\n"),
        (n, true) => format!("{n} problems, all removed{leftovers}\n"),
        (n, false) => {
            format!("{n} problems (`larder fsck --repair` removes what is broken){leftovers}\n")
        }
    };
    out
}
