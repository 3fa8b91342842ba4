//! What each command prints, pinned as insta snapshots (`tests/it/snapshots/`) on the
//! fixture workspace, with what varies between machines and runs filtered out: paths,
//! digests, sizes, times, the compiler's version. A change to a command's output shows
//! as a snapshot diff; `INSTA_UPDATE=always cargo test` rewrites them, to review.

use crate::support::Project;

/// The filters: each (regex, replacement) applied in order.
fn filters(p: &Project) -> Vec<(String, String)> {
    let rustc = String::from_utf8(
        std::process::Command::new("rustc")
            .arg("-V")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let home = std::env::var("HOME").unwrap_or_else(|_| "/nonexistent".into());
    vec![
        (
            regex_escape(&p.larder_dir.display().to_string()),
            "[STORE]".into(),
        ),
        (regex_escape(&p.tmp().display().to_string()), "[TMP]".into()),
        (regex_escape(&p.root.display().to_string()), "[WS]".into()),
        (
            regex_escape(env!("CARGO_BIN_EXE_larder")),
            "[LARDER]".into(),
        ),
        (regex_escape(rustc.trim()), "[RUSTC]".into()),
        (regex_escape(&home), "[HOME]".into()),
        (r"\b[0-9a-f]{12,64}\b".into(), "[HASH]".into()),
        (r"-\[HASH\]".into(), "-[HASH]".into()),
        (r"\d+(\.\d+)? (B|KiB|MiB|GiB)\b".into(), "[SIZE]".into()),
        (r"\d+\.\d+ s\b".into(), "[SECS] s".into()),
        (r"stored [0-9a-z ]+ ago".into(), "stored [AGE] ago".into()),
        (r"\(\d+ bytes\)".into(), "([BYTES] bytes)".into()),
        (r"report-\d+\.jsonl".into(), "report-[N].jsonl".into()),
        // Columns padded to the width of what the filters replaced.
        (r" {2,}".into(), "  ".into()),
        (r"(?m)^ *\[SIZE\]".into(), "[SIZE]".into()),
        (r"(?m)^ *outputs".into(), "outputs".into()),
    ]
}

fn regex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn snapshot(p: &Project, name: &str, text: &str) {
    let mut settings = insta::Settings::clone_current();
    for (re, with) in filters(p) {
        settings.add_filter(&re, with);
    }
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!(name, text));
}

/// stdout of `larder <args>`, which must succeed (or exit with `code`).
fn out(p: &Project, args: &[&str], code: i32) -> String {
    let run = p.larder(args).run_unchecked();
    assert_eq!(run.status.code(), Some(code), "{}", run.context());
    run.stdout
}

#[test]
fn each_command_prints_what_its_snapshot_shows() {
    let p = Project::fixture();
    let first = p.build_with(&[("CARGO_INCREMENTAL", "0")]);
    // The wait for background stores is said only when it took 50 ms or more.
    let summary: Vec<&str> = first
        .stderr
        .lines()
        .filter(|l| l.starts_with("larder:") && !l.starts_with("larder: waited"))
        .collect();
    snapshot(&p, "cargo_first_build", &summary.join("\n"));
    p.clean();
    p.build_with(&[
        ("CARGO_INCREMENTAL", "0"),
        ("RUSTFLAGS", "--cfg larder_test"),
    ]);
    snapshot(&p, "explain_rustflags", &out(&p, &["explain", "a"], 0));
    snapshot(&p, "report_text", &out(&p, &["report"], 0));
    snapshot(
        &p,
        "report_markdown",
        &out(&p, &["report", "--format", "markdown"], 0),
    );
    snapshot(&p, "du_by_kind", &out(&p, &["du", "--by", "kind"], 0));
    snapshot(
        &p,
        "prune_dry_run",
        &out(&p, &["prune", "--crate", "a", "--dry-run"], 0),
    );
    snapshot(
        &p,
        "gc_dry_run",
        &out(&p, &["gc", "--max-age", "1day", "--dry-run"], 0),
    );
    snapshot(&p, "stats", &out(&p, &["stats"], 0));
    snapshot(&p, "config", &out(&p, &["config"], 0));
    let doctor = p.larder(&["doctor"]).run_unchecked();
    snapshot(&p, "doctor", &doctor.stdout);
    let cargo_home = p.tmp().join("cargo-home-for-init");
    let init = p
        .larder(&["init", "--check"])
        .env("CARGO_HOME", &cargo_home)
        .run_unchecked();
    assert_eq!(init.status.code(), Some(1), "{}", init.context());
    snapshot(&p, "init_check", &init.stdout);
    snapshot(&p, "clear", &out(&p, &["clear"], 0));
}
