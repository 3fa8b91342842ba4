//! Which cargo command a build runs: the key its prefetch index
//! ([`crate::prefetch`]) and its seed ([`crate::seed`]) are kept under, and the options
//! of cargo's command line that larder reads (`--target-dir`, `--manifest-path`).

use std::ffi::OsString;
use std::path::Path;

use larder_digest::Digest;

/// The key of a cargo command's prefetch index and seed: the project (the nearest
/// `Cargo.toml`'s package name and workspace members, from `--manifest-path` or `cwd`
/// upwards), the command's arguments, and the variables that change every unit's key
/// (`RUSTFLAGS`, `CARGO_ENCODED_RUSTFLAGS`, `CARGO_BUILD_TARGET`, `RUSTUP_TOOLCHAIN`).
/// Not the checkout's path: another checkout of the project shares the index; nor the
/// arguments that change only what cargo prints or how it schedules (`-q`, `-v`,
/// `--color`, `-j`, ...): `cargo build -q` shares the index of `cargo build -v -j 4`;
/// and cargo's short spellings count as written out (`cargo b -r`).
pub fn index_key(args: &[OsString], cwd: &Path, var: impl Fn(&str) -> Option<String>) -> Digest {
    let args: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let project = project_manifest(&args, cwd)
        .map(|p| project_of(&p))
        .unwrap_or_default();
    let args = what_it_builds(&args);
    let vars: Vec<(&str, Option<String>)> = [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "RUSTUP_TOOLCHAIN",
    ]
    .into_iter()
    .map(|n| (n, var(n)))
    .collect();
    let doc = serde_json::json!({ "v": 1, "project": project, "args": args, "env": vars });
    Digest::of(doc.to_string().as_bytes())
}

/// cargo flags that never change what a command builds: its output, and whether it may
/// update the lockfile or reach the network (a build that succeeds with them builds
/// the same units without).
const QUIET_FLAGS: [&str; 9] = [
    "-q",
    "--quiet",
    "-v",
    "-vv",
    "--verbose",
    "--locked",
    "--offline",
    "--frozen",
    "--timings",
];

/// cargo options (with a value) that never change what a command builds.
const QUIET_OPTIONS: [&str; 4] = ["--color", "-j", "--jobs", "--message-format"];

/// cargo's built-in short spellings, written out: the subcommand aliases (as the first
/// argument that is not an option) and short options.
const SPELLED_OUT: [(&str, &str); 8] = [
    ("b", "build"),
    ("c", "check"),
    ("t", "test"),
    ("r", "run"),
    ("d", "doc"),
    ("-r", "--release"),
    ("-p", "--package"),
    ("-F", "--features"),
];

/// `args` without [`QUIET_FLAGS`] and [`QUIET_OPTIONS`] (`--color always`,
/// `--color=always`, `-j4`) and with cargo's short spellings written out
/// ([`SPELLED_OUT`]: `cargo b -r` is `cargo build --release`), up to a `--` (what follows
/// is the program's or the test harness's, kept as it is).
fn what_it_builds(args: &[String]) -> Vec<&str> {
    let mut out = Vec::new();
    let mut subcommand_seen = false;
    let mut it = args.iter().map(String::as_str);
    while let Some(a) = it.next() {
        let is_subcommand = !subcommand_seen && !a.starts_with(['-', '+']);
        subcommand_seen |= is_subcommand;
        let a = SPELLED_OUT
            .iter()
            .find(|(short, _)| *short == a && (is_subcommand || short.starts_with('-')))
            .map_or(a, |(_, long)| *long);
        if a == "--" {
            out.push(a);
            out.extend(it);
            break;
        }
        if QUIET_FLAGS.contains(&a) || a.starts_with("--timings=") {
            continue;
        }
        if QUIET_OPTIONS.contains(&a) {
            it.next();
            continue;
        }
        let attached = QUIET_OPTIONS.iter().any(|o| {
            a.strip_prefix(o)
                .is_some_and(|rest| rest.starts_with('=') || (*o == "-j" && !rest.is_empty()))
        });
        if !attached {
            out.push(a);
        }
    }
    out
}

/// The value of cargo's option `name` (`--target-dir`) among `args`, given as
/// `name VALUE` or `name=VALUE`.
pub fn cargo_option(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| {
            args.iter().find_map(|a| {
                a.strip_prefix(name)
                    .and_then(|rest| rest.strip_prefix('='))
                    .map(str::to_string)
            })
        })
}

/// The `Cargo.toml` a cargo command with `args` run in `cwd` reads first: the one
/// `--manifest-path` names, else the nearest one from `cwd` upwards.
pub fn project_manifest(args: &[String], cwd: &Path) -> Option<std::path::PathBuf> {
    match cargo_option(args, "--manifest-path") {
        Some(p) => Some(cwd.join(p)),
        None => cwd
            .ancestors()
            .map(|d| d.join("Cargo.toml"))
            .find(|p| p.is_file()),
    }
}

/// The package name and workspace members a `Cargo.toml` declares (empty if it cannot
/// be read).
fn project_of(cargo_toml: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(cargo_toml) else {
        return Vec::new();
    };
    let Ok(doc) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(name) = doc
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
    {
        out.push(format!("package:{name}"));
    }
    if let Some(members) = doc
        .get("workspace")
        .and_then(|w| w.get("members"))
        .and_then(|m| m.as_array())
    {
        let mut m: Vec<String> = members
            .iter()
            .filter_map(|v| v.as_str().map(|s| format!("member:{s}")))
            .collect();
        m.sort();
        out.extend(m);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_options_are_read_in_both_spellings() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let a = args(&[
            "build",
            "--target-dir",
            "t1",
            "--manifest-path=m/Cargo.toml",
        ]);
        assert_eq!(cargo_option(&a, "--target-dir").as_deref(), Some("t1"));
        assert_eq!(
            cargo_option(&a, "--manifest-path").as_deref(),
            Some("m/Cargo.toml")
        );
        let b = args(&["build", "--target-dir-extra=x", "--target-dir=t2"]);
        assert_eq!(cargo_option(&b, "--target-dir").as_deref(), Some("t2"));
        assert_eq!(cargo_option(&args(&["build"]), "--target-dir"), None);
    }

    fn vars(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn the_index_key_is_the_project_and_command_not_the_checkout() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for d in [a.path(), b.path()] {
            std::fs::write(d.join("Cargo.toml"), "[package]\nname = \"app\"\n").unwrap();
            std::fs::create_dir(d.join("src")).unwrap();
        }
        let args = |s: &str| -> Vec<OsString> { s.split(' ').map(OsString::from).collect() };
        let release = args("build --release");
        let k = index_key(&release, a.path(), vars);
        assert_eq!(k, index_key(&release, b.path(), vars));
        // From a subdirectory: the same project.
        assert_eq!(k, index_key(&release, &a.path().join("src"), vars));
        assert_ne!(k, index_key(&args("build"), a.path(), vars));
        assert_ne!(
            k,
            index_key(&release, a.path(), |n| (n == "RUSTFLAGS")
                .then(|| "-Copt-level=1".into()))
        );
        std::fs::write(b.path().join("Cargo.toml"), "[package]\nname = \"other\"\n").unwrap();
        assert_ne!(k, index_key(&release, b.path(), vars));
        // What cargo prints and how it schedules are not what it builds.
        for same in [
            "build --release -q",
            "-v build --locked --release --offline",
            "build --release --color always -j 2 --message-format=json",
            "build --color=never --release -j2 --jobs=3 --timings --frozen -vv",
            "b -r",
            "-q b --release",
        ] {
            assert_eq!(k, index_key(&args(same), a.path(), vars), "{same}");
        }
        for other in [
            "build --release --bin rg",
            "build --release -p quiet",
            "run --release -- -q",
            "build --release --features j",
            "build --release --bin b",
            "c --release",
        ] {
            assert_ne!(k, index_key(&args(other), a.path(), vars), "{other}");
        }
        assert_ne!(
            index_key(&args("run --release -- -q"), a.path(), vars),
            index_key(&args("run --release -- -v"), a.path(), vars)
        );
        assert_eq!(
            index_key(&args("t -p x -F y -- -r"), a.path(), vars),
            index_key(&args("test --package x --features y -- -r"), a.path(), vars)
        );
        assert_eq!(
            index_key(&args("+stable b -r"), a.path(), vars),
            index_key(&args("+stable build --release"), a.path(), vars)
        );
        assert_ne!(
            k,
            index_key(&args("+stable build --release"), a.path(), vars)
        );
        assert_ne!(
            index_key(&args("test -- -r"), a.path(), vars),
            index_key(&args("test -- --release"), a.path(), vars)
        );
    }
}
