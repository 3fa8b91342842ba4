//! The check of an uncompressed blob: what a restore verifies a local blob's bytes with.
//!
//! Every blob restored from the local store is read in full and checked before any of
//! it is used: a corrupt blob is never restored. Its name is the SHA-256 of its content,
//! and SHA-256 runs at about 2 GB/s on a core even with the CPU's SHA instructions: a
//! warm build that restores or plants 1.2 GiB (hk, debug) spent a third of its CPU
//! hashing. So when the store writes an uncompressed blob (`<digest>.raw`), it also
//! records the blob's *check* in an extended attribute of the file, [`XATTR`]: the
//! BLAKE3 hash of the bytes (about four times faster here, 8.5 GB/s), keyed by the
//! blob's SHA-256 digest ([`bind`]). The check is only ever taken of bytes that were
//! hashed to that digest in the same pass ([`BlobHasher`]): by the store's writer
//! ([`crate::Store::put`]), or by the process whose output the blob is ([`Hashed`]).
//!
//! A reader ([`Verifier`]) checks a blob's bytes against its check if the file has one,
//! else against its digest (a blob written by an older larder, whose attribute
//! `user.larder.check` was taken otherwise; a filesystem without extended attributes; a
//! store copied without them).
//!
//! What it keeps: a blob whose bytes changed after they were hashed (a write into the
//! store or into the output it was linked from, a truncation, damage on disk) matches
//! neither its check nor its digest, and is not restored. The check is keyed by the
//! digest, so a file and its attribute moved or copied under another blob's name do not
//! verify there. A process that can write the store can forge a check, as it can forge
//! action records (or the compiler shims under `bin/`): the local store's integrity
//! against its own writers is not what either protects.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;

use larder_digest::{ContentHasher, Digest};
use serde::{Deserialize, Serialize};

/// The extended attribute of an uncompressed blob's file that holds its check: 32 bytes.
pub const XATTR: &str = "user.larder.b3";

/// The check of `bytes`, stored under `digest`.
pub fn of(digest: &Digest, bytes: &[u8]) -> [u8; 32] {
    bind(digest, blake3::hash(bytes).as_bytes())
}

/// The check of content whose BLAKE3 hash is `content`, stored under `digest`: that
/// hash, keyed by the digest.
pub fn bind(digest: &Digest, content: &[u8; 32]) -> [u8; 32] {
    *blake3::keyed_hash(digest.as_bytes(), content).as_bytes()
}

/// Hashes bytes as they go by into their SHA-256 digest and their check, in one pass.
#[derive(Default)]
pub struct BlobHasher {
    sha: ContentHasher,
    b3: blake3::Hasher,
}

impl BlobHasher {
    /// Adds the next bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.sha.update(bytes);
        self.b3.update(bytes);
    }

    /// The digest of all bytes added, and their check as the blob of that digest.
    pub fn finish(self) -> (Digest, [u8; 32]) {
        let digest = self.sha.finish();
        (digest, bind(&digest, self.b3.finalize().as_bytes()))
    }
}

/// An output file hashed by the process that has it stored (a wrapper, after a
/// compile): its check, and which version of the file was read (device, inode, size,
/// modification time, unchanged over the read; and its change time).
///
/// The store takes such a file ([`crate::Store::link_blob`], [`crate::Store::copy_blob`])
/// without reading it again while it is still that version, recording this check. That
/// keeps every guarantee of a check taken by the store itself: the check is of bytes
/// that hashed to the digest, so a file that is not those bytes (written into since, by
/// a writer that left its size and time as they were) matches neither, and is never
/// restored. What is not checked again is that the file *is* the digest's: a caller
/// that would vouch for that (list the file's digest for later keys) must also see the
/// change time unchanged ([`Hashed::untouched`]), which no process can set back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hashed {
    /// The check of the bytes read.
    pub check: [u8; 32],
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Hashed {
    /// Reads `file` from its start: its digest, its size, and what the store needs to
    /// take it unread (`None` if the file changed while it was read).
    ///
    /// # Errors
    /// A read error.
    pub fn file(mut file: &File) -> io::Result<(Digest, u64, Option<Hashed>)> {
        let before = file.metadata()?;
        let mut hasher = BlobHasher::default();
        let size = larder_digest::for_each_chunk(&mut file, |chunk| hasher.update(chunk))?;
        let (digest, check) = hasher.finish();
        let hashed = Hashed {
            check,
            dev: before.dev(),
            ino: before.ino(),
            size,
            mtime: (before.mtime(), before.mtime_nsec()),
            ctime: (before.ctime(), before.ctime_nsec()),
        };
        let same = file
            .metadata()
            .is_ok_and(|after| hashed.is(&after) && hashed.is(&before));
        Ok((digest, size, same.then_some(hashed)))
    }

    /// Whether `meta` is the version of the file that was hashed.
    pub fn is(&self, meta: &std::fs::Metadata) -> bool {
        (
            meta.dev(),
            meta.ino(),
            meta.size(),
            (meta.mtime(), meta.mtime_nsec()),
        ) == (self.dev, self.ino, self.size, self.mtime)
    }

    /// Whether `meta` is the version of the file that was hashed with nothing at all
    /// changed since (not even a new link to it): its bytes are then the ones hashed.
    pub fn untouched(&self, meta: &std::fs::Metadata) -> bool {
        self.is(meta) && (meta.ctime(), meta.ctime_nsec()) == self.ctime
    }

    /// The size of the bytes hashed.
    pub fn size(&self) -> u64 {
        self.size
    }
}

/// Records `check` on `file` (a blob being written). Best effort: a filesystem without
/// user extended attributes keeps the blob without one, verified by its digest.
pub fn record(file: &File, check: &[u8; 32]) {
    if let Err(e) = rustix::fs::fsetxattr(file, XATTR, check, rustix::fs::XattrFlags::empty()) {
        tracing::trace!(error = %e, "blob check not recorded");
    }
}

/// The check recorded on `file`, if it has one.
pub fn recorded(file: &File) -> Option<[u8; 32]> {
    let mut value = [0u8; 32];
    match rustix::fs::fgetxattr(file, XATTR, &mut value[..]) {
        Ok(32) => Some(value),
        _ => None,
    }
}

/// Verifies a blob's bytes as they go by: against its check if its file has one, else
/// against its SHA-256 digest.
pub struct Verifier {
    digest: Digest,
    hasher: Hasher,
}

enum Hasher {
    Check(Box<blake3::Hasher>, [u8; 32]),
    Digest(ContentHasher),
}

impl Verifier {
    /// A verifier of the blob stored under `digest` whose file is `file`.
    pub fn for_file(file: &File, digest: &Digest) -> Verifier {
        let hasher = match recorded(file) {
            Some(check) => Hasher::Check(Box::default(), check),
            None => Hasher::Digest(ContentHasher::default()),
        };
        Verifier {
            digest: *digest,
            hasher,
        }
    }

    /// Adds the next bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match &mut self.hasher {
            Hasher::Check(h, _) => {
                h.update(bytes);
            }
            Hasher::Digest(h) => h.update(bytes),
        }
    }

    /// Whether the bytes added are the blob's; else what they are (for an error).
    ///
    /// # Errors
    /// What the bytes hash to, when they are not the blob's.
    pub fn finish(self) -> Result<(), String> {
        match self.hasher {
            Hasher::Check(h, check) => {
                if bind(&self.digest, h.finalize().as_bytes()) == check {
                    Ok(())
                } else {
                    Err(format!(
                        "does not match its check ({XATTR}) for {}",
                        self.digest
                    ))
                }
            }
            Hasher::Digest(h) => {
                let actual = h.finish();
                if actual == self.digest {
                    Ok(())
                } else {
                    Err(format!("hashes to {actual}, not {}", self.digest))
                }
            }
        }
    }

    /// Reads `reader` to its end (a blob's file, or a copy of it being written: a
    /// tee), checking what it reads. Returns the bytes read.
    ///
    /// # Errors
    /// [`io::ErrorKind::InvalidData`] if the bytes are not the blob's; a read error.
    pub fn read_all(mut self, reader: impl Read) -> io::Result<u64> {
        let total = larder_digest::for_each_chunk(reader, |chunk| self.update(chunk))?;
        self.finish()
            .map_err(|why| io::Error::new(io::ErrorKind::InvalidData, why))?;
        Ok(total)
    }
}

/// Verifies the blob stored under `digest` in the file `path`. Returns its size.
///
/// # Errors
/// [`io::ErrorKind::InvalidData`] if its bytes are not the blob's; an error opening or
/// reading it.
pub fn verify_file(path: &std::path::Path, digest: &Digest) -> io::Result<u64> {
    let file = File::open(path)?;
    Verifier::for_file(&file, digest).read_all(file)
}

/// Reads `reader` to its end, returning the SHA-256 digest of what it read, its check as
/// the blob of that digest ([`of`]) and its size: one pass for a writer that must both
/// verify a file and record its check.
///
/// # Errors
/// A read error.
pub fn digest_and_check(reader: impl Read) -> io::Result<(Digest, [u8; 32], u64)> {
    let mut hasher = BlobHasher::default();
    let total = larder_digest::for_each_chunk(reader, |chunk| hasher.update(chunk))?;
    let (digest, check) = hasher.finish();
    Ok((digest, check, total))
}

/// Copies the blob under `digest` from `from` to `to`, verifying it on its way. Returns
/// its size.
///
/// # Errors
/// [`io::ErrorKind::InvalidData`] if its bytes are not the blob's (`to` then holds
/// them: the caller discards it); a read or write error.
pub fn copy_verified(from: File, to: &mut File, digest: &Digest) -> io::Result<u64> {
    let verifier = Verifier::for_file(&from, digest);
    verifier.read_all(Tee { from, to })
}

/// A reader that writes what it reads.
struct Tee<'a> {
    from: File,
    to: &'a mut File,
}

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.from.read(buf)?;
        self.to.write_all(&buf[..n])?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(dir: &std::path::Path, bytes: &[u8], with_check: bool) -> (std::path::PathBuf, Digest) {
        let digest = Digest::of(bytes);
        let path = dir.join(format!("{digest}.raw"));
        std::fs::write(&path, bytes).unwrap();
        if with_check {
            record(&File::open(&path).unwrap(), &of(&digest, bytes));
        }
        (path, digest)
    }

    fn supports_xattrs(dir: &std::path::Path) -> bool {
        let (path, _) = blob(dir, b"probe", true);
        recorded(&File::open(path).unwrap()).is_some()
    }

    #[test]
    fn a_blob_verifies_by_its_check_and_a_changed_byte_does_not() {
        let dir = tempfile::tempdir().unwrap();
        if !supports_xattrs(dir.path()) {
            eprintln!(
                "skipped: {} has no user extended attributes",
                dir.path().display()
            );
            return;
        }
        let bytes = vec![7u8; 300_000];
        let (path, digest) = blob(dir.path(), &bytes, true);
        assert_eq!(verify_file(&path, &digest).unwrap(), 300_000);
        // A changed byte, written in place: the check (and the digest) no longer match.
        let mut changed = bytes.clone();
        changed[123_456] = 8;
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .write_all(&changed)
            .unwrap();
        assert!(
            recorded(&File::open(&path).unwrap()).is_some(),
            "the check stays"
        );
        let e = verify_file(&path, &digest).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("does not match its check"), "{e}");
        // Truncated.
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(10)
            .unwrap();
        assert_eq!(
            verify_file(&path, &digest).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }

    #[test]
    fn a_check_moved_to_another_blob_does_not_verify_it() {
        let dir = tempfile::tempdir().unwrap();
        if !supports_xattrs(dir.path()) {
            return;
        }
        let (a_path, _) = blob(dir.path(), b"blob a", true);
        let b = b"blob b";
        let b_digest = Digest::of(b);
        // Blob a's bytes and check, under b's name (a copy with its attributes).
        let moved = dir.path().join(format!("{b_digest}.raw"));
        std::fs::copy(&a_path, &moved).unwrap();
        let a_check = recorded(&File::open(&a_path).unwrap()).unwrap();
        record(&File::open(&moved).unwrap(), &a_check);
        assert_eq!(
            verify_file(&moved, &b_digest).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        // A forged check for b over a's bytes is not b's bytes' check either: it is
        // keyed by b's digest, and a's bytes hash elsewhere.
        assert_ne!(of(&b_digest, b"blob a"), of(&b_digest, b));
    }

    #[test]
    fn a_blob_without_a_check_verifies_by_its_digest() {
        let dir = tempfile::tempdir().unwrap();
        let (path, digest) = blob(dir.path(), b"no attribute", false);
        assert!(recorded(&File::open(&path).unwrap()).is_none());
        assert_eq!(verify_file(&path, &digest).unwrap(), 12);
        std::fs::write(&path, b"no attributE").unwrap();
        let e = verify_file(&path, &digest).unwrap_err();
        assert!(e.to_string().contains("hashes to"), "{e}");
    }

    #[test]
    fn a_wrong_check_refuses_a_blob_whose_digest_would_match() {
        let dir = tempfile::tempdir().unwrap();
        if !supports_xattrs(dir.path()) {
            return;
        }
        // The check decides when there is one: a damaged attribute costs the blob (a
        // miss), never a wrong restore.
        let (path, digest) = blob(dir.path(), b"right bytes", false);
        record(&File::open(&path).unwrap(), &[0u8; 32]);
        assert_eq!(
            verify_file(&path, &digest).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }

    #[test]
    fn a_copy_is_verified_on_its_way() {
        let dir = tempfile::tempdir().unwrap();
        let (path, digest) = blob(dir.path(), &vec![3u8; 600_000], true);
        let mut to = tempfile::tempfile().unwrap();
        let n = copy_verified(File::open(&path).unwrap(), &mut to, &digest).unwrap();
        assert_eq!(n, 600_000);
        let mut back = Vec::new();
        use std::io::Seek;
        to.seek(io::SeekFrom::Start(0)).unwrap();
        to.read_to_end(&mut back).unwrap();
        assert_eq!(back, vec![3u8; 600_000]);
    }
}
