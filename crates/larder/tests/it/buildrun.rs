//! Build-script runs: cached behind a shim, restored with their `OUT_DIR` and
//! directives, keyed by what they declare (or the whole package), never cached when
//! they probe the system or fail.

use crate::support::{Project, project};

fn run_outcomes(run: &crate::support::Run, package: &str) -> Vec<String> {
    run.report
        .runs()
        .filter(|e| e.krate.as_deref() == Some(package))
        .map(|e| e.outcome.clone())
        .collect()
}

/// The fixture's `a` writes `gen.rs` into `OUT_DIR` from `LARDER_FIXTURE_GEN`, which it
/// declares with `rerun-if-env-changed`.
#[test]
fn run_is_restored_with_its_out_dir_and_keyed_by_declared_variables() {
    let p = Project::fixture();
    let run = p.build();
    assert_eq!(run_outcomes(&run, "a"), ["miss"], "{}", run.context());
    let gen_files = || -> Vec<_> {
        crate::support::files_under(&p.target().join("debug/build"))
            .into_iter()
            .filter(|f| f.ends_with("out/gen.rs"))
            .collect()
    };
    assert_eq!(gen_files().len(), 1);

    p.clean();
    let run = p.build();
    assert_eq!(run_outcomes(&run, "a"), ["hit"], "{}", run.context());
    assert_eq!(gen_files().len(), 1, "OUT_DIR restored");
    p.assert_app(&[]);

    let run = p
        .larder_cargo(&["build"])
        .env("LARDER_FIXTURE_GEN", "9")
        .run();
    assert_eq!(run_outcomes(&run, "a"), ["miss"], "{}", run.context());
    p.assert_app(&[("generated", "9"), ("sum", "110")]);

    p.clean();
    let run = p.build();
    assert_eq!(run_outcomes(&run, "a"), ["hit"], "{}", run.context());
    p.assert_app(&[]);
}

/// A package whose build script reads `data.txt` (declared or not) into `OUT_DIR`.
fn data_project(build_rs_extra: &str) -> Project {
    project()
        .file(
            "Cargo.toml",
            "[package]\nname = \"datapkg\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
        )
        .file(
            "build.rs",
            format!(
                "fn main() {{\n    {build_rs_extra}\n    let data = std::fs::read_to_string(\"data.txt\").unwrap();\n    let out = std::path::PathBuf::from(std::env::var(\"OUT_DIR\").unwrap());\n    std::fs::write(out.join(\"data.rs\"), format!(\"pub const DATA: &str = {{:?}};\", data.trim())).unwrap();\n}}\n"
            ),
        )
        .file("data.txt", "first")
        .file(
            "src/main.rs",
            "include!(concat!(env!(\"OUT_DIR\"), \"/data.rs\"));\nfn main() { println!(\"{DATA}\"); }\n",
        )
        .build()
}

/// A build script not called `build.rs` (`build = "builder/main.rs"`, as aws-lc-sys has):
/// cargo names its crate `build_script_main`, and its runs are cached all the same.
#[test]
fn a_build_script_with_another_file_name_is_cached() {
    let p = project()
        .file(
            "Cargo.toml",
            "[package]\nname = \"datapkg\"\nversion = \"0.1.0\"\nedition = \"2021\"\nbuild = \"builder/main.rs\"\n",
        )
        .file(
            "builder/main.rs",
            "fn main() {\n    let data = std::fs::read_to_string(\"data.txt\").unwrap();\n    let out = std::path::PathBuf::from(std::env::var(\"OUT_DIR\").unwrap());\n    std::fs::write(out.join(\"data.rs\"), format!(\"pub const DATA: &str = {:?};\", data.trim())).unwrap();\n}\n",
        )
        .file("data.txt", "first")
        .file(
            "src/main.rs",
            "include!(concat!(env!(\"OUT_DIR\"), \"/data.rs\"));\nfn main() { println!(\"{DATA}\"); }\n",
        )
        .build();
    let run = p.build();
    run.assert_crate("build_script_main", "miss");
    assert_eq!(run_outcomes(&run, "datapkg"), ["miss"], "{}", run.context());
    assert_eq!(p.run_bin("debug", "datapkg"), "first");

    p.clean();
    let run = p.build();
    run.assert_crate("build_script_main", "hit");
    assert_eq!(run_outcomes(&run, "datapkg"), ["hit"], "{}", run.context());
    assert_eq!(p.run_bin("debug", "datapkg"), "first");

    p.write("data.txt", "second");
    let run = p.build();
    assert_eq!(run_outcomes(&run, "datapkg"), ["miss"], "{}", run.context());
    assert_eq!(p.run_bin("debug", "datapkg"), "second");
}

/// Without any `rerun-if-*` directive, every file of the package is an input, as cargo
/// assumes.
#[test]
fn undeclared_package_files_are_inputs() {
    let p = data_project("");
    let run = p.build();
    assert_eq!(run_outcomes(&run, "datapkg"), ["miss"], "{}", run.context());
    p.write("data.txt", "second");
    let run = p.build();
    assert_eq!(run_outcomes(&run, "datapkg"), ["miss"], "{}", run.context());
    assert_eq!(p.run_bin("debug", "datapkg"), "second");
    p.write("data.txt", "first");
    p.clean();
    let run = p.build();
    assert_eq!(run_outcomes(&run, "datapkg"), ["hit"], "{}", run.context());
    assert_eq!(p.run_bin("debug", "datapkg"), "first");
}

/// Item 3, as the differential suite found it: a package whose build script declares only
/// variables exists as a registry checkout under `CARGO_HOME` (immutable: keyed by the
/// variables alone) and as a vendored copy (editable, with the same package id). The
/// registry checkout's entry never answers for the vendored copy, whose data file was
/// edited.
#[test]
fn a_registry_entry_never_answers_for_a_vendored_copy() {
    let mut p = project()
        .file(
            "src/main.rs",
            "fn main() {\n    println!(\"{}\", datapkg::DATA);\n}\n",
        )
        .build();
    let home = p.tmp().join("cargo-home");
    let registry = home.join("registry/src/index.example-0/datapkg-0.1.0");
    let package = [
        (
            "Cargo.toml",
            "[package]\nname = \"datapkg\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
        ),
        (
            "build.rs",
            "fn main() {\n    println!(\"cargo:rerun-if-env-changed=DATAPKG_FLAVOR\");\n    let data = std::fs::read_to_string(\"data.txt\").unwrap();\n    let out = std::path::PathBuf::from(std::env::var(\"OUT_DIR\").unwrap());\n    std::fs::write(out.join(\"data.rs\"), format!(\"pub const DATA: &str = {:?};\", data.trim())).unwrap();\n}\n",
        ),
        ("data.txt", "registry"),
        (
            "src/lib.rs",
            "include!(concat!(env!(\"OUT_DIR\"), \"/data.rs\"));\n",
        ),
    ];
    for (path, content) in package {
        crate::support::write_file(&registry.join(path), content);
    }
    let manifest = |dep: &str| {
        format!(
            "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\ndatapkg = {{ path = {dep:?} }}\n\n[workspace]\n"
        )
    };
    p.write("Cargo.toml", &manifest(registry.to_str().unwrap()));
    p.cargo_home = Some(home);
    let run = p.build();
    assert_eq!(run_outcomes(&run, "datapkg"), ["miss"], "{}", run.context());
    assert_eq!(p.run_bin("debug", "app"), "registry");

    // The same package (same path, so the same package id and `-C metadata`, as with
    // `cargo vendor`'s source replacement), now outside `CARGO_HOME`: an editable copy.
    // Its data file is edited; the registry checkout's entry must not answer.
    p.cargo_home = Some(p.tmp().join("another-cargo-home"));
    crate::support::write_file(&registry.join("data.txt"), "vendored and edited");
    p.clean();
    let run = p.build();
    assert_eq!(run_outcomes(&run, "datapkg"), ["miss"], "{}", run.context());
    assert_eq!(p.run_bin("debug", "app"), "vendored and edited");
}

/// A build script whose generated source names an absolute path (issue 9, classes: output
/// that embeds where it was made): restored in another checkout, the file names that
/// checkout's directory, as the script would have written it there, and the binary
/// built from it too.
#[test]
fn generated_text_naming_its_directory_is_rewritten() {
    let p = project()
        .file(
            "Cargo.toml",
            "[package]\nname = \"located\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
        )
        .file(
            "build.rs",
            "fn main() {\n    println!(\"cargo:rerun-if-changed=build.rs\");\n    let out = std::env::var(\"OUT_DIR\").unwrap();\n    std::fs::write(format!(\"{out}/paths.rs\"), format!(\"pub const OUT: &str = {out:?};\")).unwrap();\n}\n",
        )
        .file(
            "src/main.rs",
            "include!(concat!(env!(\"OUT_DIR\"), \"/paths.rs\"));\nfn main() { println!(\"{OUT}\"); }\n",
        )
        .build();
    let run = p.build();
    assert_eq!(run_outcomes(&run, "located"), ["miss"], "{}", run.context());
    let first = p.run_bin("debug", "located");
    assert!(first.starts_with(p.target().to_str().unwrap()), "{first}");
    p.clean();
    let run = p.build();
    assert_eq!(run_outcomes(&run, "located"), ["hit"], "{}", run.context());
    assert_eq!(p.run_bin("debug", "located"), first);

    let q = p.relocated_copy();
    let run = q.build();
    assert_eq!(run_outcomes(&run, "located"), ["hit"], "{}", run.context());
    run.assert_crate("located", "miss"); // the bin: its included source names this checkout
    let here = q.run_bin("debug", "located");
    assert!(
        here.starts_with(q.target().to_str().unwrap()),
        "the binary names {here}, not this checkout's target directory\n{}",
        run.context()
    );
}

/// Item 10: the compiler is keyed by its identity, not by how cargo names it to build
/// scripts (`RUSTC=rustc` from a container's `PATH`, an absolute toolchain path on a
/// laptop): runs stored with one hit with the other.
#[test]
fn runs_hit_with_the_toolchain_elsewhere() {
    let p = data_project("println!(\"cargo:rerun-if-changed=data.txt\");");
    let sysroot = std::process::Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .unwrap();
    let sysroot = String::from_utf8(sysroot.stdout).unwrap();
    let absolute = format!("{}/bin/rustc", sysroot.trim());
    let run = p.larder_cargo(&["build"]).env("RUSTC", &absolute).run();
    assert_eq!(run_outcomes(&run, "datapkg"), ["miss"], "{}", run.context());
    p.clean();
    let run = p.larder_cargo(&["build"]).env("RUSTC", "rustc").run();
    assert_eq!(run_outcomes(&run, "datapkg"), ["hit"], "{}", run.context());
    assert_eq!(p.run_bin("debug", "datapkg"), "first");
}

/// Found by the differential suite: a build script sees its environment in the order
/// cargo gives it (sorted by name), though it runs behind larder's `/bin/sh` shim, which
/// reorders it. A script that prints what it iterates (libm's `CFG_CARGO_FEATURES`)
/// writes what it writes under plain cargo.
#[test]
fn a_build_script_sees_the_environment_in_cargos_order() {
    let p = project()
        .file(
            "Cargo.toml",
            "[package]\nname = \"order\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[features]\ndefault = [\"zeta\", \"alpha\", \"mid\", \"beta\"]\nzeta = []\nalpha = []\nmid = []\nbeta = []\n",
        )
        .file(
            "build.rs",
            "fn main() {\n    let names: Vec<String> = std::env::vars().map(|(k, _)| k).filter(|k| k.starts_with(\"CARGO_\") || k.starts_with(\"DEP_\") || k == \"OUT_DIR\" || k == \"TARGET\").collect();\n    println!(\"cargo:rustc-env=ORDER={}\", names.join(\",\"));\n}\n",
        )
        .file("src/main.rs", "fn main() { println!(\"{}\", env!(\"ORDER\")); }\n")
        .build();
    p.build();
    let through_larder = p.run_bin("debug", "order");
    p.clean();
    p.cargo(&["build"]).run();
    assert_eq!(through_larder, p.run_bin("debug", "order"));
}

/// With `rerun-if-changed`, the declared files are the inputs.
#[test]
fn declared_file_change_misses() {
    let p = data_project(
        "println!(\"cargo:rerun-if-changed=data.txt\"); println!(\"cargo:rerun-if-changed=build.rs\");",
    );
    p.build();
    p.write("data.txt", "changed");
    let run = p.build();
    assert_eq!(run_outcomes(&run, "datapkg"), ["miss"], "{}", run.context());
    assert_eq!(p.run_bin("debug", "datapkg"), "changed");
    // An undeclared file does not matter.
    p.write("notes.md", "unrelated");
    p.clean();
    let run = p.build();
    assert_eq!(run_outcomes(&run, "datapkg"), ["hit"], "{}", run.context());
    assert_eq!(p.run_bin("debug", "datapkg"), "changed");
}

/// A script that points the linker at a system directory probed the system: its run is
/// not cached, and the build is as without larder.
#[test]
fn system_probe_is_not_cached() {
    let p = data_project(
        "println!(\"cargo:rerun-if-changed=data.txt\"); println!(\"cargo:rustc-link-search=native=/usr/lib\");",
    );
    let run = p.build();
    let entry = run
        .report
        .runs()
        .find(|e| e.krate.as_deref() == Some("datapkg"))
        .expect("a run line");
    assert_eq!(entry.outcome, "miss", "{}", run.context());
    assert!(
        entry.line.contains("system-path") || entry.line.contains("probed the system"),
        "{}",
        entry.line
    );
    p.clean();
    let run = p.build();
    assert_eq!(run_outcomes(&run, "datapkg"), ["miss"], "{}", run.context());
    assert_eq!(p.run_bin("debug", "datapkg"), "first");
}

/// A failing script fails the build as it would without larder, and is not cached.
#[test]
fn failing_script_is_not_cached() {
    let p = data_project("println!(\"cargo:rerun-if-changed=data.txt\");");
    std::fs::remove_file(p.path("data.txt")).unwrap();
    let run = p.larder_cargo(&["build"]).run_unchecked();
    assert!(!run.status.success(), "{}", run.context());
    assert!(
        !run.report
            .runs()
            .any(|e| e.line.contains("\"stored\":true")),
        "{}",
        run.context()
    );
    p.write("data.txt", "back");
    p.build();
    assert_eq!(p.run_bin("debug", "datapkg"), "back");
}

/// `LARDER_BUILD_SCRIPT_CACHE=0` leaves build scripts alone: no shim, no run lines.
#[test]
fn run_cache_can_be_turned_off() {
    let p = data_project("");
    let run = p
        .larder_cargo(&["build"])
        .env("LARDER_BUILD_SCRIPT_CACHE", "0")
        .run();
    assert_eq!(run.report.runs().count(), 0, "{}", run.context());
    let shims = crate::support::files_under(&p.target().join("debug/build"))
        .into_iter()
        .filter(|f| f.to_string_lossy().ends_with(".larder-real"))
        .count();
    assert_eq!(shims, 0);
    assert_eq!(p.run_bin("debug", "datapkg"), "first");
}

/// `zdep` (`links = "zdep"`) writes a header into its `OUT_DIR` from
/// `LARDER_TEST_Z` and exports its directory as `DEP_ZDEP_INCLUDE`; `user`'s build script
/// reads the header without declaring it. The header's content is an input of `user`'s
/// run: the path stays the same, only the content changes.
#[test]
fn dependency_metadata_content_is_an_input() {
    let p = project()
        .file(
            "Cargo.toml",
            "[workspace]\nmembers = [\"zdep\", \"user\"]\nresolver = \"2\"\n",
        )
        .file(
            "zdep/Cargo.toml",
            "[package]\nname = \"zdep\"\nversion = \"0.1.0\"\nedition = \"2021\"\nlinks = \"zdep\"\n",
        )
        .file(
            "zdep/build.rs",
            r#"fn main() {
    println!("cargo:rerun-if-env-changed=LARDER_TEST_Z");
    let v = std::env::var("LARDER_TEST_Z").unwrap_or_else(|_| "1".into());
    let inc = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("include");
    std::fs::create_dir_all(&inc).unwrap();
    std::fs::write(inc.join("z.h"), v).unwrap();
    println!("cargo:include={}", inc.display());
}
"#,
        )
        .file("zdep/src/lib.rs", "")
        .file(
            "user/Cargo.toml",
            "[package]\nname = \"user\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nzdep = { path = \"../zdep\" }\n",
        )
        .file(
            "user/build.rs",
            r#"fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let inc = std::env::var("DEP_ZDEP_INCLUDE").unwrap();
    let v = std::fs::read_to_string(std::path::Path::new(&inc).join("z.h")).unwrap();
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap());
    std::fs::write(out.join("z.rs"), format!("pub const Z: &str = {:?};", v)).unwrap();
}
"#,
        )
        .file(
            "user/src/main.rs",
            "include!(concat!(env!(\"OUT_DIR\"), \"/z.rs\"));\nfn main() { println!(\"z={Z}\"); }\n",
        )
        .build();
    let build = |v: &str| p.larder_cargo(&["build"]).env("LARDER_TEST_Z", v).run();
    build("1");
    assert_eq!(p.run_bin("debug", "user"), "z=1");
    let run = build("2");
    assert_eq!(run_outcomes(&run, "user"), ["miss"], "{}", run.context());
    assert_eq!(p.run_bin("debug", "user"), "z=2");
    p.clean();
    let run = build("1");
    assert_eq!(run_outcomes(&run, "user"), ["hit"], "{}", run.context());
    assert_eq!(p.run_bin("debug", "user"), "z=1");
}

/// The script's own code is an input: another script reading the same declared file
/// misses, and the first one hits again.
#[test]
fn script_code_is_an_input() {
    let declared = "println!(\"cargo:rerun-if-changed=data.txt\");";
    let p = data_project(declared);
    let run = p.build();
    assert_eq!(run_outcomes(&run, "datapkg"), ["miss"], "{}", run.context());
    let first = std::fs::read_to_string(p.path("build.rs")).unwrap();
    p.write(
        "build.rs",
        &first.replace(
            declared,
            &format!("{declared} println!(\"cargo:rustc-env=SCRIPT=2\");"),
        ),
    );
    let run = p.build();
    let e = run
        .report
        .runs()
        .find(|e| e.krate.as_deref() == Some("datapkg"))
        .expect("a run line");
    assert_eq!(
        (e.outcome.as_str(), e.reason.as_deref()),
        ("miss", Some("no-entry")),
        "{}",
        run.context()
    );
    p.write("build.rs", &first);
    let run = p.build();
    assert_eq!(run_outcomes(&run, "datapkg"), ["hit"], "{}", run.context());
    assert_eq!(p.run_bin("debug", "datapkg"), "first");
}

/// The variables cargo and the environment give the script are inputs even when it does
/// not declare them (here `PKG_CONFIG_PATH`, which pkg-config reads).
#[test]
fn script_environment_is_an_input() {
    let p = data_project("println!(\"cargo:rerun-if-changed=data.txt\");");
    p.build();
    p.clean();
    let run = p
        .larder_cargo(&["build"])
        .env("PKG_CONFIG_PATH", "/opt/other/pkgconfig")
        .run();
    assert_eq!(run_outcomes(&run, "datapkg"), ["miss"], "{}", run.context());
    p.clean();
    let run = p.build();
    assert_eq!(run_outcomes(&run, "datapkg"), ["hit"], "{}", run.context());
}

/// `larder cargo` puts its compiler shims in `CC`/`CXX`; a run is keyed by the compiler
/// behind the shim, so plain cargo with `RUSTC_WRAPPER=larder` (an IDE, a
/// `.cargo/config.toml`) shares build-script runs with `larder cargo`.
#[test]
fn runs_are_shared_between_larder_cargo_and_a_plain_wrapper() {
    let p = Project::fixture();
    let run = p.build();
    assert_eq!(run_outcomes(&run, "a"), ["miss"], "{}", run.context());
    p.clean();
    let report = p.tmp().join("plain-report.jsonl");
    let run = p
        .cargo(&["build"])
        .env("RUSTC_WRAPPER", crate::support::LARDER)
        .env("LARDER_REPORT", &report)
        .run();
    let report = crate::support::Report::read(&report);
    let outcomes: Vec<_> = report
        .runs()
        .filter(|e| e.krate.as_deref() == Some("a"))
        .map(|e| e.outcome.clone())
        .collect();
    assert_eq!(
        outcomes,
        ["hit"],
        "{}\n{:#?}",
        run.context(),
        report.entries
    );
    p.assert_app(&[]);
}

/// A script that declares only variables (`rerun-if-env-changed`, as `cc`-crate scripts
/// do) in a path or vendored package is keyed by the package's files too: an edit to a
/// file it reads reaches the binary after a clean build, never a stale run.
#[test]
fn a_path_package_declaring_only_variables_is_keyed_by_its_files() {
    let p = data_project("println!(\"cargo:rerun-if-env-changed=DATAPKG_FLAVOR\");");
    let run = p.build();
    assert_eq!(run_outcomes(&run, "datapkg"), ["miss"], "{}", run.context());
    p.write("data.txt", "second");
    p.clean();
    let run = p.build();
    assert_eq!(run_outcomes(&run, "datapkg"), ["miss"], "{}", run.context());
    assert_eq!(p.run_bin("debug", "datapkg"), "second");
    p.write("data.txt", "first");
    p.clean();
    let run = p.build();
    assert_eq!(run_outcomes(&run, "datapkg"), ["hit"], "{}", run.context());
    assert_eq!(p.run_bin("debug", "datapkg"), "first");
}
