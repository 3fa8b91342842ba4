//! A memo of the files C compiles read: per file version, its content digest and what
//! its text says ([`TextFacts`]), kept in the store's tools directory
//! (`tools/c-facts/<xx>/<digest>`). The hundreds of compiles of a C library read the
//! same headers; each version is read, hashed and scanned once, then known by its
//! [`Stamp`] (device, inode, size, modification and change times).
//!
//! A version is remembered only if its stamp was the same before and after larder read
//! it and its times are at least [`SETTLED`] old: a later change gives it a change time
//! after those, so another stamp, and the memo is not consulted for it. A file changed
//! more recently is read every time. A memo entry that is missing or does not parse is
//! no entry.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use larder_digest::{Digest, KeyHasher};
use serde::{Deserialize, Serialize};

use super::directives::TextFacts;
use crate::hashing::Stamp;

/// The version of the memo's entries: a new one when [`TextFacts`] changes.
pub const VERSION: &str = "larder-c-facts-v1";

/// How old a file's times must be for its version to be remembered.
pub const SETTLED: Duration = Duration::from_secs(2);

/// One file as a compile read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRead {
    /// The digest of its content.
    pub digest: Digest,
    /// Its size, in bytes.
    pub size: u64,
    /// What its text says.
    pub facts: TextFacts,
}

/// What the file at `path` holds: from the memo in `tools` if it knows this version of
/// the file, else read (and remembered there if the version is settled). Without
/// `tools`, always read.
///
/// # Errors
/// If the file cannot be read.
pub fn read(tools: Option<&Path>, path: &Path) -> std::io::Result<FileRead> {
    let before = Stamp::of(path);
    let entry = tools
        .zip(before.as_ref())
        .map(|(t, s)| entry_path(t, path, s));
    if let Some(known) = entry.as_deref().and_then(load) {
        return Ok(known);
    }
    let bytes = std::fs::read(path)?;
    let read = FileRead {
        digest: Digest::of(&bytes),
        size: bytes.len() as u64,
        facts: TextFacts::of(&bytes),
    };
    if let (Some(entry), Some(stamp)) = (&entry, before)
        && stamp.settled_before(SystemTime::now() - SETTLED)
        && Stamp::of(path) == Some(stamp)
        && let Ok(json) = serde_json::to_vec(&read)
    {
        // Best effort: the memo is only a shortcut.
        let _ = crate::fsio::write_atomic(entry, &json, false);
    }
    Ok(read)
}

/// The memo entry of `path` at version `stamp`.
fn entry_path(tools: &Path, path: &Path, stamp: &Stamp) -> PathBuf {
    let mut h = KeyHasher::new();
    h.field("version", VERSION)
        .field("path", path.as_os_str().as_encoded_bytes())
        .field("stamp", stamp.to_key().as_bytes());
    let hex = h.finish().to_hex();
    tools.join("c-facts").join(&hex[..2]).join(hex)
}

fn load(entry: &Path) -> Option<FileRead> {
    let bytes = std::fs::read(entry).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn age(path: &Path, secs: u64) {
        let t = SystemTime::now() - Duration::from_secs(secs);
        let f = std::fs::File::options().write(true).open(path).unwrap();
        f.set_modified(t).unwrap();
    }

    #[test]
    fn a_settled_version_is_read_once_and_a_changed_one_again() {
        let dir = tempfile::tempdir().unwrap();
        let tools = dir.path().join("tools");
        let h = dir.path().join("x.h");
        std::fs::write(&h, "#include <y.h>\nconst char *f = __FILE__;\n").unwrap();
        age(&h, 10);
        // Settling the modification time changed the change time just now: not yet.
        let first = read(Some(&tools), &h).unwrap();
        assert_eq!(first.digest, Digest::of(&std::fs::read(&h).unwrap()));
        assert!(first.facts.file_macro);
        assert!(first.facts.includes.angled.contains("y.h"));
        assert!(
            !tools.exists(),
            "a version changed within {SETTLED:?} is not remembered"
        );

        // Once settled, remembered: a second read takes the memo. Planting another
        // digest in the entry shows which is used.
        std::thread::sleep(SETTLED + Duration::from_millis(100));
        read(Some(&tools), &h).unwrap();
        let stamp = Stamp::of(&h).unwrap();
        let entry = entry_path(&tools, &h, &stamp);
        let mut planted = load(&entry).expect("remembered");
        assert_eq!(planted, first);
        planted.digest = Digest::of(b"planted");
        std::fs::write(&entry, serde_json::to_vec(&planted).unwrap()).unwrap();
        assert_eq!(read(Some(&tools), &h).unwrap().digest, planted.digest);

        // Any change (even one that keeps the size and sets the old time back) is
        // another version: read again.
        std::fs::write(&h, "#include <z.h>\nconst char *f = __LINE__;\n").unwrap();
        age(&h, 10);
        let changed = read(Some(&tools), &h).unwrap();
        assert_eq!(changed.digest, Digest::of(&std::fs::read(&h).unwrap()));
        assert!(!changed.facts.file_macro);
        assert!(changed.facts.includes.angled.contains("z.h"));

        // A torn entry is no entry; without a memo directory, always read.
        std::fs::write(&entry, b"{\"dig").unwrap();
        assert!(load(&entry).is_none());
        assert_eq!(read(None, &h).unwrap(), changed);
    }
}
