//! Reading rustc's dep-info (`.d`) files.
//!
//! rustc writes Makefile rules, one per output, listing every source file the compile
//! read (modules, `include!`, `include_str!`, `include_bytes!`, generated files in
//! `OUT_DIR`), followed by `# env-dep:NAME=VALUE` lines for each environment variable read
//! through `env!` or `option_env!`. Spaces in paths are escaped as `\ `.

/// What a dep-info file says a compile read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DepInfo {
    /// Every prerequisite path, unescaped, as written (relative to rustc's working
    /// directory or absolute), deduplicated in first-seen order.
    pub files: Vec<String>,
    /// Names of the environment variables the crate read, deduplicated.
    pub env: Vec<String>,
}

impl DepInfo {
    /// Parses the text of a dep-info file.
    pub fn parse(text: &str) -> DepInfo {
        let mut info = DepInfo::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# env-dep:") {
                let name = rest.split_once('=').map_or(rest, |(n, _)| n).to_string();
                if !info.env.contains(&name) {
                    info.env.push(name);
                }
                continue;
            }
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let words = split_words(line);
            let Some(colon) = words.iter().position(|w| w.ends_with(':')) else {
                continue;
            };
            for w in &words[colon + 1..] {
                if !info.files.contains(w) {
                    info.files.push(w.clone());
                }
            }
        }
        info
    }
}

/// Splits a rule line into words, honouring `\ ` escapes.
fn split_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&' ') => {
                cur.push(' ');
                chars.next();
            }
            ' ' | '\t' => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rustc_output() {
        let text = "/t/deps/a-1.d: a/src/lib.rs /t/build/a-2/out/g.rs a/my\\ file.txt\n\n\
                    /t/deps/liba-1.rlib: a/src/lib.rs /t/build/a-2/out/g.rs a/my\\ file.txt\n\n\
                    a/src/lib.rs:\n/t/build/a-2/out/g.rs:\na/my\\ file.txt:\n\n\
                    # env-dep:OUT_DIR=/t/build/a-2/out\n# env-dep:UNSET_VAR\n";
        let d = DepInfo::parse(text);
        assert_eq!(
            d.files,
            vec!["a/src/lib.rs", "/t/build/a-2/out/g.rs", "a/my file.txt"]
        );
        assert_eq!(d.env, vec!["OUT_DIR", "UNSET_VAR"]);
    }
}
