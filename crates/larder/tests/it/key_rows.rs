//! One test per row of the key table in `larder-key`'s docs that the fixture suite
//! (`cache.rs`) does not already cover: each changes one input and expects a miss (and a
//! correct build), or changes something that must not matter and expects hits.

use crate::support::{Project, project};

/// A two-crate workspace: `top` (bin) prints `m::text()`; `m` loads `mod inner;`.
fn module_project() -> Project {
    project()
        .file(
            "Cargo.toml",
            "[workspace]\nmembers = [\"m\", \"top\"]\nresolver = \"2\"\n",
        )
        .file(
            "m/Cargo.toml",
            "[package]\nname = \"m\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
        )
        .file(
            "m/src/lib.rs",
            "mod inner;\npub fn text() -> &'static str { inner::TEXT }\n",
        )
        .file("m/src/inner.rs", "pub const TEXT: &str = \"inner-file\";\n")
        .file(
            "top/Cargo.toml",
            "[package]\nname = \"top\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nm = { path = \"../m\" }\n",
        )
        .file("top/src/main.rs", "fn main() { println!(\"{}\", m::text()); }\n")
        .build()
}

/// Row "module shadows": a module file appearing where rustc would also look
/// (`inner/mod.rs` next to `inner.rs`) makes the compile an error in rustc; larder must
/// not answer it with the cached success.
#[test]
fn module_file_appearing_is_not_a_hit() {
    let p = module_project();
    p.build().assert_all("miss", &["m", "top"]);
    assert_eq!(p.run_bin("debug", "top"), "inner-file");

    p.write("m/src/inner/mod.rs", "pub const TEXT: &str = \"shadow\";\n");
    p.clean();
    let run = p.larder_cargo(&["build"]).run_unchecked();
    assert!(
        !run.status.success(),
        "rustc rejects a module with two files; the build must fail, not hit:\n{}",
        run.context()
    );
    assert!(run.stderr.contains("E0761"), "{}", run.context());

    std::fs::remove_dir_all(p.path("m/src/inner")).unwrap();
    p.build().assert_all("hit", &["m", "top"]);
    assert_eq!(p.run_bin("debug", "top"), "inner-file");
}

/// A build script that compiles C into a static library bundled into `nat`'s rlib; the
/// C constant comes from `LARDER_NATIVE_VALUE`. `top` (bin) -> `mid` -> `nat`.
fn native_project() -> Project {
    project()
        .file(
            "Cargo.toml",
            "[workspace]\nmembers = [\"nat\", \"mid\", \"top\"]\nresolver = \"2\"\n",
        )
        .file(
            "nat/Cargo.toml",
            "[package]\nname = \"nat\"\nversion = \"0.1.0\"\nedition = \"2021\"\nbuild = \"build.rs\"\n",
        )
        .file(
            "nat/build.rs",
            r#"use std::process::Command;
fn main() {
    println!("cargo:rerun-if-env-changed=LARDER_NATIVE_VALUE");
    println!("cargo:rerun-if-env-changed=LARDER_NATIVE_DIR");
    println!("cargo:rerun-if-changed=build.rs");
    let value = std::env::var("LARDER_NATIVE_VALUE").unwrap_or_else(|_| "1".into());
    // The library is built outside the workspace and the target directory.
    let out = std::path::PathBuf::from(std::env::var("LARDER_NATIVE_DIR").unwrap());
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("v.c"), format!("int nat_value(void) {{ return {value}; }}\n")).unwrap();
    assert!(Command::new("cc").args(["-c", "-fPIC", "v.c", "-o", "v.o"]).current_dir(&out).status().unwrap().success());
    assert!(Command::new("ar").args(["rcs", "libnatv.a", "v.o"]).current_dir(&out).status().unwrap().success());
    println!("cargo:rustc-link-search=native={}", out.display());
    println!("cargo:rustc-link-lib=static=natv");
}
"#,
        )
        .file(
            "nat/src/lib.rs",
            "extern \"C\" { fn nat_value() -> i32; }\npub fn value() -> i32 { unsafe { nat_value() } }\n",
        )
        .file(
            "mid/Cargo.toml",
            "[package]\nname = \"mid\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nnat = { path = \"../nat\" }\n",
        )
        .file("mid/src/lib.rs", "pub fn value() -> i32 { nat::value() * 10 }\n")
        .file(
            "top/Cargo.toml",
            "[package]\nname = \"top\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nmid = { path = \"../mid\" }\n",
        )
        .file("top/src/main.rs", "fn main() { println!(\"native={}\", mid::value()); }\n")
        .build()
}

/// Rows "linked libraries" and "static libraries named by `-l static`": the C code two
/// crates below the binary changes while the Rust sources of every crate stay the same,
/// and the static library lives outside the workspace and target directory. `nat`'s key
/// sees the library it bundles; `mid` is compiled against `nat`'s unchanged metadata, so
/// it hits; only the transitive link closure can tell the binary's key that `nat`'s rlib
/// changed. (Checked: with the closure left out of the key, `top` hits and prints the
/// old value.)
#[test]
fn bundled_c_library_two_crates_down_reaches_the_binary() {
    let p = native_project();
    let native_dir = p.tmp().join("native-out");
    let build = |value: &str| {
        p.larder_cargo(&["build"])
            .env("LARDER_NATIVE_VALUE", value)
            .env("LARDER_NATIVE_DIR", &native_dir)
            .run()
    };
    build("1");
    assert_eq!(p.run_bin("debug", "top"), "native=10");

    let run = build("2");
    run.assert_crate("nat", "miss");
    run.assert_crate("top", "miss");
    assert_eq!(p.run_bin("debug", "top"), "native=20", "{}", run.context());

    // Back to 1 (in a clean target dir): everything comes from the store, and right.
    p.clean();
    let run = build("1");
    run.assert_all("hit", &["nat", "mid", "top"]);
    assert_eq!(p.run_bin("debug", "top"), "native=10");
}

/// Row "linker": the same linker path with other content is another linker; linked
/// outputs miss, libraries (not linked) still hit.
#[test]
fn linker_content_is_in_the_key() {
    let p = module_project();
    let linker = p.tmp().join("mycc");
    crate::support::write_file(&linker, "#!/bin/sh\nexec cc \"$@\"\n");
    make_executable(&linker);
    let flags = format!("-C linker={}", linker.display());
    p.larder_cargo(&["build"]).env("RUSTFLAGS", &flags).run();

    crate::support::write_file(
        &linker,
        "#!/bin/sh\n# another version of the linker\nexec cc \"$@\"\n",
    );
    p.clean();
    let run = p.larder_cargo(&["build"]).env("RUSTFLAGS", &flags).run();
    run.assert_crate("m", "hit");
    run.assert_crate("top", "miss");
    assert_eq!(p.run_bin("debug", "top"), "inner-file");
}

/// Row "linker", the class "a linker upgraded behind an unchanged `cc`" (issue 9): `cc`
/// runs `ld.gold` from a `-B` directory (`-fuse-ld=gold`); another version of that file
/// is another linker, though rustc's linker, `cc`, is the same.
#[test]
fn linker_behind_the_driver_is_in_the_key() {
    let p = module_project();
    let dir = p.tmp().join("linkers");
    let gold = dir.join("ld.gold");
    let marker = p.tmp().join("linked-by-v2");
    crate::support::write_file(&gold, "#!/bin/sh\nexec /usr/bin/ld.gold \"$@\"\n");
    make_executable(&gold);
    if !std::path::Path::new("/usr/bin/ld.gold").exists() {
        eprintln!("skipped: no /usr/bin/ld.gold (binutils)");
        return;
    }
    let flags = format!("-C link-arg=-fuse-ld=gold -C link-arg=-B{}", dir.display());
    p.larder_cargo(&["build"]).env("RUSTFLAGS", &flags).run();

    std::thread::sleep(std::time::Duration::from_millis(10));
    crate::support::write_file(
        &gold,
        &format!(
            "#!/bin/sh\n# another version of the linker\ntouch {}\nexec /usr/bin/ld.gold \"$@\"\n",
            marker.display()
        ),
    );
    p.clean();
    let run = p.larder_cargo(&["build"]).env("RUSTFLAGS", &flags).run();
    run.assert_crate("m", "hit");
    run.assert_crate("top", "miss");
    assert!(
        marker.exists(),
        "the new linker did not link\n{}",
        run.context()
    );
    assert_eq!(p.run_bin("debug", "top"), "inner-file");
}

fn make_executable(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Row "declared inputs": variables in `LARDER_EXTRA_ENV` and files in
/// `LARDER_EXTRA_FILES` are in every key.
#[test]
fn declared_extra_env_and_files_are_inputs() {
    let p = module_project();
    let run = |value: &str| {
        p.clean();
        p.larder_cargo(&["build"])
            .env("LARDER_EXTRA_ENV", "LARDER_TEST_DECLARED")
            .env("LARDER_TEST_DECLARED", value)
            .env("LARDER_EXTRA_FILES", "declared.txt")
            .run()
    };
    p.write("declared.txt", "one");
    run("x").assert_all("miss", &["m", "top"]);
    run("x").assert_all("hit", &["m", "top"]);
    run("y").assert_all("miss", &["m", "top"]);
    p.write("declared.txt", "two");
    run("y").assert_all("miss", &["m", "top"]);
    p.write("declared.txt", "one");
    run("x").assert_all("hit", &["m", "top"]);
}

/// Row "environment" (variables rustc and the linker read): `SOURCE_DATE_EPOCH`.
#[test]
fn tool_variable_is_in_the_key() {
    let p = module_project();
    p.build();
    p.clean();
    let run = p
        .larder_cargo(&["build"])
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .run();
    run.assert_all("miss", &["m", "top"]);
}

/// Row "incremental": an incremental and a non-incremental compile of the same crate
/// are different entries (codegen units differ); switching back hits.
#[test]
fn incremental_presence_is_in_the_key() {
    let p = module_project();
    p.build().assert_all("miss", &["m", "top"]);
    p.clean();
    let run = p
        .larder_cargo(&["build"])
        .env("CARGO_INCREMENTAL", "0")
        .run();
    run.assert_all("miss", &["m", "top"]);
    p.clean();
    p.build().assert_all("hit", &["m", "top"]);
}

/// `LARDER_INCREMENTAL=auto` (the default) in a CI run: rustc compiles without
/// `-C incremental` (no incremental state is written), under a non-incremental
/// compile's key, which the next CI run hits and a laptop's incremental compile does not;
/// `on` keeps cargo's request. (A `CARGO_INCREMENTAL=0` build is another key again:
/// cargo puts the profile's `incremental` in `-C metadata`.)
#[test]
fn a_ci_run_compiles_without_incremental() {
    let p = module_project();
    let state = |p: &Project| {
        std::fs::read_dir(p.target().join("debug/incremental")).map_or(0, |d| d.count())
    };
    let ci = |p: &Project| p.larder_cargo(&["build"]).env("CI", "true").run();
    ci(&p).assert_all("miss", &["m", "top"]);
    assert_eq!(state(&p), 0, "a CI run wrote incremental state");
    assert_eq!(p.run_bin("debug", "top"), "inner-file");
    p.clean();
    ci(&p).assert_all("hit", &["m", "top"]);
    assert_eq!(p.run_bin("debug", "top"), "inner-file");
    p.clean();
    p.build().assert_all("miss", &["m", "top"]);
    assert!(
        state(&p) > 0,
        "a build outside CI wrote no incremental state"
    );
    // `on` in a CI run: the incremental compile's key, which that build stored.
    p.clean();
    p.larder_cargo(&["build"])
        .env("CI", "true")
        .env("LARDER_INCREMENTAL", "on")
        .run()
        .assert_all("hit", &["m", "top"]);
}

/// Row "files named by arguments": a linker version script's content.
#[test]
fn file_named_in_link_arg_is_in_the_key() {
    let p = project()
        .file(
            "Cargo.toml",
            "[package]\nname = \"so\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[lib]\ncrate-type = [\"cdylib\"]\n",
        )
        .file(
            "src/lib.rs",
            "#[no_mangle]\npub extern \"C\" fn so_one() -> u32 { 1 }\n#[no_mangle]\npub extern \"C\" fn so_two() -> u32 { 2 }\n",
        )
        .build();
    let script = p.path("exports.map");
    let arg = format!("-Clink-arg=-Wl,--version-script={}", script.display());
    p.write("exports.map", "{ global: so_one; local: *; };\n");
    p.larder_cargo(&["rustc", "--", &arg])
        .run()
        .assert_crate("so", "miss");
    p.clean();
    p.larder_cargo(&["rustc", "--", &arg])
        .run()
        .assert_crate("so", "hit");
    p.write("exports.map", "{ global: so_one; so_two; local: *; };\n");
    p.clean();
    p.larder_cargo(&["rustc", "--", &arg])
        .run()
        .assert_crate("so", "miss");
}

/// Row "environment" (variables cargo sets for the unit): the package description
/// reaches the compile only as `CARGO_PKG_DESCRIPTION` (it is not in `-C metadata`), and
/// a proc macro may read it. (cargo itself does not recompile for it, hence the clean.)
#[test]
fn cargo_package_variable_is_in_the_key() {
    let p = module_project();
    p.build();
    p.clean();
    p.edit(
        "m/Cargo.toml",
        "edition = \"2021\"\n",
        "edition = \"2021\"\ndescription = \"now described\"\n",
    );
    let run = p.build();
    run.assert_crate("m", "miss");
}

/// Left out on purpose: modification times. Touching every source makes cargo
/// recompile everything; larder answers every compile from the store.
#[test]
fn touched_sources_hit() {
    let p = module_project();
    p.build();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    for f in ["m/src/lib.rs", "m/src/inner.rs", "top/src/main.rs"] {
        let content = std::fs::read(p.path(f)).unwrap();
        std::fs::write(p.path(f), content).unwrap();
    }
    let run = p.build();
    run.assert_units(&["m", "top"]);
    run.assert_all("hit", &["m", "top"]);
}

/// Left out on purpose: cargo's own configuration variables.
#[test]
fn cargo_configuration_variables_do_not_matter() {
    let p = module_project();
    p.build();
    p.clean();
    let run = p
        .larder_cargo(&["build"])
        .env("CARGO_BUILD_JOBS", "1")
        .env("CARGO_TERM_VERBOSE", "true")
        .env("CARGO_NET_OFFLINE", "true")
        .run();
    run.assert_all("hit", &["m", "top"]);
}

/// Two modules swapping their contents: the same set of file contents, paired with other
/// paths. The key pairs each path with its content, so this is a miss (a class of false
/// hits found in other caches).
#[test]
fn modules_swapping_contents_miss() {
    let p = project()
        .file(
            "Cargo.toml",
            "[package]\nname = \"swap\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
        )
        .file(
            "src/main.rs",
            "mod x;\nmod y;\nfn main() { println!(\"{}{}\", x::V, y::V); }\n",
        )
        .file("src/x.rs", "pub const V: &str = \"x\";\n")
        .file("src/y.rs", "pub const V: &str = \"y\";\n")
        .build();
    p.build().assert_crate("swap", "miss");
    assert_eq!(p.run_bin("debug", "swap"), "xy");
    p.write("src/x.rs", "pub const V: &str = \"y\";\n");
    p.write("src/y.rs", "pub const V: &str = \"x\";\n");
    p.clean();
    p.build().assert_crate("swap", "miss");
    assert_eq!(p.run_bin("debug", "swap"), "yx");
}
