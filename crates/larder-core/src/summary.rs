//! What one build did: its events summed up ([`BuildSummary`]) and shown as the lines
//! `larder cargo` prints, as Markdown for a CI step summary, or as JSON
//! (`larder report`).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::action::outcome::BUILD_SCRIPT_RUN;
use crate::report::{Event, Totals};

/// What a build did, from its events.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BuildSummary {
    /// Compile invocations (cargo's probes and build scripts' stdin probes excluded).
    pub units: u64,
    /// Totals over those units.
    pub totals: Totals,
    /// `(unit, reason)` of every not-cacheable unit.
    pub not_cacheable: Vec<(String, String)>,
    /// Units that missed, with the reason (`no-entry`, `inputs-changed: src/lib.rs
    /// changed`).
    pub missed: Vec<(String, String)>,
    /// Units whose hit replayed a cached compile error.
    pub replayed_errors: Vec<String>,
    /// Compiles of source given on standard input (autocfg's and other build scripts'
    /// probes of the compiler): passed through, counted once.
    pub stdin_probes: u64,
    /// Hits answered by each remote tier (by URL), for units the local store lacked.
    pub remote_hits: BTreeMap<String, u64>,
    /// Seconds `larder cargo` waited after cargo for background stores and uploads.
    pub store_wait_secs: f64,
    /// Misses whose results were still being stored when `larder cargo` returned.
    pub storing: usize,
}

/// The name of an event's unit for people: the crate, `pkg (build script)` for a build
/// script's compile, `pkg (build script run)` for its run.
pub fn unit_name(e: &Event) -> Option<String> {
    let name = e.crate_name.as_ref()?;
    Some(if e.crate_types.iter().any(|t| t == BUILD_SCRIPT_RUN) {
        format!("{name} (build script run)")
    } else if larder_key::is_build_script_name(name) {
        match &e.package {
            Some(p) => format!("{p} (build script)"),
            None => name.clone(),
        }
    } else {
        name.clone()
    })
}

impl BuildSummary {
    /// Summarizes the events of one build.
    pub fn from_events(events: &[Event]) -> BuildSummary {
        let mut s = BuildSummary::default();
        for e in events {
            let Some(name) = unit_name(e) else { continue };
            if e.reason.as_deref() == Some(STDIN_INPUT) {
                s.stdin_probes += 1;
                continue;
            }
            s.units += 1;
            s.totals.add(e);
            match e.outcome.as_str() {
                "not_cacheable" | "error" => {
                    s.not_cacheable.push((
                        name,
                        e.detail.clone().or(e.reason.clone()).unwrap_or_default(),
                    ));
                }
                "miss" => {
                    let mut why = e.reason.clone().unwrap_or_default();
                    if let Some(d) = &e.detail {
                        why = format!("{why}: {d}");
                    }
                    s.missed.push((name, why));
                }
                "hit" if e.exit_code != 0 => s.replayed_errors.push(name),
                _ => {}
            }
            if let Some(r) = &e.remote {
                *s.remote_hits.entry(r.clone()).or_default() += 1;
            }
        }
        // Parallel compiles finish in any order: list by name.
        s.missed.sort();
        s.not_cacheable.sort();
        s.replayed_errors.sort();
        s
    }

    /// The first line: units, hits, misses, time saved.
    fn headline(&self) -> String {
        let t = &self.totals;
        let mut line = format!(
            "{} units: {} hits, {} misses ({} stored), {} not cacheable",
            self.units,
            t.hits,
            t.misses,
            t.stored,
            t.not_cacheable + t.errors,
        );
        if t.replayed_errors > 0 {
            line += &format!(", {} cached compile errors replayed", t.replayed_errors);
        }
        line += &format!(
            "; {:.1} s of compile saved, {} restored",
            t.compile_secs_saved,
            crate::human::bytes(t.bytes_restored),
        );
        line
    }

    /// The report printed at the end of `larder cargo` (and by `larder report`).
    pub fn render(&self) -> String {
        let mut out = format!("larder: {}\n", self.headline());
        if !self.missed.is_empty() && self.missed.len() <= 12 {
            let names: Vec<&str> = self.missed.iter().map(|(n, _)| n.as_str()).collect();
            out += &format!(
                "larder: missed: {} (`larder explain` says why)\n",
                names.join(", ")
            );
        } else if !self.missed.is_empty() {
            out += &format!(
                "larder: {} units missed (`larder report` lists them, `larder explain` says why)\n",
                self.missed.len()
            );
        }
        for name in &self.replayed_errors {
            out += &format!("larder: replayed the cached compile error of {name}\n");
        }
        for (name, reason) in &self.not_cacheable {
            out += &format!("larder: not cacheable: {name}: {reason}\n");
        }
        if self.stdin_probes > 0 {
            out += &format!(
                "larder: {} compiler probes from build scripts (source on stdin) passed through\n",
                self.stdin_probes
            );
        }
        for (remote, n) in &self.remote_hits {
            out += &format!("larder: {n} hits from {remote}\n");
        }
        if self.storing > 0 {
            out += &format!(
                "larder: storing {} of the workspace's results in the background\n",
                self.storing
            );
        } else if self.store_wait_secs >= 0.05 {
            out += &format!(
                "larder: waited {:.1} s after cargo for background stores and uploads\n",
                self.store_wait_secs
            );
        }
        out
    }

    /// Every unit that did not hit, one line each, after the headline: what `larder
    /// report` prints.
    pub fn render_full(&self) -> String {
        let mut out = format!("larder: {}\n", self.headline());
        for (name, why) in &self.missed {
            out += &format!("  miss           {name}: {why}\n");
        }
        for name in &self.replayed_errors {
            out += &format!("  replayed error {name}\n");
        }
        for (name, reason) in &self.not_cacheable {
            out += &format!("  not cacheable  {name}: {reason}\n");
        }
        if self.stdin_probes > 0 {
            out += &format!(
                "  not cacheable  {} compiler probes from build scripts (source on stdin)\n",
                self.stdin_probes
            );
        }
        for (remote, n) in &self.remote_hits {
            out += &format!("  {n} hits from {remote}\n");
        }
        out
    }

    /// Markdown for a CI step summary (`$GITHUB_STEP_SUMMARY`): a table of the counts,
    /// then the units that missed or were not cacheable.
    pub fn render_markdown(&self) -> String {
        let t = &self.totals;
        let rate = crate::human::hit_rate(t.hits, t.misses).unwrap_or_else(|| "n/a".into());
        let mut out = String::from("### larder build cache\n\n");
        out += "| units | hits | misses | stored | not cacheable | hit rate | compile saved | restored |\n";
        out += "|---:|---:|---:|---:|---:|---:|---:|---:|\n";
        out += &format!(
            "| {} | {} | {} | {} | {} | {} | {:.1} s | {} |\n",
            self.units,
            t.hits,
            t.misses,
            t.stored,
            t.not_cacheable + t.errors,
            rate,
            t.compile_secs_saved,
            crate::human::bytes(t.bytes_restored)
        );
        let escape = |s: &str| s.replace('|', "\\|");
        if !self.missed.is_empty() || !self.not_cacheable.is_empty() {
            out += "\n| unit | outcome | why |\n|---|---|---|\n";
            for (name, why) in &self.missed {
                out += &format!("| `{}` | miss | {} |\n", escape(name), escape(why));
            }
            for (name, why) in &self.not_cacheable {
                out += &format!("| `{}` | not cacheable | {} |\n", escape(name), escape(why));
            }
        }
        for (remote, n) in &self.remote_hits {
            out += &format!("\n{n} hits from `{remote}`\n");
        }
        out
    }
}

/// The label of compiles whose source is on standard input.
const STDIN_INPUT: &str = "stdin-input";

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
            remote: None,
            key: None,
            invocation: None,
            package: None,
            exit_code: 0,
            replay: None,
            fingerprint: None,
            seedable: false,
        }
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

    #[test]
    fn probes_and_replayed_errors_are_not_hits_or_units() {
        let mut failed = ev(Some("f"), "hit", None);
        failed.exit_code = 1;
        failed.saved_secs = 0.0;
        let mut script = ev(Some("build_script_build"), "miss", Some("no-entry"));
        script.package = Some("serde".into());
        let s = BuildSummary::from_events(&[
            ev(Some("probe0"), "not_cacheable", Some("stdin-input")),
            ev(Some("probe1"), "not_cacheable", Some("stdin-input")),
            failed,
            script,
        ]);
        assert_eq!((s.units, s.stdin_probes), (2, 2));
        assert_eq!((s.totals.hits, s.totals.replayed_errors), (0, 1));
        assert_eq!(
            s.missed,
            [("serde (build script)".to_string(), "no-entry".to_string())]
        );
        let text = s.render();
        assert!(text.contains("2 compiler probes"), "{text}");
        assert!(!text.contains("probe0"), "{text}");
        assert!(
            text.contains("1 cached compile errors replayed; 0.0 s"),
            "{text}"
        );
        let md = s.render_markdown();
        assert!(
            md.contains("| `serde (build script)` | miss | no-entry |"),
            "{md}"
        );
    }
}
