//! Looking a key up over the tiers and restoring what it leads to: one policy for every
//! tool.
//!
//! - A two-step key ([`Key::Manifest`]) reads each tier's manifest in turn, the local
//!   store first. The first entry whose inputs match and whose outputs restore is a
//!   hit; an entry restored from a remote's manifest is added to the faster tiers'
//!   manifests, which keep their own entries.
//! - A one-step key ([`Key::Direct`]) reads the action record through the tiers (a
//!   record found in a remote is written to the faster tiers).
//! - A restore reads the action record, asks the action where each output goes, checks
//!   every blob against its digest, then writes the outputs atomically (dep-info
//!   rewritten to this build's paths). Nothing is written until every blob is good.
//! - Corruption: a manifest or action record that does not parse, or a blob that does
//!   not match its digest, is deleted, warned about once per build, and the lookup is a
//!   miss that says so (`entry-incomplete`). A local store that cannot be read warns
//!   once and is a `store-error` miss. A miss says why: nothing stored, which input
//!   changed, what was missing.
//! - Trust: a manifest entry is used only if it leads to its own result key (recomputed
//!   from the invocation key and the inputs the entry lists), so a forged entry cannot
//!   send a unit to another unit's record; an action record the tiers refuse for its
//!   signature ([`larder_remote::Admit`]) is an `untrusted` miss.
//! - Quarantine: a record whose output sizes disagree with its blobs, or (for a tool
//!   that says so) whose outputs are not this invocation's, is quarantined
//!   ([`larder_remote::Tiers::quarantine`]): it is never restored here again, and it is
//!   deleted where it can be. A quarantined key is a `quarantined` miss.

use std::io::Write;
use std::path::PathBuf;

use larder_digest::Digest;
use larder_key::{Manifest, Mismatch, Roots};
use larder_store::{ActionRecord, Namespace, OutputFile, Store, get_verified_blob};

use super::{CachedAction, Ctx, Key, MissReason};
use crate::fsio::{Staged, stage_verified, write_atomic};
use crate::report::warn_once;

/// A restored result.
#[derive(Debug)]
pub struct Hit {
    /// The result key it was found under.
    pub key: Digest,
    /// Its action record.
    pub record: ActionRecord,
    /// Bytes of output written.
    pub bytes: u64,
    /// Outputs cloned from uncompressed blobs.
    pub cloned: usize,
}

impl Hit {
    /// Replays the tool's stdout and stderr, with this build's paths.
    pub fn replay(&self, roots: &Roots) {
        let out = roots.denormalize_text(&self.record.stdout);
        let err = roots.denormalize_text(&self.record.stderr);
        let _ = std::io::stdout().write_all(out.as_bytes());
        let _ = std::io::stderr().write_all(err.as_bytes());
    }
}

/// The answer of a lookup.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per invocation, returned once
pub enum Lookup {
    /// The outputs are restored.
    Hit(Hit),
    /// Nothing was restored, and why.
    Miss(MissReason),
}

impl Lookup {
    /// The hit, if any.
    pub fn into_hit(self) -> Option<Hit> {
        match self {
            Lookup::Hit(h) => Some(h),
            Lookup::Miss(_) => None,
        }
    }
}

/// Looks `key` up and restores what it leads to.
pub fn lookup<A: CachedAction>(action: &mut A, cx: &mut Ctx<'_>, key: &Key) -> Lookup {
    match key {
        Key::Manifest(ik) => lookup_manifests(action, cx, ik),
        Key::Direct(k) => match restore(action, cx, k) {
            Ok(hit) => Lookup::Hit(hit),
            // A one-step key has no manifest: no record under it is nothing stored.
            Err(MissReason::EntryIncomplete(why)) if why == NO_RECORD => {
                Lookup::Miss(MissReason::NoEntry)
            }
            Err(reason) => Lookup::Miss(reason),
        },
    }
}

/// Why a restore found no action record under its key.
const NO_RECORD: &str = "no action record";

fn store_error(cx: &Ctx<'_>, e: &dyn std::fmt::Display) -> MissReason {
    warn_once(
        "store-read",
        &format!(
            "cannot read the store in {}: {e}; compiling",
            cx.config.dir.display()
        ),
    );
    MissReason::StoreError(e.to_string())
}

/// A corrupt entry: the caller has removed the local copy (a shared one is replaced by
/// the next write).
fn corrupt(what: &str, key: &Digest, e: &dyn std::fmt::Display) -> MissReason {
    warn_once(
        "corrupt",
        &format!("corrupt {what} {key} dropped ({e}); compiling instead"),
    );
    MissReason::EntryIncomplete(format!("corrupt {what}: {e}"))
}

/// Each tier's manifest in turn, the local one first.
fn lookup_manifests<A: CachedAction>(action: &mut A, cx: &mut Ctx<'_>, ik: &Digest) -> Lookup {
    let mut miss = None;
    let store = cx.store;
    // An entry in several tiers' manifests (merged into a faster one by a hit or a
    // prefetch) is tried once: its record and blobs come through every tier anyway.
    let mut tried = std::collections::HashSet::new();
    for tier in store.tiers() {
        let bytes = match tier.get(Namespace::Manifest, ik) {
            Ok(Some(b)) => b,
            Ok(None) => continue,
            Err(e) => return Lookup::Miss(store_error(cx, &e)),
        };
        let manifest = match serde_json::from_slice::<Manifest>(&bytes) {
            Ok(m) => m,
            Err(e) => {
                tier.discard(Namespace::Manifest, ik);
                miss.get_or_insert(corrupt("manifest", ik, &e));
                continue;
            }
        };
        let mut first_mismatch: Option<Mismatch> = None;
        let mut incomplete: Option<MissReason> = None;
        for entry in &manifest.entries {
            if !entry.is_for(ik) {
                miss.get_or_insert(corrupt(
                    "manifest entry",
                    ik,
                    &format!("its result key {} is not its inputs'", entry.key),
                ));
                continue;
            }
            if !tried.insert(entry.key) {
                continue;
            }
            if let Err(m) = action.entry_matches(cx, entry) {
                first_mismatch.get_or_insert(m);
                continue;
            }
            match restore(action, cx, &entry.key) {
                Ok(hit) => {
                    // Failing to keep the entry costs a later lookup, not this hit.
                    let _ = tier.update_faster(Namespace::Manifest, ik, &|c| {
                        super::storejob::manifest_with(entry, c)
                    });
                    return Lookup::Hit(hit);
                }
                Err(why) => {
                    tracing::debug!(?why, "a matching entry could not be restored");
                    incomplete = Some(why);
                }
            }
        }
        let tier_miss = match (incomplete, first_mismatch) {
            (Some(why), _) => why,
            (None, Some(m)) => MissReason::InputsChanged(m),
            (None, None) => continue,
        };
        miss.get_or_insert(tier_miss);
    }
    Lookup::Miss(miss.unwrap_or(MissReason::NoEntry))
}

/// A record whose output size disagrees with the blob its digest names: the record is
/// wrong (not the blob, which matched its digest), so it is quarantined.
fn wrong_record(
    cx: &Ctx<'_>,
    key: &Digest,
    bytes: &[u8],
    o: &OutputFile,
    actual: u64,
) -> MissReason {
    misfit(
        cx,
        key,
        bytes,
        &format!("{} is {actual} bytes, the record says {}", o.path, o.size),
    )
}

/// Quarantines the record `bytes` under `key`, which cannot be this invocation's
/// result (`why`).
fn misfit(cx: &Ctx<'_>, key: &Digest, bytes: &[u8], why: &str) -> MissReason {
    let reason = format!("the record led to a failed restore: {why}");
    cx.store.quarantine(key, bytes, &reason);
    warn_once(
        "quarantine",
        &format!("action record {key} quarantined ({why}); compiling instead"),
    );
    MissReason::Quarantined(reason)
}

/// What a restored output is written from.
enum Content {
    /// Bytes in memory (decompressed, or rewritten dep-info).
    Bytes(Vec<u8>),
    /// An uncompressed blob's file, cloned (or copied) beside the destination and
    /// checked.
    Staged(Staged),
}

struct Placed {
    dest: PathBuf,
    content: Content,
    executable: bool,
    digest: Digest,
    size: u64,
}

/// Reads the action record under `key`, fetches and verifies every output, then writes
/// them.
fn restore<A: CachedAction>(
    action: &mut A,
    cx: &mut Ctx<'_>,
    key: &Digest,
) -> Result<Hit, MissReason> {
    crate::trace::phase("restore");
    let incomplete = MissReason::EntryIncomplete;
    let bytes = match cx.store.get(Namespace::Action, key) {
        Ok(Some(b)) => b,
        Ok(None) => return Err(incomplete(NO_RECORD.into())),
        Err(e @ larder_store::StoreError::Corrupt { .. }) => {
            let _ = cx.store.delete(Namespace::Action, key);
            return Err(corrupt("action record", key, &e));
        }
        Err(e @ larder_store::StoreError::Untrusted { .. }) => {
            return Err(MissReason::Untrusted(e.to_string()));
        }
        Err(e) => return Err(store_error(cx, &e)),
    };
    if let Some(why) = cx.store.local().quarantined(key, &bytes) {
        return Err(MissReason::Quarantined(why));
    }
    let record: ActionRecord = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => {
            let _ = cx.store.delete(Namespace::Action, key);
            return Err(corrupt("action record", key, &e));
        }
    };
    let mut destinations = Vec::with_capacity(record.outputs.len());
    for o in &record.outputs {
        if cx.roots.has_unknown_placeholder(&o.path) {
            return Err(incomplete(format!(
                "output {} has no place in this build",
                o.path
            )));
        }
        match action.destination(cx, o) {
            Ok(d) => destinations.push(d),
            Err(why) if action.misfit_is_wrong() => return Err(misfit(cx, key, &bytes, &why)),
            Err(why) => return Err(incomplete(why)),
        }
    }
    if let Err(why) = action.check_record(&record, &destinations) {
        return Err(if action.misfit_is_wrong() {
            misfit(cx, key, &bytes, &why)
        } else {
            incomplete(why)
        });
    }

    let mut files = Vec::with_capacity(record.outputs.len());
    for (o, dest) in record.outputs.iter().zip(destinations) {
        // An uncompressed blob is cloned (or copied) beside its destination and the copy
        // checked (`larder_store::check`); all are put in place once every one is.
        // One this build's prefetch is bringing is waited for here, so that it is too.
        let mut raw = cx.store.local().raw_blob_path(&o.digest);
        if raw.is_none() && cx.store.pass_gate(Namespace::Cas, &o.digest) {
            raw = cx.store.local().raw_blob_path(&o.digest);
        }
        if !o.rewrite_paths
            && let Some(raw) = raw
        {
            let staged = match stage_verified(&dest, &raw, &o.digest) {
                Ok(staged) => staged,
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                    let _ = cx.store.delete(Namespace::Cas, &o.digest);
                    return Err(corrupt("blob", &o.digest, &"content does not match"));
                }
                Err(e) => {
                    return Err(incomplete(format!("cannot write {}: {e}", dest.display())));
                }
            };
            if staged.size != o.size {
                return Err(wrong_record(cx, key, &bytes, o, staged.size));
            }
            files.push(Placed {
                dest,
                content: Content::Staged(staged),
                executable: o.executable,
                digest: o.digest,
                size: o.size,
            });
            continue;
        }
        let blob = match get_verified_blob(cx.store, &o.digest, o.size) {
            Ok(Some(b)) => b,
            Ok(None) => {
                return Err(incomplete(format!(
                    "blob {} of {} is missing",
                    o.digest, o.path
                )));
            }
            Err(e @ larder_store::StoreError::Corrupt { .. }) => {
                return Err(corrupt("blob", &o.digest, &e));
            }
            Err(e) => return Err(store_error(cx, &e)),
        };
        if blob.len() as u64 != o.size {
            return Err(wrong_record(cx, key, &bytes, o, blob.len() as u64));
        }
        let content = if o.rewrite_paths {
            let text = String::from_utf8(blob)
                .map_err(|_| incomplete(format!("{} is not text", o.path)))?;
            cx.roots.denormalize_text(&text).into_bytes()
        } else {
            blob
        };
        files.push(Placed {
            dest,
            size: content.len() as u64,
            content: Content::Bytes(content),
            executable: o.executable,
            digest: o.digest,
        });
    }
    let mut bytes = 0;
    let mut cloned = 0;
    let mut placed = Vec::with_capacity(files.len());
    for f in files {
        let write = match f.content {
            Content::Bytes(b) => write_atomic(&f.dest, &b, f.executable),
            Content::Staged(staged) => {
                cloned += usize::from(staged.cloned);
                staged.persist(&f.dest, f.executable)
            }
        };
        write.map_err(|e| incomplete(format!("cannot write {}: {e}", f.dest.display())))?;
        bytes += f.size;
        placed.push((f.dest, f.digest, f.size));
    }
    cx.remember_outputs(
        record
            .outputs
            .iter()
            .zip(placed.iter().map(|(dest, _, _)| dest.as_path())),
    );
    action.restored(cx, &record, &placed);
    Ok(Hit {
        key: *key,
        record,
        bytes,
        cloned,
    })
}
