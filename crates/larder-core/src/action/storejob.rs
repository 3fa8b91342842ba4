//! Storing an action's result, for every tool: [`StoreJob`], and running it off cargo's
//! critical path.
//!
//! A job writes the blobs, then the action record, then (for a two-step key) the
//! manifest entry, merged into each tier's manifest with [`Store::update`] so a shared
//! manifest keeps the entries other machines added.
//!
//! Compressing and writing a large rlib takes longer than hashing it, and cargo waits
//! for the wrapper to exit before it starts the units that need that rlib. So after a
//! miss the wrapper only pins what it stores: it hashes every output and writes a
//! [`StoreJob`] naming each output's digest. A detached `larder store-job <file>`
//! process, at low CPU priority, then reads each output again, stores it only if it
//! still has that digest (a file overwritten since is never stored under the old key),
//! and writes the action record and then the manifest entry, so a reader that finds the
//! manifest entry finds everything it leads to. The link records of rlib outputs are
//! written by the wrapper itself ([`put_link_records`]): the next link needs them.
//!
//! The background process inherits two locks from the wrapper: the single-flight lock of
//! the invocation key (a parallel build waits until the entry is stored, not only
//! compiled), and a shared lock on the build's pending file (`LARDER_PENDING`, set by
//! `larder cargo`, which takes it exclusively after cargo exits, so it returns only once
//! every result is stored). `LARDER_BACKGROUND_STORE=0` stores in the wrapper instead.
//!
//! The job writes every tier ([`larder_remote::Tiers`]): the local store, then each
//! writable remote, so uploads leave cargo's critical path with the local write. The
//! single-flight lock is held until the uploads end too; `larder cargo` returns once
//! they have (a CI job that ends right after the build has pushed its results).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use larder_digest::Digest;
use larder_key::{Manifest, ManifestEntry};
use larder_store::{ActionRecord, LinkRecord, Namespace, Store};
use serde::{Deserialize, Serialize};

use super::Key;

/// Where an output's content is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum BlobSource {
    /// A file to read; its content must still hash to the output's digest.
    File(PathBuf),
    /// The content itself (the normalized dep-info text).
    Inline(String),
}

/// Everything needed to store one action's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreJob {
    /// The key the action record is stored under: the manifest entry's result key, or
    /// the one-step key.
    pub action_key: Digest,
    /// For a two-step key: the invocation key whose manifest gets the entry, and the
    /// entry.
    pub manifest: Option<(Digest, ManifestEntry)>,
    /// The action record, outputs with their digests and sizes.
    pub record: ActionRecord,
    /// The content of each output, in the order of `record.outputs`.
    pub sources: Vec<BlobSource>,
}

impl StoreJob {
    /// The job for `record` under `key`: a [`Key::Manifest`] needs the manifest `entry`
    /// (the record goes under its result key), a [`Key::Direct`] takes none.
    pub fn new(
        key: &Key,
        entry: Option<ManifestEntry>,
        record: ActionRecord,
        sources: Vec<BlobSource>,
    ) -> StoreJob {
        let (action_key, manifest) = match (key, entry) {
            (Key::Manifest(ik), Some(entry)) => (entry.key, Some((*ik, entry))),
            (k, _) => (*k.digest(), None),
        };
        StoreJob {
            action_key,
            manifest,
            record,
            sources,
        }
    }

    /// Stores blobs, then the action record, then the manifest entry.
    ///
    /// # Errors
    /// A message if an output changed since it was hashed or the store failed.
    pub fn execute(&self, store: &dyn Store) -> Result<(), String> {
        if self.sources.len() != self.record.outputs.len() {
            return Err("job has one source per output".into());
        }
        for (o, source) in self.record.outputs.iter().zip(&self.sources) {
            let data = match source {
                BlobSource::File(p) => {
                    std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?
                }
                BlobSource::Inline(text) => text.clone().into_bytes(),
            };
            if Digest::of(&data) != o.digest {
                return Err(format!("{} changed since the compile", o.path));
            }
            store
                .put(Namespace::Cas, &o.digest, &data)
                .map_err(|e| e.to_string())?;
        }
        let json = serde_json::to_vec(&self.record).map_err(|e| e.to_string())?;
        store
            .put(Namespace::Action, &self.action_key, &json)
            .map_err(|e| e.to_string())?;
        let Some((ik, entry)) = &self.manifest else {
            return Ok(());
        };
        // Each tier extends its own manifest: a shared one keeps other machines' entries.
        store
            .update(Namespace::Manifest, ik, &|current| {
                manifest_with(entry, current)
            })
            .map_err(|e| e.to_string())
    }
}

/// The manifest `current` (JSON; empty if absent or unreadable) with `entry` added.
pub(crate) fn manifest_with(entry: &ManifestEntry, current: Option<Vec<u8>>) -> Vec<u8> {
    let mut manifest: Manifest = current
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    manifest.insert(entry.clone());
    serde_json::to_vec(&manifest).unwrap_or_default()
}

/// Writes the link records of a compile's rlib outputs ([`larder_store::LinkRecord`]):
/// at once, in the wrapper, because the next compile that links the rlib needs them.
///
/// # Errors
/// A message if the store cannot be written.
pub fn put_link_records(store: &dyn Store, record: &ActionRecord) -> Result<(), String> {
    for o in record.outputs.iter().filter(|o| o.path.ends_with(".rlib")) {
        let rec = serde_json::to_vec(&LinkRecord {
            deps: record.link_deps.clone(),
        })
        .map_err(|e| e.to_string())?;
        store
            .put(Namespace::Link, &o.digest, &rec)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Writes `job` into the store's `tmp` directory and starts `larder store-job` on it,
/// detached, passing it the open `locks` (they stay held until it exits).
///
/// # Errors
/// If the job cannot be written or the process started: the caller stores inline.
pub fn spawn(job: &StoreJob, store_root: &Path, locks: &[&File]) -> std::io::Result<()> {
    let exe = std::env::current_exe()?;
    let mut file = tempfile::Builder::new()
        .prefix("job-")
        .suffix(".json")
        .tempfile_in(store_root.join("tmp"))?;
    serde_json::to_writer(&mut file, job)?;
    let (_, path) = file.keep().map_err(|e| e.error)?;
    for lock in locks {
        // Inherited across exec: the background process holds the lock after we exit.
        rustix::io::fcntl_setfd(lock, rustix::io::FdFlags::empty())?;
    }
    let spawned = Command::new(exe)
        // The job's remote failures count in the build of the wrapper that started it.
        .env("LARDER_BUILD_ID", larder_remote::build_id())
        // Its warnings go to the report's side file, which `larder cargo` prints.
        .env("LARDER_STORE_JOB", "1")
        .arg("store-job")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    if let Err(e) = spawned {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    Ok(())
}

/// Takes a shared lock on the build's pending file (`LARDER_PENDING`), if any.
pub fn pending_lock() -> Option<File> {
    let path = std::env::var_os("LARDER_PENDING")?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .ok()?;
    file.lock_shared().ok()?;
    Some(file)
}

/// `larder store-job <file>`: runs a job at low priority and removes its file. Returns
/// the exit code (0 even when the job was dropped: nobody waits for it).
pub fn run_job_file(path: &Path) -> i32 {
    let _ = rustix::process::nice(10);
    crate::init_logging();
    let result = (|| -> Result<(), String> {
        let config = crate::config::Config::load().map_err(|e| e.to_string())?;
        let store = super::open_tiers(&config)?;
        let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
        let job: StoreJob = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        job.execute(&store)
    })();
    if let Err(e) = result {
        tracing::debug!(%e, "store job dropped");
    }
    let _ = std::fs::remove_file(path);
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use larder_store::{DiskStore, OutputFile, get_verified_blob};

    fn job(dir: &Path, content: &[u8]) -> StoreJob {
        let out = dir.join("liba.rlib");
        std::fs::write(&out, content).unwrap();
        let ik = Digest::of(b"ik");
        let entry = ManifestEntry::new(
            &ik,
            vec![("src/lib.rs".into(), Digest::of(b"src"))],
            vec![],
            vec![],
        );
        StoreJob::new(
            &Key::Manifest(ik),
            Some(entry),
            ActionRecord {
                crate_name: "a".into(),
                outputs: vec![
                    OutputFile {
                        path: "x/liba.rlib".into(),
                        digest: Digest::of(content),
                        size: content.len() as u64,
                        executable: false,
                        rewrite_paths: false,
                    },
                    OutputFile {
                        path: "x/a.d".into(),
                        digest: Digest::of(b"dep"),
                        size: 3,
                        executable: false,
                        rewrite_paths: true,
                    },
                ],
                stdout: String::new(),
                stderr: String::new(),
                compile_secs: 1.0,
                exit_code: 0,
                link_deps: vec!["libb-1.rlib".into()],
            },
            vec![BlobSource::File(out), BlobSource::Inline("dep".into())],
        )
    }

    #[test]
    fn job_stores_everything_a_lookup_needs() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskStore::open(&dir.path().join("s"), 1 << 30).unwrap();
        let j = job(dir.path(), b"rlib bytes");
        j.execute(&store).unwrap();
        put_link_records(&store, &j.record).unwrap();
        assert_eq!(
            get_verified_blob(&store, &Digest::of(b"rlib bytes"), 10)
                .unwrap()
                .unwrap(),
            b"rlib bytes"
        );
        assert!(store.contains(Namespace::Action, &j.action_key).unwrap());
        assert!(
            store
                .contains(Namespace::Link, &Digest::of(b"rlib bytes"))
                .unwrap()
        );
        let m: Manifest = serde_json::from_slice(
            &store
                .get(Namespace::Manifest, &j.manifest.as_ref().unwrap().0)
                .unwrap()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(m.entries[0], j.manifest.unwrap().1);
    }

    #[test]
    fn an_output_changed_since_the_compile_is_never_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskStore::open(&dir.path().join("s"), 1 << 30).unwrap();
        let j = job(dir.path(), b"compiled");
        std::fs::write(
            dir.path().join("liba.rlib"),
            b"overwritten by a later build",
        )
        .unwrap();
        assert!(j.execute(&store).unwrap_err().contains("changed"));
        assert!(!store.contains(Namespace::Action, &j.action_key).unwrap());
        assert!(
            store
                .get(Namespace::Manifest, &j.manifest.unwrap().0)
                .unwrap()
                .is_none()
        );
    }
}
