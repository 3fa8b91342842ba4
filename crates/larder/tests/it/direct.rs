//! Direct mode: a hit spawns no rustc process, and every change to what a manifest lists
//! (a module added, a file deleted or moved, an `include_bytes!` file, an `env!`
//! variable) falls back to compiling, with a correct result.

use crate::support::{Project, project};

/// `dm` (lib) with a module, an `include_bytes!` file and an `env!` variable; `show`
/// (bin) prints them.
fn direct_project() -> Project {
    project()
        .file(
            "Cargo.toml",
            "[workspace]\nmembers = [\"dm\", \"show\"]\nresolver = \"2\"\n",
        )
        .file(
            "dm/Cargo.toml",
            "[package]\nname = \"dm\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
        )
        .file(
            "dm/src/lib.rs",
            "mod part;\npub fn line() -> String {\n    format!(\"part={} bytes={} env={}\", part::PART, include_bytes!(\"blob.bin\").len(), env!(\"LARDER_TEST_DIRECT\"))\n}\n",
        )
        .file("dm/src/part.rs", "pub const PART: &str = \"one\";\n")
        .file("dm/src/blob.bin", "abc")
        .file(
            "show/Cargo.toml",
            "[package]\nname = \"show\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\ndm = { path = \"../dm\" }\n",
        )
        .file("show/src/main.rs", "fn main() { println!(\"{}\", dm::line()); }\n")
        .build()
}

fn build(p: &Project, env_value: &str) -> crate::support::Run {
    p.larder_cargo(&["build"])
        .env("LARDER_TEST_DIRECT", env_value)
        .run()
}

/// With `RUSTC` pointing at a script that logs every compile it runs (not cargo's
/// `--crate-name ___` probe), a clean rebuild
/// that hits everywhere logs no compile: the key was known without asking rustc.
#[test]
fn a_hit_spawns_no_rustc() {
    let p = direct_project();
    let log = p.tmp().join("rustc.log");
    let shim = p.tmp().join("shim").join("rustc");
    let real = String::from_utf8(
        std::process::Command::new("rustc")
            .args(["--print", "sysroot"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    crate::support::write_file(
        &shim,
        &format!(
            "#!/bin/sh\ncase \"$*\" in *--crate-name\\ ___*) ;; *--crate-name*) echo \"$*\" >> {log} ;; esac\nexec {real}/bin/rustc \"$@\"\n",
            log = log.display(),
            real = real.trim()
        ),
    );
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let build_with_shim = || {
        p.larder_cargo(&["build"])
            .env("RUSTC", &shim)
            .env("LARDER_TEST_DIRECT", "x")
            .run()
    };
    build_with_shim().assert_all("miss", &["dm", "show"]);
    let compiles = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(
        compiles.lines().count(),
        2,
        "cold: one rustc per unit:\n{compiles}"
    );

    std::fs::remove_file(&log).unwrap();
    p.clean();
    build_with_shim().assert_all("hit", &["dm", "show"]);
    assert!(
        !log.exists(),
        "no rustc ran on the hits:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(p.run_bin("debug", "show"), "part=one bytes=3 env=x");
}

#[test]
fn a_new_module_misses_and_builds() {
    let p = direct_project();
    build(&p, "x");
    p.write("dm/src/extra.rs", "pub const EXTRA: &str = \"new\";\n");
    p.edit("dm/src/lib.rs", "mod part;", "mod part;\nmod extra;");
    p.edit("dm/src/lib.rs", "part::PART,", "extra::EXTRA,");
    let run = build(&p, "x");
    run.assert_crate("dm", "miss");
    assert_eq!(p.run_bin("debug", "show"), "part=new bytes=3 env=x");
}

#[test]
fn a_moved_module_file_misses_and_builds() {
    let p = direct_project();
    build(&p, "x");
    std::fs::create_dir_all(p.path("dm/src/part")).unwrap();
    std::fs::rename(p.path("dm/src/part.rs"), p.path("dm/src/part/mod.rs")).unwrap();
    p.edit("dm/src/part/mod.rs", "\"one\"", "\"moved\"");
    let run = build(&p, "x");
    run.assert_crate("dm", "miss");
    assert_eq!(p.run_bin("debug", "show"), "part=moved bytes=3 env=x");
}

#[test]
fn a_deleted_listed_file_misses() {
    let p = direct_project();
    build(&p, "x");
    // The module goes away (inlined): the listed file no longer exists.
    std::fs::remove_file(p.path("dm/src/part.rs")).unwrap();
    p.edit(
        "dm/src/lib.rs",
        "mod part;",
        "mod part { pub const PART: &str = \"inline\"; }",
    );
    let run = build(&p, "x");
    run.assert_crate("dm", "miss");
    assert_eq!(p.run_bin("debug", "show"), "part=inline bytes=3 env=x");
}

#[test]
fn an_include_bytes_file_change_misses() {
    let p = direct_project();
    build(&p, "x");
    p.write("dm/src/blob.bin", "abcdef");
    let run = build(&p, "x");
    run.assert_crate("dm", "miss");
    assert_eq!(p.run_bin("debug", "show"), "part=one bytes=6 env=x");
}

#[test]
fn an_env_macro_variable_change_misses() {
    let p = direct_project();
    build(&p, "x");
    let run = build(&p, "y");
    run.assert_crate("dm", "miss");
    assert_eq!(p.run_bin("debug", "show"), "part=one bytes=3 env=y");
    p.clean();
    build(&p, "x").assert_all("hit", &["dm", "show"]);
    assert_eq!(p.run_bin("debug", "show"), "part=one bytes=3 env=x");
}
