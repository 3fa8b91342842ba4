//! Path normalization: the same build in another directory gets the same key.
//!
//! A [`Roots`] holds the few absolute directories that differ from one checkout or
//! machine to the next: the working directory rustc runs in (the workspace root, or a
//! registry package's directory), the cargo target directory, `CARGO_HOME` and the
//! toolchain's sysroot. [`Roots::normalize_text`] replaces each of them, where it stands as
//! a whole path prefix, with a placeholder such as `@@larder:target@@`;
//! [`Roots::denormalize_text`] puts this build's directories back. Keys see only the
//! normalized form; outputs that mention paths (dep-info, diagnostics) are stored
//! normalized and denormalized when restored.

use std::path::{Path, PathBuf};

/// Generated files larger than this are stored and restored as they are, never searched
/// for roots to replace (bytes).
pub const REWRITE_MAX_BYTES: u64 = 16 << 20;

/// One named root directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    /// The placeholder name, such as `target`.
    pub name: &'static str,
    /// The absolute directory, without a trailing slash.
    pub path: String,
}

/// The directories that are replaced by placeholders, most specific first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roots {
    roots: Vec<Root>,
}

fn placeholder(name: &str) -> String {
    format!("@@larder:{name}@@")
}

/// Characters that may continue a path component; a root only matches when the text
/// after it does not continue the last component.
fn continues_component(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '~')
}

impl Roots {
    /// Builds the roots. Relative, empty or `/` paths are ignored; the longest path comes
    /// first so that the target directory inside a workspace wins over the workspace.
    pub fn new(roots: impl IntoIterator<Item = (&'static str, PathBuf)>) -> Roots {
        let mut list: Vec<Root> = Vec::new();
        for (name, path) in roots {
            let Some(s) = path.to_str() else { continue };
            let s = s.trim_end_matches('/');
            if !path.is_absolute()
                || s.is_empty()
                || list.iter().any(|r| r.name == name || r.path == s)
            {
                continue;
            }
            list.push(Root {
                name,
                path: s.to_string(),
            });
        }
        list.sort_by(|a, b| b.path.len().cmp(&a.path.len()).then(a.name.cmp(b.name)));
        Roots { roots: list }
    }

    /// The roots, most specific first.
    pub fn roots(&self) -> &[Root] {
        &self.roots
    }

    /// A digest of the roots (names and directories): where a compile ran. Two compiles
    /// with the same digest embed the same paths in what they write.
    pub fn digest(&self) -> larder_digest::Digest {
        let mut h = larder_digest::KeyHasher::new();
        for r in &self.roots {
            h.field(r.name, &r.path);
        }
        h.finish()
    }

    /// The directory of the root named `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.roots
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.path.as_str())
    }

    /// Replaces every root that stands as a whole path prefix in `text`.
    pub fn normalize_text(&self, text: &str) -> String {
        let mut out = text.to_string();
        for root in &self.roots {
            out = replace_bounded(&out, &root.path, &placeholder(root.name));
            let escaped = root.path.replace(' ', "\\ ");
            if escaped != root.path {
                out = replace_bounded(&out, &escaped, &placeholder(root.name));
            }
        }
        out
    }

    /// Puts this build's directories back in place of the placeholders.
    pub fn denormalize_text(&self, text: &str) -> String {
        let mut out = text.to_string();
        for root in &self.roots {
            out = out.replace(&placeholder(root.name), &root.path);
        }
        out
    }

    /// The normalized form of a path: relative paths are kept as they are.
    pub fn normalize_path(&self, path: &Path) -> String {
        self.normalize_text(&path.to_string_lossy())
    }

    /// The path a normalized path stands for in this build.
    pub fn denormalize_path(&self, text: &str) -> PathBuf {
        PathBuf::from(self.denormalize_text(text))
    }

    /// Whether the text holds a placeholder (it was normalized where a root stood).
    pub fn has_placeholder(text: &str) -> bool {
        text.contains("@@larder:")
    }

    /// Whether the normalized text still holds a placeholder this build has no root for.
    pub fn has_unknown_placeholder(&self, text: &str) -> bool {
        self.denormalize_text(text).contains("@@larder:")
    }
}

/// Replaces occurrences of `from` that start at a boundary and end at the end of a path
/// component.
fn replace_bounded(text: &str, from: &str, to: &str) -> String {
    if from.is_empty() || !text.contains(from) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut prev: Option<char> = None;
    while let Some(pos) = rest.find(from) {
        let before = rest[..pos].chars().next_back().or(prev);
        let after = rest[pos + from.len()..].chars().next();
        let start_ok = before.is_none_or(|c| !continues_component(c) && c != '/');
        let end_ok = after.is_none_or(|c| !continues_component(c));
        out.push_str(&rest[..pos]);
        if start_ok && end_ok {
            out.push_str(to);
        } else {
            out.push_str(from);
        }
        prev = from.chars().next_back();
        rest = &rest[pos + from.len()..];
    }
    out.push_str(rest);
    out
}

/// Finds cargo's target directory for an output directory: the nearest ancestor that
/// holds `CACHEDIR.TAG`, which cargo writes at the root of every target directory. With
/// `--target <triple>` cargo also writes one in `target/<triple>/`; the target directory
/// is then its parent (host artifacts, such as proc macros, are in `target/debug/`).
pub fn find_target_dir(out_dir: &Path) -> Option<PathBuf> {
    let tagged = |d: &Path| d.join("CACHEDIR.TAG").is_file();
    let nearest = out_dir.ancestors().take(8).find(|d| tagged(d))?;
    let is_triple = nearest
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.contains('-'));
    match nearest.parent() {
        Some(parent) if is_triple && tagged(parent) => Some(parent.to_path_buf()),
        _ => Some(nearest.to_path_buf()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots() -> Roots {
        Roots::new([
            ("cwd", PathBuf::from("/home/u/ws")),
            ("target", PathBuf::from("/home/u/ws/target")),
            ("cargo-home", PathBuf::from("/home/u/.cargo")),
        ])
    }

    #[test]
    fn most_specific_root_wins() {
        let r = roots();
        assert_eq!(
            r.normalize_text("/home/u/ws/target/debug/deps/liba.rlib"),
            "@@larder:target@@/debug/deps/liba.rlib"
        );
        assert_eq!(
            r.normalize_text("/home/u/ws/src/lib.rs"),
            "@@larder:cwd@@/src/lib.rs"
        );
    }

    #[test]
    fn only_whole_components_match() {
        let r = roots();
        assert_eq!(r.normalize_text("/home/u/ws2/src"), "/home/u/ws2/src");
        assert_eq!(r.normalize_text("/x/home/u/ws/src"), "/x/home/u/ws/src");
        assert_eq!(
            r.normalize_text("{\"file\":\"/home/u/ws\"} /home/u/ws:3"),
            "{\"file\":\"@@larder:cwd@@\"} @@larder:cwd@@:3"
        );
    }

    #[test]
    fn round_trip_into_another_checkout() {
        let a = roots();
        let b = Roots::new([
            ("cwd", PathBuf::from("/ci/build")),
            ("target", PathBuf::from("/ci/tgt")),
            ("cargo-home", PathBuf::from("/ci/.cargo")),
        ]);
        let text = "/home/u/ws/target/debug/deps/a.d: src/lib.rs /home/u/.cargo/registry/x.rs";
        assert_eq!(
            b.denormalize_text(&a.normalize_text(text)),
            "/ci/tgt/debug/deps/a.d: src/lib.rs /ci/.cargo/registry/x.rs"
        );
    }

    #[test]
    fn escaped_spaces_in_dep_info() {
        let r = Roots::new([("cwd", PathBuf::from("/a b/ws"))]);
        assert_eq!(
            r.normalize_text("/a\\ b/ws/src/x.rs"),
            "@@larder:cwd@@/src/x.rs"
        );
    }

    #[test]
    fn unknown_placeholders_are_detected() {
        let r = Roots::new([("cwd", PathBuf::from("/w"))]);
        assert!(r.has_unknown_placeholder("@@larder:target@@/x"));
        assert!(!r.has_unknown_placeholder("@@larder:cwd@@/x"));
    }

    #[test]
    fn a_target_triple_directory_belongs_to_the_target_directory() {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("target");
        let triple = target.join("x86_64-unknown-linux-musl");
        std::fs::create_dir_all(triple.join("debug/deps")).unwrap();
        std::fs::write(target.join("CACHEDIR.TAG"), "").unwrap();
        std::fs::write(triple.join("CACHEDIR.TAG"), "").unwrap();
        assert_eq!(
            find_target_dir(&triple.join("debug/deps")),
            Some(target.clone())
        );
        assert_eq!(
            find_target_dir(&target.join("debug/deps")),
            Some(target.clone())
        );
        // A target directory inside another one (a project under a target's tmp/) stays
        // its own.
        let inner = target.join("tmp/ws/target");
        std::fs::create_dir_all(inner.join("debug")).unwrap();
        std::fs::write(inner.join("CACHEDIR.TAG"), "").unwrap();
        assert_eq!(find_target_dir(&inner.join("debug")), Some(inner));
    }
}
