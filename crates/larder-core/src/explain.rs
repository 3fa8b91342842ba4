//! `larder explain`: why a unit missed, as the inputs that differ from the nearest
//! stored entry.
//!
//! Every entry is stored with its key inputs ([`larder_key::InputSet`], in the
//! `inputs` namespace under its result key), and each unit and kind keeps an index of
//! its entries, newest first ([`larder_key::inputs::InputIndex`]), in every tier,
//! remotes included. A miss that stored its result has its own inputs there too, under
//! the key its report event names. [`explain`] loads them, reads the unit's index in
//! each tier (the local store, then each remote: "why did CI miss what my laptop
//! built" is answered by the remote's entries), compares the inputs of every entry it
//! lists with the miss's ([`larder_key::inputs::diff`]) and keeps the entry with the
//! fewest differences (the newest among equals).

use larder_digest::Digest;
use larder_key::InputSet;
use larder_key::inputs::{Difference, InputIndex, index_key, kind};
use larder_remote::Tiers;
use larder_store::Namespace;
use serde::Serialize;

use crate::report::Event;
use crate::summary::unit_name;

/// The explanation of one unit of a build.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    /// The unit, as reports name it.
    pub unit: String,
    /// Its kind (crate types, `build-script-run`, `c-object`).
    pub kind: String,
    /// `hit`, `miss`, `not_cacheable`, `error`.
    pub outcome: String,
    /// The report's reason and detail (`inputs-changed: src/lib.rs changed`).
    pub reason: Option<String>,
    /// The nearest stored entry and how it differs, if one was found.
    pub nearest: Option<Nearest>,
    /// Why there is no comparison, when there is none.
    pub note: Option<String>,
}

/// The stored entry nearest to a unit's inputs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Nearest {
    /// The tier it was found in: `local`, or a remote's URL.
    pub tier: String,
    /// Its result key.
    pub key: Digest,
    /// When it was stored, in seconds since the Unix epoch.
    pub created: u64,
    /// Every input that differs, the stored value as `old`.
    pub differences: Vec<Difference>,
}

/// Explains `events`: the misses, or with `units` the events of those crates or
/// packages (any outcome).
pub fn explain(tiers: &Tiers, events: &[Event], units: &[String]) -> Vec<Explanation> {
    let same = |a: &str, b: &str| a.replace('-', "_") == b.replace('-', "_");
    events
        .iter()
        .filter(|e| e.crate_name.is_some())
        .filter(|e| {
            if units.is_empty() {
                e.outcome == "miss"
            } else {
                units.iter().any(|u| {
                    e.crate_name.as_deref().is_some_and(|c| same(c, u))
                        || e.package.as_deref().is_some_and(|p| same(p, u))
                })
            }
        })
        .map(|e| explain_event(tiers, e))
        .collect()
}

fn explain_event(tiers: &Tiers, e: &Event) -> Explanation {
    let mut x = Explanation {
        unit: unit_name(e).unwrap_or_default(),
        kind: e.crate_types.join(","),
        outcome: e.outcome.clone(),
        reason: e.reason.clone().map(|r| match &e.detail {
            Some(d) => format!("{r}: {d}"),
            None => r,
        }),
        nearest: None,
        note: None,
    };
    if e.outcome != "miss" {
        if e.outcome == "hit" {
            x.note = Some("restored from the cache".into());
        }
        return x;
    }
    let Some(key) = e.key.as_deref().and_then(Digest::from_hex) else {
        x.note = Some(
            "its key inputs were not kept (it stored nothing; set LARDER_DEBUG=1 to keep \
             the inputs of every invocation)"
                .into(),
        );
        return x;
    };
    let Some(set) = input_set(tiers.tiers().next(), &key)
        .or_else(|| tiers.tiers().skip(1).find_map(|t| input_set(Some(t), &key)))
    else {
        x.note = Some("its key inputs are no longer in the store".into());
        return x;
    };
    x.nearest = nearest(tiers, &set);
    if x.nearest.is_some() {
        // The list names every difference; the report's detail names only the first
        // input that differs from the newest entry, which may be another one.
        x.reason = e.reason.clone();
    }
    if set.partial && x.nearest.is_some() {
        x.note = Some(
            "it stored nothing, so the files and variables it read are unknown: compared \
             without them (the reason above names the first file that differs)"
                .into(),
        );
    }
    if x.nearest.is_none() {
        x.note = Some(format!(
            "no other entry of {} ({}) is stored in any tier: its first build here",
            set.unit, set.kind
        ));
    }
    x
}

fn input_set(tier: Option<larder_remote::Tier<'_>>, key: &Digest) -> Option<InputSet> {
    let bytes = tier?.get(Namespace::Inputs, key).ok()??;
    serde_json::from_slice(&bytes).ok()
}

/// The entry of the same unit and kind whose inputs differ least from `set`'s, in any
/// tier.
pub fn nearest(tiers: &Tiers, set: &InputSet) -> Option<Nearest> {
    let mut best: Option<Nearest> = None;
    let mut seen = std::collections::HashSet::new();
    for tier in tiers.tiers() {
        let Some(index) = tier
            .get(Namespace::Inputs, &index_key(&set.unit, &set.kind))
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice::<InputIndex>(&b).ok())
        else {
            continue;
        };
        // An entry both here and in a faster tier is compared once.
        for result in index.results.iter().filter(|r| **r != set.result) {
            if !seen.insert(*result) {
                continue;
            }
            let Some(other) = tier
                .get(Namespace::Inputs, result)
                .ok()
                .flatten()
                .and_then(|b| serde_json::from_slice::<InputSet>(&b).ok())
            else {
                continue;
            };
            let mut differences = larder_key::inputs::diff(&other.inputs, &set.inputs);
            if set.partial {
                differences.retain(|d| !larder_key::inputs::READ_KINDS.contains(&d.kind.as_str()));
            }
            let better = best.as_ref().is_none_or(|b| {
                (differences.len(), std::cmp::Reverse(other.created))
                    < (b.differences.len(), std::cmp::Reverse(b.created))
            });
            if better {
                best = Some(Nearest {
                    tier: tier.name(),
                    key: *result,
                    created: other.created,
                    differences,
                });
            }
        }
    }
    best
}

/// How many changed libraries the text form lists before it sums up the rest: a change
/// that rebuilds every dependency changes each library a binary links.
pub const MAX_LIBRARIES_SHOWN: usize = 4;

/// The text form of explanations.
pub fn render(xs: &[Explanation], now: std::time::SystemTime) -> String {
    let mut out = String::new();
    for x in xs {
        out += &format!("{} ({}): {}", x.unit, x.kind, x.outcome);
        if let Some(r) = &x.reason {
            out += &format!(" ({r})");
        }
        out.push('\n');
        if let Some(n) = &x.nearest {
            let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(n.created);
            let age = now
                .duration_since(when)
                .map(|d| {
                    let secs = d.as_secs();
                    let rounded = if secs >= 3600 {
                        secs / 3600 * 3600
                    } else if secs >= 60 {
                        secs / 60 * 60
                    } else {
                        secs
                    };
                    format!(
                        "{} ago",
                        humantime::format_duration(std::time::Duration::from_secs(rounded))
                    )
                })
                .unwrap_or_else(|_| "just now".into());
            out += &format!(
                "  nearest entry: {} in {}, stored {age}; {} {} differ{}:\n",
                &n.key.to_hex()[..12],
                n.tier,
                n.differences.len(),
                if n.differences.len() == 1 {
                    "input"
                } else {
                    "inputs"
                },
                if n.differences.len() == 1 { "s" } else { "" },
            );
            let libraries = n
                .differences
                .iter()
                .filter(|d| d.kind == kind::LIBRARY)
                .count();
            let mut libraries_shown = 0;
            for d in &n.differences {
                if d.kind == kind::LIBRARY && libraries > MAX_LIBRARIES_SHOWN {
                    libraries_shown += 1;
                    if libraries_shown > MAX_LIBRARIES_SHOWN {
                        if libraries_shown == MAX_LIBRARIES_SHOWN + 1 {
                            out += &format!(
                                "    {:<10} and {} more libraries whose content changed \
                                 (`--json` lists them)\n",
                                "",
                                libraries - MAX_LIBRARIES_SHOWN
                            );
                        }
                        continue;
                    }
                }
                let show = |v: &Option<String>| {
                    v.as_deref()
                        .map_or_else(|| "(none)".to_string(), crate::human::value)
                };
                out += &format!(
                    "    {:<10} {}: {} -> {}\n",
                    d.kind,
                    crate::human::path(&d.name),
                    show(&d.old),
                    show(&d.new)
                );
            }
        }
        if let Some(note) = &x.note {
            out += &format!("  {note}\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_changed_libraries_are_summed_up() {
        let d = |i: usize| Difference {
            kind: "library".into(),
            name: format!("lib{i}"),
            old: Some("a".into()),
            new: Some("b".into()),
        };
        let x = Explanation {
            unit: "rg".into(),
            kind: "bin".into(),
            outcome: "miss".into(),
            reason: Some("no-entry".into()),
            nearest: Some(Nearest {
                tier: "local".into(),
                key: Digest::of(b"k"),
                created: 0,
                differences: (0..10).map(d).collect(),
            }),
            note: None,
        };
        let text = render(&[x], std::time::SystemTime::UNIX_EPOCH);
        assert_eq!(
            text.matches("library    lib").count(),
            MAX_LIBRARIES_SHOWN,
            "{text}"
        );
        assert!(text.contains("and 6 more libraries"), "{text}");
    }
}
