//! `larder verify` (issue 12, item 4): the units a build restored are compiled again
//! locally and compared. On an honest store every rustc unit is reproducible; a local
//! entry poisoned to restore an older binary of `app` is found to differ, quarantined,
//! and the next build compiles `app` and is right.

use serde_json::Value;

use crate::support::{FIXTURE_UNITS, Project, app_line};

fn verify(p: &Project) -> (i32, Value) {
    let run = p.larder(&["verify", "--json"]).run_unchecked();
    let v: Value = serde_json::from_str(run.stdout.trim())
        .unwrap_or_else(|e| panic!("no JSON ({e}):\n{}", run.context()));
    (run.status.code().unwrap_or(-1), v)
}

fn app_key(run: &crate::support::Run) -> String {
    run.report
        .units()
        .find(|e| e.krate.as_deref() == Some("app"))
        .and_then(|e| e.key())
        .expect("app's key")
}

#[test]
fn verify_finds_every_honest_unit_reproducible_and_quarantines_a_poisoned_one() {
    let p = Project::fixture();
    let v1 = p.build();
    v1.assert_all("miss", FIXTURE_UNITS);
    let v1_key = app_key(&v1);
    p.clean();
    p.build().assert_all("hit", FIXTURE_UNITS);
    let (code, honest) = verify(&p);
    assert_eq!(code, 0, "{honest}");
    // Every rustc unit is compiled again (the build-script run is not): reproducible,
    // but for the rlibs of incremental compiles (the workspace's libraries in the dev
    // profile), whose archive names their objects per session.
    let rustc_units = FIXTURE_UNITS.len() as u64;
    assert_eq!(honest["checked"], rustc_units, "{honest}");
    assert_eq!(honest["differs"], 0, "{honest}");
    for u in honest["units"].as_array().unwrap() {
        match &u["finding"] {
            Value::String(s) if s == "reproducible" => {}
            Value::Object(o) if o.contains_key("skipped") => {
                assert_eq!(u["crate_types"][0], "build-script-run", "{u}");
            }
            Value::Object(o) if o.contains_key("not-reproducible") => {
                let why = o["not-reproducible"].as_str().unwrap();
                assert!(why.contains(".rlib") && why.contains("incremental"), "{u}");
            }
            other => panic!("{other}: {u}"),
        }
    }

    // In another checkout the restored outputs embed the first checkout's paths: they
    // are reported as made elsewhere, never quarantined.
    let moved = p.relocated_copy();
    moved.build().assert_all("hit", FIXTURE_UNITS);
    let (code, there) = verify(&moved);
    assert_eq!(code, 0, "{there}");
    assert_eq!(there["differs"], 0, "{there}");
    assert!(there["elsewhere"].as_u64().unwrap() > 0, "{there}");
    assert!(
        there["units"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["quarantined"] == false),
        "{there}"
    );
    assert!(!p.larder_dir.join("v1").join("quarantine").exists());

    // LARDER_VERIFY=100 does the same after a `larder cargo` build, and counts.
    p.clean();
    let run = p.larder_cargo(&["build"]).env("LARDER_VERIFY", "100").run();
    run.assert_all("hit", FIXTURE_UNITS);
    let line = format!(
        "larder: verify: verified {rustc_units} of {} hits",
        rustc_units + 1
    );
    assert!(run.stderr.contains(&line), "{line:?}:\n{}", run.context());
    assert_eq!(p.stats()["verified"], 3 * rustc_units, "{}", p.stats());

    // A new version of app, then its entry poisoned to restore the old binary.
    p.edit(
        "app/src/main.rs",
        "fn main() {",
        "fn main() {\n    println!(\"v2\");",
    );
    let v2 = p.build();
    v2.assert_crate("app", "miss");
    let v2_key = app_key(&v2);
    let path_of = |key: &str| p.larder_dir.join("v1").join("ac").join(&key[..2]).join(key);
    let old: Value = serde_json::from_slice(&std::fs::read(path_of(&v1_key)).unwrap()).unwrap();
    let mut new: Value = serde_json::from_slice(&std::fs::read(path_of(&v2_key)).unwrap()).unwrap();
    let bin = |r: &Value| {
        r["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .position(|o| o["executable"] == true)
            .unwrap()
    };
    let (i, j) = (bin(&new), bin(&old));
    new["outputs"][i]["digest"] = old["outputs"][j]["digest"].clone();
    new["outputs"][i]["size"] = old["outputs"][j]["size"].clone();
    let poisoned = serde_json::to_vec(&new).unwrap();
    std::fs::write(path_of(&v2_key), &poisoned).unwrap();
    p.clean();
    p.build().assert_all("hit", FIXTURE_UNITS);
    assert_eq!(
        p.run_bin("debug", "app"),
        app_line(&[]),
        "the poison did not take"
    );

    let (code, found) = verify(&p);
    assert_eq!(code, 1, "{found}");
    assert_eq!(p.stats()["verify_differs"], 1, "{}", p.stats());
    assert_eq!(found["differs"], 1, "{found}");
    let unit = found["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["crate"] == "app")
        .unwrap();
    assert_eq!(unit["quarantined"], true, "{unit}");
    assert!(
        unit["finding"]["differs"]
            .as_str()
            .unwrap()
            .contains("first difference"),
        "{unit}"
    );
    let text = p.larder(&["verify"]).run_unchecked().stdout;
    assert!(text.contains("verified"), "{text}");

    // Quarantined: removed here, and never restored again, even if a tier that cannot
    // delete (REAPI) serves it again: the next build compiles app, and it is v2.
    assert!(
        !path_of(&v2_key).exists(),
        "the poisoned record was not removed"
    );
    std::fs::write(path_of(&v2_key), &poisoned).unwrap();
    p.clean();
    let run = p.build();
    let e = run
        .report
        .units()
        .find(|e| e.krate.as_deref() == Some("app"))
        .unwrap();
    assert_eq!(e.outcome, "miss", "{}", e.line);
    assert_eq!(e.reason.as_deref(), Some("quarantined"), "{}", e.line);
    assert!(p.run_bin("debug", "app").starts_with("v2"));
    // The record this machine compiled and stored under the same key is its own: a hit.
    p.clean();
    p.build().assert_all("hit", FIXTURE_UNITS);
    assert!(p.run_bin("debug", "app").starts_with("v2"));
}
