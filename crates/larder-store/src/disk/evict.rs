//! Eviction and accounting of the local store ([`DiskStore`]): the running total of its
//! bytes, least-recently-used collection when it passes the bound, age trims, and what
//! "used" means for an entry's file ([`mark_used`]).

use std::fs::File;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::SystemTime;

use super::{DiskStore, Usage};
use crate::{Namespace, StoreError};

impl DiskStore {
    /// Deletes every entry last used before `cutoff` and, oldest first, more until the
    /// store holds at most `max_bytes`; with `dry_run`, only says what it would delete.
    /// Returns (entries, bytes) deleted or to delete.
    ///
    /// # Errors
    /// [`StoreError::Io`] if the store cannot be read or written.
    pub fn collect_garbage(
        &self,
        max_bytes: Option<u64>,
        cutoff: Option<SystemTime>,
        dry_run: bool,
    ) -> Result<(u64, u64), StoreError> {
        let lock = File::create(self.layout.gc_lock())?;
        lock.lock()?;
        self.evict(max_bytes, cutoff, dry_run)
    }

    /// [`DiskStore::collect_garbage`] with the collection lock held.
    fn evict(
        &self,
        max_bytes: Option<u64>,
        cutoff: Option<SystemTime>,
        dry_run: bool,
    ) -> Result<(u64, u64), StoreError> {
        let mut all = Vec::new();
        for ns in Namespace::ALL {
            all.extend(self.entries(ns)?);
        }
        let mut total: u64 = all.iter().map(|e| e.1).sum();
        all.sort_by_key(|e| e.0);
        let (mut files, mut freed) = (0, 0);
        for (modified, len, path) in all {
            let old = cutoff.is_some_and(|c| modified < c);
            let over = max_bytes.is_some_and(|m| total > m);
            if !old && !over {
                break;
            }
            if dry_run || std::fs::remove_file(&path).is_ok() {
                total -= len;
                freed += len;
                files += 1;
            }
        }
        if !dry_run {
            self.with_counter(|_| total as i64)?;
            self.layout.remove_stale();
            if files > 0 {
                // Counted under the collection lock the callers hold.
                let mut e = self.evictions();
                e.files += files;
                e.bytes += freed;
                e.last = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                if let Ok(json) = serde_json::to_vec(&e) {
                    let _ = tempfile::NamedTempFile::new_in(self.layout.tmp()).and_then(|mut t| {
                        t.write_all(&json)?;
                        t.persist(self.layout.evictions()).map_err(|e| e.error)?;
                        Ok(())
                    });
                }
            }
        }
        Ok((files, freed))
    }

    /// Walks the store and counts its entries and bytes.
    ///
    /// # Errors
    /// [`StoreError::Io`] if a directory cannot be read.
    pub fn usage(&self) -> Result<Usage, StoreError> {
        let mut usage = Usage::default();
        for (i, ns) in Namespace::ALL.iter().enumerate() {
            for (_, len, _) in self.entries(*ns)? {
                usage.entries[i] += 1;
                usage.bytes[i] += len;
            }
        }
        Ok(usage)
    }

    /// Every entry of a namespace as (modification time, size, path).
    pub(super) fn entries(
        &self,
        ns: Namespace,
    ) -> Result<Vec<(SystemTime, u64, PathBuf)>, StoreError> {
        let mut out = Vec::new();
        let dir = self.layout.namespace(ns);
        let Ok(shards) = std::fs::read_dir(&dir) else {
            return Ok(out);
        };
        for shard in shards {
            let shard = shard?;
            let Ok(files) = std::fs::read_dir(shard.path()) else {
                continue;
            };
            for f in files {
                let f = f?;
                let Ok(meta) = f.metadata() else { continue };
                if meta.is_file() {
                    out.push((last_use(&meta), meta.len(), f.path()));
                }
            }
        }
        Ok(out)
    }

    /// Deletes least recently used entries until the store holds at most `target` bytes.
    /// Returns the bytes freed. Only one process collects at a time; another caller
    /// returns at once with 0.
    ///
    /// # Errors
    /// [`StoreError::Io`] if the store cannot be read or written.
    pub fn gc(&self, target: u64) -> Result<u64, StoreError> {
        let lock = File::create(self.layout.gc_lock())?;
        if lock.try_lock().is_err() {
            return Ok(0);
        }
        let (_, freed) = self.evict(Some(target), self.age_cutoff(), false)?;
        tracing::debug!(freed, "store collected");
        Ok(freed)
    }

    /// Updates the running total under its lock; `f` maps the old total to the new one.
    ///
    /// Every stored entry updates it, so it is rewritten in place, as a number of fixed
    /// width in one write, rather than through a temporary file and a rename (two more
    /// files created per update). The total only decides when to collect: one that is
    /// missing or does not parse is counted anew from the store; a wrong one (a write
    /// torn by a power loss) only moves the next collection, and `gc` sets it to what
    /// it counts.
    pub(super) fn with_counter(&self, f: impl FnOnce(i64) -> i64) -> Result<i64, StoreError> {
        use std::os::unix::fs::FileExt;
        let lock = File::create(self.layout.size_lock())?;
        lock.lock()?;
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.layout.size())?;
        let mut text = String::new();
        let old = match file.read_to_string(&mut text) {
            Ok(_) => text.trim().parse::<i64>().ok(),
            Err(_) => None,
        };
        let old = match old {
            Some(v) => v,
            None => self.usage()?.total_bytes() as i64,
        };
        let new = f(old).max(0);
        // 20 digits hold any i64: every total written covers the last one whole.
        file.write_all_at(format!("{new:020}\n").as_bytes(), 0)?;
        Ok(new)
    }

    pub(super) fn account(&self, delta: i64) -> Result<(), StoreError> {
        let total = self.with_counter(|old| old + delta)?;
        if total as u64 > self.max_size {
            self.gc(self.max_size / 10 * 8)?;
        }
        Ok(())
    }
}

/// Marks an entry's file as used now, for eviction (least recently used first); a
/// read-only store simply keeps its times. A blob linked with a build's output
/// ([`DiskStore::link_blob`]) gets its access time set, never its modification time:
/// that time is the output's too, and cargo compares it (a library that looks newer
/// rebuilds its dependents).
pub fn mark_used(file: &File) {
    use std::os::unix::fs::MetadataExt;
    let now = SystemTime::now();
    let linked = file.metadata().is_ok_and(|m| m.nlink() > 1);
    let times = if linked {
        std::fs::FileTimes::new().set_accessed(now)
    } else {
        std::fs::FileTimes::new().set_modified(now)
    };
    let _ = file.set_times(times);
}

/// When an entry's file was last used ([`mark_used`]): its modification time, or for a
/// file linked with a build's output the later of that and its access time.
fn last_use(meta: &std::fs::Metadata) -> SystemTime {
    use std::os::unix::fs::MetadataExt;
    let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    if meta.nlink() > 1 {
        modified.max(meta.accessed().unwrap_or(SystemTime::UNIX_EPOCH))
    } else {
        modified
    }
}

#[cfg(test)]
mod tests {
    use larder_digest::Digest;

    use super::*;
    use crate::Store;

    /// 10,000 incompressible bytes (xorshift), different for each seed.
    fn noise(seed: u32) -> Vec<u8> {
        let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(seed + 1);
        (0..10_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn eviction_keeps_recently_used_entries() {
        let dir = tempfile::tempdir().unwrap();
        // Incompressible 10 KB values, bound of 50 KB.
        let s = DiskStore::open(dir.path(), 50_000)
            .unwrap()
            .with_compression_level(1);
        let mut keys = Vec::new();
        for i in 0..4u32 {
            let v = noise(i);
            let k = Digest::of(&v);
            s.put(Namespace::Cas, &k, &v).unwrap();
            keys.push(k);
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // Use the oldest, so that the second oldest is now least recently used.
        assert!(s.get(Namespace::Cas, &keys[0]).unwrap().is_some());
        std::thread::sleep(std::time::Duration::from_millis(20));
        for i in 4..8u32 {
            let v = noise(i);
            s.put(Namespace::Cas, &Digest::of(&v), &v).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let u = s.usage().unwrap();
        assert!(u.total_bytes() <= 50_000, "bounded: {}", u.total_bytes());
        assert!(
            s.get(Namespace::Cas, &keys[1]).unwrap().is_none(),
            "LRU entry evicted"
        );
    }

    #[test]
    fn the_running_total_follows_parallel_writers_and_is_recounted_when_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let s = DiskStore::open(dir.path(), 1 << 30)
            .unwrap()
            .with_compression_level(0);
        std::thread::scope(|scope| {
            for t in 0..4u32 {
                let s = &s;
                scope.spawn(move || {
                    for i in 0..10u32 {
                        let v = noise(t * 100 + i);
                        s.put(Namespace::Cas, &Digest::of(&v), &v).unwrap();
                    }
                });
            }
        });
        let counted = s.usage().unwrap().total_bytes() as i64;
        assert!(counted >= 40 * 10_000, "{counted}");
        assert_eq!(s.with_counter(|old| old).unwrap(), counted);
        // A torn total (a crash while writing it) is counted anew.
        std::fs::write(s.layout.size(), b"12x4").unwrap();
        assert_eq!(s.with_counter(|old| old).unwrap(), counted);
        // A shorter total than the one before it leaves no digits behind.
        assert_eq!(s.with_counter(|_| 7).unwrap(), 7);
        assert_eq!(s.with_counter(|old| old + 1).unwrap(), 8);
        let text = std::fs::read_to_string(s.layout.size()).unwrap();
        assert_eq!(text.trim().parse::<i64>().unwrap(), 8, "{text:?}");
    }
}
