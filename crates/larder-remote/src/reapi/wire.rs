//! The wire details of the REAPI backend: resource names, upload ids, and how a gRPC
//! status becomes a [`StoreError`] or a retry.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use larder_digest::Digest;
use larder_store::StoreError;
use tonic::{Code, Status};

/// The digest of the empty blob.
pub(super) fn empty_digest() -> Digest {
    static EMPTY: OnceLock<Digest> = OnceLock::new();
    *EMPTY.get_or_init(|| Digest::of(b""))
}

/// `{instance}/blobs/{hash}/{size}`, without the leading slash when the instance is
/// empty: the ByteStream resource a blob is read from.
pub(super) fn read_resource(instance: &str, digest: &Digest, size: u64) -> String {
    with_instance(instance, format!("blobs/{}/{size}", digest.to_hex()))
}

/// `{instance}/uploads/{uuid}/blobs/{hash}/{size}`: the ByteStream resource a blob is
/// written to.
pub(super) fn upload_resource(instance: &str, uuid: &str, digest: &Digest, size: u64) -> String {
    with_instance(
        instance,
        format!("uploads/{uuid}/blobs/{}/{size}", digest.to_hex()),
    )
}

pub(super) fn with_instance(instance: &str, rest: String) -> String {
    if instance.is_empty() {
        rest
    } else {
        format!("{instance}/{rest}")
    }
}

/// A fresh upload id in UUID form (version 4 layout), unique in this process and, by
/// the time and process id it contains, across clients.
pub(super) fn upload_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let pid = u64::from(std::process::id());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        (nanos >> 32) as u32,
        (nanos >> 16) as u16,
        (nanos as u16) & 0x0fff,
        0x8000 | ((n as u16) & 0x3fff),
        ((pid << 24) | ((n >> 14) & 0xff_ffff)) & 0xffff_ffff_ffff,
    )
}

/// How an operation failed: a call's gRPC status (which [`ReapiStore::run`] may retry
/// and then turns into a [`StoreError`]), or a final error.
#[derive(Debug)]
pub(super) enum Fail {
    /// The call `call` answered `status`.
    Status {
        /// The RPC, for the message.
        call: &'static str,
        /// What the server (or transport) said.
        status: Status,
    },
    /// A final error.
    Store(StoreError),
}

impl Fail {
    pub(super) fn status(call: &'static str, status: Status) -> Fail {
        Fail::Status { call, status }
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Fail {
        Fail::Store(e)
    }
}

/// The pause before trying again an operation that failed with `status` on its attempt
/// number `attempt` (from 0), or `None` to give up. `RESOURCE_EXHAUSTED` is a busy
/// server (BuildGrid limits concurrent calls): three more tries, 50 ms, 200 ms and
/// 800 ms later. `UNAVAILABLE` is often a connection the server closed while it was
/// idle: two more tries, quickly; but not when connecting itself failed (the channel
/// has just tried, and a server that is down should cost one attempt).
pub(super) fn retry_pause(status: &Status, attempt: u32) -> Option<Duration> {
    match status.code() {
        Code::ResourceExhausted if attempt < 3 => Some(Duration::from_millis(50 << (2 * attempt))),
        Code::Unavailable if attempt < 2 && !connect_failed(status) => {
            Some(Duration::from_millis(10 + 90 * u64::from(attempt)))
        }
        _ => None,
    }
}

/// Whether `status` comes from failing to connect to the server.
pub(super) fn connect_failed(status: &Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        if e.is::<tonic::ConnectError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// The error for a failed call: backend, call, status code and the server's message.
/// A transport failure's root cause is appended (`tcp connect error: Connection
/// refused`).
pub(super) fn status_error(name: &str, call: &str, s: &Status) -> StoreError {
    let mut message = format!("{call}: {:?}: {}", s.code(), s.message());
    let mut root = None;
    let mut source = std::error::Error::source(s);
    while let Some(e) = source {
        root = Some(e);
        source = e.source();
    }
    if let Some(root) = root {
        let text = root.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
    }
    StoreError::Remote {
        backend: name.to_string(),
        message,
        timeout: s.code() == Code::DeadlineExceeded,
    }
}
