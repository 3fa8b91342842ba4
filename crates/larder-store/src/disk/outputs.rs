//! Storing a build's own files as blobs of the local store without holding them in
//! memory: a library rustc wrote by a hard link ([`DiskStore::link_blob`]), any other
//! file by a kernel copy checked as stored ([`DiskStore::copy_blob`]).

use std::fs::File;
use std::path::Path;

use larder_digest::Digest;

use super::DiskStore;
use crate::check::Hashed;
use crate::{Namespace, StoreError};

/// A file stored by a hard link ([`DiskStore::link_blob`]).
#[derive(Debug)]
pub struct Linked {
    /// The file's metadata once linked, its check recorded and renamed into place, which
    /// changed its change time: it then is the blob, unless something wrote into it
    /// meanwhile (its size or modification time moved: `None`).
    pub settled: Option<std::fs::Metadata>,
}

impl DiskStore {
    /// Stores the file `path` as the uncompressed blob `digest` by a hard link instead of
    /// a copy: no byte is written. Only for a file that its writer replaces and never
    /// writes into (rustc's rlib and rmeta outputs: a later compile renames a new file
    /// over it), since the store's blob and the file are then one. Its [`crate::check`],
    /// recorded with it, also catches any later write into it: such a blob is never
    /// restored. The check is `hashed`'s while the linked file is still the version it
    /// describes (nothing is read); otherwise the file is read once to check that it is
    /// the blob (a file replaced since it was hashed, or changed while it is read, is
    /// refused) and to take its check. Returns `None`, having stored nothing, where a
    /// link cannot be made (blobs stored compressed, another filesystem, a file that
    /// cannot be read): the caller copies instead.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] if the file's bytes are not the blob `digest`;
    /// [`StoreError::Io`] if the linked blob cannot be put in place.
    pub fn link_blob(
        &self,
        digest: &Digest,
        path: &Path,
        hashed: Option<&Hashed>,
    ) -> Result<Option<Linked>, StoreError> {
        use std::os::unix::fs::MetadataExt;
        if self.level != 0 {
            return Ok(None);
        }
        // Nothing has happened to the file since it was hashed (looked at before the link
        // below changes its change time): its bytes are the digest's, which the caller
        // may list for later keys ([`Linked::settled`]).
        let untouched =
            hashed.is_some_and(|h| std::fs::symlink_metadata(path).is_ok_and(|m| h.untouched(&m)));
        let Ok(tmp) = tempfile::Builder::new()
            .prefix("link-")
            .make_in(self.layout.tmp(), |link| std::fs::hard_link(path, link))
        else {
            return Ok(None);
        };
        let Ok(file) = File::open(tmp.path()) else {
            return Ok(None);
        };
        let Ok(before) = file.metadata() else {
            return Ok(None);
        };
        let (check, len, read) = match hashed.filter(|h| h.is(&before)) {
            // The version hashed, with the check of the bytes that hashed to the digest.
            Some(h) => (h.check, h.size(), false),
            None => {
                let Ok((actual, check, len)) = crate::check::digest_and_check(&file) else {
                    return Ok(None);
                };
                // What is stored is what was hashed: the bytes read hash to the digest,
                // and the check recorded is of those bytes. Neither time is compared:
                // cargo links a workspace member's outputs into `target/<profile>/` (a
                // new link changes the change time), and cargo 1.90 and later set a
                // check build's `.rmeta` to the compile's start time once rustc has
                // exited, while this job may be reading it (the bytes are the same). A
                // write that went unseen here changes the content its check was taken
                // of, so that blob is never restored.
                if actual != *digest || !file.metadata().is_ok_and(|m| m.size() == before.size()) {
                    return Err(StoreError::corrupt(
                        Namespace::Cas,
                        digest,
                        format!("{} changed since it was hashed", path.display()),
                    ));
                }
                (check, len, true)
            }
        };
        let same = |m: &std::fs::Metadata| {
            (m.size(), m.mtime(), m.mtime_nsec())
                == (before.size(), before.mtime(), before.mtime_nsec())
        };
        crate::check::record(&file, &check);
        if !self.place_new(tmp, &self.raw_path(digest), digest, len)? {
            // The store has this blob already (checked when it is used).
            return Ok(Some(Linked { settled: None }));
        }
        // Recording the check and the rename changed the file's change time. The file's
        // bytes are the digest's if they were read here, or nothing touched the file
        // since the caller hashed them.
        let settled = file
            .metadata()
            .ok()
            .filter(same)
            .filter(|_| read || untouched);
        Ok(Some(Linked { settled }))
    }

    /// Stores the content of `file` (read from its start) as the uncompressed blob
    /// `digest`: copied by the kernel into a temporary file (`copy_file_range`), with
    /// `hashed`'s check if `file` was the version it describes before and after the copy
    /// (nothing is read here), else read once to check that it is the blob and to
    /// record its [`crate::check`]: what is stored is what was checked, whatever happens
    /// to `file` meanwhile. No copy of the content is held in memory. Returns `false`,
    /// having stored nothing, for a store that compresses its blobs: the caller reads the
    /// file and puts it.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] if the content is not the blob `digest`;
    /// [`StoreError::Io`] if it cannot be read or the store written.
    pub fn copy_blob(
        &self,
        digest: &Digest,
        file: &mut File,
        hashed: Option<&Hashed>,
    ) -> Result<bool, StoreError> {
        if self.level != 0 {
            return Ok(false);
        }
        let unchanged = |file: &File| hashed.filter(|h| file.metadata().is_ok_and(|m| h.is(&m)));
        let pinned = unchanged(file);
        let mut tmp = tempfile::NamedTempFile::new_in(self.layout.tmp())?;
        let copied = std::io::copy(file, tmp.as_file_mut())?;
        let check = match pinned.and(unchanged(file)).filter(|h| h.size() == copied) {
            Some(h) => h.check,
            None => {
                let (actual, check, _) = crate::check::digest_and_check(File::open(tmp.path())?)?;
                if actual != *digest {
                    return Err(StoreError::corrupt(
                        Namespace::Cas,
                        digest,
                        format!("the file given hashes to {actual}"),
                    ));
                }
                check
            }
        };
        crate::check::record(tmp.as_file(), &check);
        self.place_new(tmp, &self.raw_path(digest), digest, copied)?;
        Ok(true)
    }

    /// Puts `tmp` at `dest`, the file of the blob `digest`, unless a sound one is there
    /// already (`false`, `tmp` removed): a blob taken unread from an output
    /// ([`crate::check::Hashed`]) replaces only one that does not verify (a corrupt blob
    /// a restore found in another unit's entry stays until the next store of it).
    fn place_new<F>(
        &self,
        tmp: tempfile::NamedTempFile<F>,
        dest: &Path,
        digest: &Digest,
        len: u64,
    ) -> Result<bool, StoreError> {
        let parent = dest.parent().expect("entry paths have a shard directory");
        fs_err::create_dir_all(parent)?;
        let tmp = match tmp.persist_noclobber(dest) {
            Ok(_) => {
                self.account(len as i64)?;
                return Ok(true);
            }
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => e.file,
            Err(e) => return Err(super::fs_err_like(e.error, dest).into()),
        };
        if crate::check::verify_file(dest, digest).is_ok() {
            return Ok(false);
        }
        self.place(tmp, dest, len)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;
    use std::path::PathBuf;
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::{Store, get_verified_blob};

    fn raw_store(dir: &Path) -> DiskStore {
        DiskStore::open(&dir.join("store"), 1 << 30)
            .unwrap()
            .with_compression_level(0)
    }

    /// An output of a build beside the store (one filesystem), as rustc leaves it.
    fn output(dir: &Path, name: &str, bytes: &[u8]) -> (PathBuf, Digest) {
        let path = dir.join("target").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        (path, Digest::of(bytes))
    }

    fn tmp_files(s: &DiskStore) -> usize {
        std::fs::read_dir(s.layout().tmp()).unwrap().count()
    }

    #[test]
    fn a_library_is_stored_by_link_with_its_check() {
        let dir = tempfile::tempdir().unwrap();
        let s = raw_store(dir.path());
        let (path, d) = output(dir.path(), "libx.rlib", b"an rlib's bytes");
        let linked = s.link_blob(&d, &path, None).unwrap().expect("linked");
        let raw = s.raw_blob_path(&d).expect("stored raw");
        let (out, blob) = (
            std::fs::metadata(&path).unwrap(),
            std::fs::metadata(&raw).unwrap(),
        );
        assert_eq!((out.dev(), out.ino()), (blob.dev(), blob.ino()), "one file");
        assert_eq!(out.nlink(), 2);
        // What it reports is the file as it now is (the link changed its change time).
        let settled = linked.settled.expect("nothing wrote into it");
        assert_eq!(
            (settled.ino(), settled.ctime(), settled.ctime_nsec()),
            (out.ino(), out.ctime(), out.ctime_nsec())
        );
        crate::check::verify_file(&raw, &d).unwrap();
        if crate::check::recorded(&File::open(&raw).unwrap()).is_none() {
            eprintln!("no user extended attributes here: verified by digest");
        }
        assert_eq!(
            get_verified_blob(&s, &d, 15).unwrap().unwrap(),
            b"an rlib's bytes"
        );
        assert_eq!(s.usage().unwrap().total_bytes(), 15);
        assert_eq!(tmp_files(&s), 0);
    }

    #[test]
    fn a_file_that_is_not_the_blob_is_not_linked() {
        let dir = tempfile::tempdir().unwrap();
        let s = raw_store(dir.path());
        let (path, _) = output(dir.path(), "libx.rlib", b"replaced since it was hashed");
        let hashed = Digest::of(b"what was hashed");
        let e = s.link_blob(&hashed, &path, None).unwrap_err();
        assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");
        assert!(s.raw_blob_path(&hashed).is_none());
        assert_eq!(tmp_files(&s), 0, "the temporary link is gone");
        assert_eq!(std::fs::metadata(&path).unwrap().nlink(), 1);
    }

    #[test]
    fn a_compressing_store_copies_instead() {
        let dir = tempfile::tempdir().unwrap();
        let s = DiskStore::open(&dir.path().join("store"), 1 << 30).unwrap();
        let (path, d) = output(dir.path(), "libx.rlib", b"bytes");
        assert!(s.link_blob(&d, &path, None).unwrap().is_none());
        assert!(
            !s.copy_blob(&d, &mut File::open(&path).unwrap(), None)
                .unwrap()
        );
        assert!(!s.contains(Namespace::Cas, &d).unwrap());
    }

    /// A restore marks a linked blob used by its access time: its modification time is
    /// the build's output's too, which cargo compares.
    #[test]
    fn using_a_linked_blob_keeps_its_modification_time() {
        let dir = tempfile::tempdir().unwrap();
        let s = raw_store(dir.path());
        let (path, d) = output(dir.path(), "libx.rlib", b"linked");
        let long_ago = SystemTime::now() - Duration::from_secs(7 * 24 * 3600);
        let times = std::fs::FileTimes::new()
            .set_accessed(long_ago)
            .set_modified(long_ago);
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_times(times)
            .unwrap();
        s.link_blob(&d, &path, None).unwrap().expect("linked");
        // An ordinary blob, as old.
        let other = b"copied".to_vec();
        let od = Digest::of(&other);
        s.put(Namespace::Cas, &od, &other).unwrap();
        let other_raw = s.raw_blob_path(&od).unwrap();
        File::open(&other_raw).unwrap().set_times(times).unwrap();

        s.get(Namespace::Cas, &d).unwrap().unwrap();
        s.get(Namespace::Cas, &od).unwrap().unwrap();
        let out = std::fs::metadata(&path).unwrap();
        assert_eq!(
            out.modified().unwrap(),
            long_ago,
            "the output's time is kept"
        );
        assert!(out.accessed().unwrap() > long_ago);
        let recent = SystemTime::now() - Duration::from_secs(60);
        assert!(std::fs::metadata(&other_raw).unwrap().modified().unwrap() > recent);
        // Both count as just used: an age trim keeps both.
        for e in s.list(Namespace::Cas).unwrap() {
            assert!(e.modified > recent, "{:?} looks unused", e.key);
        }
        let (files, _) = s.collect_garbage(None, Some(recent), false).unwrap();
        assert_eq!(files, 0);
    }

    #[test]
    fn a_copied_blob_is_checked_as_stored() {
        let dir = tempfile::tempdir().unwrap();
        let s = raw_store(dir.path());
        let (path, d) = output(dir.path(), "app", &vec![7u8; 300_000]);
        assert!(
            s.copy_blob(&d, &mut File::open(&path).unwrap(), None)
                .unwrap()
        );
        let raw = s.raw_blob_path(&d).unwrap();
        assert_ne!(
            std::fs::metadata(&raw).unwrap().ino(),
            std::fs::metadata(&path).unwrap().ino(),
            "a copy"
        );
        crate::check::verify_file(&raw, &d).unwrap();
        // Bytes that are not the blob's are refused and leave nothing.
        let mut f = File::options().append(true).open(&path).unwrap();
        f.write_all(b"more").unwrap();
        let wrong = Digest::of(b"something else");
        let e = s
            .copy_blob(&wrong, &mut File::open(&path).unwrap(), None)
            .unwrap_err();
        assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");
        assert!(s.raw_blob_path(&wrong).is_none());
        assert_eq!(tmp_files(&s), 0);
    }

    /// The version of a file as `Hashed::file` read it, with its check replaced by
    /// `check`: what the store records shows whether it read the file again.
    fn hashed_as(path: &Path, check: Option<[u8; 32]>) -> (Digest, Hashed) {
        let (d, _, hashed) = Hashed::file(&File::open(path).unwrap()).unwrap();
        let mut hashed = hashed.expect("unchanged while read");
        if let Some(c) = check {
            hashed.check = c;
        }
        (d, hashed)
    }

    fn recorded_check(s: &DiskStore, d: &Digest) -> Option<[u8; 32]> {
        crate::check::recorded(&File::open(s.raw_path(d)).unwrap())
    }

    #[test]
    fn a_hashed_file_is_taken_unread_with_its_check() {
        let dir = tempfile::tempdir().unwrap();
        let s = raw_store(dir.path());
        let (lib, _) = output(dir.path(), "libx.rlib", b"an rlib's bytes");
        let (bin, _) = output(dir.path(), "app", &vec![5u8; 200_000]);
        let (ld, lh) = hashed_as(&lib, None);
        let (bd, bh) = hashed_as(&bin, None);
        let linked = s.link_blob(&ld, &lib, Some(&lh)).unwrap().expect("linked");
        assert!(
            linked.settled.is_some(),
            "untouched since hashed: vouched for"
        );
        assert!(
            s.copy_blob(&bd, &mut File::open(&bin).unwrap(), Some(&bh))
                .unwrap()
        );
        for (d, h, bytes) in [
            (ld, &lh, b"an rlib's bytes".to_vec()),
            (bd, &bh, vec![5u8; 200_000]),
        ] {
            crate::check::verify_file(&s.raw_path(&d), &d).unwrap();
            assert_eq!(
                get_verified_blob(&s, &d, bytes.len() as u64)
                    .unwrap()
                    .unwrap(),
                bytes
            );
            if let Some(c) = recorded_check(&s, &d) {
                assert_eq!(c, h.check);
                assert_eq!(c, crate::check::of(&d, &bytes), "the check of the bytes");
            }
        }
        if recorded_check(&s, &ld).is_none() {
            eprintln!("no user extended attributes here: nothing more to see");
            return;
        }
        // Unread: a check that is not the bytes' is what gets recorded, and the blob then
        // never verifies (a restore refuses it), for a link and for a copy.
        let s2 = DiskStore::open(&dir.path().join("store2"), 1 << 30)
            .unwrap()
            .with_compression_level(0);
        let (ld, lh) = hashed_as(&lib, Some([9u8; 32]));
        let (bd, bh) = hashed_as(&bin, Some([9u8; 32]));
        s2.link_blob(&ld, &lib, Some(&lh)).unwrap().expect("linked");
        assert!(
            s2.copy_blob(&bd, &mut File::open(&bin).unwrap(), Some(&bh))
                .unwrap()
        );
        for d in [ld, bd] {
            assert_eq!(recorded_check(&s2, &d), Some([9u8; 32]), "not read again");
            assert!(crate::check::verify_file(&s2.raw_path(&d), &d).is_err());
        }
    }

    /// A writer that writes into an output after it was hashed and sets its time back
    /// (so that the store takes it as the version hashed): the store keeps the bytes
    /// with the check of the bytes hashed, and no restore ever uses them.
    #[test]
    fn a_file_written_into_unseen_after_it_was_hashed_is_never_restored() {
        let dir = tempfile::tempdir().unwrap();
        let s = raw_store(dir.path());
        let (path, d) = output(dir.path(), "app", &vec![1u8; 100_000]);
        let (_, hashed) = hashed_as(&path, None);
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        let mut f = File::options().write(true).open(&path).unwrap();
        f.write_all(&[2u8; 100]).unwrap();
        f.set_modified(mtime).unwrap();
        drop(f);
        assert!(
            hashed.is(&std::fs::metadata(&path).unwrap()),
            "looks unchanged"
        );
        if !s
            .copy_blob(&d, &mut File::open(&path).unwrap(), Some(&hashed))
            .unwrap()
            || recorded_check(&s, &d).is_none()
        {
            return;
        }
        assert!(crate::check::verify_file(&s.raw_path(&d), &d).is_err());
        assert!(!matches!(get_verified_blob(&s, &d, 100_000), Ok(Some(_))));
    }

    #[test]
    fn a_file_changed_since_it_was_hashed_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let s = raw_store(dir.path());
        // cargo sets a check build's rmeta time after rustc exits: the same bytes, read
        // again and stored with their own check.
        let (rmeta, _) = output(dir.path(), "libx.rmeta", b"metadata");
        let (d, hashed) = hashed_as(&rmeta, Some([9u8; 32]));
        File::options()
            .write(true)
            .open(&rmeta)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(60))
            .unwrap();
        s.link_blob(&d, &rmeta, Some(&hashed))
            .unwrap()
            .expect("linked");
        crate::check::verify_file(&s.raw_path(&d), &d).unwrap();
        // Replaced by other bytes since: refused, as without a hash.
        let (lib, _) = output(dir.path(), "libx.rlib", b"first");
        let (d, hashed) = hashed_as(&lib, None);
        std::fs::write(dir.path().join("new"), b"other").unwrap();
        std::fs::rename(dir.path().join("new"), &lib).unwrap();
        let e = s.link_blob(&d, &lib, Some(&hashed)).unwrap_err();
        assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");
        let e = s
            .copy_blob(&d, &mut File::open(&lib).unwrap(), Some(&hashed))
            .unwrap_err();
        assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");
        assert!(s.raw_blob_path(&d).is_none());
        assert_eq!(tmp_files(&s), 0);
    }

    #[test]
    fn a_file_linked_since_it_was_hashed_is_stored_but_not_vouched_for() {
        let dir = tempfile::tempdir().unwrap();
        let s = raw_store(dir.path());
        let (lib, _) = output(dir.path(), "libx.rlib", b"an rlib");
        let (d, hashed) = hashed_as(&lib, None);
        // Another name for it (as cargo's uplift makes): its change time moved, so the
        // store takes the file unread but does not say its bytes are the digest's.
        std::fs::hard_link(&lib, dir.path().join("uplifted.rlib")).unwrap();
        let linked = s
            .link_blob(&d, &lib, Some(&hashed))
            .unwrap()
            .expect("linked");
        assert!(linked.settled.is_none());
        crate::check::verify_file(&s.raw_path(&d), &d).unwrap();
    }

    #[test]
    fn a_blob_taken_unread_never_replaces_one_in_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let s = raw_store(dir.path());
        let (lib, _) = output(dir.path(), "libx.rlib", b"library bytes");
        let (bin, _) = output(dir.path(), "app", b"library bytes");
        let d = Digest::of(b"library bytes");
        s.put(Namespace::Cas, &d, b"library bytes").unwrap();
        let stored = std::fs::metadata(s.raw_path(&d)).unwrap().ino();
        let (_, lh) = hashed_as(&lib, Some([9u8; 32]));
        let (_, bh) = hashed_as(&bin, Some([9u8; 32]));
        let linked = s.link_blob(&d, &lib, Some(&lh)).unwrap().expect("stored");
        assert!(
            linked.settled.is_none(),
            "not linked: the store had the blob"
        );
        assert!(
            s.copy_blob(&d, &mut File::open(&bin).unwrap(), Some(&bh))
                .unwrap()
        );
        assert_eq!(std::fs::metadata(s.raw_path(&d)).unwrap().ino(), stored);
        crate::check::verify_file(&s.raw_path(&d), &d).unwrap();
        assert_eq!(std::fs::metadata(&lib).unwrap().nlink(), 1);
        assert_eq!(tmp_files(&s), 0);
        assert_eq!(s.usage().unwrap().total_bytes(), 13, "counted once");
        // One that does not verify is replaced.
        std::fs::write(s.raw_path(&d), b"library bytez").unwrap();
        let (_, lh) = hashed_as(&lib, None);
        s.link_blob(&d, &lib, Some(&lh)).unwrap().expect("stored");
        crate::check::verify_file(&s.raw_path(&d), &d).unwrap();
        assert_eq!(std::fs::metadata(&lib).unwrap().nlink(), 2, "linked now");
        assert_eq!(s.usage().unwrap().total_bytes(), 13);
    }
}
