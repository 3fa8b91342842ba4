//! A timeline of a build, for finding where the time goes: `LARDER_TRACE=FILE larder
//! cargo build` writes every process of the build, each in its phases, to `FILE` in the
//! Chrome trace event format (open it in <https://ui.perfetto.dev> or
//! `chrome://tracing`), and prints the seconds each phase took in all.
//!
//! Each wrapper (and background store job) records one span for the whole invocation,
//! named after its unit and outcome (`regex (hit)`), and in it its phases: `start` (until
//! the configuration is read), `key`, `prefetch-wait` (waiting for this build's prefetch
//! to bring an entry), `lookup`, `restore`, `compile`, `collect` (hashing outputs),
//! `store`. It appends them as JSON lines, one write per process, when it ends; a process
//! that replaces itself with the tool (an invocation run uncached) records nothing.
//! `larder cargo` adds its own spans (`seed`, `cargo`, `prefetch`, waiting for the
//! stores, recording the seed and prefetch index) and turns the lines into one JSON
//! document at the end. Times are microseconds since the Unix epoch, so the processes
//! line up.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The variable naming the trace file (an absolute path for a wrapper).
pub const VAR: &str = "LARDER_TRACE";

/// One complete event (`"ph": "X"`) of the trace event format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Span {
    /// What it is: a phase, or the unit and outcome for a whole invocation.
    pub name: String,
    /// `invocation`, `phase` or `build`.
    pub cat: String,
    /// Always `X`.
    pub ph: String,
    /// Start, in microseconds since the Unix epoch.
    pub ts: u64,
    /// Duration, in microseconds.
    pub dur: u64,
    /// The process.
    pub pid: u32,
    /// The thread: the process again (each process is one row).
    pub tid: u32,
}

/// What one process records.
struct Recorder {
    path: PathBuf,
    started: u64,
    unit: String,
    outcome: String,
    phase: Option<(&'static str, u64)>,
    spans: Vec<Span>,
}

static RECORDER: Mutex<Option<Recorder>> = Mutex::new(None);

/// Microseconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn span(name: &str, cat: &str, ts: u64, end: u64) -> Span {
    Span {
        name: name.to_string(),
        cat: cat.to_string(),
        ph: "X".to_string(),
        ts,
        dur: end.saturating_sub(ts),
        pid: std::process::id(),
        tid: std::process::id(),
    }
}

fn with(f: impl FnOnce(&mut Recorder)) {
    if let Ok(mut guard) = RECORDER.lock()
        && let Some(r) = guard.as_mut()
    {
        f(r);
    }
}

/// Starts recording this process as `unit`, in the phase `start`, if `LARDER_TRACE`
/// names a file. The recording ends (and is written) when the returned guard drops.
pub fn begin(unit: &str) -> Guard {
    let Some(path) = crate::config::env::var_os(VAR).map(PathBuf::from) else {
        return Guard(false);
    };
    let t = now();
    if let Ok(mut guard) = RECORDER.lock() {
        *guard = Some(Recorder {
            path,
            started: t,
            unit: unit.to_string(),
            outcome: String::new(),
            phase: Some(("start", t)),
            spans: Vec::new(),
        });
    }
    Guard(true)
}

/// Ends the current phase and starts `name`.
pub fn phase(name: &'static str) {
    with(|r| {
        let t = now();
        if let Some((prev, since)) = r.phase.replace((name, t)) {
            r.spans.push(span(prev, "phase", since, t));
        }
    });
}

/// Records a span `name` from `since` (microseconds, [`now`]) until now, inside the
/// current phase.
pub fn inside(name: &str, since: u64) {
    with(|r| r.spans.push(span(name, "phase", since, now())));
}

/// Names the unit once it is known, and its outcome (`hit`, `miss`...).
pub fn unit(name: &str, outcome: &str) {
    with(|r| {
        if !name.is_empty() {
            r.unit = name.to_string();
        }
        r.outcome = outcome.to_string();
    });
}

/// Ends the recording when dropped: the spans are appended to the trace file.
#[must_use]
pub struct Guard(bool);

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.0 {
            return;
        }
        let Some(mut r) = RECORDER.lock().ok().and_then(|mut g| g.take()) else {
            return;
        };
        let t = now();
        if let Some((prev, since)) = r.phase.take() {
            r.spans.push(span(prev, "phase", since, t));
        }
        let name = match r.outcome.as_str() {
            "" => r.unit.clone(),
            o => format!("{} ({o})", r.unit),
        };
        r.spans.insert(0, span(&name, "invocation", r.started, t));
        append(&r.path, &r.spans);
    }
}

/// Appends `spans` to the trace file at `path` as JSON lines, in one write.
pub fn append(path: &Path, spans: &[Span]) {
    let mut text = String::new();
    for s in spans {
        if let Ok(line) = serde_json::to_string(s) {
            text.push_str(&line);
            text.push('\n');
        }
    }
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(text.as_bytes());
    }
}

/// The trace of a `larder cargo` build, if `LARDER_TRACE` is set in `env` (the
/// runner's environment, paths resolved): the file emptied for it.
pub fn start_build(env: &std::collections::BTreeMap<String, String>) -> Option<PathBuf> {
    let path = PathBuf::from(env.get(VAR).filter(|v| !v.is_empty())?);
    std::fs::write(&path, b"").ok()?;
    Some(path)
}

/// Appends a span `name` of `larder cargo` itself (category `build`) from `since` until
/// now to the trace at `path`.
pub fn append_build_span(path: &Path, name: &str, since: u64) {
    append(path, &[span(name, "build", since, now())]);
}

/// Ends the trace of a `larder cargo` build: one document at `path`, and the seconds of
/// each phase over all processes, printed.
pub fn finish_build(path: &Path) {
    match finish(path) {
        Ok(spans) => {
            let units = spans.iter().filter(|s| s.cat == "invocation").count();
            let phases: Vec<String> = totals(&spans)
                .into_iter()
                .map(|(name, secs, n)| format!("{name} {secs:.2} s ({n})"))
                .collect();
            eprintln!(
                "larder: trace of {units} processes in {} (open it in https://ui.perfetto.dev); \
                 time in each phase, all processes: {}",
                path.display(),
                phases.join(", ")
            );
        }
        Err(e) => eprintln!(
            "larder: warning: cannot write the trace {}: {e}",
            path.display()
        ),
    }
}

/// Seconds spent in each phase over all the spans, largest first, with how many spans.
pub fn totals(spans: &[Span]) -> Vec<(String, f64, usize)> {
    let mut by: std::collections::BTreeMap<&str, (f64, usize)> = Default::default();
    for s in spans.iter().filter(|s| s.cat == "phase") {
        let e = by.entry(&s.name).or_default();
        e.0 += s.dur as f64 / 1e6;
        e.1 += 1;
    }
    let mut out: Vec<_> = by
        .into_iter()
        .map(|(n, (secs, count))| (n.to_string(), secs, count))
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}

/// Turns the JSON lines at `path` into one trace document (`{"traceEvents": [...]}`),
/// and returns the spans read. Lines that do not parse are skipped.
///
/// # Errors
/// If the file cannot be read or written.
pub fn finish(path: &Path) -> std::io::Result<Vec<Span>> {
    let text = std::fs::read_to_string(path)?;
    let mut spans: Vec<Span> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    spans.sort_by_key(|s| s.ts);
    let doc = serde_json::json!({ "traceEvents": spans, "displayTimeUnit": "ms" });
    std::fs::write(path, doc.to_string())?;
    Ok(spans)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_one_document_and_phases_add_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.json");
        let a = span("key", "phase", 10, 1_000_010);
        let b = span("key", "phase", 20, 500_020);
        let c = span("compile", "phase", 30, 3_000_030);
        append(&path, &[span("a (miss)", "invocation", 0, 4_000_000), a, c]);
        append(&path, &[b]);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{half a line\n")
            .unwrap();
        let spans = finish(&path).unwrap();
        assert_eq!(spans.len(), 4);
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(doc["traceEvents"].as_array().unwrap().len(), 4);
        assert_eq!(doc["traceEvents"][0]["ph"], "X");
        let t = totals(&spans);
        assert_eq!(t[0].0, "compile");
        assert_eq!((t[1].0.as_str(), t[1].2), ("key", 2));
        assert!((t[1].1 - 1.5).abs() < 1e-9);
    }
}
