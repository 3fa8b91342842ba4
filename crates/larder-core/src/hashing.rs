//! Hashing input files, each at most once per process, and not at all when larder
//! wrote or hashed it before and it has not changed since.
//!
//! Every output larder puts into a target directory (restored by a hit, planted by a
//! seed) or hashes there (a miss's outputs, when they are stored) goes, with its digest
//! and [`Stamp`], into that directory's list [`KNOWN`]. A later process that keys on
//! such a file (a link closure hashes every library; hk's binary reads 180 MiB of
//! them), and `larder cargo` recording the build's seed ([`crate::seed`]), take the
//! digest from the list instead of reading the file, while the file keeps its stamp.
//! Nothing else writes a unit's outputs while cargo runs that unit, so a file changed
//! later (rebuilt, written in place, replaced) has another change time or inode, and is
//! read again.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use larder_digest::Digest;

/// The file at the root of a target directory that lists the outputs larder wrote or
/// hashed there, one per line: digest, [`Stamp`] and path (later lines win).
pub const KNOWN: &str = ".larder-digests";

/// Above this size the list starts anew (the process whose line took it past removes
/// it): it is only a shortcut, and a build appends about 150 bytes per output.
pub const KNOWN_MAX_BYTES: u64 = 2 << 20;

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
        m.is_file().then(|| Stamp::from_metadata(&m))
    }

    fn from_metadata(m: &std::fs::Metadata) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
        }
    }

    /// Whether the file was last modified and last changed before `t`: then any later
    /// change gives it a change time at or after `t`, so another stamp (the kernel sets
    /// the change time; no process can set it back).
    pub fn settled_before(&self, t: std::time::SystemTime) -> bool {
        let t = t
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        self.mtime_ns < t && self.ctime_ns < t
    }

    /// The device the file is on.
    pub fn dev(&self) -> u64 {
        self.dev
    }

    /// The stamp as text (`dev ino size mtime ctime`), for a key.
    pub fn to_key(&self) -> String {
        format!(
            "{} {} {} {} {}",
            self.dev, self.ino, self.size, self.mtime_ns, self.ctime_ns
        )
    }
}

/// Whether the file `m` describes was modified, or its inode changed, at or after `t`
/// (the change time catches new content under an old modification time: `touch -r`,
/// `cp -p`, `rsync -a`).
pub fn changed_at_or_after(m: &std::fs::Metadata, t: std::time::SystemTime) -> bool {
    !Stamp::from_metadata(m).settled_before(t)
}

/// Appends the digests of `files` (each just written or hashed by this process, with
/// the digest of its content) and their stamps to the list [`KNOWN`] of the target
/// directory `target`, in one write (parallel processes append whole lines). A file
/// outside `target`, or one that cannot be stamped, is left out. Best effort.
pub fn remember_in(target: &Path, files: &[(PathBuf, Digest)]) {
    let stamped: Vec<(&Path, Digest, Stamp)> = files
        .iter()
        .filter_map(|(p, d)| Some((p.as_path(), *d, Stamp::of(p)?)))
        .collect();
    append_known(target, &stamped);
}

/// Lists the file `path`, whose metadata `meta` was taken from the file itself after
/// its content was found to be `digest`, in the list [`KNOWN`] of `target`: a store job
/// that linked an output into the store changed its change time
/// ([`larder_store::DiskStore::link_blob`]), and the wrapper's line no longer matches.
/// If `path` names another file by now, its stamp is not this one: the line is never
/// used. Best effort.
pub fn remember_stamped(target: &Path, path: &Path, digest: &Digest, meta: &std::fs::Metadata) {
    append_known(target, &[(path, *digest, Stamp::from_metadata(meta))]);
}

fn append_known(target: &Path, files: &[(&Path, Digest, Stamp)]) {
    let text = known_lines(target, files);
    if text.is_empty() {
        return;
    }
    let list = target.join(KNOWN);
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&list)
        .and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.metadata()
        });
    match appended {
        Ok(m) if m.len() > KNOWN_MAX_BYTES => {
            let _ = std::fs::remove_file(&list);
        }
        Ok(_) => {}
        Err(e) => tracing::debug!(%e, "digests not remembered"),
    }
}

fn known_lines(target: &Path, files: &[(&Path, Digest, Stamp)]) -> String {
    let mut text = String::new();
    for (p, digest, s) in files {
        if !p.starts_with(target) {
            continue;
        }
        let Some(name) = p.to_str() else {
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
    text
}

/// The latest line of the list `text` for `path`: its digest and stamp. Found from the
/// end without parsing the rest (a wrapper asks for a few files of a list of
/// thousands); a torn or foreign line is no entry.
fn known_entry(text: &str, path: &Path) -> Option<(Digest, Stamp)> {
    let name = path.to_str()?;
    let needle = format!(" {name}\n");
    let end = text.rfind(&needle)? + needle.len() - 1;
    let start = text[..end].rfind('\n').map_or(0, |i| i + 1);
    let (digest, stamp, listed) = known_line(&text[start..end])?;
    (listed == name).then_some((digest, stamp))
}

/// One line of a list [`KNOWN`] (without its newline): digest, stamp and path.
fn known_line(line: &str) -> Option<(Digest, Stamp, &str)> {
    let mut f = line.splitn(7, ' ');
    let digest = Digest::from_hex(f.next()?)?;
    let stamp = Stamp {
        dev: f.next()?.parse().ok()?,
        ino: f.next()?.parse().ok()?,
        size: f.next()?.parse().ok()?,
        mtime_ns: f.next()?.parse().ok()?,
        ctime_ns: f.next()?.parse().ok()?,
    };
    Some((digest, stamp, f.next()?))
}

/// The whole list [`KNOWN`] of a target directory, read once: for a process that asks
/// about many of its files (recording a seed after a build), where [`FileHasher`] asks
/// about a few.
#[derive(Debug, Default)]
pub struct KnownDigests(HashMap<PathBuf, (Digest, Stamp)>);

impl KnownDigests {
    /// The list of the target directory `target` (empty if it has none).
    pub fn read(target: &Path) -> KnownDigests {
        let text = std::fs::read_to_string(target.join(KNOWN)).unwrap_or_default();
        // Later lines win; a torn or foreign line is no entry.
        KnownDigests(
            text.lines()
                .filter_map(known_line)
                .map(|(digest, stamp, path)| (PathBuf::from(path), (digest, stamp)))
                .collect(),
        )
    }

    /// The listed digest of the file at `path` whose metadata is `meta`, while it keeps
    /// the stamp it was listed with.
    pub fn digest(&self, path: &Path, meta: &std::fs::Metadata) -> Option<Digest> {
        let (digest, stamp) = self.0.get(path)?;
        (meta.is_file() && Stamp::from_metadata(meta) == *stamp).then_some(*digest)
    }
}

/// Digests of files, memoized for the life of one wrapper process. A file in the
/// target directory ([`FileHasher::set_target`]) that its list [`KNOWN`] names is not
/// read while it keeps its stamp.
#[derive(Debug, Default)]
pub struct FileHasher {
    memo: HashMap<PathBuf, Option<(Digest, u64)>>,
    target: Option<PathBuf>,
    /// The target directory's list, read once.
    known: Option<String>,
}

impl FileHasher {
    /// The target directory of this invocation, whose list [`KNOWN`] is consulted.
    pub fn set_target(&mut self, target: Option<&Path>) {
        if self.target.as_deref() != target {
            self.target = target.map(Path::to_path_buf);
            self.known = None;
        }
    }

    /// The digest of the file at `path`, or `None` if it cannot be read.
    pub fn digest(&mut self, path: &Path) -> Option<Digest> {
        self.digest_and_size(path).map(|(d, _)| d)
    }

    /// The digest and size of the file at `path`, or `None` if it cannot be read.
    pub fn digest_and_size(&mut self, path: &Path) -> Option<(Digest, u64)> {
        if let Some(v) = self.memo.get(path) {
            return *v;
        }
        let known = match &self.target {
            Some(t) if path.starts_with(t) => {
                let text = self.known.get_or_insert_with(|| {
                    std::fs::read_to_string(t.join(KNOWN)).unwrap_or_default()
                });
                known_entry(text, path)
                    .filter(|(_, stamp)| Stamp::of(path) == Some(*stamp))
                    .map(|(digest, stamp)| (digest, stamp.size))
            }
            _ => None,
        };
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
    fn a_known_file_is_trusted_only_while_it_keeps_its_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::create_dir(&target).unwrap();
        let (a, b) = (target.join("a"), target.join("b"));
        std::fs::write(&a, "aaaa").unwrap();
        std::fs::write(&b, "bbbb").unwrap();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, "oooo").unwrap();
        // Recorded with digests that are not their contents, to see which is used.
        let (da, db) = (Digest::of(b"said a"), Digest::of(b"said b"));
        remember_in(&target, &[(a.clone(), da)]);
        remember_in(&target, &[(b.clone(), db), (outside.clone(), da)]);
        let mut h = FileHasher::default();
        h.set_target(Some(&target));
        assert_eq!(h.digest_and_size(&a), Some((da, 4)), "unchanged: not read");
        assert_eq!(
            h.digest(&outside),
            Some(Digest::of(b"oooo")),
            "outside the target: never listed"
        );
        // Without the target directory, the list is not consulted.
        assert_eq!(FileHasher::default().digest(&a), Some(Digest::of(b"aaaa")));
        // Written in place, same size: the change time moves on.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&b, "BBBB").unwrap();
        assert_eq!(h.digest(&b), Some(Digest::of(b"BBBB")));
        // Replaced by another file: another inode.
        let c = target.join("c");
        std::fs::write(&c, "aaaa").unwrap();
        std::fs::rename(&c, &a).unwrap();
        let mut fresh = FileHasher::default();
        fresh.set_target(Some(&target));
        assert_eq!(fresh.digest(&a), Some(Digest::of(b"aaaa")));
        // A later line wins; a torn last line is ignored.
        remember_in(&target, &[(a.clone(), db)]);
        std::fs::OpenOptions::new()
            .append(true)
            .open(target.join(KNOWN))
            .unwrap()
            .write_all(b"0123 torn")
            .unwrap();
        let mut later = FileHasher::default();
        later.set_target(Some(&target));
        assert_eq!(later.digest(&a), Some(db));
    }

    #[test]
    fn an_entry_is_the_latest_whole_line_for_exactly_that_path() {
        let d1 = Digest::of(b"1");
        let d2 = Digest::of(b"2");
        let line = |d: &Digest, path: &str| format!("{} 1 2 3 4 5 {path}\n", d.to_hex());
        let text = [line(&d1, "/t/a"), line(&d1, "/t/x /t/b"), line(&d2, "/t/a")].concat();
        let (d, stamp) = known_entry(&text, Path::new("/t/a")).unwrap();
        assert_eq!((d, stamp.size), (d2, 3), "the later line wins");
        // "/t/b" only ends another path's line: no entry.
        assert_eq!(known_entry(&text, Path::new("/t/b")), None);
        assert_eq!(known_entry(&text, Path::new("/t/c")), None);
        assert_eq!(known_entry("garbage /t/a\n", Path::new("/t/a")), None);
    }

    #[test]
    fn a_long_list_starts_anew() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join(KNOWN);
        let file = dir.path().join("f");
        std::fs::write(&file, "f").unwrap();
        remember_in(dir.path(), &[(file.clone(), Digest::of(b"f"))]);
        assert!(list.exists());
        std::fs::write(&list, vec![b'x'; KNOWN_MAX_BYTES as usize]).unwrap();
        remember_in(dir.path(), &[(file, Digest::of(b"f"))]);
        assert!(!list.exists());
    }
}
