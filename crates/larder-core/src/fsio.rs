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

/// Writes a copy of `src` to `dest` like [`write_atomic`], by reflink (`FICLONE`) where
/// the filesystem can, else by copying. Returns whether it cloned.
///
/// # Errors
/// As [`write_atomic`], or if `src` cannot be read.
pub fn clone_atomic(dest: &Path, src: &Path, executable: bool) -> std::io::Result<bool> {
    let mut tmp = temp_beside(dest)?;
    let mut from = std::fs::File::open(src)?;
    let cloned = rustix::fs::ioctl_ficlone(tmp.as_file(), &from).is_ok();
    if !cloned {
        std::io::copy(&mut from, &mut tmp)?;
    }
    persist(tmp, dest, executable)?;
    Ok(cloned)
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
/// [`clone_atomic`], with modification time `mtime`, if its content is the blob's
/// ([`larder_store::check`]: its check, else its digest); else writes nothing and fails
/// with [`std::io::ErrorKind::InvalidData`]. Returns the bytes written.
///
/// # Errors
/// As [`clone_atomic`], or `InvalidData`.
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

/// Puts the file `src` (a blob of the local store) at `dest` as a hard link to it, with
/// modification time `mtime`, atomically: a link under a temporary name beside `dest`,
/// renamed over it. The two names are then one file: its times are the store's file's
/// too (the store marks a blob used by its access time and evicts a linked one by the
/// later of the two).
///
/// # Errors
/// If `src` is on another filesystem (`EXDEV`: copy instead), or the link, its time or
/// the rename fail; nothing is left at the temporary name.
pub fn link_atomic(dest: &Path, src: &Path, mtime: std::time::SystemTime) -> std::io::Result<()> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".larder-link-{}-{n}", std::process::id()));
    // A leftover of a process that had this id (killed between link and rename).
    let _ = std::fs::remove_file(&tmp);
    std::fs::hard_link(src, &tmp)?;
    let placed = std::fs::File::open(&tmp)
        .and_then(|f| f.set_modified(mtime))
        .and_then(|()| std::fs::rename(&tmp, dest));
    if placed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    placed
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
        clone_atomic(&dest, &src, false).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"two");
        assert_eq!(
            std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
            0o644
        );
        let leftovers = std::fs::read_dir(dest.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file is left behind");
    }
}
