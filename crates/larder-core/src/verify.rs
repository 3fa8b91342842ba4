//! `larder verify`: verification by rebuild. Each restored unit of the last build (or a
//! sample of them, or one crate's) is compiled again locally, without the cache, in a
//! scratch directory and with the same inputs, and its outputs are compared with what
//! the cache restored.
//!
//! - A hit of a rustc unit records how to compile it again ([`Replay`], in the
//!   report): rustc, its arguments, its working directory, and the variables that can
//!   change its output (`CARGO_*`, `OUT_DIR`, `RUSTC_*` but the wrappers, `LARDER_EXTRA_ENV`'s;
//!   names holding `TOKEN`, `SECRET` or `PASSWORD` are never kept). The variables the
//!   crate read through `env!`/`option_env!` come from the entry's dep-info.
//! - The compile runs with the output directory, `-o`, `--emit` paths and the
//!   incremental directory moved into a scratch directory; it reads the same sources
//!   and the same dependencies from the target directory.
//! - Each output is compared by digest: **reproducible** (every output the same),
//!   **differs** (which output, where, and what the bytes there look like: a path,
//!   a number such as a timestamp, or code and data), or **not reproducible by
//!   nature** (two local compiles differ from each other too). A different exit code
//!   differs too (a cached failure that compiles).
//! - Outputs embed the paths they were compiled at (see "Paths inside restored
//!   artifacts" in the README): the record's `origin` (where its producer compiled) and
//!   the replay's are compared, and only an entry made at this compile's paths can
//!   **differ**; one made elsewhere that does not match is reported as **made at other
//!   paths** with its first difference, not quarantined.
//! - An entry that differs is quarantined ([`larder_remote::Tiers::quarantine`]): never
//!   restored here again, deleted from every writable tier that can delete it.
//!
//! Build-script runs and C objects are not recompiled (counted as skipped).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use larder_digest::Digest;
use larder_key::Roots;
use larder_remote::Tiers;
use larder_store::{ActionRecord, Namespace};
use serde::Serialize;

use crate::config::Config;
use crate::replay::{Replay, scratch_args};
use crate::report::Event;

/// What the verification of one unit found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Finding {
    /// Every output is the same.
    Reproducible,
    /// An output (or the exit code) differs; what and where.
    Differs(String),
    /// Two local compiles differ from each other: the unit is not reproducible.
    NotReproducible(String),
    /// The entry was made at other paths (another checkout, target directory or
    /// `CARGO_HOME`), which its outputs embed: it cannot be compared byte for byte here,
    /// and is not quarantined. Where it differs.
    Elsewhere(String),
    /// Not recompiled (a build-script run, a C object, no replay), and why.
    Skipped(String),
    /// The compile could not be run or compared, and why.
    Failed(String),
}

/// One unit's verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitResult {
    /// The crate (or package, for a build-script run).
    #[serde(rename = "crate")]
    pub crate_name: String,
    /// The crate types.
    pub crate_types: Vec<String>,
    /// The result key (hex) of the restored entry.
    pub key: String,
    /// What was found.
    pub finding: Finding,
    /// Whether the entry was quarantined.
    pub quarantined: bool,
}

/// What `larder verify` found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Hits of the build.
    pub hits: usize,
    /// Units recompiled and compared.
    pub checked: usize,
    /// Reproducible.
    pub reproducible: usize,
    /// Differing (quarantined).
    pub differs: usize,
    /// Not reproducible by nature.
    pub not_reproducible: usize,
    /// Made at other paths: not comparable here.
    pub elsewhere: usize,
    /// Not recompiled.
    pub skipped: usize,
    /// Could not be compared.
    pub failed: usize,
    /// Each unit.
    pub units: Vec<UnitResult>,
}

/// Whether the entry `key` falls in a sample of `percent` percent (the same keys for
/// the same percentage, on every machine).
pub fn sampled(key: &Digest, percent: f64) -> bool {
    let b = key.as_bytes();
    let n = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) % 10_000;
    f64::from(n) < percent * 100.0
}

/// Verifies the hits among `events` (of one build): those of `krate` if given, a
/// `percent` sample if given.
///
/// # Errors
/// [`larder_store::StoreError`] if the store cannot be opened.
pub fn verify(
    config: &Config,
    events: &[Event],
    percent: Option<f64>,
    krate: Option<&str>,
) -> Result<VerifyReport, larder_store::StoreError> {
    let store = crate::action::open_tiers(config)?;
    let mut report = VerifyReport::default();
    for e in events.iter().filter(|e| e.outcome == "hit") {
        report.hits += 1;
        let Some(key) = e.key.as_deref().and_then(Digest::from_hex) else {
            continue;
        };
        let name = e.crate_name.clone().unwrap_or_default();
        if krate.is_some_and(|k| k != name && e.package.as_deref() != Some(k)) {
            continue;
        }
        if percent.is_some_and(|p| !sampled(&key, p)) {
            continue;
        }
        let record = store.local().peek(Namespace::Action, &key).ok().flatten();
        let finding = match (&e.replay, &record) {
            (None, _) => Finding::Skipped(
                "not a rustc unit (build-script runs and C objects are not recompiled)".into(),
            ),
            (Some(_), None) => Finding::Failed("the record is no longer in the local store".into()),
            (Some(replay), Some(bytes)) => verify_unit(&store, bytes, replay),
        };
        let quarantined = match (&finding, &record) {
            (Finding::Differs(why), Some(bytes)) => {
                store.quarantine(&key, bytes, &format!("larder verify: {why}"));
                true
            }
            _ => false,
        };
        match &finding {
            Finding::Reproducible => report.reproducible += 1,
            Finding::Differs(_) => report.differs += 1,
            Finding::NotReproducible(_) => report.not_reproducible += 1,
            Finding::Elsewhere(_) => report.elsewhere += 1,
            Finding::Skipped(_) => report.skipped += 1,
            Finding::Failed(_) => report.failed += 1,
        }
        if !matches!(finding, Finding::Skipped(_)) {
            report.checked += 1;
        }
        report.units.push(UnitResult {
            crate_name: name,
            crate_types: e.crate_types.clone(),
            key: key.to_hex(),
            finding,
            quarantined,
        });
    }
    let _ = crate::report::update_totals(&config.dir, |t| {
        t.verified += report.checked as u64;
        t.verify_differs += report.differs as u64;
        t.verify_not_reproducible += report.not_reproducible as u64;
    });
    Ok(report)
}

/// A scratch compile's result: its exit code and each output file by name.
struct Compiled {
    code: i32,
    dir: tempfile::TempDir,
}

/// Compiles `replay` in a new scratch directory.
fn compile(replay: &Replay, env_deps: &[(String, Option<String>)]) -> Result<Compiled, String> {
    let dir = tempfile::Builder::new()
        .prefix("larder-verify-")
        .tempdir()
        .map_err(|e| format!("no scratch directory: {e}"))?;
    let mut cmd = Command::new(&replay.program);
    cmd.args(scratch_args(&replay.args, dir.path()))
        .current_dir(&replay.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env_deps {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    for (k, v) in &replay.env {
        cmd.env(k, v);
    }
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {}: {e}", replay.program))?;
    Ok(Compiled {
        code: status.code().unwrap_or(-1),
        dir,
    })
}

/// The variables the entry's dep-info says the crate read, with their values then
/// (`None`: unset), where the value holds no path placeholder.
fn env_deps(store: &Tiers, record: &ActionRecord) -> Vec<(String, Option<String>)> {
    let Some(d) = record.outputs.iter().find(|o| o.rewrite_paths) else {
        return Vec::new();
    };
    let Ok(Some(text)) = larder_store::get_verified_blob(store, &d.digest, d.size) else {
        return Vec::new();
    };
    String::from_utf8_lossy(&text)
        .lines()
        .filter_map(|l| l.strip_prefix("# env-dep:"))
        .filter_map(|rest| match rest.split_once('=') {
            Some((k, v)) if !Roots::has_placeholder(v) => {
                Some((k.to_string(), Some(v.to_string())))
            }
            Some(_) => None,
            None => Some((rest.to_string(), None)),
        })
        .collect()
}

/// Recompiles one restored unit (its record's bytes `record`) and compares: byte for
/// byte where the entry was made at this compile's paths.
fn verify_unit(store: &Tiers, record: &[u8], replay: &Replay) -> Finding {
    let record: ActionRecord = match serde_json::from_slice(record) {
        Ok(r) => r,
        Err(e) => return Finding::Failed(format!("the record does not parse: {e}")),
    };
    let deps = env_deps(store, &record);
    let first = match compile(replay, &deps) {
        Ok(c) => c,
        Err(e) => return Finding::Failed(e),
    };
    if first.code != record.exit_code {
        return Finding::Differs(format!(
            "exit code: the entry says {}, the compile gave {}",
            record.exit_code, first.code
        ));
    }
    let mut differing = Vec::new();
    for o in record.outputs.iter().filter(|o| !o.rewrite_paths) {
        let Some(name) = Path::new(&o.path).file_name() else {
            continue;
        };
        let local = first.dir.path().join(name);
        let Ok(bytes) = std::fs::read(&local) else {
            return Finding::Failed(format!("the compile wrote no {}", name.to_string_lossy()));
        };
        if Digest::of(&bytes) != o.digest {
            differing.push((o, local, bytes));
        }
    }
    if differing.is_empty() {
        return Finding::Reproducible;
    }
    // Two local compiles: if they differ too, the unit is not reproducible by nature.
    let second = match compile(replay, &deps) {
        Ok(c) => c,
        Err(e) => return Finding::Failed(e),
    };
    let (o, local, bytes) = &differing[0];
    let name = local.file_name().unwrap_or_default();
    let again = std::fs::read(second.dir.path().join(name)).unwrap_or_default();
    if again != *bytes {
        return Finding::NotReproducible(format!(
            "{}: two local compiles differ ({})",
            name.to_string_lossy(),
            describe(bytes, &again)
        ));
    }
    let restored = match larder_store::get_verified_blob(store, &o.digest, o.size) {
        Ok(Some(b)) => b,
        _ => {
            return Finding::Failed(format!(
                "{}: digest {} restored, {} compiled (the blob is gone)",
                name.to_string_lossy(),
                o.digest,
                Digest::of(bytes)
            ));
        }
    };
    let others = differing.len() - 1;
    let here = record.origin.is_some() && record.origin == replay.origin;
    let found = if here {
        Finding::Differs
    } else {
        Finding::Elsewhere
    };
    found(format!(
        "{}: {}{}",
        name.to_string_lossy(),
        describe(&restored, bytes),
        if others > 0 {
            format!(" (and {others} more outputs)")
        } else {
            String::new()
        }
    ))
}

/// Where `a` (restored) and `b` (compiled) first differ, and what the bytes there look
/// like: text with a path in it, a number (a timestamp?), or code and data.
pub fn describe(a: &[u8], b: &[u8]) -> String {
    let at = a
        .iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    let window = |s: &[u8]| {
        let start = at.saturating_sub(32);
        let end = (at + 32).min(s.len());
        s[start..end].to_vec()
    };
    let (wa, wb) = (window(a), window(b));
    let printable = |w: &[u8]| {
        let text: String = w
            .iter()
            .map(|&c| {
                if (0x20..0x7f).contains(&c) {
                    c as char
                } else {
                    '.'
                }
            })
            .collect();
        text
    };
    let here = |s: &[u8]| s.get(at).copied().unwrap_or(0);
    let kind = if printable(&wa).contains(".rcgu.o") {
        "the name of an object in the archive (incremental compiles name them per session)"
    } else if (here(a).is_ascii_digit() && here(b).is_ascii_digit())
        && !printable(&wa).contains('/')
    {
        "a number (a timestamp?)"
    } else if printable(&wa).contains('/') || printable(&wb).contains('/') {
        "text with a path"
    } else {
        "code or data"
    };
    let sizes = if a.len() == b.len() {
        format!("{} bytes each", a.len())
    } else {
        format!("{} bytes restored, {} compiled", a.len(), b.len())
    };
    format!(
        "first difference at byte {at} ({sizes}), {kind}: restored {:?}, compiled {:?}",
        printable(&wa),
        printable(&wb)
    )
}

/// Counts of findings, by kind, for the text report.
pub fn render(r: &VerifyReport) -> String {
    let mut out = String::new();
    let mut by_kind: BTreeMap<&str, Vec<&UnitResult>> = BTreeMap::new();
    for u in &r.units {
        let kind = match u.finding {
            Finding::Reproducible => "reproducible",
            Finding::Differs(_) => "differs",
            Finding::NotReproducible(_) => "not reproducible",
            Finding::Elsewhere(_) => "made elsewhere",
            Finding::Skipped(_) => "skipped",
            Finding::Failed(_) => "failed",
        };
        by_kind.entry(kind).or_default().push(u);
    }
    for (kind, units) in &by_kind {
        if *kind == "reproducible" {
            continue;
        }
        for u in units {
            let why = match &u.finding {
                Finding::Differs(w)
                | Finding::NotReproducible(w)
                | Finding::Elsewhere(w)
                | Finding::Skipped(w)
                | Finding::Failed(w) => w.as_str(),
                Finding::Reproducible => "",
            };
            let q = if u.quarantined { " (quarantined)" } else { "" };
            out += &format!(
                "{kind}: {} ({}){q}: {why}\n",
                u.crate_name,
                u.crate_types.join(",")
            );
        }
    }
    out += &format!(
        "verified {} of {} hits: {} reproducible, {} differ, {} not reproducible by nature, {} made at other paths (not comparable here), {} failed; {} skipped\n",
        r.checked,
        r.hits,
        r.reproducible,
        r.differs,
        r.not_reproducible,
        r.elsewhere,
        r.failed,
        r.skipped
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_are_described() {
        let a = b"....../home/ci/src/lib.rs......".to_vec();
        let b = b"....../work/me/src/lib.rs......".to_vec();
        assert!(
            describe(&a, &b).contains("text with a path"),
            "{}",
            describe(&a, &b)
        );
        let a = b"\x00\x01built 1700000000\x00".to_vec();
        let b = b"\x00\x01built 1800000000\x00".to_vec();
        assert!(
            describe(&a, &b).contains("a number"),
            "{}",
            describe(&a, &b)
        );
        let a = vec![0x48, 0x89, 0xe5, 0x90];
        let b = vec![0x48, 0x89, 0xe6, 0x90];
        assert!(
            describe(&a, &b).contains("code or data"),
            "{}",
            describe(&a, &b)
        );
        assert!(sampled(&Digest::of(b"x"), 100.0));
        assert!(!sampled(&Digest::of(b"x"), 0.0));
    }
}
