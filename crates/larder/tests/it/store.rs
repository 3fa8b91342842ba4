//! The store under real builds: every crate type round-trips, the size bound holds,
//! corrupt records are misses, bad configuration is named.

use crate::support::{Project, files_under, project};

fn crate_types_project() -> Project {
    project()
        .file(
            "Cargo.toml",
            "[workspace]\nmembers = [\"multi\", \"user\"]\nresolver = \"2\"\n",
        )
        .file(
            "multi/Cargo.toml",
            "[package]\nname = \"multi\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[lib]\ncrate-type = [\"rlib\", \"dylib\", \"staticlib\"]\n",
        )
        .file(
            "multi/src/lib.rs",
            "#[no_mangle]\npub extern \"C\" fn multi_value() -> u32 { 5 }\npub fn value() -> u32 { multi_value() }\n",
        )
        .file(
            "user/Cargo.toml",
            "[package]\nname = \"user\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nmulti = { path = \"../multi\" }\n",
        )
        .file("user/src/main.rs", "fn main() { println!(\"value={}\", multi::value()); }\n")
        .build()
}

/// rlib, dylib and staticlib outputs of one compile are all restored (the fixture has a
/// cdylib; cargo refuses dylib and cdylib in one package).
#[test]
fn every_library_crate_type_round_trips() {
    let p = crate_types_project();
    p.build().assert_all("miss", &["multi", "user"]);
    let deps = p.target().join("debug/deps");
    let names = |suffix: &str| -> Vec<String> {
        std::fs::read_dir(&deps)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with("libmulti") && n.ends_with(suffix))
            .collect()
    };
    let before: Vec<_> = [".rlib", ".so", ".a"]
        .iter()
        .flat_map(|s| names(s))
        .collect();
    assert!(before.len() >= 3, "rlib, so and a outputs: {before:?}");

    p.clean();
    p.build().assert_all("hit", &["multi", "user"]);
    let after: Vec<_> = [".rlib", ".so", ".a"]
        .iter()
        .flat_map(|s| names(s))
        .collect();
    assert_eq!(before, after);
    assert_eq!(p.run_bin("debug", "user"), "value=5");
}

/// A small size bound: the build succeeds and the store stays within the bound.
#[test]
fn store_stays_within_its_size_bound() {
    let p = Project::fixture();
    let bound: u64 = 256 * 1024;
    let run = p
        .larder_cargo(&["build"])
        .env("LARDER_MAX_SIZE", bound.to_string())
        .run();
    run.assert_no_hits();
    p.assert_app(&[]);
    let total: u64 = ["cas", "ac", "manifest", "link"]
        .iter()
        .flat_map(|ns| p.store_files(ns))
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    assert!(total <= bound, "store holds {total} bytes, bound {bound}");
    assert!(total > 0, "the store keeps what fits");
}

/// Corrupt action records and manifests (a damaged index) are misses, and the build is
/// correct.
#[test]
fn corrupt_records_and_manifests_are_misses() {
    let p = Project::fixture();
    p.build();
    for ns in ["ac", "manifest"] {
        for f in p.store_files(ns) {
            std::fs::write(&f, b"{ not json").unwrap();
        }
    }
    p.clean();
    let run = p.build();
    run.assert_no_hits();
    p.assert_app(&[]);
    // The next build repairs the entries.
    p.clean();
    p.build().assert_all("hit", crate::support::FIXTURE_UNITS);
}

/// A value that does not parse is an error naming the variable; nothing is built.
#[test]
fn bad_configuration_names_the_culprit() {
    let p = Project::fixture();
    let run = p
        .larder_cargo(&["build"])
        .env("LARDER_MAX_SIZE", "lots")
        .run_unchecked();
    assert_eq!(run.status.code(), Some(2), "{}", run.context());
    assert!(run.stderr.contains("LARDER_MAX_SIZE"), "{}", run.context());
    assert!(!p.target().exists(), "nothing was built");

    let config = p.tmp().join("config.toml");
    std::fs::write(&config, "max_sise = \"1G\"\n").unwrap();
    let run = p
        .larder(&["stats"])
        .env("LARDER_CONFIG", &config)
        .run_unchecked();
    assert_eq!(run.status.code(), Some(2), "{}", run.context());
    assert!(run.stderr.contains("max_sise"), "{}", run.context());

    // Through plain cargo the wrapper warns and compiles without caching.
    let run = p
        .cargo(&["build"])
        .env("RUSTC_WRAPPER", crate::support::LARDER)
        .env("LARDER_MAX_SIZE", "lots")
        .run();
    assert!(run.stderr.contains("larder: warning"), "{}", run.context());
    p.assert_app(&[]);
    assert!(files_under(&p.larder_dir.join("v1/ac")).is_empty());
}

/// Single flight: two checkouts of the same sources built at the same time into one
/// store compile each unit once on the machine; the other build waits and restores.
#[test]
fn parallel_builds_compile_each_unit_once() {
    let p = Project::fixture();
    let q = p.relocated_copy();
    let (run_p, run_q) = std::thread::scope(|s| {
        let tp = s.spawn(|| p.larder_cargo(&["build"]).run());
        let tq = s.spawn(|| q.larder_cargo(&["build"]).run());
        (tp.join().unwrap(), tq.join().unwrap())
    });
    for krate in crate::support::FIXTURE_UNITS {
        let mut outcomes = run_p.report.outcomes(krate);
        outcomes.extend(run_q.report.outcomes(krate));
        outcomes.sort();
        assert_eq!(
            outcomes,
            vec!["hit".to_string(), "miss".to_string()],
            "{krate}: one compile and one restore\n{}\n{}",
            run_p.context(),
            run_q.context()
        );
    }
    p.assert_app(&[]);
    q.assert_app(&[]);
}

/// Level 0 stores blobs uncompressed; a hit restores them by reflink where the
/// filesystem can, else by copy, and the outputs are right either way.
#[test]
fn uncompressed_blobs_restore() {
    let p = Project::fixture();
    let build = || {
        p.larder_cargo(&["build"])
            .env("LARDER_COMPRESSION_LEVEL", "0")
            .run()
    };
    build().assert_no_hits();
    let raw = p
        .store_files("cas")
        .iter()
        .filter(|f| f.extension().is_some_and(|x| x == "raw"))
        .count();
    assert!(raw > 0, "blobs stored raw");
    p.clean();
    build().assert_all("hit", crate::support::FIXTURE_UNITS);
    p.assert_app(&[]);
}

/// On a filesystem with reflinks (XFS on a loop device, when `mkfs.xfs` and mounting are
/// available; skipped with a message otherwise), restored outputs share the blobs'
/// blocks: the report says how many files were cloned.
#[test]
fn uncompressed_blobs_are_cloned_on_a_reflink_filesystem() {
    let Some(mount) = XfsMount::new() else {
        eprintln!("skipped: no XFS loop mount here (needs mkfs.xfs, root and a loop device)");
        return;
    };
    let p = crate::support::project()
        .fixture()
        .larder_dir(mount.dir.join("store"))
        .build();
    // The workspace and target dir must be on the same filesystem as the store.
    let root = mount.dir.join("ws");
    crate::support::copy_tree(&p.root, &root);
    let mut q = p.relocated_copy();
    q.root = root;
    q.target_dir = Some(mount.dir.join("target"));
    let build = || {
        q.larder_cargo(&["build"])
            .env("LARDER_COMPRESSION_LEVEL", "0")
            .run()
    };
    build();
    q.clean();
    let run = build();
    run.assert_all("hit", crate::support::FIXTURE_UNITS);
    let cloned = run
        .report
        .units()
        .filter(|e| e.detail.as_deref().is_some_and(|d| d.starts_with("cloned")))
        .count();
    assert!(cloned > 0, "hits cloned their outputs:\n{}", run.context());
    q.assert_app(&[]);
}

/// An XFS filesystem with reflinks in a loop-mounted image, unmounted on drop.
struct XfsMount {
    dir: std::path::PathBuf,
    _tmp: tempfile::TempDir,
}

impl XfsMount {
    fn new() -> Option<XfsMount> {
        let tmp = tempfile::tempdir().ok()?;
        let image = tmp.path().join("xfs.img");
        let dir = tmp.path().join("mnt");
        std::fs::create_dir_all(&dir).ok()?;
        let ok = |cmd: &mut std::process::Command| cmd.output().is_ok_and(|o| o.status.success());
        let made = ok(std::process::Command::new("truncate")
            .args(["-s", "400M"])
            .arg(&image))
            && ok(std::process::Command::new("mkfs.xfs")
                .args(["-q", "-f", "-m", "reflink=1"])
                .arg(&image))
            && ok(std::process::Command::new("mount")
                .args(["-o", "loop"])
                .arg(&image)
                .arg(&dir));
        made.then_some(XfsMount { dir, _tmp: tmp })
    }
}

impl Drop for XfsMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.dir).output();
    }
}

/// A well-formed but wrong action record (the digests of two outputs swapped: each
/// names a good blob, of the other output) is never restored: a blob's size must be the
/// size the record gives its output. The record is dropped and the next build repairs
/// it.
#[test]
fn records_with_swapped_outputs_are_misses() {
    let p = Project::fixture();
    p.build();
    let mut swapped = 0;
    for f in p.store_files("ac") {
        let mut record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        let Some(outputs) = record["outputs"].as_array_mut() else {
            continue;
        };
        // Two binary outputs (an rlib and its rmeta): dep-info would not even be text.
        let binary: Vec<usize> = (0..outputs.len())
            .filter(|&i| outputs[i]["rewrite_paths"] == false)
            .collect();
        let [i, j, ..] = binary[..] else { continue };
        if outputs[i]["size"] == outputs[j]["size"] {
            continue;
        }
        let first = outputs[i]["digest"].clone();
        outputs[i]["digest"] = outputs[j]["digest"].clone();
        outputs[j]["digest"] = first;
        std::fs::write(&f, serde_json::to_vec(&record).unwrap()).unwrap();
        swapped += 1;
    }
    assert!(swapped >= 2, "records with two binary outputs: {swapped}");
    p.clean();
    let run = p.build();
    for krate in ["a", "b", "app"] {
        run.assert_crate(krate, "miss");
    }
    p.assert_app(&[]);
    p.clean();
    p.build().assert_all("hit", crate::support::FIXTURE_UNITS);
}

/// A relative `LARDER_DIR` means the directory `larder cargo` runs in: one store there,
/// none in the packages' directories (where each compile runs). A wrapper run by plain
/// cargo cannot know what it is relative to: it says so and compiles without caching.
#[test]
fn a_relative_store_directory_is_resolved_once() {
    let p = Project::fixture();
    let run = p
        .larder_cargo(&["build"])
        .env("LARDER_DIR", "rel-store")
        .run();
    run.assert_all("miss", crate::support::FIXTURE_UNITS);
    let store = p.path("rel-store");
    assert!(
        !files_under(&store.join("v1/ac")).is_empty(),
        "{}",
        run.context()
    );
    let strays: Vec<_> = files_under(&p.root)
        .into_iter()
        .filter(|f| f.to_string_lossy().contains("rel-store") && !f.starts_with(&store))
        .collect();
    assert!(
        strays.is_empty(),
        "stores in package directories: {strays:?}"
    );
    p.clean();
    p.larder_cargo(&["build"])
        .env("LARDER_DIR", "rel-store")
        .run()
        .assert_all("hit", crate::support::FIXTURE_UNITS);
    p.assert_app(&[]);

    p.clean();
    let run = p
        .cargo(&["build"])
        .env("RUSTC_WRAPPER", crate::support::LARDER)
        .env("LARDER_DIR", "rel-store")
        .run();
    assert!(
        run.stderr
            .contains("LARDER_DIR=rel-store is a relative path"),
        "{}",
        run.context()
    );
    p.assert_app(&[]);
}

/// `larder cargo build` at a terminal (through `script`, which gives it one), without
/// the test's report file: what a person at a laptop runs. Its standard output and error.
fn build_at_a_terminal(p: &Project, env: &[(&str, &str)]) -> String {
    let mut cmd = p.command(
        "script",
        &[
            "-qec",
            &format!("{} cargo build", crate::support::LARDER),
            "/dev/null",
        ],
    );
    cmd.env_remove("LARDER_REPORT");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let (status, stdout, _) = crate::support::output_with_timeout(&mut cmd, "script");
    let text = stdout.replace('\r', "");
    assert!(status.success(), "the build failed:\n{text}");
    text
}

/// Holds the store's size lock, which a store job takes to count what it wrote.
fn hold_size_lock(p: &Project) -> std::fs::File {
    let lock = std::fs::File::create(p.larder_dir.join("v1").join("size.lock")).unwrap();
    lock.lock().unwrap();
    lock
}

/// At a terminal, the rebuild of an edited workspace crate ends when cargo does: its
/// result is stored in the background, said so, and a later build that needs it waits
/// for it (the store job holds the unit's single-flight lock), so nothing is lost. A CI
/// run waits for every store. The job is held up by the store's size lock, which the
/// test holds until the build has returned.
#[test]
fn at_a_terminal_an_edit_leaves_its_store_to_the_background() {
    let p = Project::fixture();
    p.build();
    let size_lock = hold_size_lock(&p);
    p.edit("app/src/main.rs", "app=v1", "app=v2");
    let out = build_at_a_terminal(&p, &[]);
    assert!(
        out.contains("larder: storing 1 of the workspace's results in the background"),
        "{out}"
    );
    p.assert_app(&[("app", "v2")]);
    let jobs = p.larder_dir.join("v1").join("jobs");
    let running = || std::fs::read_dir(&jobs).map_or(0, |d| d.count());
    assert_eq!(running(), 1, "the store job waits for the size lock");
    drop(size_lock);
    let started = std::time::Instant::now();
    while running() > 0 {
        assert!(
            started.elapsed().as_secs() < 60,
            "the store job never ended"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    p.clean();
    p.build().assert_all("hit", &["a", "b", "app"]);
    p.assert_app(&[("app", "v2")]);
    // In a CI run, `larder cargo` waits for the store of the next edit (held up by the
    // size lock for a second).
    p.edit("app/src/main.rs", "app=v2", "app=v3");
    let size_lock = hold_size_lock(&p);
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(1));
        drop(size_lock);
    });
    let out = build_at_a_terminal(&p, &[("CI", "true")]);
    release.join().unwrap();
    assert!(!out.contains("in the background"), "{out}");
    assert!(out.contains("larder: waited"), "{out}");
    assert_eq!(running(), 0, "no store job left running");
}

/// rustc's libraries (rlib, rmeta) are stored by a hard link to the compile's own files,
/// so no byte of them is written twice; other outputs are copies (an executable written
/// in place leaves the store's copy alone). The store then never
/// changes those files: a restore in another checkout leaves their modification times
/// (what cargo's freshness compares) alone, so cargo finds nothing to do in the first;
/// and bytes written into one later (a tool writing in place) are never restored.
#[test]
fn libraries_are_stored_by_link_and_left_alone() {
    use std::os::unix::fs::MetadataExt;
    let p = crate::support::Project::fixture();
    p.build().assert_all("miss", crate::support::FIXTURE_UNITS);
    let id = |f: &std::path::Path| {
        let m = std::fs::metadata(f).unwrap();
        (m.dev(), m.ino())
    };
    let blobs: std::collections::BTreeSet<_> = p.store_files("cas").iter().map(|b| id(b)).collect();
    let deps = files_under(&p.target().join("debug/deps"));
    let libraries: Vec<_> = deps
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "rlib" || e == "rmeta"))
        .collect();
    assert!(libraries.len() >= 3, "rlib and rmeta outputs: {deps:?}");
    for l in &libraries {
        assert!(
            blobs.contains(&id(l)),
            "{} is not the store's blob",
            l.display()
        );
    }
    let app = deps
        .iter()
        .find(|f| {
            f.file_name().unwrap().to_str().unwrap().starts_with("app-") && f.extension().is_none()
        })
        .expect("the app's executable");
    assert!(!blobs.contains(&id(app)), "an executable is copied");
    let mtime = |f: &std::path::Path| std::fs::metadata(f).unwrap().modified().unwrap();
    let times: Vec<_> = libraries.iter().map(|l| mtime(l)).collect();

    let q = p.relocated_copy();
    q.build().assert_all("hit", crate::support::FIXTURE_UNITS);
    q.assert_app(&[]);
    for (l, t) in libraries.iter().zip(&times) {
        assert_eq!(mtime(l), *t, "{} got a new time", l.display());
    }
    let again = p.build();
    assert_eq!(
        again.report.units().count(),
        0,
        "cargo rebuilt in the first checkout\n{}",
        again.context()
    );

    // An executable written in place, as GNU strip does to a file with several links
    // (cargo's uplifted binaries have two): the store's copy is another file, and a new
    // checkout still gets the app as compiled.
    let mut bytes = std::fs::read(app).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::io::Write::write_all(
        &mut std::fs::OpenOptions::new().write(true).open(app).unwrap(),
        &bytes,
    )
    .unwrap();
    let r = p.relocated_copy();
    r.build().assert_crate("app", "hit");
    r.assert_app(&[]);

    // A write into a library in place reaches the store's blob: it is never restored.
    let liba = libraries
        .iter()
        .find(|l| {
            let name = l.file_name().unwrap().to_str().unwrap();
            name.starts_with("liba-") && name.ends_with(".rlib")
        })
        .expect("crate a's rlib");
    std::io::Write::write_all(
        &mut std::fs::OpenOptions::new().append(true).open(liba).unwrap(),
        b"written in place",
    )
    .unwrap();
    q.clean();
    let run = q.build();
    run.assert_crate("a", "miss");
    q.assert_app(&[]);
}
