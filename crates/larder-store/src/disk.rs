//! The local disk store.
//!
//! One file per entry under the store directory (`LARDER_DIR`), in the versioned layout
//! that [`Layout`] names: `v1/{cas,ac,manifest,link}/ab/abcdef...`.
//!
//! Every write goes to a temporary file in `v1/tmp` and is renamed into place, so a
//! reader sees a whole entry or none, whatever runs in parallel; a library rustc has just
//! written is instead linked in ([`DiskStore::link_blob`]). A read marks an entry as used
//! by setting its modification time (a linked blob's access time: [`mark_used`]); when
//! the running total passes the size bound, the least recently used entries are deleted
//! until the store is at 80% of the bound.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use larder_digest::Digest;

use crate::check::Hashed;
use crate::{Capabilities, Layout, Namespace, Store, StoreError};

mod evict;
mod outputs;
pub use evict::mark_used;
pub use outputs::Linked;

/// A store in a local directory.
#[derive(Debug, Clone)]
pub struct DiskStore {
    layout: Layout,
    max_size: u64,
    max_age: Option<Duration>,
    level: i32,
}

/// What eviction has removed from a store so far, kept in [`Layout::evictions`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Evictions {
    /// Files removed (blobs, records, manifests).
    pub files: u64,
    /// Bytes removed.
    pub bytes: u64,
    /// When the last eviction happened, in seconds since the Unix epoch.
    pub last: u64,
}

/// How often a store with a `max_age` is trimmed by age ([`DiskStore::trim_if_due`]).
pub const AGE_TRIM_EVERY: Duration = Duration::from_secs(3600);

/// One entry as it lies in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredEntry {
    /// Its key.
    pub key: Digest,
    /// Bytes on disk (a blob's compressed and uncompressed forms together).
    pub bytes: u64,
    /// When it was last written or read.
    pub modified: SystemTime,
}

/// How much a store holds: entries and bytes per namespace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Number of entries in each namespace, in the order of [`Namespace::ALL`].
    pub entries: [u64; Namespace::ALL.len()],
    /// Bytes on disk in each namespace.
    pub bytes: [u64; Namespace::ALL.len()],
}

impl Usage {
    /// Total bytes of all entries.
    pub fn total_bytes(&self) -> u64 {
        self.bytes.iter().sum()
    }
}

impl DiskStore {
    /// Opens (creating if needed) the store in `dir`, bounded to `max_size` bytes.
    ///
    /// # Errors
    /// [`StoreError::Io`] if the directory cannot be created.
    pub fn open(dir: &Path, max_size: u64) -> Result<DiskStore, StoreError> {
        let layout = Layout::new(dir);
        fs_err::create_dir_all(layout.tmp())?;
        let store = DiskStore {
            layout,
            max_size,
            max_age: None,
            level: 3,
        };
        if !store.layout.size().exists() {
            // Counts what is there (normally nothing) before the first write.
            // Best effort: a read-only store can still be read.
            let _ = store.with_counter(|old| old);
        }
        Ok(store)
    }

    /// Sets the zstd compression level for blobs (default 3); 0 stores blobs
    /// uncompressed (`<digest>.raw`), so they can be cloned into place.
    pub fn with_compression_level(mut self, level: i32) -> DiskStore {
        self.level = level;
        self
    }

    /// Removes entries unused for longer than `max_age` whenever the store is trimmed
    /// (on going over its size bound, and at most every [`AGE_TRIM_EVERY`] through
    /// [`DiskStore::trim_if_due`]).
    pub fn with_max_age(mut self, max_age: Option<Duration>) -> DiskStore {
        self.max_age = max_age;
        self
    }

    /// Trims entries older than `max_age` if the last such trim was more than
    /// [`AGE_TRIM_EVERY`] ago. Returns the (files, bytes) removed.
    ///
    /// # Errors
    /// [`StoreError::Io`] if the store cannot be read or written.
    pub fn trim_if_due(&self) -> Result<(u64, u64), StoreError> {
        let Some(cutoff) = self.age_cutoff() else {
            return Ok((0, 0));
        };
        if !crate::layout::due(&self.layout.root().join("aged"), AGE_TRIM_EVERY) {
            return Ok((0, 0));
        }
        self.collect_garbage(None, Some(cutoff), false)
    }

    fn age_cutoff(&self) -> Option<SystemTime> {
        self.max_age.and_then(|a| SystemTime::now().checked_sub(a))
    }

    /// What eviction has removed so far.
    pub fn evictions(&self) -> Evictions {
        std::fs::read(self.layout.evictions())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// The paths of the store directory.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The size bound in bytes.
    pub fn max_size(&self) -> u64 {
        self.max_size
    }

    fn path(&self, ns: Namespace, key: &Digest) -> PathBuf {
        self.layout.entry(ns, key)
    }

    fn raw_path(&self, key: &Digest) -> PathBuf {
        self.path(Namespace::Cas, key).with_extension("raw")
    }

    /// Stores `value` as the blob `digest`, whose bytes the caller has just checked
    /// against `digest` (the tiers' copy of a remote's blob, checked on its way in by
    /// `Verified`): [`Store::put`] without hashing it a second time. Anything not checked
    /// goes through [`Store::put`].
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be written.
    pub fn put_verified_blob(&self, digest: &Digest, value: &[u8]) -> Result<(), StoreError> {
        self.write_entry(Namespace::Cas, digest, value)
    }

    /// Writes `value` under `key` (a temporary file renamed into place), with the check of
    /// an uncompressed blob; the caller has checked a blob's content.
    fn write_entry(&self, ns: Namespace, key: &Digest, value: &[u8]) -> Result<(), StoreError> {
        // An existing blob is rewritten rather than trusted: it may be the corrupt copy
        // whose detection caused this write.
        let path = if ns == Namespace::Cas && self.level == 0 {
            self.raw_path(key)
        } else {
            self.path(ns, key)
        };
        let data;
        let bytes = if ns == Namespace::Cas && self.level != 0 {
            data = zstd::encode_all(value, self.level)?;
            &data[..]
        } else {
            value
        };
        let mut tmp = tempfile::NamedTempFile::new_in(self.layout.tmp())?;
        tmp.write_all(bytes)?;
        if ns == Namespace::Cas && self.level == 0 {
            crate::check::record(tmp.as_file(), &crate::check::of(key, bytes));
        }
        self.place(tmp, &path, bytes.len() as u64)
    }

    /// Renames the temporary file `tmp`, of `len` bytes, over the entry file `dest`
    /// (making its shard directory if needed) and counts the change in the running total.
    fn place<F>(
        &self,
        tmp: tempfile::NamedTempFile<F>,
        dest: &Path,
        len: u64,
    ) -> Result<(), StoreError> {
        let parent = dest.parent().expect("entry paths have a shard directory");
        fs_err::create_dir_all(parent)?;
        let old_len = std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0);
        tmp.persist(dest).map_err(|e| fs_err_like(e.error, dest))?;
        self.account(len as i64 - old_len as i64)
    }

    /// The file of an uncompressed blob (stored at compression level 0), if there is one:
    /// it can be cloned (reflinked) into place instead of copied. Its content is not
    /// checked here.
    pub fn raw_blob_path(&self, key: &Digest) -> Option<PathBuf> {
        let p = self.raw_path(key);
        p.is_file().then_some(p)
    }

    /// Every entry of a namespace with its size (both forms of a blob summed) and last
    /// use, read without marking anything used.
    ///
    /// # Errors
    /// [`StoreError::Io`] if a directory cannot be read.
    pub fn list(&self, ns: Namespace) -> Result<Vec<StoredEntry>, StoreError> {
        let mut by_key: std::collections::BTreeMap<Digest, StoredEntry> = Default::default();
        for (modified, bytes, path) in self.entries(ns)? {
            let Some(key) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(Digest::from_hex)
            else {
                continue;
            };
            let e = by_key.entry(key).or_insert(StoredEntry {
                key,
                bytes: 0,
                modified,
            });
            e.bytes += bytes;
            e.modified = e.modified.max(modified);
        }
        Ok(by_key.into_values().collect())
    }

    /// Reads an entry (a blob in either form, decompressed) without marking it used.
    ///
    /// # Errors
    /// [`StoreError::Io`] if it cannot be read, [`StoreError::Corrupt`] if a blob does not
    /// decompress.
    pub fn peek(&self, ns: Namespace, key: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        let Some((_, raw)) = read_file(&self.path(ns, key))? else {
            if ns == Namespace::Cas {
                return Ok(read_file(&self.raw_path(key))?.map(|(_, raw)| raw));
            }
            return Ok(None);
        };
        if ns != Namespace::Cas {
            return Ok(Some(raw));
        }
        zstd::decode_all(&raw[..])
            .map(Some)
            .map_err(|e| StoreError::corrupt(ns, key, e.to_string()))
    }

    /// Quarantines the action record `record` (its bytes) stored under `key`: that
    /// record is never restored here again, from any tier ([`DiskStore::quarantined`]),
    /// and the local copy is removed. Another record stored under the key later (a
    /// compile of this machine) is not affected.
    ///
    /// # Errors
    /// [`StoreError::Io`] if the marker cannot be written.
    pub fn quarantine(&self, key: &Digest, record: &[u8], reason: &str) -> Result<(), StoreError> {
        let path = self.layout.quarantine(key);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, format!("{}\n{reason}", Digest::of(record).to_hex()))?;
        if self
            .peek(Namespace::Action, key)?
            .is_some_and(|b| b == record)
        {
            self.delete(Namespace::Action, key)?;
        }
        Ok(())
    }

    /// Why the record `record` (its bytes) under `key` is quarantined, if it is.
    pub fn quarantined(&self, key: &Digest, record: &[u8]) -> Option<String> {
        let text = std::fs::read_to_string(self.layout.quarantine(key)).ok()?;
        let (digest, reason) = text.split_once('\n')?;
        (Digest::from_hex(digest)? == Digest::of(record)).then(|| reason.to_string())
    }

    /// Files in a namespace's directories that are not entries: names that are not a
    /// key (a `.raw` blob is one), directories where shards or entries belong.
    ///
    /// # Errors
    /// [`StoreError::Io`] if a directory cannot be read.
    pub fn strays(&self, ns: Namespace) -> Result<Vec<PathBuf>, StoreError> {
        let mut out = Vec::new();
        let Ok(shards) = std::fs::read_dir(self.layout.namespace(ns)) else {
            return Ok(out);
        };
        for shard in shards {
            let shard = shard?.path();
            let Ok(files) = std::fs::read_dir(&shard) else {
                out.push(shard);
                continue;
            };
            for f in files {
                let p = f?.path();
                let stem = p.file_stem().and_then(|s| s.to_str());
                let ext = p.extension().and_then(|s| s.to_str());
                let key_like = stem.and_then(Digest::from_hex).is_some()
                    && (ext.is_none() || (ns == Namespace::Cas && ext == Some("raw")));
                if !key_like || !p.is_file() {
                    out.push(p);
                }
            }
        }
        Ok(out)
    }

    /// Writes an entry of a namespace other than the CAS as it is, replacing what is there
    /// (a manifest with entries removed).
    ///
    /// # Errors
    /// [`StoreError::Io`] if it cannot be written.
    pub fn replace(&self, ns: Namespace, key: &Digest, value: &[u8]) -> Result<(), StoreError> {
        self.delete(ns, key)?;
        self.put(ns, key, value)
    }
}

fn read_file(path: &Path) -> io::Result<Option<(File, Vec<u8>)>> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fs_err_like(e, path)),
    };
    let mut buf = Vec::new();
    file.read_to_end(&mut buf)
        .map_err(|e| fs_err_like(e, path))?;
    Ok(Some((file, buf)))
}

fn fs_err_like(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

impl Store for DiskStore {
    fn name(&self) -> String {
        format!("disk:{}", self.layout.root().display())
    }

    fn list(&self, ns: Namespace) -> Result<Vec<StoredEntry>, StoreError> {
        DiskStore::list(self, ns)
    }

    fn peek(&self, ns: Namespace, key: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        DiskStore::peek(self, ns, key)
    }

    fn link_blob(
        &self,
        digest: &Digest,
        path: &Path,
        hashed: Option<&Hashed>,
    ) -> Result<Option<Linked>, StoreError> {
        DiskStore::link_blob(self, digest, path, hashed)
    }

    fn copy_blob(
        &self,
        digest: &Digest,
        file: &mut File,
        hashed: Option<&Hashed>,
    ) -> Result<bool, StoreError> {
        DiskStore::copy_blob(self, digest, file, hashed)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            list: true,
            write: true,
            max_value_size: None,
            expires: true,
            delete: true,
        }
    }

    /// Whether the entry's file is there (not read: a damaged file is found when it is
    /// read, and then deleted).
    fn contains(&self, ns: Namespace, key: &Digest) -> Result<bool, StoreError> {
        Ok(self.path(ns, key).exists() || (ns == Namespace::Cas && self.raw_path(key).exists()))
    }

    fn get(&self, ns: Namespace, key: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path(ns, key);
        let Some((file, raw)) = read_file(&path)? else {
            if ns == Namespace::Cas
                && let Some((file, raw)) = read_file(&self.raw_path(key))?
            {
                mark_used(&file);
                return Ok(Some(raw));
            }
            return Ok(None);
        };
        mark_used(&file);
        if ns != Namespace::Cas {
            return Ok(Some(raw));
        }
        match zstd::decode_all(&raw[..]) {
            Ok(v) => Ok(Some(v)),
            Err(e) => Err(StoreError::Corrupt {
                namespace: ns.as_str(),
                key: *key,
                detail: e.to_string(),
            }),
        }
    }

    /// A blob is stored only under its own digest (else [`StoreError::Corrupt`]): an
    /// uncompressed one gets its [`crate::check`], which restores then trust.
    fn put(&self, ns: Namespace, key: &Digest, value: &[u8]) -> Result<(), StoreError> {
        if ns == Namespace::Cas {
            let actual = Digest::of(value);
            if actual != *key {
                return Err(StoreError::corrupt(
                    ns,
                    key,
                    format!("the bytes given hash to {actual}"),
                ));
            }
        }
        self.write_entry(ns, key, value)
    }

    fn delete(&self, ns: Namespace, key: &Digest) -> Result<(), StoreError> {
        if ns == Namespace::Cas {
            let raw = self.raw_path(key);
            if let Ok(meta) = std::fs::metadata(&raw) {
                std::fs::remove_file(&raw).map_err(|e| fs_err_like(e, &raw))?;
                self.with_counter(|old| old - meta.len() as i64)?;
            }
        }
        let path = self.path(ns, key);
        match std::fs::metadata(&path) {
            Ok(meta) => {
                std::fs::remove_file(&path).map_err(|e| fs_err_like(e, &path))?;
                self.with_counter(|old| old - meta.len() as i64)?;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(fs_err_like(e, &path).into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::get_verified_blob;

    #[test]
    fn blobs_round_trip_compressed_and_deduplicated() {
        let dir = tempfile::tempdir().unwrap();
        let s = DiskStore::open(dir.path(), 1 << 30).unwrap();
        let data = vec![42u8; 100_000];
        let d = Digest::of(&data);
        s.put(Namespace::Cas, &d, &data).unwrap();
        s.put(Namespace::Cas, &d, &data).unwrap();
        assert_eq!(
            get_verified_blob(&s, &d, data.len() as u64)
                .unwrap()
                .unwrap(),
            data
        );
        let u = s.usage().unwrap();
        assert_eq!(u.entries[0], 1);
        assert!(u.bytes[0] < 1000, "stored compressed: {}", u.bytes[0]);
        assert!(
            s.get(Namespace::Cas, &Digest::of(b"absent"))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn level_zero_stores_raw_blobs_that_are_still_verified() {
        let dir = tempfile::tempdir().unwrap();
        let s = DiskStore::open(dir.path(), 1 << 30)
            .unwrap()
            .with_compression_level(0);
        let data = b"raw blob".repeat(100);
        let d = Digest::of(&data);
        s.put(Namespace::Cas, &d, &data).unwrap();
        let raw = s.raw_blob_path(&d).expect("stored raw");
        assert_eq!(std::fs::read(&raw).unwrap(), data);
        // With its check, where the filesystem keeps extended attributes.
        if let Some(check) = crate::check::recorded(&std::fs::File::open(&raw).unwrap()) {
            assert_eq!(check, crate::check::of(&d, &data));
        }
        assert_eq!(crate::check::verify_file(&raw, &d).unwrap(), 800);
        // A blob is stored only under its own digest.
        assert!(matches!(
            s.put(Namespace::Cas, &Digest::of(b"another"), &data),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(s.raw_blob_path(&Digest::of(b"another")).is_none());
        assert_eq!(
            get_verified_blob(&s, &d, data.len() as u64)
                .unwrap()
                .unwrap(),
            data
        );
        std::fs::write(&raw, b"tampered").unwrap();
        assert!(matches!(
            get_verified_blob(&s, &d, data.len() as u64),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(s.raw_blob_path(&d).is_none(), "removed");
    }

    #[test]
    fn corrupt_and_truncated_blobs_are_detected_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let s = DiskStore::open(dir.path(), 1 << 30).unwrap();
        let data = b"the quick brown fox".repeat(1000);
        let d = Digest::of(&data);
        s.put(Namespace::Cas, &d, &data).unwrap();
        let path = s.path(Namespace::Cas, &d);
        // A different valid zstd frame: decodes, but to the wrong content.
        std::fs::write(&path, zstd::encode_all(&b"other"[..], 1).unwrap()).unwrap();
        assert!(matches!(
            get_verified_blob(&s, &d, data.len() as u64),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(!path.exists());
        // A truncated frame does not decode.
        s.put(Namespace::Cas, &d, &data).unwrap();
        let raw = std::fs::read(&path).unwrap();
        std::fs::write(&path, &raw[..raw.len() / 2]).unwrap();
        assert!(matches!(
            get_verified_blob(&s, &d, data.len() as u64),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(!path.exists());
    }

    #[test]
    fn records_and_parallel_writers() {
        let dir = tempfile::tempdir().unwrap();
        let s = DiskStore::open(dir.path(), 1 << 30).unwrap();
        let k = Digest::of(b"k");
        std::thread::scope(|scope| {
            for i in 0..8 {
                let s = &s;
                scope.spawn(move || {
                    for _ in 0..20 {
                        s.put(
                            Namespace::Action,
                            &k,
                            format!("{{\"writer\":{i}}}").as_bytes(),
                        )
                        .unwrap();
                        let v = s.get(Namespace::Action, &k).unwrap().unwrap();
                        serde_json::from_slice::<serde_json::Value>(&v)
                            .expect("never a torn entry");
                    }
                });
            }
        });
        s.delete(Namespace::Action, &k).unwrap();
        assert!(!s.contains(Namespace::Action, &k).unwrap());
    }
}
