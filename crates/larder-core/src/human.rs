//! How quantities are written for people: sizes with binary units, hit rates, and the
//! normalized paths and digests of keys.

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

/// A value as people read it: a 64-digit digest shortened to 12, path placeholders as
/// `<target>`, `<cwd>/` dropped.
pub fn value(v: &str) -> String {
    if v.is_empty() {
        return "\"\"".to_string();
    }
    let shorten = |w: &str| {
        if w.len() == 64 && w.bytes().all(|b| b.is_ascii_hexdigit()) {
            w[..12].to_string()
        } else {
            w.to_string()
        }
    };
    let text: Vec<String> = v.split(' ').map(shorten).collect();
    path(&text.join(" "))
}

/// Placeholders of normalized paths as `<name>`, the working directory's dropped.
pub fn path(v: &str) -> String {
    let v = v.replace("@@larder:cwd@@/", "");
    let mut out = String::new();
    let mut rest = v.as_str();
    while let Some(i) = rest.find("@@larder:") {
        out.push_str(&rest[..i]);
        let after = &rest[i + "@@larder:".len()..];
        match after.find("@@") {
            Some(j) => {
                out.push('<');
                out.push_str(&after[..j]);
                out.push('>');
                rest = &after[j + 2..];
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    // A build script without `rerun-if-changed` reads its package's whole tree.
    if out == "." {
        return "the package directory (every file under it)".into();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_as_people_read_them() {
        let d = larder_digest::Digest::of(b"x").to_hex();
        assert_eq!(value(&d), d[..12]);
        assert_eq!(value(""), "\"\"");
        assert_eq!(
            path("@@larder:cwd@@/src/lib.rs @@larder:target@@/debug"),
            "src/lib.rs <target>/debug"
        );
        assert_eq!(path("a @@larder:broken"), "a @@larder:broken");
    }
}
