//! The seed of one `larder cargo` build ([`super`]): planted before cargo starts, from
//! the local store or else a remote ([`super::remote`]), and recorded (and published)
//! after the build succeeded.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

use larder_digest::Digest;

use super::remote::{Blobs, Early, Fetched};
use super::{Seed, SeedRecord};
use crate::config::Config;
use crate::config::env;
use crate::later::Later;
use crate::report::Event;

/// How long a build waits for a remote's seed before cargo starts without it.
const SEED_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The seed of a build ([`crate::seed`]): the last build's registry and git units,
/// planted before cargo starts (from the local store, else from a remote); this
/// build's, recorded after it succeeded (and published to the remotes).
pub(crate) struct Seeding {
    key: Digest,
    project_dir: PathBuf,
    record: Option<SeedRecord>,
    /// The guard ([`super::guard`]): computed before cargo started, or beside it
    /// (nothing was to be planted).
    guard: Later<Option<Digest>>,
    /// The remote seed's context ([`super::remote_context`]), with remotes: computed
    /// once, beside the rest, for the lookup and the publication.
    context: Option<Later<Option<Digest>>>,
    /// The seed planted from a remote, as the remote keeps it ([`Seed::portable`]).
    from_remote: Option<Seed>,
    /// Whether the target directory had every unit of every seed when the build
    /// started ([`super::nothing_to_plant`]).
    all_present: bool,
}

impl Seeding {
    /// With `LARDER_SEED` on: plants the seed of this command and this build's guard,
    /// if there is one (in the local store, else on a remote of `tiers`), in the target
    /// directory, and says what it planted. Sends the digests of the seed's files to
    /// `planted` (the prefetch leaves them out) as soon as the seed is known.
    pub(crate) fn plant(
        config: &Config,
        store: Option<&larder_store::DiskStore>,
        tiers: Option<&Arc<larder_remote::Tiers>>,
        args: &[OsString],
        planted: Sender<HashSet<Digest>>,
        trace: Option<&Path>,
        compiler: &Later<Option<crate::identity::Compiler>>,
    ) -> Option<Seeding> {
        if !config.seed || config.disable {
            return None;
        }
        let store = store?;
        let cwd = std::env::current_dir().ok()?;
        let key = crate::command::index_key(args, &cwd, env::var);
        let args: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let project_dir = crate::command::project_manifest(&args, &cwd)?
            .parent()?
            .to_path_buf();
        let started = crate::trace::now();
        let clock = std::time::Instant::now();
        let record = crate::seed::load(store, &key);
        let context = tiers.map(|_| {
            let extra_env = config.extra_env.clone();
            Later::start(move || super::remote_context(&extra_env))
        });
        let span = |name: &str, since: u64| {
            if let Some(path) = trace {
                crate::trace::append_build_span(path, name, since);
            }
        };
        // A target directory that has every unit of this command's seeds (a rebuild, the
        // edit loop) gets nothing planted whatever the guard: cargo starts at once, and
        // the guard (a `rustc --print sysroot` through rustup's proxy, about 20 ms) is
        // computed beside it, for the record. With remotes, a seed of another guard may
        // still be on one: the guard is waited for.
        if tiers.is_none()
            && let Some(r) = &record
            && crate::seed::nothing_to_plant(r, &args, &cwd, &project_dir)
        {
            let (config, compiler) = (config.clone(), compiler.clone());
            let later =
                Later::start(move || crate::seed::guard(&config, compiler.wait().flatten()));
            span("seed: nothing to plant", started);
            return Some(Seeding {
                key,
                project_dir,
                record,
                guard: later,
                context,
                from_remote: None,
                all_present: true,
            });
        }
        // With no seed here, a remote's is looked up while the guard is computed.
        // The remotes, with the context their seeds are kept under.
        let remote = tiers.zip(context.as_ref());
        let lookup = match (&record, remote) {
            (None, Some((tiers, context))) => Some(Lookup::start(config, tiers, key, context)),
            _ => None,
        };
        // The guard needs the compiler's identity, hashed once per store: not computed
        // here before the first build that could have left a seed, unless a remote
        // may have one.
        let guard = if record.is_some() || tiers.is_some() {
            crate::seed::guard(config, compiler.wait().flatten())
        } else {
            None
        };
        if let Some(l) = &lookup {
            let _ = l.guard.set(guard);
        }
        span("seed: guard", started);
        let mut seeding = Seeding {
            key,
            project_dir,
            record,
            guard: Later::known(guard),
            context: context.clone(),
            from_remote: None,
            all_present: false,
        };
        let Some(guard) = guard else {
            return Some(seeding);
        };
        let local = seeding
            .record
            .as_ref()
            .and_then(|r| r.seed_for(&guard))
            .cloned();
        let (seed, from) = match (local, remote) {
            (Some(seed), _) => (seed, None),
            (None, Some((tiers, context))) => {
                let fetching = crate::trace::now();
                let lookup = lookup.unwrap_or_else(|| Lookup::start(config, tiers, key, context));
                let _ = lookup.guard.set(Some(guard));
                let Some((seed, from)) = lookup.finish() else {
                    return Some(seeding);
                };
                span("seed: remote record", fetching);
                seeding.from_remote = Some(seed.clone());
                (seed, Some((from, lookup)))
            }
            (None, None) => return Some(seeding),
        };
        let _ = planted.send(crate::seed::remote::digests(&seed));
        drop(planted);
        let mut fetched = String::new();
        let mut fresh = HashSet::new();
        let from = from.map(|(from, lookup)| {
            let (b, fetching) = lookup.blobs();
            span("seed: remote blobs", fetching);
            fetched = format!(
                " from {from} ({} blobs, {}, fetched{})",
                b.fetched(),
                crate::human::bytes(b.bytes),
                if b.missing > 0 {
                    format!("; {} not found", b.missing)
                } else {
                    String::new()
                }
            );
            fresh = b.digests;
            from
        });
        let target = if from.is_some() && !crate::seed::remote::target_dir_allowed(&seed) {
            match crate::seed::named_target_dir(&args, &cwd) {
                Some(t) => t,
                None => {
                    eprintln!(
                        "larder: warning: the seed on {} names the target directory {}, \
                         outside the project; nothing planted (name one: \
                         CARGO_TARGET_DIR)",
                        from.as_deref().unwrap_or_default(),
                        seed.target_dir
                    );
                    return Some(seeding);
                }
            }
        } else {
            crate::seed::target_dir(&seed, &args, &cwd, &seeding.project_dir)
        };
        let planting = crate::trace::now();
        let p = crate::seed::plant(store, &seed, &target, &fresh);
        span("seed: plant", planting);
        // The wrappers that key on these files (a link closure: every library)
        // take their digests from here instead of reading them again.
        crate::hashing::remember_in(&target, &p.files);
        if p.units > 0 {
            eprintln!(
                "larder: planted {} registry units ({}) of the last build{fetched} in {} in \
                 {:.2} s",
                p.units,
                crate::human::bytes(p.bytes),
                target.display(),
                clock.elapsed().as_secs_f64()
            );
        }
        if p.failed > 0 || p.why.is_some() {
            eprintln!(
                "larder: warning: {} of the last build's {} registry units not planted \
                 ({}); cargo builds them",
                seed.units.len() - p.units - p.present,
                seed.units.len(),
                p.why.as_deref().unwrap_or("unknown")
            );
        }
        if let Some(path) = trace {
            crate::trace::append_build_span(path, "seed", started);
        }
        Some(seeding)
    }

    /// Records this build's registry and git units for the next build, in the local
    /// store and, when it is new to them, on the writable remotes of `tiers`.
    pub(crate) fn record(
        self,
        config: &Config,
        store: &larder_store::DiskStore,
        tiers: Option<&larder_remote::Tiers>,
        events: &[Event],
    ) {
        let Some(guard) = self.guard.wait().flatten().or_else(|| {
            // Asked again: the compiler may be identified by now (a toolchain rustup
            // was still installing when cargo started).
            let tools = config.layout().tools();
            let compiler = crate::identity::compiler(&crate::seed::rustc(), None, Some(&tools));
            crate::seed::guard(config, compiler.ok())
        }) else {
            return;
        };
        let mut record = self.record.unwrap_or_default();
        let previous = self
            .from_remote
            .as_ref()
            .or_else(|| record.seed_for(&guard));
        // A build that compiled or restored no unit of the seed's kind (the edit loop) in
        // a target directory that had every unit of its seeds: the capture would find the
        // seed recorded (it reads every unit's fingerprints and files: 15 ms on
        // `bench/heavy`).
        let unchanged = self.all_present && !events.iter().any(|e| e.seedable);
        let captured = match previous {
            Some(p) if unchanged => Some(p.clone()),
            _ => crate::seed::capture(store, guard, &self.project_dir, events, previous),
        };
        let Some(seed) = captured else {
            return;
        };
        // No unit where there was no seed: a project with no registry package writes none.
        if previous.is_none() && seed.units.is_empty() {
            return;
        }
        let mut changed = record.seeds.first() != Some(&seed);
        // Published unless the remote it was planted from has it, or this store
        // published it last; as any machine would record it (`portable`).
        let portable = seed.portable();
        // (Not published where `rustc -vV` fails: the remote key needs its output.)
        if let Some(tiers) = tiers
            && self.from_remote.as_ref() != Some(&portable)
            && let Some(context) = self.context.as_ref().and_then(Later::wait).flatten()
        {
            let remote_key = crate::seed::remote::remote_key(&self.key, &context);
            let payload =
                crate::seed::remote::payload(&remote_key, &portable, config.signing_key.as_ref());
            let digest = Digest::of(&payload);
            if !record.published.contains(&digest)
                && crate::seed::remote::publish(
                    tiers,
                    &remote_key,
                    &portable,
                    &payload,
                    config.signing_key.is_some(),
                )
            {
                record.mark_published(digest);
                changed = true;
            }
        }
        if !changed {
            return;
        }
        record.put(seed);
        if let Err(e) = crate::seed::save(store, &self.key, &record) {
            tracing::debug!(%e, "seed not recorded");
        }
    }
}

/// The blob fetch of a seed found before its guard was checked: its own stop, and its
/// thread (the blobs, and when their fetch started).
type EarlyFetch = (Arc<AtomicBool>, JoinHandle<(Blobs, u64)>);

/// A lookup of the command's seed on the remotes, on a thread of its own: it starts
/// before the guard is known (the remote key needs only [`super::remote_context`]),
/// starts fetching the blobs of the seed it finds at once, and waits for
/// [`Lookup::guard`] to check that seed (one whose guard is not this build's is planted
/// from nothing: its blob fetch is stopped, and what it brought stays in the store as
/// any fetched blob, checked against its digest).
struct Lookup {
    /// This build's guard, set once computed.
    guard: Arc<OnceLock<Option<Digest>>>,
    found: Receiver<Fetched>,
    /// The found seed's blobs, and when their fetch started (a trace time).
    blobs: Receiver<(Blobs, u64)>,
    /// Set when the build stops waiting: no further blob is fetched.
    abandoned: Arc<AtomicBool>,
}

impl Lookup {
    fn start(
        config: &Config,
        tiers: &Arc<larder_remote::Tiers>,
        key: Digest,
        context: &Later<Option<Digest>>,
    ) -> Lookup {
        let guard = Arc::new(OnceLock::new());
        let abandoned = Arc::new(AtomicBool::new(false));
        let (tx, found) = std::sync::mpsc::channel();
        let (blobs_tx, blobs) = std::sync::mpsc::channel();
        let (tiers, trust) = (Arc::clone(tiers), config.trust());
        let context = context.clone();
        let max_bytes = config.max_size / 2;
        let (wanted, stop_all) = (Arc::clone(&guard), Arc::clone(&abandoned));
        std::thread::spawn(move || {
            let Some(context) = context.wait().flatten() else {
                let _ = tx.send(Fetched::None);
                return;
            };
            // The blob fetch of the seed admitted last, and its own stop.
            let mut early: Option<EarlyFetch> = None;
            let mut heard = |e: Early<'_>| {
                if let Some((stop, _)) = early.take() {
                    stop.store(true, Ordering::Relaxed);
                }
                let Early::Admitted(seed) = e else {
                    return;
                };
                // Not when the build gave up, nor for a seed of a guard already known
                // not to be this build's.
                let known = wanted.get().copied();
                if stop_all.load(Ordering::Relaxed) || known.is_some_and(|g| g != Some(seed.guard))
                {
                    return;
                }
                let stop = Arc::new(AtomicBool::new(false));
                let (tiers, seed, mine, all) = (
                    Arc::clone(&tiers),
                    seed.clone(),
                    Arc::clone(&stop),
                    Arc::clone(&stop_all),
                );
                let fetching = std::thread::spawn(move || {
                    let started = crate::trace::now();
                    let cancel = || mine.load(Ordering::Relaxed) || all.load(Ordering::Relaxed);
                    let b = super::remote::fetch_blobs(&tiers, &seed, max_bytes, &cancel);
                    (b, started)
                });
                early = Some((stop, fetching));
            };
            let fetched = super::remote::fetch(
                &tiers,
                &super::remote::remote_key(&key, &context),
                &|| *wanted.wait(),
                &trust,
                &mut heard,
            );
            let found = matches!(fetched, Fetched::Found { .. });
            let _ = tx.send(fetched);
            match early {
                // The seed found is the last one admitted.
                Some((_, fetching)) if found => {
                    if let Ok(b) = fetching.join() {
                        let _ = blobs_tx.send(b);
                    }
                }
                Some((stop, _)) => stop.store(true, Ordering::Relaxed),
                None => {}
            }
        });
        Lookup {
            guard,
            found,
            blobs,
            abandoned,
        }
    }

    /// The seed found and the remote's name; `None` (having said why, where it is worth
    /// saying) if there is none, it is refused, or the remotes do not answer within
    /// [`SEED_WAIT`] (the lookup then goes on unwaited for, and fetches no blob).
    fn finish(&self) -> Option<(Seed, String)> {
        let Ok(found) = self.found.recv_timeout(SEED_WAIT) else {
            self.abandoned.store(true, Ordering::Relaxed);
            eprintln!(
                "larder: no seed planted: the remotes did not answer within {} s",
                SEED_WAIT.as_secs_f64()
            );
            return None;
        };
        match found {
            Fetched::Found { from, seed } => Some((seed, from)),
            Fetched::Refused { from, reason } => {
                eprintln!(
                    "larder: warning: the seed on {from} is refused ({reason}); nothing \
                     planted (LARDER_TRUSTED_KEYS, LARDER_REQUIRE_SIGNATURES)"
                );
                None
            }
            Fetched::None => None,
        }
    }

    /// The blobs of the seed [`Lookup::finish`] found, once fetched, and when their fetch
    /// started.
    fn blobs(self) -> (Blobs, u64) {
        self.blobs.recv().unwrap_or_default()
    }
}

/// A lookup the build no longer waits for fetches no further blob.
impl Drop for Lookup {
    fn drop(&mut self) {
        self.abandoned.store(true, Ordering::Relaxed);
    }
}
