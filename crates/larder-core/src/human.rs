//! How quantities are written for people: sizes with binary units, hit rates.

/// Formats a byte count with a binary unit.
pub fn bytes(n: u64) -> String {
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

/// The hit rate of `hits` among `hits + misses` lookups, in percent with one decimal;
/// `None` without lookups (a rate of nothing is no rate, not 0%).
pub fn hit_rate(hits: u64, misses: u64) -> Option<String> {
    let lookups = hits + misses;
    (lookups > 0).then(|| format!("{:.1}%", 100.0 * hits as f64 / lookups as f64))
}
