//! larder's store: where cache entries live.
//!
//! A store maps `(namespace, digest)` to bytes through one small trait, [`Store`]:
//! `get`, `put`, `contains`, `delete`. The namespaces ([`Namespace`]) are the
//! content-addressed storage (CAS: a blob under the digest of its own content), the
//! action cache (an [`ActionRecord`] under a result key), direct-mode manifests (under an
//! invocation key) and link records (under the digest of a library file). What a backend
//! can do is declared in its [`Capabilities`].
//!
//! [`DiskStore`] is the local store: one file per entry in a versioned layout, written
//! atomically, CAS blobs compressed with zstd, bounded in size by least-recently-used
//! eviction. Blobs are read for restoring only through [`get_verified_blob`] (checks the
//! content against its digest, removes an entry that fails) or, for an uncompressed
//! blob's file, [`check`] (against the check the store recorded, else the digest).
#![deny(missing_docs)]

mod build;
pub mod check;
mod disk;
mod layout;
mod record;

use larder_digest::Digest;

pub use build::{BUILD_STATE_TTL, BuildState, build_id, join_build};
pub use disk::{AGE_TRIM_EVERY, DiskStore, Evictions, Linked, StoredEntry, Usage, mark_used};
pub use layout::{
    HEADER_MEMO_KEEP, HEADER_MEMO_PRUNE_EVERY, KEPT_REPORTS, LAYOUT_VERSION, Layout, STALE_AFTER,
    build_tag, due, job_prefix,
};
pub use record::{ActionRecord, LinkRecord, OutputFile, RecordSignature};

/// The kinds of entry a store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Namespace {
    /// Content-addressed blobs: the key is the SHA-256 of the (uncompressed) value.
    Cas,
    /// Action records ([`ActionRecord`], JSON) under result keys.
    Action,
    /// Direct-mode manifests (JSON) under invocation keys.
    Manifest,
    /// Link records ([`LinkRecord`], JSON) under the digest of a library file.
    Link,
    /// What each entry's key was made of (`larder_key::InputSet`, JSON) under its result
    /// key, and per unit the list of its entries (`larder_key::inputs::InputIndex`):
    /// what `larder explain` compares a miss with.
    Inputs,
    /// Per project and cargo command, the keys its last build used (manifests, action
    /// records, blobs; `larder_core::prefetch::BuildIndex`, JSON): what the next build
    /// fetches from the remotes before cargo asks.
    Index,
    /// Per project and cargo command, the registry and git units its last build left in
    /// its target directory, file by file (`larder_core::seed::SeedRecord`, JSON): what
    /// the next build plants in an empty target directory. Local only.
    Seed,
}

impl Namespace {
    /// All namespaces.
    pub const ALL: [Namespace; 7] = [
        Namespace::Cas,
        Namespace::Action,
        Namespace::Manifest,
        Namespace::Link,
        Namespace::Inputs,
        Namespace::Index,
        Namespace::Seed,
    ];

    /// The short name used in paths and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Namespace::Cas => "cas",
            Namespace::Action => "ac",
            Namespace::Manifest => "manifest",
            Namespace::Link => "link",
            Namespace::Inputs => "inputs",
            Namespace::Index => "index",
            Namespace::Seed => "seed",
        }
    }
}

/// What a backend can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Entries can be listed (for `du`, `gc`).
    pub list: bool,
    /// Entries can be written.
    pub write: bool,
    /// The largest value the backend accepts in one item, in bytes, if limited (the
    /// backend splits larger values into chunks, or refuses them with
    /// [`StoreError::TooLarge`]).
    pub max_value_size: Option<u64>,
    /// Entries may vanish on their own (a TTL, or the server's own eviction), so a
    /// reader must treat any entry as possibly missing.
    pub expires: bool,
    /// Entries can be deleted (content-addressed servers such as REAPI cannot).
    pub delete: bool,
}

/// A store error.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading or writing the backing storage failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// An entry exists but cannot be decoded or does not match its digest.
    #[error("corrupt {namespace} entry {key}: {detail}")]
    Corrupt {
        /// The entry's namespace (`cas`, `ac`, ...).
        namespace: &'static str,
        /// The entry's key.
        key: Digest,
        /// What is wrong with it.
        detail: String,
    },
    /// A remote backend failed: unreachable, timed out, refused the request.
    #[error("{backend}: {message}")]
    Remote {
        /// The backend, with credentials removed (`redis://cache:6379/0`).
        backend: String,
        /// What failed.
        message: String,
        /// Whether the failure was a timeout.
        timeout: bool,
    },
    /// The backend does not accept a value this large.
    #[error("{backend}: value of {size} bytes is over the backend's limit of {limit} bytes")]
    TooLarge {
        /// The backend.
        backend: String,
        /// The value's size, in bytes.
        size: u64,
        /// The limit, in bytes.
        limit: u64,
    },
    /// An action record was found but not admitted: its signature is missing, invalid or
    /// by a key the reader does not trust, where the tier requires one.
    #[error("action record {key} from {tier} refused: {reason}")]
    Untrusted {
        /// The tier that holds it (`local`, or a remote's name).
        tier: String,
        /// The record's result key.
        key: Digest,
        /// Why (`unsigned`, `signed by team-ci-0, not trusted`, `invalid signature by team-ci-1`).
        reason: String,
    },
    /// The backend is read-only.
    #[error("{0} is read-only")]
    ReadOnly(String),
    /// The backend cannot do this (list its entries, delete one).
    #[error("{backend} cannot {operation}")]
    Unsupported {
        /// The backend.
        backend: String,
        /// What it cannot do (`list its entries`).
        operation: &'static str,
    },
}

/// The message of a [`StoreError::Remote`] whose server refused the connection: nothing
/// listens there ([`StoreError::is_refused`]).
pub const CONNECTION_REFUSED: &str = "connection refused";

impl StoreError {
    /// Whether a remote refused the connection: nothing listens there, and trying again
    /// in this build is pointless.
    pub fn is_refused(&self) -> bool {
        matches!(self, StoreError::Remote { message, .. } if message == CONNECTION_REFUSED)
    }

    /// [`StoreError::Corrupt`] for the entry `key` of `ns`.
    pub fn corrupt(ns: Namespace, key: &Digest, detail: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            namespace: ns.as_str(),
            key: *key,
            detail: detail.into(),
        }
    }

    /// Whether trying again later may succeed (a timeout, an interrupted call), as
    /// opposed to a permanent condition (permissions, corruption).
    pub fn is_temporary(&self) -> bool {
        match self {
            StoreError::Io(e) => matches!(
                e.kind(),
                std::io::ErrorKind::Interrupted
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::WouldBlock
            ),
            StoreError::Remote { timeout, .. } => *timeout,
            StoreError::Corrupt { .. }
            | StoreError::Untrusted { .. }
            | StoreError::TooLarge { .. }
            | StoreError::ReadOnly(_)
            | StoreError::Unsupported { .. } => false,
        }
    }
}

/// A cache backend.
pub trait Store: Send + Sync {
    /// A short name for messages (`disk:/path`, `memcached://host:port`).
    fn name(&self) -> String;

    /// What this backend can do.
    fn capabilities(&self) -> Capabilities;

    /// The value under `key`, or `None` if there is none.
    ///
    /// # Errors
    /// [`StoreError`] if the backend cannot be read or the entry cannot be decoded.
    fn get(&self, ns: Namespace, key: &Digest) -> Result<Option<Vec<u8>>, StoreError>;

    /// Stores `value` under `key`, replacing any previous value.
    ///
    /// # Errors
    /// [`StoreError`] if the backend cannot be written.
    fn put(&self, ns: Namespace, key: &Digest, value: &[u8]) -> Result<(), StoreError>;

    /// Removes the entry under `key`, if any.
    ///
    /// # Errors
    /// [`StoreError`] if the backend cannot be written.
    fn delete(&self, ns: Namespace, key: &Digest) -> Result<(), StoreError>;

    /// Stores the file `path` as the CAS blob `digest` without copying its bytes, where
    /// the backend can ([`DiskStore::link_blob`]; without reading them either while the
    /// file is the version `hashed` describes); `None` where it cannot (the default),
    /// having stored nothing: the caller reads the file and puts it.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] if the file is not the blob; [`StoreError`] if the backend
    /// cannot be written.
    fn link_blob(
        &self,
        digest: &Digest,
        path: &std::path::Path,
        hashed: Option<&check::Hashed>,
    ) -> Result<Option<Linked>, StoreError> {
        let _ = (digest, path, hashed);
        Ok(None)
    }

    /// Stores the content of `file` as the CAS blob `digest` without holding it in
    /// memory, where the backend can ([`DiskStore::copy_blob`]; without reading it again
    /// while the file is the version `hashed` describes); `false` where it cannot (the
    /// default), having stored nothing: the caller reads the file and puts it.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] if the content is not the blob; [`StoreError`] if it
    /// cannot be read or the backend written.
    fn copy_blob(
        &self,
        digest: &Digest,
        file: &mut std::fs::File,
        hashed: Option<&check::Hashed>,
    ) -> Result<bool, StoreError> {
        let _ = (digest, file, hashed);
        Ok(false)
    }

    /// Checks at once that the backend can be reached at all (a TCP connect for
    /// memcached and Redis, whose clients retry a refused connection until the
    /// deadline); the default checks nothing.
    ///
    /// # Errors
    /// [`StoreError::Remote`] with [`CONNECTION_REFUSED`] if nothing listens.
    fn probe(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Whether an entry exists under `key`.
    ///
    /// # Errors
    /// [`StoreError`] if the backend cannot be read.
    fn contains(&self, ns: Namespace, key: &Digest) -> Result<bool, StoreError> {
        Ok(self.get(ns, key)?.is_some())
    }

    /// Whether the CAS has the blob `digest` of `size` bytes: [`Store::contains`] for
    /// backends that address blobs by digest alone; the REAPI needs the size.
    ///
    /// # Errors
    /// [`StoreError`] if the backend cannot be read.
    fn contains_blob(&self, digest: &Digest, size: u64) -> Result<bool, StoreError> {
        let _ = size;
        self.contains(Namespace::Cas, digest)
    }

    /// Every entry of `ns`, with its bytes as stored and its last change (`larder du`,
    /// `larder prune --remote`).
    ///
    /// # Errors
    /// [`StoreError::Unsupported`] where the backend cannot list (the default: memcached,
    /// Redis, HTTP caches, REAPI), else [`StoreError`] if it cannot be read.
    fn list(&self, ns: Namespace) -> Result<Vec<StoredEntry>, StoreError> {
        let _ = ns;
        Err(StoreError::Unsupported {
            backend: self.name(),
            operation: "list its entries",
        })
    }

    /// The value under `key`, without marking it used (the local store's recency); the
    /// default is [`Store::get`].
    ///
    /// # Errors
    /// As [`Store::get`].
    fn peek(&self, ns: Namespace, key: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(ns, key)
    }

    /// Replaces the value under `key` with `f(current value)`. Tiered stores apply `f`
    /// to each tier's own value, so entries that other machines added to a shared
    /// manifest are kept. Not atomic: two writers may race, and one update may be lost
    /// (a later miss stores it again).
    ///
    /// # Errors
    /// [`StoreError`] if the backend cannot be written.
    fn update(
        &self,
        ns: Namespace,
        key: &Digest,
        f: &dyn Fn(Option<Vec<u8>>) -> Vec<u8>,
    ) -> Result<(), StoreError> {
        let current = match self.get(ns, key) {
            Ok(v) => v,
            Err(StoreError::Corrupt { .. }) => None,
            Err(e) => return Err(e),
        };
        self.put(ns, key, &f(current))
    }

    /// The CAS blob with digest `digest`, whose size is `size` bytes. Backends that
    /// address blobs by digest and size (REAPI) need the size; others ignore it. The
    /// content is not checked here: use [`get_verified_blob`].
    ///
    /// # Errors
    /// [`StoreError`] if the backend cannot be read.
    fn get_blob(&self, digest: &Digest, size: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let _ = size;
        self.get(Namespace::Cas, digest)
    }

    /// The blob with digest `digest` (of `size` bytes), checked against its digest. A
    /// blob that cannot be decoded or whose content does not hash to `digest` is
    /// deleted and reported as [`StoreError::Corrupt`]; it is never returned. Stores
    /// that check content on their own way in (tiers checking a remote's copy before
    /// keeping it) override this so that no blob is hashed twice.
    ///
    /// # Errors
    /// [`StoreError`] from the backend, or `Corrupt`.
    fn get_verified_blob(&self, digest: &Digest, size: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let value = match self.get_blob(digest, size) {
            Ok(v) => v,
            Err(e @ StoreError::Corrupt { .. }) => {
                let _ = self.delete(Namespace::Cas, digest);
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let Some(value) = value else { return Ok(None) };
        let actual = Digest::of(&value);
        if actual != *digest {
            let _ = self.delete(Namespace::Cas, digest);
            return Err(StoreError::corrupt(
                Namespace::Cas,
                digest,
                format!("content hashes to {actual}"),
            ));
        }
        Ok(Some(value))
    }
}

/// A shared store is a store: every call, provided ones included, goes to the inner
/// store (so its overrides of the provided methods hold).
impl<S: Store + ?Sized> Store for std::sync::Arc<S> {
    fn name(&self) -> String {
        (**self).name()
    }

    fn capabilities(&self) -> Capabilities {
        (**self).capabilities()
    }

    fn get(&self, ns: Namespace, key: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).get(ns, key)
    }

    fn put(&self, ns: Namespace, key: &Digest, value: &[u8]) -> Result<(), StoreError> {
        (**self).put(ns, key, value)
    }

    fn delete(&self, ns: Namespace, key: &Digest) -> Result<(), StoreError> {
        (**self).delete(ns, key)
    }

    fn contains(&self, ns: Namespace, key: &Digest) -> Result<bool, StoreError> {
        (**self).contains(ns, key)
    }

    fn contains_blob(&self, digest: &Digest, size: u64) -> Result<bool, StoreError> {
        (**self).contains_blob(digest, size)
    }

    fn probe(&self) -> Result<(), StoreError> {
        (**self).probe()
    }

    fn list(&self, ns: Namespace) -> Result<Vec<StoredEntry>, StoreError> {
        (**self).list(ns)
    }

    fn peek(&self, ns: Namespace, key: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).peek(ns, key)
    }

    fn update(
        &self,
        ns: Namespace,
        key: &Digest,
        f: &dyn Fn(Option<Vec<u8>>) -> Vec<u8>,
    ) -> Result<(), StoreError> {
        (**self).update(ns, key, f)
    }

    fn get_blob(&self, digest: &Digest, size: u64) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).get_blob(digest, size)
    }

    fn get_verified_blob(&self, digest: &Digest, size: u64) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).get_verified_blob(digest, size)
    }
}

/// Reads the blob with digest `digest` and checks its content:
/// [`Store::get_verified_blob`]. The only way blobs are read for restoring.
///
/// # Errors
/// [`StoreError`] from the backend, or `Corrupt`.
pub fn get_verified_blob(
    store: &dyn Store,
    digest: &Digest,
    size: u64,
) -> Result<Option<Vec<u8>>, StoreError> {
    store.get_verified_blob(digest, size)
}
