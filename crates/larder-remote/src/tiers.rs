//! The tier chain (stub; being written).

/// Counters of one remote (stub).
#[derive(Debug, Default, Clone)]
pub struct RemoteCounters;

/// The tier chain (stub).
pub struct Tiers;
