//! Key-value and object services: S3 and WebDAV through opendal; memcached through the
//! `memcache` crate ([`crate::memcached`]); Redis through the `redis` crate
//! ([`crate::redis_client`]: opendal's pool adds a round trip to every call). Both on
//! connections kept by [`crate::kept`].
//!
//! memcached is not reached through opendal because its memcached client does not set
//! `TCP_NODELAY` and writes each request in two parts: every call waits for a delayed
//! ACK, measured at 88 ms per lookup on loopback (Redis through opendal: 0.3 ms), which
//! made a warm ripgrep build from memcached 8x slower than from any other remote. The
//! `memcache` crate (binary protocol, `TCP_NODELAY` on) answers in well under 1 ms.
//!
//! Layout: the entry `(namespace, key)` is the object `v1/<namespace>/<key hex>` under
//! the URL's path prefix (`s3://bucket/team/x` puts it at `team/x/v1/cas/ab12..`). A
//! stored value is one tag byte and a body:
//!
//! | tag | body |
//! |---|---|
//! | `0` | the value as is |
//! | `1` | the value as a zstd frame (used when it saves space) |
//! | `2` | a chunk list: the 32-byte SHA-256 digests of the chunks, in order |
//!
//! A tagged value larger than the backend's item limit (memcached's 1 MiB) is split into
//! chunks stored as `v1/chunk/<digest of the chunk>`; the entry then holds the chunk
//! list. Chunks are checked against their digests when read; a missing chunk (evicted)
//! makes the entry missing, a chunk that does not match makes it corrupt.

use std::net::ToSocketAddrs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use larder_digest::Digest;
use larder_store::{Capabilities, Namespace, Store, StoreError, StoredEntry};
use opendal::{ErrorKind, Operator, services};

/// The client behind a [`KvStore`].
enum Backend {
    Opendal(Operator),
    Memcache(MemcachedClient),
    Redis(RedisClient),
}

use crate::memcached::MemcachedClient;
use crate::redis_client::RedisClient;
use crate::runtime::{block_on, deadline_for};
use crate::{Kind, RemoteSpec};

const TAG_RAW: u8 = 0;
const TAG_ZSTD: u8 = 1;
const TAG_CHUNKS: u8 = 2;

/// memcached's default item limit is 1 MiB, key and item header included.
const MEMCACHED_ITEM: usize = (1 << 20) - 4096;

/// A backend reached through an opendal [`Operator`].
pub(crate) struct KvStore {
    backend: Backend,
    /// The key prefix (from the URL path) for memcached; opendal applies its own root.
    prefix: String,
    name: String,
    timeout: Duration,
    /// The largest tagged value stored as one item; larger ones are chunked.
    item_limit: Option<usize>,
    /// The URL's password, removed from any message a client library makes.
    secret: Option<String>,
    /// `host:port` of a server reached over plain TCP (memcached, Redis), probed after a
    /// failed call.
    tcp_addr: Option<String>,
    /// Set once a probe found the server refusing connections: every later call of this
    /// process fails at once instead of waiting for its deadline.
    refused: AtomicBool,
}

/// Whether nothing listens at `addr`: a TCP connect is refused (not merely slow).
fn refuses_connections(addr: &str, timeout: Duration) -> bool {
    let Ok(addrs) = addr.to_socket_addrs() else {
        return false;
    };
    let addrs: Vec<_> = addrs.collect();
    !addrs.is_empty()
        && addrs.iter().all(|a| {
            std::net::TcpStream::connect_timeout(a, timeout)
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused)
        })
}

impl KvStore {
    /// Configures the operator for `spec` (no connection is made yet).
    pub(crate) fn open(spec: &RemoteSpec) -> Result<KvStore, StoreError> {
        // opendal's HTTP services (S3, WebDAV) go through its reqwest transport.
        static TRANSPORT: std::sync::Once = std::sync::Once::new();
        TRANSPORT.call_once(opendal::install_default);
        let url = spec.url();
        let name = spec.name();
        let config_err = |e: opendal::Error| spec.config_error(e);
        let host = url.host_str().unwrap_or_default();
        let host_port = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        let (user, password) = spec.credentials().unwrap_or_default();
        let prefix = spec.path_prefix();
        let root = format!("/{prefix}");
        let tcp_addr = matches!(spec.kind, Kind::Memcached | Kind::Redis).then(|| {
            if url.port().is_some() {
                host_port.clone()
            } else {
                let port = if spec.kind == Kind::Redis {
                    6379
                } else {
                    11211
                };
                format!("{host}:{port}")
            }
        });
        let (op, item_limit) = match spec.kind {
            Kind::Memcached => {
                // Read and write timeouts in the URL apply to each connection as it is
                // made (the builder's would connect to set them).
                let mut target = url::Url::parse(&format!(
                    "memcache://{host_port}?timeout={}&tcp_nodelay=true",
                    spec.timeout.as_secs_f64()
                ))
                .map_err(|e| spec.config_error(e))?;
                if !user.is_empty() {
                    let _ = target.set_username(&user);
                    let _ = target.set_password(password.as_deref());
                }
                // No connection at open: a dead server shows up in calls.
                let client = MemcachedClient::open(target, spec.timeout);
                (Backend::Memcache(client), Some(MEMCACHED_ITEM))
            }
            Kind::Redis => {
                if url.scheme() == "rediss" {
                    crate::redis_client::install_tls_provider();
                }
                let client = RedisClient::open(url.as_str())
                    .map_err(|e| spec.config_error(scrub(&e.to_string(), password.as_deref())))?;
                (Backend::Redis(client), None)
            }
            Kind::S3 => {
                // The usual AWS variables: larder-remote's one read of the environment.
                #[allow(clippy::disallowed_methods)]
                let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
                let mut b = services::S3::default().bucket(host).root(&root);
                if let Some(endpoint) =
                    env("AWS_ENDPOINT_URL_S3").or_else(|| env("AWS_ENDPOINT_URL"))
                {
                    b = b.endpoint(&endpoint);
                }
                let region = env("AWS_REGION")
                    .or_else(|| env("AWS_DEFAULT_REGION"))
                    .unwrap_or_else(|| "us-east-1".into());
                b = b.region(&region);
                (
                    Backend::Opendal(Operator::new(b).map_err(config_err)?),
                    None,
                )
            }
            Kind::WebDav => {
                let scheme = if url.scheme() == "webdavs" {
                    "https"
                } else {
                    "http"
                };
                let mut b = services::Webdav::default()
                    .endpoint(&format!("{scheme}://{host_port}"))
                    .root(&root);
                if !user.is_empty() {
                    b = b.username(&user);
                }
                if let Some(p) = &password {
                    b = b.password(p);
                }
                (
                    Backend::Opendal(Operator::new(b).map_err(config_err)?),
                    None,
                )
            }
            Kind::Http | Kind::Grpc | Kind::Oci | Kind::Dir => {
                return Err(StoreError::Remote {
                    backend: name,
                    message: "not a key-value service".into(),
                    timeout: false,
                });
            }
        };
        Ok(KvStore {
            backend: op,
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            name,
            timeout: spec.timeout,
            item_limit,
            secret: password,
            tcp_addr,
            refused: AtomicBool::new(false),
        })
    }

    /// Runs one call. A client library may retry a refused connection until the deadline
    /// (r2d2, under memcached's client): after a failed call a TCP connect to the server tells
    /// whether anything listens, and if nothing does, every later call of this process
    /// fails at once.
    fn call<T>(&self, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
        if self.refused.load(Ordering::Relaxed) {
            return Err(self.refused_error());
        }
        let result = f();
        if matches!(result, Err(StoreError::Remote { .. }))
            && let Some(addr) = &self.tcp_addr
            && refuses_connections(addr, self.timeout.min(Duration::from_secs(1)))
        {
            self.refused.store(true, Ordering::Relaxed);
        }
        result
    }

    fn refused_error(&self) -> StoreError {
        StoreError::Remote {
            backend: self.name.clone(),
            message: larder_store::CONNECTION_REFUSED.into(),
            timeout: false,
        }
    }

    fn cannot_list(&self) -> StoreError {
        StoreError::Unsupported {
            backend: self.name.clone(),
            operation: "list its entries (only S3, WebDAV and shared directories can)",
        }
    }

    fn path(ns: Namespace, key: &Digest) -> String {
        format!("v1/{}/{}", ns.as_str(), key.to_hex())
    }

    fn chunk_path(d: &Digest) -> String {
        format!("v1/chunk/{}", d.to_hex())
    }

    /// The raw object at `path`, or `None`.
    fn read(&self, path: &str, expect: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.call(|| match &self.backend {
            Backend::Opendal(op) => {
                let (op, p) = (op.clone(), path.to_string());
                block_on(&self.name, deadline_for(self.timeout, expect), async move {
                    match op.read(&p).await {
                        // The bytes the backend read, not a copy of them, when they
                        // are one piece that nothing else holds.
                        Ok(buf) => Ok(Some(Vec::from(buf.to_bytes()))),
                        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
                        Err(e) => Err(e),
                    }
                })
            }
            Backend::Memcache(c) => c
                .call(|m| m.get::<Vec<u8>>(&format!("{}{path}", self.prefix)))
                .map_err(|e| self.memcache_error(e)),
            Backend::Redis(c) => c
                .get(path, deadline_for(self.timeout, expect))
                .map_err(|e| self.redis_error(e)),
        })
    }

    /// The raw objects at `paths`, in order (`None` for each that is missing): memcached
    /// answers them all in one round trip (a chunk list's chunks, 1 MiB each).
    fn read_all(&self, paths: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        match &self.backend {
            Backend::Memcache(c) => {
                let keys: Vec<String> = paths
                    .iter()
                    .map(|p| format!("{}{p}", self.prefix))
                    .collect();
                let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
                let mut found = self.call(|| {
                    c.call(|m| m.gets::<Vec<u8>>(&refs))
                        .map_err(|e| self.memcache_error(e))
                })?;
                Ok(keys.iter().map(|k| found.remove(k)).collect())
            }
            _ => paths
                .iter()
                .map(|p| self.read(p, MEMCACHED_ITEM as u64))
                .collect(),
        }
    }

    fn write(&self, path: &str, data: Vec<u8>) -> Result<(), StoreError> {
        self.call(|| match &self.backend {
            Backend::Opendal(op) => {
                let (op, p) = (op.clone(), path.to_string());
                let deadline = deadline_for(self.timeout, data.len() as u64);
                block_on(&self.name, deadline, async move {
                    op.write(&p, data).await.map(|_| ())
                })
            }
            Backend::Memcache(c) => c
                .call(|m| m.set(&format!("{}{path}", self.prefix), &data[..], 0))
                .map_err(|e| self.memcache_error(e)),
            Backend::Redis(c) => c
                .set(path, &data, deadline_for(self.timeout, data.len() as u64))
                .map_err(|e| self.redis_error(e)),
        })
    }

    fn remove(&self, path: &str) -> Result<(), StoreError> {
        self.call(|| match &self.backend {
            Backend::Opendal(op) => {
                let (op, p) = (op.clone(), path.to_string());
                block_on(&self.name, self.timeout, async move {
                    match op.delete(&p).await {
                        Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
                        _ => Ok(()),
                    }
                })
            }
            Backend::Memcache(c) => c
                .call(|m| m.delete(&format!("{}{path}", self.prefix)))
                .map(|_| ())
                .map_err(|e| self.memcache_error(e)),
            Backend::Redis(c) => c.del(path, self.timeout).map_err(|e| self.redis_error(e)),
        })
    }

    fn exists(&self, path: &str) -> Result<bool, StoreError> {
        self.call(|| match &self.backend {
            Backend::Opendal(op) => {
                let (op, p) = (op.clone(), path.to_string());
                block_on(&self.name, self.timeout, async move {
                    match op.stat(&p).await {
                        Ok(_) => Ok(true),
                        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
                        Err(e) => Err(e),
                    }
                })
            }
            // A `touch` answers whether the item exists without sending its value.
            Backend::Memcache(c) => c
                .call(|m| m.touch(&format!("{}{path}", self.prefix), 0))
                .map_err(|e| self.memcache_error(e)),
            Backend::Redis(c) => c
                .exists(path, self.timeout)
                .map_err(|e| self.redis_error(e)),
        })
    }

    fn memcache_error(&self, e: memcache::MemcacheError) -> StoreError {
        let timeout = match &e {
            memcache::MemcacheError::IOError(io) => matches!(
                io.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ),
            // The pool gave up waiting for a working connection.
            memcache::MemcacheError::PoolError(p) => p.to_string().starts_with("timed out"),
            _ => false,
        };
        StoreError::Remote {
            backend: self.name.clone(),
            message: scrub(&e.to_string(), self.secret.as_deref()),
            timeout,
        }
    }

    fn redis_error(&self, e: ::redis::RedisError) -> StoreError {
        StoreError::Remote {
            backend: self.name.clone(),
            message: scrub(&e.to_string(), self.secret.as_deref()),
            timeout: e.is_timeout(),
        }
    }

    fn decode(
        &self,
        ns: Namespace,
        key: &Digest,
        stored: Vec<u8>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let Some((&tag, body)) = stored.split_first() else {
            return Err(StoreError::corrupt(ns, key, "empty item"));
        };
        match tag {
            TAG_RAW => {
                let mut value = stored;
                value.remove(0);
                Ok(Some(value))
            }
            TAG_ZSTD => unzstd(body)
                .map(Some)
                .map_err(|e| StoreError::corrupt(ns, key, format!("zstd: {e}"))),
            TAG_CHUNKS => {
                if body.len() % 32 != 0 || body.is_empty() {
                    return Err(StoreError::corrupt(ns, key, "malformed chunk list"));
                }
                let digests: Vec<Digest> = body
                    .chunks(32)
                    .map(|c| {
                        let mut raw = [0u8; 32];
                        raw.copy_from_slice(c);
                        Digest::from_bytes(raw)
                    })
                    .collect();
                let paths: Vec<String> = digests.iter().map(Self::chunk_path).collect();
                let mut chunks = self.read_all(&paths)?;
                let mut joined = Vec::new();
                for (d, chunk) in digests.iter().zip(chunks.iter_mut()) {
                    let Some(chunk) = chunk.take() else {
                        // Evicted: the entry is gone as a whole.
                        return Ok(None);
                    };
                    if Digest::of(&chunk) != *d {
                        return Err(StoreError::corrupt(
                            ns,
                            key,
                            format!("chunk {d} does not match its digest"),
                        ));
                    }
                    joined.extend_from_slice(&chunk);
                }
                match joined.first() {
                    Some(&TAG_CHUNKS) | None => {
                        Err(StoreError::corrupt(ns, key, "nested chunk list"))
                    }
                    Some(_) => self.decode(ns, key, joined),
                }
            }
            t => Err(StoreError::corrupt(ns, key, format!("unknown tag {t}"))),
        }
    }
}

/// `message` without the URL's password.
fn scrub(message: &str, secret: Option<&str>) -> String {
    match secret.filter(|s| !s.is_empty()) {
        Some(secret) => message.replace(secret, "***"),
        None => message.to_string(),
    }
}

/// The largest value a frame that states its size is decompressed into in one piece
/// (larger or unstated: streamed into a growing buffer).
const ONE_PIECE: u64 = 1 << 30;

/// The value of the zstd frame `body`: into one buffer of the size the frame states
/// (what [`encode`] writes), without the copies of a growing one.
fn unzstd(body: &[u8]) -> std::io::Result<Vec<u8>> {
    match zstd::zstd_safe::get_frame_content_size(body) {
        Ok(Some(n)) if n <= ONE_PIECE => zstd::bulk::decompress(body, n as usize),
        _ => zstd::stream::decode_all(body),
    }
}

/// The tagged form of `value`: compressed when that saves at least an eighth.
fn encode(value: &[u8]) -> Vec<u8> {
    if value.len() >= 512
        && let Ok(z) = zstd::bulk::compress(value, 1)
        && z.len() < value.len() - value.len() / 8
    {
        let mut out = Vec::with_capacity(z.len() + 1);
        out.push(TAG_ZSTD);
        out.extend_from_slice(&z);
        return out;
    }
    let mut out = Vec::with_capacity(value.len() + 1);
    out.push(TAG_RAW);
    out.extend_from_slice(value);
    out
}

impl Store for KvStore {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn capabilities(&self) -> Capabilities {
        crate::server_capabilities(true, self.item_limit.map(|l| l as u64))
    }

    fn get(&self, ns: Namespace, key: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        match self.read(&Self::path(ns, key), 0)? {
            Some(stored) => self.decode(ns, key, stored),
            None => Ok(None),
        }
    }

    fn get_blob(&self, digest: &Digest, size: u64) -> Result<Option<Vec<u8>>, StoreError> {
        match self.read(&Self::path(Namespace::Cas, digest), size)? {
            Some(stored) => self.decode(Namespace::Cas, digest, stored),
            None => Ok(None),
        }
    }

    fn put(&self, ns: Namespace, key: &Digest, value: &[u8]) -> Result<(), StoreError> {
        let tagged = encode(value);
        match self.item_limit {
            Some(limit) if tagged.len() > limit => {
                let mut list = vec![TAG_CHUNKS];
                for chunk in tagged.chunks(limit) {
                    let d = Digest::of(chunk);
                    self.write(&Self::chunk_path(&d), chunk.to_vec())?;
                    list.extend_from_slice(d.as_bytes());
                }
                // Written last: a reader that finds the list finds its chunks.
                self.write(&Self::path(ns, key), list)
            }
            _ => self.write(&Self::path(ns, key), tagged),
        }
    }

    fn delete(&self, ns: Namespace, key: &Digest) -> Result<(), StoreError> {
        self.remove(&Self::path(ns, key))
    }

    /// S3 and WebDAV list through opendal; Redis and memcached cannot.
    fn list(&self, ns: Namespace) -> Result<Vec<StoredEntry>, StoreError> {
        let Backend::Opendal(op) = &self.backend else {
            return Err(self.cannot_list());
        };
        if !op.info().capability().list {
            return Err(self.cannot_list());
        }
        let (op, dir) = (op.clone(), format!("v1/{}/", ns.as_str()));
        let entries = self.call(|| {
            block_on(&self.name, deadline_for(self.timeout, 0) * 20, async move {
                op.list_with(&dir).recursive(true).await
            })
        })?;
        Ok(entries
            .into_iter()
            .filter_map(|e| {
                let key = Digest::from_hex(e.name())?;
                let meta = e.metadata();
                Some(StoredEntry {
                    key,
                    bytes: meta.content_length(),
                    modified: meta.last_modified().map_or(
                        std::time::SystemTime::UNIX_EPOCH,
                        std::time::SystemTime::from,
                    ),
                })
            })
            .collect())
    }

    /// A TCP connect to the server: refused means nothing listens (the client libraries
    /// would retry until the deadline).
    fn probe(&self) -> Result<(), StoreError> {
        if let Some(addr) = &self.tcp_addr
            && refuses_connections(addr, self.timeout.min(Duration::from_secs(1)))
        {
            self.refused.store(true, Ordering::Relaxed);
            return Err(self.refused_error());
        }
        Ok(())
    }

    fn contains(&self, ns: Namespace, key: &Digest) -> Result<bool, StoreError> {
        self.exists(&Self::path(ns, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value over memcached's item limit comes back from its chunks (fetched in one
    /// call); a missing chunk (evicted) makes it missing, a changed one corrupt.
    #[test]
    fn chunked_values_come_back_whole_or_not_at_all() {
        #[allow(clippy::disallowed_methods)]
        let Ok(url) = std::env::var("LARDER_TEST_MEMCACHED") else {
            return;
        };
        let spec = RemoteSpec::parse(&url, false, Duration::from_secs(5)).unwrap();
        let kv = KvStore::open(&spec).unwrap();
        // Incompressible: stored as is, in 4 chunks.
        let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ std::process::id() as u64;
        let value: Vec<u8> = (0..3 * MEMCACHED_ITEM + 100)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let d = Digest::of(&value);
        kv.put(Namespace::Cas, &d, &value).unwrap();
        assert_eq!(
            kv.get(Namespace::Cas, &d).unwrap().as_deref(),
            Some(&value[..])
        );
        let tagged = encode(&value);
        assert_eq!(tagged[0], TAG_RAW);
        let chunks: Vec<String> = tagged
            .chunks(MEMCACHED_ITEM)
            .map(|c| KvStore::chunk_path(&Digest::of(c)))
            .collect();
        assert_eq!(chunks.len(), 4);
        kv.write(&chunks[2], b"not the chunk".to_vec()).unwrap();
        assert!(matches!(
            kv.get(Namespace::Cas, &d),
            Err(StoreError::Corrupt { .. })
        ));
        kv.remove(&chunks[2]).unwrap();
        assert_eq!(kv.get(Namespace::Cas, &d).unwrap(), None);
    }

    #[test]
    fn encoding_compresses_only_when_it_pays() {
        let text = b"abc".repeat(1000);
        assert_eq!(encode(&text)[0], TAG_ZSTD);
        let small = b"{}";
        assert_eq!(encode(small), [&[TAG_RAW][..], small].concat());
    }

    #[test]
    fn frames_decode_with_and_without_their_size() {
        let text = b"abc".repeat(100_000);
        let sized = &encode(&text)[1..];
        assert_eq!(
            zstd::zstd_safe::get_frame_content_size(sized).ok(),
            Some(Some(text.len() as u64))
        );
        assert_eq!(unzstd(sized).unwrap(), text);
        // A frame written by a stream states no size (another writer's, or an older one).
        let mut streamed = zstd::stream::Encoder::new(Vec::new(), 1).unwrap();
        std::io::Write::write_all(&mut streamed, &text).unwrap();
        let streamed = streamed.finish().unwrap();
        assert_eq!(
            zstd::zstd_safe::get_frame_content_size(&streamed).ok(),
            Some(None)
        );
        assert_eq!(unzstd(&streamed).unwrap(), text);
        // A frame cut short is an error, not a short value.
        assert!(unzstd(&sized[..sized.len() / 2]).is_err());
    }
}
