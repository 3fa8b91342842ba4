//! Prefetch: a fresh runner gets what the last build of the same command used from the
//! remote before cargo asks, and its wrappers then find every entry locally.
//!
//! Against a shared directory always, and Redis and REAPI (BuildGrid) when their servers
//! are up. Each run's `RUSTFLAGS` are its own, so that parallel tests on a shared server
//! have keys (and an index) of their own.

use crate::support::{FIXTURE_UNITS, Project, Run};

fn own_flags() -> String {
    crate::support::own_cfg("larder_prefetch")
}

fn remotes(p: &Project) -> Vec<String> {
    let mut out = vec![format!("file://{}", p.tmp().join("shared").display())];
    out.extend(
        ["LARDER_TEST_REDIS", "LARDER_TEST_GRPC"]
            .iter()
            .filter_map(|v| crate::remote::server_url(v)),
    );
    out
}

fn build(p: &Project, flags: &str, url: &str, prefetch: bool) -> Run {
    p.larder_cargo(&["build"])
        .env("RUSTFLAGS", flags)
        .env("LARDER_REMOTE", url)
        .env("LARDER_PREFETCH", if prefetch { "1" } else { "0" })
        .run()
}

/// The next commit on a new machine: `app` edited; it compiles, every other unit hits,
/// and the binary is right.
fn next_commit(a: &Project, flags: &str, url: &str) -> Run {
    let c = a.on_new_machine();
    c.edit(
        "app/src/main.rs",
        "fn main() {",
        "fn main() {\n    let _next = 1;",
    );
    let run = build(&c, flags, url, true);
    run.assert_crate("app", "miss");
    for k in FIXTURE_UNITS.iter().filter(|k| **k != "app") {
        run.assert_crate(k, "hit");
    }
    c.assert_app(&[]);
    run
}

/// The number of entries `larder cargo` said it prefetched.
fn prefetched(run: &Run) -> Option<u64> {
    let line = run
        .stderr
        .lines()
        .find(|l| l.starts_with("larder: prefetched "))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

#[test]
fn a_fresh_runner_gets_the_last_builds_entries_before_cargo_asks() {
    let a = Project::fixture();
    for url in remotes(&a) {
        let flags = own_flags();
        a.clean();
        let run = build(&a, &flags, &url, true);
        run.assert_all("miss", FIXTURE_UNITS);
        assert_eq!(prefetched(&run), None, "{url}: nothing to prefetch yet");

        // Another machine: every entry comes ahead of cargo, and no wrapper reads the
        // remote (its hits are the prefetch's reads and the index).
        let b = a.on_new_machine();
        let run = build(&b, &flags, &url, true);
        run.assert_all("hit", FIXTURE_UNITS);
        let n = prefetched(&run).unwrap_or_else(|| panic!("{url}: no prefetch\n{}", run.context()));
        assert!(n >= FIXTURE_UNITS.len() as u64, "{url}: {n} entries");
        for e in run.report.units() {
            assert_eq!(e.remote.as_deref(), Some(url.as_str()), "{url}: {}", e.line);
        }
        let stats = &b.stats()["remotes"][&url];
        assert_eq!(
            stats["hits"],
            n + 1,
            "{url}: the wrappers read the remote: {stats}"
        );
        // One miss: the seed, which a project of path packages only never has.
        assert_eq!(stats["misses"], 1, "{url}: {stats}");
        b.assert_app(&[]);

        // The next commit: app changed; the rest comes ahead, app compiles and is right.
        let run = next_commit(&a, &flags, &url);
        assert!(prefetched(&run).is_some(), "{url}:\n{}", run.context());

        // Off: the wrappers read the remote themselves, to the same effect.
        let d = a.on_new_machine();
        let run = build(&d, &flags, &url, false);
        assert_eq!(prefetched(&run), None, "{url}");
        run.assert_all("hit", FIXTURE_UNITS);
        d.assert_app(&[]);
    }
}

/// An index that lists another unit's record under a unit's manifest, and blobs that do
/// not exist: the prefetch fetches only what a lookup would use, and the build is right.
#[test]
fn a_hostile_index_costs_transfers_never_a_wrong_build() {
    let a = Project::fixture();
    let shared = a.tmp().join("shared");
    let url = format!("file://{}", shared.display());
    let flags = own_flags();
    build(&a, &flags, &url, true).assert_all("miss", FIXTURE_UNITS);
    let b = a.on_new_machine();
    build(&b, &flags, &url, true).assert_all("hit", FIXTURE_UNITS);
    let index_dir = shared.join("v1").join("index");
    let files = crate::support::files_under(&index_dir);
    assert_eq!(files.len(), 1, "one index: {files:?}");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap();
    let units = index["units"].as_array_mut().unwrap();
    // Every unit's manifest now names the next unit's record; every blob a wrong size.
    let records: Vec<serde_json::Value> = units.iter().map(|u| u["record"].clone()).collect();
    for (i, u) in units.iter_mut().enumerate() {
        u["record"] = records[(i + 1) % records.len()].clone();
        for b in u["blobs"].as_array_mut().unwrap() {
            b[1] = serde_json::json!(7);
        }
    }
    std::fs::write(&files[0], serde_json::to_vec(&index).unwrap()).unwrap();

    let run = next_commit(&a, &flags, &url);
    assert!(!run.stderr.contains("larder: warning"), "{}", run.context());
}
