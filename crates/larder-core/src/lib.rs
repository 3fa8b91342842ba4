//! larder's core: the wrappers and what surrounds them.
//!
//! [`action::run`] is the one driver of a cached action (key, lookup, restore, single
//! flight, run, collect, store, report); [`rustc`], [`buildrun`] and [`cc`] are its
//! three tools: rustc invocations (what cargo runs through `RUSTC_WRAPPER`), build-script
//! runs (through a shim) and C and C++ compiles of build scripts (`CC="larder cc"`).
//! [`runner::run_cargo`] runs a whole cargo build through them and reports; [`stats`]
//! shows totals. [`config`] documents every setting.
#![deny(missing_docs)]

pub mod action;
pub mod buildrun;
pub mod catalog;
pub mod cc;
pub mod command;
pub mod config;
pub mod docker;
pub mod doctor;
pub mod exec;
pub mod explain;
pub mod flight;
pub mod fsck;
pub mod fsio;
pub mod hashing;
pub mod host;
pub mod human;
pub mod identity;
pub mod init;
pub mod later;
pub mod prefetch;
pub mod progress;
pub mod replay;
pub mod report;
pub mod roots;
pub mod runner;
pub mod rustc;
pub mod seed;
pub mod signing;
pub mod stats;
pub mod summary;
pub mod trace;
pub mod transfer;
pub mod trust;
pub mod verify;

/// The store interface and remote backends, for the command line.
pub use larder_remote::{RemoteSpec, open as open_remote};
pub use larder_store::Store;

/// Sends `tracing` logs to stderr when `LARDER_LOG` is set (a filter such as `debug`).
pub fn init_logging() {
    if let Some(Ok(filter)) = log_filter() {
        let _ = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(filter)
            .try_init();
    }
}

/// The `LARDER_LOG` filter: `None` if unset, the error if it does not parse (`larder
/// cargo` and `larder doctor` say so; a wrapper, whose stderr cargo often hides, logs
/// nothing).
pub fn log_filter() -> Option<Result<tracing_subscriber::EnvFilter, String>> {
    let filter = config::env::var_os("LARDER_LOG")?;
    Some(
        filter
            .to_str()
            .ok_or_else(|| "not UTF-8".to_string())
            .and_then(|f| {
                tracing_subscriber::EnvFilter::try_new(f)
                    .map_err(|e| format!("invalid LARDER_LOG={f}: {e}"))
            }),
    )
}
