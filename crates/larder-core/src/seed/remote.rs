//! Seeds on the remotes: after a build, its [`Seed`] is published to the writable
//! remotes; a build whose local store has no seed for its command and [`super::guard`]
//! (a fresh CI runner, a new machine, an emptied store) fetches one from the first remote
//! that has one it admits, fetches the seed's blobs in parallel, and plants it as a local
//! seed is planted ([`super::plant`]): cargo then finds the registry units fresh and
//! starts no wrapper for them.
//!
//! - **One seed per key.** A remote seed is kept under [`remote_key`]: the command's
//!   key ([`crate::command::index_key`]) and the guard's cheap parts
//!   ([`super::remote_context`]: the lookup starts before the guard is known). It is
//!   written whole, never
//!   merged: the last build to publish a changed seed stands. A seed is published when
//!   it differs from the one the build planted and from the last one this store
//!   published ([`super::SeedRecord::published`]), so a warm build writes nothing.
//! - **Signed like action records** ([`crate::trust`]): with a signing key, the seed is
//!   signed ([`signed_bytes`]: a tag, its key, its JSON), and a remote that requires
//!   signatures serves a seed only if a trusted key signed it; a refused seed plants
//!   nothing, with one warning. A remote that does not require signatures is trusted as
//!   it is for action records (whoever can write it can write any record).
//! - **Blobs fetched beside the guard.** The seed's blobs are fetched as soon as its
//!   record is admitted (format, signature), while the guard is computed; a seed whose
//!   guard is not this build's is then not planted and its fetch stops (no fetch starts
//!   for one whose guard is already known to differ), and the blobs it brought stay in
//!   the store as any blob fetched (each checked against its digest). A refused seed is
//!   never fetched, and reported only if its guard is this build's.
//! - **The same guard, the same checks.** A fetched seed is planted only if its guard is
//!   this build's (larder, the compilers, `CARGO_HOME`, keyed variables: a fleet built
//!   from one image shares it), at most [`super::MAX_UNITS`] units and the byte bound
//!   given; every blob is checked against its digest as it arrives and again as it is
//!   planted, and cargo's freshness check still decides each unit.

use std::path::{Component, Path};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use larder_digest::{Digest, KeyHasher};
use larder_remote::Tiers;
use larder_store::{Namespace, RecordSignature, Store};
use serde::{Deserialize, Serialize};

use super::{MAX_UNITS, Seed};
use crate::signing::SecretKey;
use crate::trust::Trust;

/// Format version of a [`RemoteSeed`].
pub const VERSION: u32 = 1;

/// The first bytes of a seed's signed message: a seed's signature is never taken for a
/// record's, nor a record's for a seed's.
const SIGNED_TAG: &[u8] = b"larder seed v1\0";

/// A seed as a remote keeps it: one seed and its signatures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteSeed {
    /// Format version: [`VERSION`].
    pub version: u32,
    /// The seed.
    pub seed: Seed,
    /// Signatures of [`signed_bytes`].
    #[serde(default)]
    pub signatures: Vec<RecordSignature>,
}

/// The key of the remote seed of a command (its [`crate::command::index_key`]) in a
/// [`super::remote_context`].
pub fn remote_key(command: &Digest, context: &Digest) -> Digest {
    let mut h = KeyHasher::new();
    h.field("remote-seed", "2")
        .digest_field("command", command)
        .digest_field("context", context);
    h.finish()
}

/// What a seed's signature covers: a tag, the key it is kept under, and the seed's JSON
/// (each length-prefixed). Under another key the signature does not verify.
pub fn signed_bytes(key: &Digest, seed: &Seed) -> Vec<u8> {
    let json = serde_json::to_vec(seed).unwrap_or_default();
    let mut out = Vec::with_capacity(json.len() + 80);
    for field in [SIGNED_TAG, key.as_bytes(), &json] {
        out.extend_from_slice(&(field.len() as u64).to_le_bytes());
        out.extend_from_slice(field);
    }
    out
}

/// The bytes a remote keeps for `seed` under `key`, signed by `signer` if given.
pub fn payload(key: &Digest, seed: &Seed, signer: Option<&SecretKey>) -> Vec<u8> {
    let signatures = signer
        .map(|s| RecordSignature {
            key: s.name.clone(),
            sig: s.sign(&signed_bytes(key, seed)),
        })
        .into_iter()
        .collect();
    let remote = RemoteSeed {
        version: VERSION,
        seed: seed.clone(),
        signatures,
    };
    serde_json::to_vec(&remote).unwrap_or_default()
}

/// Writes `seed` as `payload` under `key` to every writable remote, its blobs (those
/// not kept in the record: outputs, fingerprints' binary files, large build-script
/// output) first, each unless the remote has it; an unsigned seed (`signed` false)
/// only to the remotes that do not require signatures (their readers would refuse it,
/// and it would take the place of a signed one). Returns whether a remote was written
/// to (a failed write is counted in that remote's statistics, not seen here).
pub fn publish(tiers: &Tiers, key: &Digest, seed: &Seed, payload: &[u8], signed: bool) -> bool {
    let mut written = false;
    let blobs = blobs_of(seed);
    for tier in tiers.tiers().skip(1) {
        if !tier.is_writable_remote() || (!signed && tier.requires_signatures()) {
            continue;
        }
        parallel(&blobs, |&(d, size)| {
            // Read checked: a local blob whose bytes are not its digest's is not
            // published (a remote that had it would never be written a good one).
            if !tier.contains_blob(&d, size)
                && let Ok(Some(bytes)) = larder_store::get_verified_blob(tiers.local(), &d, size)
            {
                tier.put_remote(Namespace::Cas, &d, &bytes);
            }
        });
        written |= tier.put_remote(Namespace::Seed, key, payload);
    }
    written
}

/// The digests and sizes of `seed`'s files that are blobs (not kept in the record), each
/// once, of its first [`MAX_UNITS`] units.
fn blobs_of(seed: &Seed) -> Vec<(Digest, u64)> {
    let mut seen = std::collections::HashSet::new();
    seed.units
        .iter()
        .take(MAX_UNITS)
        .flat_map(|u| &u.files)
        .filter(|f| f.text.is_none() && seen.insert(f.digest))
        .map(|f| (f.digest, f.size))
        .collect()
}

/// Runs `each` on every item, [`crate::prefetch::PARALLEL`] at a time.
fn parallel<T: Sync>(items: &[T], each: impl Fn(&T) + Sync) {
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..crate::prefetch::PARALLEL.min(items.len()) {
            s.spawn(|| {
                while let Some(item) = items.get(next.fetch_add(1, Ordering::Relaxed)) {
                    each(item);
                }
            });
        }
    });
}

/// What [`fetch`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Fetched {
    /// A seed this build may plant, and the remote it came from.
    Found {
        /// The remote's name (credentials removed).
        from: String,
        /// The seed.
        seed: Seed,
    },
    /// Only seeds refused for their signature: the first remote's name and why.
    Refused {
        /// The remote's name.
        from: String,
        /// Why (`unsigned`, `signed by x, not trusted`, ...).
        reason: String,
    },
    /// No remote has a seed for this key and guard.
    None,
}

/// What [`fetch`] tells its caller before it returns.
#[derive(Debug)]
pub enum Early<'a> {
    /// A seed admitted by its format and signature; its guard is being checked.
    Admitted(&'a Seed),
    /// The seed admitted last has another guard than this build's.
    NotThisBuild,
}

/// The seed under `key` of the first remote that has one of this format and the guard
/// `guard` gives (waiting for it, if it is being computed; `None`: no seed is this
/// build's), admitted by `trust` where the remote requires signatures.
///
/// `early` hears of each seed admitted by its format and signature before its guard is
/// checked ([`Early::Admitted`]: the caller may start fetching its blobs while the guard
/// is computed; they are checked against their digests whatever the seed turns out to
/// be), and of its guard when it is not this build's ([`Early::NotThisBuild`]: stop
/// that fetch); the seed returned is the last one admitted.
pub fn fetch(
    tiers: &Tiers,
    key: &Digest,
    guard: &dyn Fn() -> Option<Digest>,
    trust: &Trust,
    early: &mut dyn FnMut(Early<'_>),
) -> Fetched {
    let mut refused = None;
    for tier in tiers.tiers().skip(1) {
        let Ok(Some(bytes)) = tier.get(Namespace::Seed, key) else {
            continue;
        };
        let Ok(remote) = serde_json::from_slice::<RemoteSeed>(&bytes) else {
            continue;
        };
        if remote.version != VERSION {
            continue;
        }
        if tier.requires_signatures() {
            let verdict = trust.check_message(&signed_bytes(key, &remote.seed), &remote.signatures);
            if let Err(reason) = trust.refusal(&verdict) {
                // Said only of a seed this build could have planted.
                if Some(remote.seed.guard) == guard() {
                    refused.get_or_insert((tier.name(), reason));
                }
                continue;
            }
        }
        early(Early::Admitted(&remote.seed));
        if Some(remote.seed.guard) != guard() {
            early(Early::NotThisBuild);
            continue;
        }
        return Fetched::Found {
            from: tier.name(),
            seed: remote.seed,
        };
    }
    match refused {
        Some((from, reason)) => Fetched::Refused { from, reason },
        None => Fetched::None,
    }
}

/// Whether a remote seed's recorded target directory may be planted in when the build
/// names none: `target` under the project's directory or up to three directories above
/// it (a workspace's, from a member), never an absolute path nor one elsewhere (a
/// remote does not choose where this machine writes).
pub fn target_dir_allowed(seed: &Seed) -> bool {
    let parts: Vec<Component<'_>> = Path::new(&seed.target_dir).components().collect();
    match parts.split_last() {
        Some((Component::Normal(last), ups)) => {
            *last == "target" && ups.len() <= 3 && ups.iter().all(|c| *c == Component::ParentDir)
        }
        _ => false,
    }
}

/// What [`fetch_blobs`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Blobs {
    /// The blobs fetched into the local store: written by this process after checking
    /// them against their digests, which the plant may link instead of copying and
    /// checking again ([`super::plant`]).
    pub digests: std::collections::HashSet<Digest>,
    /// Their bytes.
    pub bytes: u64,
    /// Blobs no remote had (or whose copy did not match its digest), or over the bound.
    pub missing: u64,
}

impl Blobs {
    /// How many blobs were fetched.
    pub fn fetched(&self) -> u64 {
        self.digests.len() as u64
    }
}

/// Fetches the blobs of `seed`'s files (those not kept in the record) that the local
/// store lacks, [`crate::prefetch::PARALLEL`] calls at a time, each checked against its
/// digest; at most [`MAX_UNITS`] units and `max_bytes` in all. What is missing leaves
/// its unit out of the plant (cargo builds it). Once `cancel` says so, no further blob
/// is asked for (those left count as missing).
pub fn fetch_blobs(
    tiers: &Tiers,
    seed: &Seed,
    max_bytes: u64,
    cancel: &(dyn Fn() -> bool + Sync),
) -> Blobs {
    let local = tiers.local();
    let mut todo = Vec::new();
    let mut total = 0u64;
    let mut missing = 0;
    for (d, size) in blobs_of(seed) {
        if local.contains(Namespace::Cas, &d).unwrap_or(false) {
            continue;
        }
        if total.saturating_add(size) > max_bytes {
            missing += 1;
            continue;
        }
        total += size;
        todo.push((d, size));
    }
    // The largest first: the last to arrive is then a small one.
    todo.sort_by_key(|&(_, size)| std::cmp::Reverse(size));
    let bytes = AtomicU64::new(0);
    let missing = AtomicU64::new(missing);
    let digests = std::sync::Mutex::new(std::collections::HashSet::new());
    parallel(&todo, |&(d, size)| {
        if cancel() {
            missing.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match tiers.get_verified_blob(&d, size) {
            Ok(Some(v)) => {
                bytes.fetch_add(v.len() as u64, Ordering::Relaxed);
                digests.lock().unwrap_or_else(|e| e.into_inner()).insert(d);
            }
            _ => {
                missing.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    Blobs {
        digests: digests.into_inner().unwrap_or_else(|e| e.into_inner()),
        bytes: bytes.into_inner(),
        missing: missing.into_inner(),
    }
}

/// The digests of `seed`'s files: the prefetch leaves out a unit whose outputs are all
/// among them (the plant brings them, and cargo starts no wrapper for the unit).
pub fn digests(seed: &Seed) -> std::collections::HashSet<Digest> {
    seed.units
        .iter()
        .flat_map(|u| &u.files)
        .map(|f| f.digest)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use larder_store::DiskStore;

    use super::*;
    use crate::seed::{SeedFile, SeedUnit};

    fn quiet(_: &str, _: &str) {}
    fn no_flush(_: &Path, _: &std::collections::BTreeMap<String, larder_remote::RemoteCounters>) {}

    /// A machine: its own local store, and the shared directory `remote` behind it
    /// (requiring signatures if `strict`).
    fn machine(dir: &Path, name: &str, strict: bool) -> Tiers {
        let local = DiskStore::open(&dir.join(name), u64::MAX).unwrap();
        let mut spec = larder_remote::RemoteSpec::parse(
            dir.join("remote").to_str().unwrap(),
            false,
            std::time::Duration::from_secs(5),
        )
        .unwrap();
        spec.require_signatures = strict;
        let hooks = larder_remote::Hooks {
            warn: quiet,
            flush: no_flush,
        };
        Tiers::new(local, &[spec], hooks)
    }

    /// A seed of one unit: an rlib (a blob in `store`) and a fingerprint (text).
    fn seed(store: &DiskStore, guard: Digest) -> Seed {
        let rlib = b"rlib\0of foo".to_vec();
        let digest = Digest::of(&rlib);
        store.put(Namespace::Cas, &digest, &rlib).unwrap();
        let file = |path: &str, digest, size, text: Option<&str>| SeedFile {
            path: path.into(),
            digest,
            size,
            mtime_ns: 1_700_000_000_000_000_000,
            executable: false,
            rewrite: false,
            disk_size: size,
            text: text.map(str::to_owned),
            link_deps: None,
        };
        Seed {
            guard,
            target_dir: "target".into(),
            units: vec![SeedUnit {
                fingerprint: "debug/.fingerprint/foo-0123456789abcdef".into(),
                files: vec![
                    file(
                        "debug/deps/libfoo-0123456789abcdef.rlib",
                        digest,
                        rlib.len() as u64,
                        None,
                    ),
                    file(
                        "debug/.fingerprint/foo-0123456789abcdef/lib-foo",
                        Digest::of(b"0100000000000000"),
                        16,
                        Some("0100000000000000"),
                    ),
                ],
            }],
        }
    }

    #[test]
    fn a_published_seed_reaches_another_machine_with_its_blobs_and_its_guard_only() {
        let dir = tempfile::tempdir().unwrap();
        let (guard, other) = (Digest::of(b"guard"), Digest::of(b"other guard"));
        let a = machine(dir.path(), "a", false);
        let s = seed(a.local(), guard);
        let key = remote_key(&Digest::of(b"cargo build"), &guard);
        assert_ne!(key, remote_key(&Digest::of(b"cargo build"), &other));
        assert!(publish(&a, &key, &s, &payload(&key, &s, None), false));

        let b = machine(dir.path(), "b", false);
        let trust = Trust::default();
        let Fetched::Found { seed: got, .. } =
            fetch(&b, &key, &|| Some(guard), &trust, &mut |_| ())
        else {
            panic!("no seed");
        };
        assert_eq!(got, s);
        let rlib = s.units[0].files[0].digest;
        assert!(!b.local().contains(Namespace::Cas, &rlib).unwrap());
        let blobs = fetch_blobs(&b, &got, u64::MAX, &|| false);
        assert_eq!(
            (blobs.fetched(), blobs.missing),
            (1, 0),
            "the text is in the record"
        );
        assert!(b.local().contains(Namespace::Cas, &rlib).unwrap());
        assert_eq!(blobs.digests, [rlib].into(), "what the plant may link");
        // Another guard under this key (a hostile or mistaken writer): not this build's,
        // though seen (its blobs may be fetched while the guard is computed).
        let mut seen = Vec::new();
        let mut early = |e: Early<'_>| match e {
            Early::Admitted(s) => seen.push(Some(s.clone())),
            Early::NotThisBuild => seen.push(None),
        };
        assert_eq!(
            fetch(&b, &key, &|| Some(other), &trust, &mut early),
            Fetched::None
        );
        assert_eq!(seen, [Some(s.clone()), None]);
        // Within a byte bound smaller than the blob: left out, counted.
        let c = machine(dir.path(), "c", false);
        let blobs = fetch_blobs(&c, &got, 4, &|| false);
        assert_eq!((blobs.fetched(), blobs.missing), (0, 1));
        // Cancelled: nothing asked for.
        let blobs = fetch_blobs(&c, &got, u64::MAX, &|| true);
        assert_eq!((blobs.fetched(), blobs.missing), (0, 1));
        assert!(!c.local().contains(Namespace::Cas, &rlib).unwrap());
    }

    #[test]
    fn a_remote_seed_plants_only_in_a_target_directory_of_the_project() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskStore::open(dir.path(), u64::MAX).unwrap();
        let mut s = seed(&store, Digest::of(b"guard"));
        for (target_dir, allowed) in [
            ("target", true),
            ("../../target", true),
            ("../../../target", true),
            ("../../../../target", false),
            ("/home/u/.ssh", false),
            ("/tmp/target", false),
            ("../other-target", false),
            ("target/../..", false),
            ("./target", false),
            ("", false),
        ] {
            s.target_dir = target_dir.into();
            assert_eq!(target_dir_allowed(&s), allowed, "{target_dir}");
        }
    }

    #[test]
    fn where_signatures_are_required_only_a_seed_signed_by_a_trusted_key_is_fetched() {
        let dir = tempfile::tempdir().unwrap();
        let guard = Digest::of(b"guard");
        let team = SecretKey::generate("team-ci-1").unwrap();
        let mallory = SecretKey::generate("mallory-1").unwrap();
        let trust = Trust::new(vec![team.public()]);
        let writer = machine(dir.path(), "w", true);
        let s = seed(writer.local(), guard);
        let key = remote_key(&Digest::of(b"cargo build"), &guard);
        let reader = machine(dir.path(), "r", true);
        let refused = |why: &str| {
            let mut admitted = 0;
            match fetch(&reader, &key, &|| Some(guard), &trust, &mut |_| {
                admitted += 1
            }) {
                Fetched::Refused { reason, .. } => assert!(reason.starts_with(why), "{reason}"),
                other => panic!("{other:?}"),
            }
            assert_eq!(admitted, 0, "a refused seed's blobs are never fetched");
        };

        // Unsigned: not even written where signatures are required.
        assert!(!publish(&writer, &key, &s, &payload(&key, &s, None), false));
        assert_eq!(
            fetch(&reader, &key, &|| Some(guard), &trust, &mut |_| ()),
            Fetched::None
        );
        let remote = DiskStore::open(&dir.path().join("remote"), u64::MAX).unwrap();
        remote
            .put(Namespace::Seed, &key, &payload(&key, &s, None))
            .unwrap();
        refused("unsigned");
        // Refused, but of another guard: not this build's seed, nothing to say.
        assert_eq!(
            fetch(
                &reader,
                &key,
                &|| Some(Digest::of(b"other")),
                &trust,
                &mut |_| ()
            ),
            Fetched::None
        );

        let signed = payload(&key, &s, Some(&team));
        assert!(publish(&writer, &key, &s, &signed, true));
        assert!(matches!(
            fetch(&reader, &key, &|| Some(guard), &trust, &mut |_| ()),
            Fetched::Found { seed, .. } if seed == s
        ));
        // Not trusted under another key, nor changed, nor moved to another key.
        remote
            .put(Namespace::Seed, &key, &payload(&key, &s, Some(&mallory)))
            .unwrap();
        refused("signed by mallory-1, not trusted");
        let mut changed: RemoteSeed = serde_json::from_slice(&signed).unwrap();
        changed.seed.units[0].files[1].text = Some("0200000000000000".into());
        remote
            .put(
                Namespace::Seed,
                &key,
                &serde_json::to_vec(&changed).unwrap(),
            )
            .unwrap();
        refused("invalid signature by team-ci-1");
        let moved = remote_key(&Digest::of(b"cargo test"), &guard);
        remote.put(Namespace::Seed, &moved, &signed).unwrap();
        assert!(matches!(
            fetch(&reader, &moved, &|| Some(guard), &trust, &mut |_| ()),
            Fetched::Refused { reason, .. } if reason.starts_with("invalid signature")
        ));
        // A reader that does not require signatures takes an unsigned seed.
        remote
            .put(Namespace::Seed, &key, &payload(&key, &s, None))
            .unwrap();
        let lax = machine(dir.path(), "l", false);
        assert!(matches!(
            fetch(&lax, &key, &|| Some(guard), &Trust::default(), &mut |_| ()),
            Fetched::Found { .. }
        ));
    }
}
