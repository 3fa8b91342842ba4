//! Storing an action's result, for every tool: [`StoreJob`], and running it off cargo's
//! critical path.
//!
//! A job writes the blobs, then the action record, then (for a two-step key) the
//! manifest entry, merged into each tier's manifest with [`Store::update`] so a shared
//! manifest keeps the entries other machines added.
//!
//! Compressing and writing a large rlib takes longer than hashing it, and cargo waits
//! for the wrapper to exit before it starts the units that need that rlib. So after a
//! miss the wrapper only pins what it stores: it hashes every output (with its
//! [`larder_store::check`], in the same pass, for an uncompressed local store) and writes
//! a [`StoreJob`] naming each output's digest and the version of the file it read. A
//! detached `larder store-job <file>` process, at low CPU priority, then stores each
//! output only if it still has that digest (a file overwritten since is never stored
//! under the old key: one that is still the version hashed is taken with the wrapper's
//! check, unread, any other is read again), and writes the action record and then the
//! manifest entry, so a reader that finds the manifest entry finds everything it leads
//! to. An rlib or rmeta ([`BlobSource::Replaced`]) goes into the local store as a hard
//! link to the file rustc wrote, other files as a kernel copy ([`Store::link_blob`],
//! [`Store::copy_blob`]); with a remote to write, every
//! output is read into memory and put in every tier. The link records of rlib outputs are
//! written by the wrapper itself ([`put_link_records`]): the next link needs them.
//!
//! The background process inherits two locks from the wrapper: the single-flight lock of
//! the invocation key (a parallel build waits until the entry is stored, not only
//! compiled), and a shared lock on the build's pending file (`LARDER_PENDING`, set by
//! `larder cargo`, which takes it exclusively after cargo exits, so it returns only once
//! every result is stored; at a terminal it may leave the stores of workspace crates
//! running, see `runner::wait_for_stores`). `LARDER_BACKGROUND_STORE=0` stores in the
//! wrapper instead.
//!
//! The job writes every tier ([`larder_remote::Tiers`]): the local store, then each
//! writable remote, so uploads leave cargo's critical path with the local write. The
//! single-flight lock is held until the uploads end too; `larder cargo` returns once
//! they have (a CI job that ends right after the build has pushed its results).

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use larder_digest::Digest;
use larder_key::inputs::InputIndex;
use larder_key::{InputSet, Manifest, ManifestEntry};
use larder_store::check::Hashed;
use larder_store::{ActionRecord, Layout, LinkRecord, Namespace, Store, StoreError};
use serde::{Deserialize, Serialize};

use super::Key;
use crate::report::Event;

/// Where an output's content is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum BlobSource {
    /// A file to read; its content must still hash to the output's digest. With the
    /// wrapper's [`Hashed`] (its check, and the version of the file it read), the local
    /// store takes the file without reading it again while it is that version.
    File(PathBuf, Option<Hashed>),
    /// A file, as [`BlobSource::File`], that its writer only ever replaces (renames a
    /// new file over) and never writes into: rustc's rlib and rmeta outputs. The local
    /// store keeps it by a hard link where it can ([`Store::link_blob`]), so a compile's
    /// libraries are stored without writing their bytes again.
    Replaced(PathBuf, Option<Hashed>),
    /// The content itself (the normalized dep-info text).
    Inline(String),
}

impl BlobSource {
    /// The file the content is in, if it is in one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            BlobSource::File(p, _) | BlobSource::Replaced(p, _) => Some(p),
            BlobSource::Inline(_) => None,
        }
    }
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
    /// For a job run in the background: the invocation's report event, recorded by the
    /// job once it knows whether the result was stored.
    #[serde(default)]
    pub event: Option<Event>,
    /// What the key was made of, kept next to the record for `larder explain`.
    #[serde(default)]
    pub inputs: Option<InputSet>,
    /// The target directory the outputs are in, whose list of known digests
    /// ([`crate::hashing::KNOWN`]) gets the new stamp of an output linked into the store.
    #[serde(default)]
    pub target: Option<PathBuf>,
}

/// Why a job stored nothing (or not everything).
#[derive(Debug, thiserror::Error)]
pub enum StoreJobError {
    /// An output was overwritten since it was hashed (a later build): it is never stored
    /// under the old key.
    #[error("{0} changed since the compile")]
    Changed(String),
    /// An output cannot be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The output.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The job is malformed (not one source per output).
    #[error("the job has {sources} sources for {outputs} outputs")]
    Malformed {
        /// Sources.
        sources: usize,
        /// Outputs.
        outputs: usize,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A record did not serialize.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

impl StoreJobError {
    /// Whether this is the store's failure, worth a warning (a full disk), rather than
    /// a race with a later build.
    pub fn is_store_failure(&self) -> bool {
        matches!(self, StoreJobError::Store(_))
    }
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
            event: None,
            inputs: None,
            target: None,
        }
    }

    /// Stores blobs, then the action record, then the manifest entry, in `store`: the
    /// tiers or the local store, whose local store hashes each blob it is given (an
    /// output that changed since it was hashed is refused there).
    ///
    /// # Errors
    /// [`StoreJobError`] if an output changed since it was hashed or the store failed.
    pub fn execute(&self, store: &dyn Store) -> Result<(), StoreJobError> {
        if self.sources.len() != self.record.outputs.len() {
            return Err(StoreJobError::Malformed {
                sources: self.sources.len(),
                outputs: self.record.outputs.len(),
            });
        }
        for (o, source) in self.record.outputs.iter().zip(&self.sources) {
            // The store hashes what it is given: bytes that are not the digest's (the
            // output changed since it was hashed) are refused, and reach no remote.
            let refused = |e| match e {
                StoreError::Corrupt { .. } => StoreJobError::Changed(o.path.clone()),
                e => StoreJobError::Store(e),
            };
            if let BlobSource::Replaced(p, hashed) = source
                && let Some(linked) = store
                    .link_blob(&o.digest, p, hashed.as_ref())
                    .map_err(refused)?
            {
                // Linking changed the output's stamp: the next key that names it (a
                // link closure) still finds its digest without reading it.
                if let (Some(target), Some(meta)) = (&self.target, &linked.settled) {
                    crate::hashing::remember_stamped(target, p, &o.digest, meta);
                }
                continue;
            }
            let data = match source {
                BlobSource::File(p, hashed) | BlobSource::Replaced(p, hashed) => {
                    let read = |error| StoreJobError::Read {
                        path: p.clone(),
                        error,
                    };
                    let mut file = std::fs::File::open(p).map_err(read)?;
                    if store
                        .copy_blob(&o.digest, &mut file, hashed.as_ref())
                        .map_err(refused)?
                    {
                        continue;
                    }
                    let mut data = Vec::new();
                    std::io::Read::read_to_end(&mut file, &mut data).map_err(read)?;
                    data
                }
                BlobSource::Inline(text) => text.clone().into_bytes(),
            };
            store
                .put(Namespace::Cas, &o.digest, &data)
                .map_err(refused)?;
        }
        let json = serde_json::to_vec(&self.record)?;
        store.put(Namespace::Action, &self.action_key, &json)?;
        if let Some((ik, entry)) = &self.manifest {
            // Each tier extends its own manifest: a shared one keeps other machines'
            // entries.
            store.update(Namespace::Manifest, ik, &|current| {
                manifest_with(entry, current)
            })?;
        }
        if let Some(set) = &self.inputs {
            // For explaining later misses only: a failure here loses no entry.
            let _ = keep_inputs(store, set);
        }
        Ok(())
    }
}

/// Writes key inputs under their result key.
///
/// # Errors
/// [`StoreJobError`] if the store cannot be written.
pub fn put_inputs(store: &dyn Store, set: &InputSet) -> Result<(), StoreJobError> {
    store.put(Namespace::Inputs, &set.result, &serde_json::to_vec(set)?)?;
    Ok(())
}

/// Writes an entry's key inputs under its result key and puts the entry first in its
/// unit's index ([`larder_key::inputs::InputIndex`]), in every tier of `store`.
///
/// # Errors
/// [`StoreJobError`] if the store cannot be written.
pub fn keep_inputs(store: &dyn Store, set: &InputSet) -> Result<(), StoreJobError> {
    put_inputs(store, set)?;
    let index = larder_key::inputs::index_key(&set.unit, &set.kind);
    store.update(Namespace::Inputs, &index, &|current| {
        let mut idx: InputIndex = current
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        idx.insert(set.result);
        serde_json::to_vec(&idx).unwrap_or_default()
    })?;
    Ok(())
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
/// [`StoreJobError::Store`] if the store cannot be written.
pub fn put_link_records(store: &dyn Store, record: &ActionRecord) -> Result<(), StoreJobError> {
    for o in record.outputs.iter().filter(|o| o.path.ends_with(".rlib")) {
        let rec = serde_json::to_vec(&LinkRecord {
            deps: record.link_deps.clone(),
        })?;
        store.put(Namespace::Link, &o.digest, &rec)?;
    }
    Ok(())
}

/// Keeps the link record of the rlib whose digest is `digest` saying `deps`: writes it
/// unless the store has one that says the same (a missing, corrupt or different one is
/// replaced). Best effort: a store that cannot be written keeps what it had.
pub(crate) fn keep_link_record(store: &dyn Store, digest: &Digest, deps: &[String]) {
    let current = store
        .get(Namespace::Link, digest)
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice::<LinkRecord>(&b).ok());
    if current.is_some_and(|c| c.deps == deps) {
        return;
    }
    let record = LinkRecord {
        deps: deps.to_vec(),
    };
    if let Ok(json) = serde_json::to_vec(&record) {
        let _ = store.put(Namespace::Link, digest, &json);
    }
}

/// Writes `job` into the store's jobs directory and starts `larder store-job` on it,
/// detached, passing it the open `locks` (they stay held until it exits).
///
/// # Errors
/// If the job cannot be written or the process started: the caller stores inline.
pub fn spawn(job: &StoreJob, layout: &Layout, locks: &[&File]) -> std::io::Result<()> {
    let exe = std::env::current_exe()?;
    std::fs::create_dir_all(layout.jobs())?;
    let mut file = tempfile::Builder::new()
        .prefix(&job_prefix(&larder_remote::build_id()))
        .suffix(".json")
        .tempfile_in(layout.jobs())?;
    // One write, not one per JSON token.
    std::io::Write::write_all(&mut file, &serde_json::to_vec(job)?)?;
    let (_, path) = file.keep().map_err(|e| e.error)?;
    for lock in locks {
        // Inherited across exec: the background process holds the lock after we exit.
        rustix::io::fcntl_setfd(lock, rustix::io::FdFlags::empty())?;
    }
    let spawned = Command::new(exe)
        // Its own process group: a terminal's Ctrl-C or hang-up, sent to the build's
        // group, does not cut a store short (a job may outlive `larder cargo`).
        .process_group(0)
        // The job's remote failures count in the build of the wrapper that started it.
        .env("LARDER_BUILD_ID", larder_remote::build_id())
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
    let path = crate::config::env::var_os("LARDER_PENDING")?;
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

/// The file-name prefix of the store jobs of build `id`.
fn job_prefix(id: &str) -> String {
    larder_store::job_prefix(&larder_store::build_tag(id))
}

/// `larder store-job <file>`: runs a job at low priority, records its event (stored or
/// not) and removes its file. Returns the exit code (0 even when the job was dropped:
/// nobody waits for it).
pub fn run_job_file(path: &Path) -> i32 {
    let _trace = crate::trace::begin("store-job");
    crate::trace::phase("store");
    let _ = rustix::process::nice(10);
    crate::init_logging();
    // Its stderr goes nowhere: warnings go to the report's side file.
    crate::report::relay_warnings();
    let Ok(config) = crate::config::Config::load() else {
        return 0;
    };
    let job = std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<StoreJob>(&b).ok());
    if let Some(job) = job {
        let result = match super::open_tiers(&config) {
            Ok(store) => {
                let r = job.execute(&store).map_err(|e| not_stored(&config, &e));
                // Builds through a plain RUSTC_WRAPPER get their age policy here.
                let _ = store.local().trim_if_due();
                r
            }
            Err(e) => Err(format!("not stored: store: {e}")),
        };
        if let Some(mut event) = job.event {
            if let Err(detail) = result {
                event.stored = false;
                event.detail = Some(detail);
            }
            crate::report::record(config.report.as_deref(), &config.dir, &event);
        }
    }
    let _ = std::fs::remove_file(path);
    0
}

/// The report's detail for a job that did not store; a failure of the store itself (a
/// full disk) also warns, once per build, where an output overwritten by a later build
/// does not.
pub(crate) fn not_stored(config: &crate::config::Config, e: &StoreJobError) -> String {
    if e.is_store_failure() {
        return warn_store_failure(config, e);
    }
    tracing::debug!(%e, "not stored");
    format!("not stored: {e}")
}

/// Warns once per build that the store failed; the report's detail.
pub(crate) fn warn_store_failure(
    config: &crate::config::Config,
    e: &dyn std::fmt::Display,
) -> String {
    crate::report::warn_once(
        "store-write",
        &format!("cannot store the result in {}: {e}", config.dir.display()),
    );
    format!("not stored: {e}")
}

/// The events of build `id`'s store jobs that never finished (their process was
/// killed): their files are still in the jobs directory once the build's pending lock
/// is free. Each is returned as not stored, and its file removed.
pub fn unfinished_jobs(layout: &Layout, id: &str) -> Vec<Event> {
    jobs_of(layout, id)
        .into_iter()
        .filter_map(|(path, event)| {
            let _ = std::fs::remove_file(path);
            let mut event = event?;
            event.stored = false;
            event.detail = Some("not stored: the store job did not finish".into());
            Some(event)
        })
        .collect()
}

/// The events of build `id`'s store jobs still running (each will record it, as it is,
/// once it has stored): for a build that does not wait for them.
pub fn running_jobs(layout: &Layout, id: &str) -> Vec<Event> {
    jobs_of(layout, id)
        .into_iter()
        .filter_map(|(_, event)| event)
        .collect()
}

/// The job files of build `id`, each with the event it records, if it has one.
fn jobs_of(layout: &Layout, id: &str) -> Vec<(PathBuf, Option<Event>)> {
    let prefix = job_prefix(id);
    let Ok(entries) = std::fs::read_dir(layout.jobs()) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .map(|e| {
            let event = std::fs::read(e.path())
                .ok()
                .and_then(|b| serde_json::from_slice::<StoreJob>(&b).ok())
                .and_then(|j| j.event);
            (e.path(), event)
        })
        .collect()
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
                origin: None,
                signatures: vec![],
            },
            vec![
                BlobSource::File(out, None),
                BlobSource::Inline("dep".into()),
            ],
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
        assert!(matches!(
            j.execute(&store).unwrap_err(),
            StoreJobError::Changed(_)
        ));
        assert!(!store.contains(Namespace::Action, &j.action_key).unwrap());
        assert!(
            store
                .get(Namespace::Manifest, &j.manifest.unwrap().0)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_job_that_never_finished_is_reported_as_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        std::fs::create_dir_all(layout.jobs()).unwrap();
        let mut j = job(dir.path(), b"rlib bytes");
        j.event = Some(Event {
            crate_name: Some("a".into()),
            crate_types: vec!["lib".into()],
            outcome: "miss".into(),
            reason: Some("no-entry".into()),
            detail: None,
            stored: true,
            secs: 1.0,
            saved_secs: 0.0,
            bytes_restored: 0,
            remote: None,
            key: None,
            invocation: None,
            package: None,
            exit_code: 0,
            replay: None,
            fingerprint: None,
            seedable: false,
        });
        let mine = layout
            .jobs()
            .join(format!("{}x.json", job_prefix("build-1")));
        let other = layout
            .jobs()
            .join(format!("{}y.json", job_prefix("build-2")));
        std::fs::write(&mine, serde_json::to_vec(&j).unwrap()).unwrap();
        std::fs::write(&other, serde_json::to_vec(&j).unwrap()).unwrap();
        let events = unfinished_jobs(&layout, "build-1");
        assert_eq!(events.len(), 1);
        assert!(!events[0].stored);
        assert!(
            events[0]
                .detail
                .as_deref()
                .unwrap()
                .contains("did not finish")
        );
        assert!(!mine.exists(), "the leftover job is removed");
        assert!(other.exists(), "another build's job is left alone");
    }
}
