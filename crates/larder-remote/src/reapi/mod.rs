//! The Remote Execution API (REAPI) v2 over gRPC: `grpc(s)://host:port[/instance]`.
//!
//! Any REAPI cache serves as a larder remote (bazel-remote, BuildGrid, Buildbarn,
//! NativeLink, ...). The URL path is the instance name (empty allowed); `grpcs` uses TLS
//! with the system's root certificates. A user and password in the URL are sent as
//! HTTP basic authentication (`authorization: Basic ...` metadata), as Bazel does.
//!
//! The mapping (see [`crate::bazel`]):
//!
//! - CAS blobs are the server's CAS blobs, addressed by SHA-256 and size. Blobs that fit
//!   in a batch (the server's `max_batch_total_size_bytes`, at most 4 MiB, less 1 KiB of
//!   headroom) move with `BatchReadBlobs`/`BatchUpdateBlobs`; larger ones with
//!   `ByteStream.Read`/`Write` in 1 MiB chunks. An upload first asks `FindMissingBlobs`
//!   and skips blobs the server has. The empty blob is never transferred (servers must
//!   treat it as always present).
//! - Records (every other namespace) are `ActionCache` entries under a deterministic
//!   action digest whose `ActionResult.stdout_digest` names the record, uploaded to the
//!   CAS first; reading asks for it inlined (`inline_stdout`) and falls back to the CAS.
//!
//! REAPI addresses blobs by digest *and size*. [`Store::get_blob`] carries the size;
//! `get` and `contains` of a CAS blob do not, so they work only for blobs whose size
//! this store has seen (put or read) recently, and are a [`StoreError::Remote`]
//! explaining the limit otherwise.
//!
//! Server capabilities are asked once, on first use, and cached: the batch limit, and
//! the digest functions (a server without SHA-256 is refused). The channel connects on
//! first use, so opening never blocks on the network.
//!
//! Every operation runs on the process's runtime under one deadline (the remote's
//! timeout plus an allowance for the bytes moved). Within it, an operation the server
//! answers with `RESOURCE_EXHAUSTED` (busy: BuildGrid caps concurrent calls) or
//! `UNAVAILABLE` (other than a failed connect) is tried again after a short pause; all
//! are idempotent.
//!
//! Errors: a gRPC status becomes [`StoreError::Remote`] naming the URL without
//! credentials, the call, the status code and its message (`DEADLINE_EXCEEDED`, or
//! running out of time, is a timeout). `NOT_FOUND` is "absent". A record whose action
//! result is malformed or does not match its bytes is [`StoreError::Corrupt`]; one
//! whose CAS blob the server has evicted is a miss. REAPI cannot delete:
//! `delete: false`, and `delete` does nothing.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use bazel_remote_apis::build::bazel::remote::execution::v2 as re;
use bazel_remote_apis::google::bytestream as bs;
use bs::byte_stream_client::ByteStreamClient;
use larder_digest::Digest;
use larder_store::{Capabilities, Namespace, Store, StoreError};
use re::action_cache_client::ActionCacheClient;
use re::capabilities_client::CapabilitiesClient;
use re::content_addressable_storage_client::ContentAddressableStorageClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Request, Status};

use crate::{RemoteSpec, bazel, runtime};

mod wire;
use wire::*;

/// The largest gRPC message the clients send or accept (ByteStream chunks and batches
/// stay far below it; a server answering with more is still understood).
const MAX_MESSAGE: usize = 64 << 20;
/// The batch limit when the server names none, and the most this client sends in one
/// batch whatever the server says (4 MiB is gRPC's common default message limit).
const DEFAULT_BATCH: u64 = 4 << 20;
/// Room for the request's other fields next to a blob in a batch.
const BATCH_HEADROOM: u64 = 1 << 10;
/// The size of one `ByteStream.Write` chunk.
const CHUNK: usize = 1 << 20;
/// How many blob sizes [`ReapiStore`] remembers for `get`/`contains` of CAS blobs.
const SIZE_MEMO: usize = 4096;

/// A REAPI server's CAS and action cache.
pub(crate) struct ReapiStore {
    /// The URL without credentials, for messages.
    name: String,
    /// The REAPI instance name.
    instance: String,
    /// The connection, made on first use; cheap to clone.
    channel: Channel,
    /// `Basic ...` authorization metadata, if the URL has credentials.
    auth: Option<MetadataValue<Ascii>>,
    /// Deadline of one call before the allowance for bytes moved.
    timeout: Duration,
    /// The server's limits, asked once.
    limits: OnceLock<Limits>,
    /// Sizes of CAS blobs recently put or read, for the size-less `get`/`contains`.
    sizes: Mutex<HashMap<Digest, u64>>,
}

impl fmt::Debug for ReapiStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReapiStore")
            .field("name", &self.name)
            .field("instance", &self.instance)
            .field("auth", &self.auth.as_ref().map(|_| "***"))
            .field("timeout", &self.timeout)
            .field("limits", &self.limits.get())
            .finish_non_exhaustive()
    }
}

/// What the server's capabilities allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Limits {
    /// The most bytes sent or asked for in one batch request.
    batch: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            batch: DEFAULT_BATCH,
        }
    }
}

impl Limits {
    /// Whether a blob of `size` bytes moves in a batch request (else by ByteStream).
    fn fits_batch(self, size: u64) -> bool {
        size.saturating_add(BATCH_HEADROOM) <= self.batch
    }
}

/// The limits the server announces.
///
/// # Errors
/// A message if the server does not offer SHA-256 digests.
fn limits_from(caps: &re::ServerCapabilities) -> Result<Limits, String> {
    let Some(cache) = &caps.cache_capabilities else {
        return Ok(Limits::default());
    };
    let sha256 = re::digest_function::Value::Sha256 as i32;
    if !cache.digest_functions.is_empty() && !cache.digest_functions.contains(&sha256) {
        let offered: Vec<String> = cache
            .digest_functions
            .iter()
            .map(|f| match re::digest_function::Value::try_from(*f) {
                Ok(v) => v.as_str_name().to_string(),
                Err(_) => f.to_string(),
            })
            .collect();
        return Err(format!(
            "the server does not offer SHA-256 digests (it offers {})",
            offered.join(", ")
        ));
    }
    let batch = match u64::try_from(cache.max_batch_total_size_bytes) {
        Ok(n) if n > 0 => n.min(DEFAULT_BATCH),
        _ => DEFAULT_BATCH,
    };
    Ok(Limits { batch })
}

impl ReapiStore {
    /// Configures the backend for `spec`. No connection is made until the first call.
    ///
    /// # Errors
    /// [`StoreError::Remote`] if the URL cannot be made into a gRPC endpoint or TLS
    /// cannot be set up.
    pub(crate) fn open(spec: &RemoteSpec) -> Result<ReapiStore, StoreError> {
        let name = spec.name();
        let err = |message: String| spec.config_error(message);
        let url = spec.url();
        let tls = url.scheme() == "grpcs";
        let host = url.host_str().unwrap_or_default();
        let port = url.port().ok_or_else(|| err("no port".into()))?;
        let scheme = if tls { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{host}:{port}"))
            .map_err(|e| err(format!("not a gRPC endpoint: {e}")))?
            .connect_timeout(spec.timeout);
        if tls {
            endpoint = endpoint
                .tls_config(ClientTlsConfig::new().with_native_roots())
                .map_err(|e| err(format!("cannot set up TLS: {e}")))?;
        }
        let auth = if let Some((user, password)) = spec.credentials() {
            use base64::Engine as _;
            let pair = format!("{user}:{}", password.unwrap_or_default());
            let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
            let mut value: MetadataValue<Ascii> = format!("Basic {encoded}")
                .parse()
                .map_err(|_| err("credentials cannot be sent as a header".into()))?;
            value.set_sensitive(true);
            Some(value)
        } else {
            None
        };
        // The channel's worker task lives on the process's runtime.
        let channel = {
            let _guard = runtime::runtime()?.enter();
            endpoint.connect_lazy()
        };
        Ok(ReapiStore {
            name,
            instance: spec.path_prefix(),
            channel,
            auth,
            timeout: spec.timeout,
            limits: OnceLock::new(),
            sizes: Mutex::new(HashMap::new()),
        })
    }

    /// `message` as a request, with the credentials attached.
    fn request<T>(&self, message: T) -> Request<T> {
        let mut req = Request::new(message);
        if let Some(auth) = &self.auth {
            req.metadata_mut().insert("authorization", auth.clone());
        }
        req
    }

    /// A CAS client on the shared channel, with the raised message limits.
    fn cas(&self) -> ContentAddressableStorageClient<Channel> {
        ContentAddressableStorageClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }

    /// An action cache client on the shared channel.
    fn action_cache(&self) -> ActionCacheClient<Channel> {
        ActionCacheClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }

    /// A ByteStream client on the shared channel.
    fn byte_stream(&self) -> ByteStreamClient<Channel> {
        ByteStreamClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }

    /// Runs the operation `op` on the runtime with the deadline for moving `bytes`
    /// bytes, trying it again after a pause while the server answers that it is busy
    /// or unavailable ([`retry_pause`]) and time remains. Every operation is
    /// idempotent: blobs are content-addressed, and an action result replaces itself.
    fn run<T, F>(&self, bytes: u64, op: impl Fn() -> F) -> Result<T, StoreError>
    where
        F: Future<Output = Result<T, Fail>>,
    {
        let deadline = runtime::deadline_for(self.timeout, bytes);
        runtime::block_on(&self.name, deadline, async {
            let mut attempt = 0;
            loop {
                let (call, status) = match op().await {
                    Ok(v) => return Ok::<_, Infallible>(Ok(v)),
                    Err(Fail::Store(e)) => return Ok(Err(e)),
                    Err(Fail::Status { call, status }) => (call, status),
                };
                match retry_pause(&status, attempt) {
                    Some(pause) => {
                        attempt += 1;
                        tokio::time::sleep(pause).await;
                    }
                    None => return Ok(Err(status_error(&self.name, call, &status))),
                }
            }
        })?
    }

    /// A [`StoreError::Remote`] of this backend that is not a timeout.
    fn remote(&self, message: String) -> StoreError {
        StoreError::Remote {
            backend: self.name.clone(),
            message,
            timeout: false,
        }
    }

    /// The server's limits, asked on first use. A server without the Capabilities
    /// service gets the defaults.
    async fn limits(&self) -> Result<Limits, Fail> {
        if let Some(l) = self.limits.get() {
            return Ok(*l);
        }
        let req = self.request(re::GetCapabilitiesRequest {
            instance_name: self.instance.clone(),
        });
        let limits = match CapabilitiesClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .get_capabilities(req)
            .await
        {
            Ok(caps) => limits_from(caps.get_ref()).map_err(|m| self.remote(m))?,
            Err(s) if s.code() == Code::Unimplemented => Limits::default(),
            Err(s) => return Err(Fail::status("GetCapabilities", s)),
        };
        let _ = self.limits.set(limits);
        Ok(limits)
    }

    /// Remembers that the blob `digest` is `size` bytes, for `get`/`contains`.
    fn remember_size(&self, digest: &Digest, size: u64) {
        if let Ok(mut sizes) = self.sizes.lock() {
            if sizes.len() >= SIZE_MEMO {
                sizes.clear();
            }
            sizes.insert(*digest, size);
        }
    }

    /// The size of `digest` if this store has seen it, else an error saying the REAPI
    /// needs it.
    fn known_size(&self, digest: &Digest, call: &str) -> Result<u64, StoreError> {
        self.sizes
            .lock()
            .ok()
            .and_then(|s| s.get(digest).copied())
            .ok_or_else(|| {
                self.remote(format!(
                    "{call} of CAS blob {digest}: the REAPI addresses blobs by digest and \
                     size, and the size is not known here (use get_blob)"
                ))
            })
    }

    /// Which of `digests` the server lacks.
    async fn find_missing(&self, digests: Vec<re::Digest>) -> Result<Vec<re::Digest>, Fail> {
        let req = self.request(re::FindMissingBlobsRequest {
            instance_name: self.instance.clone(),
            blob_digests: digests,
            digest_function: 0,
        });
        let resp = self
            .cas()
            .find_missing_blobs(req)
            .await
            .map_err(|s| Fail::status("FindMissingBlobs", s))?;
        Ok(resp.into_inner().missing_blob_digests)
    }

    /// Reads the CAS blob `digest` of `size` bytes; `None` if the server lacks it.
    async fn read_blob(&self, digest: &Digest, size: u64) -> Result<Option<Vec<u8>>, Fail> {
        if size == 0 && *digest == empty_digest() {
            return Ok(Some(Vec::new()));
        }
        let limits = self.limits().await?;
        let rd = bazel::blob_digest(digest, size);
        if limits.fits_batch(size) {
            let req = self.request(re::BatchReadBlobsRequest {
                instance_name: self.instance.clone(),
                digests: vec![rd],
                acceptable_compressors: Vec::new(),
                digest_function: 0,
            });
            let resp = self
                .cas()
                .batch_read_blobs(req)
                .await
                .map_err(|s| Fail::status("BatchReadBlobs", s))?;
            let Some(r) = resp.into_inner().responses.into_iter().next() else {
                return Err(Fail::Store(
                    self.remote(format!("BatchReadBlobs of {digest}: empty response")),
                ));
            };
            let code = r.status.as_ref().map_or(0, |s| s.code);
            if code == Code::NotFound as i32 {
                return Ok(None);
            }
            if code != Code::Ok as i32 {
                let message = r.status.map(|s| s.message).unwrap_or_default();
                return Err(Fail::status(
                    "BatchReadBlobs",
                    Status::new(Code::from_i32(code), message),
                ));
            }
            if r.compressor != 0 {
                return Err(Fail::Store(self.remote(format!(
                    "BatchReadBlobs of {digest}: the server sent compressed data unasked"
                ))));
            }
            return Ok(Some(r.data));
        }
        let req = self.request(bs::ReadRequest {
            resource_name: read_resource(&self.instance, digest, size),
            read_offset: 0,
            read_limit: 0,
        });
        let mut stream = match self.byte_stream().read(req).await {
            Ok(s) => s.into_inner(),
            Err(s) if s.code() == Code::NotFound => return Ok(None),
            Err(s) => return Err(Fail::status("ByteStream.Read", s)),
        };
        let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        loop {
            match stream.message().await {
                Ok(Some(chunk)) => data.extend_from_slice(&chunk.data),
                Ok(None) => break,
                Err(s) if s.code() == Code::NotFound => return Ok(None),
                Err(s) => return Err(Fail::status("ByteStream.Read", s)),
            }
        }
        Ok(Some(data))
    }

    /// Uploads `value` as the CAS blob `digest`, unless the server has it already.
    async fn write_blob(&self, digest: &Digest, value: &[u8]) -> Result<(), Fail> {
        let size = value.len() as u64;
        if value.is_empty() && *digest == empty_digest() {
            return Ok(());
        }
        let rd = bazel::blob_digest(digest, size);
        let missing = self.find_missing(vec![rd.clone()]).await?;
        if !missing.iter().any(|m| m.hash == rd.hash) {
            return Ok(());
        }
        let limits = self.limits().await?;
        if limits.fits_batch(size) {
            let req = self.request(re::BatchUpdateBlobsRequest {
                instance_name: self.instance.clone(),
                requests: vec![re::batch_update_blobs_request::Request {
                    digest: Some(rd),
                    data: value.to_vec(),
                    compressor: 0,
                }],
                digest_function: 0,
            });
            let resp = self
                .cas()
                .batch_update_blobs(req)
                .await
                .map_err(|s| Fail::status("BatchUpdateBlobs", s))?;
            let Some(r) = resp.into_inner().responses.into_iter().next() else {
                return Err(Fail::Store(
                    self.remote(format!("BatchUpdateBlobs of {digest}: empty response")),
                ));
            };
            return match r.status {
                Some(s) if s.code != Code::Ok as i32 => Err(Fail::status(
                    "BatchUpdateBlobs",
                    Status::new(Code::from_i32(s.code), s.message),
                )),
                _ => Ok(()),
            };
        }
        let resource = upload_resource(&self.instance, &upload_id(), digest, size);
        let mut chunks = Vec::with_capacity(value.len().div_ceil(CHUNK));
        let mut offset = 0u64;
        for chunk in value.chunks(CHUNK) {
            let end = offset + chunk.len() as u64;
            chunks.push(bs::WriteRequest {
                // Allowed on every request, as long as it is the same.
                resource_name: resource.clone(),
                write_offset: i64::try_from(offset).unwrap_or(i64::MAX),
                finish_write: end == size,
                data: chunk.to_vec(),
            });
            offset = end;
        }
        let req = self.request(tonic::codegen::tokio_stream::iter(chunks));
        let resp = self
            .byte_stream()
            .write(req)
            .await
            .map_err(|s| Fail::status("ByteStream.Write", s))?;
        let committed = resp.into_inner().committed_size;
        // -1: another client completed the same upload meanwhile.
        if committed != i64::try_from(size).unwrap_or(i64::MAX) && committed != -1 {
            return Err(Fail::Store(self.remote(format!(
                "ByteStream.Write of {digest}: the server committed {committed} of {size} bytes"
            ))));
        }
        Ok(())
    }

    /// The action result of the record `key` in `ns`; `None` if there is none.
    async fn action_result(
        &self,
        ns: Namespace,
        key: &Digest,
        inline: bool,
    ) -> Result<Option<re::ActionResult>, Fail> {
        let req = self.request(re::GetActionResultRequest {
            instance_name: self.instance.clone(),
            action_digest: Some(bazel::action_digest(ns, key)),
            inline_stdout: inline,
            inline_stderr: false,
            inline_output_files: Vec::new(),
            digest_function: 0,
        });
        match self.action_cache().get_action_result(req).await {
            Ok(r) => Ok(Some(r.into_inner())),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(Fail::status("GetActionResult", s)),
        }
    }

    /// The record `key` of `ns`, checked against its entry.
    async fn get_record(&self, ns: Namespace, key: &Digest) -> Result<Option<Vec<u8>>, Fail> {
        let Some(result) = self.action_result(ns, key, true).await? else {
            return Ok(None);
        };
        let (bytes, digest, size) = match bazel::record_source(ns, key, result)? {
            bazel::RecordSource::Inline {
                bytes,
                digest,
                size,
            } => (bytes, digest, size),
            bazel::RecordSource::Cas { digest, size } => match self.read_blob(&digest, size).await?
            {
                Some(bytes) => (bytes, digest, size),
                // The server evicted the record but kept the entry: a miss.
                None => return Ok(None),
            },
        };
        bazel::check_record(ns, key, &bytes, &digest, size)?;
        Ok(Some(bytes))
    }

    /// Stores the record `value` under `key` in `ns`: the bytes to the CAS, then the
    /// action result naming them.
    async fn put_record(&self, ns: Namespace, key: &Digest, value: &[u8]) -> Result<(), Fail> {
        let record = Digest::of(value);
        let size = value.len() as u64;
        self.write_blob(&record, value).await?;
        let req = self.request(re::UpdateActionResultRequest {
            instance_name: self.instance.clone(),
            action_digest: Some(bazel::action_digest(ns, key)),
            action_result: Some(bazel::action_result(&record, size)),
            results_cache_policy: None,
            digest_function: 0,
        });
        self.action_cache()
            .update_action_result(req)
            .await
            .map_err(|s| Fail::status("UpdateActionResult", s))?;
        Ok(())
    }
}

impl Store for ReapiStore {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn capabilities(&self) -> Capabilities {
        // No deletes: the protocol has none.
        crate::server_capabilities(false, None)
    }

    /// A record, or a CAS blob whose size this store has seen (the REAPI needs the size:
    /// callers read blobs with [`Store::get_blob`]).
    fn get(&self, ns: Namespace, key: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        if ns == Namespace::Cas {
            let size = self.known_size(key, "get")?;
            return self.get_blob(key, size);
        }
        self.run(0, || self.get_record(ns, key))
    }

    fn put(&self, ns: Namespace, key: &Digest, value: &[u8]) -> Result<(), StoreError> {
        let size = value.len() as u64;
        if ns == Namespace::Cas {
            self.run(size, || self.write_blob(key, value))?;
            self.remember_size(key, size);
            return Ok(());
        }
        self.run(size, || self.put_record(ns, key, value))
    }

    /// Does nothing: the REAPI has no deletion; entries leave by the server's own
    /// eviction. `capabilities()` says `delete: false`; a caller removing a corrupt
    /// blob gets `Ok`, and verification catches the blob on every read.
    fn delete(&self, _ns: Namespace, _key: &Digest) -> Result<(), StoreError> {
        Ok(())
    }

    /// For records, whether the action cache has the entry; for CAS blobs, whether
    /// `FindMissingBlobs` finds the blob, if this store has seen its size (else an
    /// error, as for `get`).
    fn contains(&self, ns: Namespace, key: &Digest) -> Result<bool, StoreError> {
        if ns == Namespace::Cas {
            let size = self.known_size(key, "contains")?;
            if size == 0 && *key == empty_digest() {
                return Ok(true);
            }
            let rd = bazel::blob_digest(key, size);
            let missing = self.run(0, || self.find_missing(vec![rd.clone()]))?;
            return Ok(!missing.iter().any(|m| m.hash == rd.hash));
        }
        Ok(self
            .run(0, || self.action_result(ns, key, false))?
            .is_some())
    }

    /// `FindMissingBlobs` with the size given.
    fn contains_blob(&self, digest: &Digest, size: u64) -> Result<bool, StoreError> {
        self.remember_size(digest, size);
        self.contains(Namespace::Cas, digest)
    }

    fn get_blob(&self, digest: &Digest, size: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let r = self.run(size, || self.read_blob(digest, size))?;
        if r.is_some() {
            self.remember_size(digest, size);
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(url: &str) -> RemoteSpec {
        RemoteSpec::parse(url, false, Duration::from_secs(1)).unwrap()
    }

    #[test]
    fn resource_names() {
        let d = Digest::of(b"blob");
        let h = d.to_hex();
        assert_eq!(read_resource("", &d, 7), format!("blobs/{h}/7"));
        assert_eq!(read_resource("main", &d, 7), format!("main/blobs/{h}/7"));
        assert_eq!(
            upload_resource("a/b", "u-1", &d, 9),
            format!("a/b/uploads/u-1/blobs/{h}/9")
        );
        assert_eq!(
            upload_resource("", "u-1", &d, 9),
            format!("uploads/u-1/blobs/{h}/9")
        );
    }

    #[test]
    fn upload_ids_are_unique_uuids() {
        let a = upload_id();
        let b = upload_id();
        assert_ne!(a, b);
        let parts: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(parts, [8, 4, 4, 4, 12], "{a}");
        assert!(a.chars().all(|c| c == '-' || c.is_ascii_hexdigit()), "{a}");
    }

    #[test]
    fn batch_limits() {
        let mut caps = re::ServerCapabilities::default();
        assert_eq!(limits_from(&caps).unwrap(), Limits::default());
        let mut cache = re::CacheCapabilities {
            digest_functions: vec![re::digest_function::Value::Sha256 as i32],
            max_batch_total_size_bytes: 0,
            ..Default::default()
        };
        caps.cache_capabilities = Some(cache.clone());
        assert_eq!(limits_from(&caps).unwrap().batch, DEFAULT_BATCH);
        // BuildGrid's limit.
        cache.max_batch_total_size_bytes = (4 << 20) - 1024;
        caps.cache_capabilities = Some(cache.clone());
        let l = limits_from(&caps).unwrap();
        assert!(l.fits_batch((4 << 20) - 2048));
        assert!(!l.fits_batch((4 << 20) - 1024));
        // Never more than 4 MiB in one request, whatever the server allows.
        cache.max_batch_total_size_bytes = 100 << 20;
        caps.cache_capabilities = Some(cache.clone());
        assert_eq!(limits_from(&caps).unwrap().batch, DEFAULT_BATCH);
        cache.digest_functions = vec![re::digest_function::Value::Blake3 as i32];
        caps.cache_capabilities = Some(cache);
        let e = limits_from(&caps).unwrap_err();
        assert!(e.contains("SHA-256") && e.contains("BLAKE3"), "{e}");
    }

    #[test]
    fn errors_name_the_call_and_code_but_no_credentials() {
        let s = ReapiStore::open(&spec("grpcs://ci:hunter2@cache:443/main")).unwrap();
        assert_eq!(s.instance, "main");
        assert!(s.auth.is_some());
        let e = status_error(&s.name, "GetActionResult", &Status::permission_denied("no"));
        let text = e.to_string();
        assert!(text.contains("GetActionResult") && text.contains("PermissionDenied"));
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!e.is_temporary());
        assert!(status_error(&s.name, "x", &Status::deadline_exceeded("slow")).is_temporary());
        assert!(!format!("{s:?}").contains("hunter2"), "{s:?}");
        assert!(!format!("{s:?}").contains("Basic"), "{s:?}");
    }

    #[test]
    fn cas_without_size_is_explained() {
        let s = ReapiStore::open(&spec("grpc://127.0.0.1:9")).unwrap();
        assert_eq!(s.instance, "");
        let d = Digest::of(b"never seen");
        let e = s.contains(Namespace::Cas, &d).unwrap_err().to_string();
        assert!(e.contains("size"), "{e}");
        assert!(s.get(Namespace::Cas, &d).is_err());
    }

    #[test]
    fn dead_server_is_a_remote_error() {
        let s = ReapiStore::open(&spec("grpc://u:hunter2@127.0.0.1:9")).unwrap();
        match s.get(Namespace::Action, &Digest::of(b"k")) {
            Err(e @ StoreError::Remote { .. }) => {
                assert!(!e.to_string().contains("hunter2"), "{e}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn busy_and_unavailable_servers_are_retried_briefly() {
        let pauses = |code| {
            let status = Status::new(code, "x");
            (0..)
                .map_while(|a| retry_pause(&status, a))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            pauses(Code::ResourceExhausted),
            [50, 200, 800].map(Duration::from_millis)
        );
        assert_eq!(pauses(Code::Unavailable).len(), 2);
        assert!(pauses(Code::NotFound).is_empty());
        assert!(pauses(Code::InvalidArgument).is_empty());
        assert!(pauses(Code::DeadlineExceeded).is_empty());
        // A server that refuses connections is not asked again.
        let mut refused = Status::unavailable("tcp connect error");
        refused.set_source(std::sync::Arc::new(tonic::ConnectError(Box::new(
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        ))));
        assert_eq!(retry_pause(&refused, 0), None);
    }
}
