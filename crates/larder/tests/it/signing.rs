//! `larder key generate` (issue 12, item 1): the secret key in a file only its owner can
//! read, never overwritten, and the public key printed as one `NAME:<base64>` line.

use crate::support::{Cmd, Project};

fn generate(p: &Project, name: &str, out: &std::path::Path) -> Cmd {
    p.larder(&[
        "key",
        "generate",
        "--name",
        name,
        "--out",
        out.to_str().unwrap(),
    ])
}

#[test]
fn key_generate_writes_the_secret_and_prints_the_public_key() {
    let p = Project::fixture();
    let out = p.tmp().join("team-ci-1.secret");
    let run = generate(&p, "team-ci-1", &out).run();
    let line = run.stdout.trim();
    let (name, b64) = line.split_once(':').expect("NAME:<base64>");
    assert_eq!(name, "team-ci-1", "{}", run.context());
    assert_eq!(b64.len(), 44, "32 bytes in base64: {line}");
    assert_eq!(run.stdout.lines().count(), 1, "{}", run.context());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let secret = std::fs::read_to_string(&out).unwrap();
    assert!(secret.starts_with("team-ci-1:"), "{secret}");
    assert!(
        !secret.contains(b64),
        "the secret file holds the seed first"
    );

    let again = generate(&p, "team-ci-1", &out).run_unchecked();
    assert_eq!(again.status.code(), Some(2), "{}", again.context());
    assert!(
        again.stderr.contains("never overwrites"),
        "{}",
        again.context()
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), secret);

    let bad = generate(&p, "a:b", &p.tmp().join("x")).run_unchecked();
    assert_eq!(bad.status.code(), Some(2), "{}", bad.context());
    assert!(bad.stderr.contains("key name"), "{}", bad.context());
}

// ---- Signed action records against real remotes (issue 12, items 1-3) ----

use std::path::PathBuf;

use larder_digest::Digest;
use larder_store::{ActionRecord, DiskStore, Namespace, Store as _};

use crate::support::{FIXTURE_UNITS, Run, app_line, files_under};

/// A key pair made by `larder key generate`: the secret key file and the public line.
pub fn keypair(p: &Project, name: &str) -> (PathBuf, String) {
    let out = p.tmp().join(format!("{name}.secret"));
    let public = generate(p, name, &out).run().stdout.trim().to_string();
    (out, public)
}

/// `--cfg` flags of this test's own: every key differs from other tests' (a shared
/// server keeps what other tests wrote under the fixture's usual keys).
fn own_keys() -> String {
    crate::support::own_cfg("larder_trust")
}

/// The remotes a trust test runs against: Redis and REAPI (BuildGrid) when the servers
/// are up, else a shared directory.
fn trust_remotes(p: &Project) -> Vec<String> {
    let mut out: Vec<String> = ["LARDER_TEST_REDIS", "LARDER_TEST_GRPC"]
        .iter()
        .filter_map(|v| crate::remote::server_url(v))
        .collect();
    if out.is_empty() {
        out.push(format!("file://{}", p.tmp().join("shared").display()));
    }
    out
}

/// The report line of the unit `krate`.
fn unit<'a>(run: &'a Run, krate: &str) -> &'a crate::support::Entry {
    run.report
        .units()
        .find(|e| e.krate.as_deref() == Some(krate))
        .unwrap_or_else(|| panic!("no {krate} in the report:\n{}", run.context()))
}

/// The result key of the unit `krate` in a build's report.
fn unit_key(run: &Run, krate: &str) -> Digest {
    Digest::from_hex(&unit(run, krate).key().expect("a key")).unwrap()
}

/// A build on a new machine (a copy of `team`'s checkout, an empty store) that reads
/// `url`, writes nothing, and requires signatures by the `public` key on every tier.
fn strict_reader(team: &Project, flags: &str, url: &str, public: &str) -> (Project, Run) {
    let reader = team.on_new_machine();
    let run = reader
        .larder_cargo(&["build"])
        .env("RUSTFLAGS", flags)
        .env("LARDER_REMOTE", url)
        .env("LARDER_REMOTE_WRITE", "never")
        .env("LARDER_TRUSTED_KEYS", public)
        .env("LARDER_REQUIRE_SIGNATURES", "1")
        .run();
    (reader, run)
}

fn record_of(store: &DiskStore, key: &Digest) -> ActionRecord {
    let bytes = store
        .peek(Namespace::Action, key)
        .unwrap()
        .expect("a record");
    serde_json::from_slice(&bytes).unwrap()
}

fn open_remote(url: &str) -> std::sync::Arc<dyn larder_store::Store> {
    let spec =
        larder_remote::RemoteSpec::parse(url, false, std::time::Duration::from_secs(10)).unwrap();
    larder_remote::open(&spec).unwrap()
}

/// Runs the fixture's `app` as built in `p` and returns what it printed, whether or not
/// it succeeded.
fn app_output(p: &Project) -> String {
    let bin = p.target().join("debug").join("app");
    match std::process::Command::new(&bin).output() {
        Ok(o) => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        Err(e) => format!("(cannot run: {e})"),
    }
}

/// The remote's counters in `larder stats --json`.
fn remote_stats(p: &Project, url: &str) -> serde_json::Value {
    let name = larder_remote::RemoteSpec::parse(url, false, std::time::Duration::from_secs(5))
        .unwrap()
        .name();
    p.stats()["remotes"][&name].clone()
}

/// The poisoning the issue describes: a writer of the shared remote replaces the record
/// of `app` by one that maps its binary to a valid blob of another unit (`b`'s rlib).
/// A reader that trusts only the team key refuses it (unsigned, signed by another key,
/// or carrying the team's signature over changed content), compiles `app` instead,
/// counts the refusal for that remote and keeps no copy; a reader that requires nothing
/// restores it, and its `app` is broken: the poisoning is real.
#[test]
fn a_poisoned_record_on_a_shared_remote_is_refused_by_a_reader_that_trusts_the_team_key() {
    let team = Project::fixture();
    let (team_secret, team_public) = keypair(&team, "team-ci-1");
    let (mallory_secret, _) = keypair(&team, "mallory-1");
    let mallory = larder_core::signing::SecretKey::read(&mallory_secret, "mallory").unwrap();
    for url in trust_remotes(&team) {
        let flags = own_keys();
        team.clean();
        let built = team
            .larder_cargo(&["build"])
            .env("RUSTFLAGS", &flags)
            .env("LARDER_REMOTE", &url)
            .env("LARDER_SIGNING_KEY", &team_secret)
            .run();
        built.assert_all("miss", FIXTURE_UNITS);
        let local = DiskStore::open(&team.larder_dir, u64::MAX).unwrap();
        let app_key = unit_key(&built, "app");
        let good = record_of(&local, &app_key);
        assert_eq!(good.signatures.len(), 1, "stored unsigned: {good:?}");
        assert_eq!(good.signatures[0].key, "team-ci-1");
        let rlib = record_of(&local, &unit_key(&built, "b"))
            .outputs
            .into_iter()
            .find(|o| o.path.ends_with(".rlib"))
            .unwrap();
        let mut poisoned = good.clone();
        let bin = poisoned
            .outputs
            .iter_mut()
            .find(|o| o.executable)
            .expect("app's binary");
        bin.digest = rlib.digest;
        bin.size = rlib.size;
        let unsigned = ActionRecord {
            signatures: vec![],
            ..poisoned.clone()
        };
        let mut by_mallory = unsigned.clone();
        larder_core::trust::sign(&mallory, &app_key, &mut by_mallory);
        let variants = [
            ("unsigned", unsigned, "unsigned"),
            ("mallory", by_mallory, "signed by mallory-1, not trusted"),
            ("tampered", poisoned, "invalid signature by team-ci-1"),
        ];
        let remote = open_remote(&url);
        for (i, (what, record, reason)) in variants.into_iter().enumerate() {
            let bytes = serde_json::to_vec(&record).unwrap();
            remote.put(Namespace::Action, &app_key, &bytes).unwrap();
            let (reader, run) = strict_reader(&team, &flags, &url, &team_public);
            let app = unit(&run, "app");
            assert_eq!(app.outcome, "miss", "{url} {what}:\n{}", run.context());
            assert_eq!(app.reason.as_deref(), Some("untrusted"), "{url} {what}");
            let detail = app.detail.clone().unwrap_or_default();
            assert!(detail.contains(reason), "{url} {what}: {detail}");
            for c in FIXTURE_UNITS.iter().filter(|c| **c != "app") {
                run.assert_crate(c, "hit");
            }
            assert!(
                run.stderr.contains("are refused"),
                "{url} {what}: one warning\n{}",
                run.context()
            );
            reader.assert_app(&[]);
            assert_eq!(remote_stats(&reader, &url)["refused"], 1, "{url} {what}");
            // Never backfilled: the reader's own record is the one it compiled.
            let kept = DiskStore::open(&reader.larder_dir, u64::MAX)
                .unwrap()
                .peek(Namespace::Action, &app_key)
                .unwrap();
            assert_ne!(
                kept.as_deref(),
                Some(&bytes[..]),
                "{url} {what}: backfilled"
            );

            if i == 0 {
                // The same entry for a reader that requires nothing: restored, broken.
                let victim = team.on_new_machine();
                let run = victim
                    .larder_cargo(&["build"])
                    .env("RUSTFLAGS", &flags)
                    .env("LARDER_REMOTE", &url)
                    .env("LARDER_REMOTE_WRITE", "never")
                    .run();
                run.assert_crate("app", "hit");
                assert_ne!(app_output(&victim), app_line(&[]), "{url}: the poison took");
            }
        }
        // A forged manifest entry: the team builds a new version of app, and the entry
        // of the new sources is pointed at the old version's record, which the team did
        // sign (a rollback). The entry's result key is not its inputs': refused.
        remote
            .put(
                Namespace::Action,
                &app_key,
                &serde_json::to_vec(&good).unwrap(),
            )
            .unwrap();
        team.write(
            "app/src/main.rs",
            &format!(
                "{}\n// v2\n",
                std::fs::read_to_string(team.path("app/src/main.rs"))
                    .unwrap()
                    .replace("fn main() {", "fn main() {\n    println!(\"v2\");")
            ),
        );
        let v2 = team
            .larder_cargo(&["build"])
            .env("RUSTFLAGS", &flags)
            .env("LARDER_REMOTE", &url)
            .env("LARDER_SIGNING_KEY", &team_secret)
            .run();
        v2.assert_crate("app", "miss");
        let line: serde_json::Value = serde_json::from_str(&unit(&v2, "app").line).unwrap();
        let invocation = Digest::from_hex(line["invocation"].as_str().unwrap()).unwrap();
        let manifest = remote
            .get(Namespace::Manifest, &invocation)
            .unwrap()
            .unwrap();
        let mut manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
        let entries = manifest["entries"].as_array_mut().unwrap();
        entries.truncate(1);
        entries[0]["key"] = serde_json::Value::String(app_key.to_hex());
        let forged = serde_json::to_vec(&manifest).unwrap();
        remote
            .put(Namespace::Manifest, &invocation, &forged)
            .unwrap();
        let (reader, run) = strict_reader(&team, &flags, &url, &team_public);
        run.assert_crate("app", "miss");
        assert!(app_output(&reader).starts_with("v2"), "{url}: rolled back");
        // Back to the first version for the next remote.
        team.write(
            "app/src/main.rs",
            &std::fs::read_to_string(team.path("app/src/main.rs"))
                .unwrap()
                .replace("fn main() {\n    println!(\"v2\");", "fn main() {")
                .replace("\n// v2\n", ""),
        );
    }
}

/// Key rotation: entries signed by `team-ci-1` stay usable while a reader trusts both
/// keys; a reader that trusts only `team-ci-2` restores only what that key signed.
#[test]
fn a_key_rotation_keeps_old_entries_while_both_keys_are_trusted() {
    let a = Project::fixture();
    let (old_secret, old_public) = keypair(&a, "team-ci-1");
    let (new_secret, new_public) = keypair(&a, "team-ci-2");
    let url = trust_remotes(&a).remove(0);
    let flags = own_keys();
    let build = |p: &Project, env: &[(&str, &str)]| {
        let mut cmd = p
            .larder_cargo(&["build"])
            .env("RUSTFLAGS", &flags)
            .env("LARDER_REMOTE", &url);
        for (k, v) in env {
            cmd = cmd.env(k, v);
        }
        cmd.run()
    };
    build(&a, &[("LARDER_SIGNING_KEY", old_secret.to_str().unwrap())])
        .assert_all("miss", FIXTURE_UNITS);
    let edit = |p: &Project| {
        p.edit(
            "app/src/main.rs",
            "fn main() {",
            "fn main() {\n    let _rotated = 1;",
        )
    };
    edit(&a);
    let run = build(&a, &[("LARDER_SIGNING_KEY", new_secret.to_str().unwrap())]);
    run.assert_crate("app", "miss");

    let both = format!("{old_public},{new_public}");
    let b = a.on_new_machine();
    let run = build(
        &b,
        &[
            ("LARDER_TRUSTED_KEYS", &both),
            ("LARDER_REQUIRE_SIGNATURES", "1"),
            ("LARDER_REMOTE_WRITE", "never"),
        ],
    );
    run.assert_all("hit", FIXTURE_UNITS);
    b.assert_app(&[]);
    // Copied into B's local store, the records keep their signatures.
    let local = DiskStore::open(&b.larder_dir, u64::MAX).unwrap();
    for e in run.report.units() {
        let key = Digest::from_hex(&e.key().unwrap()).unwrap();
        let record = record_of(&local, &key);
        assert_eq!(record.signatures.len(), 1, "{}: {record:?}", e.line);
    }

    // Trusting only the new key: what the old one signed is refused (the units that
    // depend on nothing say so; the others' keys then differ: their dependencies were
    // compiled here), and the build is right.
    let c = a.on_new_machine();
    let run = build(
        &c,
        &[
            ("LARDER_TRUSTED_KEYS", &new_public),
            ("LARDER_REQUIRE_SIGNATURES", "1"),
            ("LARDER_REMOTE_WRITE", "never"),
        ],
    );
    run.assert_no_hits();
    let script = unit(&run, "build_script_build");
    assert_eq!(
        script.reason.as_deref(),
        Some("untrusted"),
        "{}",
        script.line
    );
    let detail = script.detail.clone().unwrap_or_default();
    assert!(
        detail.contains("signed by team-ci-1, not trusted"),
        "{detail}"
    );
    c.assert_app(&[]);
}

/// A pull-request run in CI (GitHub Actions, GitLab, Buildkite variables) reads the
/// remotes and writes none of them; `LARDER_REMOTE_WRITE=always` writes anyway.
#[test]
fn a_pull_request_run_reads_the_remotes_and_writes_nothing() {
    let a = Project::fixture();
    let shared = a.tmp().join("shared");
    let mut urls = vec![format!("file://{}", shared.display())];
    urls.extend(crate::remote::server_url("LARDER_TEST_REDIS"));
    let remotes = urls.join(",");
    let flags = own_keys();
    a.larder_cargo(&["build"])
        .env("RUSTFLAGS", &flags)
        .env("LARDER_REMOTE", &remotes)
        .run()
        .assert_all("miss", FIXTURE_UNITS);
    let mut before = files_under(&shared);
    before.sort();
    let prs: [&[(&str, &str)]; 3] = [
        &[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_EVENT_NAME", "pull_request"),
        ],
        &[("GITLAB_CI", "true"), ("CI_MERGE_REQUEST_IID", "12")],
        &[("BUILDKITE", "true"), ("BUILDKITE_PULL_REQUEST", "34")],
    ];
    for (i, env) in prs.iter().enumerate() {
        let b = a.on_new_machine();
        b.edit(
            "app/src/main.rs",
            "fn main() {",
            &format!("fn main() {{\n    let _pr = {i};"),
        );
        let mut cmd = b
            .larder_cargo(&["build"])
            .env("RUSTFLAGS", &flags)
            .env("LARDER_REMOTE", &remotes);
        for (k, v) in env.iter() {
            cmd = cmd.env(k, v);
        }
        let run = cmd.run();
        run.assert_crate("app", "miss");
        for c in FIXTURE_UNITS.iter().filter(|c| **c != "app") {
            run.assert_crate(c, "hit");
        }
        let mut after = files_under(&shared);
        after.sort();
        assert_eq!(
            after, before,
            "{env:?}: the pull-request run wrote the shared dir"
        );
        for url in &urls {
            let s = remote_stats(&b, url);
            assert_eq!(s["writes"].as_u64().unwrap_or(0), 0, "{env:?} {url}: {s}");
        }
        let config = b.larder(&["config"]).env("LARDER_REMOTE", &remotes);
        let mut config = config;
        for (k, v) in env.iter() {
            config = config.env(k, v);
        }
        let out = config.run().stdout;
        assert!(out.contains("no writes: a "), "{out}");
    }
    // Told to write always, a pull-request run writes.
    let b = a.on_new_machine();
    b.edit(
        "app/src/main.rs",
        "fn main() {",
        "fn main() {\n    let _pr = 9;",
    );
    b.larder_cargo(&["build"])
        .env("RUSTFLAGS", &flags)
        .env("LARDER_REMOTE", &remotes)
        .env("LARDER_REMOTE_WRITE", "always")
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_EVENT_NAME", "pull_request")
        .run()
        .assert_crate("app", "miss");
    assert_ne!(
        files_under(&shared).len(),
        before.len(),
        "always did not write"
    );
}
