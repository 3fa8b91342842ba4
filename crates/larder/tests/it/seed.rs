//! Seeds (`crates/larder-core/src/seed.rs`): after a build, `larder cargo` records the
//! registry units it cached; the next build of the same command plants them in an
//! empty target directory before cargo starts, and cargo runs nothing for them.
//!
//! The project depends on two real registry crates from this workspace's
//! `Cargo.lock` (so they are in the registry cache; builds run `--offline`): `itoa`
//! (a library) and `libc` (a library with a build script, whose compile and run are
//! units too).

use std::path::{Path, PathBuf};

use crate::support::{Project, Run, files_under, project};

const BUILD: &[&str] = &["build", "--offline"];

/// `app` (bin): prints a number formatted by `itoa` and whether `libc::getpid` is
/// positive.
fn registry_project() -> Project {
    project()
        .file(
            "Cargo.toml",
            "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nitoa = \"=1.0.18\"\nlibc = \"=0.2.191\"\n",
        )
        .file(
            "src/main.rs",
            "fn main() {\n    let mut b = itoa::Buffer::new();\n    println!(\"{} {}\", b.format(4217), unsafe { libc::getpid() } > 0);\n}\n",
        )
        .build()
}

/// Another checkout of `p` with the same store and `CARGO_HOME` (the registry's
/// sources are this machine's), its own target directory.
fn checkout_of(p: &Project) -> Project {
    let mut q = p.relocated_copy();
    q.cargo_home = None;
    q
}

fn planted(run: &Run) -> Option<usize> {
    let line = run
        .stderr
        .lines()
        .find(|l| l.starts_with("larder: planted "))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Plain cargo (`build -v`) finds the registry units fresh and compiles nothing.
fn assert_cargo_finds_all_fresh(plain: crate::support::Cmd) {
    let plain = plain.run();
    for krate in ["itoa", "libc"] {
        assert!(
            plain.stderr.contains(&format!("Fresh {krate} ")),
            "cargo rebuilt {krate}\n{}",
            plain.context()
        );
    }
    assert!(!plain.stderr.contains("Compiling"), "{}", plain.context());
}

/// Files under `dir` whose text names `path`.
fn naming(dir: &Path, path: &Path) -> Vec<PathBuf> {
    let needle = path.display().to_string();
    files_under(dir)
        .into_iter()
        .filter(|f| {
            let name = f.to_string_lossy();
            (name.ends_with(".d") || name.ends_with("output"))
                && std::fs::read_to_string(f).is_ok_and(|t| t.contains(&needle))
        })
        .collect()
}

/// Another checkout and a `cargo clean`: the registry units are planted, cargo finds
/// them fresh (no wrapper runs for them, and plain cargo says `Fresh`), the binary is
/// right, and text files name the new target directory, never the old one.
#[test]
fn registry_units_are_planted_and_cargo_finds_them_fresh() {
    let p = registry_project();
    let first = p.larder_cargo(BUILD).run();
    first.assert_units(&["app", "itoa", "libc", "build_script_build"]);
    assert_eq!(
        planted(&first),
        None,
        "nothing to plant yet\n{}",
        first.context()
    );
    assert_eq!(p.run_bin("debug", "app"), "4217 true");

    let q = checkout_of(&p);
    let second = q.larder_cargo(BUILD).run();
    // itoa; libc's library, build script and run.
    assert_eq!(planted(&second), Some(4), "{}", second.context());
    second.assert_units(&["app"]);
    second.assert_crate("app", "hit");
    assert_eq!(q.run_bin("debug", "app"), "4217 true");
    assert_cargo_finds_all_fresh(q.cargo(&["build", "--offline", "-v"]));
    assert_eq!(naming(&q.target(), &p.target()), Vec::<PathBuf>::new());
    assert!(
        !naming(&q.target(), &q.target()).is_empty(),
        "dep-info names this target"
    );

    // The second build compiled only `app`; the registry units it used (found fresh
    // through cargo's fingerprints) stay in the seed.
    q.clean();
    let third = q.larder_cargo(BUILD).run();
    assert_eq!(planted(&third), Some(4), "{}", third.context());
    assert_eq!(q.run_bin("debug", "app"), "4217 true");
}

/// The edit loop keeps the seed as it is (a build that compiled only the workspace's
/// own crates, in a target directory that has every unit of the seed, records the seed
/// it had without reading the units again); a registry unit that a later build adds in
/// the same target directory joins the seed.
#[test]
fn the_edit_loop_keeps_the_seed_and_a_new_dependency_joins_it() {
    let p = registry_project();
    p.larder_cargo(BUILD).run();
    let main = "src/main.rs";
    p.edit(main, "4217", "4218");
    let edit = p.larder_cargo(BUILD).run();
    edit.assert_units(&["app"]);
    let q = checkout_of(&p);
    let run = q.larder_cargo(BUILD).run();
    assert_eq!(planted(&run), Some(4), "{}", run.context());
    assert_eq!(q.run_bin("debug", "app"), "4218 true");

    // hex joins (in this workspace's Cargo.lock, so in the registry cache).
    p.write(
        "Cargo.toml",
        "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nitoa = \"=1.0.18\"\nlibc = \"=0.2.191\"\nhex = \"=0.4.3\"\n",
    );
    p.edit(
        main,
        "fn main() {\n",
        "fn main() {\n    assert_eq!(hex::encode([1]), \"01\");\n",
    );
    let added = p.larder_cargo(BUILD).run();
    added.assert_crate("hex", "miss");
    let r = checkout_of(&p);
    let run = r.larder_cargo(BUILD).run();
    assert_eq!(planted(&run), Some(5), "{}", run.context());
    run.assert_units(&["app"]);
    assert_eq!(r.run_bin("debug", "app"), "4218 true");
}

/// Nothing planted is ever wrong: a variable that build scripts are keyed by plants
/// nothing (libc's run goes through larder again); a corrupt blob leaves its unit out
/// (cargo builds it, and it is right) and plants the rest.
#[test]
fn another_environment_or_a_corrupt_blob_plants_nothing_wrong() {
    let p = registry_project();
    p.larder_cargo(BUILD).run();

    let q = checkout_of(&p);
    let other_env = q.larder_cargo(BUILD).env("CFLAGS", "-O1").run();
    assert_eq!(planted(&other_env), None, "{}", other_env.context());
    other_env.assert_units(&["app", "itoa", "libc", "build_script_build"]);
    assert_eq!(q.run_bin("debug", "app"), "4217 true");

    // itoa's library, as stored: damaged in the store.
    let rlib = files_under(&p.target().join("debug/deps"))
        .into_iter()
        .find(|f| {
            f.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("libitoa-")
                && f.extension().is_some_and(|e| e == "rlib")
        })
        .expect("itoa's rlib");
    let content = std::fs::read(&rlib).unwrap();
    let mut damaged = 0;
    for blob in p.store_files("cas") {
        if std::fs::read(&blob).is_ok_and(|b| b == content) {
            let mut bad = content.clone();
            bad[content.len() / 2] ^= 0xff;
            std::fs::write(&blob, bad).unwrap();
            damaged += 1;
        }
    }
    assert_eq!(damaged, 1, "itoa's rlib is one uncompressed blob");
    let r = checkout_of(&p);
    let run = r.larder_cargo(BUILD).run();
    assert_eq!(planted(&run), Some(3), "{}", run.context());
    assert!(
        run.stderr
            .contains("1 of the last build's 4 registry units not planted"),
        "{}",
        run.context()
    );
    run.assert_units(&["app", "itoa"]);
    assert_eq!(r.run_bin("debug", "app"), "4217 true");
    let rebuilt = files_under(&r.target().join("debug/deps"))
        .into_iter()
        .find(|f| f.file_name() == rlib.file_name())
        .expect("itoa's rlib, built again");
    assert_eq!(std::fs::read(rebuilt).unwrap(), content);
}

// ---- Seeds on the remotes (`crates/larder-core/src/seed/remote.rs`) ----

/// The remotes a remote-seed test runs against: a shared directory always, Redis and a
/// REAPI server (which addresses blobs by digest and size) when theirs are up.
fn seed_remotes(p: &Project) -> Vec<String> {
    let mut out = vec![format!("file://{}", p.tmp().join("shared").display())];
    out.extend(crate::remote::server_url("LARDER_TEST_REDIS"));
    out.extend(crate::remote::server_url("LARDER_TEST_GRPC"));
    out
}

/// A fresh runner: a copy of `p` with an empty store of its own, the machine's
/// `CARGO_HOME` (as a fleet built from one image has), and cargo's own target directory
/// (`target/` in the checkout, as `p`'s).
fn fresh_runner_of(p: &Project) -> Project {
    let mut q = p.on_new_machine();
    q.cargo_home = None;
    q.target_dir = None;
    q
}

/// `larder cargo build --offline` with `url` as the remote and this test's own flags.
fn remote_build(p: &Project, url: &str, flags: &str) -> crate::support::Cmd {
    p.larder_cargo(BUILD)
        .env("LARDER_REMOTE", url)
        .env("RUSTFLAGS", flags)
}

/// The registry units of a build are published with its seed; a fresh runner (empty
/// store and target directory) plants them from the remote before cargo starts: cargo
/// finds them fresh, the binary is right; a runner of another environment plants
/// nothing.
#[test]
fn a_fresh_runner_plants_the_seed_of_a_remote() {
    let p = registry_project();
    for url in seed_remotes(&p) {
        let flags = crate::support::own_cfg("larder_seed_remote");
        p.clean();
        let first = remote_build(&p, &url, &flags).run();
        first.assert_units(&["app", "itoa", "libc", "build_script_build"]);
        assert_eq!(planted(&first), None, "{url}\n{}", first.context());

        let shared = p.tmp().join("shared").join("v1").join("seed");
        let published = || {
            files_under(&shared)
                .into_iter()
                .map(|f| larder_digest::Digest::of(&std::fs::read(f).unwrap()))
                .collect::<Vec<_>>()
        };
        let before = published();
        if url.starts_with("file://") {
            assert_eq!(before.len(), 1, "one seed published");
        }
        let q = fresh_runner_of(&p);
        let run = remote_build(&q, &url, &flags).run();
        assert_eq!(planted(&run), Some(4), "{url}\n{}", run.context());
        // The runner's seed is the one it planted (its checkout's path, of another
        // length, does not count): nothing is published again.
        assert_eq!(published(), before, "{url}: published again");
        assert!(
            run.stderr
                .contains(&format!("of the last build from {url} (")),
            "{url}\n{}",
            run.context()
        );
        run.assert_units(&["app"]);
        run.assert_crate("app", "hit");
        assert!(!run.stderr.contains("larder: warning"), "{}", run.context());
        assert_eq!(q.run_bin("debug", "app"), "4217 true");
        assert_cargo_finds_all_fresh(
            q.cargo(&["build", "--offline", "-v"])
                .env("RUSTFLAGS", &flags),
        );
        assert_eq!(naming(&q.target(), &p.target()), Vec::<PathBuf>::new());

        // The runner keeps the seed: after `cargo clean` it plants from its own store.
        q.clean();
        let again = remote_build(&q, &url, &flags).run();
        assert_eq!(planted(&again), Some(4), "{}", again.context());
        let line = again
            .stderr
            .lines()
            .find(|l| l.starts_with("larder: planted "));
        assert!(
            !line.unwrap_or_default().contains(" from "),
            "{}",
            again.context()
        );

        // Another environment (a variable build scripts are keyed by): nothing planted.
        let r = fresh_runner_of(&p);
        let other = remote_build(&r, &url, &flags).env("CFLAGS", "-O1").run();
        assert_eq!(planted(&other), None, "{url}\n{}", other.context());
        other.assert_units(&["app", "itoa", "libc", "build_script_build"]);
        assert_eq!(r.run_bin("debug", "app"), "4217 true");
    }
}

/// A runner whose C compiler has the publisher's name (`CC`, the same path) and other
/// content finds the publisher's seed (a remote seed's key has the compilers' names),
/// starts fetching its blobs while its guard (the compilers' content) is computed, and
/// plants nothing: cargo builds every registry unit, the binary is right.
#[test]
fn a_remote_seed_of_another_compiler_under_the_same_name_is_not_planted() {
    let p = registry_project();
    let cc = p.tmp().join("cc-bin").join("cc");
    std::fs::create_dir_all(cc.parent().unwrap()).unwrap();
    let write_cc = |which: &str| {
        std::fs::write(
            &cc,
            format!("#!/bin/sh\n# compiler {which}\nexec gcc \"$@\"\n"),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&cc, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    for url in seed_remotes(&p) {
        let flags = crate::support::own_cfg("larder_seed_other_cc");
        write_cc("a");
        p.clean();
        let first = remote_build(&p, &url, &flags).env("CC", &cc).run();
        assert_eq!(planted(&first), None, "{url}\n{}", first.context());
        // The same runner plants it (the seed is there, under this name).
        let q = fresh_runner_of(&p);
        let same = remote_build(&q, &url, &flags).env("CC", &cc).run();
        assert_eq!(planted(&same), Some(4), "{url}\n{}", same.context());

        write_cc("b");
        let r = fresh_runner_of(&p);
        let other = remote_build(&r, &url, &flags).env("CC", &cc).run();
        assert_eq!(planted(&other), None, "{url}\n{}", other.context());
        assert!(
            !other.stderr.contains("larder: warning"),
            "{}",
            other.context()
        );
        assert_eq!(r.run_bin("debug", "app"), "4217 true");
        let plain = r
            .cargo(&["build", "--offline", "-v"])
            .env("RUSTFLAGS", &flags)
            .env("CC", &cc)
            .run();
        assert!(!plain.stderr.contains("Compiling"), "{}", plain.context());
    }
}

/// Where a remote requires signatures, a seed is planted only as signed by a trusted
/// key: an unsigned one and a changed one are refused with a warning (nothing planted,
/// the build right), and a reader without a signing key does not publish over it.
#[test]
fn a_remote_seed_is_planted_only_as_signed_where_signatures_are_required() {
    let p = registry_project();
    let shared = p.tmp().join("shared");
    let url = format!("file://{}", shared.display());
    let flags = crate::support::own_cfg("larder_seed_signed");
    let (secret, public) = crate::signing::keypair(&p, "team-ci-1");
    remote_build(&p, &url, &flags).run();
    let strict = |q: &Project| {
        remote_build(q, &url, &flags)
            .env("LARDER_TRUSTED_KEYS", &public)
            .env("LARDER_REQUIRE_SIGNATURES", "1")
            .run()
    };
    let seed_files = || files_under(&shared.join("v1").join("seed"));
    assert_eq!(seed_files().len(), 1, "one seed: {:?}", seed_files());
    let unsigned = std::fs::read(&seed_files()[0]).unwrap();

    let r = fresh_runner_of(&p);
    let run = strict(&r);
    assert_eq!(planted(&run), None, "{}", run.context());
    assert!(
        run.stderr
            .contains(&format!("the seed on {url} is refused (unsigned")),
        "{}",
        run.context()
    );
    assert_eq!(r.run_bin("debug", "app"), "4217 true");
    assert_eq!(
        std::fs::read(&seed_files()[0]).unwrap(),
        unsigned,
        "not replaced"
    );

    // The team's build signs its seed (`app` changed: the build reports a unit).
    p.edit(
        "src/main.rs",
        "fn main() {",
        "fn main() {\n    let _signed = 1;",
    );
    remote_build(&p, &url, &flags)
        .env("LARDER_SIGNING_KEY", &secret)
        .run();
    let signed = std::fs::read(&seed_files()[0]).unwrap();
    assert_ne!(signed, unsigned);
    let s = fresh_runner_of(&p);
    let run = strict(&s);
    assert_eq!(planted(&run), Some(4), "{}", run.context());
    assert_eq!(s.run_bin("debug", "app"), "4217 true");

    // A changed seed (one file's time) under the signature: refused.
    let mut doc: serde_json::Value = serde_json::from_slice(&signed).unwrap();
    let mtime = &mut doc["seed"]["units"][0]["files"][0]["mtime_ns"];
    *mtime = serde_json::json!(mtime.as_u64().unwrap() + 1);
    std::fs::write(&seed_files()[0], serde_json::to_vec(&doc).unwrap()).unwrap();
    let t = fresh_runner_of(&p);
    let run = strict(&t);
    assert_eq!(planted(&run), None, "{}", run.context());
    assert!(
        run.stderr
            .contains("is refused (invalid signature by team-ci-1)"),
        "{}",
        run.context()
    );
    assert_eq!(t.run_bin("debug", "app"), "4217 true");
}
