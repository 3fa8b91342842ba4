//! One cached-action pipeline for every tool larder wraps.
//!
//! rustc invocations ([`crate::rustc`]), build-script runs ([`crate::buildrun`]) and C
//! and C++ compiles ([`crate::cc`]) are cached the same way; each is an implementation
//! of [`CachedAction`] that supplies only what is specific to its tool (how to parse the
//! command line, the key, where outputs go, what a run produced), and [`run`] is the only
//! driver. It owns the order:
//!
//! 1. load the configuration; a bad one warns once and runs the tool as it is;
//! 2. parse ([`CachedAction::parse`]); a refusal runs the tool as it is, with a typed
//!    [`Reason`] in the report;
//! 3. open the store (the local store, then the remote tiers);
//! 4. compute the key ([`CachedAction::key`]): two-step ([`Key::Manifest`]: an
//!    invocation key whose manifest lists entries by the content of the files the tool
//!    read, each leading to a result key; rustc and build-script runs) or one-step
//!    ([`Key::Direct`]: the key of the action record; C compiles, whose key hashes the
//!    preprocessed source);
//! 5. look it up ([`lookup`]): on a hit, restore the outputs, replay the tool's messages
//!    and exit with its recorded code; no tool runs;
//! 6. single flight ([`crate::flight`]): if another process is running the same key,
//!    wait and look again;
//! 7. run the tool, streaming its output ([`crate::exec`]);
//! 8. collect what it read and wrote ([`CachedAction::collect`]) and store it through
//!    one [`StoreJob`], in a background process or inline; manifests are merged per tier;
//! 9. report one typed [`Outcome`].
//!
//! Any failure of larder itself falls back to running the tool as it is, with one
//! warning per build: the build succeeds or fails as it would without larder.

pub mod lookup;
pub mod outcome;
pub mod storejob;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use larder_digest::Digest;
use larder_key::{InputSet, ManifestEntry, Mismatch, Roots};
use larder_remote::Tiers;
use larder_store::{ActionRecord, OutputFile, StoreError};

use crate::config::Config;
use crate::config::env;
use crate::exec::{Captured, exec_passthrough, exit_code, run_captured};
use crate::flight::{self, FlightLock};
use crate::hashing::FileHasher;
use crate::report::warn_once;

pub use lookup::{Hit, Lookup};
pub use outcome::{MissReason, Outcome, Reason, Reporter, Restored, Unit, UnitKind};
pub use storejob::{BlobSource, StoreJob, StoreJobError};

/// A tool and its arguments, as cargo (or a build script) ran larder.
#[derive(Debug, Clone)]
pub struct Tool {
    /// The tool: rustc, the real build-script binary, the C compiler.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
}

impl Tool {
    /// Replaces this process with the tool, uncached. Returns only if that failed, with
    /// exit code 127.
    pub fn passthrough(&self) -> i32 {
        let e = exec_passthrough(&self.program, &self.args);
        eprintln!("larder: error: cannot run {}: {e}", self.program.display());
        127
    }

    /// The arguments as UTF-8, or `None` if one is not.
    pub fn utf8_args(&self) -> Option<Vec<String>> {
        self.args
            .iter()
            .map(|a| a.to_str().map(str::to_string))
            .collect()
    }
}

/// A cache key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// Two steps: the invocation key, under which a manifest lists entries, each the
    /// content of the files and variables the tool read and a result key.
    Manifest(Digest),
    /// One step: the key of the action record itself.
    Direct(Digest),
}

impl Key {
    /// The digest: the invocation key or the action key.
    pub fn digest(&self) -> &Digest {
        match self {
            Key::Manifest(d) | Key::Direct(d) => d,
        }
    }
}

/// Why work on an invocation stopped short of caching.
#[derive(Debug)]
pub enum Stop<R> {
    /// It cannot be cached, for a reason the report counts.
    NotCacheable(R),
    /// larder failed: warn and run uncached.
    Error(ActionError),
}

/// A failure of larder itself while caching an action; the tool then runs uncached.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// A tool whose identity is part of the key could not be identified.
    #[error("cannot identify the {what} {}: {source}", path.display())]
    Identity {
        /// What it is: `compiler`, `linker`, `C compiler`.
        what: &'static str,
        /// The tool.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The store could not be written.
    #[error(transparent)]
    Store(#[from] StoreJobError),
}

impl ActionError {
    /// An [`ActionError::Identity`] of `path`.
    pub fn identity(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ActionError {
        move |source| ActionError::Identity {
            what,
            path: path.to_path_buf(),
            source,
        }
    }
}

impl<R> From<ActionError> for Stop<R> {
    fn from(e: ActionError) -> Self {
        Stop::Error(e)
    }
}

impl From<larder_key::NotCacheable> for Stop<larder_key::NotCacheable> {
    fn from(r: larder_key::NotCacheable) -> Self {
        Stop::NotCacheable(r)
    }
}

/// What the driver shares with the action while it runs: the settings, the store, the
/// roots that paths are normalized against, and memoized file digests.
pub struct Ctx<'a> {
    /// The settings.
    pub config: &'a Config,
    /// The local store and the remote tiers.
    pub store: &'a Tiers,
    /// The absolute roots of this build (set by [`CachedAction::key`]).
    pub roots: Roots,
    /// Digests of files, each hashed at most once.
    pub hasher: FileHasher,
}

impl Ctx<'_> {
    /// Sets the roots of this invocation; files in its target directory (the `target`
    /// root) are hashed through that directory's list of known digests
    /// ([`crate::hashing::KNOWN`]).
    pub fn set_roots(&mut self, roots: Roots) {
        self.hasher.set_target(roots.get("target").map(Path::new));
        self.roots = roots;
    }

    /// Lists the files just written or hashed for a record's `outputs` (each output with
    /// its file) as known in the target directory, for later processes
    /// ([`crate::hashing::KNOWN`]). An output stored with path placeholders is left out:
    /// its digest is the stored text's, not the file's.
    pub fn remember_outputs<'o>(
        &self,
        outputs: impl IntoIterator<Item = (&'o OutputFile, &'o Path)>,
    ) {
        let Some(target) = self.roots.get("target") else {
            return;
        };
        let files: Vec<(PathBuf, Digest)> = outputs
            .into_iter()
            .filter(|(o, _)| !o.rewrite_paths)
            .map(|(o, path)| (path.to_path_buf(), o.digest))
            .collect();
        crate::hashing::remember_in(Path::new(target), &files);
    }

    /// The directory where tool identities are memoized.
    pub fn tools_dir(&self) -> PathBuf {
        self.store.local().layout().tools()
    }

    /// The action record of a run: its outputs, its stdout and stderr with this build's
    /// roots normalized, its time, and exit code 1 for a failure (0 otherwise). No link
    /// dependencies.
    pub fn record(
        &self,
        crate_name: String,
        outputs: Vec<OutputFile>,
        captured: &Captured,
        stdout: &str,
        stderr: &str,
    ) -> ActionRecord {
        ActionRecord {
            crate_name,
            outputs,
            stdout: self.roots.normalize_text(stdout),
            stderr: self.roots.normalize_text(stderr),
            compile_secs: captured.elapsed.as_secs_f64(),
            exit_code: i32::from(!captured.status.success()),
            link_deps: Vec::new(),
            origin: Some(self.roots.digest()),
            signatures: Vec::new(),
        }
    }
}

/// What a run produced, ready to store.
#[derive(Debug)]
pub struct Collected {
    /// For a two-step key: the manifest entry (what was read; its key is the result
    /// key).
    pub entry: Option<ManifestEntry>,
    /// The action record.
    pub record: ActionRecord,
    /// The content of each output, in the order of `record.outputs`.
    pub sources: Vec<BlobSource>,
    /// Whether the store may happen in a background process (the outputs stay in place
    /// until it has read them).
    pub background: bool,
}

/// The tool-specific part of a cached action. [`run`] drives it.
pub trait CachedAction: Sized {
    /// Why an invocation of this tool is not cacheable.
    type Reason: Reason;

    /// The unit's directory under cargo's `.fingerprint`, and whether the next build
    /// may plant it (a unit of a registry or git package: [`crate::seed`]). `None`
    /// (the default) where it is not known.
    fn fingerprint_dir(&self) -> Option<(PathBuf, bool)> {
        None
    }

    /// The unit as far as it is known before parsing (`name: None` for probes, which
    /// are not units of a build).
    fn unit_of(tool: &Tool) -> Unit;

    /// Rewrites the tool's arguments as the configuration asks, before anything looks
    /// at them (the key, the compile, a run uncached); the default keeps them.
    fn prepare(_config: &Config, _tool: &mut Tool) {}

    /// Parses the invocation, or says why it cannot be cached.
    ///
    /// # Errors
    /// The reason it is not cacheable; the tool then runs as it is.
    fn parse(config: &Config, tool: &Tool) -> Result<Self, Self::Reason>;

    /// The unit, once parsed.
    fn unit(&self) -> Unit;

    /// The tool's working directory, against which stored relative paths resolve.
    fn cwd(&self) -> &Path;

    /// Computes the key; sets `cx.roots`.
    ///
    /// # Errors
    /// Not cacheable, or larder failed.
    fn key(&mut self, cx: &mut Ctx<'_>) -> Result<Key, Stop<Self::Reason>>;

    /// The key's inputs as named values, for `larder explain`: called after
    /// [`CachedAction::key`] on a miss (and on every invocation under `LARDER_DEBUG`).
    /// The default has none.
    fn inputs(&mut self, cx: &mut Ctx<'_>) -> Vec<larder_key::Input> {
        let _ = cx;
        Vec::new()
    }

    /// Whether the files and variables a manifest entry lists still have the content it
    /// records. The default hashes files; build-script runs also hash directory trees.
    ///
    /// # Errors
    /// The first input that differs.
    fn entry_matches(&mut self, cx: &mut Ctx<'_>, entry: &ManifestEntry) -> Result<(), Mismatch> {
        let roots = cx.roots.clone();
        let hasher = &mut cx.hasher;
        entry.matches(
            &roots,
            |p| hasher.digest(p),
            |name| env_dep_value(name).unwrap_or_else(|_| Some(NON_UTF8.to_string())),
            self.cwd(),
        )
    }

    /// Where a stored output goes in this build (already denormalized and resolved).
    ///
    /// # Errors
    /// Why the output has no place in this invocation: the entry cannot be restored.
    fn destination(&self, cx: &Ctx<'_>, output: &OutputFile) -> Result<PathBuf, String>;

    /// Whether a record whose outputs have no place in this invocation
    /// ([`CachedAction::destination`], [`CachedAction::check_record`]) is wrong for its
    /// key, and so quarantined: true where the key fixes the outputs (rustc's arguments
    /// name them), false where the place depends on this build's state (a C object's
    /// directory).
    fn misfit_is_wrong(&self) -> bool {
        false
    }

    /// Whether a hit of this tool can be recompiled by `larder verify` from its
    /// command line ([`crate::replay::Replay`]).
    fn replayable(&self) -> bool {
        false
    }

    /// Checks a record as a whole before anything is fetched, given the destinations
    /// of its outputs.
    ///
    /// # Errors
    /// Why it cannot be restored here (too few outputs, a failure where none is cached).
    fn check_record(&self, record: &ActionRecord, destinations: &[PathBuf]) -> Result<(), String> {
        let _ = (record, destinations);
        Ok(())
    }

    /// Called after a record's outputs were written (`files`: destination, digest and
    /// size of each), to keep what later invocations need (link records).
    fn restored(
        &mut self,
        cx: &mut Ctx<'_>,
        record: &ActionRecord,
        files: &[(PathBuf, Digest, u64)],
    ) {
        let _ = (cx, record, files);
    }

    /// The arguments the tool runs with on a miss; the default is the invocation's
    /// own. (A C compile keyed by its dependency file adds `-MD -MF <file>`.)
    fn run_args(&mut self, tool: &Tool) -> Vec<OsString> {
        tool.args.clone()
    }

    /// Whether a failed run may be cached (its messages and exit code, no outputs).
    fn cache_failure(&self, captured: &Captured) -> bool {
        let _ = captured;
        false
    }

    /// The report's detail for a failed run that is not cached.
    fn failure_detail(&self) -> String;

    /// What a run read and wrote, for the store.
    ///
    /// # Errors
    /// Not cacheable (an input changed while the tool ran, an unexpected output), or
    /// larder failed.
    fn collect(
        &mut self,
        cx: &mut Ctx<'_>,
        key: &Key,
        captured: &Captured,
        started: SystemTime,
    ) -> Result<Collected, Stop<Self::Reason>>;

    /// Called last, with the exit code the invocation returns (rustc puts the
    /// build-script cache in front of a build script's binary here).
    fn finish(&self, cx: &Ctx<'_>, code: i32) {
        let _ = (cx, code);
    }
}

/// Stands for a value that is not UTF-8 at lookup: no stored value can contain a NUL.
pub(crate) const NON_UTF8: &str = "\0non-utf-8";

/// The current value of a variable a compile read through `env!`/`option_env!`, as it
/// is (see [`larder_key::key::env_dep_value`] for the form a manifest keeps).
///
/// # Errors
/// The value is not UTF-8 (given back).
pub(crate) fn env_dep_value(name: &str) -> Result<Option<String>, std::ffi::OsString> {
    env::var_os(name)
        .map(std::ffi::OsString::into_string)
        .transpose()
}

/// Opens the tiers for a wrapper: the local store and the remotes. If the local store
/// cannot be opened, warns once per build; the caller runs the tool uncached.
///
/// # Errors
/// [`StoreError`] if the local store cannot be opened.
pub fn open_tiers(config: &Config) -> Result<Tiers, StoreError> {
    config
        .open_store()
        .map(|l| {
            let tiers = Tiers::new(l, &config.remote_tiers(), crate::report::HOOKS)
                .with_stats_dir(&config.dir);
            if config.requires_signatures() {
                tiers.with_admission(
                    std::sync::Arc::new(config.trust()),
                    config.require_local_signatures,
                )
            } else {
                tiers
            }
        })
        .inspect_err(|e| {
            warn_once(
                "store-open",
                &format!(
                    "cannot open the store in {}: {e}; running without cache",
                    config.dir.display()
                ),
            );
        })
}

/// Runs `tool` through the cache as an `A` and returns the exit code.
pub fn run<A: CachedAction>(mut tool: Tool) -> i32 {
    let started = Instant::now();
    let wall_start = SystemTime::now();
    crate::init_logging();
    let unit = A::unit_of(&tool);
    let _trace = crate::trace::begin(unit.name.as_deref().unwrap_or("probe"));
    let config = match Config::load() {
        Ok(c) => c,
        Err(e) => {
            // cargo hides the stderr of its probes: warn on a unit, where the one
            // warning of the build is seen.
            if unit.name.is_some() {
                warn_once("config", &format!("{e}; caching is off"));
            }
            return tool.passthrough();
        }
    };
    A::prepare(&config, &mut tool);
    let mut reporter = Reporter::new(&config, started, unit);
    let mut action = match A::parse(&config, &tool) {
        Ok(a) => a,
        Err(reason) => {
            reporter.report(&Outcome::not_cacheable(&reason));
            return tool.passthrough();
        }
    };
    reporter.unit = action.unit();
    reporter.fingerprint = action.fingerprint_dir();
    let store = match open_tiers(&config) {
        Ok(s) => s.with_gate(crate::prefetch::wait),
        Err(e) => {
            reporter.report(&Outcome::Error(format!("store: {e}")));
            return tool.passthrough();
        }
    };
    let mut cx = Ctx {
        config: &config,
        store: &store,
        roots: Roots::default(),
        hasher: FileHasher::default(),
    };
    crate::trace::phase("key");
    let key = match action.key(&mut cx) {
        Ok(k) => k,
        Err(Stop::NotCacheable(reason)) => {
            reporter.report(&Outcome::not_cacheable(&reason));
            return tool.passthrough();
        }
        Err(Stop::Error(e)) => {
            let msg = e.to_string();
            warn_once(
                &format!("key:{msg}"),
                &format!("{msg}; compiling without cache"),
            );
            reporter.report(&Outcome::Error(msg));
            return tool.passthrough();
        }
    };
    reporter.invocation = Some(*key.digest());
    crate::trace::phase("lookup");
    // A prefetch of this build may be bringing the entry: wait for it before looking.
    let (ns, k) = match &key {
        Key::Manifest(k) => (larder_store::Namespace::Manifest, k),
        Key::Direct(k) => (larder_store::Namespace::Action, k),
    };
    if !larder_store::Store::contains(store.local(), ns, k).unwrap_or(true) {
        store.pass_gate(ns, k);
    }

    let miss = match lookup::lookup(&mut action, &mut cx, &key) {
        Lookup::Hit(hit) => return serve(&mut action, &mut cx, &mut reporter, &tool, hit),
        Lookup::Miss(reason) => reason,
    };
    // Single flight: if another process runs this key, wait for it and look again. The
    // lock is held until this result is stored.
    let flight = flight::lead_or_reuse(&store.local().layout().locks(), key.digest(), || {
        lookup::lookup(&mut action, &mut cx, &key).into_hit()
    });
    let flight = match flight {
        Ok(lock) => lock,
        Err(hit) => return serve(&mut action, &mut cx, &mut reporter, &tool, hit),
    };

    crate::trace::phase("compile");
    let args = action.run_args(&tool);
    let captured = match run_captured(&tool.program, &args) {
        Ok(c) => c,
        Err(e) => {
            warn_once(
                "spawn",
                &format!("cannot run {}: {e}", tool.program.display()),
            );
            return tool.passthrough();
        }
    };
    let code = exit_code(captured.status);
    if !captured.status.success() && !action.cache_failure(&captured) {
        if config.debug {
            keep_unstored_inputs(&mut action, &mut cx, &mut reporter, &key);
        }
        reporter.report(&Outcome::Miss {
            reason: miss,
            stored: Err(action.failure_detail()),
        });
        return code;
    }
    let miss_with = |stored| Outcome::Miss {
        reason: miss.clone(),
        stored,
    };
    crate::trace::phase("collect");
    let stored = match action.collect(&mut cx, &key, &captured, wall_start) {
        Ok(collected) => {
            cx.remember_outputs(
                collected
                    .record
                    .outputs
                    .iter()
                    .zip(&collected.sources)
                    .filter_map(|(o, source)| Some((o, source.path()?))),
            );
            crate::trace::phase("store");
            let mut job = StoreJob::new(&key, collected.entry, collected.record, collected.sources);
            job.target = cx.roots.get("target").map(PathBuf::from);
            if let Some(signer) = &config.signing_key {
                crate::trust::sign(signer, &job.action_key, &mut job.record);
            }
            reporter.key = Some(job.action_key);
            let entry = job.manifest.as_ref().map(|(_, e)| e);
            job.inputs = input_set(
                &mut action,
                &mut cx,
                &reporter.unit,
                &key,
                job.action_key,
                entry,
            );
            if collected.background && config.background_store {
                // The job records the event once it knows whether it stored.
                job.event = Some(reporter.event(&miss_with(Ok(()))));
                crate::trace::unit("", "miss");
                if spawn_store(&cx, &job, flight.as_ref()) {
                    action.finish(&cx, code);
                    return code;
                }
                job.event = None;
            }
            job.execute(cx.store)
                .map_err(|e| storejob::not_stored(&config, &e))
        }
        Err(Stop::NotCacheable(reason)) => Err(format!("not stored: {reason}")),
        Err(Stop::Error(e)) => Err(storejob::warn_store_failure(&config, &e)),
    };
    if stored.is_err() && config.debug {
        keep_unstored_inputs(&mut action, &mut cx, &mut reporter, &key);
    }
    reporter.report(&miss_with(stored));
    action.finish(&cx, code);
    code
}

/// Serves a hit: replays the tool's messages, reports, and returns its exit code.
fn serve<A: CachedAction>(
    action: &mut A,
    cx: &mut Ctx<'_>,
    reporter: &mut Reporter<'_>,
    tool: &Tool,
    hit: Hit,
) -> i32 {
    hit.replay(&cx.roots);
    reporter.key = Some(hit.key);
    if action.replayable() {
        reporter.replay =
            crate::replay::Replay::capture(&tool.program, &tool.args, cx.config, &cx.roots);
    }
    if cx.config.debug {
        // The inputs stored with the entry are this invocation's: keep a local copy.
        let _ = larder_store::Store::get(cx.store, larder_store::Namespace::Inputs, &hit.key);
    }
    reporter.report(&Outcome::Hit(Restored {
        compile_secs: hit.record.compile_secs,
        bytes: hit.bytes,
        cloned: hit.cloned,
        remote: cx
            .store
            .served_by()
            .or_else(|| crate::prefetch::served(&hit.key)),
        exit_code: hit.record.exit_code,
    }));
    action.finish(cx, hit.record.exit_code);
    hit.record.exit_code
}

/// The key inputs of this invocation (the action's, and the manifest entry's if it
/// has one), for `larder explain`; `None` for invocations that are not units.
fn input_set<A: CachedAction>(
    action: &mut A,
    cx: &mut Ctx<'_>,
    unit: &Unit,
    key: &Key,
    result: Digest,
    entry: Option<&ManifestEntry>,
) -> Option<InputSet> {
    let name = unit.name.clone()?;
    let mut inputs = action.inputs(cx);
    if let Some(e) = entry {
        inputs.extend(e.inputs());
    }
    let created = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Some(
        InputSet {
            unit: name,
            kind: unit.kind.crate_types().join(","),
            invocation: *key.digest(),
            result,
            created,
            inputs,
            partial: false,
        }
        .sorted(),
    )
}

/// Under `LARDER_DEBUG`: keeps the inputs of a miss that stored nothing (what is known
/// before the tool runs), in the local store under the invocation key.
fn keep_unstored_inputs<A: CachedAction>(
    action: &mut A,
    cx: &mut Ctx<'_>,
    reporter: &mut Reporter<'_>,
    key: &Key,
) {
    let unit = reporter.unit.clone();
    if let Some(mut set) = input_set(action, cx, &unit, key, *key.digest(), None) {
        set.partial = true;
        reporter.key = Some(set.result);
        let _ = storejob::put_inputs(cx.store.local(), &set);
    }
}

/// Starts a background process for `job` that holds the single-flight lock and the
/// build's pending lock until it is done. Whether it started (else store inline).
fn spawn_store(cx: &Ctx<'_>, job: &StoreJob, flight: Option<&FlightLock>) -> bool {
    let pending = storejob::pending_lock();
    let mut locks: Vec<&std::fs::File> = flight.map(FlightLock::file).into_iter().collect();
    locks.extend(pending.as_ref());
    match storejob::spawn(job, cx.store.local().layout(), &locks) {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(%e, "storing in the wrapper");
            false
        }
    }
}
