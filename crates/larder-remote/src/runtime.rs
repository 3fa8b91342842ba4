//! The async runtime behind the synchronous [`larder_store::Store`] calls of remote
//! backends: one current-thread tokio runtime per process, and a deadline on every call.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use larder_store::StoreError;

static RUNTIME: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();

/// The process's runtime, created on first use.
pub(crate) fn runtime() -> Result<&'static tokio::runtime::Runtime, StoreError> {
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()
        })
        .as_ref()
        .ok_or_else(|| StoreError::Remote {
            backend: "larder".into(),
            message: "cannot start the async runtime".into(),
            timeout: false,
        })
}

/// Runs `fut` to completion within `timeout`. An error of the future becomes
/// [`StoreError::Remote`] naming `backend`; running out of time is a remote error with
/// `timeout: true`.
pub(crate) fn block_on<T, E: std::fmt::Display>(
    backend: &str,
    timeout: Duration,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, StoreError> {
    let rt = runtime()?;
    match rt.block_on(async { tokio::time::timeout(timeout, fut).await }) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(StoreError::Remote {
            backend: backend.to_string(),
            message: e.to_string(),
            timeout: false,
        }),
        Err(_) => Err(StoreError::Remote {
            backend: backend.to_string(),
            message: format!("no answer within {:.1} s", timeout.as_secs_f64()),
            timeout: true,
        }),
    }
}

/// The deadline for moving `bytes` bytes: the base timeout plus one second per 4 MiB, so
/// a large blob on a slow link is not cut off by the deadline meant for a lookup.
pub(crate) fn deadline_for(base: Duration, bytes: u64) -> Duration {
    base + Duration::from_secs(bytes / (4 << 20))
}
