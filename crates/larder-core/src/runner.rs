//! `larder cargo <args>`: runs cargo with larder as its rustc wrapper (and as the C and
//! C++ compiler of build scripts that use the `cc` crate, through `CC`/`CXX`) and reports
//! on the build.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

use crate::config::Config;
use crate::report::{Event, Totals, read_report};

/// What a build did, from its events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BuildSummary {
    /// Compile invocations (probes excluded).
    pub units: u64,
    /// Totals over those units.
    pub totals: Totals,
    /// `(crate, reason)` of every not-cacheable unit.
    pub not_cacheable: Vec<(String, String)>,
    /// Crates that missed.
    pub missed: Vec<String>,
}

impl BuildSummary {
    /// Summarizes the events of one build.
    pub fn from_events(events: &[Event]) -> BuildSummary {
        let mut s = BuildSummary::default();
        for e in events {
            let Some(name) = &e.crate_name else { continue };
            s.units += 1;
            s.totals.add(e);
            match e.outcome.as_str() {
                "not_cacheable" | "error" => {
                    s.not_cacheable.push((
                        name.clone(),
                        e.detail.clone().or(e.reason.clone()).unwrap_or_default(),
                    ));
                }
                "miss" => s.missed.push(name.clone()),
                _ => {}
            }
        }
        s
    }

    /// The report printed at the end of `larder cargo`.
    pub fn render(&self) -> String {
        let t = &self.totals;
        let mut out = format!(
            "larder: {} units: {} hits, {} misses ({} stored), {} not cacheable; {:.1} s of compile saved, {} restored\n",
            self.units,
            t.hits,
            t.misses,
            t.stored,
            t.not_cacheable + t.errors,
            t.compile_secs_saved,
            human_bytes(t.bytes_restored),
        );
        if !self.missed.is_empty() && self.missed.len() <= 12 {
            out += &format!("larder: missed: {}\n", self.missed.join(", "));
        }
        for (name, reason) in &self.not_cacheable {
            out += &format!("larder: not cacheable: {name}: {reason}\n");
        }
        out
    }
}

/// Formats a byte count with a binary unit.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// An error of the runner itself.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// cargo or the report file could not be set up.
    #[error("{0}")]
    Io(String),
}

/// Runs cargo with `args`, larder as its wrapper, and prints the build report to stderr.
/// Returns cargo's exit code.
///
/// # Errors
/// [`RunnerError`] if the configuration is invalid or cargo cannot be started.
pub fn run_cargo(args: Vec<OsString>) -> Result<i32, RunnerError> {
    let config = Config::load()?;
    let exe = std::env::current_exe()
        .map_err(|e| RunnerError::Io(format!("cannot find larder's own path: {e}")))?;
    let (report, _guard, skip) = match &config.report {
        Some(p) => {
            let skip = std::fs::read_to_string(p)
                .map(|t| t.lines().count())
                .unwrap_or(0);
            (p.clone(), None, skip)
        }
        None => {
            let f = tempfile::Builder::new()
                .prefix("larder-report-")
                .suffix(".jsonl")
                .tempfile()
                .map_err(|e| RunnerError::Io(format!("cannot create a report file: {e}")))?;
            (f.path().to_path_buf(), Some(f), 0)
        }
    };
    let cargo = std::env::var_os("CARGO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("cargo"));
    let mut command = Command::new(&cargo);
    command
        .args(&args)
        .env("RUSTC_WRAPPER", &exe)
        .env("LARDER_REPORT", &report);
    for (var, default) in [("CC", "cc"), ("CXX", "c++")] {
        if let Some(value) = c_compiler_env(&exe, std::env::var_os(var), default) {
            command.env(var, value);
        }
    }
    let status = command
        .status()
        .map_err(|e| RunnerError::Io(format!("cannot run {}: {e}", cargo.display())))?;
    let events: Vec<Event> = read_report(&report).into_iter().skip(skip).collect();
    eprint!("{}", BuildSummary::from_events(&events).render());
    Ok(crate::exec::exit_code(status))
}

/// The value of `CC` (or `CXX`) that puts larder in front of the C compiler for the
/// `cc` crate in build scripts: `<larder> <compiler>` where the compiler is the user's
/// single-word `CC` if it names a compiler larder recognises, else `default`. `None`
/// leaves the variable as it is: a value with arguments or an unrecognised compiler, or
/// a larder path with whitespace (cc-rs would split it).
fn c_compiler_env(
    exe: &std::path::Path,
    current: Option<OsString>,
    default: &str,
) -> Option<OsString> {
    let exe = exe.to_str().filter(|e| !e.contains(char::is_whitespace))?;
    let compiler = match current {
        None => default.to_string(),
        Some(v) => {
            let v = v.into_string().ok()?;
            let v = v.trim();
            if v.is_empty() {
                default.to_string()
            } else if !v.contains(char::is_whitespace) && crate::cc::is_compiler_name(v) {
                v.to_string()
            } else {
                return None;
            }
        }
    };
    Some(OsString::from(format!("{exe} {compiler}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(name: Option<&str>, outcome: &str, reason: Option<&str>) -> Event {
        Event {
            crate_name: name.map(str::to_string),
            crate_types: vec![],
            outcome: outcome.into(),
            reason: reason.map(str::to_string),
            detail: None,
            stored: outcome == "miss",
            secs: 0.1,
            saved_secs: if outcome == "hit" { 2.0 } else { 0.0 },
            bytes_restored: if outcome == "hit" { 2048 } else { 0 },
        }
    }

    #[test]
    fn cc_and_cxx_point_at_larder() {
        let exe = std::path::Path::new("/opt/larder");
        let v = |cur: Option<&str>| c_compiler_env(exe, cur.map(OsString::from), "cc");
        assert_eq!(v(None), Some("/opt/larder cc".into()));
        assert_eq!(v(Some("")), Some("/opt/larder cc".into()));
        assert_eq!(v(Some("clang")), Some("/opt/larder clang".into()));
        assert_eq!(
            v(Some("/usr/bin/gcc-12")),
            Some("/opt/larder /usr/bin/gcc-12".into())
        );
        assert_eq!(v(Some("sccache cc")), None);
        assert_eq!(v(Some("gcc -m32")), None);
        assert_eq!(v(Some("/opt/mycompiler")), None);
        let spaced = std::path::Path::new("/my dir/larder");
        assert_eq!(c_compiler_env(spaced, None, "cc"), None);
    }

    #[test]
    fn summary_counts_units_not_probes() {
        let s = BuildSummary::from_events(&[
            ev(None, "not_cacheable", Some("print-request")),
            ev(Some("a"), "hit", None),
            ev(Some("b"), "miss", Some("no-entry")),
            ev(Some("c"), "not_cacheable", Some("unknown-flag")),
        ]);
        assert_eq!(s.units, 3);
        assert_eq!(
            (s.totals.hits, s.totals.misses, s.totals.not_cacheable),
            (1, 1, 1)
        );
        let text = s.render();
        assert!(text.starts_with("larder: 3 units: 1 hits, 1 misses (1 stored), 1 not cacheable; 2.0 s of compile saved, 2.0 KiB restored"), "{text}");
        assert!(text.contains("not cacheable: c"), "{text}");
    }
}
