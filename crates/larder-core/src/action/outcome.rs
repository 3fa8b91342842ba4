//! How a cached action ended, as types: [`Outcome`], [`MissReason`] and the [`Reason`]s
//! for not caching, and the one place they become an [`Event`] of the report
//! ([`Reporter`]).
//!
//! Outcomes stay typed until the edge: [`Reporter::report`] turns them into the stable
//! strings of the JSON report (`docs/cli-contract.md`), which `larder stats` and the
//! build summary count by.

use std::time::Instant;

use larder_key::{CrateType, Mismatch, NotCacheable};

use crate::config::Config;
use crate::report::{Event, record};

/// Why an invocation was not cached: a label for the totals and a message.
pub trait Reason: std::fmt::Display {
    /// The short label `larder stats` counts by.
    fn label(&self) -> &'static str;
}

impl Reason for NotCacheable {
    fn label(&self) -> &'static str {
        NotCacheable::label(self)
    }
}

/// Why a lookup did not restore a result: larder's answer to cargo's `DirtyReason`.
#[derive(Debug, Clone, PartialEq)]
pub enum MissReason {
    /// Nothing is stored under the key.
    NoEntry,
    /// Entries are stored under the invocation key, but an input differs from each; the
    /// input that differs from the first entry.
    InputsChanged(Mismatch),
    /// An entry matched but could not be restored (a record or blob missing or corrupt,
    /// an output that has no place in this build); what was wrong.
    EntryIncomplete(String),
    /// The local store could not be read.
    StoreError(String),
    /// An entry matched, but its action record was refused: where signatures are
    /// required it was unsigned, or signed by no trusted key, or its signature did not
    /// verify; which tier and why.
    Untrusted(String),
    /// The entry is quarantined on this machine (`larder verify` found it differs from
    /// a local compile, or it led to a failed restore); why.
    Quarantined(String),
}

impl MissReason {
    /// The stable label of the report (`no-entry`, `inputs-changed`,
    /// `entry-incomplete`, `store-error`, `untrusted`, `quarantined`).
    pub fn label(&self) -> &'static str {
        match self {
            MissReason::NoEntry => "no-entry",
            MissReason::InputsChanged(_) => "inputs-changed",
            MissReason::EntryIncomplete(_) => "entry-incomplete",
            MissReason::StoreError(_) => "store-error",
            MissReason::Untrusted(_) => "untrusted",
            MissReason::Quarantined(_) => "quarantined",
        }
    }

    /// A sentence for the report's `detail`, if there is more to say than the label.
    pub fn detail(&self) -> Option<String> {
        match self {
            MissReason::NoEntry => None,
            MissReason::InputsChanged(m) => Some(match m {
                Mismatch::FileChanged(p) => format!("{} changed", crate::human::path(p)),
                Mismatch::FileMissing(p) => format!("{} is gone", crate::human::path(p)),
                Mismatch::EnvChanged(v) => format!("${v} changed"),
                Mismatch::FileAppeared(p) => format!("{} appeared", crate::human::path(p)),
            }),
            MissReason::EntryIncomplete(why)
            | MissReason::StoreError(why)
            | MissReason::Untrusted(why)
            | MissReason::Quarantined(why) => Some(why.clone()),
        }
    }
}

/// What a hit restored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Restored {
    /// The recorded compile time of the entry, in seconds.
    pub compile_secs: f64,
    /// Bytes of output restored.
    pub bytes: u64,
    /// Outputs cloned (reflinked) from uncompressed blobs rather than written.
    pub cloned: usize,
    /// The remote tier that answered, if not the local store (its URL, credentials
    /// removed).
    pub remote: Option<String>,
    /// The tool's exit code replayed (1 for a cached compile error).
    pub exit_code: i32,
}

/// How one invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A stored result was restored; no tool ran.
    Hit(Restored),
    /// The tool ran. `stored` is `Ok` if its result was stored (or handed to a store
    /// job), else the report's detail saying why not.
    Miss {
        /// Why the lookup missed.
        reason: MissReason,
        /// Whether the result was stored.
        stored: Result<(), String>,
    },
    /// The invocation ran as it is, uncached.
    NotCacheable {
        /// The reason's label.
        label: &'static str,
        /// The reason's message.
        detail: String,
    },
    /// larder itself failed (the store could not be opened, a tool not identified); the
    /// invocation ran as it is.
    Error(String),
}

impl Outcome {
    /// The outcome of an invocation refused for `reason`.
    pub fn not_cacheable(reason: &dyn Reason) -> Outcome {
        Outcome::NotCacheable {
            label: reason.label(),
            detail: reason.to_string(),
        }
    }
}

/// The pseudo crate type of build-script runs in the report.
pub const BUILD_SCRIPT_RUN: &str = "build-script-run";

/// The pseudo crate type of C and C++ objects in the report.
pub const C_OBJECT: &str = "c-object";

/// What an invocation works on, as the report names it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Unit {
    /// The crate (or package, or object) name; `None` for invocations that are not
    /// units of a build (cargo's probes).
    pub name: Option<String>,
    /// What kind of unit.
    pub kind: UnitKind,
}

/// The kind of a [`Unit`].
#[derive(Debug, Clone, Default, PartialEq)]
pub enum UnitKind {
    /// A rustc invocation with its crate types (none known before parsing).
    #[default]
    Rustc,
    /// A rustc invocation, parsed.
    Crate(Vec<CrateType>),
    /// A build script's run.
    BuildScriptRun,
    /// A C or C++ object.
    CObject,
}

impl UnitKind {
    /// The report's `crate_types`.
    pub fn crate_types(&self) -> Vec<String> {
        match self {
            UnitKind::Rustc => Vec::new(),
            UnitKind::Crate(types) => types.iter().map(|t| crate_type_name(*t).into()).collect(),
            UnitKind::BuildScriptRun => vec![BUILD_SCRIPT_RUN.into()],
            UnitKind::CObject => vec![C_OBJECT.into()],
        }
    }
}

fn crate_type_name(t: CrateType) -> &'static str {
    match t {
        CrateType::Bin => "bin",
        CrateType::Rlib => "lib",
        CrateType::Dylib => "dylib",
        CrateType::Cdylib => "cdylib",
        CrateType::Staticlib => "staticlib",
        CrateType::ProcMacro => "proc-macro",
    }
}

/// Writes an invocation's [`Event`]: to the build's report file (`LARDER_REPORT`) and
/// the store's totals.
pub struct Reporter<'a> {
    config: &'a Config,
    started: Instant,
    /// The unit reported on; refined once the invocation is parsed.
    pub unit: Unit,
    /// The result key of the entry restored or stored, once known.
    pub key: Option<larder_digest::Digest>,
    /// The invocation key, once computed.
    pub invocation: Option<larder_digest::Digest>,
    /// For a hit: how to compile the unit again (`larder verify`).
    pub replay: Option<crate::replay::Replay>,
    /// The unit's fingerprint directory, and whether it may be planted.
    pub fingerprint: Option<(std::path::PathBuf, bool)>,
}

impl<'a> Reporter<'a> {
    /// A reporter for an invocation that started at `started`.
    pub fn new(config: &'a Config, started: Instant, unit: Unit) -> Reporter<'a> {
        Reporter {
            config,
            started,
            unit,
            key: None,
            invocation: None,
            replay: None,
            fingerprint: None,
        }
    }

    /// Records `outcome`. Never fails: reporting never fails a build.
    pub fn report(&self, outcome: &Outcome) {
        let event = self.event(outcome);
        tracing::debug!(?event, "invocation done");
        crate::trace::unit(
            event.crate_name.as_deref().unwrap_or_default(),
            &event.outcome,
        );
        record(self.config.report.as_deref(), &self.config.dir, &event);
    }

    /// The event of `outcome`, with this invocation's time so far.
    pub fn event(&self, outcome: &Outcome) -> Event {
        let secs = self.started.elapsed().as_secs_f64();
        let mut event = Event {
            crate_name: self.unit.name.clone(),
            crate_types: self.unit.kind.crate_types(),
            outcome: String::new(),
            reason: None,
            detail: None,
            stored: false,
            secs,
            saved_secs: 0.0,
            bytes_restored: 0,
            remote: None,
            key: self.key.map(|k| k.to_hex()),
            invocation: self.invocation.map(|k| k.to_hex()),
            package: crate::config::env::var("CARGO_PKG_NAME"),
            exit_code: 0,
            replay: None,
            fingerprint: self
                .fingerprint
                .as_ref()
                .map(|(p, _)| p.display().to_string()),
            seedable: self.fingerprint.as_ref().is_some_and(|(_, s)| *s),
        };
        match outcome {
            Outcome::Hit(r) => {
                event.outcome = "hit".into();
                event.detail = (r.cloned > 0).then(|| format!("cloned {} files", r.cloned));
                event.exit_code = r.exit_code;
                if r.exit_code != 0 {
                    event.detail = Some("replayed a cached compile error".into());
                } else {
                    event.saved_secs = (r.compile_secs - secs).max(0.0);
                }
                event.bytes_restored = r.bytes;
                event.remote = r.remote.clone();
                event.replay = self.replay.clone();
            }
            Outcome::Miss { reason, stored } => {
                event.outcome = "miss".into();
                event.reason = Some(reason.label().into());
                match stored {
                    Ok(()) => {
                        event.stored = true;
                        event.detail = reason.detail();
                    }
                    Err(why) => event.detail = Some(why.clone()),
                }
            }
            Outcome::NotCacheable { label, detail } => {
                event.outcome = "not_cacheable".into();
                event.reason = Some((*label).into());
                event.detail = Some(detail.clone());
            }
            Outcome::Error(msg) => {
                event.outcome = "error".into();
                event.detail = Some(msg.clone());
            }
        }
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_keep_the_report_contract() {
        let env = [("LARDER_DIR".to_string(), "/nonexistent/larder".to_string())];
        let config = Config::from_env(&env.into_iter().collect()).unwrap();
        let r = Reporter::new(
            &config,
            Instant::now(),
            Unit {
                name: Some("a".into()),
                kind: UnitKind::Crate(vec![CrateType::Rlib, CrateType::ProcMacro]),
            },
        );
        let miss = r.event(&Outcome::Miss {
            reason: MissReason::InputsChanged(Mismatch::FileChanged("src/lib.rs".into())),
            stored: Ok(()),
        });
        assert_eq!(miss.outcome, "miss");
        assert_eq!(miss.reason.as_deref(), Some("inputs-changed"));
        assert_eq!(miss.detail.as_deref(), Some("src/lib.rs changed"));
        assert!(miss.stored);
        assert_eq!(miss.crate_types, ["lib", "proc-macro"]);
        let not_stored = r.event(&Outcome::Miss {
            reason: MissReason::NoEntry,
            stored: Err("not stored: disk full".into()),
        });
        assert!(!not_stored.stored);
        assert_eq!(not_stored.detail.as_deref(), Some("not stored: disk full"));
        let nc = r.event(&Outcome::not_cacheable(&NotCacheable::Disabled));
        assert_eq!(
            (nc.outcome.as_str(), nc.reason.as_deref()),
            ("not_cacheable", Some("disabled"))
        );
        let hit = r.event(&Outcome::Hit(Restored {
            compile_secs: 1e6,
            bytes: 3,
            cloned: 2,
            remote: None,
            exit_code: 0,
        }));
        assert_eq!(hit.outcome, "hit");
        assert_eq!(hit.detail.as_deref(), Some("cloned 2 files"));
        assert!(hit.saved_secs > 0.0);
    }
}
