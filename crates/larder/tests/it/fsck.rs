//! `larder fsck [--repair]` (issue 12, item 5): corruption injected into a real store
//! (a damaged blob, a record changed under its signature, a manifest that does not
//! parse, a stray file, a stale temporary file) is found, each named; `--repair`
//! removes it, the store is clean after, and the next build is right.

use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::signing::keypair;
use crate::support::Project;

fn fsck(p: &Project, key: &std::path::Path, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["fsck", "--json"];
    all.extend_from_slice(args);
    let run = p
        .larder(&all)
        .env("LARDER_SIGNING_KEY", key)
        .run_unchecked();
    let v: Value = serde_json::from_str(run.stdout.trim())
        .unwrap_or_else(|e| panic!("no JSON ({e}):\n{}", run.context()));
    (run.status.code().unwrap_or(-1), v)
}

fn problems(v: &Value) -> Vec<String> {
    v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{} {}",
                p["namespace"].as_str().unwrap(),
                p["problem"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn fsck_finds_injected_corruption_and_repair_removes_it() {
    let p = Project::fixture();
    let (key, _) = keypair(&p, "team-ci-1");
    p.larder_cargo(&["build"])
        .env("LARDER_SIGNING_KEY", &key)
        .run();
    let (code, clean) = fsck(&p, &key, &[]);
    assert_eq!(code, 0, "{clean}");
    assert!(problems(&clean).is_empty(), "{clean}");
    let records = clean["records"].as_u64().unwrap();
    assert!(records >= 6, "{clean}");
    assert_eq!(clean["trusted"].as_u64().unwrap(), records, "{clean}");

    // A blob damaged in place (the largest: an rlib or a binary).
    let mut blobs = p.store_files("cas");
    blobs.sort_by_key(|b| std::fs::metadata(b).map(|m| m.len()).unwrap_or(0));
    let blob = blobs.last().unwrap().clone();
    let mut bytes = std::fs::read(&blob).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&blob, &bytes).unwrap();
    // Another blob whose content is right but whose check (what restores verify it by)
    // is not.
    let checked = blobs[blobs.len() - 2].clone();
    let file = std::fs::File::open(&checked).unwrap();
    assert!(
        larder_store::check::recorded(&file).is_some(),
        "stored with its check"
    );
    larder_store::check::record(&file, &[7u8; 32]);
    // A record changed under its signature (its messages): one that does not name the
    // damaged blob, so that the record naming it is reported for the blob (a record
    // with a bad signature is reported for that alone).
    let blob_digest = blob.file_stem().unwrap().to_str().unwrap().to_owned();
    let mut ac = p.store_files("ac");
    let names_blob = |f: &std::path::PathBuf| {
        String::from_utf8_lossy(&std::fs::read(f).unwrap()).contains(&blob_digest)
    };
    ac.sort_by_key(|f| names_blob(f));
    assert!(!names_blob(&ac[0]), "every record names the largest blob");
    let mut rec: Value = serde_json::from_slice(&std::fs::read(&ac[0]).unwrap()).unwrap();
    rec["stderr"] = Value::String("warning: planted\n".into());
    std::fs::write(&ac[0], serde_json::to_vec(&rec).unwrap()).unwrap();
    // A manifest that does not parse, a stray file, a temporary file left long ago.
    let manifests = p.store_files("manifest");
    std::fs::write(&manifests[0], b"{ not json").unwrap();
    let stray = ac[1].parent().unwrap().join("leftover.tmp");
    std::fs::write(&stray, b"x").unwrap();
    let tmp = p.larder_dir.join("v1").join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let stale = tmp.join("partial-write");
    std::fs::write(&stale, b"half").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(3 * 24 * 3600))
        .unwrap();

    let (code, found) = fsck(&p, &key, &[]);
    assert_eq!(code, 1, "{found}");
    let list = problems(&found).join("\n");
    let bad_check = format!(
        "cas its check ({}) does not match its content",
        larder_store::check::XATTR
    );
    for want in [
        "cas ",
        &bad_check,
        "ac invalid signature by team-ci-1",
        "manifest does not parse",
        "file not an entry of ac",
    ] {
        assert!(list.contains(want), "{want:?} not found in:\n{list}");
    }
    // The record whose blob is damaged is named too.
    assert!(
        list.contains("is missing") || list.contains("bytes, the record says"),
        "{list}"
    );
    assert_eq!(found["leftovers"], 1, "{found}");
    assert!(
        blob.exists() && stray.exists() && stale.exists(),
        "fsck alone removed something"
    );

    let (code, repaired) = fsck(&p, &key, &["--repair"]);
    assert_eq!(code, 0, "{repaired}");
    assert!(!blob.exists() && !stray.exists() && !stale.exists() && !ac[0].exists());
    assert!(!checked.exists());
    let (code, after) = fsck(&p, &key, &[]);
    assert_eq!(code, 0, "{after}");
    assert!(problems(&after).is_empty(), "{after}");

    // The next build compiles what was removed and is right.
    p.clean();
    let run = p.build();
    assert!(
        run.report.units().any(|e| e.outcome == "miss"),
        "{}",
        run.context()
    );
    p.assert_app(&[]);
    let text = p
        .larder(&["fsck"])
        .env("LARDER_SIGNING_KEY", &key)
        .run()
        .stdout;
    assert!(text.contains("no problems"), "{text}");
}
