//! The commands that look at and manage the local store (issue 10): unknown words are
//! refused, `du` attributes the store to crates, `prune` and `gc` remove exactly what
//! they say (the next build misses only those units), `clear` empties the store.

use std::process::Command;

use serde_json::Value;

use crate::support::{FIXTURE_UNITS, Project};

/// `larder stat` (a typo) and `larder clean` are refused with exit 2 and a hint, never
/// run as a compiler, and not counted in `larder stats`.
#[test]
fn unknown_words_are_refused_not_run() {
    let p = Project::fixture();
    for word in ["stat", "clean"] {
        let run = p.larder(&[word]).run_unchecked();
        assert_eq!(run.status.code(), Some(2), "{}", run.context());
        assert!(
            run.stderr
                .contains(&format!("unrecognized subcommand '{word}'")),
            "{}",
            run.context()
        );
    }
    let run = p.larder(&["stat"]).run_unchecked();
    assert!(
        run.stderr.contains("'stats'"),
        "no hint:\n{}",
        run.context()
    );
    let stats = p.json(&["stats", "--json"]);
    for counter in ["hits", "misses", "not_cacheable", "errors"] {
        assert_eq!(stats[counter], 0, "{counter}: {stats}");
    }
}

/// `du` attributes the store to the fixture's crates and kinds.
#[test]
fn du_attributes_the_store_to_crates() {
    let p = Project::fixture();
    p.build();
    let du = p.json(&["du", "--json"]);
    let names: Vec<&str> = du["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    for c in ["a", "b", "app", "mac", "cdy"] {
        assert!(names.contains(&c), "{c} missing from {du}");
    }
    assert!(du["groups"][0]["bytes"].as_u64().unwrap() > 0, "{du}");
    let by_kind = p.json(&["du", "--by", "kind", "--json"]);
    let kinds: Vec<&str> = by_kind["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    for k in ["lib", "bin", "build-script-run", "proc-macro"] {
        assert!(kinds.contains(&k), "{k} missing from {by_kind}");
    }
    // Build scripts are named by their package.
    assert!(names.contains(&"a (build script)"), "{du}");
    let by_profile = p.json(&["du", "--by", "profile", "--json"]);
    assert_eq!(by_profile["groups"][0]["name"], "debug", "{by_profile}");
    let by_toolchain = p.json(&["du", "--by", "toolchain", "--json"]);
    let release =
        String::from_utf8(Command::new("rustc").arg("-V").output().unwrap().stdout).unwrap();
    assert_eq!(
        by_toolchain["groups"][0]["name"].as_str(),
        Some(release.trim()),
        "{by_toolchain}"
    );
    // Selections that match nothing remove nothing.
    for args in [
        ["prune", "--toolchain", "0.0.1-none", "--json"],
        ["prune", "--older-than", "1day", "--json"],
        ["prune", "--crate", "a@9.9.9", "--json"],
    ] {
        let none = p.json(&args);
        assert_eq!(none["entries"], 0, "{args:?}: {none}");
    }
    let a = p.json(&["prune", "--crate", "a@0.1.0", "--dry-run", "--json"]);
    assert_eq!(a["entries"], 3, "{a}");
}

/// `prune --crate a` removes `a`'s entries (its compile, its build script's compile and
/// run): a
/// dry run first removes nothing; after the prune the next build from scratch misses
/// exactly those two units, and everything else hits. (Without incremental compiles:
/// an incremental compile need not give the bytes of the first, and `app` links `a`.)
#[test]
fn prune_removes_exactly_one_crate() {
    let p = Project::fixture();
    let build = || p.build_with(&[("CARGO_INCREMENTAL", "0")]);
    build();
    let dry = p.json(&["prune", "--crate", "a", "--dry-run", "--json"]);
    // Its compile, its build script's compile and its build script's run.
    assert_eq!(dry["entries"], 3, "{dry}");
    p.clean();
    build().assert_all("hit", FIXTURE_UNITS);

    let pruned = p.json(&["prune", "--crate", "a", "--json"]);
    assert_eq!(pruned, dry, "the prune did other than its dry run said");
    p.clean();
    let run = build();
    run.assert_crate("a", "miss");
    run.assert_crate("build_script_build", "miss");
    let runs: Vec<_> = run.report.runs().filter(|e| e.outcome != "hit").collect();
    assert_eq!(runs.len(), 1, "{runs:?}\n{}", run.context());
    for c in FIXTURE_UNITS
        .iter()
        .filter(|c| !["a", "build_script_build"].contains(c))
    {
        run.assert_crate(c, "hit");
    }
    p.assert_app(&[]);
}

/// `gc --max-age` removes what was not used for that long, and nothing else.
#[test]
fn gc_by_age_removes_only_old_entries() {
    let p = Project::fixture();
    p.build();
    let recent = p.json(&["gc", "--max-age", "1day", "--json"]);
    assert_eq!(recent["files"], 0, "{recent}");
    p.clean();
    p.build().assert_all("hit", FIXTURE_UNITS);

    age_store(&p, "10 days ago");
    let dry = p.json(&["gc", "--max-age", "7days", "--dry-run", "--json"]);
    assert!(dry["files"].as_u64().unwrap() > 0, "{dry}");
    let gone = p.json(&["gc", "--max-age", "7days", "--json"]);
    assert_eq!(gone["files"], dry["files"], "{gone} {dry}");
    p.clean();
    p.build().assert_all("miss", FIXTURE_UNITS);
}

/// Marks everything stored as last used at `when` (`touch -d`).
fn age_store(p: &Project, when: &str) {
    let status = Command::new("find")
        .arg(p.larder_dir.join("v1"))
        .args(["-type", "f", "-exec", "touch", "-d", when, "{}", "+"])
        .status()
        .unwrap();
    assert!(status.success());
}

/// `max_age` in the configuration applies by itself: the next `larder cargo` removes
/// what was not used for that long, says so once, and `stats` counts it.
#[test]
fn max_age_applies_by_itself_and_eviction_is_counted() {
    let p = Project::fixture();
    p.build();
    age_store(&p, "10 days ago");
    p.clean();
    let run = p
        .larder_cargo(&["build"])
        .env("LARDER_MAX_AGE", "7days")
        .run();
    run.assert_all("miss", FIXTURE_UNITS);
    assert_eq!(
        run.stderr.matches("larder: evicted ").count(),
        1,
        "{}",
        run.context()
    );
    let stats = p.stats();
    assert!(stats["evicted_files"].as_u64().unwrap() > 0, "{stats}");
    // Within the hour it is not walked again; what was just stored stays.
    p.clean();
    p.larder_cargo(&["build"])
        .env("LARDER_MAX_AGE", "7days")
        .run()
        .assert_all("hit", FIXTURE_UNITS);
}

/// `clear` empties the store: the next build misses every unit.
#[test]
fn clear_empties_the_store() {
    let p = Project::fixture();
    p.build();
    p.larder(&["clear"]).run();
    p.clean();
    p.build().assert_all("miss", FIXTURE_UNITS);
}

/// `config` shows each setting with where it came from, and a misspelled variable is
/// named, with the likely one, by `config` and as a warning by `larder cargo`.
#[test]
fn config_shows_origins_and_misspelled_variables() {
    let p = Project::fixture();
    let run = p
        .larder(&["config", "--json"])
        .env("LARDER_DIRR", "/elsewhere")
        .env("LARDER_COMPRESSION_LEVEL", "3")
        .run();
    let shown: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    let setting = |v: &str| {
        shown["settings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["variable"] == v)
            .cloned()
            .unwrap()
    };
    assert_eq!(setting("LARDER_DIR")["origin"], "env", "{shown}");
    assert_eq!(setting("LARDER_COMPRESSION_LEVEL")["value"], "3", "{shown}");
    assert_eq!(setting("LARDER_DISABLE")["origin"], "default", "{shown}");
    assert_eq!(shown["unknown"][0]["variable"], "LARDER_DIRR", "{shown}");
    assert_eq!(shown["unknown"][0]["did_you_mean"], "LARDER_DIR", "{shown}");

    let run = p
        .larder_cargo(&["build"])
        .env("LARDER_DIRR", "/elsewhere")
        .run();
    assert!(
        run.stderr
            .contains("unknown variable LARDER_DIRR (did you mean LARDER_DIR?)"),
        "{}",
        run.context()
    );
}

/// `doctor` reaches a read-only REAPI remote by a blob's digest and size (the REAPI
/// addresses blobs by both; by digest alone it said the remote failed).
#[test]
fn doctor_reaches_a_read_only_reapi_remote() {
    let Some(url) = crate::remote::server_url("LARDER_TEST_GRPC") else {
        return;
    };
    let p = Project::fixture();
    let run = p
        .larder(&["doctor"])
        .env("LARDER_REMOTE_READ_ONLY", &url)
        .run_unchecked();
    assert!(
        run.stdout
            .contains(&format!("ok    remote {url} answers (read-only)")),
        "{}",
        run.context()
    );
}

/// `doctor` passes on a good store (exit 0) and fails, with a fix, on a store whose
/// blobs are corrupt and on a store directory that cannot be one (exit 1).
#[test]
fn doctor_passes_on_a_good_store_and_fails_on_a_broken_one() {
    let p = Project::fixture();
    p.build();
    let good = p.larder(&["doctor"]).run_unchecked();
    assert_eq!(good.status.code(), Some(0), "{}", good.context());
    assert!(good.stdout.contains("ok    blobs"), "{}", good.context());

    crate::support::corrupt_blobs(&p);
    let bad = p.larder(&["doctor", "--json"]).run_unchecked();
    assert_eq!(bad.status.code(), Some(1), "{}", bad.context());
    let checks: Value = serde_json::from_str(bad.stdout.trim()).unwrap();
    let blobs = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "blobs")
        .unwrap();
    assert_eq!(blobs["ok"], false, "{checks}");
    assert!(blobs["fix"].is_string(), "{checks}");

    let file = p.tmp().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let unusable = p
        .larder(&["doctor"])
        .env("LARDER_DIR", &file)
        .run_unchecked();
    assert_eq!(unusable.status.code(), Some(1), "{}", unusable.context());
    assert!(
        unusable.stdout.contains("FAIL  store"),
        "{}",
        unusable.context()
    );

    // A read-only tier requires signed records: with no key trusted, doctor says every
    // record there would be refused; with one, which key it accepts.
    let public = format!("file://{}", p.tmp().join("public").display());
    std::fs::create_dir_all(p.tmp().join("public")).unwrap();
    let run = p
        .larder(&["doctor"])
        .env("LARDER_REMOTE_READ_ONLY", &public)
        .run_unchecked();
    assert_eq!(run.status.code(), Some(1), "{}", run.context());
    assert!(run.stdout.contains("FAIL  signatures"), "{}", run.context());
    assert!(
        run.stdout.contains("no key is trusted"),
        "{}",
        run.context()
    );
    let run = p
        .larder(&["doctor"])
        .env("LARDER_REMOTE_READ_ONLY", &public)
        .env(
            "LARDER_TRUSTED_KEYS",
            "team-ci-1:+2edH6r1iCJ5CPBPKB9OxlT9o8VEjmk85LJyXNATYtE=",
        )
        .run_unchecked();
    assert!(
        run.stdout.contains("ok    signatures") && run.stdout.contains("team-ci-1"),
        "{}",
        run.context()
    );
}

/// Bad settings are named, never ignored: an invalid `LARDER_LOG` warns, a
/// `LARDER_REPORT` naming a directory and a `LARDER_*` value that is not UTF-8 are
/// errors that name the variable.
#[test]
fn bad_settings_are_named() {
    let p = Project::fixture();
    let run = p.larder_cargo(&["build"]).env("LARDER_LOG", "=[bad").run();
    assert!(
        run.stderr
            .contains("larder: warning: invalid LARDER_LOG==[bad"),
        "{}",
        run.context()
    );
    let run = p
        .larder_cargo(&["build"])
        .env("LARDER_REPORT", p.tmp())
        .run_unchecked();
    assert_eq!(run.status.code(), Some(2), "{}", run.context());
    assert!(run.stderr.contains("is a directory"), "{}", run.context());
    let not_utf8 = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"/tmp/\xff");
    let run = p
        .larder(&["config"])
        .env("LARDER_EXTRA_ENV", not_utf8)
        .run_unchecked();
    assert_eq!(run.status.code(), Some(2), "{}", run.context());
    assert!(
        run.stderr.contains("LARDER_EXTRA_ENV") && run.stderr.contains("UTF-8"),
        "{}",
        run.context()
    );
}

/// On a terminal `larder cargo` shows a live line of units done, hits and misses, with
/// cargo's own lines above it, and returns cargo's exit code; off a terminal (every
/// other test) it prints plain lines only.
#[test]
fn a_terminal_gets_a_live_progress_line() {
    let p = Project::fixture();
    p.build();
    p.clean();
    let larder = env!("CARGO_BIN_EXE_larder");
    let out = p
        .command(
            "script",
            &["-qec", &format!("{larder} cargo build"), "/dev/null"],
        )
        .output()
        .expect("script(1) from util-linux");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("units done:"), "{text}");
    assert!(text.contains("Compiling"), "{text}");
    assert!(text.contains("larder: 7 units: 7 hits, 0 misses"), "{text}");
    p.write("b/src/lib.rs", "this is not rust\n");
    let out = p
        .command(
            "script",
            &["-qec", &format!("{larder} cargo build"), "/dev/null"],
        )
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(101),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
