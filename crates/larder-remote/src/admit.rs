//! [`Admit`]: which action records a tier may serve, decided before a record is used or
//! copied into a faster tier.
//!
//! The tier chain asks its [`Admit`] about every action record it reads, with whether
//! that tier requires a trusted signature ([`RemoteSpec::require_signatures`] for a
//! remote, [`Tiers::with_admission`]'s flag for the local store). A refused record is
//! counted (`refused`, per tier, in `larder stats`), warned about once per build and
//! tier, never backfilled, and the next tier is asked; if no tier has an admitted
//! record, the read is [`larder_store::StoreError::Untrusted`] with the first refusal's
//! reason. larder-core implements it with ed25519 signatures (`larder_core::trust`).
//!
//! [`RemoteSpec::require_signatures`]: crate::RemoteSpec::require_signatures
//! [`Tiers::with_admission`]: crate::Tiers::with_admission

use larder_digest::Digest;

/// Decides whether an action record may be used.
pub trait Admit: Send + Sync {
    /// `Ok` to use `record` (the bytes stored under `key`), else why not (`unsigned`,
    /// `signed by team-ci-0, not trusted`). `required`: whether the tier it came from
    /// requires a trusted signature.
    ///
    /// # Errors
    /// The reason the record is refused.
    fn admit(&self, required: bool, key: &Digest, record: &[u8]) -> Result<(), String>;
}
