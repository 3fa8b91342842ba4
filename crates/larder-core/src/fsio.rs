//! Writing outputs into a build: atomically, so cargo and other readers never see a
//! partial file.
//!
//! Each write goes to a temporary file in the destination's directory (`.larder-*`),
//! gets its mode, and is renamed over the destination. An output is never written in
//! place: a hard link or clone shared with the store would otherwise change too.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use larder_store::check::Verifier;

fn temp_beside(dest: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    tempfile::Builder::new().prefix(".larder-").tempfile_in(dir)
}

fn persist(tmp: tempfile::NamedTempFile, dest: &Path, executable: bool) -> std::io::Result<()> {
    let mode = if executable { 0o755 } else { 0o644 };
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    tmp.persist(dest).map_err(|e| e.error)?;
    Ok(())
}

/// Writes `content` to `dest` (mode 0755 if `executable`, else 0644), atomically.
///
/// # Errors
/// If the directory cannot be created or the file written or renamed.
pub fn write_atomic(dest: &Path, content: &[u8], executable: bool) -> std::io::Result<()> {
    let mut tmp = temp_beside(dest)?;
    tmp.write_all(content)?;
    persist(tmp, dest, executable)
}

/// A checked copy of a local store's blob in a temporary file beside its destination
/// ([`stage_verified`]), put in place by [`Staged::persist`] (or dropped: removed).
pub struct Staged {
    tmp: tempfile::NamedTempFile,
    /// Its size in bytes.
    pub size: u64,
    /// Whether it is a reflink of the store's file (no data copied).
    pub cloned: bool,
}

impl Staged {
    /// Puts the copy at `dest` (mode 0755 if `executable`, else 0644), atomically.
    ///
    /// # Errors
    /// If its mode cannot be set or it cannot be renamed.
    pub fn persist(self, dest: &Path, executable: bool) -> std::io::Result<()> {
        persist(self.tmp, dest, executable)
    }
}

/// Copies `src`, the local store's file of the blob `digest`, into a temporary file
/// beside `dest`, by reflink (`FICLONE`) where the filesystem can, else by copying, and
/// checks the copy's bytes ([`larder_store::check`]: against the blob's check, else its
/// digest) as they are written, or once cloned: what is put in place is what was
/// checked, whatever happens to `src` meanwhile (a write into a library the store keeps
/// by a link to a build's file).
///
/// # Errors
/// [`std::io::ErrorKind::InvalidData`] if the bytes are not the blob's (nothing is
/// left); any error creating, reading or writing the files.
pub fn stage_verified(
    dest: &Path,
    src: &Path,
    digest: &larder_digest::Digest,
) -> std::io::Result<Staged> {
    let mut tmp = temp_beside(dest)?;
    let from = std::fs::File::open(src)?;
    if rustix::fs::ioctl_ficlone(tmp.as_file(), &from).is_ok() {
        // The clone's blocks are its own from now on: checked as they are.
        let size = Verifier::for_file(&from, digest).read_all(tmp.reopen()?)?;
        return Ok(Staged {
            tmp,
            size,
            cloned: true,
        });
    }
    let size = larder_store::check::copy_verified(from, tmp.as_file_mut(), digest)?;
    Ok(Staged {
        tmp,
        size,
        cloned: false,
    })
}

/// Writes `content` to `dest` like [`write_atomic`], with modification time `mtime`.
///
/// # Errors
/// As [`write_atomic`].
pub fn write_atomic_at(
    dest: &Path,
    content: &[u8],
    executable: bool,
    mtime: std::time::SystemTime,
) -> std::io::Result<()> {
    let mut tmp = temp_beside(dest)?;
    tmp.write_all(content)?;
    tmp.as_file().set_modified(mtime)?;
    persist(tmp, dest, executable)
}

/// Writes a copy of `src` (the local store's file of the blob `digest`) to `dest` like
/// [`write_atomic`], with modification time `mtime`, if its content is the blob's
/// ([`larder_store::check`]: its check, else its digest, checked as it is copied); else
/// writes nothing and fails with [`std::io::ErrorKind::InvalidData`]. Returns the bytes
/// written.
///
/// # Errors
/// As [`write_atomic`], if `src` cannot be read, or `InvalidData`.
pub fn copy_verified_atomic(
    dest: &Path,
    src: &Path,
    digest: &larder_digest::Digest,
    executable: bool,
    mtime: std::time::SystemTime,
) -> std::io::Result<u64> {
    let mut tmp = temp_beside(dest)?;
    let from = std::fs::File::open(src)?;
    // A clone is checked by reading it back; a copy is checked on its way.
    let checked = if rustix::fs::ioctl_ficlone(tmp.as_file(), &from).is_ok() {
        Verifier::for_file(&from, digest).read_all(std::fs::File::open(tmp.path())?)
    } else {
        larder_store::check::copy_verified(from, tmp.as_file_mut(), digest)
    };
    let size = checked.map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData => {
            std::io::Error::new(e.kind(), format!("{}: {e}", src.display()))
        }
        _ => e,
    })?;
    tmp.as_file().set_modified(mtime)?;
    persist(tmp, dest, executable)?;
    Ok(size)
}

/// Whether `path` is an output its writers only ever replace (rename a new file over) and
/// never write into: rustc's rlib and rmeta. Such an output may share its file with the
/// local store, by a hard link (the store job's [`larder_store::Store::link_blob`], and
/// [`link_atomic`] when planted).
pub fn only_replaced(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e == "rlib" || e == "rmeta")
}

/// Puts `src`, the local store's file of the blob `digest`, at `dest` as a hard link to
/// it with modification time `mtime`, atomically (a link under a temporary name beside
/// `dest`, renamed over it), if that changes the time of no other name of the file: its
/// time is `mtime` already, or the store's name is its only other one (a blob just
/// fetched, or a build's output linked into the store and since deleted). A time set
/// through one checkout's link would otherwise move in every other checkout linked to
/// the same blob, and cargo there would find a dependency newer than its dependents.
/// The names are then one file: the store marks a blob used by its access time and
/// evicts a linked one by the later of its two times. With `check`, the bytes are read
/// back through the new link and checked before the rename ([`larder_store::check`]:
/// the blob's check, else its digest), so a blob written into since it was stored is
/// never placed; without, the caller vouches for them (a blob this process fetched and
/// checked). Returns the size, or `None` (nothing placed) if the time would move for
/// another name: copy instead.
///
/// # Errors
/// [`std::io::ErrorKind::InvalidData`] if the checked bytes are not the blob's; if `src`
/// is on another filesystem (`EXDEV`: copy instead), or the link, its time or the rename
/// fail. Nothing is left at the temporary name.
pub fn link_atomic(
    dest: &Path,
    src: &Path,
    digest: &larder_digest::Digest,
    mtime: std::time::SystemTime,
    check: bool,
) -> std::io::Result<Option<u64>> {
    use std::os::unix::fs::MetadataExt;
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".larder-link-{}-{n}", std::process::id()));
    // A leftover of a process that had this id (killed between link and rename).
    let _ = std::fs::remove_file(&tmp);
    std::fs::hard_link(src, &tmp)?;
    let placed = (|| {
        let file = std::fs::File::open(&tmp)?;
        let meta = file.metadata()?;
        if meta.modified()? != mtime {
            // The store's name and this link: no one else's time moves.
            if meta.nlink() != 2 {
                return Ok(None);
            }
            file.set_modified(mtime)?;
        }
        let size = if check {
            Verifier::for_file(&file, digest).read_all(&file)?
        } else {
            meta.len()
        };
        std::fs::rename(&tmp, dest)?;
        Ok(Some(size))
    })();
    if !matches!(placed, Ok(Some(_))) {
        let _ = std::fs::remove_file(&tmp);
    }
    placed.map_err(|e: std::io::Error| match e.kind() {
        std::io::ErrorKind::InvalidData => {
            std::io::Error::new(e.kind(), format!("{}: {e}", src.display()))
        }
        _ => e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replace_and_set_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("a/b/out");
        write_atomic(&dest, b"one", true).unwrap();
        assert_eq!(
            std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
            0o755
        );
        let src = dir.path().join("src");
        std::fs::write(&src, b"two").unwrap();
        let staged = stage_verified(&dest, &src, &larder_digest::Digest::of(b"two")).unwrap();
        assert_eq!(staged.size, 3);
        assert_eq!(std::fs::read(&dest).unwrap(), b"one", "not in place yet");
        staged.persist(&dest, false).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"two");
        assert_eq!(
            std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
            0o644
        );
        let leftovers = std::fs::read_dir(dest.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file is left behind");
    }

    #[test]
    fn a_staged_copy_is_what_was_checked_and_a_wrong_one_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out/libx.rlib");
        let src = dir.path().join("blob");
        std::fs::write(&src, b"the blob's bytes").unwrap();
        let e = stage_verified(&dest, &src, &larder_digest::Digest::of(b"other bytes"))
            .err()
            .expect("not the blob");
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        assert_eq!(
            std::fs::read_dir(dest.parent().unwrap()).unwrap().count(),
            0,
            "nothing left beside the destination"
        );
        // Staged, then the store's file written into (a library linked to a build's
        // file): what is put in place is the copy that was checked.
        let staged =
            stage_verified(&dest, &src, &larder_digest::Digest::of(b"the blob's bytes")).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&src)
            .and_then(|mut f| f.write_all(b"THE"))
            .unwrap();
        staged.persist(&dest, false).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"the blob's bytes");
    }
}
