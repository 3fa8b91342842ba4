//! The tier chain against real stores: shared directories, and servers that are dead,
//! silent, full or read-only.
// Tests read their own variables (LARDER_TEST_*).
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use larder_digest::Digest;
use larder_remote::{Hooks, RemoteCounters, RemoteSpec, Tiers};
use larder_store::{DiskStore, Namespace, Store, StoreError, get_verified_blob};

static WARNINGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn record_warning(_topic: &str, message: &str) {
    eprintln!("warning: {message}");
    WARNINGS.lock().unwrap().push(message.to_string());
}

fn no_flush(_: &Path, _: &BTreeMap<String, RemoteCounters>) {}

const HOOKS: Hooks = Hooks {
    warn: record_warning,
    flush: no_flush,
};

fn warnings_about(what: &str) -> Vec<String> {
    WARNINGS
        .lock()
        .unwrap()
        .iter()
        .filter(|w| w.contains(what))
        .cloned()
        .collect()
}

fn unique(tag: &str) -> String {
    format!(
        "{tag}-{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
    )
}

fn spec(url: &str, read_only: bool, timeout: Duration) -> RemoteSpec {
    RemoteSpec::parse(url, read_only, timeout).unwrap()
}

fn dir_url(p: &Path) -> String {
    format!("file://{}", p.display())
}

struct Chain {
    _tmp: tempfile::TempDir,
    tiers: Tiers,
    team: DiskStore,
    public: DiskStore,
}

/// local -> team (read-write directory) -> public (read-only directory).
fn chain() -> Chain {
    let tmp = tempfile::tempdir().unwrap();
    let local = DiskStore::open(&tmp.path().join("local"), 1 << 30).unwrap();
    let team = DiskStore::open(&tmp.path().join("team"), u64::MAX).unwrap();
    let public = DiskStore::open(&tmp.path().join("public"), u64::MAX).unwrap();
    let t = Duration::from_secs(5);
    let tiers = Tiers::new(
        local,
        &[
            spec(&dir_url(&tmp.path().join("team")), false, t),
            spec(&dir_url(&tmp.path().join("public")), true, t),
        ],
        HOOKS,
    )
    .with_build_id(&unique("chain"));
    Chain {
        _tmp: tmp,
        tiers,
        team,
        public,
    }
}

#[test]
fn a_hit_in_a_later_tier_backfills_the_faster_ones() {
    let c = chain();
    let blob = b"public rlib".to_vec();
    let d = Digest::of(&blob);
    c.public.put(Namespace::Cas, &d, &blob).unwrap();
    let k = Digest::of(b"record key");
    c.public.put(Namespace::Action, &k, b"{record}").unwrap();

    assert_eq!(
        get_verified_blob(&c.tiers, &d, blob.len() as u64)
            .unwrap()
            .unwrap(),
        blob
    );
    assert_eq!(
        c.tiers.get(Namespace::Action, &k).unwrap().unwrap(),
        b"{record}"
    );
    // Backfilled: the local store and the team tier have both now.
    assert!(c.tiers.local().contains(Namespace::Cas, &d).unwrap());
    assert!(c.tiers.local().contains(Namespace::Action, &k).unwrap());
    assert!(c.team.contains(Namespace::Cas, &d).unwrap());
    assert!(c.team.contains(Namespace::Action, &k).unwrap());
    assert!(c.tiers.served_by().unwrap().contains("public"));
    let counters = c.tiers.take_counters();
    let public = counters
        .iter()
        .find(|(n, _)| n.contains("public"))
        .unwrap()
        .1;
    assert_eq!(public.hits, 2);
    let team = counters.iter().find(|(n, _)| n.contains("team")).unwrap().1;
    assert_eq!((team.misses, team.writes), (2, 2));
}

#[test]
fn writes_go_to_every_writable_tier_and_never_to_a_read_only_one() {
    let c = chain();
    let blob = b"new object".to_vec();
    let d = Digest::of(&blob);
    c.tiers.put(Namespace::Cas, &d, &blob).unwrap();
    assert!(c.tiers.local().contains(Namespace::Cas, &d).unwrap());
    assert!(c.team.contains(Namespace::Cas, &d).unwrap());
    assert!(!c.public.contains(Namespace::Cas, &d).unwrap());
}

#[test]
fn link_records_stay_local() {
    let c = chain();
    let k = Digest::of(b"some rlib");
    c.tiers.put(Namespace::Link, &k, b"{\"deps\":[]}").unwrap();
    assert!(c.tiers.local().contains(Namespace::Link, &k).unwrap());
    assert!(!c.team.contains(Namespace::Link, &k).unwrap());
    c.public
        .put(Namespace::Link, &Digest::of(b"other"), b"{}")
        .unwrap();
    assert_eq!(
        c.tiers.get(Namespace::Link, &Digest::of(b"other")).unwrap(),
        None
    );
}

/// Leaves `bytes` under `digest` in `store`'s directory, as a damaged disk or a bad upload
/// would: the store itself keeps a blob only under its own digest.
fn put_wrong_blob(store: &DiskStore, digest: &Digest, bytes: &[u8]) {
    let file = store.layout().entry(Namespace::Cas, digest);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, zstd::encode_all(bytes, 3).unwrap()).unwrap();
}

#[test]
fn a_corrupt_remote_blob_is_a_miss_and_the_next_tier_serves() {
    let c = chain();
    let good = b"the right bytes".to_vec();
    let d = Digest::of(&good);
    // The team tier holds other bytes under the digest (a bad disk, a bad upload).
    put_wrong_blob(&c.team, &d, b"the wrong bytes");
    c.public.put(Namespace::Cas, &d, &good).unwrap();
    assert_eq!(
        get_verified_blob(&c.tiers, &d, good.len() as u64)
            .unwrap()
            .unwrap(),
        good
    );
    let counters = c.tiers.take_counters();
    let team = counters.iter().find(|(n, _)| n.contains("team")).unwrap().1;
    assert_eq!(team.corrupt, 1);
    // The local store keeps the checked copy (backfilled without a second hash).
    assert_eq!(
        get_verified_blob(c.tiers.local(), &d, good.len() as u64)
            .unwrap()
            .unwrap(),
        good
    );
    // Only corrupt copies anywhere: a miss, never the wrong bytes, and nothing kept.
    let other = b"another".to_vec();
    let d2 = Digest::of(&other);
    put_wrong_blob(&c.team, &d2, b"garbage");
    assert_eq!(
        get_verified_blob(&c.tiers, &d2, other.len() as u64).unwrap(),
        None
    );
    assert!(!c.tiers.local().contains(Namespace::Cas, &d2).unwrap());
}

#[test]
fn bytes_that_are_not_the_blob_are_refused_and_reach_no_remote() {
    let c = chain();
    let d = Digest::of(b"the compiled rlib");
    // An output that changed after it was hashed.
    let e = c
        .tiers
        .put(Namespace::Cas, &d, b"overwritten since")
        .unwrap_err();
    assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");
    assert!(!c.tiers.local().contains(Namespace::Cas, &d).unwrap());
    assert!(!c.team.contains(Namespace::Cas, &d).unwrap());
}

#[test]
fn manifests_are_extended_per_tier() {
    let c = chain();
    let k = Digest::of(b"invocation");
    c.team.put(Namespace::Manifest, &k, b"team").unwrap();
    c.tiers
        .local()
        .put(Namespace::Manifest, &k, b"local")
        .unwrap();
    c.tiers
        .update(Namespace::Manifest, &k, &|cur| {
            let mut v = cur.unwrap_or_default();
            v.extend_from_slice(b"+new");
            v
        })
        .unwrap();
    assert_eq!(
        c.tiers
            .local()
            .get(Namespace::Manifest, &k)
            .unwrap()
            .unwrap(),
        b"local+new"
    );
    assert_eq!(
        c.team.get(Namespace::Manifest, &k).unwrap().unwrap(),
        b"team+new"
    );
    assert_eq!(c.public.get(Namespace::Manifest, &k).unwrap(), None);
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn lone_remote(url: &str, timeout: Duration, tag: &str) -> (tempfile::TempDir, Tiers) {
    let tmp = tempfile::tempdir().unwrap();
    let local = DiskStore::open(&tmp.path().join("local"), 1 << 30).unwrap();
    let tiers = Tiers::new(local, &[spec(url, false, timeout)], HOOKS).with_build_id(&unique(tag));
    (tmp, tiers)
}

#[test]
fn a_dead_remote_is_switched_off_with_one_warning() {
    for url in [
        format!("redis://127.0.0.1:{}/0", free_port()),
        format!("memcached://127.0.0.1:{}", free_port()),
        format!("http://127.0.0.1:{}/cache", free_port()),
        format!("grpc://127.0.0.1:{}", free_port()),
        format!("webdav://127.0.0.1:{}/dav", free_port()),
    ] {
        let (_tmp, tiers) = lone_remote(&url, Duration::from_secs(2), "dead");
        let blob = b"compiled".to_vec();
        let d = Digest::of(&blob);
        // Writes land locally whatever the remote does.
        tiers.put(Namespace::Cas, &d, &blob).unwrap();
        assert!(tiers.local().contains(Namespace::Cas, &d).unwrap());
        for i in 0..6 {
            let k = Digest::of(format!("k{i}").as_bytes());
            assert_eq!(tiers.get(Namespace::Action, &k).unwrap(), None, "{url}");
        }
        let c = tiers.take_counters().into_values().next().unwrap();
        if url.starts_with("redis") || url.starts_with("memcached") {
            // Probed before the first call: refused, off without a failed call.
            assert_eq!(c.errors, 0, "{url}: {c:?}");
        } else {
            assert!(c.errors >= 3, "{url}: {c:?}");
        }
        assert!(c.skipped_off >= 1, "{url}: {c:?}");
        let w = warnings_about(&format!("remote {url} switched off"));
        assert_eq!(w.len(), 1, "{url}: {w:?}");
    }
}

#[test]
fn a_silent_remote_times_out_and_is_switched_off() {
    // A server that accepts connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            held.push(s);
        }
    });
    for url in [
        format!("redis://127.0.0.1:{port}/0"),
        format!("memcached://127.0.0.1:{port}"),
        format!("http://127.0.0.1:{port}/cache"),
        format!("grpc://127.0.0.1:{port}"),
    ] {
        let (_tmp, tiers) = lone_remote(&url, Duration::from_millis(300), "silent");
        let started = Instant::now();
        for i in 0..10 {
            let k = Digest::of(format!("k{i}").as_bytes());
            assert_eq!(tiers.get(Namespace::Manifest, &k).unwrap(), None);
        }
        // Three calls at the deadline, then none: well under ten deadlines.
        let spent = started.elapsed();
        assert!(spent < Duration::from_secs(3), "{url}: {spent:?}");
        let c = tiers.take_counters().into_values().next().unwrap();
        assert!(c.timeouts >= 1, "{url}: {c:?}");
        assert_eq!(
            warnings_about(&format!("remote {url} switched off")).len(),
            1,
            "{url}"
        );
    }
}

/// A remote that refuses writes (full, or read-only on the server's side) keeps serving
/// reads; only its writes are switched off.
fn refusing_writes(var: &str) {
    let Some(url) = std::env::var(var).ok().filter(|v| !v.is_empty()) else {
        if std::env::var("LARDER_TEST_REQUIRE_REMOTES").is_ok_and(|v| v == "1") {
            panic!("{var} is not set and LARDER_TEST_REQUIRE_REMOTES=1");
        }
        eprintln!("SKIPPED: {var} is not set (scripts/remote-servers.sh start starts the servers)");
        return;
    };
    let (_tmp, tiers) = lone_remote(&url, Duration::from_secs(5), "refusing");
    for i in 0..5u8 {
        // 600 KB each: over a 1 MB maxmemory after two.
        let mut x =
            0x9e37_79b9_7f4a_7c15_u64 ^ u64::from(i) ^ (u64::from(std::process::id()) << 20);
        let blob: Vec<u8> = (0..600_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        let d = Digest::of(&blob);
        tiers.put(Namespace::Cas, &d, &blob).unwrap();
        assert!(tiers.local().contains(Namespace::Cas, &d).unwrap());
    }
    let c = tiers.take_counters().into_values().next().unwrap();
    assert!(c.errors >= 3, "{url}: {c:?}");
    assert_eq!(
        warnings_about(&format!("remote {url} not written to")).len(),
        1,
        "{url}"
    );
    // Reads still go to it.
    let k = Digest::of(unique("absent").as_bytes());
    assert_eq!(tiers.get(Namespace::Action, &k).unwrap(), None);
    let c = tiers.take_counters().into_values().next().unwrap();
    assert_eq!(c.misses, 1, "{url}: {c:?}");
}

#[test]
fn a_full_remote_keeps_serving_reads() {
    refusing_writes("LARDER_TEST_REDIS_FULL");
}

#[test]
fn a_read_only_server_keeps_serving_reads() {
    refusing_writes("LARDER_TEST_REDIS_READONLY");
    refusing_writes("LARDER_TEST_HTTP_READONLY");
}
