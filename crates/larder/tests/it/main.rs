//! larder's integration tests, as one test binary: each module builds real projects
//! with the real cargo and rustc through the `larder` binary, using [`support`]'s
//! project builder, per-test stores and report reader.
// Tests read their own variables (LARDER_TEST_*) and the test harness's.
#![allow(clippy::disallowed_methods)]

mod buildrun;
mod cache;
mod cc;
mod direct;
mod docker;
mod explain;
mod failures;
mod fsck;
mod key_rows;
mod key_tables;
mod manage;
mod prefetch;
mod remote;
mod seed;
mod signing;
mod snapshots;
mod store;
mod support;
mod trace;
mod transfer;
mod verify;
