//! How each kind of configuration value is parsed: sizes, durations, seconds,
//! percentages, booleans, zstd levels, lists, the remote write policy, the incremental
//! policy and the tiers that require signatures. Every error names the variable or file
//! key it came from.

use super::{ConfigError, ci};

pub(super) fn parse_percent(name: &str, value: &str) -> Result<f64, ConfigError> {
    match value.trim().trim_end_matches('%').parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p),
        _ => Err(invalid(
            name,
            value,
            "a percentage from 0 to 100, such as 5",
        )),
    }
}

pub(super) fn parse_write(name: &str, value: &str) -> Result<ci::WritePolicy, ConfigError> {
    ci::WritePolicy::parse(value).ok_or_else(|| invalid(name, value, "always, never or protected"))
}

pub(super) fn parse_incremental(
    name: &str,
    value: &str,
) -> Result<super::incremental::IncrementalPolicy, ConfigError> {
    super::incremental::IncrementalPolicy::parse(value)
        .ok_or_else(|| invalid(name, value, super::incremental::EXPECTED))
}

pub(super) const REQUIRE_EXPECTED: &str = "1 or true (every tier), 0 or false (none), or a list of local, remotes, read-only and remote URLs";

/// Sets which tiers require signatures from the list `tiers` (read from `name`): each
/// remote's flag in `remotes`, and the local store's, returned.
pub(super) fn require_signatures(
    name: &str,
    tiers: &[String],
    remotes: &mut [larder_remote::RemoteSpec],
    timeout: std::time::Duration,
) -> Result<bool, ConfigError> {
    if let [one] = tiers
        && let Ok(all) = parse_bool(name, one)
    {
        for r in remotes.iter_mut() {
            r.require_signatures = all;
        }
        return Ok(all);
    }
    let mut local = false;
    let mut wanted = vec![false; remotes.len()];
    for t in tiers {
        match t.as_str() {
            "local" => local = true,
            "remotes" => wanted.iter_mut().for_each(|w| *w = true),
            "read-only" => {
                for (w, r) in wanted.iter_mut().zip(remotes.iter()) {
                    *w |= r.read_only;
                }
            }
            url => {
                let named = larder_remote::RemoteSpec::parse(url, false, timeout)
                    .ok()
                    .map(|s| s.name());
                let at = remotes.iter().position(|r| Some(r.name()) == named);
                match at {
                    Some(i) => wanted[i] = true,
                    None => {
                        return Err(invalid(
                            name,
                            &larder_remote::redact(url),
                            &format!("{REQUIRE_EXPECTED} (this names no configured remote)"),
                        ));
                    }
                }
            }
        }
    }
    for (r, w) in remotes.iter_mut().zip(wanted) {
        r.require_signatures = w;
    }
    Ok(local)
}

pub(super) const SIZE_EXPECTED: &str =
    "a size in bytes such as 10737418240, 500M, 10GiB or 1.5GB (0: no bound)";

/// Parses a duration such as `30days` or `72h`.
///
/// # Errors
/// [`ConfigError::Invalid`] naming `name` if it does not parse or is zero.
pub fn parse_age(name: &str, value: &str) -> Result<std::time::Duration, ConfigError> {
    match humantime::parse_duration(value.trim()) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(invalid(
            name,
            value,
            "a duration such as 30days, 72h or 1week",
        )),
    }
}

pub(super) fn invalid(name: &str, value: &str, expected: &str) -> ConfigError {
    ConfigError::Invalid {
        name: name.to_string(),
        value: value.to_string(),
        expected: expected.to_string(),
    }
}

/// Splits a list of URLs at commas and whitespace.
pub(super) fn split_urls(v: &str) -> Vec<String> {
    v.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

pub(super) const SECS_EXPECTED: &str = "a number of seconds over 0, such as 5 or 0.5";

pub(super) fn parse_secs(name: &str, value: &str) -> Result<std::time::Duration, ConfigError> {
    match value.trim().parse::<f64>() {
        Ok(s) if s > 0.0 && s < 1e6 => Ok(std::time::Duration::from_secs_f64(s)),
        _ => Err(invalid(name, value, SECS_EXPECTED)),
    }
}

pub(super) fn split_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Parses a size: bytes, or a number with a unit (`K`, `M`, `G`, `T` and `KiB`.. are
/// powers of 1024; `KB`, `MB`, `GB`, `TB` powers of 1000).
pub fn parse_size(name: &str, value: &str) -> Result<u64, ConfigError> {
    let v = value.trim();
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let num: f64 = num
        .parse()
        .map_err(|_| invalid(name, value, SIZE_EXPECTED))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024f64.powi(2),
        "g" | "gib" => 1024f64.powi(3),
        "t" | "tib" => 1024f64.powi(4),
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        _ => return Err(invalid(name, value, SIZE_EXPECTED)),
    };
    let bytes = num * mult;
    // 0 is no bound, as in ccache and sccache.
    if bytes == 0.0 {
        return Ok(u64::MAX);
    }
    if !(bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err(invalid(name, value, SIZE_EXPECTED));
    }
    Ok(bytes as u64)
}

pub(super) fn parse_bool(name: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(invalid(
            name,
            value,
            "1, 0, true, false, yes, no, on or off",
        )),
    }
}

pub(super) fn parse_level(name: &str, value: &str) -> Result<i32, ConfigError> {
    match value.trim().parse::<i32>() {
        Ok(n) if (0..=19).contains(&n) => Ok(n),
        _ => Err(invalid(
            name,
            value,
            "a zstd level from 1 to 19, or 0 for uncompressed blobs",
        )),
    }
}
