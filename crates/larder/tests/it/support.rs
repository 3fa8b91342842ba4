//! Test support: a fixture project builder (in the manner of cargo's
//! `project().file(..).build()`), a runner for `larder` with a per-test store and report
//! file, and readers for the JSON-lines report.
//!
//! Every [`Project`] lives in its own temporary directory: the workspace, the store
//! (`LARDER_DIR`), the report files and any other directory a test asks for, so tests run
//! in parallel without sharing anything but the toolchain.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// The larder binary under test.
pub const LARDER: &str = env!("CARGO_BIN_EXE_larder");

/// A command that runs longer than this is killed and the test fails: a hung wrapper
/// must not hang the suite.
const TIMEOUT: Duration = Duration::from_secs(300);

/// The line the fixture's `app` prints with no variation applied.
pub const BASE_FIELDS: &[(&str, &str)] = &[
    ("greeting", "hello"),
    ("generated", "7"),
    ("value", "unset"),
    ("flavor", "plain"),
    ("cfg", "off"),
    ("answer", "42"),
    ("sum", "108"),
    ("app", "v1"),
];

/// The line `app` prints, with the given fields changed from [`BASE_FIELDS`].
pub fn app_line(changes: &[(&str, &str)]) -> String {
    BASE_FIELDS
        .iter()
        .map(|(k, v)| {
            let v = changes
                .iter()
                .find(|(ck, _)| ck == k)
                .map_or(*v, |(_, cv)| *cv);
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The crates of the fixture workspace that `cargo build` compiles, by `--crate-name`.
pub const FIXTURE_UNITS: &[&str] = &["a", "app", "b", "build_script_build", "cdy", "mac"];

/// The warning crate `b` of the fixture emits on every compile.
pub const FIXTURE_WARNING: &str = "unused variable: `unused_fixture_var`";

/// The fixture workspace as (relative path, content):
///
/// - `a` (lib): a build script writes `gen.rs` into `OUT_DIR` (its constant comes from
///   `LARDER_FIXTURE_GEN`, default 7), included with `include!`; `include_str!` of
///   `src/greeting.txt`; `option_env!("LARDER_FIXTURE_VALUE")`; a feature `extra`; a
///   `cfg(larder_test)` switch.
/// - `b` (lib): depends on `a`; has an unused variable (a warning on every compile).
/// - `mac` (proc-macro): `make_answer!()` expands to `fn answer() -> u32 { 42 }`.
/// - `app` (bin): depends on `b` and `mac`; prints [`app_line`].
/// - `cdy` (cdylib): one `extern "C"` function.
pub fn fixture_files() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "Cargo.toml",
            r#"[workspace]
resolver = "2"
members = ["a", "b", "mac", "app", "cdy"]
"#,
        ),
        (
            "a/Cargo.toml",
            r#"[package]
name = "a"
version = "0.1.0"
edition = "2021"
build = "build.rs"

[features]
extra = []

[lints.rust]
unexpected_cfgs = { level = "warn", check-cfg = ["cfg(larder_test)"] }
"#,
        ),
        (
            "a/build.rs",
            r#"use std::env;
use std::fs;
use std::path::Path;

fn main() {
    let out = env::var("OUT_DIR").unwrap();
    let value = env::var("LARDER_FIXTURE_GEN").unwrap_or_else(|_| "7".to_string());
    fs::write(
        Path::new(&out).join("gen.rs"),
        format!("pub const GENERATED: u32 = {value};\n"),
    )
    .unwrap();
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=LARDER_FIXTURE_GEN");
}
"#,
        ),
        (
            "a/src/lib.rs",
            r#"include!(concat!(env!("OUT_DIR"), "/gen.rs"));

pub const GREETING: &str = include_str!("greeting.txt");

pub fn value() -> &'static str {
    match option_env!("LARDER_FIXTURE_VALUE") {
        Some(v) => v,
        None => "unset",
    }
}

pub fn base() -> u32 {
    1
}

pub fn flavor() -> &'static str {
    if cfg!(feature = "extra") { "extra" } else { "plain" }
}

pub fn cfg_flag() -> &'static str {
    if cfg!(larder_test) { "on" } else { "off" }
}
"#,
        ),
        ("a/src/greeting.txt", "hello\n"),
        (
            "b/Cargo.toml",
            r#"[package]
name = "b"
version = "0.1.0"
edition = "2021"

[dependencies]
a = { path = "../a" }
"#,
        ),
        (
            "b/src/lib.rs",
            r#"pub fn total() -> u32 {
    let unused_fixture_var = 5;
    a::base() + a::GENERATED + 100
}

pub fn describe() -> String {
    format!(
        "greeting={} generated={} value={} flavor={} cfg={}",
        a::GREETING.trim(),
        a::GENERATED,
        a::value(),
        a::flavor(),
        a::cfg_flag()
    )
}
"#,
        ),
        (
            "mac/Cargo.toml",
            r#"[package]
name = "mac"
version = "0.1.0"
edition = "2021"

[lib]
proc-macro = true
"#,
        ),
        (
            "mac/src/lib.rs",
            r#"use proc_macro::TokenStream;

#[proc_macro]
pub fn make_answer(input: TokenStream) -> TokenStream {
    let name = input.to_string();
    let name = if name.trim().is_empty() { "answer" } else { name.trim() };
    format!("fn {name}() -> u32 {{ 42 }}").parse().unwrap()
}
"#,
        ),
        (
            "app/Cargo.toml",
            r#"[package]
name = "app"
version = "0.1.0"
edition = "2021"

[dependencies]
b = { path = "../b" }
mac = { path = "../mac" }
"#,
        ),
        (
            "app/src/main.rs",
            r#"mac::make_answer!();

fn main() {
    println!("{} answer={} sum={} app=v1", b::describe(), answer(), b::total());
}
"#,
        ),
        (
            "cdy/Cargo.toml",
            r#"[package]
name = "cdy"
version = "0.1.0"
edition = "2021"

[lib]
crate-type = ["cdylib"]
"#,
        ),
        (
            "cdy/src/lib.rs",
            r#"#[no_mangle]
pub extern "C" fn cdy_answer() -> u32 {
    42
}
"#,
        ),
    ]
}

/// Writes `content` to `path`, creating parent directories.
/// `--cfg NAME_<pid>_<nanos>` for `RUSTFLAGS`: keys of this run's own, so that tests
/// sharing a server do not see each other's entries.
pub fn own_cfg(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("--cfg {name}_{}_{nanos}", std::process::id())
}

pub fn write_file(path: &Path, content: &str) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap_or_else(|e| panic!("mkdir {}: {e}", parent.display()));
    }
    fs::write(path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Copies the directory tree `from` to `to`, leaving out every directory named `target`.
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let ty = entry.file_type().unwrap();
        let dest = to.join(entry.file_name());
        if ty.is_dir() {
            if entry.file_name() != "target" {
                copy_tree(&entry.path(), &dest);
            }
        } else {
            fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

/// Every regular file under `dir`, recursively, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for entry in rd {
            let entry = entry.unwrap();
            let ty = entry.file_type().unwrap();
            if ty.is_dir() {
                stack.push(entry.path());
            } else if ty.is_file() {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    out
}

/// Starts a project description.
pub fn project() -> ProjectBuilder {
    ProjectBuilder {
        files: Vec::new(),
        larder_dir: None,
        seed_tools: true,
    }
}

/// Describes a project before it is written.
pub struct ProjectBuilder {
    files: Vec<(PathBuf, String)>,
    larder_dir: Option<PathBuf>,
    seed_tools: bool,
}

/// Larder caches the compiler's identity (a digest of the ~160 MB of the sysroot's
/// libraries) in `<store>/v1/tools/`. Hashing it takes ~8 s in a debug build of larder,
/// once per store; with a fresh store per test that alone would take most of the suite's
/// time. So by default a project's store starts with the tool identities of a seed store
/// that this test binary fills once, by building a one-crate project. It holds nothing
/// else (no entries, no stats); a test that needs a store as empty as a user's first one
/// asks for [`ProjectBuilder::fresh_store`]. If the layout changes and there is no
/// `v1/tools`, nothing is seeded and the suite is only slower.
fn tool_seed() -> Option<&'static Path> {
    static SEED: OnceLock<Option<PathBuf>> = OnceLock::new();
    SEED.get_or_init(|| {
        let p = project()
            .fresh_store()
            .file(
                "Cargo.toml",
                "[package]\nname = \"seed\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
            )
            .file("src/main.rs", "fn main() {}\n")
            .build();
        let run = p.larder_cargo(&["build"]).run_unchecked();
        let tools = p.larder_dir.join("v1").join("tools");
        if !run.status.success() || !tools.is_dir() {
            return None;
        }
        // Kept for the whole run (a few hundred bytes) under cargo's per-package tmp dir.
        let keep = tempfile::Builder::new()
            .prefix("larder-it-tools-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .ok()?
            .keep();
        copy_tree(&tools, &keep);
        Some(keep)
    })
    .as_deref()
}

impl ProjectBuilder {
    /// Adds a file (path relative to the workspace root).
    pub fn file(mut self, path: impl AsRef<Path>, content: impl Into<String>) -> Self {
        self.files
            .push((path.as_ref().to_path_buf(), content.into()));
        self
    }

    /// Adds the fixture workspace ([`fixture_files`]).
    pub fn fixture(mut self) -> Self {
        for (path, content) in fixture_files() {
            self = self.file(path, content);
        }
        self
    }

    /// Uses this store directory instead of a fresh one in the project's temp dir.
    pub fn larder_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.larder_dir = Some(dir.into());
        self
    }

    /// Starts the store empty, without the seeded tool identities (see [`tool_seed`]).
    pub fn fresh_store(mut self) -> Self {
        self.seed_tools = false;
        self
    }

    /// Writes the files and returns the project.
    pub fn build(self) -> Project {
        let tmp = tempfile::Builder::new()
            .prefix("larder-it-")
            .tempdir()
            .expect("create temp dir");
        let root = tmp.path().join("ws");
        fs::create_dir_all(&root).unwrap();
        for (path, content) in &self.files {
            write_file(&root.join(path), content);
        }
        let larder_dir = self.larder_dir.unwrap_or_else(|| tmp.path().join("store"));
        if self.seed_tools
            && let Some(seed) = tool_seed()
        {
            copy_tree(seed, &larder_dir.join("v1").join("tools"));
        }
        Project {
            root,
            larder_dir,
            target_dir: None,
            cargo_home: None,
            reports: tmp.path().join("reports"),
            tmp,
        }
    }
}

/// A project on disk, with the directories larder runs with.
pub struct Project {
    tmp: TempDir,
    /// The workspace root (where cargo runs).
    pub root: PathBuf,
    /// `LARDER_DIR` for every larder command.
    pub larder_dir: PathBuf,
    /// `CARGO_TARGET_DIR`, if set; otherwise cargo's default `<root>/target`.
    pub target_dir: Option<PathBuf>,
    /// `CARGO_HOME`, if set; otherwise inherited.
    pub cargo_home: Option<PathBuf>,
    reports: PathBuf,
}

static REPORT_SEQ: AtomicU32 = AtomicU32::new(0);

impl Project {
    /// The fixture workspace with its own store (seeded with tool identities).
    pub fn fixture() -> Project {
        project().fixture().build()
    }

    /// The project's own temporary directory (holds the workspace, the store and more).
    pub fn tmp(&self) -> &Path {
        self.tmp.path()
    }

    /// A copy of this workspace (without `target/`) in a new temporary directory, using
    /// the same store, with its own `CARGO_TARGET_DIR` and an empty `CARGO_HOME`.
    pub fn relocated_copy(&self) -> Project {
        let tmp = tempfile::Builder::new()
            .prefix("larder-it-moved-")
            .tempdir()
            .expect("create temp dir");
        let root = tmp.path().join("elsewhere").join("checkout");
        copy_tree(&self.root, &root);
        let target_dir = tmp.path().join("other-target");
        let cargo_home = tmp.path().join("other-cargo-home");
        fs::create_dir_all(&cargo_home).unwrap();
        Project {
            root,
            larder_dir: self.larder_dir.clone(),
            target_dir: Some(target_dir),
            cargo_home: Some(cargo_home),
            reports: tmp.path().join("reports"),
            tmp,
        }
    }

    /// [`Project::relocated_copy`] on "another machine": its own store, empty but for
    /// the seeded tool identities.
    pub fn on_new_machine(&self) -> Project {
        let mut p = self.relocated_copy();
        p.larder_dir = p.tmp().join("store-of-this-machine");
        if let Some(seed) = tool_seed() {
            copy_tree(seed, &p.larder_dir.join("v1").join("tools"));
        }
        p
    }

    /// The cargo target directory in use.
    pub fn target(&self) -> PathBuf {
        self.target_dir
            .clone()
            .unwrap_or_else(|| self.root.join("target"))
    }

    /// A file of the workspace.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Replaces a workspace file's content.
    pub fn write(&self, rel: &str, content: &str) {
        write_file(&self.path(rel), content);
    }

    /// Replaces `from` with `to` in a workspace file; `from` must occur.
    pub fn edit(&self, rel: &str, from: &str, to: &str) {
        let path = self.path(rel);
        let old = fs::read_to_string(&path).unwrap();
        assert!(
            old.contains(from),
            "{} does not contain {from:?}:\n{old}",
            path.display()
        );
        write_file(&path, &old.replace(from, to));
    }

    /// A command with the test environment: cargo's and larder's variables from the
    /// outer `cargo test` removed, `LARDER_DIR` set, `CARGO_TARGET_DIR`/`CARGO_HOME` set
    /// when the project has them, and running in the workspace root.
    pub fn command(&self, program: impl AsRef<OsStr>, args: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(args).current_dir(&self.root);
        for (name, _) in std::env::vars_os() {
            let n = name.to_string_lossy();
            let strip = (n.starts_with("CARGO_") && n != "CARGO_HOME")
                || n.starts_with("__CARGO")
                || n.starts_with("LARDER_")
                || matches!(
                    &*n,
                    "RUSTFLAGS"
                        | "RUSTDOCFLAGS"
                        | "RUSTC"
                        | "RUSTDOC"
                        | "RUSTC_WRAPPER"
                        | "RUSTC_WORKSPACE_WRAPPER"
                        | "MAKEFLAGS"
                        | "MFLAGS"
                        | "SOURCE_DATE_EPOCH"
                        // A CI run's kind decides remote writes (LARDER_REMOTE_WRITE).
                        | "GITHUB_ACTIONS"
                        | "GITLAB_CI"
                        | "BUILDKITE"
                        // A CI run drops `-C incremental` (LARDER_INCREMENTAL).
                        | "CI"
                        | "TF_BUILD"
                        | "JENKINS_URL"
                );
            if strip {
                cmd.env_remove(&name);
            }
        }
        cmd.env("LARDER_DIR", &self.larder_dir);
        cmd.env("CARGO_TERM_COLOR", "never");
        cmd.env("CARGO_TERM_PROGRESS_WHEN", "never");
        if let Some(t) = &self.target_dir {
            cmd.env("CARGO_TARGET_DIR", t);
        }
        if let Some(h) = &self.cargo_home {
            cmd.env("CARGO_HOME", h);
        }
        cmd
    }

    /// `larder <args>`, with a fresh `LARDER_REPORT` file.
    pub fn larder(&self, args: &[&str]) -> Cmd {
        fs::create_dir_all(&self.reports).unwrap();
        let n = REPORT_SEQ.fetch_add(1, Ordering::Relaxed);
        let report = self.reports.join(format!("report-{n}.jsonl"));
        let mut cmd = self.command(LARDER, args);
        cmd.env("LARDER_REPORT", &report);
        Cmd {
            cmd,
            desc: format!("larder {}", args.join(" ")),
            report: Some(report),
        }
    }

    /// `larder cargo <args>`.
    pub fn larder_cargo(&self, args: &[&str]) -> Cmd {
        let mut all = vec!["cargo"];
        all.extend_from_slice(args);
        self.larder(&all)
    }

    /// `larder cargo build` with extra environment variables, which must succeed.
    pub fn build_with(&self, env: &[(&str, &str)]) -> Run {
        let mut cmd = self.larder_cargo(&["build"]);
        for (k, v) in env {
            cmd = cmd.env(k, v);
        }
        cmd.run()
    }

    /// `larder cargo build`, which must succeed.
    pub fn build(&self) -> Run {
        self.larder_cargo(&["build"]).run()
    }

    /// Plain `cargo <args>` (no wrapper), same environment.
    pub fn cargo(&self, args: &[&str]) -> Cmd {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
        let cmd = self.command(cargo, args);
        Cmd {
            cmd,
            desc: format!("cargo {}", args.join(" ")),
            report: None,
        }
    }

    /// Plain `cargo clean`, which must succeed.
    pub fn clean(&self) {
        self.cargo(&["clean"]).run();
    }

    /// Runs a binary from the target directory (`profile` is `debug` or `release`) and
    /// returns its trimmed standard output; it must succeed.
    pub fn run_bin(&self, profile: &str, name: &str) -> String {
        let path = self.target().join(profile).join(name);
        assert!(path.exists(), "binary {} does not exist", path.display());
        let out = Command::new(&path)
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", path.display()));
        assert!(
            out.status.success(),
            "{} failed: {}\nstderr:\n{}",
            path.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Runs the fixture's `app` in the dev profile and checks its line.
    pub fn assert_app(&self, changes: &[(&str, &str)]) {
        self.assert_app_in("debug", changes);
    }

    /// Runs the fixture's `app` in `profile` and checks its line.
    pub fn assert_app_in(&self, profile: &str, changes: &[(&str, &str)]) {
        let got = self.run_bin(profile, "app");
        let want = app_line(changes);
        assert_eq!(got, want, "app ({profile}) printed the wrong line");
    }

    /// The store files in one namespace (`cas`, `ac`, `manifest`, `link`).
    pub fn store_files(&self, namespace: &str) -> Vec<PathBuf> {
        files_under(&self.larder_dir.join("v1").join(namespace))
    }

    /// The JSON that `larder <args>` prints (it must succeed).
    pub fn json(&self, args: &[&str]) -> Value {
        let run = self.larder(args).run();
        serde_json::from_str(run.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "`larder {}` printed no JSON ({e}):\n{}",
                args.join(" "),
                run.stdout
            )
        })
    }

    /// `larder stats --json`, parsed.
    pub fn stats(&self) -> Value {
        self.json(&["stats", "--json"])
    }
}

/// A command about to run.
pub struct Cmd {
    cmd: Command,
    desc: String,
    report: Option<PathBuf>,
}

impl Cmd {
    /// Sets an environment variable.
    pub fn env(mut self, name: &str, value: impl AsRef<OsStr>) -> Self {
        self.desc = format!("{name}={} {}", value.as_ref().to_string_lossy(), self.desc);
        self.cmd.env(name, value);
        self
    }

    /// Runs the command; it must succeed.
    pub fn run(self) -> Run {
        let run = self.run_unchecked();
        run.assert_success();
        run
    }

    /// Runs the command whatever its exit status.
    pub fn run_unchecked(mut self) -> Run {
        let (status, stdout, stderr) = output_with_timeout(&mut self.cmd, &self.desc);
        let report = match &self.report {
            Some(path) => Report::read(path),
            None => Report::default(),
        };
        Run {
            desc: self.desc,
            status,
            stdout,
            stderr,
            report,
        }
    }
}

/// Runs `cmd` (named `desc` in messages) with no input, killed after [`TIMEOUT`]: its
/// status, standard output and standard error.
pub fn output_with_timeout(cmd: &mut Command, desc: &str) -> (ExitStatus, String, String) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{desc}`: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let err_t = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = err_t.join().unwrap_or_default();
            panic!(
                "`{desc}` did not finish in {TIMEOUT:?}; stderr so far:\n{}",
                String::from_utf8_lossy(&stderr)
            );
        }
        thread::sleep(Duration::from_millis(20));
    };
    let stdout = out_t.join().unwrap_or_default();
    let stderr = err_t.join().unwrap_or_default();
    (
        status,
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// A finished command.
pub struct Run {
    /// What ran, for messages.
    pub desc: String,
    /// Its exit status.
    pub status: ExitStatus,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
    /// The larder report it wrote (empty for plain cargo).
    pub report: Report,
}

impl Run {
    /// Everything about the run, for failure messages.
    pub fn context(&self) -> String {
        format!(
            "command: {}\nstatus: {}\n--- report ({} lines) ---\n{}--- stdout ---\n{}\n--- stderr ---\n{}",
            self.desc,
            self.status,
            self.report.entries.len(),
            self.report,
            self.stdout,
            self.stderr
        )
    }

    /// The command succeeded.
    pub fn assert_success(&self) {
        assert!(
            self.status.success(),
            "`{}` failed\n{}",
            self.desc,
            self.context()
        );
    }

    /// Every unit (report line with a crate name) has `outcome`, and the units cover at
    /// least the crates in `crates`.
    pub fn assert_all(&self, outcome: &str, crates: &[&str]) {
        let units: Vec<&Entry> = self.report.units().collect();
        assert!(
            !units.is_empty(),
            "expected every unit to be a {outcome}, but the report has no units\n{}",
            self.context()
        );
        let bad: Vec<&Entry> = units
            .iter()
            .copied()
            .filter(|e| e.outcome != outcome)
            .collect();
        assert!(
            bad.is_empty(),
            "expected every unit to be a {outcome}; these are not:\n{}\n{}",
            bad.iter()
                .map(|e| e.line.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            self.context()
        );
        let present = self.report.crates();
        let missing: Vec<&&str> = crates.iter().filter(|c| !present.contains(**c)).collect();
        assert!(
            missing.is_empty(),
            "crates {missing:?} are missing from the report\n{}",
            self.context()
        );
    }

    /// `krate` appears in the report and every one of its lines has `outcome`.
    pub fn assert_crate(&self, krate: &str, outcome: &str) {
        let outcomes = self.report.outcomes(krate);
        assert!(
            !outcomes.is_empty(),
            "crate `{krate}` is not in the report (expected a {outcome})\n{}",
            self.context()
        );
        assert!(
            outcomes.iter().all(|o| o == outcome),
            "crate `{krate}`: expected {outcome}, got {outcomes:?}\n{}",
            self.context()
        );
    }

    /// The crates compiled are exactly `crates`.
    pub fn assert_units(&self, crates: &[&str]) {
        let got = self.report.crates();
        let want: BTreeSet<String> = crates.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            got,
            want,
            "unexpected set of compiled crates\n{}",
            self.context()
        );
    }

    /// No unit is a hit.
    pub fn assert_no_hits(&self) {
        let hits: Vec<&Entry> = self.report.units().filter(|e| e.outcome == "hit").collect();
        assert!(
            hits.is_empty(),
            "expected no hits, got:\n{}\n{}",
            hits.iter()
                .map(|e| e.line.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            self.context()
        );
    }
}

/// One line of a `LARDER_REPORT` file.
#[derive(Debug, Clone)]
pub struct Entry {
    /// `--crate-name`, or `None` for cargo's probes.
    pub krate: Option<String>,
    /// `--crate-type`s.
    pub crate_types: Vec<String>,
    /// `hit`, `miss`, `not_cacheable` or `error`.
    pub outcome: String,
    /// The reason label, if any.
    pub reason: Option<String>,
    /// Detail text, if any.
    pub detail: Option<String>,
    /// Bytes written to the target directory from the store.
    pub bytes_restored: u64,
    /// For a hit answered by a remote tier: that remote's URL.
    pub remote: Option<String>,
    /// The raw line.
    pub line: String,
}

impl Entry {
    /// The result key of the entry a hit restored or a miss stored.
    pub fn key(&self) -> Option<String> {
        let v: Value = serde_json::from_str(&self.line).ok()?;
        v.get("key")?.as_str().map(str::to_string)
    }
}

/// The parsed lines of a report file.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Every line, in order.
    pub entries: Vec<Entry>,
}

impl Report {
    /// Reads a report file; a missing file is an empty report. Every line must be a JSON
    /// object with the contract's fields.
    pub fn read(path: &Path) -> Report {
        let Ok(text) = fs::read_to_string(path) else {
            return Report::default();
        };
        let entries = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                let v: Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("report line is not JSON ({e}): {line}"));
                let str_or_null = |key: &str| -> Option<String> {
                    match v.get(key) {
                        Some(Value::String(s)) => Some(s.clone()),
                        Some(Value::Null) | None => None,
                        Some(other) => panic!("report field `{key}` is {other}: {line}"),
                    }
                };
                let outcome = str_or_null("outcome")
                    .unwrap_or_else(|| panic!("report line without `outcome`: {line}"));
                assert!(
                    matches!(&*outcome, "hit" | "miss" | "not_cacheable" | "error"),
                    "unknown outcome {outcome:?}: {line}"
                );
                let crate_types = match v.get("crate_types") {
                    Some(Value::Array(a)) => a
                        .iter()
                        .map(|t| t.as_str().unwrap_or_default().to_string())
                        .collect(),
                    _ => Vec::new(),
                };
                let bytes_restored = v
                    .get("bytes_restored")
                    .and_then(Value::as_u64)
                    .unwrap_or_else(|| panic!("`bytes_restored` is not a u64: {line}"));
                Entry {
                    bytes_restored,
                    remote: str_or_null("remote"),
                    krate: str_or_null("crate"),
                    crate_types,
                    outcome,
                    reason: str_or_null("reason"),
                    detail: str_or_null("detail"),
                    line: line.to_string(),
                }
            })
            .collect();
        Report { entries }
    }

    /// Lines for rustc compiles (with a crate name); cargo's probes, build-script runs
    /// (`build-script-run`) and C objects (`c-object`) are left out.
    pub fn units(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| {
            e.krate.is_some()
                && !e
                    .crate_types
                    .iter()
                    .any(|t| t == "build-script-run" || t == "c-object")
        })
    }

    /// Lines of build-script runs.
    pub fn runs(&self) -> impl Iterator<Item = &Entry> {
        self.entries
            .iter()
            .filter(|e| e.crate_types.iter().any(|t| t == "build-script-run"))
    }

    /// The crate names compiled.
    pub fn crates(&self) -> BTreeSet<String> {
        self.units().filter_map(|e| e.krate.clone()).collect()
    }

    /// The outcomes of every line of `krate`.
    pub fn outcomes(&self, krate: &str) -> Vec<String> {
        self.units()
            .filter(|e| e.krate.as_deref() == Some(krate))
            .map(|e| e.outcome.clone())
            .collect()
    }

    /// How many units have `outcome`.
    pub fn count(&self, outcome: &str) -> usize {
        self.units().filter(|e| e.outcome == outcome).count()
    }

    /// Lines with `outcome` of every kind (rustc units, build-script runs, C objects),
    /// probes left out: what `larder stats` counts.
    pub fn count_all(&self, outcome: &str) -> usize {
        self.entries
            .iter()
            .filter(|e| e.krate.is_some() && e.outcome == outcome)
            .count()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.entries {
            writeln!(f, "{}", e.line)?;
        }
        Ok(())
    }
}

/// The compiler outputs under a profile directory (`target/debug`): every file in
/// `deps/`, the build scripts' executables under `build/`, and the files cargo copies
/// to the profile directory itself. Keyed by path relative to the profile directory.
pub fn compiler_outputs(profile_dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for path in files_under(profile_dir) {
        let rel = path.strip_prefix(profile_dir).unwrap().to_path_buf();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .into_owned();
        let name = rel.file_name().unwrap().to_string_lossy().into_owned();
        let keep = match first.as_str() {
            "deps" => true,
            // Build script executables; not what they wrote when run (out/, output).
            "build" => rel.components().count() == 3 && name.starts_with("build"),
            "incremental" | ".fingerprint" | "examples" => false,
            _ => rel.components().count() == 1 && name != ".cargo-lock",
        };
        if keep {
            out.insert(rel, fs::read(&path).unwrap());
        }
    }
    out
}

/// Overwrites every blob in the store: half with garbage, half truncated to half their
/// length. Returns how many were damaged.
pub fn corrupt_blobs(p: &Project) -> usize {
    let blobs = p.store_files("cas");
    for (i, path) in blobs.iter().enumerate() {
        if i % 2 == 0 {
            fs::write(path, b"this is not a zstd frame, it is garbage").unwrap();
        } else {
            let data = fs::read(path).unwrap();
            fs::write(path, &data[..data.len() / 2]).unwrap();
        }
    }
    blobs.len()
}
