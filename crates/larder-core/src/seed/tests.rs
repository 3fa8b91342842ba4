use super::capture::walk_files;
use super::*;
use crate::report::Event;

const A: &str = "0123456789abcdef";
const B: &str = "fedcba9876543210";
const C: &str = "00000000000000cc";
const D: &str = "00000000000000dd";
const E: &str = "00000000000000ee";

/// A target directory as cargo leaves it after building `app` (a path package's bin,
/// hash `C`) on `applib` (its library, hash `E`, never recorded), on `foo` (a library,
/// hash `A`) and running foo's build script (hash `B`):
/// fingerprints (hash files: a u64's little-endian bytes in hex; `*.json` listing the
/// dependencies' hashes), outputs, a dep-info file and a build script `output` naming
/// the target directory, and `old`, a unit of an older dependency that nothing uses.
fn cargo_target(root: &Path) -> PathBuf {
    let t = root.join("target");
    let d = t.join("debug");
    let target = t.display().to_string();
    for (path, content) in [
        ("CACHEDIR.TAG".to_string(), CACHEDIR_TAG.to_string()),
        (
            format!("debug/.fingerprint/foo-{A}/lib-foo"),
            "0100000000000000".into(),
        ),
        (
            format!("debug/.fingerprint/foo-{A}/lib-foo.json"),
            r#"{"deps":[[9,"build_script_build",false,2]]}"#.into(),
        ),
        (
            format!("debug/.fingerprint/foo-{A}/dep-lib-foo"),
            "\u{1}".into(),
        ),
        (format!("debug/deps/libfoo-{A}.rlib"), "rlib\0bytes".into()),
        (
            format!("debug/deps/libfoo-{A}.rmeta"),
            "rmeta\0bytes".into(),
        ),
        (
            format!("debug/deps/foo-{A}.d"),
            format!("{target}/debug/deps/libfoo-{A}.rlib: src/lib.rs\n"),
        ),
        (format!("debug/deps/libbar-{B}0.rlib"), "not foo's".into()),
        (
            format!("debug/.fingerprint/foo-{B}/run-build-script-build-script-build"),
            "0200000000000000".into(),
        ),
        (
            format!("debug/build/foo-{B}/output"),
            format!("cargo:rustc-link-search=native={target}/debug/build/foo-{B}/out\n"),
        ),
        (
            format!("debug/build/foo-{B}/root-output"),
            format!("{target}/debug/build/foo-{B}/out"),
        ),
        (
            format!("debug/build/foo-{B}/out/gen.rs"),
            "pub const X: u32 = 1;\n".into(),
        ),
        (
            format!("debug/.fingerprint/app-{C}/bin-app"),
            "0300000000000000".into(),
        ),
        (
            format!("debug/.fingerprint/app-{C}/bin-app.json"),
            r#"{"deps":[[7,"applib",false,5]]}"#.into(),
        ),
        (
            format!("debug/.fingerprint/applib-{E}/lib-applib"),
            "0500000000000000".into(),
        ),
        (
            format!("debug/.fingerprint/applib-{E}/lib-applib.json"),
            r#"{"deps":[[8,"foo",false,1]]}"#.into(),
        ),
        (
            format!("debug/.fingerprint/old-{D}/lib-old"),
            "0400000000000000".into(),
        ),
        (format!("debug/deps/libold-{D}.rlib"), "old".into()),
    ] {
        let p = t.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
    }
    // Distinct, older times, as a build leaves them.
    for (i, p) in files_under(&d).iter().enumerate() {
        let f = std::fs::File::options().write(true).open(p).unwrap();
        f.set_modified(UNIX_EPOCH + Duration::from_secs(1_700_000_000 + i as u64))
            .unwrap();
    }
    t
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    walk_files(dir, &mut out).unwrap();
    out.sort();
    out
}

fn event(dir: &Path, outcome: &str, stored: bool) -> Event {
    Event {
        crate_name: Some("foo".into()),
        crate_types: vec![],
        outcome: outcome.into(),
        reason: None,
        detail: None,
        stored,
        secs: 0.0,
        saved_secs: 0.0,
        bytes_restored: 0,
        remote: None,
        key: None,
        invocation: None,
        package: Some("foo".into()),
        exit_code: 0,
        replay: None,
        fingerprint: Some(dir.display().to_string()),
        seedable: !dir.to_string_lossy().contains("/app-"),
    }
}

fn store(root: &Path) -> DiskStore {
    DiskStore::open(&root.join("store"), u64::MAX)
        .unwrap()
        .with_compression_level(0)
}

fn recorded(root: &Path, t: &Path, s: &DiskStore) -> Seed {
    let fp = t.join("debug/.fingerprint");
    let events = [
        event(&fp.join(format!("foo-{A}")), "hit", false),
        event(&fp.join(format!("foo-{B}")), "miss", true),
    ];
    capture(s, Digest::of(b"guard"), root, &events, None).expect("a record")
}

#[test]
fn unit_hashes_are_read_from_cargo_file_names() {
    assert_eq!(file_hash(&format!("libserde-{A}.rlib")), Some(A));
    assert_eq!(file_hash(&format!("serde-{A}.d")), Some(A));
    assert_eq!(file_hash(&format!("build_script_build-{A}")), Some(A));
    assert_eq!(file_hash("libserde.rlib"), None);
    assert_eq!(file_hash("libserde-0123.rlib"), None);
    assert_eq!(file_hash(&format!("x-{A}0.rlib")), None);
}

#[test]
fn a_recorded_unit_is_planted_as_it_was_with_this_target_directory_in_its_text() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("one");
    let t = cargo_target(&old);
    let s = store(dir.path());
    let record = recorded(&old, &t, &s);
    assert_eq!(record.target_dir, "target");
    let names: Vec<&str> = record
        .units
        .iter()
        .map(|u| u.fingerprint.as_str())
        .collect();
    assert_eq!(
        names,
        [
            format!("debug/.fingerprint/foo-{A}"),
            format!("debug/.fingerprint/foo-{B}")
        ],
        "only the units reported cached; the path package's unit is not recorded"
    );
    let lib = &record.units[0];
    assert!(lib.files.iter().all(|f| !f.path.contains("libbar")));
    assert!(
        lib.files.last().unwrap().path.contains(".fingerprint"),
        "fingerprint files come last"
    );

    // Another checkout: planted under its own target directory.
    let new = dir.path().join("two");
    std::fs::create_dir_all(&new).unwrap();
    let t2 = target_dir_for(&record, &new);
    assert_eq!(t2, new.join("target"));
    let p = plant(&s, &record, &t2, &HashSet::new());
    assert_eq!((p.units, p.failed, p.present), (2, 0, 0), "{p:?}");
    assert!(
        t2.join("CACHEDIR.TAG").is_file(),
        "cargo finds a target directory"
    );
    for unit in &record.units {
        for f in &unit.files {
            let (a, b) = (t.join(&f.path), t2.join(&f.path));
            let (ma, mb) = (
                std::fs::metadata(&a).unwrap(),
                std::fs::metadata(&b).unwrap(),
            );
            assert_eq!(ma.modified().unwrap(), mb.modified().unwrap(), "{}", f.path);
            let (ca, cb) = (
                std::fs::read_to_string(&a).unwrap(),
                std::fs::read_to_string(&b).unwrap(),
            );
            let old_target = t.display().to_string();
            let new_target = t2.display().to_string();
            assert_eq!(ca.replace(&old_target, &new_target), cb, "{}", f.path);
        }
    }
    assert!(
        std::fs::read_to_string(t2.join(format!("debug/build/foo-{B}/root-output")))
            .unwrap()
            .starts_with(&t2.display().to_string())
    );
    assert!(!t2.join(format!("debug/.fingerprint/app-{C}")).exists());
    let leftovers: Vec<_> = std::fs::read_dir(t2.join("debug/.fingerprint"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(STAGING))
        .collect();
    assert!(leftovers.is_empty());
}

fn target_dir_for(record: &Seed, project: &Path) -> PathBuf {
    super::target_dir(record, &[], project, project)
}

#[test]
fn what_the_target_directory_has_is_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let t = cargo_target(dir.path());
    let s = store(dir.path());
    let record = recorded(dir.path(), &t, &s);
    // The same target directory: both units are there.
    std::fs::write(t.join(format!("debug/deps/libfoo-{A}.rlib")), "newer").unwrap();
    let p = plant(&s, &record, &t, &HashSet::new());
    assert_eq!((p.units, p.present), (0, 2));
    assert_eq!(
        std::fs::read(t.join(format!("debug/deps/libfoo-{A}.rlib"))).unwrap(),
        b"newer"
    );
    // A build directory without its fingerprint (a run cut short) is cargo's to redo.
    std::fs::remove_dir_all(t.join(format!("debug/.fingerprint/foo-{B}"))).unwrap();
    let p = plant(&s, &record, &t, &HashSet::new());
    assert_eq!((p.units, p.present), (0, 2));
    assert!(!t.join(format!("debug/.fingerprint/foo-{B}")).exists());
}

#[test]
fn a_target_directory_with_every_unit_of_every_seed_needs_no_plant() {
    let dir = tempfile::tempdir().unwrap();
    let t = cargo_target(dir.path());
    let s = store(dir.path());
    let seed = recorded(dir.path(), &t, &s);
    let mut record = SeedRecord::default();
    record.put(seed.clone());
    let (args, root) = (Vec::new(), dir.path());
    assert!(nothing_to_plant(&record, &args, root, root));
    // A seed of another guard whose unit is not there: a plant might bring it.
    let mut other = seed.clone();
    other.guard = Digest::of(b"another guard");
    other.units[0].fingerprint = format!("debug/.fingerprint/foo-{D}");
    record.put(other);
    assert!(!nothing_to_plant(&record, &args, root, root));
    // One unit gone (`cargo clean -p foo`): the plant has something to do.
    let mut record = SeedRecord::default();
    record.put(seed);
    std::fs::remove_dir_all(t.join(format!("debug/.fingerprint/foo-{A}"))).unwrap();
    assert!(!nothing_to_plant(&record, &args, root, root));
    // Another target directory (`--target-dir`), empty.
    let args = vec!["--target-dir".to_string(), "elsewhere".to_string()];
    std::fs::create_dir_all(t.join(format!("debug/.fingerprint/foo-{A}"))).unwrap();
    assert!(nothing_to_plant(&record, &[], root, root));
    assert!(!nothing_to_plant(&record, &args, root, root));
}

#[test]
fn a_corrupt_blob_leaves_its_unit_out_and_the_others_in() {
    let dir = tempfile::tempdir().unwrap();
    let t = cargo_target(dir.path());
    let s = store(dir.path());
    let record = recorded(dir.path(), &t, &s);
    let rlib = record.units[0]
        .files
        .iter()
        .find(|f| f.path.ends_with(".rlib"))
        .unwrap();
    let raw = s.raw_blob_path(&rlib.digest).expect("stored uncompressed");
    std::fs::write(&raw, "rlib\0bytez").unwrap();
    let t2 = dir.path().join("elsewhere/target");
    let p = plant(&s, &record, &t2, &HashSet::new());
    assert_eq!((p.units, p.failed), (1, 1), "{p:?}");
    assert!(p.why.unwrap().contains(".rlib"));
    assert!(!t2.join(format!("debug/.fingerprint/foo-{A}")).exists());
    assert!(!t2.join(format!("debug/deps/libfoo-{A}.rlib")).exists());
    assert!(t2.join(format!("debug/.fingerprint/foo-{B}")).is_dir());
    assert!(
        s.raw_blob_path(&rlib.digest).is_none(),
        "the corrupt blob is deleted"
    );
}

#[test]
fn units_used_again_stay_and_others_leave() {
    let dir = tempfile::tempdir().unwrap();
    let t = cargo_target(dir.path());
    let s = store(dir.path());
    let guard = Digest::of(b"guard");
    let fp = t.join("debug/.fingerprint");
    let (foo, run, app, old) = (
        fp.join(format!("foo-{A}")),
        fp.join(format!("foo-{B}")),
        fp.join(format!("app-{C}")),
        fp.join(format!("old-{D}")),
    );
    let first = [
        event(&foo, "hit", false),
        event(&run, "hit", false),
        event(&old, "hit", false),
    ];
    let all = capture(&s, guard, dir.path(), &first, None).unwrap();
    assert_eq!(all.units.len(), 3);
    // Only the path package's bin was compiled: foo and its run are dependencies of
    // its library (found fresh, so carried over, their files not read again); `old` is
    // used no more.
    let next = capture(
        &s,
        guard,
        dir.path(),
        &[event(&app, "hit", false)],
        Some(&all),
    )
    .unwrap();
    assert_eq!(next.units, all.units[..2]);
    // The run is reported uncacheable now: it leaves, the library stays.
    let events = [
        event(&run, "not_cacheable", false),
        event(&foo, "hit", false),
    ];
    let next = capture(&s, guard, dir.path(), &events, Some(&all)).unwrap();
    assert_eq!(next.units, all.units[..1]);
    // A build that reported no unit leaves the seed as it is.
    assert_eq!(capture(&s, guard, dir.path(), &[], Some(&all)), None);
    // Another guard: the previous seed is not carried over.
    let events = [event(&app, "hit", false)];
    let other = capture(&s, Digest::of(b"other"), dir.path(), &events, Some(&all)).unwrap();
    assert!(other.units.is_empty());
    let p = plant(&s, &other, &dir.path().join("t3"), &HashSet::new());
    assert_eq!(
        p,
        Planted {
            secs: p.secs,
            ..Planted::default()
        }
    );
}

#[test]
fn a_record_keeps_one_seed_per_guard_newest_first() {
    let seed = |g: &[u8]| Seed {
        guard: Digest::of(g),
        target_dir: "target".into(),
        units: vec![],
    };
    let mut r = SeedRecord::default();
    for g in [b"a", b"b", b"c", b"d", b"e", b"c"] {
        r.put(seed(g));
    }
    let order: Vec<Digest> = r.seeds.iter().map(|s| s.guard).collect();
    assert_eq!(
        order,
        [b"c", b"e", b"d", b"b"].map(|g| Digest::of(g)),
        "at most {MAX_SEEDS}, the newest first, one per guard"
    );
    assert!(r.seed_for(&Digest::of(b"a")).is_none());
    assert_eq!(r.version, VERSION);
}

#[test]
fn paths_are_related_lexically() {
    assert_eq!(
        relative(Path::new("/w/a/b"), Path::new("/w/target")),
        Path::new("../../target")
    );
    assert_eq!(
        relative(Path::new("/w"), Path::new("/w/target")),
        Path::new("target")
    );
    assert_eq!(
        lexical(Path::new("/w/a/b/../../target")),
        Path::new("/w/target")
    );
    assert!(is_inside("debug/deps/x"));
    assert!(!is_inside("../x") && !is_inside("/x") && !is_inside(""));
}

#[test]
fn small_text_is_kept_in_the_record_and_checked_when_planted() {
    let dir = tempfile::tempdir().unwrap();
    let t = cargo_target(dir.path());
    let s = store(dir.path());
    let mut record = recorded(dir.path(), &t, &s);
    let file = |record: &Seed, end: &str| -> SeedFile {
        record
            .units
            .iter()
            .flat_map(|u| &u.files)
            .find(|f| f.path.ends_with(end))
            .unwrap()
            .clone()
    };
    // Fingerprints and text outputs are in the record, not blobs; binaries are blobs.
    for end in ["lib-foo.json", "root-output", ".d"] {
        let f = file(&record, end);
        assert!(f.text.is_some(), "{end}: {f:?}");
        assert!(!s.contains(Namespace::Cas, &f.digest).unwrap(), "{end}");
    }
    let rlib = file(&record, ".rlib");
    assert!(rlib.text.is_none() && s.contains(Namespace::Cas, &rlib.digest).unwrap());
    // Text changed under its digest: that unit is left out, the other planted.
    for u in &mut record.units {
        for f in &mut u.files {
            if f.path.ends_with("root-output") {
                f.text = Some("/somewhere/else".into());
            }
        }
    }
    let t2 = dir.path().join("elsewhere/target");
    let p = plant(&s, &record, &t2, &HashSet::new());
    assert_eq!((p.units, p.failed), (1, 1), "{p:?}");
    assert!(p.why.unwrap().contains("root-output"));
    // Without its fingerprint, cargo runs the unit again.
    assert!(!t2.join(format!("debug/.fingerprint/foo-{B}")).exists());
    assert!(t2.join(format!("debug/.fingerprint/foo-{A}")).is_dir());
}

#[test]
fn a_library_larder_listed_with_its_digest_is_not_read_while_it_keeps_its_stamp() {
    let dir = tempfile::tempdir().unwrap();
    let t = cargo_target(dir.path());
    let s = store(dir.path());
    let rlib = t.join(format!("debug/deps/libfoo-{A}.rlib"));
    // Listed with a digest that is not its content (but in the CAS), to see which is used.
    let said = Digest::of(b"said\0rlib");
    s.put(Namespace::Cas, &said, b"said\0rlib").unwrap();
    crate::hashing::remember_in(&t, &[(rlib.clone(), said)]);
    let digest_of_rlib = |record: &Seed| {
        record
            .units
            .iter()
            .flat_map(|u| &u.files)
            .find(|f| f.path.ends_with(".rlib"))
            .unwrap()
            .digest
    };
    assert_eq!(digest_of_rlib(&recorded(dir.path(), &t, &s)), said);
    // Written again (another change time): read.
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&rlib, "rlib\0bytes").unwrap();
    assert_eq!(
        digest_of_rlib(&recorded(dir.path(), &t, &s)),
        Digest::of(b"rlib\0bytes")
    );
}

#[test]
fn fetched_libraries_are_planted_by_link_and_a_write_into_one_is_never_planted_again() {
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;
    let meta = |p: &Path| std::fs::metadata(p).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let t = cargo_target(dir.path());
    let s = store(dir.path());
    let record = recorded(dir.path(), &t, &s);
    let blobs: Vec<&SeedFile> = record
        .units
        .iter()
        .flat_map(|u| &u.files)
        .filter(|f| f.text.is_none())
        .collect();
    assert!(blobs.iter().any(|f| f.path.ends_with(".rlib")));
    assert!(blobs.iter().any(|f| f.path.ends_with(".rmeta")));
    let fresh: HashSet<Digest> = blobs.iter().map(|f| f.digest).collect();
    let linked_to_store = |target: &Path, f: &SeedFile| {
        let raw = s.raw_blob_path(&f.digest).unwrap();
        meta(&raw).ino() == meta(&target.join(&f.path)).ino()
    };

    // As a fresh runner plants what it fetched: libraries linked, the rest copied.
    let t2 = dir.path().join("two/target");
    let p = plant(&s, &record, &t2, &fresh);
    assert_eq!((p.units, p.failed), (2, 0), "{p:?}");
    for f in &blobs {
        let library = f.path.ends_with(".rlib") || f.path.ends_with(".rmeta");
        assert_eq!(linked_to_store(&t2, f), library, "{}", f.path);
        assert_eq!(
            meta(&t2.join(&f.path)).modified().unwrap(),
            meta(&t.join(&f.path)).modified().unwrap(),
            "{}: the recorded time",
            f.path
        );
    }
    // A write into a linked library in place (no build tool does one) reaches the
    // store's blob: it no longer matches its check, and its unit is never planted again.
    let rlib = format!("debug/deps/libfoo-{A}.rlib");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(t2.join(&rlib))
        .unwrap();
    file.write_all(b"RLIB").unwrap();
    drop(file);
    let t4 = dir.path().join("four/target");
    let p = plant(&s, &record, &t4, &HashSet::new());
    assert_eq!((p.units, p.failed), (1, 1), "{p:?}");
    assert!(!t4.join(&rlib).exists());
}

#[test]
fn stored_libraries_are_planted_by_link_after_a_check_where_no_other_checkout_sees_a_time_move() {
    use std::os::unix::fs::MetadataExt;
    let meta = |p: &Path| std::fs::metadata(p).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let t = cargo_target(dir.path());
    let s = store(dir.path());
    let record = recorded(dir.path(), &t, &s);
    let files: Vec<&SeedFile> = record.units.iter().flat_map(|u| &u.files).collect();
    let is_library = |f: &SeedFile| f.path.ends_with(".rlib") || f.path.ends_with(".rmeta");
    let libraries: Vec<&SeedFile> = files.iter().copied().filter(|f| is_library(f)).collect();
    assert_eq!(libraries.len(), 2);
    let linked_to_store = |target: &Path, f: &SeedFile| {
        s.raw_blob_path(&f.digest)
            .is_some_and(|raw| meta(&raw).ino() == meta(&target.join(&f.path)).ino())
    };
    let recorded_time = |f: &SeedFile| UNIX_EPOCH + Duration::from_nanos(f.mtime_ns);
    let no_leftovers = |target: &Path| {
        files_under(target)
            .iter()
            .all(|p| !p.to_string_lossy().contains(".larder-link-"))
    };

    // The store's name is each library's only one: linked, given the recorded time.
    let t2 = dir.path().join("two/target");
    let p = plant(&s, &record, &t2, &HashSet::new());
    assert_eq!((p.units, p.failed), (2, 0), "{p:?}");
    for f in &files {
        assert_eq!(linked_to_store(&t2, f), is_library(f), "{}", f.path);
        assert_eq!(
            meta(&t2.join(&f.path)).modified().unwrap(),
            recorded_time(f),
            "{}",
            f.path
        );
    }

    // A seed that records another time for them: copied, and the time of the
    // checkout linked before does not move.
    let mut later = record.clone();
    for f in later.units.iter_mut().flat_map(|u| u.files.iter_mut()) {
        f.mtime_ns += 5_000_000_000;
    }
    let t3 = dir.path().join("three/target");
    assert_eq!(plant(&s, &later, &t3, &HashSet::new()).units, 2);
    for f in &libraries {
        assert!(!linked_to_store(&t3, f), "{}", f.path);
        assert_eq!(
            meta(&t2.join(&f.path)).modified().unwrap(),
            recorded_time(f)
        );
        assert_eq!(
            meta(&t3.join(&f.path)).modified().unwrap(),
            recorded_time(f) + Duration::from_secs(5)
        );
    }
    assert!(no_leftovers(&t3));

    // The recorded time, as the file has it: linked again.
    let t4 = dir.path().join("four/target");
    assert_eq!(plant(&s, &record, &t4, &HashSet::new()).units, 2);
    assert!(libraries.iter().all(|f| linked_to_store(&t4, f)));

    // Bytes changed in place with the time put back: the check, read through the new
    // link, refuses them; nothing is placed and the store drops the blob.
    let rlib = libraries
        .iter()
        .find(|f| f.path.ends_with(".rlib"))
        .unwrap();
    let changed = b"RLIB\0bytes";
    assert_eq!(changed.len() as u64, rlib.size);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(t2.join(&rlib.path))
        .unwrap();
    std::io::Write::write_all(&mut &file, changed).unwrap();
    file.set_modified(recorded_time(rlib)).unwrap();
    drop(file);
    let t5 = dir.path().join("five/target");
    let p = plant(&s, &record, &t5, &HashSet::new());
    assert_eq!((p.units, p.failed), (1, 1), "{p:?}");
    assert!(!t5.join(&rlib.path).exists());
    assert!(no_leftovers(&t5));
    assert!(
        s.raw_blob_path(&rlib.digest).is_none(),
        "the blob is dropped"
    );
}
