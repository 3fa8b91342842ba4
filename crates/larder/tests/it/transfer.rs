//! `larder export` and `larder import` (issue 11): what a build used, saved as a
//! directory or tarball the way a CI cache step keeps it, gives a fresh runner every
//! unit; a corrupt blob in an export is skipped with the entries that need it, and the
//! build stays right.

use std::path::Path;

use crate::support::{FIXTURE_UNITS, Project, files_under};

fn fresh_runner(p: &Project, export: &Path) -> Project {
    let runner = p.on_new_machine();
    let imported = runner.json(&["import", export.to_str().unwrap(), "--json"]);
    assert_eq!(imported["corrupt"], 0, "{imported}");
    assert!(
        imported["entries"].as_u64().unwrap() >= FIXTURE_UNITS.len() as u64,
        "{imported}"
    );
    runner
}

#[test]
fn an_export_of_the_last_build_gives_a_fresh_runner_every_unit() {
    let p = Project::fixture();
    p.build();
    for name in ["export-dir", "export.tar", "export.tar.zst"] {
        let out = p.tmp().join(name);
        let exported = p.json(&["export", "--last-build", out.to_str().unwrap(), "--json"]);
        assert_eq!(
            exported["entries"],
            FIXTURE_UNITS.len() + 1,
            "{name}: {exported}"
        );
        let runner = fresh_runner(&p, &out);
        runner.build().assert_all("hit", FIXTURE_UNITS);
        runner.assert_app(&[]);
    }
    // A build of hits names its entries too.
    p.clean();
    p.build().assert_all("hit", FIXTURE_UNITS);
    let out = p.tmp().join("after-hits.tar.zst");
    let exported = p.json(&["export", "--last-build", out.to_str().unwrap(), "--json"]);
    assert_eq!(exported["entries"], FIXTURE_UNITS.len() + 1, "{exported}");
    fresh_runner(&p, &out)
        .build()
        .assert_all("hit", FIXTURE_UNITS);
    // `--all` holds at least what the last build used.
    let all = p.tmp().join("all");
    let exported = p.json(&["export", "--all", all.to_str().unwrap(), "--json"]);
    assert!(
        exported["entries"].as_u64().unwrap() >= FIXTURE_UNITS.len() as u64,
        "{exported}"
    );
}

#[test]
fn an_export_after_a_build_served_by_a_remote_gives_the_next_runner_every_unit() {
    // A runner that got every unit from a remote holds no key inputs of them (those
    // stay in the tier that stored them): the manifests come from the build's events.
    let laptop = Project::fixture();
    let remote = format!("file://{}", laptop.tmp().join("team-tier").display());
    laptop.build_with(&[("LARDER_REMOTE", &remote)]);
    let ci = laptop.on_new_machine();
    ci.build_with(&[("LARDER_REMOTE", &remote)])
        .assert_all("hit", FIXTURE_UNITS);
    let out = ci.tmp().join("ci-cache.tar.zst");
    let exported = ci.json(&["export", "--last-build", out.to_str().unwrap(), "--json"]);
    assert_eq!(exported["entries"], FIXTURE_UNITS.len() + 1, "{exported}");
    let next = fresh_runner(&ci, &out);
    next.build().assert_all("hit", FIXTURE_UNITS);
    next.assert_app(&[]);
}

#[test]
fn a_corrupt_blob_in_an_export_is_skipped_with_its_entries() {
    let p = Project::fixture();
    p.build();
    let out = p.tmp().join("export-dir");
    p.json(&["export", "--last-build", out.to_str().unwrap(), "--json"]);
    let blob = files_under(&out.join("v1").join("cas"))
        .into_iter()
        .max_by_key(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .expect("blobs in the export");
    std::fs::write(&blob, b"not what it was").unwrap();
    let runner = p.on_new_machine();
    let imported = runner.json(&["import", out.to_str().unwrap(), "--json"]);
    assert_eq!(imported["corrupt"], 1, "{imported}");
    assert!(imported["incomplete"].as_u64().unwrap() >= 1, "{imported}");
    let run = runner.build();
    run.assert_success();
    assert!(
        run.report.units().any(|e| e.outcome == "miss"),
        "{}",
        run.context()
    );
    runner.assert_app(&[]);
}
