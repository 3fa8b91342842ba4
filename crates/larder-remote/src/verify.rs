//! [`Verified`]: a store layer that checks every blob it reads against its digest.
//!
//! A remote is not trusted to return what was stored under a digest. A blob read
//! through this layer either hashes to its key or is [`StoreError::Corrupt`]; the tier
//! chain then tries the next tier and never writes the bad copy anywhere. (Like
//! nativelink's `VerifyStore`, on reads.)

use larder_digest::Digest;
use larder_store::{Capabilities, Namespace, Store, StoreError};

/// Checks CAS values read from `S` against their digests.
pub struct Verified<S> {
    inner: S,
}

impl<S: Store> Verified<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Verified<S> {
        Verified { inner }
    }
}

/// `value` if it hashes to `digest`; a mismatch is [`StoreError::Corrupt`].
pub(crate) fn verified(
    value: Option<Vec<u8>>,
    digest: &Digest,
) -> Result<Option<Vec<u8>>, StoreError> {
    match value {
        Some(v) if Digest::of(&v) != *digest => Err(StoreError::Corrupt {
            namespace: Namespace::Cas.as_str(),
            key: *digest,
            detail: "remote blob does not match its digest".into(),
        }),
        v => Ok(v),
    }
}

impl<S: Store> Store for Verified<S> {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn get(&self, ns: Namespace, key: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        let value = self.inner.get(ns, key)?;
        match ns {
            Namespace::Cas => verified(value, key),
            _ => Ok(value),
        }
    }

    fn get_blob(&self, digest: &Digest, size: u64) -> Result<Option<Vec<u8>>, StoreError> {
        verified(self.inner.get_blob(digest, size)?, digest)
    }

    /// Verified once, by [`Verified::get_blob`].
    fn get_verified_blob(&self, digest: &Digest, size: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_blob(digest, size)
    }

    fn put(&self, ns: Namespace, key: &Digest, value: &[u8]) -> Result<(), StoreError> {
        self.inner.put(ns, key, value)
    }

    fn delete(&self, ns: Namespace, key: &Digest) -> Result<(), StoreError> {
        self.inner.delete(ns, key)
    }

    fn probe(&self) -> Result<(), StoreError> {
        self.inner.probe()
    }

    fn contains(&self, ns: Namespace, key: &Digest) -> Result<bool, StoreError> {
        self.inner.contains(ns, key)
    }

    fn contains_blob(&self, digest: &Digest, size: u64) -> Result<bool, StoreError> {
        self.inner.contains_blob(digest, size)
    }
}
