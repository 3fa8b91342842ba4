//! The live line `larder cargo` shows on a terminal: units done, hits, misses and
//! compile time saved so far, read from the build's report as the wrappers append to it.
//!
//! cargo's standard error goes through larder, which prints each line above the live
//! line (indicatif's `println`), so the two never overwrite each other; cargo then sees
//! a pipe, so it is told to keep its colours (`CARGO_TERM_COLOR=always`, unless the
//! user set it) and draws no progress bar of its own. Off a terminal (CI logs) nothing
//! of this runs: cargo writes to the inherited standard error, and the report after the
//! build is plain lines.

use std::io::{BufRead, BufReader, IsTerminal, Read, Seek, SeekFrom};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::report::Event;

/// Whether `larder cargo` shows the live line: standard error is a terminal.
pub fn wanted() -> bool {
    std::io::stderr().is_terminal()
}

/// What the live line counts.
#[derive(Debug, Default, Clone, PartialEq)]
struct Counts {
    units: u64,
    hits: u64,
    misses: u64,
    saved: f64,
}

impl Counts {
    fn add(&mut self, e: &Event) {
        if e.crate_name.is_none() || e.reason.as_deref() == Some("stdin-input") {
            return;
        }
        self.units += 1;
        match e.outcome.as_str() {
            "hit" if e.exit_code == 0 => {
                self.hits += 1;
                self.saved += e.saved_secs.max(0.0);
            }
            "miss" => self.misses += 1,
            _ => {}
        }
    }

    fn line(&self) -> String {
        format!(
            "{} units done: {} hits, {} misses; {:.1} s of compile saved",
            self.units, self.hits, self.misses, self.saved
        )
    }
}

/// Runs `command` (cargo) with the live line, reading events appended to `report` after
/// its first `skip` lines. Returns cargo's exit status.
///
/// # Errors
/// If cargo cannot be started.
pub fn run(command: &mut Command, report: &Path, skip: usize) -> std::io::Result<ExitStatus> {
    if crate::config::env::var_os("CARGO_TERM_COLOR").is_none() {
        command.env("CARGO_TERM_COLOR", "always");
    }
    let mut child = command.stderr(Stdio::piped()).spawn()?;
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} larder: {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let relay = child.stderr.take().map(|stderr| {
        let bar = bar.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stderr);
            let mut line = Vec::new();
            while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                let text = String::from_utf8_lossy(&line);
                bar.println(text.trim_end_matches(['\n', '\r']));
                line.clear();
            }
        })
    });
    let mut counts = Counts::default();
    let mut tail = Tail::new(skip);
    let status = loop {
        for e in tail.read(report) {
            counts.add(&e);
        }
        bar.set_message(counts.line());
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(150));
    };
    if let Some(r) = relay {
        let _ = r.join();
    }
    bar.finish_and_clear();
    Ok(status)
}

/// Reads the events appended to a report since the last read.
struct Tail {
    offset: u64,
    skip: usize,
    partial: Vec<u8>,
}

impl Tail {
    fn new(skip: usize) -> Tail {
        Tail {
            offset: 0,
            skip,
            partial: Vec::new(),
        }
    }

    fn read(&mut self, path: &Path) -> Vec<Event> {
        let Ok(mut f) = std::fs::File::open(path) else {
            return Vec::new();
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut buf = Vec::new();
        let Ok(n) = f.read_to_end(&mut buf) else {
            return Vec::new();
        };
        self.offset += n as u64;
        self.partial.extend_from_slice(&buf);
        let mut events = Vec::new();
        while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            if self.skip > 0 {
                self.skip -= 1;
                continue;
            }
            if let Ok(e) = serde_json::from_slice(&line) {
                events.push(e);
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn the_tail_reads_whole_new_lines_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        let event = r#"{"crate":"a","crate_types":["lib"],"outcome":"hit","reason":null,"detail":null,"stored":false,"secs":0.1,"saved_secs":2.0,"bytes_restored":1}"#;
        let mut f = std::fs::File::create(&path).unwrap();
        writeln!(f, "{event}").unwrap();
        writeln!(f, "{event}").unwrap();
        write!(f, "{}", &event[..10]).unwrap();
        let mut tail = Tail::new(1);
        let mut counts = Counts::default();
        for e in tail.read(&path) {
            counts.add(&e);
        }
        assert_eq!((counts.units, counts.hits), (1, 1));
        writeln!(f, "{}", &event[10..]).unwrap();
        for e in tail.read(&path) {
            counts.add(&e);
        }
        assert_eq!(counts.hits, 2);
        assert_eq!(
            counts.line(),
            "2 units done: 2 hits, 0 misses; 4.0 s of compile saved"
        );
    }
}
