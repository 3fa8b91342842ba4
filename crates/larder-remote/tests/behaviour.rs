//! The behaviour suite every remote backend passes, run against real servers.
//!
//! Each backend's server is named by a variable holding its URL (`LARDER_TEST_REDIS`
//! and so on; `scripts/remote-servers.sh start` starts them all and writes the
//! variables to an env file). A backend whose variable is unset is skipped with a
//! message, unless `LARDER_TEST_REQUIRE_REMOTES=1` (as `.ci/run` sets), which makes a
//! missing server a failure. Cases a backend cannot run are skipped by its declared
//! capabilities, and say so.
// Tests read their own variables (LARDER_TEST_*).
#![allow(clippy::disallowed_methods)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use larder_digest::Digest;
use larder_remote::{RemoteSpec, open};
use larder_store::{Namespace, Store, StoreError, get_verified_blob};

fn backend(var: &str) -> Option<Arc<dyn Store>> {
    let Some(url) = std::env::var(var).ok().filter(|v| !v.is_empty()) else {
        if std::env::var("LARDER_TEST_REQUIRE_REMOTES").is_ok_and(|v| v == "1") {
            panic!(
                "{var} is not set and LARDER_TEST_REQUIRE_REMOTES=1: start the servers (scripts/remote-servers.sh start) and source their env file"
            );
        }
        eprintln!("SKIPPED: {var} is not set (scripts/remote-servers.sh start starts the servers)");
        return None;
    };
    let spec = RemoteSpec::parse(&url, false, Duration::from_secs(20)).expect("test URL parses");
    Some(open(&spec).expect("backend opens"))
}

/// A key no earlier run used: servers keep entries between runs.
fn fresh_key(tag: &str) -> Digest {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    Digest::of(format!("{tag}:{now}:{}", std::process::id()).as_bytes())
}

/// Deterministic incompressible-ish bytes.
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn skip(store: &dyn Store, case: &str, why: &str) {
    eprintln!("SKIPPED by capability: {} {case}: {why}", store.name());
}

fn suite(var: &str) {
    let Some(store) = backend(var) else { return };
    every_case(&store);
    let reader = backend(var).expect("opened once");
    another_client_finds_a_blob_by_digest_and_size(&*store, &*reader);
}

/// A blob another client wrote (another machine or process: this client never saw its
/// size, which the REAPI addresses blobs by) is found by its digest and size, and one
/// nobody wrote is not. A seed's publication asks this of each of its blobs.
fn another_client_finds_a_blob_by_digest_and_size(writer: &dyn Store, reader: &dyn Store) {
    let data = bytes(5000, fresh_key("found").as_bytes()[1] as u64 + 3);
    let d = Digest::of(&data);
    writer.put(Namespace::Cas, &d, &data).unwrap();
    assert!(
        reader.contains_blob(&d, data.len() as u64).unwrap(),
        "{}",
        reader.name()
    );
    let never = fresh_key("never written");
    assert!(
        !reader.contains_blob(&never, 10).unwrap(),
        "{}",
        reader.name()
    );
}

fn every_case(store: &Arc<dyn Store>) {
    let s = &**store;
    eprintln!("behaviour suite: {} ({:?})", s.name(), s.capabilities());
    missing_entries_are_none(s);
    records_round_trip_in_every_namespace(s);
    records_are_replaced(s);
    blobs_round_trip_and_verify(s);
    empty_blob(s);
    large_blob(s);
    corrupt_blob_is_detected(s);
    delete(s);
    parallel_writers(store);
}

fn missing_entries_are_none(s: &dyn Store) {
    for ns in [Namespace::Action, Namespace::Manifest] {
        let k = fresh_key("missing");
        assert_eq!(s.get(ns, &k).unwrap(), None, "{ns:?}");
        assert!(!s.contains(ns, &k).unwrap(), "{ns:?}");
    }
    assert_eq!(
        get_verified_blob(s, &fresh_key("absent-blob"), 100).unwrap(),
        None
    );
}

fn records_round_trip_in_every_namespace(s: &dyn Store) {
    for ns in [Namespace::Action, Namespace::Manifest, Namespace::Link] {
        let k = fresh_key(ns.as_str());
        let v = format!("{{\"record\":\"{}\"}}", k.to_hex()).into_bytes();
        s.put(ns, &k, &v).unwrap();
        assert_eq!(s.get(ns, &k).unwrap().as_deref(), Some(&v[..]), "{ns:?}");
        assert!(s.contains(ns, &k).unwrap(), "{ns:?}");
    }
    // The same key in two namespaces holds two values.
    let k = fresh_key("two");
    s.put(Namespace::Action, &k, b"ac").unwrap();
    s.put(Namespace::Manifest, &k, b"manifest").unwrap();
    assert_eq!(
        s.get(Namespace::Action, &k).unwrap().as_deref(),
        Some(&b"ac"[..])
    );
    assert_eq!(
        s.get(Namespace::Manifest, &k).unwrap().as_deref(),
        Some(&b"manifest"[..])
    );
}

fn records_are_replaced(s: &dyn Store) {
    let k = fresh_key("replace");
    s.put(Namespace::Manifest, &k, b"first version, longer")
        .unwrap();
    s.put(Namespace::Manifest, &k, b"second").unwrap();
    assert_eq!(
        s.get(Namespace::Manifest, &k).unwrap().as_deref(),
        Some(&b"second"[..])
    );
}

fn blobs_round_trip_and_verify(s: &dyn Store) {
    let seed = fresh_key("seed").as_bytes()[0] as u64 + 7;
    for len in [1usize, 1000, 100_000] {
        let data = bytes(len, seed + len as u64);
        let d = Digest::of(&data);
        s.put(Namespace::Cas, &d, &data).unwrap();
        assert!(s.contains(Namespace::Cas, &d).unwrap());
        assert_eq!(
            get_verified_blob(s, &d, len as u64).unwrap().unwrap(),
            data,
            "{len}"
        );
    }
    // Text compresses: stored compressed or not, it comes back the same.
    let text = "fn main() { println!(\"hello\"); }\n"
        .repeat(2000)
        .into_bytes();
    let d = Digest::of(&text);
    s.put(Namespace::Cas, &d, &text).unwrap();
    assert_eq!(
        get_verified_blob(s, &d, text.len() as u64)
            .unwrap()
            .unwrap(),
        text
    );
}

fn empty_blob(s: &dyn Store) {
    let d = Digest::of(b"");
    s.put(Namespace::Cas, &d, b"").unwrap();
    assert_eq!(
        get_verified_blob(s, &d, 0).unwrap().unwrap(),
        Vec::<u8>::new()
    );
}

fn large_blob(s: &dyn Store) {
    // Over memcached's 1 MiB item limit and over common gRPC message limits (4 MiB).
    let data = bytes(9 << 20, fresh_key("large").as_bytes()[1] as u64 + 99);
    let d = Digest::of(&data);
    match s.put(Namespace::Cas, &d, &data) {
        Ok(()) => {
            let got = get_verified_blob(s, &d, data.len() as u64)
                .unwrap()
                .unwrap();
            assert!(got == data, "large blob differs");
        }
        Err(StoreError::TooLarge { size, limit, .. }) => {
            let caps = s.capabilities();
            assert_eq!(
                caps.max_value_size,
                Some(limit),
                "refusal matches the declared limit"
            );
            skip(
                s,
                "large_blob",
                &format!("{size} bytes over the declared limit {limit}"),
            );
        }
        Err(e) => panic!("{}: 9 MiB blob: {e}", s.name()),
    }
}

fn corrupt_blob_is_detected(s: &dyn Store) {
    let good = bytes(5000, fresh_key("c").as_bytes()[2] as u64 + 3);
    let d = Digest::of(&good);
    let mut bad = good.clone();
    bad[100] ^= 0xff;
    match s.put(Namespace::Cas, &d, &bad) {
        // Servers that check digests on upload (REAPI, bazel-remote) refuse it: fine.
        Err(e) => eprintln!("{}: corrupt upload refused: {e}", s.name()),
        Ok(()) => {
            let got = get_verified_blob(s, &d, good.len() as u64);
            assert!(
                matches!(got, Err(StoreError::Corrupt { .. })),
                "{}: a blob that does not match its digest must be reported corrupt, got {got:?}",
                s.name()
            );
            // It is gone or still there, but never returned.
            assert!(!matches!(
                get_verified_blob(s, &d, good.len() as u64),
                Ok(Some(_))
            ));
        }
    }
}

fn delete(s: &dyn Store) {
    if !s.capabilities().delete {
        skip(s, "delete", "the backend cannot delete entries");
        return;
    }
    let k = fresh_key("delete");
    s.put(Namespace::Action, &k, b"x").unwrap();
    s.delete(Namespace::Action, &k).unwrap();
    assert_eq!(s.get(Namespace::Action, &k).unwrap(), None);
    // Deleting what is not there is not an error.
    s.delete(Namespace::Action, &fresh_key("never")).unwrap();
}

fn parallel_writers(store: &Arc<dyn Store>) {
    let k = fresh_key("parallel");
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let store = Arc::clone(store);
            std::thread::spawn(move || {
                let data = bytes(200_000, 1000 + i);
                let d = Digest::of(&data);
                store.put(Namespace::Cas, &d, &data).unwrap();
                store
                    .put(Namespace::Action, &k, format!("writer {i}").as_bytes())
                    .unwrap();
                (d, data)
            })
        })
        .collect();
    for t in threads {
        let (d, data) = t.join().unwrap();
        assert_eq!(
            get_verified_blob(&**store, &d, data.len() as u64)
                .unwrap()
                .unwrap(),
            data
        );
    }
    // One writer won, whole.
    let v = store.get(Namespace::Action, &k).unwrap().unwrap();
    let v = String::from_utf8(v).unwrap();
    assert!(v.starts_with("writer ") && v.len() == 8, "{v:?}");
}

#[test]
fn memcached() {
    suite("LARDER_TEST_MEMCACHED");
}

#[test]
fn redis() {
    suite("LARDER_TEST_REDIS");
}

#[test]
fn s3() {
    suite("LARDER_TEST_S3");
}

#[test]
fn webdav() {
    suite("LARDER_TEST_WEBDAV");
}

#[test]
fn http_bazel_protocol() {
    suite("LARDER_TEST_HTTP");
}

#[test]
fn reapi() {
    suite("LARDER_TEST_GRPC");
}

#[test]
fn oci() {
    suite("LARDER_TEST_OCI");
}

#[test]
fn shared_directory() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().join("shared").display());
    let spec = RemoteSpec::parse(&url, false, Duration::from_secs(5)).unwrap();
    let store = open(&spec).unwrap();
    every_case(&store);
    another_client_finds_a_blob_by_digest_and_size(&*store, &*open(&spec).unwrap());
}
