//! `LARDER_TRACE`: the timeline of a `larder cargo` build.

use crate::support::Project;

/// The trace's events, each `(category, name)`, and the message `larder cargo` printed.
fn traced(p: &Project, file: &std::path::Path) -> (Vec<(String, String)>, String) {
    let run = p.build_with(&[("LARDER_TRACE", file.to_str().unwrap())]);
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let events = doc["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["ph"], "X", "{e}");
            assert!(
                e["ts"].as_u64().unwrap() > 0 && e["pid"].as_u64().is_some(),
                "{e}"
            );
            (
                e["cat"].as_str().unwrap().to_string(),
                e["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (events, run.stderr)
}

/// A cold build's trace has every unit as a miss with a compile, the background stores,
/// and `larder cargo`'s own spans; a warm one has every unit as a hit with a restore.
/// Each build's trace replaces the last.
#[test]
fn a_build_writes_every_process_in_its_phases() {
    let p = Project::fixture();
    let file = p.path("timeline.json");
    let (events, stderr) = traced(&p, &file);
    let has = |events: &[(String, String)], cat: &str, name: &str| {
        events.iter().any(|(c, n)| c == cat && n == name)
    };
    for unit in ["a", "b", "mac", "app", "cdy"] {
        assert!(
            has(&events, "invocation", &format!("{unit} (miss)")),
            "{unit}: {events:?}"
        );
    }
    assert!(has(&events, "invocation", "store-job"), "{events:?}");
    for phase in ["start", "key", "lookup", "compile", "collect", "store"] {
        assert!(has(&events, "phase", phase), "{phase}: {events:?}");
    }
    assert!(has(&events, "build", "cargo"), "{events:?}");
    assert!(
        stderr.contains("larder: trace of") && stderr.contains("compile "),
        "{stderr}"
    );

    p.clean();
    let (events, _) = traced(&p, &file);
    for unit in ["a", "b", "mac", "app", "cdy"] {
        assert!(
            has(&events, "invocation", &format!("{unit} (hit)")),
            "{unit}: {events:?}"
        );
        assert!(
            !has(&events, "invocation", &format!("{unit} (miss)")),
            "{events:?}"
        );
    }
    assert!(has(&events, "phase", "restore"), "{events:?}");
    assert!(!has(&events, "phase", "compile"), "{events:?}");
}
