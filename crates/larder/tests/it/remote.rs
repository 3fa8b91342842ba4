//! Remote tiers through the wrapper: a second machine served by a shared remote, a
//! read-only public tier, and a remote that dies, stalls, refuses writes or returns
//! corrupt blobs, none of which may fail a build or give it a wrong artifact.
//!
//! The shared-directory remote (`file://`) needs no server. Tests on server backends
//! read the URLs that `scripts/remote-servers.sh start` writes (`LARDER_TEST_REDIS`,
//! ...); without them they are skipped with a message, unless
//! `LARDER_TEST_REQUIRE_REMOTES=1`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::support::{FIXTURE_UNITS, Project, files_under, project};

pub fn server_url(var: &str) -> Option<String> {
    match std::env::var(var).ok().filter(|v| !v.is_empty()) {
        Some(v) => Some(v),
        None if std::env::var("LARDER_TEST_REQUIRE_REMOTES").is_ok_and(|v| v == "1") => {
            panic!("{var} is not set and LARDER_TEST_REQUIRE_REMOTES=1")
        }
        None => {
            eprintln!("SKIPPED: {var} is not set (scripts/remote-servers.sh start)");
            None
        }
    }
}

fn dir_remote(p: &Project, name: &str) -> (PathBuf, String) {
    let dir = p.tmp().join(name);
    let url = format!("file://{}", dir.display());
    (dir, url)
}

/// Every unit of the fixture hit, answered by `remote`.
fn assert_all_from_remote(run: &crate::support::Run, remote: &str) {
    run.assert_all("hit", FIXTURE_UNITS);
    for e in run.report.units() {
        assert_eq!(
            e.remote.as_deref(),
            Some(remote),
            "{} was not answered by {remote}:\n{}",
            e.krate.as_deref().unwrap_or("?"),
            run.context()
        );
    }
}

#[test]
fn a_new_machine_gets_every_unit_from_a_shared_remote_and_keeps_them() {
    let a = Project::fixture();
    let (shared, url) = dir_remote(&a, "nfs");
    a.build_with(&[("LARDER_REMOTE", &url)])
        .assert_all("miss", FIXTURE_UNITS);
    assert!(!files_under(&shared.join("v1").join("cas")).is_empty());
    a_new_machine_gets_every_unit_and_keeps_them(&a, &url);
}

#[test]
fn a_new_machine_gets_every_unit_from_an_oci_registry_and_keeps_them() {
    let Some(registry) = server_url("LARDER_TEST_OCI") else {
        return;
    };
    // A repository of this run's own: the registry keeps entries between runs.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let url = format!("{registry}/e2e-{}-{nanos}", std::process::id());
    let a = Project::fixture();
    a.build_with(&[("LARDER_REMOTE", &url)])
        .assert_all("miss", FIXTURE_UNITS);
    a_new_machine_gets_every_unit_and_keeps_them(&a, &url);
}

/// `rediss://`: Redis over TLS, its certificate checked against the CAs the system
/// trusts (here `SSL_CERT_FILE`: the test server's own CA). A server that is not trusted
/// is not used: misses, and the build goes on.
#[test]
fn a_new_machine_gets_every_unit_from_redis_over_tls_and_only_from_a_trusted_server() {
    let (Some(url), Some(ca)) = (
        server_url("LARDER_TEST_REDIS_TLS"),
        server_url("LARDER_TEST_REDIS_TLS_CA"),
    ) else {
        return;
    };
    let a = Project::fixture();
    let trusted = [
        ("LARDER_REMOTE", url.as_str()),
        ("SSL_CERT_FILE", ca.as_str()),
    ];
    // A miss or a hit (the server keeps entries of earlier runs): its results are there.
    a.build_with(&trusted);
    let b = a.on_new_machine();
    let run = b.build_with(&trusted);
    assert_all_from_remote(&run, &url);
    b.assert_app(&[]);

    let system = a.tmp().join("system-ca.crt");
    std::fs::write(&system, "").unwrap();
    let c = a.on_new_machine();
    let run = c.build_with(&[
        ("LARDER_REMOTE", url.as_str()),
        ("SSL_CERT_FILE", system.to_str().unwrap()),
    ]);
    run.assert_all("miss", FIXTURE_UNITS);
    c.assert_app(&[]);
}

/// After machine `a` built with the remote `url`: a new machine (empty store, another
/// checkout path) gets every unit from `url`, and keeps them (it builds them again
/// without the remote, all hits).
fn a_new_machine_gets_every_unit_and_keeps_them(a: &Project, url: &str) {
    let b = a.on_new_machine();
    let run = b.build_with(&[("LARDER_REMOTE", url)]);
    assert_all_from_remote(&run, url);
    b.assert_app(&[]);

    // Backfilled: without the remote, this machine's store has everything.
    b.clean();
    let run = b.build();
    run.assert_all("hit", FIXTURE_UNITS);
    assert!(run.report.units().all(|e| e.remote.is_none()));
    b.assert_app(&[]);
}

/// A read-only tier (a public cache) requires signed records by default: filled by a
/// producer with a signing key, it serves a machine that trusts that key, and nothing to
/// one that trusts no key.
#[test]
fn a_read_only_tier_is_read_and_never_written() {
    let a = Project::fixture();
    let (public, public_url) = dir_remote(&a, "public");
    let (secret, public_key) = crate::signing::keypair(&a, "public-cache-1");
    a.build_with(&[
        ("LARDER_REMOTE", &public_url),
        ("LARDER_SIGNING_KEY", secret.to_str().unwrap()),
    ]);
    let mut public_files = files_under(&public);
    public_files.sort();

    // A machine that trusts no key: every record of the public tier is refused (the
    // units that depend on nothing say so; the others' keys then differ, as their
    // dependencies were compiled in this checkout).
    let d = a.on_new_machine();
    let run = d.build_with(&[("LARDER_REMOTE_READ_ONLY", public_url.as_str())]);
    run.assert_no_hits();
    for e in run.report.units() {
        let reason = e.reason.as_deref().unwrap_or("");
        assert!(["untrusted", "no-entry"].contains(&reason), "{}", e.line);
    }
    run.assert_crate("build_script_build", "miss");
    assert!(
        run.report
            .units()
            .any(|e| e.krate.as_deref() == Some("build_script_build")
                && e.reason.as_deref() == Some("untrusted")),
        "{}",
        run.context()
    );
    d.assert_app(&[]);

    // Machine B: its team tier (empty) in front of the public one, read-only.
    let b = a.on_new_machine();
    let (team, team_url) = dir_remote(&b, "team");
    let env = [
        ("LARDER_REMOTE", team_url.as_str()),
        ("LARDER_REMOTE_READ_ONLY", public_url.as_str()),
        ("LARDER_TRUSTED_KEYS", public_key.as_str()),
    ];
    let run = b.build_with(&env);
    assert_all_from_remote(&run, &public_url);
    b.assert_app(&[]);
    // The team tier was backfilled; then a change is stored to it, not to the public one.
    assert!(!files_under(&team.join("v1").join("cas")).is_empty());
    b.edit(
        "app/src/main.rs",
        "fn main() {",
        "fn main() {\n    let _edited = 1;",
    );
    let run = b.build_with(&env);
    run.assert_crate("app", "miss");
    let mut now = files_under(&public);
    now.sort();
    assert_eq!(now, public_files, "the read-only tier was written");
    let c = a.on_new_machine();
    c.edit(
        "app/src/main.rs",
        "fn main() {",
        "fn main() {\n    let _edited = 1;",
    );
    let run = c.build_with(&[("LARDER_REMOTE", &team_url)]);
    run.assert_crate("app", "hit");
}

#[test]
fn corrupt_blobs_from_a_remote_are_misses_and_the_build_is_right() {
    let a = Project::fixture();
    let (shared, url) = dir_remote(&a, "nfs");
    a.build_with(&[("LARDER_REMOTE", &url)]);
    // Every blob on the remote goes bad (a flipped byte in its stored form).
    for f in files_under(&shared.join("v1").join("cas")) {
        let mut bytes = std::fs::read(&f).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x5a;
        std::fs::write(&f, bytes).unwrap();
    }
    let b = a.on_new_machine();
    let run = b.build_with(&[("LARDER_REMOTE", &url)]);
    run.assert_no_hits();
    b.assert_app(&[]);
    let stats = b.stats();
    let corrupt = stats["remotes"][&url]["corrupt"].as_u64().unwrap_or(0);
    assert!(corrupt > 0, "no corrupt blob counted: {stats}");
}

/// A server that accepts connections and never answers.
fn silent_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            held.push(s);
        }
    });
    port
}

#[test]
fn a_silent_remote_times_out_and_the_build_goes_on() {
    let p = Project::fixture();
    let url = format!("redis://127.0.0.1:{}/0", silent_server());
    let run = p.build_with(&[("LARDER_REMOTE", &url), ("LARDER_REMOTE_TIMEOUT", "0.5")]);
    run.assert_all("miss", FIXTURE_UNITS);
    p.assert_app(&[]);
    assert!(
        run.stderr.contains(&format!("remote {url} switched off")),
        "{}",
        run.context()
    );
    let c = &p.stats()["remotes"][&url];
    assert!(c["timeouts"].as_u64().unwrap_or(0) >= 1, "{c}");
    assert!(c["skipped_off"].as_u64().unwrap_or(0) >= 1, "{c}");
    // The next build is a new build: the remote is tried again, the local store hits.
    p.clean();
    let run = p.build_with(&[("LARDER_REMOTE", &url), ("LARDER_REMOTE_TIMEOUT", "0.5")]);
    run.assert_all("hit", FIXTURE_UNITS);
}

/// An HTTP server (the bazel-remote protocol) that answers every request after `delay`:
/// nothing is found, every write is taken. Returns its port and the number of requests
/// it got so far.
fn slow_http_server(
    delay: std::time::Duration,
) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::atomic::Ordering;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                loop {
                    let mut request = String::new();
                    if reader.read_line(&mut request).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut length = 0usize;
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        if h == "\r\n" {
                            break;
                        }
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    seen.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(delay);
                    let status = if request.starts_with("PUT") {
                        "200 OK"
                    } else {
                        "404 Not Found"
                    };
                    let reply = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
                    if reader.get_mut().write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, count)
}

/// A remote that answers every call slowly, but within its deadline, is switched off
/// once its calls have cost the build its latency budget: one warning, its slow calls
/// counted, the rest of the build skips it.
#[test]
fn a_slow_remote_is_switched_off_once_it_has_cost_its_latency_budget() {
    let p = Project::fixture();
    let (port, requests) = slow_http_server(std::time::Duration::from_millis(1500));
    let url = format!("http://127.0.0.1:{port}/cache");
    let run = p.build_with(&[("LARDER_REMOTE", &url)]);
    run.assert_all("miss", FIXTURE_UNITS);
    p.assert_app(&[]);
    let name = larder_remote::RemoteSpec::parse(&url, false, std::time::Duration::from_secs(5))
        .unwrap()
        .name();
    assert!(
        run.stderr.contains(&format!("remote {name} switched off"))
            && run.stderr.contains("slow calls took"),
        "{}",
        run.context()
    );
    // cargo did not wait for the remote's seed longer than `larder cargo` allows.
    assert!(
        run.stderr
            .contains("no seed planted: the remotes did not answer within 1 s"),
        "{}",
        run.context()
    );
    let c = &p.stats()["remotes"][&name];
    assert!(c["slow"].as_u64().unwrap_or(0) >= 2, "{c}");
    assert!(c["skipped_off"].as_u64().unwrap_or(0) >= 1, "{c}");
    // Every unit reads the remote once or more without the budget; with it, a few calls.
    let n = requests.load(std::sync::atomic::Ordering::SeqCst);
    assert!(n <= 8, "{n} requests reached the slow remote");
}

/// A remote where nothing listens is switched off before its first call: no call
/// waits for a deadline.
#[test]
fn a_dead_remote_is_switched_off_at_once() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for url in [
        format!("redis://127.0.0.1:{port}/0"),
        format!("memcached://127.0.0.1:{port}"),
    ] {
        let p = Project::fixture();
        let run = p.build_with(&[("LARDER_REMOTE", &url)]);
        p.assert_app(&[]);
        assert!(
            run.stderr.contains(&format!("remote {url} switched off"))
                && run.stderr.contains("refuses connections"),
            "{}",
            run.context()
        );
        let c = &p.stats()["remotes"][&url];
        assert_eq!(c["errors"].as_u64().unwrap_or(0), 0, "{url}: {c}");
        assert_eq!(c["timeouts"].as_u64().unwrap_or(0), 0, "{url}: {c}");
    }
}

#[test]
fn a_remote_that_refuses_writes_warns_and_the_build_goes_on() {
    for var in ["LARDER_TEST_REDIS_READONLY", "LARDER_TEST_REDIS_FULL"] {
        let Some(url) = server_url(var) else { continue };
        let p = Project::fixture();
        let run = p.build_with(&[("LARDER_REMOTE", &url)]);
        run.assert_all("miss", FIXTURE_UNITS);
        p.assert_app(&[]);
        if var.ends_with("READONLY") {
            // Every write fails: the background stores switch its writes off and
            // `larder cargo` prints their warning.
            assert!(
                run.stderr.contains(&format!("remote {url} not written to")),
                "{}",
                run.context()
            );
        }
        let c = &p.stats()["remotes"][&url];
        assert!(c["errors"].as_u64().unwrap_or(0) >= 1, "{var}: {c}");
    }
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A redis-server of this test's own on a free port.
fn own_redis(bin: &str, dir: &Path) -> (Server, u16) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(bin)
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    (Server(child), port)
}

#[test]
fn a_remote_killed_in_the_middle_of_a_build_does_not_fail_it() {
    let Some(bin) = server_url("LARDER_TEST_REDIS_BIN") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (server, port) = own_redis(&bin, dir.path());
    let url = format!("redis://127.0.0.1:{port}/0");
    // first -> mid (its build script kills the server) -> last -> app.
    let p = project()
        .file("Cargo.toml", "[workspace]\nresolver = \"2\"\nmembers = [\"first\", \"mid\", \"last\", \"app\"]\n")
        .file("first/Cargo.toml", "[package]\nname = \"first\"\nversion = \"0.1.0\"\nedition = \"2021\"\n")
        .file("first/src/lib.rs", "pub fn one() -> u32 { 1 }\n")
        .file(
            "mid/Cargo.toml",
            "[package]\nname = \"mid\"\nversion = \"0.1.0\"\nedition = \"2021\"\n[dependencies]\nfirst = { path = \"../first\" }\n",
        )
        .file(
            "mid/build.rs",
            "fn main() {\n    let pid = std::env::var(\"KILL_PID\").unwrap();\n    std::process::Command::new(\"kill\").args([\"-9\", &pid]).status().unwrap();\n    std::thread::sleep(std::time::Duration::from_millis(300));\n    println!(\"cargo:rerun-if-changed=build.rs\");\n}\n",
        )
        .file("mid/src/lib.rs", "pub fn two() -> u32 { first::one() + 1 }\n")
        .file(
            "last/Cargo.toml",
            "[package]\nname = \"last\"\nversion = \"0.1.0\"\nedition = \"2021\"\n[dependencies]\nmid = { path = \"../mid\" }\n",
        )
        .file("last/src/lib.rs", "pub fn three() -> u32 { mid::two() + 1 }\n")
        .file(
            "app/Cargo.toml",
            "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n[dependencies]\nlast = { path = \"../last\" }\n",
        )
        .file("app/src/main.rs", "fn main() { println!(\"three={}\", last::three()); }\n")
        .build();
    let pid = server.0.id().to_string();
    let run = p.build_with(&[
        ("LARDER_REMOTE", &url),
        ("KILL_PID", &pid),
        ("LARDER_REMOTE_TIMEOUT", "2"),
    ]);
    assert_eq!(p.run_bin("debug", "app").trim(), "three=3");
    assert!(
        run.report.units().all(|e| e.outcome == "miss"),
        "{}",
        run.context()
    );
    let c = &p.stats()["remotes"][&url];
    assert!(
        c["errors"].as_u64().unwrap_or(0) >= 1,
        "the remote never failed: {c}"
    );
    drop(server);
}

#[test]
fn a_machine_with_entries_of_its_own_still_finds_other_machines_entries() {
    let a = Project::fixture();
    let (_team, url) = dir_remote(&a, "team");
    a.build_with(&[("LARDER_REMOTE", &url)]);
    // B fills its store from the team tier: its local manifests hold app=v1.
    let b = a.on_new_machine();
    b.build_with(&[("LARDER_REMOTE", &url)])
        .assert_all("hit", FIXTURE_UNITS);
    // A pushes app=v2; B then makes the same change. B's local manifest for app has
    // only v1, the team's has both.
    a.edit("app/src/main.rs", "app=v1", "app=v2");
    a.build_with(&[("LARDER_REMOTE", &url)]);
    b.edit("app/src/main.rs", "app=v1", "app=v2");
    let run = b.build_with(&[("LARDER_REMOTE", &url)]);
    run.assert_crate("app", "hit");
    b.assert_app(&[("app", "v2")]);
    // The entry joined B's local manifest beside its own: both versions hit locally.
    b.clean();
    b.build().assert_all("hit", FIXTURE_UNITS);
    b.edit("app/src/main.rs", "app=v2", "app=v1");
    b.build().assert_crate("app", "hit");
    b.assert_app(&[]);
}

/// A package whose build script copies `input.txt` (declared with `rerun-if-changed`)
/// into `OUT_DIR`, and whose binary prints it.
fn input_project() -> Project {
    crate::support::project()
        .file(
            "Cargo.toml",
            "[package]\nname = \"inputpkg\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
        )
        .file(
            "build.rs",
            "fn main() {\n    println!(\"cargo:rerun-if-changed=input.txt\");\n    let data = std::fs::read_to_string(\"input.txt\").unwrap();\n    let out = std::path::PathBuf::from(std::env::var(\"OUT_DIR\").unwrap());\n    std::fs::write(out.join(\"input.rs\"), format!(\"pub const INPUT: &str = {:?};\", data.trim())).unwrap();\n}\n",
        )
        .file("input.txt", "1")
        .file(
            "src/main.rs",
            "include!(concat!(env!(\"OUT_DIR\"), \"/input.rs\"));\nfn main() { println!(\"input={INPUT}\"); }\n",
        )
        .build()
}

/// The build-script run's report line of one build.
fn run_entry(run: &crate::support::Run) -> crate::support::Entry {
    let runs: Vec<_> = run.report.runs().cloned().collect();
    assert_eq!(runs.len(), 1, "one build-script run:\n{}", run.context());
    runs.into_iter().next().unwrap()
}

/// Three machines share one remote; each stores a build-script run for another input,
/// and the binary compiled from its output. Every entry must stay in the shared
/// manifests (a machine with a manifest of its own merges into the shared one, never
/// replaces it), so a fourth machine finds what the second stored: the run and the rustc
/// compile. Misses say what changed.
#[test]
fn build_script_runs_of_every_machine_stay_in_a_shared_manifest() {
    let a = input_project();
    let (_shared, url) = dir_remote(&a, "shared");
    let remote = [("LARDER_REMOTE", url.as_str())];
    let run = a.build_with(&remote);
    assert_eq!(run_entry(&run).outcome, "miss", "{}", run.context());

    let b = a.on_new_machine();
    b.write("input.txt", "2");
    let run = b.build_with(&remote);
    let e = run_entry(&run);
    assert_eq!(
        (e.outcome.as_str(), e.reason.as_deref()),
        ("miss", Some("inputs-changed")),
        "B's input differs from the shared entry's:\n{}",
        run.context()
    );
    assert!(
        e.detail.as_deref().is_some_and(|d| d.contains("input.txt")),
        "the miss names the input: {}",
        e.line
    );

    // A has a local manifest (input 1) and stores input 3.
    a.write("input.txt", "3");
    let run = a.build_with(&remote);
    assert_eq!(run_entry(&run).outcome, "miss", "{}", run.context());

    for (input, machine) in [("2", "fourth"), ("3", "fifth"), ("1", "sixth")] {
        let d = a.on_new_machine();
        d.write("input.txt", input);
        let run = d.build_with(&remote);
        let e = run_entry(&run);
        assert_eq!(
            (e.outcome.as_str(), e.remote.as_deref()),
            ("hit", Some(url.as_str())),
            "the {machine} machine finds input {input} in the shared manifest:\n{}",
            run.context()
        );
        run.assert_crate("inputpkg", "hit");
        assert_eq!(
            d.run_bin("debug", "inputpkg").trim(),
            format!("input={input}")
        );
    }
}

/// When the build's first larder process is a build-script run (nothing to compile but
/// the script to rerun), its warning still reaches the terminal through `larder cargo`,
/// not only the script's output file that cargo keeps to itself.
#[test]
fn a_warning_raised_in_a_build_script_run_reaches_the_terminal() {
    let p = input_project();
    p.build().assert_success();
    p.write("input.txt", "2");
    // A shared directory under a regular file cannot be opened.
    let url = format!("file://{}/shared", p.path("input.txt").display());
    let run = p.build_with(&[("LARDER_REMOTE", &url)]);
    run.assert_success();
    assert_eq!(run_entry(&run).outcome, "miss", "{}", run.context());
    assert!(
        run.stderr
            .contains(&format!("larder: warning: remote {url} is not used")),
        "the warning is shown once:\n{}",
        run.context()
    );
    assert_eq!(
        run.stderr.matches("larder: warning:").count(),
        1,
        "{}",
        run.context()
    );
    assert_eq!(p.run_bin("debug", "inputpkg"), "input=2");
}

/// `prune --remote` on a backend that can list and delete (a shared directory, S3,
/// WebDAV) removes a crate's entries there: a machine with an empty store (and the
/// checkout at the same path, so the rebuilt crate has the same bytes) then misses
/// exactly that crate's units and gets everything else from the remote. A backend that
/// cannot list says so.
#[test]
fn prune_on_a_remote_removes_exactly_one_crate_there() {
    let a = Project::fixture();
    let (_, dir_url) = dir_remote(&a, "nfs");
    let mut remotes = vec![dir_url];
    for var in ["LARDER_TEST_S3", "LARDER_TEST_WEBDAV"] {
        if let Some(url) = server_url(var) {
            // A prefix of its own: other tests share the server.
            let n = a.tmp().file_name().unwrap().to_string_lossy().to_string();
            remotes.push(format!("{url}/prune-{n}"));
        }
    }
    // Each build has an empty local store: all it stores reaches the remote, and all it
    // hits comes from there.
    let stores = std::cell::Cell::new(0);
    let build = |url: &str| {
        a.clean();
        stores.set(stores.get() + 1);
        a.larder_cargo(&["build"])
            .env("LARDER_REMOTE", url)
            .env("CARGO_INCREMENTAL", "0")
            .env(
                "LARDER_DIR",
                a.tmp().join(format!("empty-store-{}", stores.get())),
            )
            .run()
    };
    for url in &remotes {
        build(url);
        let pruned = a
            .larder(&["prune", "--remote", url, "--crate", "a", "--json"])
            .run();
        let pruned: serde_json::Value = serde_json::from_str(pruned.stdout.trim()).unwrap();
        assert_eq!(pruned["entries"], 3, "{url}: {pruned}");
        let run = build(url);
        run.assert_crate("a", "miss");
        run.assert_crate("build_script_build", "miss");
        for c in FIXTURE_UNITS
            .iter()
            .filter(|c| !["a", "build_script_build"].contains(c))
        {
            run.assert_crate(c, "hit");
        }
        a.assert_app(&[]);
    }
    if let Some(redis) = server_url("LARDER_TEST_REDIS") {
        let run = a
            .larder(&["prune", "--remote", &redis, "--crate", "a"])
            .run_unchecked();
        assert_eq!(run.status.code(), Some(2), "{}", run.context());
        assert!(
            run.stderr.contains("cannot list its entries"),
            "{}",
            run.context()
        );
    }
}
