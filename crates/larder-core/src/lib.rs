//! larder's core: the rustc wrapper and what surrounds it.
//!
//! [`wrapper::run`] is what cargo runs for each rustc invocation: it computes the key
//! (`larder-key`), looks it up in the store (`larder-store`), restores or compiles and
//! stores. [`runner::run_cargo`] runs a whole cargo build through it and reports;
//! [`stats`] shows totals. [`config`] documents every setting. [`cc`] is the C and C++
//! compiler wrapper for build scripts (`CC="larder cc"`).
#![deny(missing_docs)]

pub mod buildrun;
pub mod cc;
pub mod config;
pub mod exec;
pub mod failure;
pub mod flight;
pub mod hashing;
pub mod identity;
pub mod linkage;
pub mod report;
pub mod runner;
pub mod stats;
pub mod storejob;
pub mod wrapper;

/// Sends `tracing` logs to stderr when `LARDER_LOG` is set (a filter such as `debug`).
pub fn init_logging() {
    if let Some(filter) = std::env::var_os("LARDER_LOG").and_then(|f| f.into_string().ok()) {
        let _ = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .try_init();
    }
}
