//! Integration tests: real cargo and rustc building a fixture workspace through
//! `larder cargo ...`, each test with its own workspace, store and report files.
//!
//! The fixture (see `crate::support::fixture_files`) has a library with a build script,
//! `include_str!`, `option_env!`, a feature and a cfg switch (`a`); a library depending
//! on it that emits a warning (`b`); a proc macro (`mac`); a binary printing a line
//! built from all of them (`app`); and a cdylib (`cdy`). Tests count outcomes per crate
//! from the `LARDER_REPORT` lines and run `app` to check what was built.

use std::fs;

use crate::support::{
    FIXTURE_UNITS, FIXTURE_WARNING, Project, compiler_outputs, corrupt_blobs, files_under, project,
};

/// The library units of the fixture that do not depend on `a` (they must hit when only
/// `a`'s inputs change).
const INDEPENDENT_OF_A: &[&str] = &["build_script_build", "cdy", "mac"];

// --- 1. cold build and restore -------------------------------------------------------

/// A cold build misses every unit; after `cargo clean` every unit hits, and the restored
/// outputs are byte for byte the cold build's.
#[test]
fn cold_build_misses_and_clean_rebuild_hits_with_identical_outputs() {
    let p = project().fixture().fresh_store().build();
    let cold = p.build();
    cold.assert_all("miss", FIXTURE_UNITS);
    cold.assert_units(FIXTURE_UNITS);
    assert_eq!(
        cold.report.units().count(),
        FIXTURE_UNITS.len(),
        "one report line per unit expected\n{}",
        cold.context()
    );
    assert!(
        cold.stderr
            .lines()
            .any(|l| l.starts_with("larder: ") && l.contains("hit")),
        "no `larder: ` summary line on stderr\n{}",
        cold.context()
    );
    p.assert_app(&[]);
    let profile = p.target().join("debug");
    let before = compiler_outputs(&profile);
    for name in ["app", "libcdy.so"] {
        assert!(
            before.keys().any(|k| k.to_str() == Some(name)),
            "cold build produced no {name}; outputs: {:?}",
            before.keys().collect::<Vec<_>>()
        );
    }

    p.clean();
    let warm = p.build();
    warm.assert_all("hit", FIXTURE_UNITS);
    warm.assert_units(FIXTURE_UNITS);
    assert_eq!(warm.report.count("miss"), 0);
    let restored: u64 = warm.report.units().map(|e| e.bytes_restored).sum();
    assert!(
        restored > 0,
        "hits restored no bytes (`bytes_restored`)\n{}",
        warm.context()
    );
    p.assert_app(&[]);

    // A restore must give back exactly the bytes the cold build stored. (Not the bytes a
    // second plain compile would give: rustc is deterministic for the bin, the cdylib,
    // the proc macro and every .rmeta, but with incremental compilation, on in the dev
    // profile, the object member inside each workspace rlib gets a per-session suffix
    // in its name, e.g. `a-<hash>.<cgu>.10opr9p.rcgu.o` vs `...0ing0sb.rcgu.o`, so two
    // cold builds give different liba/libb .rlib bytes. Checked with plain cargo.)
    let after = compiler_outputs(&profile);
    let mut problems = Vec::new();
    for (path, bytes) in &before {
        match after.get(path) {
            None => problems.push(format!("missing after restore: {}", path.display())),
            Some(b) if b != bytes => problems.push(format!(
                "differs after restore: {} ({} vs {} bytes)",
                path.display(),
                bytes.len(),
                b.len()
            )),
            Some(_) => {}
        }
    }
    for path in after.keys().filter(|k| !before.contains_key(*k)) {
        problems.push(format!("only after restore: {}", path.display()));
    }
    assert!(
        problems.is_empty(),
        "restored outputs are not the cold build's:\n{}\n{}",
        problems.join("\n"),
        warm.context()
    );
}

// --- 2. relocation --------------------------------------------------------------------

/// The same workspace copied elsewhere, with another target directory and another
/// `CARGO_HOME`, hits every unit from the same store; the restored dep-info names the new
/// checkout (cargo then tracks edits there).
#[test]
fn relocated_checkout_hits_and_tracks_its_own_files() {
    let p = Project::fixture();
    p.build().assert_all("miss", FIXTURE_UNITS);
    p.assert_app(&[]);

    let q = p.relocated_copy();
    let run = q.build();
    run.assert_all("hit", FIXTURE_UNITS);
    run.assert_units(FIXTURE_UNITS);
    q.assert_app(&[]);

    let old_root = p.root.to_str().unwrap();
    let new_target = q.target();
    let dep_infos: Vec<_> = files_under(&new_target.join("debug").join("deps"))
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "d"))
        .collect();
    assert!(
        !dep_infos.is_empty(),
        "no dep-info files restored\n{}",
        run.context()
    );
    for d in &dep_infos {
        let text = fs::read_to_string(d).unwrap();
        assert!(
            !text.contains(old_root),
            "{} names the original checkout {old_root}:\n{text}",
            d.display()
        );
        assert!(
            text.contains(new_target.to_str().unwrap()),
            "{} does not name this target directory {}:\n{text}",
            d.display(),
            new_target.display()
        );
    }

    // A file only dep-info knows about (include_str!) is tracked in the copy.
    q.write("a/src/greeting.txt", "moved\n");
    let run = q.build();
    run.assert_crate("a", "miss");
    run.assert_crate("app", "miss");
    q.assert_app(&[("greeting", "moved")]);
}

/// Paths that rustc writes into code are inputs (issue 9, item 1): a crate that bakes
/// `env!("CARGO_MANIFEST_DIR")` and a `cargo:rustc-env` path under `OUT_DIR` into
/// strings it opens at run time, and an integration test that runs
/// `env!("CARGO_BIN_EXE_tool")`, miss in another checkout, which then runs its own binary
/// reading its own files (the first checkout is gone by then); in the same place they hit.
#[test]
fn baked_paths_miss_in_another_checkout() {
    let p = project()
        .file(
            "Cargo.toml",
            "[package]\nname = \"tool\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
        )
        .file(
            "build.rs",
            "fn main() {\n    let out = std::env::var(\"OUT_DIR\").unwrap();\n    std::fs::write(format!(\"{out}/data.txt\"), \"data\\n\").unwrap();\n    println!(\"cargo:rustc-env=DATA_FILE={out}/data.txt\");\n}\n",
        )
        .file(
            "src/lib.rs",
            "pub fn fixture() -> &'static str {\n    concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/tests/f.txt\")\n}\npub fn data() -> &'static str {\n    env!(\"DATA_FILE\")\n}\n",
        )
        .file(
            "src/main.rs",
            "fn main() {\n    print!(\"{}\", std::fs::read_to_string(tool::fixture()).unwrap());\n    print!(\"{}\", std::fs::read_to_string(tool::data()).unwrap());\n}\n",
        )
        .file("tests/f.txt", "checkout A\n")
        .file(
            "tests/run.rs",
            "#[test]\nfn runs_the_tool() {\n    let out = std::process::Command::new(env!(\"CARGO_BIN_EXE_tool\")).output().unwrap();\n    let want = std::fs::read_to_string(concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/tests/f.txt\")).unwrap() + \"data\\n\";\n    assert_eq!(String::from_utf8(out.stdout).unwrap(), want);\n    println!(\"ran {}\", env!(\"CARGO_BIN_EXE_tool\"));\n}\n",
        )
        .build();
    p.larder_cargo(&["test", "--no-run"]).run();

    let q = p.relocated_copy();
    q.write("tests/f.txt", "checkout B\n");
    let run = q.larder_cargo(&["test", "--no-run"]).run();
    // The library bakes its paths, and everything else links it or reads
    // `CARGO_BIN_EXE_tool`: every unit misses but the build script's own compile.
    let hits: Vec<_> = run
        .report
        .units()
        .filter(|e| e.outcome == "hit" && e.krate.as_deref() != Some("build_script_build"))
        .collect();
    assert!(hits.is_empty(), "{hits:?}\n{}", run.context());
    fs::remove_dir_all(&p.root).unwrap(); // the store stays
    // B's test runs B's binary, which reads B's fixture.
    let test = q
        .larder_cargo(&["test", "--test", "run", "--", "--nocapture"])
        .run();
    let out = &test.stdout;
    let b_bin = q.target().join("debug").join("tool");
    assert!(
        out.contains(&format!("ran {}", b_bin.display())),
        "the test ran another checkout's binary:\n{out}\n{}",
        test.context()
    );
    // Units that read a path through a variable still hit where the path is the same.
    fs::remove_dir_all(q.target()).unwrap();
    let rebuilt = q.larder_cargo(&["test", "--no-run"]).run();
    rebuilt.assert_all("hit", &["tool", "run"]);
}

/// Cargo's `build.build-dir` (issue 9, classes): intermediate artifacts in a directory of
/// their own (in the workspace, or under `CARGO_HOME` by a hash of the workspace path),
/// final ones in the target directory. The fixture builds, is restored once both are
/// removed, and hits in another checkout, with the same binary.
#[test]
fn build_dir_layout_hits_and_relocates() {
    for build_dir in [
        "{workspace-root}/build-dir",
        "{cargo-cache-home}/build/{workspace-path-hash}",
    ] {
        let mut p = project()
            .fixture()
            .file(
                ".cargo/config.toml",
                format!("[build]\nbuild-dir = {build_dir:?}\n"),
            )
            .build();
        let home = p.tmp().join("cargo-home");
        fs::create_dir_all(&home).unwrap();
        p.cargo_home = Some(home.clone());
        p.build().assert_all("miss", FIXTURE_UNITS);
        p.assert_app(&[]);
        for dir in [p.target(), p.path("build-dir"), home.join("build")] {
            let _ = fs::remove_dir_all(dir);
        }
        let run = p.build();
        run.assert_all("hit", FIXTURE_UNITS);
        p.assert_app(&[]);

        let q = p.relocated_copy();
        let _ = fs::remove_dir_all(q.path("build-dir")); // a checkout has none
        let run = q.build();
        run.assert_all("hit", FIXTURE_UNITS);
        q.assert_app(&[]);
    }
}

// --- 3. edits -------------------------------------------------------------------------

/// Editing the binary's source recompiles only `app`, a miss, and the binary shows it.
#[test]
fn edit_in_app_misses_only_app() {
    let p = Project::fixture();
    p.build();
    p.edit("app/src/main.rs", "app=v1", "app=v2");
    let run = p.build();
    run.assert_units(&["app"]);
    run.assert_crate("app", "miss");
    p.assert_app(&[("app", "v2")]);
}

/// Editing `a` (two levels below `app`) misses `a`, `b` and `app`; the binary shows the
/// edit; reverting the edit hits all three again from the kept entries.
#[test]
fn edit_in_a_misses_dependents_and_revert_hits() {
    let p = Project::fixture();
    p.build();
    p.edit("a/src/lib.rs", "    1\n}", "    2\n}");
    let run = p.build();
    run.assert_units(&["a", "app", "b"]);
    run.assert_all("miss", &["a", "app", "b"]);
    p.assert_app(&[("sum", "109")]);

    p.edit("a/src/lib.rs", "    2\n}", "    1\n}");
    let run = p.build();
    run.assert_units(&["a", "app", "b"]);
    run.assert_all("hit", &["a", "app", "b"]);
    p.assert_app(&[]);
}

/// A library's digest comes from the target directory's list of known digests
/// (`.larder-digests`, written by the build that compiled it) only while the file is the
/// one listed: `a`'s rlib written in place behind cargo's back, size and modification
/// time put back, is read again, so `app` (whose link key hashes every library) is not
/// served the entry keyed by the old rlib.
#[test]
fn a_library_written_in_place_is_hashed_again() {
    use std::io::Write;
    let p = Project::fixture();
    p.build();
    let list = fs::read_to_string(p.target().join(".larder-digests"))
        .expect("the build lists its outputs' digests");
    let rlib = fs::read_dir(p.target().join("debug/deps"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|f| {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with("liba-") && name.ends_with(".rlib")
        })
        .expect("liba's rlib");
    assert!(list.contains(rlib.to_str().unwrap()), "{list}");
    let mtime = fs::metadata(&rlib).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    let mut bytes = fs::read(&rlib).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    let mut f = fs::OpenOptions::new().write(true).open(&rlib).unwrap();
    f.write_all(&bytes).unwrap();
    f.set_modified(mtime).unwrap();
    drop(f);
    assert_eq!(fs::metadata(&rlib).unwrap().modified().unwrap(), mtime);
    // cargo sees `a` as it was; a newer `app` source (same text) makes it run `app`.
    let main = p.path("app/src/main.rs");
    let text = fs::read_to_string(&main).unwrap();
    fs::write(&main, text).unwrap();
    let run = p.larder_cargo(&["build"]).run_unchecked();
    let outcomes = run.report.outcomes("app");
    assert!(!outcomes.is_empty(), "cargo ran app\n{}", run.context());
    assert!(
        !outcomes.iter().any(|o| o == "hit"),
        "app must not be served the old rlib's entry: {outcomes:?}\n{}",
        run.context()
    );
}

/// A file read through `include_str!` is an input: changing it misses `a` and its
/// dependents.
#[test]
fn included_file_change_misses() {
    let p = Project::fixture();
    p.build();
    p.write("a/src/greeting.txt", "bonjour\n");
    let run = p.build();
    run.assert_all("miss", &["a", "app", "b"]);
    p.assert_app(&[("greeting", "bonjour")]);
}

/// A file the build script generates in `OUT_DIR` is an input: the build script's
/// compile hits, but `a`, which includes the new `gen.rs`, misses.
#[test]
fn generated_file_change_misses_a() {
    let p = Project::fixture();
    p.build();
    p.clean();
    let run = p
        .larder_cargo(&["build"])
        .env("LARDER_FIXTURE_GEN", "9")
        .run();
    run.assert_crate("a", "miss");
    run.assert_crate("b", "miss");
    run.assert_crate("app", "miss");
    for c in INDEPENDENT_OF_A {
        run.assert_crate(c, "hit");
    }
    p.assert_app(&[("generated", "9"), ("sum", "110")]);
}

// --- 4. settings that change the key --------------------------------------------------

/// A variable read with `option_env!` misses `a` (and what links it) when it changes;
/// the old setting hits again afterwards.
#[test]
fn env_var_read_by_option_env_misses_and_revert_hits() {
    let p = Project::fixture();
    p.build().assert_all("miss", FIXTURE_UNITS);
    p.clean();
    let run = p
        .larder_cargo(&["build"])
        .env("LARDER_FIXTURE_VALUE", "blue")
        .run();
    run.assert_crate("a", "miss");
    run.assert_crate("app", "miss");
    for c in INDEPENDENT_OF_A {
        run.assert_crate(c, "hit");
    }
    p.assert_app(&[("value", "blue")]);

    p.clean();
    p.build().assert_all("hit", FIXTURE_UNITS);
    p.assert_app(&[]);

    p.clean();
    let run = p
        .larder_cargo(&["build"])
        .env("LARDER_FIXTURE_VALUE", "blue")
        .run();
    run.assert_all("hit", FIXTURE_UNITS);
    p.assert_app(&[("value", "blue")]);
}

/// `--features a/extra` misses the units it reaches; without it everything hits again.
#[test]
fn feature_toggle_misses_and_revert_hits() {
    let p = Project::fixture();
    p.build().assert_all("miss", FIXTURE_UNITS);
    p.clean();
    let run = p.larder_cargo(&["build", "--features", "a/extra"]).run();
    run.assert_crate("a", "miss");
    run.assert_crate("b", "miss");
    run.assert_crate("app", "miss");
    run.assert_crate("mac", "hit");
    run.assert_crate("cdy", "hit");
    p.assert_app(&[("flavor", "extra")]);

    p.clean();
    p.build().assert_all("hit", FIXTURE_UNITS);
    p.assert_app(&[]);

    p.clean();
    p.larder_cargo(&["build", "--features", "a/extra"])
        .run()
        .assert_all("hit", FIXTURE_UNITS);
    p.assert_app(&[("flavor", "extra")]);
}

/// The release profile misses what the dev profile stored; both profiles hit afterwards.
#[test]
fn release_profile_misses_and_both_profiles_hit_afterwards() {
    let p = Project::fixture();
    p.build().assert_all("miss", FIXTURE_UNITS);
    let run = p.larder_cargo(&["build", "--release"]).run();
    for c in ["a", "b", "app", "cdy"] {
        run.assert_crate(c, "miss");
    }
    p.assert_app_in("release", &[]);

    p.clean();
    p.build().assert_all("hit", FIXTURE_UNITS);
    p.assert_app(&[]);
    p.larder_cargo(&["build", "--release"])
        .run()
        .assert_all("hit", FIXTURE_UNITS);
    p.assert_app_in("release", &[]);
}

/// `RUSTFLAGS` reaches every unit: all miss; without it everything hits again.
#[test]
fn rustflags_miss_and_revert_hits() {
    let p = Project::fixture();
    p.build().assert_all("miss", FIXTURE_UNITS);
    p.clean();
    let run = p
        .larder_cargo(&["build"])
        .env("RUSTFLAGS", "--cfg larder_test")
        .run();
    run.assert_all("miss", FIXTURE_UNITS);
    p.assert_app(&[("cfg", "on")]);

    p.clean();
    p.build().assert_all("hit", FIXTURE_UNITS);
    p.assert_app(&[]);

    p.clean();
    p.larder_cargo(&["build"])
        .env("RUSTFLAGS", "--cfg larder_test")
        .run()
        .assert_all("hit", FIXTURE_UNITS);
    p.assert_app(&[("cfg", "on")]);
}

/// `-C target-cpu=native` is keyed by the CPU it resolves to (`host::native_cpu`, whose
/// unit tests show another CPU is another key): on the same machine such a build hits.
#[test]
fn native_cpu_builds_hit_on_the_same_machine() {
    let p = Project::fixture();
    let native = [("RUSTFLAGS", "-C target-cpu=native")];
    p.build_with(&native).assert_all("miss", FIXTURE_UNITS);
    p.clean();
    p.build_with(&native).assert_all("hit", FIXTURE_UNITS);
    p.assert_app(&[]);
}

// --- 5. damaged and unusable stores ---------------------------------------------------

/// Corrupt blobs (garbage or truncated) are never restored: the build compiles instead,
/// reports misses, and the binary is right.
#[test]
fn corrupt_blobs_are_misses_not_hits() {
    let p = Project::fixture();
    p.build().assert_all("miss", FIXTURE_UNITS);
    let damaged = corrupt_blobs(&p);
    assert!(damaged > 0, "the cold build stored no blobs under v1/cas");
    // Damaged in place, the uncompressed blobs keep the check the store recorded: what
    // the restores verify them by (`larder_store::check`).
    let checked = p
        .store_files("cas")
        .iter()
        .filter(|b| larder_store::check::recorded(&fs::File::open(b).unwrap()).is_some())
        .count();
    assert_eq!(checked, damaged, "every blob keeps its check");
    p.clean();
    let run = p.build();
    run.assert_no_hits();
    for c in ["a", "b", "app"] {
        run.assert_crate(c, "miss");
    }
    p.assert_app(&[]);
}

/// After a build that found corrupt blobs, the store holds good blobs again and the next
/// clean build hits.
#[test]
fn corrupt_blobs_are_replaced_by_the_next_build() {
    let p = Project::fixture();
    p.build();
    corrupt_blobs(&p);
    p.clean();
    p.build();
    p.clean();
    let run = p.build();
    run.assert_all("hit", FIXTURE_UNITS);
    p.assert_app(&[]);
}

/// A store directory that cannot be created (its parent is a regular file, which stops
/// root as well) does not break the build: it succeeds with a `larder: warning`.
#[test]
fn unusable_store_dir_warns_and_builds() {
    let mut p = Project::fixture();
    let blocker = p.tmp().join("blocker");
    fs::write(&blocker, "a file, not a directory").unwrap();
    p.larder_dir = blocker.join("store");
    let run = p.build();
    assert!(
        run.stderr.contains("larder: warning"),
        "no `larder: warning` on stderr\n{}",
        run.context()
    );
    run.assert_no_hits();
    p.assert_app(&[]);

    p.clean();
    let run = p.build();
    run.assert_no_hits();
    p.assert_app(&[]);
}

/// A store directory that does not exist yet is created, filled and used.
#[test]
fn missing_store_dir_is_created() {
    let mut p = project().fixture().fresh_store().build();
    p.larder_dir = p.tmp().join("not").join("yet").join("store");
    p.build().assert_all("miss", FIXTURE_UNITS);
    assert!(
        !p.store_files("cas").is_empty(),
        "nothing stored under {}",
        p.larder_dir.display()
    );
    p.clean();
    p.build().assert_all("hit", FIXTURE_UNITS);
    p.assert_app(&[]);
}

// --- 6. warnings ----------------------------------------------------------------------

/// A hit shows the unit's warnings as the compile did: same text, same count, same
/// location.
#[test]
fn warnings_are_replayed_on_hit() {
    let p = Project::fixture();
    let cold = p.build();
    let cold_count = cold.stderr.matches(FIXTURE_WARNING).count();
    assert!(
        cold_count > 0,
        "the fixture's warning is missing from the cold build\n{}",
        cold.context()
    );
    p.clean();
    let warm = p.build();
    warm.assert_crate("b", "hit");
    assert_eq!(
        warm.stderr.matches(FIXTURE_WARNING).count(),
        cold_count,
        "the hit build does not show b's warning as the cold build did\n{}",
        warm.context()
    );
    assert!(
        warm.stderr.contains("b/src/lib.rs:2:9"),
        "the replayed warning lost its location\n{}",
        warm.context()
    );
}

// --- 7. incremental -------------------------------------------------------------------

/// Dev builds are incremental. Restored outputs (no incremental state) followed by an
/// edit give the edited binary.
#[test]
fn edit_after_restore_without_incremental_dir() {
    let p = Project::fixture();
    p.build();
    p.clean();
    p.build().assert_all("hit", FIXTURE_UNITS);
    p.edit("app/src/main.rs", "app=v1", "app=v2");
    let run = p.build();
    run.assert_crate("app", "miss");
    p.assert_app(&[("app", "v2")]);
}

/// Restored outputs next to incremental state from other compiles: outputs removed but
/// `target/debug/incremental` kept, then edits and a revert (a hit while the incremental
/// state is from the edit), then another edit. The binary is right at each step.
#[test]
fn restores_next_to_stale_incremental_state() {
    let p = Project::fixture();
    p.build();
    let incremental = p.target().join("debug").join("incremental");
    assert!(
        !files_under(&incremental).is_empty(),
        "the dev build left no incremental state"
    );
    fs::remove_dir_all(p.target().join("debug").join("deps")).unwrap();
    let run = p.build();
    run.assert_all("hit", &["a", "app", "b", "cdy", "mac"]);
    p.assert_app(&[]);

    p.edit("app/src/main.rs", "app=v1", "app=v2");
    p.build().assert_crate("app", "miss");
    p.assert_app(&[("app", "v2")]);

    p.edit("app/src/main.rs", "app=v2", "app=v1");
    p.build().assert_crate("app", "hit");
    p.assert_app(&[]);

    p.edit("app/src/main.rs", "app=v1", "app=v3");
    p.build().assert_crate("app", "miss");
    p.assert_app(&[("app", "v3")]);
}

// --- 8. disabled ----------------------------------------------------------------------

/// `LARDER_DISABLE=1` passes everything to rustc and stores nothing.
#[test]
fn disabled_builds_and_stores_nothing() {
    let p = Project::fixture();
    let run = p.larder_cargo(&["build"]).env("LARDER_DISABLE", "1").run();
    p.assert_app(&[]);
    run.assert_all("not_cacheable", FIXTURE_UNITS);
    for e in run.report.units() {
        assert!(
            e.outcome == "not_cacheable" && e.reason.as_deref() == Some("disabled"),
            "a disabled build reported {}\n{}",
            e.line,
            run.context()
        );
    }
    for ns in ["cas", "ac", "manifest", "link"] {
        let files = p.store_files(ns);
        assert!(
            files.is_empty(),
            "disabled build wrote {ns} entries: {files:?}"
        );
    }
    p.clean();
    p.build().assert_all("miss", FIXTURE_UNITS);
}

// --- 9. stats -------------------------------------------------------------------------

/// `larder stats --json` counts what the reports said; `--zero` resets the counters.
#[test]
fn stats_count_outcomes_and_zero_resets() {
    let p = Project::fixture();
    let cold = p.build();
    p.clean();
    let warm = p.build();
    let hits = cold.report.count_all("hit") + warm.report.count_all("hit");
    let misses = cold.report.count_all("miss") + warm.report.count_all("miss");

    let stats = p.stats();
    for field in ["hits", "misses", "not_cacheable", "errors"] {
        assert!(
            stats.get(field).is_some_and(|v| v.is_u64()),
            "stats field `{field}` is not an unsigned integer: {stats}"
        );
    }
    assert_eq!(stats["hits"].as_u64(), Some(hits as u64), "hits in {stats}");
    assert_eq!(
        stats["misses"].as_u64(),
        Some(misses as u64),
        "misses in {stats}"
    );

    p.larder(&["stats", "--zero"]).run();
    let stats = p.stats();
    for field in ["hits", "misses", "not_cacheable", "errors"] {
        assert_eq!(
            stats[field].as_u64(),
            Some(0),
            "`{field}` after --zero: {stats}"
        );
    }
}

// --- 10. other cargo commands ---------------------------------------------------------

/// `cargo check` (metadata only): cold all misses, after clean all hits.
#[test]
fn cargo_check_cold_misses_then_hits() {
    let p = Project::fixture();
    p.larder_cargo(&["check"])
        .run()
        .assert_all("miss", FIXTURE_UNITS);
    p.clean();
    p.larder_cargo(&["check"])
        .run()
        .assert_all("hit", FIXTURE_UNITS);
}

/// `cargo test --no-run` (test harnesses): cold all misses, after clean all hits.
#[test]
fn cargo_test_no_run_cold_misses_then_hits() {
    let p = Project::fixture();
    let cold = p.larder_cargo(&["test", "--no-run"]).run();
    cold.assert_all("miss", FIXTURE_UNITS);
    // The libraries are compiled twice: as dependencies and as test harnesses.
    for c in ["a", "b"] {
        assert_eq!(
            cold.report.outcomes(c).len(),
            2,
            "`{c}`: expected a library and a test harness compile\n{}",
            cold.context()
        );
    }
    p.clean();
    let warm = p.larder_cargo(&["test", "--no-run"]).run();
    warm.assert_all("hit", FIXTURE_UNITS);
    assert_eq!(
        warm.report.units().count(),
        cold.report.units().count(),
        "the hit build compiled other units than the cold build\n{}",
        warm.context()
    );
}

// --- concurrency ----------------------------------------------------------------------

/// Two checkouts building at the same time into one store both succeed with the right
/// binary and no errors, and what they stored serves a later build.
///
/// The later build cannot expect `app` to hit: both checkouts compile `a` and `b` with
/// the same keys but not the same bytes (the rlibs' debuginfo names each checkout's
/// directory, and with incremental compilation an object member's name differs too),
/// while the `.rmeta` files are identical. The store keeps the last record written for
/// each key, so a later build may restore `a` from one checkout and `b` from the other:
/// a pair of rlibs no build linked, so `app` (whose key holds the linked rlibs'
/// digests) is rightly a miss. Every other unit must hit.
#[test]
fn parallel_builds_share_one_store() {
    let p = Project::fixture();
    let q = p.relocated_copy();
    let (run_p, run_q) = std::thread::scope(|s| {
        let tp = s.spawn(|| p.larder_cargo(&["build"]).run_unchecked());
        let tq = s.spawn(|| q.larder_cargo(&["build"]).run_unchecked());
        (tp.join().unwrap(), tq.join().unwrap())
    });
    run_p.assert_success();
    run_q.assert_success();
    for run in [&run_p, &run_q] {
        let bad: Vec<_> = run
            .report
            .units()
            .filter(|e| e.outcome != "hit" && e.outcome != "miss")
            .collect();
        assert!(
            bad.is_empty(),
            "concurrent builds gave {bad:?}\n{}",
            run.context()
        );
    }
    p.assert_app(&[]);
    q.assert_app(&[]);
    p.clean();
    let run = p.build();
    for c in ["a", "b", "build_script_build", "cdy", "mac"] {
        run.assert_crate(c, "hit");
    }
    p.assert_app(&[]);
}

/// A corrupt link record is rewritten when its library is restored, so the links above
/// it hit again; a missing one is named as missing, not as "not built through larder".
#[test]
fn corrupt_link_records_are_rewritten_on_restore() {
    let p = Project::fixture();
    p.build();
    let links = p.store_files("link");
    assert!(!links.is_empty(), "the cold build stored no link records");
    for f in &links {
        fs::write(f, b"not a link record").unwrap();
    }
    p.clean();
    let run = p.build();
    run.assert_all("hit", FIXTURE_UNITS);
    p.assert_app(&[]);

    for f in p.store_files("link") {
        fs::remove_file(f).unwrap();
    }
    p.edit("app/src/main.rs", "app=v1", "app=v2");
    let run = p.build();
    run.assert_crate("app", "not_cacheable");
    let app = run
        .report
        .units()
        .find(|e| e.krate.as_deref() == Some("app"))
        .unwrap();
    assert!(
        app.detail
            .as_deref()
            .is_some_and(|d| d.contains("has no link record")),
        "{}",
        app.line
    );
    p.assert_app(&[("app", "v2")]);
}

/// The host's target triple, from `rustc -vV`.
fn host_triple() -> String {
    let out = std::process::Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("rustc -vV");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("a host line")
        .to_string()
}

/// `--target <triple>` (the host's): cargo writes a `CACHEDIR.TAG` in
/// `target/<triple>/` too, yet the target directory is `target/` (proc macros and build
/// scripts stay in `target/debug/`), so every unit hits in a relocated checkout.
#[test]
fn explicit_target_builds_hit_in_another_checkout() {
    let p = Project::fixture();
    let triple = host_triple();
    let run = p.larder_cargo(&["build", "--target", &triple]).run();
    run.assert_all("miss", FIXTURE_UNITS);
    let q = p.relocated_copy();
    let run = q.larder_cargo(&["build", "--target", &triple]).run();
    run.assert_all("hit", FIXTURE_UNITS);
    q.assert_app_in(&format!("{triple}/debug"), &[]);
}
