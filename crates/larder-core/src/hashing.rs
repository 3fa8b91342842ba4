//! Hashing input files, each at most once per process, and not at all when `larder
//! cargo` has just written and checked it.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use larder_digest::Digest;

/// The file in a build's state directory ([`larder_store::BuildState`]) that lists the
/// outputs `larder cargo` planted before cargo started ([`crate::seed`]), with their
/// digests and [`Stamp`]s.
pub const PLANTED: &str = "planted-digests";

/// What identifies one version of a file on disk: device, inode, size, modification and
/// change times (nanoseconds). A file written in place keeps its inode but gets a new
/// change time, which no process can set; a file replaced gets a new inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Stamp {
    /// The stamp of the file at `path` now.
    pub fn of(path: &Path) -> Option<Stamp> {
        let m = std::fs::symlink_metadata(path).ok()?;
        m.is_file().then(|| Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
        })
    }
}

/// Writes the digests of `files` (each just written by this process, with the digest of
/// what was written) and their stamps to `path`, one line each. A file that cannot be
/// read back is left out.
///
/// # Errors
/// If `path` cannot be written.
pub fn write_planted(path: &Path, files: &[(PathBuf, Digest)]) -> std::io::Result<()> {
    let mut text = String::new();
    for (p, digest) in files {
        let (Some(s), Some(name)) = (Stamp::of(p), p.to_str()) else {
            continue;
        };
        if name.contains('\n') {
            continue;
        }
        text.push_str(&format!(
            "{} {} {} {} {} {} {name}\n",
            digest.to_hex(),
            s.dev,
            s.ino,
            s.size,
            s.mtime_ns,
            s.ctime_ns
        ));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(text.as_bytes())?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

fn read_planted(path: &Path) -> HashMap<PathBuf, (Digest, Stamp)> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return HashMap::new();
    };
    let mut out = HashMap::new();
    for line in text.lines() {
        let mut f = line.splitn(7, ' ');
        let parsed = (|| {
            let digest = Digest::from_hex(f.next()?)?;
            let stamp = Stamp {
                dev: f.next()?.parse().ok()?,
                ino: f.next()?.parse().ok()?,
                size: f.next()?.parse().ok()?,
                mtime_ns: f.next()?.parse().ok()?,
                ctime_ns: f.next()?.parse().ok()?,
            };
            Some((PathBuf::from(f.next()?), (digest, stamp)))
        })();
        if let Some((p, v)) = parsed {
            out.insert(p, v);
        }
    }
    out
}

/// Digests of files, memoized for the life of one wrapper process. A file `larder
/// cargo` planted for this build ([`PLANTED`]) is not read while it keeps its stamp.
#[derive(Debug, Default)]
pub struct FileHasher {
    memo: HashMap<PathBuf, Option<(Digest, u64)>>,
    planted: Option<HashMap<PathBuf, (Digest, Stamp)>>,
}

impl FileHasher {
    /// The digest of the file at `path`, or `None` if it cannot be read.
    pub fn digest(&mut self, path: &Path) -> Option<Digest> {
        self.digest_and_size(path).map(|(d, _)| d)
    }

    /// The digest and size of the file at `path`, or `None` if it cannot be read.
    pub fn digest_and_size(&mut self, path: &Path) -> Option<(Digest, u64)> {
        if let Some(v) = self.memo.get(path) {
            return *v;
        }
        let planted = self.planted.get_or_insert_with(|| {
            read_planted(&larder_store::BuildState::current().dir().join(PLANTED))
        });
        let known = planted
            .get(path)
            .filter(|(_, stamp)| Stamp::of(path) == Some(*stamp))
            .map(|(digest, stamp)| (*digest, stamp.size));
        let v = known.or_else(|| std::fs::File::open(path).and_then(Digest::of_reader).ok());
        self.memo.insert(path.to_path_buf(), v);
        v
    }

    /// Records the digest of a file this process just wrote.
    pub fn remember(&mut self, path: &Path, digest: Digest, size: u64) {
        self.memo.insert(path.to_path_buf(), Some((digest, size)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_planted_file_is_trusted_only_while_it_keeps_its_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "aaaa").unwrap();
        std::fs::write(&b, "bbbb").unwrap();
        let list = dir.path().join(PLANTED);
        // Recorded with digests that are not their contents, to see which is used.
        let (da, db) = (Digest::of(b"said a"), Digest::of(b"said b"));
        write_planted(&list, &[(a.clone(), da), (b.clone(), db)]).unwrap();
        let mut h = FileHasher {
            planted: Some(read_planted(&list)),
            ..FileHasher::default()
        };
        assert_eq!(h.digest_and_size(&a), Some((da, 4)), "unchanged: not read");
        // Written in place, same size: the change time moves on.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&b, "BBBB").unwrap();
        assert_eq!(h.digest(&b), Some(Digest::of(b"BBBB")));
        // Replaced by another file: another inode.
        let c = dir.path().join("c");
        std::fs::write(&c, "aaaa").unwrap();
        std::fs::rename(&c, &a).unwrap();
        let mut fresh = FileHasher {
            planted: Some(read_planted(&list)),
            ..FileHasher::default()
        };
        assert_eq!(fresh.digest(&a), Some(Digest::of(b"aaaa")));
    }
}
