//! A memo of the files C compiles read: per file version, its content digest and what
//! its text says ([`TextFacts`]), kept in the store's tools directory
//! ([`larder_store::Layout::header_memo`]). The hundreds of compiles of a C library read the
//! same headers; each version is read, hashed and scanned once, then known by its
//! [`Stamp`] (device, inode, size, modification and change times).
//!
//! A version is remembered only if its stamp was the same before and after larder read
//! it and both its times were at least [`SETTLED`] old when the read began: any later
//! change gives it a change time after those (the kernel sets it; `touch -r`, `cp -p`
//! and `rsync -a` set the modification time only), so another stamp, and the memo is
//! not consulted for it. A file changed more recently is read every time, and so is one
//! reached through a symbolic link, or on a file system whose stamps may lag its
//! content (anything but the local ones in [`LOCAL_FILE_SYSTEMS`]: NFS, SMB, FUSE and
//! 9p cache attributes). Entries a week old are pruned
//! ([`larder_store::Layout::prune_header_memo`]). An entry's name also covers the code that reads the facts
//! ([`facts_version`]), so a larder that reads them otherwise never takes another's. A
//! memo entry that is missing or does not parse is no entry.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use larder_digest::{Digest, KeyHasher};
use serde::{Deserialize, Serialize};

use super::directives::TextFacts;
use crate::hashing::Stamp;

/// The version of the memo's entries' form.
pub const VERSION: &str = "larder-c-facts-v1";

/// The file systems (`statfs` types) whose stamps change with their content: ext2-4,
/// XFS, Btrfs, tmpfs, overlayfs, F2FS, ZFS, bcachefs.
pub const LOCAL_FILE_SYSTEMS: &[i64] = &[
    0xEF53,
    0x5846_5342,
    0x9123_683E,
    0x0102_1994,
    0x794C_7630,
    0xF2F5_2010,
    0x2FC1_2FC1,
    0xCA45_1A4E,
];

/// The digest of the code that reads [`TextFacts`] (`directives.rs`), in every entry's
/// name: a change to how texts are read is a new memo.
pub fn facts_version() -> Digest {
    static VERSION_OF_FACTS: std::sync::OnceLock<Digest> = std::sync::OnceLock::new();
    *VERSION_OF_FACTS.get_or_init(|| Digest::of(include_str!("directives.rs").as_bytes()))
}

/// Whether the file system of `path` (on device `dev`) is one of
/// [`LOCAL_FILE_SYSTEMS`]; asked once per device and process.
fn local(path: &Path, dev: u64) -> bool {
    static SEEN: std::sync::Mutex<Vec<(u64, bool)>> = std::sync::Mutex::new(Vec::new());
    let Ok(mut seen) = SEEN.lock() else {
        return false;
    };
    if let Some((_, yes)) = seen.iter().find(|(d, _)| *d == dev) {
        return *yes;
    }
    // `f_type`'s width differs between platforms.
    #[allow(clippy::unnecessary_cast)]
    let yes =
        rustix::fs::statfs(path).is_ok_and(|s| LOCAL_FILE_SYSTEMS.contains(&(s.f_type as i64)));
    seen.push((dev, yes));
    yes
}

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

/// What the file at `path` holds: from the memo in `dir` (the store's
/// [`larder_store::Layout::header_memo`]) if it knows this version of the file, else
/// read (and remembered there if the version is settled). Without `dir`, always read.
///
/// # Errors
/// If the file cannot be read.
pub fn read(dir: Option<&Path>, path: &Path) -> std::io::Result<FileRead> {
    let start = SystemTime::now();
    let before = Stamp::of(path).filter(|s| local(path, s.dev()));
    let entry = dir
        .zip(before.as_ref())
        .map(|(d, s)| entry_path(d, path, s));
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
        && stamp.settled_before(start - SETTLED)
        && Stamp::of(path) == Some(stamp)
        && let Ok(json) = serde_json::to_vec(&read)
    {
        // Best effort: the memo is only a shortcut.
        let _ = crate::fsio::write_atomic(entry, &json, false);
    }
    Ok(read)
}

/// The memo entry of `path` at version `stamp`.
fn entry_path(dir: &Path, path: &Path, stamp: &Stamp) -> PathBuf {
    let mut h = KeyHasher::new();
    h.field("version", VERSION)
        .digest_field("facts", &facts_version())
        .field("path", path.as_os_str().as_encoded_bytes())
        .field("stamp", stamp.to_key().as_bytes());
    let hex = h.finish().to_hex();
    dir.join(&hex[..2]).join(hex)
}

fn load(entry: &Path) -> Option<FileRead> {
    use std::io::Read;
    // An entry is a few hundred bytes: read it without asking its size first (a
    // `File`'s own `read_to_end` does; through `take` it reads into the buffer as is).
    let mut bytes = Vec::with_capacity(1024);
    std::fs::File::open(entry)
        .ok()?
        .take(1 << 20)
        .read_to_end(&mut bytes)
        .ok()?;
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
    fn this_machines_temporary_directory_is_local() {
        // The memo's tests (and the cc integration test) need a local file system.
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, b"x").unwrap();
        let dev = Stamp::of(&f).unwrap().dev();
        assert!(
            local(&f, dev),
            "{} is not on a local file system",
            f.display()
        );
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

        // Any change, even one that keeps the size and puts the exact modification
        // time back (`touch -r`, `cp -p`), is another version: read again.
        let old = std::fs::metadata(&h).unwrap();
        let old_mtime = old.modified().unwrap();
        std::fs::write(&h, "#include <z.h>\nconst char *f = __LINE__;\n").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&h)
            .unwrap()
            .set_modified(old_mtime)
            .unwrap();
        assert_eq!(std::fs::metadata(&h).unwrap().len(), old.len(), "same size");
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
