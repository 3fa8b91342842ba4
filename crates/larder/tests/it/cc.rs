//! C compiles in build scripts: `larder cargo` sets `CC="<larder> cc"`, the `cc` crate
//! runs larder for each object, and larder caches the objects (`crates/larder-core/src/cc`).
//!
//! The fixture's build script compiles two C files with the real `cc` crate (the version
//! in this workspace's `Cargo.lock`, so it is in the registry cache; cargo fetches it
//! otherwise) and the real C compiler; the binary prints what the C functions return.
//! Build-script runs are not cached here (`LARDER_BUILD_SCRIPT_CACHE=0`): a restored run
//! would not compile any C at all.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::support::{Project, Run, project};

/// `capp` (bin): `build.rs` compiles `csrc/value.c` (includes `value.h`, uses the
/// define `VALUE` from `$CAPP_VALUE`) and `csrc/other.c` with the `cc` crate.
fn c_project() -> Project {
    project()
        .file(
            "Cargo.toml",
            "[package]\nname = \"capp\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[build-dependencies]\ncc = \"=1.11.1\"\n",
        )
        .file(
            "build.rs",
            r#"fn main() {
    println!("cargo:rerun-if-changed=csrc");
    println!("cargo:rerun-if-env-changed=CAPP_VALUE");
    let v = std::env::var("CAPP_VALUE").unwrap_or_else(|_| "1".into());
    cc::Build::new()
        .file("csrc/value.c")
        .file("csrc/other.c")
        .include("csrc")
        .define("VALUE", v.as_str())
        .compile("capp");
}
"#,
        )
        .file("csrc/value.h", "#define BASE 100\n")
        .file(
            "csrc/value.c",
            "#include \"value.h\"\nint capp_value(void) { return BASE + VALUE; }\n",
        )
        .file("csrc/other.c", "int capp_other(void) { return 7; }\n")
        .file(
            "src/main.rs",
            "extern \"C\" { fn capp_value() -> i32; fn capp_other() -> i32; }\nfn main() { println!(\"value={} other={}\", unsafe { capp_value() }, unsafe { capp_other() }); }\n",
        )
        .build()
}

/// `larder cargo build` with build-script runs not cached, plus `env`.
fn build(p: &Project, env: &[(&str, &str)]) -> Run {
    let mut cmd = p
        .larder_cargo(&["build"])
        .env("LARDER_BUILD_SCRIPT_CACHE", "0");
    for (k, v) in env {
        cmd = cmd.env(k, v);
    }
    cmd.run()
}

/// Outcome of each C object compile in the report (`cc:<file>` -> outcomes).
fn c_objects(run: &Run) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in &run.report.entries {
        // cc-rs's own flag checks (`flag_check.c`) are cached too; not counted here.
        if e.crate_types.iter().any(|t| t == "c-object")
            && let Some(k) = &e.krate
            && k != "cc:flag_check.c"
        {
            map.entry(k.clone()).or_default().push(e.outcome.clone());
        }
    }
    map
}

fn assert_c(run: &Run, want: &[(&str, &str)]) {
    let got = c_objects(run);
    let want: BTreeMap<String, Vec<String>> = want
        .iter()
        .map(|(k, o)| (k.to_string(), vec![o.to_string()]))
        .collect();
    assert_eq!(got, want, "C object outcomes\n{}", run.context());
}

fn stored(run: &Run, krate: &str) -> bool {
    run.report
        .entries
        .iter()
        .any(|e| e.krate.as_deref() == Some(krate) && e.line.contains("\"stored\":true"))
}

/// Builds `p` from nothing (both objects compiled and stored), then again after `cargo
/// clean` (both restored); the program prints `prints` each time. Returns the second run.
fn miss_then_hit(p: &Project, env: &[(&str, &str)], prints: &str) -> Run {
    let run = build(p, env);
    assert_c(&run, &[("cc:other.c", "miss"), ("cc:value.c", "miss")]);
    for object in ["cc:other.c", "cc:value.c"] {
        assert!(stored(&run, object), "{object} stored\n{}", run.context());
    }
    assert_eq!(p.run_bin("debug", "capp"), prints);
    p.clean();
    let run = build(p, env);
    assert_c(&run, &[("cc:other.c", "hit"), ("cc:value.c", "hit")]);
    assert_eq!(p.run_bin("debug", "capp"), prints);
    run
}

#[test]
fn c_objects_miss_then_hit_after_clean() {
    let p = c_project();
    let run = build(&p, &[]);
    assert_c(&run, &[("cc:other.c", "miss"), ("cc:value.c", "miss")]);
    assert!(
        stored(&run, "cc:value.c") && stored(&run, "cc:other.c"),
        "{}",
        run.context()
    );
    assert_eq!(p.run_bin("debug", "capp"), "value=101 other=7");
    assert!(
        run.stderr.contains("misses") && run.stderr.contains("cc:value.c"),
        "the summary counts C objects\n{}",
        run.context()
    );

    p.clean();
    let run = build(&p, &[]);
    assert_c(&run, &[("cc:other.c", "hit"), ("cc:value.c", "hit")]);
    assert_eq!(p.run_bin("debug", "capp"), "value=101 other=7");
    let hit_bytes: u64 = run
        .report
        .entries
        .iter()
        .filter(|e| e.crate_types.iter().any(|t| t == "c-object") && e.outcome == "hit")
        .map(|e| e.bytes_restored)
        .sum();
    assert!(hit_bytes > 0, "{}", run.context());

    // `larder stats` counts them with the rest.
    let stats = p.stats();
    assert!(stats["hits"].as_u64().unwrap() >= 2, "{stats}");
}

#[test]
fn header_change_misses_only_its_object() {
    let p = c_project();
    build(&p, &[]);
    p.write("csrc/value.h", "#define BASE 200\n");
    p.clean();
    let run = build(&p, &[]);
    assert_c(&run, &[("cc:other.c", "hit"), ("cc:value.c", "miss")]);
    assert_eq!(p.run_bin("debug", "capp"), "value=201 other=7");

    // Back to the first header: its entry is still there.
    p.write("csrc/value.h", "#define BASE 100\n");
    let run = build(&p, &[]);
    assert_c(&run, &[("cc:other.c", "hit"), ("cc:value.c", "hit")]);
    assert_eq!(p.run_bin("debug", "capp"), "value=101 other=7");
}

/// A miss takes the headers it read from the memo of settled file versions
/// (`cc/header_memo.rs`) once they are two seconds old. A header edited afterwards, to
/// the same size and with its old modification time, is another version: read again, so each stored object names the
/// header it was compiled from (a stale memo would store the new object under the old
/// header, and the revert below would restore it).
#[test]
fn a_remembered_header_edited_later_is_read_again() {
    let p = c_project();
    build(&p, &[]);
    std::thread::sleep(std::time::Duration::from_millis(2300));
    // Another define, so other keys: misses, whose settled headers are remembered.
    let run = build(&p, &[("CAPP_VALUE", "2")]);
    assert_c(&run, &[("cc:other.c", "miss"), ("cc:value.c", "miss")]);
    assert_eq!(p.run_bin("debug", "capp"), "value=102 other=7");
    assert!(
        !p.store_files("tools/c-facts").is_empty(),
        "settled headers are remembered\n{}",
        run.context()
    );

    // Same size, and the exact modification time put back (as `touch -r` does).
    let header = p.path("csrc/value.h");
    let mtime = std::fs::metadata(&header).unwrap().modified().unwrap();
    p.write("csrc/value.h", "#define BASE 300\n");
    std::fs::File::options()
        .write(true)
        .open(&header)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    // So that cargo runs the build script again (it goes by modification times).
    p.write("csrc/notes.txt", "value.h edited\n");
    let run = build(&p, &[("CAPP_VALUE", "2")]);
    assert_c(&run, &[("cc:other.c", "hit"), ("cc:value.c", "miss")]);
    assert_eq!(p.run_bin("debug", "capp"), "value=302 other=7");

    for (header, prints) in [("100", "value=102 other=7"), ("300", "value=302 other=7")] {
        p.write("csrc/value.h", &format!("#define BASE {header}\n"));
        p.clean();
        let run = build(&p, &[("CAPP_VALUE", "2")]);
        assert_c(&run, &[("cc:other.c", "hit"), ("cc:value.c", "hit")]);
        assert_eq!(p.run_bin("debug", "capp"), prints);
    }
}

#[test]
fn define_change_misses() {
    let p = c_project();
    build(&p, &[]);
    let run = build(&p, &[("CAPP_VALUE", "2")]);
    assert_c(&run, &[("cc:other.c", "miss"), ("cc:value.c", "miss")]);
    assert_eq!(p.run_bin("debug", "capp"), "value=102 other=7");
    let run = build(&p, &[("CAPP_VALUE", "1")]);
    assert_c(&run, &[("cc:other.c", "hit"), ("cc:value.c", "hit")]);
    assert_eq!(p.run_bin("debug", "capp"), "value=101 other=7");
}

/// The variables the C driver reads (`C_TOOL_VARS`, here `SOURCE_DATE_EPOCH`) and the
/// declared inputs (`LARDER_EXTRA_ENV`, `LARDER_EXTRA_FILES`) are in the key. The build
/// script declares them too, so that cargo reruns it (and the C compiles) on a change.
#[test]
fn tool_variables_and_declared_inputs_are_in_the_c_key() {
    let p = c_project();
    let script = std::fs::read_to_string(p.path("build.rs")).unwrap();
    p.write(
        "build.rs",
        &script.replace(
            "fn main() {",
            "fn main() {\n    println!(\"cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH\");\n    println!(\"cargo:rerun-if-env-changed=CAPP_FLAVOR\");\n    println!(\"cargo:rerun-if-changed=extra.txt\");",
        ),
    );
    p.write("extra.txt", "one");
    let extra = [
        ("LARDER_EXTRA_FILES", "extra.txt"),
        ("LARDER_EXTRA_ENV", "CAPP_FLAVOR"),
    ];
    build(&p, &extra);
    let all = |outcome| [("cc:other.c", outcome), ("cc:value.c", outcome)];
    for (var, value) in [("SOURCE_DATE_EPOCH", "1"), ("CAPP_FLAVOR", "spicy")] {
        let mut env = extra.to_vec();
        env.push((var, value));
        assert_c(&build(&p, &env), &all("miss"));
    }
    p.write("extra.txt", "two");
    assert_c(&build(&p, &extra), &all("miss"));
    p.write("extra.txt", "one");
    assert_c(&build(&p, &extra), &all("hit"));
}

/// A compiler `gcc` in a directory of its own: a shell script that runs the system's
/// `cc`, with `variant` in a comment (so two variants differ only in content).
fn wrapper_compiler(dir: &Path, variant: &str) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("gcc");
    std::fs::write(&path, format!("#!/bin/sh\n# {variant}\nexec cc \"$@\"\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn compiler_change_misses() {
    let p = c_project();
    build(&p, &[]);
    let dir = p.tmp().join("compiler");
    let cc = wrapper_compiler(&dir, "variant a");
    let run = build(&p, &[("CC", &cc)]);
    assert_c(&run, &[("cc:other.c", "miss"), ("cc:value.c", "miss")]);
    assert_eq!(p.run_bin("debug", "capp"), "value=101 other=7");

    // Same path, other content: another compiler.
    wrapper_compiler(&dir, "variant b");
    p.clean();
    let run = build(&p, &[("CC", &cc)]);
    assert_c(&run, &[("cc:other.c", "miss"), ("cc:value.c", "miss")]);
    assert_eq!(p.run_bin("debug", "capp"), "value=101 other=7");

    // The system compiler again: its entries are still there.
    let run = build(&p, &[]);
    assert_c(&run, &[("cc:other.c", "hit"), ("cc:value.c", "hit")]);
}

/// A compiler that does not take `-MD -MF` fails larder's search-list probe, so its
/// compiles are keyed in preprocessor mode: cached, and never a build that fails on
/// flags larder added.
#[test]
fn a_compiler_without_dependency_files_uses_preprocessor_mode() {
    let p = c_project();
    let dir = p.tmp().join("compiler");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("gcc");
    std::fs::write(
        &path,
        "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = -MD ] && { echo 'no -MD here' >&2; exit 1; }; done\nexec cc \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    miss_then_hit(&p, &[("CC", path.to_str().unwrap())], "value=101 other=7");
}

#[test]
fn relocated_checkout_hits() {
    let p = c_project();
    build(&p, &[]);
    let q = p.relocated_copy();
    let run = build(&q, &[]);
    assert_c(&run, &[("cc:other.c", "hit"), ("cc:value.c", "hit")]);
    assert_eq!(q.run_bin("debug", "capp"), "value=101 other=7");
}

/// Keyed by the dependency file (the default), a header that would now be found earlier
/// in the search path than the one a compile read is a miss, whether its directory
/// existed (its listing changes) or not (it must stay absent).
#[test]
fn a_header_that_now_shadows_misses() {
    let p = c_project();
    p.edit(
        "build.rs",
        ".include(\"csrc\")",
        ".include(\"early\").include(\"mid\").include(\"csrc\")",
    );
    p.edit("csrc/value.c", "#include \"value.h\"", "#include <value.h>");
    p.write("mid/readme.txt", "not a header\n");
    miss_then_hit(&p, &[], "value=101 other=7");

    p.write("mid/value.h", "#define BASE 300\n");
    p.clean();
    let run = build(&p, &[]);
    assert_c(&run, &[("cc:other.c", "hit"), ("cc:value.c", "miss")]);
    assert_eq!(p.run_bin("debug", "capp"), "value=301 other=7");

    p.write("early/value.h", "#define BASE 200\n");
    p.clean();
    let run = build(&p, &[]);
    assert_c(&run, &[("cc:other.c", "hit"), ("cc:value.c", "miss")]);
    assert_eq!(p.run_bin("debug", "capp"), "value=201 other=7");
}

/// A header a `__has_include` asked for in vain is a miss once it exists.
#[test]
fn a_header_asked_for_by_has_include_misses_when_it_appears() {
    let p = c_project();
    p.write(
        "csrc/value.c",
        "#if __has_include(<opt.h>)\n#include <opt.h>\n#else\n#define OPT 0\n#endif\n#include \"value.h\"\nint capp_value(void) { return BASE + VALUE + OPT; }\n",
    );
    miss_then_hit(&p, &[], "value=101 other=7");

    p.write("csrc/opt.h", "#define OPT 40\n");
    p.clean();
    let run = build(&p, &[]);
    assert_c(&run, &[("cc:other.c", "hit"), ("cc:value.c", "miss")]);
    assert_eq!(p.run_bin("debug", "capp"), "value=141 other=7");
}

/// `__FILE__` writes the source's absolute path into the object: such an object is not
/// shared with a checkout elsewhere (a miss there, whose object names its own path),
/// while one without it still is.
#[test]
fn an_object_with_its_source_path_misses_in_another_checkout() {
    let p = c_project();
    // cc-rs passes the path as given: make it absolute.
    p.edit(
        "build.rs",
        ".file(\"csrc/other.c\")",
        ".file(format!(\"{}/csrc/other.c\", std::env::var(\"CARGO_MANIFEST_DIR\").unwrap()))",
    );
    p.write(
        "csrc/other.c",
        "#include <string.h>\nint capp_other(void) { return (int)strlen(__FILE__); }\n",
    );
    let len = |q: &crate::support::Project| q.path("csrc/other.c").to_string_lossy().len();
    miss_then_hit(&p, &[], &format!("value=101 other={}", len(&p)));

    let q = p.relocated_copy();
    let run = build(&q, &[]);
    assert_c(&run, &[("cc:other.c", "miss"), ("cc:value.c", "hit")]);
    assert_eq!(
        q.run_bin("debug", "capp"),
        format!("value=101 other={}", len(&q))
    );
}

/// A text with `__DATE__` is keyed by its preprocessed text (the date is in it): a hit
/// the same day, through the entry's preprocessor check.
#[test]
fn a_source_with_the_date_is_keyed_by_its_preprocessed_text() {
    let p = c_project();
    p.write(
        "csrc/other.c",
        "static const char *built = __DATE__;\nint capp_other(void) { return built[0] ? 7 : 0; }\n",
    );
    miss_then_hit(&p, &[], "value=101 other=7");
}

/// A forced include in GCC's long spelling (`--include=<file>`, as aws-lc-sys passes it)
/// is cacheable, and the forced header's content is in the key.
#[test]
fn forced_include_is_cacheable_and_in_the_key() {
    // Keyed by the dependency file, the forced header's content is an input of both
    // objects; keyed by the preprocessed text, only of the one that uses its macro.
    forced_include_case(&[], "miss");
    forced_include_case(&[("LARDER_C_DEPEND", "0")], "hit");
}

fn forced_include_case(env: &[(&str, &str)], value_after_edit: &str) {
    let p = c_project();
    p.edit(
        "build.rs",
        ".include(\"csrc\")",
        ".include(\"csrc\").flag(format!(\"--include={}/forced/extra.h\", std::env::var(\"CARGO_MANIFEST_DIR\").unwrap()))",
    );
    p.edit(
        "build.rs",
        "cargo:rerun-if-changed=csrc",
        "cargo:rerun-if-changed=csrc\");\n    println!(\"cargo:rerun-if-changed=forced",
    );
    p.write("forced/extra.h", "#define EXTRA 0\n");
    p.edit("csrc/other.c", "return 7;", "return 7 + EXTRA;");
    let run = build(&p, env);
    assert_c(&run, &[("cc:other.c", "miss"), ("cc:value.c", "miss")]);
    assert!(stored(&run, "cc:other.c"), "{}", run.context());
    assert_eq!(p.run_bin("debug", "capp"), "value=101 other=7");

    p.write("forced/extra.h", "#define EXTRA 5\n");
    let run = build(&p, env);
    assert_c(
        &run,
        &[("cc:other.c", "miss"), ("cc:value.c", value_after_edit)],
    );
    assert_eq!(p.run_bin("debug", "capp"), "value=101 other=12");

    p.write("forced/extra.h", "#define EXTRA 0\n");
    p.clean();
    let run = build(&p, env);
    assert_c(&run, &[("cc:other.c", "hit"), ("cc:value.c", "hit")]);
    assert_eq!(p.run_bin("debug", "capp"), "value=101 other=7");
}

/// Compiles larder cannot cache run as plain compiles, with a reason in the report.
#[test]
fn dependency_file_output_is_not_cacheable_and_builds() {
    let p = c_project();
    p.edit(
        "build.rs",
        ".include(\"csrc\")",
        ".include(\"csrc\").flag(\"-MMD\")",
    );
    let run = build(&p, &[]);
    let nc: Vec<_> = run
        .report
        .entries
        .iter()
        .filter(|e| e.krate.as_deref() == Some("cc:value.c"))
        .collect();
    assert!(
        nc.len() == 1
            && nc[0].outcome == "not_cacheable"
            && nc[0].reason.as_deref() == Some("c-dep-file"),
        "{}",
        run.context()
    );
    assert_eq!(p.run_bin("debug", "capp"), "value=101 other=7");
}

/// A store that cannot be written never fails the build.
#[test]
fn unwritable_store_compiles_plainly() {
    let p = c_project();
    std::fs::write(p.tmp().join("not-a-dir"), "x").unwrap();
    let run = p
        .larder_cargo(&["build"])
        .env("LARDER_BUILD_SCRIPT_CACHE", "0")
        .env("LARDER_DIR", p.tmp().join("not-a-dir").join("store"))
        .run();
    assert!(run.stderr.contains("larder: warning"), "{}", run.context());
    assert_eq!(p.run_bin("debug", "capp"), "value=101 other=7");
}

/// A build script that runs `$CC` itself (not through the `cc` crate) works under
/// `larder cargo`. Without a `CC` of the user's, larder's shim is only the host's
/// compiler for the `cc` crate (`HOST_CC`): such a script compiles with `cc`, uncached
/// (setting `CC` would give a `--target` build the host's compiler). With the user's
/// `CC`, `CC` is a single path, a symlink larder answers to, and the compile is cached.
#[test]
fn build_script_running_cc_directly_works() {
    let p = crate::support::project()
        .file(
            "Cargo.toml",
            "[package]\nname = \"direct-cc\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
        )
        .file(
            "build.rs",
            r#"use std::process::Command;
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CC");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap());
    std::fs::write(out.join("v.c"), "int direct_value(void) { return 33; }\n").unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let ok = Command::new(&cc).args(["-c", "-fPIC", "v.c", "-o", "v.o"]).current_dir(&out).status().unwrap().success();
    assert!(ok, "{cc} failed");
    assert!(Command::new("ar").args(["rcs", "libdirect.a", "v.o"]).current_dir(&out).status().unwrap().success());
    println!("cargo:rustc-link-search=native={}", out.display());
    println!("cargo:rustc-link-lib=static=direct");
}
"#,
        )
        .file(
            "src/main.rs",
            "extern \"C\" { fn direct_value() -> i32; }\nfn main() { println!(\"direct={}\", unsafe { direct_value() }); }\n",
        )
        .build();
    let run = p.larder_cargo(&["build"]).run();
    assert!(c_objects(&run).is_empty(), "{}", run.context());
    assert_eq!(p.run_bin("debug", "direct-cc"), "direct=33");
    p.clean();
    let run = p.larder_cargo(&["build"]).env("CC", "cc").run();
    assert!(
        c_objects(&run).contains_key("cc:v.c"),
        "the direct compile went through larder:\n{}",
        run.context()
    );
    assert_eq!(p.run_bin("debug", "direct-cc"), "direct=33");
}

/// Three machines share one remote and each stores the C objects of another define; a
/// fourth finds the second machine's objects there (one-step keys: an object is its own
/// entry, nothing to merge).
#[test]
fn c_objects_of_every_machine_stay_in_a_shared_remote() {
    let a = c_project();
    let url = format!("file://{}", a.tmp().join("shared").display());
    let run_on = |p: &Project, value: &str| {
        build(p, &[("LARDER_REMOTE", url.as_str()), ("CAPP_VALUE", value)])
    };
    let all = |outcome| [("cc:other.c", outcome), ("cc:value.c", outcome)];
    assert_c(&run_on(&a, "1"), &all("miss"));
    let b = a.on_new_machine();
    // The define reaches both objects' arguments.
    assert_c(&run_on(&b, "2"), &all("miss"));
    assert_c(&run_on(&a, "3"), &all("miss"));
    let d = a.on_new_machine();
    let run = run_on(&d, "2");
    assert_c(&run, &all("hit"));
    assert_eq!(d.run_bin("debug", "capp"), "value=102 other=7");
}

/// A `--target` build for another platform compiles C with that platform's compiler, as
/// plain cargo does: larder's shim is the host's compiler only (`HOST_CC`), never the
/// cross build's. (The cross toolchain is not installed here, so the build fails, as it
/// would without larder; no C is compiled for the host instead.)
#[test]
fn a_cross_build_does_not_get_the_host_compiler() {
    let p = c_project();
    let host = std::process::Command::new("rustc")
        .arg("-vV")
        .output()
        .unwrap();
    let host = String::from_utf8_lossy(&host.stdout).to_string();
    let other = if host.contains("host: aarch64") {
        "x86_64-unknown-linux-gnu"
    } else {
        "aarch64-unknown-linux-gnu"
    };
    let run = p
        .larder_cargo(&["build", "--target", other])
        .env("LARDER_BUILD_SCRIPT_CACHE", "0")
        .run_unchecked();
    assert!(
        c_objects(&run).is_empty(),
        "C compiled through larder's host shim for {other}:\n{}",
        run.context()
    );
    // A host build still compiles its C through larder.
    let run = build(&p, &[]);
    assert_c(&run, &[("cc:other.c", "miss"), ("cc:value.c", "miss")]);
}
