//! Prefetch: what a build will ask the remotes for, fetched in parallel before cargo
//! asks.
//!
//! Each wrapper process looks a unit up on its own, one call after another (manifest,
//! action record, each blob): over a remote 10-50 ms away a build makes thousands of
//! round trips in a row. So `larder cargo` keeps, per project and cargo command, the
//! keys its last build used: a [`BuildIndex`] in [`Namespace::Index`] under
//! [`crate::command::index_key`], written to the local store and every writable remote after the build.
//! The next build of the same command reads the index from the first remote that has
//! one and fetches what the local store lacks, [`PARALLEL`] calls at a time, through
//! the same tiers as a lookup: blobs are checked against their digests, action records
//! are put to the same admission (signatures), a manifest entry is kept only if it
//! leads to its own result key. The wrappers then find their entries locally.
//!
//! The prefetch runs while cargo starts and builds: `larder cargo` holds [`LOCK`] in the
//! build's state directory until it is done. Before it fetches, it marks every entry it
//! will fetch as pending in the state directory, then [`LISTED`]; each mark goes once
//! its entry is in the local store (or found missing). A wrapper that needs an entry
//! the local store lacks waits for that entry's mark only ([`wait`]), so cargo restores
//! each unit as soon as its entries have arrived, in the order of the last build.
//!
//! The index is a hint, never trusted: a wrong or hostile one costs transfers (at most
//! [`MAX_UNITS`] units and the byte bound given), never a wrong hit. A build whose
//! command, project, or flags differ has another index; a changed unit's new key is
//! simply not in it (the wrapper looks it up as before).

use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use larder_digest::Digest;
use larder_key::Manifest;
use larder_remote::Tiers;
use larder_store::{ActionRecord, Namespace, Store};
use serde::{Deserialize, Serialize};

use crate::report::Event;

/// Calls in flight at once: as many as a remote client keeps connections.
pub const PARALLEL: usize = larder_remote::MAX_CONNECTIONS;

/// The file in the build's state directory ([`larder_store::BuildState`]) that
/// `larder cargo` holds an exclusive lock on while it prefetches.
pub const LOCK: &str = "prefetch.lock";

/// The file in the build's state directory that the prefetch writes once it has marked
/// every entry it will fetch as pending.
pub const LISTED: &str = "prefetch.listed";

/// How often a waiting wrapper looks at the marks again.
const POLL: std::time::Duration = std::time::Duration::from_millis(2);

/// Waits until this build's prefetch, if one is running, has fetched (or given up on)
/// the entry `key` of `ns`, or never will. Returns whether a prefetch is still running
/// (a later entry may be worth waiting for).
pub fn wait(ns: Namespace, key: &Digest) -> bool {
    wait_in(larder_store::BuildState::current().dir(), ns, key)
}

/// [`wait`] on the build state directory `dir`.
fn wait_in(dir: &Path, ns: Namespace, key: &Digest) -> bool {
    let Ok(lock) = std::fs::File::open(dir.join(LOCK)) else {
        return false;
    };
    let pending = dir.join(pending_name(ns, key));
    let started = crate::trace::now();
    let mut polls = 0;
    let running = loop {
        match lock.try_lock_shared() {
            Ok(()) => break false,
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(_)) => break false,
        }
        if dir.join(LISTED).exists() && !pending.exists() {
            break true;
        }
        polls += 1;
        std::thread::sleep(POLL);
    };
    if polls > 0 {
        crate::trace::inside("prefetch-wait", started);
    }
    running
}

/// The mark of an entry the prefetch is still to fetch.
fn pending_name(ns: Namespace, key: &Digest) -> String {
    format!("pending-{}-{}", ns.as_str(), &key.to_hex()[..32])
}

/// The remote that the prefetch of this build fetched the action record `key` from, if
/// it did: a hit on it is reported as served by that remote.
pub fn served(key: &Digest) -> Option<String> {
    let path = larder_store::BuildState::current()
        .dir()
        .join(marker_name(key));
    std::fs::read_to_string(path).ok()
}

fn marker_name(key: &Digest) -> String {
    format!("prefetched-{}", &key.to_hex()[..32])
}

/// The most units an index lists (a hostile index cannot make a build fetch more).
pub const MAX_UNITS: usize = 20_000;

/// The keys one build used, in the order its units were reported (roughly the order
/// cargo needs them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BuildIndex {
    /// Format version: 1.
    pub version: u32,
    /// The units.
    pub units: Vec<IndexedUnit>,
}

/// One unit of an indexed build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexedUnit {
    /// The invocation key whose manifest leads to the record (none for a one-step key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Digest>,
    /// The result key of its action record.
    pub record: Digest,
    /// Its outputs: blob digest and size in bytes.
    pub blobs: Vec<(Digest, u64)>,
}

/// What a prefetch did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Prefetched {
    /// The remote whose index was used (credentials removed).
    pub from: Option<String>,
    /// Units the index listed.
    pub units: usize,
    /// Entries fetched into the local store (manifest entries, records, blobs).
    pub fetched: u64,
    /// Blob bytes fetched (uncompressed).
    pub bytes: u64,
    /// Entries the index named that no tier had, or that were refused.
    pub missing: u64,
    /// Wall time, in seconds.
    pub secs: f64,
    /// The index read: [`record`] does not write the same one again.
    #[serde(skip)]
    pub index: Option<BuildIndex>,
}

/// The index of a build from its events: every unit that hit or stored, with the
/// blobs its action record (read from the local store) names.
pub fn index_of(local: &dyn Store, events: &[Event]) -> BuildIndex {
    let mut units = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for e in events {
        let stored = e.outcome == "hit" || (e.outcome == "miss" && e.stored);
        let Some(record) = e.key.as_deref().and_then(Digest::from_hex) else {
            continue;
        };
        if !stored || !seen.insert(record) {
            continue;
        }
        let Ok(Some(bytes)) = local.peek(Namespace::Action, &record) else {
            continue;
        };
        let Ok(r) = serde_json::from_slice::<ActionRecord>(&bytes) else {
            continue;
        };
        let manifest = e
            .invocation
            .as_deref()
            .and_then(Digest::from_hex)
            .filter(|ik| *ik != record);
        units.push(IndexedUnit {
            manifest,
            record,
            blobs: r.outputs.iter().map(|o| (o.digest, o.size)).collect(),
        });
    }
    BuildIndex { version: 1, units }
}

/// Writes `index` under `key` to the local store and every writable remote, unless it
/// is `read`, the one this build's prefetch read. An empty index is not written (a
/// build that cached nothing keeps the last one's).
pub fn record(tiers: &Tiers, key: &Digest, index: &BuildIndex, read: Option<&BuildIndex>) {
    if index.units.is_empty() || read == Some(index) {
        return;
    }
    if let Ok(json) = serde_json::to_vec(index) {
        let _ = tiers.put(Namespace::Index, key, &json);
    }
}

/// One thing to fetch.
#[derive(Debug, Clone, Copy)]
enum Item {
    /// The manifest entry leading to a result key.
    Entry { manifest: Digest, record: Digest },
    /// An action record.
    Record(Digest),
    /// A blob and its size.
    Blob(Digest, u64),
}

/// Fetches what the index under `key` (read from the first remote that has one) lists
/// and the local store lacks, [`PARALLEL`] calls at a time, blobs up to `max_bytes`,
/// leaving out each unit whose outputs are all among the digests `planted` gives once
/// the index is read (the units of the seed this build plants: cargo starts no wrapper
/// for them). Each action record fetched is marked in the build's `state` ([`served`]).
/// Never fails: what cannot be fetched is left to the wrappers' own lookups.
pub fn prefetch(
    tiers: &Tiers,
    key: &Digest,
    max_bytes: u64,
    state: &larder_store::BuildState,
    planted: impl FnOnce() -> std::collections::HashSet<Digest>,
) -> Prefetched {
    let started = Instant::now();
    let mut out = Prefetched::default();
    let Some((from, index)) = tiers.tiers().skip(1).find_map(|t| {
        let bytes = t.get(Namespace::Index, key).ok()??;
        let index = serde_json::from_slice::<BuildIndex>(&bytes).ok()?;
        Some((t.name(), index))
    }) else {
        out.secs = started.elapsed().as_secs_f64();
        return out;
    };
    // As the remote's counters name it (`served_by`), as a lookup's report does.
    out.from = Some(tiers.served_by().unwrap_or(from));
    out.units = index.units.len().min(MAX_UNITS);
    let items = items_of(&index, max_bytes, &planted());
    out.index = Some(index);
    for item in &items {
        let (ns, key) = item.entry();
        let _ = std::fs::write(state.file(&pending_name(ns, &key)), b"");
    }
    let _ = std::fs::write(state.file(LISTED), b"");
    let from = out.from.as_deref().unwrap_or_default();
    let next = AtomicUsize::new(0);
    let fetched = AtomicU64::new(0);
    let bytes = AtomicU64::new(0);
    let missing = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..PARALLEL.min(items.len()) {
            s.spawn(|| {
                while let Some(item) = items.get(next.fetch_add(1, Ordering::Relaxed)) {
                    // A record's served mark is written before the record reaches the
                    // local store: a wrapper that finds it there (without waiting for its
                    // pending mark) then reports the remote, not the local store.
                    let served = match item {
                        Item::Record(key)
                            if !tiers
                                .local()
                                .contains(Namespace::Action, key)
                                .unwrap_or(false) =>
                        {
                            let mark = state.file(&marker_name(key));
                            std::fs::write(&mark, from).ok().map(|()| mark)
                        }
                        _ => None,
                    };
                    match fetch(tiers, *item) {
                        Fetch::Present => {}
                        Fetch::Fetched(n) => {
                            fetched.fetch_add(1, Ordering::Relaxed);
                            bytes.fetch_add(n, Ordering::Relaxed);
                        }
                        Fetch::Missing => {
                            missing.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    if let Some(mark) = served
                        && !tiers
                            .local()
                            .contains(Namespace::Action, &item.entry().1)
                            .unwrap_or(false)
                    {
                        let _ = std::fs::remove_file(mark);
                    }
                    let (ns, key) = item.entry();
                    let _ = std::fs::remove_file(state.file(&pending_name(ns, &key)));
                }
            });
        }
    });
    out.fetched = fetched.into_inner();
    out.bytes = bytes.into_inner();
    out.missing = missing.into_inner();
    out.secs = started.elapsed().as_secs_f64();
    out
}

impl Item {
    /// The local store's entry this fetch brings.
    fn entry(&self) -> (Namespace, Digest) {
        match *self {
            Item::Entry { manifest, .. } => (Namespace::Manifest, manifest),
            Item::Record(key) => (Namespace::Action, key),
            Item::Blob(d, _) => (Namespace::Cas, d),
        }
    }
}

/// A unit of the index with an output of at least this size among the planted files
/// is taken for a planted unit (a library or an executable names its own unit; small
/// files, empty ones first, can be equal across units; its dep-info, written with
/// other placeholders, is not the planted one).
const PLANTED_MIN_BYTES: u64 = 4096;

/// The index as a list of fetches, in its order, each blob once, blobs up to
/// `max_bytes` in all, without the blobs in `planted` nor the units with an output of
/// [`PLANTED_MIN_BYTES`] or more there.
fn items_of(
    index: &BuildIndex,
    max_bytes: u64,
    planted: &std::collections::HashSet<Digest>,
) -> Vec<Item> {
    let mut items = Vec::new();
    let mut blobs = std::collections::HashSet::new();
    let mut total = 0u64;
    for u in index.units.iter().take(MAX_UNITS) {
        if u.blobs
            .iter()
            .any(|(d, size)| *size >= PLANTED_MIN_BYTES && planted.contains(d))
        {
            continue;
        }
        if let Some(manifest) = u.manifest {
            items.push(Item::Entry {
                manifest,
                record: u.record,
            });
        }
        items.push(Item::Record(u.record));
        for &(d, size) in &u.blobs {
            if planted.contains(&d) {
                continue;
            }
            if blobs.insert(d) && total.saturating_add(size) <= max_bytes {
                total += size;
                items.push(Item::Blob(d, size));
            }
        }
    }
    items
}

enum Fetch {
    /// The local store has it.
    Present,
    /// Fetched, with the blob bytes moved (0 for a record or manifest).
    Fetched(u64),
    /// No tier has it (or refused it).
    Missing,
}

fn fetch(tiers: &Tiers, item: Item) -> Fetch {
    let local = tiers.local();
    match item {
        Item::Entry { manifest, record } => {
            let has = |bytes: &[u8]| {
                serde_json::from_slice::<Manifest>(bytes)
                    .ok()
                    .and_then(|m| {
                        m.entries
                            .into_iter()
                            .find(|e| e.key == record && e.is_for(&manifest))
                    })
            };
            if let Ok(Some(b)) = local.peek(Namespace::Manifest, &manifest)
                && has(&b).is_some()
            {
                return Fetch::Present;
            }
            for tier in tiers.tiers().skip(1) {
                if let Ok(Some(b)) = tier.get(Namespace::Manifest, &manifest)
                    && let Some(entry) = has(&b)
                {
                    let _ = tier.update_faster(Namespace::Manifest, &manifest, &|c| {
                        crate::action::storejob::manifest_with(&entry, c)
                    });
                    return Fetch::Fetched(0);
                }
            }
            Fetch::Missing
        }
        Item::Record(key) => {
            if local.contains(Namespace::Action, &key).unwrap_or(false) {
                return Fetch::Present;
            }
            match tiers.get(Namespace::Action, &key) {
                Ok(Some(_)) => Fetch::Fetched(0),
                _ => Fetch::Missing,
            }
        }
        Item::Blob(d, size) => {
            if local.contains(Namespace::Cas, &d).unwrap_or(false) {
                return Fetch::Present;
            }
            match tiers.get_verified_blob(&d, size) {
                Ok(Some(v)) => Fetch::Fetched(v.len() as u64),
                _ => Fetch::Missing,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapper_waits_for_its_own_entry_and_only_while_the_prefetch_runs() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_path_buf();
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        // No prefetch in this build: no wait, and none later.
        assert!(!wait_in(&d, Namespace::Cas, &a));
        let lock = std::fs::File::create(d.join(LOCK)).unwrap();
        lock.lock().unwrap();
        std::fs::write(d.join(pending_name(Namespace::Cas, &a)), b"").unwrap();
        // Before the prefetch has listed its entries, every entry waits for the list.
        let early = {
            let d = d.clone();
            std::thread::spawn(move || wait_in(&d, Namespace::Cas, &b))
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!early.is_finished());
        std::fs::write(d.join(LISTED), b"").unwrap();
        // `b` is not pending: it goes on at once, the prefetch still running.
        assert!(early.join().unwrap());
        assert!(wait_in(&d, Namespace::Cas, &b));
        // `a` waits until its mark goes, not for the whole prefetch.
        let waiter = {
            let d = d.clone();
            std::thread::spawn(move || wait_in(&d, Namespace::Cas, &a))
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!waiter.is_finished());
        std::fs::remove_file(d.join(pending_name(Namespace::Cas, &a))).unwrap();
        assert!(waiter.join().unwrap());
        // Once the prefetch is over, nothing waits and the gate stays open.
        std::fs::write(d.join(pending_name(Namespace::Action, &b)), b"").unwrap();
        drop(lock);
        assert!(!wait_in(&d, Namespace::Action, &b));
    }

    fn quiet(_: &str, _: &str) {}
    fn no_flush(_: &Path, _: &std::collections::BTreeMap<String, larder_remote::RemoteCounters>) {}

    /// A local store and a shared directory behind it.
    fn tiers(dir: &Path) -> (Tiers, larder_store::DiskStore) {
        let remote_dir = dir.join("remote");
        let remote = larder_store::DiskStore::open(&remote_dir, u64::MAX).unwrap();
        let local = larder_store::DiskStore::open(&dir.join("local"), u64::MAX).unwrap();
        let spec = larder_remote::RemoteSpec::parse(
            remote_dir.to_str().unwrap(),
            false,
            std::time::Duration::from_secs(5),
        )
        .unwrap();
        let hooks = larder_remote::Hooks {
            warn: quiet,
            flush: no_flush,
        };
        (Tiers::new(local, &[spec], hooks), remote)
    }

    /// Stores one unit in `store`: a blob, its record, a manifest entry leading to it.
    fn unit(store: &dyn Store, name: &str) -> IndexedUnit {
        let blob = format!("the rlib of {name}").into_bytes();
        let digest = Digest::of(&blob);
        store.put(Namespace::Cas, &digest, &blob).unwrap();
        let ik = Digest::of(format!("invocation of {name}").as_bytes());
        let entry = larder_key::ManifestEntry::new(
            &ik,
            vec![(format!("src/{name}.rs"), Digest::of(name.as_bytes()))],
            Vec::new(),
            Vec::new(),
        );
        let record = ActionRecord {
            crate_name: name.into(),
            outputs: vec![larder_store::OutputFile {
                path: format!("lib{name}.rlib"),
                digest,
                size: blob.len() as u64,
                executable: false,
                rewrite_paths: false,
            }],
            stdout: String::new(),
            stderr: String::new(),
            compile_secs: 1.0,
            exit_code: 0,
            link_deps: Vec::new(),
            origin: None,
            signatures: Vec::new(),
        };
        let bytes = serde_json::to_vec(&record).unwrap();
        store.put(Namespace::Action, &entry.key, &bytes).unwrap();
        store
            .put(
                Namespace::Manifest,
                &ik,
                &crate::action::storejob::manifest_with(&entry, None),
            )
            .unwrap();
        IndexedUnit {
            manifest: Some(ik),
            record: entry.key,
            blobs: vec![(digest, blob.len() as u64)],
        }
    }

    #[test]
    fn a_prefetch_fills_the_local_store_with_what_the_index_lists() {
        let dir = tempfile::tempdir().unwrap();
        let (tiers, remote) = tiers(dir.path());
        let state = larder_store::BuildState::of(&format!("test-{}", dir.path().display()));
        let units = vec![unit(&remote, "a"), unit(&remote, "b")];
        let key = Digest::of(b"index");
        let index = BuildIndex { version: 1, units };
        remote
            .put(Namespace::Index, &key, &serde_json::to_vec(&index).unwrap())
            .unwrap();
        let p = prefetch(&tiers, &key, u64::MAX, &state, Default::default);
        assert_eq!(p.units, 2);
        assert_eq!((p.fetched, p.missing), (6, 0), "{p:?}");
        let local = tiers.local();
        for u in &index.units {
            assert!(local.contains(Namespace::Action, &u.record).unwrap());
            assert!(local.contains(Namespace::Cas, &u.blobs[0].0).unwrap());
            let m: Manifest = serde_json::from_slice(
                &local
                    .peek(Namespace::Manifest, &u.manifest.unwrap())
                    .unwrap()
                    .unwrap(),
            )
            .unwrap();
            assert_eq!(m.entries[0].key, u.record);
        }
        // Again: everything is there, nothing is fetched.
        let p = prefetch(&tiers, &key, u64::MAX, &state, Default::default);
        assert_eq!((p.fetched, p.missing), (0, 0), "{p:?}");
        // The index is written where the build's entries go, unless it is the one read.
        assert_eq!(p.index.as_ref(), Some(&index));
        record(&tiers, &Digest::of(b"same"), &index, p.index.as_ref());
        assert!(
            !remote
                .contains(Namespace::Index, &Digest::of(b"same"))
                .unwrap()
        );
        record(&tiers, &Digest::of(b"next"), &index, None);
        assert!(
            remote
                .contains(Namespace::Index, &Digest::of(b"next"))
                .unwrap()
        );
    }

    #[test]
    fn a_hostile_index_fetches_nothing_that_a_lookup_would_not_use() {
        let dir = tempfile::tempdir().unwrap();
        let (tiers, remote) = tiers(dir.path());
        let state = larder_store::BuildState::of(&format!("test-{}", dir.path().display()));
        let a = unit(&remote, "a");
        let b = unit(&remote, "b");
        // A forged manifest entry for a's invocation leading to b's record: its result
        // key is not its inputs'.
        let mut forged: Manifest = serde_json::from_slice(
            &remote
                .peek(Namespace::Manifest, &a.manifest.unwrap())
                .unwrap()
                .unwrap(),
        )
        .unwrap();
        forged.entries[0].key = b.record;
        remote
            .put(
                Namespace::Manifest,
                &a.manifest.unwrap(),
                &serde_json::to_vec(&forged).unwrap(),
            )
            .unwrap();
        // A blob whose content is not its digest's (written as a damaged disk would:
        // the store itself keeps a blob only under its own digest).
        let fake = Digest::of(b"claimed");
        let file = remote.layout().entry(Namespace::Cas, &fake);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, zstd::encode_all(&b"something else"[..], 3).unwrap()).unwrap();
        let index = BuildIndex {
            version: 1,
            units: vec![IndexedUnit {
                manifest: a.manifest,
                record: b.record,
                blobs: vec![(fake, 14), (Digest::of(b"absent"), 3)],
            }],
        };
        let key = Digest::of(b"index");
        remote
            .put(Namespace::Index, &key, &serde_json::to_vec(&index).unwrap())
            .unwrap();
        let p = prefetch(&tiers, &key, u64::MAX, &state, Default::default);
        let local = tiers.local();
        assert!(
            local
                .peek(Namespace::Manifest, &a.manifest.unwrap())
                .unwrap()
                .is_none(),
            "a forged entry is not merged"
        );
        assert!(
            !local.contains(Namespace::Cas, &fake).unwrap(),
            "a bad blob is not kept"
        );
        // b's record is an honest entry of its own: fetching it is harmless.
        assert_eq!((p.fetched, p.missing), (1, 3), "{p:?}");
        // An index that does not parse is no index.
        remote.put(Namespace::Index, &key, b"{").unwrap();
        assert_eq!(
            prefetch(&tiers, &key, u64::MAX, &state, Default::default).from,
            None
        );
    }

    #[test]
    fn items_list_each_blob_once_within_the_byte_bound() {
        let d = |s: &str| Digest::of(s.as_bytes());
        // Two units: r1 (with manifest m1) and r2 (one-step), with their blobs.
        let two = |one: [(&str, u64); 2], other: [(&str, u64); 2]| BuildIndex {
            version: 1,
            units: vec![
                IndexedUnit {
                    manifest: Some(d("m1")),
                    record: d("r1"),
                    blobs: one.iter().map(|&(b, n)| (d(b), n)).collect(),
                },
                IndexedUnit {
                    manifest: None,
                    record: d("r2"),
                    blobs: other.iter().map(|&(b, n)| (d(b), n)).collect(),
                },
            ],
        };
        let index = two([("b1", 10), ("b2", 20)], [("b1", 10), ("b3", 100)]);
        let count = |items: &[Item]| items.iter().filter(|i| matches!(i, Item::Blob(..))).count();
        let all = items_of(&index, u64::MAX, &Default::default());
        assert_eq!(all.len(), 1 + 1 + 2 + 1 + 1);
        assert_eq!(count(&all), 3);
        assert_eq!(count(&items_of(&index, 50, &Default::default())), 2);
        // A unit with a large output planted from the seed is left out; one with only
        // a small file equal to a planted one is not, and fetches the rest.
        let index = two(
            [("rlib", 5000), ("dep-info", 10)],
            [("empty", 0), ("b3", 100)],
        );
        let planted = [d("rlib"), d("empty")].into_iter().collect();
        let rest = items_of(&index, u64::MAX, &planted);
        assert_eq!(rest.len(), 1 + 1);
        assert!(matches!(rest[0], Item::Record(r) if r == d("r2")));
        assert!(matches!(rest[1], Item::Blob(b, 100) if b == d("b3")));
    }
}
