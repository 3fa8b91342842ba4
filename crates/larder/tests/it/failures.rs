//! Failed compiles: deterministic compile errors (build-script probes) are cached and
//! replayed as failures; errors about missing files are never cached.

use crate::support::{Project, project};

/// A package whose build script probes the compiler through the wrapper, as anyhow's
/// does: the probe uses `#![feature]`, which fails on a stable toolchain. The binary
/// prints what the probe found.
fn probing_project() -> Project {
    project()
        .file(
            "Cargo.toml",
            "[package]\nname = \"prober\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
        )
        .file(
            "build.rs",
            r##"use std::process::Command;
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-check-cfg=cfg(probe_ok)");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("probe");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("probe.rs"), "#![feature(never_type)]\npub fn f() -> Option<!> { None }\n").unwrap();
    let mut args: Vec<String> = std::env::var("RUSTC_WRAPPER").into_iter().filter(|w| !w.is_empty()).collect();
    args.push(std::env::var("RUSTC").unwrap());
    let status = Command::new(&args[0])
        .args(&args[1..])
        .args(["--crate-name=probe", "--crate-type=lib", "--emit=dep-info,metadata", "--out-dir"])
        .arg(&out)
        .arg(out.join("probe.rs"))
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    if status.success() {
        println!("cargo:rustc-cfg=probe_ok");
    }
}
"##,
        )
        .file(
            "src/main.rs",
            "fn main() {\n    if cfg!(probe_ok) { println!(\"probe=ok\") } else { println!(\"probe=fail\") }\n}\n",
        )
        .build()
}

#[test]
fn deterministic_probe_failure_is_cached_and_replayed_as_failure() {
    let p = probing_project();
    // Build-script runs are not cached here, so the script runs and probes each time.
    let build = || {
        p.larder_cargo(&["build"])
            .env("LARDER_BUILD_SCRIPT_CACHE", "0")
            .run()
    };
    let run = build();
    run.assert_crate("probe", "miss");
    let stored = run
        .report
        .units()
        .any(|e| e.krate.as_deref() == Some("probe") && e.line.contains("\"stored\":true"));
    assert!(stored, "the probe's failure is stored:\n{}", run.context());
    assert_eq!(p.run_bin("debug", "prober"), "probe=fail");

    p.clean();
    let run = build();
    run.assert_all("hit", &["probe", "prober", "build_script_build"]);
    // A hit that answered success would make the build script set `probe_ok`.
    assert_eq!(
        p.run_bin("debug", "prober"),
        "probe=fail",
        "{}",
        run.context()
    );
}

#[test]
fn missing_module_failure_is_not_cached() {
    let p = project()
        .file(
            "Cargo.toml",
            "[package]\nname = \"modless\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
        )
        .file(
            "src/main.rs",
            "mod later;\nfn main() { println!(\"{}\", later::TEXT); }\n",
        )
        .build();
    let run = p.larder_cargo(&["build"]).run_unchecked();
    assert!(!run.status.success(), "{}", run.context());
    assert!(run.stderr.contains("E0583"), "{}", run.context());
    let stored = run
        .report
        .units()
        .any(|e| e.line.contains("\"stored\":true"));
    assert!(
        !stored,
        "a missing-file error is never stored:\n{}",
        run.context()
    );

    p.write("src/later.rs", "pub const TEXT: &str = \"found\";\n");
    let run = p.build();
    run.assert_crate("modless", "miss");
    assert_eq!(p.run_bin("debug", "modless"), "found");
}

/// Lint levels are in the key: a success stored with a warning is never replayed once
/// `-D warnings` makes that warning an error (a class of false hits other caches had);
/// `--cap-lints` likewise.
#[test]
fn lint_levels_are_in_the_key() {
    let p = Project::fixture();
    let run = p.build();
    assert!(
        run.stderr.contains(crate::support::FIXTURE_WARNING),
        "{}",
        run.context()
    );
    p.clean();
    let run = p
        .larder_cargo(&["build"])
        .env("RUSTFLAGS", "-D warnings")
        .run_unchecked();
    assert!(!run.status.success(), "{}", run.context());
    assert!(
        run.stderr.contains(crate::support::FIXTURE_WARNING),
        "{}",
        run.context()
    );
    p.clean();
    let run = p
        .larder_cargo(&["build"])
        .env("RUSTFLAGS", "--cap-lints allow")
        .run();
    assert!(
        !run.stderr.contains(crate::support::FIXTURE_WARNING),
        "a replayed warning that --cap-lints allow silences:\n{}",
        run.context()
    );
}
