//! `larder stats`: totals across builds and what the store holds.

use serde::Serialize;

use crate::config::Config;
use crate::human::bytes as human_bytes;
use crate::report::{Totals, read_totals, update_totals};

/// The totals with the store's state, as `larder stats --json` prints them.
#[derive(Debug, Serialize)]
pub struct StatsReport {
    /// The running totals (flattened: `hits`, `misses`, `not_cacheable`, ...).
    #[serde(flatten)]
    pub totals: Totals,
    /// The store directory.
    pub dir: String,
    /// Bytes of entries in the local store.
    pub store_bytes: u64,
    /// Entries in the local store: blobs, action records, manifests, link records.
    pub store_entries: u64,
    /// The size bound, in bytes (`u64::MAX`: none).
    pub max_size: u64,
    /// Files evicted so far to keep the store within `max_size` and `max_age`.
    pub evicted_files: u64,
    /// Bytes evicted so far.
    pub evicted_bytes: u64,
}

/// Gathers the statistics.
pub fn gather(config: &Config) -> StatsReport {
    let store = config.open_store().ok();
    let usage = store
        .as_ref()
        .and_then(|s| s.usage().ok())
        .unwrap_or_default();
    let evicted = store.map(|s| s.evictions()).unwrap_or_default();
    StatsReport {
        totals: read_totals(&config.dir),
        dir: config.dir.display().to_string(),
        store_bytes: usage.total_bytes(),
        store_entries: usage.entries.iter().sum(),
        max_size: config.max_size,
        evicted_files: evicted.files,
        evicted_bytes: evicted.bytes,
    }
}

/// Resets the totals.
///
/// # Errors
/// If the store directory cannot be written.
pub fn zero(config: &Config) -> std::io::Result<()> {
    update_totals(&config.dir, |t| *t = Totals::default())
}

/// The human-readable form.
pub fn render(r: &StatsReport) -> String {
    let t = &r.totals;
    let rate = crate::human::hit_rate(t.hits, t.misses)
        .unwrap_or_else(|| "n/a (no lookups yet)".to_string());
    let mut out = String::new();
    out += &format!("hits                 {}\n", t.hits);
    out += &format!("misses               {}\n", t.misses);
    out += &format!("hit rate             {rate}\n");
    if t.verified > 0 {
        out += &format!(
            "verified             {} ({} differed and were quarantined, {} not reproducible)\n",
            t.verified, t.verify_differs, t.verify_not_reproducible
        );
    }
    if t.replayed_errors > 0 {
        out += &format!("replayed errors      {}\n", t.replayed_errors);
    }
    out += &format!("not cacheable        {}\n", t.not_cacheable);
    out += &format!("errors               {}\n", t.errors);
    out += &format!("compile time saved   {:.1} s\n", t.compile_secs_saved);
    out += &format!("bytes restored       {}\n", human_bytes(t.bytes_restored));
    out += &format!(
        "store                {} ({} of {}, {} entries)\n",
        r.dir,
        human_bytes(r.store_bytes),
        if r.max_size == u64::MAX {
            "no bound".to_string()
        } else {
            human_bytes(r.max_size)
        },
        r.store_entries
    );
    out += &format!(
        "evicted              {} files, {}\n",
        r.evicted_files,
        human_bytes(r.evicted_bytes)
    );
    for (reason, n) in &t.not_cacheable_reasons {
        out += &format!("  not cacheable: {reason:<28} {n}\n");
    }
    for (reason, n) in &t.miss_reasons {
        out += &format!("  miss: {reason:<35} {n}\n");
    }
    for (name, c) in &t.remotes {
        if name == "local" {
            // Only refusals are counted for the local store.
            out += &format!(
                "local store: {} action records refused for their signature\n",
                c.refused
            );
            continue;
        }
        out += &format!("remote {name}\n");
        out += &format!(
            "  lookups: {} hits, {} misses ({} corrupt); {} read\n",
            c.hits,
            c.misses,
            c.corrupt,
            human_bytes(c.bytes_read)
        );
        out += &format!(
            "  writes: {} ({}); {} skipped as too large\n",
            c.writes,
            human_bytes(c.bytes_written),
            c.skipped_too_large
        );
        out += &format!(
            "  errors: {} ({} timeouts); {} slow calls; {} calls skipped while switched off\n",
            c.errors, c.timeouts, c.slow, c.skipped_off
        );
        if c.refused > 0 {
            out += &format!(
                "  refused: {} action records for their signature\n",
                c.refused
            );
        }
    }
    out
}
