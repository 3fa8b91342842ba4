//! `larder explain` and `larder report` on the fixture workspace (issue 10): after
//! changing `RUSTFLAGS`, a feature, a variable read by `option_env!`, a source file and
//! the toolchain, `explain --last` names the changed input of each miss; a remote's
//! entries answer "why did this machine miss what another built"; the report of a build
//! run through a plain `RUSTC_WRAPPER` is there too.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{Project, project, write_file};

/// The explanations of `unit` (kind `kind`) in `explain --json`.
fn explained<'a>(xs: &'a Value, unit: &str, kind: &str) -> &'a Value {
    xs.as_array()
        .unwrap()
        .iter()
        .find(|x| x["unit"] == unit && x["kind"] == kind)
        .unwrap_or_else(|| panic!("no explanation of {unit} ({kind}) in {xs:#}"))
}

/// `(kind, name, old, new)` of every difference from the nearest entry.
fn differences(x: &Value) -> Vec<(String, String, Value, Value)> {
    x["nearest"]["differences"]
        .as_array()
        .unwrap_or_else(|| panic!("no nearest entry: {x:#}"))
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_string(),
                d["name"].as_str().unwrap().to_string(),
                d["old"].clone(),
                d["new"].clone(),
            )
        })
        .collect()
}

fn has(diffs: &[(String, String, Value, Value)], kind: &str, name: &str) -> bool {
    diffs.iter().any(|(k, n, _, _)| k == kind && n == name)
}

/// A toolchain that runs the real rustc but whose standard library directory holds one
/// more file: another compiler identity, as after `rustup update`, without a second
/// toolchain on the machine.
fn another_toolchain(dir: &Path) -> PathBuf {
    let sysroot = std::process::Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .unwrap();
    let sysroot = PathBuf::from(String::from_utf8(sysroot.stdout).unwrap().trim());
    let rustlib = sysroot.join("lib/rustlib");
    for target in std::fs::read_dir(&rustlib).unwrap().flatten() {
        let lib = target.path().join("lib");
        if !lib.is_dir() {
            continue;
        }
        let fake_lib = dir.join("lib/rustlib").join(target.file_name()).join("lib");
        std::fs::create_dir_all(&fake_lib).unwrap();
        for f in std::fs::read_dir(&lib).unwrap().flatten() {
            std::os::unix::fs::symlink(f.path(), fake_lib.join(f.file_name())).unwrap();
        }
        write_file(&fake_lib.join("libpatched-std.rlib"), "a patched std\n");
    }
    let rustc = dir.join("bin/rustc");
    write_file(
        &rustc,
        &format!(
            "#!/bin/sh\nexec {} \"$@\"\n",
            sysroot.join("bin/rustc").display()
        ),
    );
    std::fs::set_permissions(&rustc, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    rustc
}

#[test]
fn explain_names_the_changed_input_of_each_miss() {
    let p = Project::fixture();
    p.build();
    let rebuild = |env: &[(&str, &str)]| {
        p.clean();
        p.build_with(env)
    };

    // RUSTFLAGS: an argument.
    rebuild(&[("RUSTFLAGS", "--cfg larder_test")]);
    let xs = p.json(&["explain", "--last", "--json"]);
    let a = explained(&xs, "a", "lib");
    assert_eq!(a["outcome"], "miss");
    let d = differences(a);
    assert!(has(&d, "argument", "--cfg larder_test"), "{a:#}");
    let text = p.larder(&["explain", "--last", "a"]).run().stdout;
    assert!(
        text.contains("argument   --cfg larder_test: (none) -> present"),
        "{text}"
    );

    // A feature.
    p.clean();
    p.larder_cargo(&["build", "-p", "a", "--features", "extra"])
        .run();
    let xs = p.json(&["explain", "--json", "a"]);
    let d = differences(explained(&xs, "a", "lib"));
    assert!(has(&d, "argument", "--cfg feature=\"extra\""), "{xs:#}");

    // A variable read through `option_env!`: same invocation key, another value.
    rebuild(&[("LARDER_FIXTURE_VALUE", "changed")]);
    let xs = p.json(&["explain", "--json"]);
    let a = explained(&xs, "a", "lib");
    assert!(
        a["reason"].as_str().unwrap().starts_with("inputs-changed"),
        "{a:#}"
    );
    let d = differences(a);
    assert!(
        d.iter().any(|(k, n, old, new)| k == "read-env"
            && n == "LARDER_FIXTURE_VALUE"
            && old == "(unset)"
            && new == "changed"),
        "{a:#}"
    );

    // A source file: the only difference.
    p.edit("a/src/lib.rs", "    1\n", "    2\n");
    p.build();
    let xs = p.json(&["explain", "--json"]);
    let d = differences(explained(&xs, "a", "lib"));
    assert_eq!(d.len(), 1, "{xs:#}");
    assert_eq!(
        (d[0].0.as_str(), d[0].1.as_str()),
        ("source", "a/src/lib.rs")
    );
    // Every miss of the build is explained, the dependents too.
    let missed: Vec<&str> = xs
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["unit"].as_str().unwrap())
        .collect();
    assert!(missed.contains(&"b"), "{xs:#}");

    // The toolchain.
    let rustc = another_toolchain(&p.tmp().join("toolchain"));
    p.clean();
    p.larder_cargo(&["build", "-p", "a"])
        .env("RUSTC", &rustc)
        .run();
    let xs = p.json(&["explain", "--json", "a"]);
    let d = differences(explained(&xs, "a", "lib"));
    assert_eq!(d[0].0, "toolchain", "{xs:#}");

    // Hits have nothing to explain.
    p.clean();
    p.build();
    let text = p.larder(&["explain"]).run().stdout;
    assert_eq!(text.trim(), "the last build had no misses");
}

/// A remote tier's entries answer "why did this machine miss what another built": a
/// second machine with an empty local store and the same shared remote misses after a
/// `RUSTFLAGS` change, and the nearest entry is the other machine's, in the remote.
#[test]
fn explain_finds_the_nearest_entry_in_a_remote() {
    let shared = tempfile::tempdir().unwrap();
    let remote = format!("file://{}", shared.path().display());
    let laptop = Project::fixture();
    laptop.build_with(&[("LARDER_REMOTE", &remote)]);
    let ci = laptop.on_new_machine();
    ci.build_with(&[
        ("LARDER_REMOTE", &remote),
        ("RUSTFLAGS", "--cfg larder_test"),
    ]);
    let run = ci
        .larder(&["explain", "--json", "a"])
        .env("LARDER_REMOTE", &remote)
        .run();
    let xs: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    let a = explained(&xs, "a", "lib");
    let tier = a["nearest"]["tier"].as_str().unwrap();
    assert!(tier.starts_with("file://"), "{a:#}");
    assert!(
        has(&differences(a), "argument", "--cfg larder_test"),
        "{a:#}"
    );
}

/// A build through a plain `RUSTC_WRAPPER` (no `larder cargo`) has its report too:
/// `larder report` shows its units, as text, Markdown and JSON.
#[test]
fn report_shows_a_plain_wrapper_build() {
    let p = project()
        .file(
            "Cargo.toml",
            "[package]\nname = \"solo\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
        )
        .file("src/main.rs", "fn main() {}\n")
        .build();
    p.cargo(&["build"])
        .env("RUSTC_WRAPPER", env!("CARGO_BIN_EXE_larder"))
        .run();
    let text = p.larder(&["report"]).run().stdout;
    assert!(
        text.starts_with("larder: 1 units: 0 hits, 1 misses"),
        "{text}"
    );
    assert!(text.contains("miss           solo: no-entry"), "{text}");
    let md = p.larder(&["report", "--format", "markdown"]).run().stdout;
    assert!(md.contains("| `solo` | miss | no-entry |"), "{md}");
    let j = p.json(&["report", "--format", "json"]);
    assert_eq!(j["summary"]["units"], 1, "{j}");
    let units: Vec<&Value> = j["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| !e["crate"].is_null())
        .collect();
    assert_eq!(units.len(), 1, "{j}");
    assert_eq!(units[0]["crate"], "solo", "{j}");
}

/// A miss that stores nothing (a compile that fails, which is not cached) keeps its key
/// inputs only under `LARDER_DEBUG=1`; then `explain` compares what is known before the
/// compile (arguments, environment, libraries, toolchain) with the nearest entry, and
/// the reason names the file.
#[test]
fn larder_debug_keeps_the_inputs_of_a_miss_that_stored_nothing() {
    let p = Project::fixture();
    p.build();
    p.write("b/src/lib.rs", "this is not rust\n");
    let run = p.larder_cargo(&["build"]).run_unchecked();
    assert!(!run.status.success(), "{}", run.context());
    let xs = p.json(&["explain", "--json", "b"]);
    let b = explained(&xs, "b", "lib");
    assert!(b["nearest"].is_null(), "{b:#}");
    assert!(
        b["note"].as_str().unwrap().contains("LARDER_DEBUG=1"),
        "{b:#}"
    );

    let run = p
        .larder_cargo(&["build"])
        .env("LARDER_DEBUG", "1")
        .env("RUSTFLAGS", "--cfg larder_test")
        .run_unchecked();
    assert!(!run.status.success(), "{}", run.context());
    let xs = p.json(&["explain", "--json", "b"]);
    let b = explained(&xs, "b", "lib");
    let d = differences(b);
    assert!(has(&d, "argument", "--cfg larder_test"), "{b:#}");
    assert!(d.iter().all(|(k, ..)| k != "source"), "{b:#}");
    assert!(
        b["note"].as_str().unwrap().contains("stored nothing"),
        "{b:#}"
    );
}
