//! Key-value and object services through opendal: memcached, Redis, S3 and WebDAV.
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

use std::time::Duration;

use larder_digest::Digest;
use larder_store::{Capabilities, Namespace, Store, StoreError};
use opendal::{ErrorKind, Operator, services};

use crate::runtime::{block_on, deadline_for};
use crate::{Kind, RemoteSpec};

const TAG_RAW: u8 = 0;
const TAG_ZSTD: u8 = 1;
const TAG_CHUNKS: u8 = 2;

/// memcached's default item limit is 1 MiB, key and item header included.
const MEMCACHED_ITEM: usize = (1 << 20) - 4096;

/// A backend reached through an opendal [`Operator`].
pub(crate) struct KvStore {
    op: Operator,
    name: String,
    timeout: Duration,
    /// The largest tagged value stored as one item; larger ones are chunked.
    item_limit: Option<usize>,
}

impl KvStore {
    /// Configures the operator for `spec` (no connection is made yet).
    pub(crate) fn open(spec: &RemoteSpec) -> Result<KvStore, StoreError> {
        // opendal's HTTP services (S3, WebDAV) go through its reqwest transport.
        static TRANSPORT: std::sync::Once = std::sync::Once::new();
        TRANSPORT.call_once(opendal::install_default);
        let url = spec.url();
        let name = spec.name();
        let config_err = |e: opendal::Error| StoreError::Remote {
            backend: name.clone(),
            message: format!("cannot configure: {e}"),
            timeout: false,
        };
        let host = url.host_str().unwrap_or_default();
        let host_port = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        let user = percent_decode(url.username());
        let password = url.password().map(percent_decode);
        let prefix = spec.path_prefix();
        let root = format!("/{prefix}");
        let (op, item_limit) = match spec.kind {
            Kind::Memcached => {
                let mut b = services::Memcached::default()
                    .endpoint(&format!("tcp://{host_port}"))
                    .root(&root);
                if !user.is_empty() {
                    b = b.username(&user);
                }
                if let Some(p) = &password {
                    b = b.password(p);
                }
                (Operator::new(b).map_err(config_err)?, Some(MEMCACHED_ITEM))
            }
            Kind::Redis => {
                let scheme = if url.scheme() == "rediss" {
                    "rediss"
                } else {
                    "redis"
                };
                let db = url.path().trim_matches('/');
                let mut b = services::Redis::default()
                    .endpoint(&format!("{scheme}://{host_port}"))
                    .db(db.parse().unwrap_or(0));
                if !user.is_empty() {
                    b = b.username(&user);
                }
                if let Some(p) = &password {
                    b = b.password(p);
                }
                (Operator::new(b).map_err(config_err)?, None)
            }
            Kind::S3 => {
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
                (Operator::new(b).map_err(config_err)?, None)
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
                (Operator::new(b).map_err(config_err)?, None)
            }
            Kind::Http | Kind::Grpc | Kind::Dir => {
                return Err(StoreError::Remote {
                    backend: name,
                    message: "not a key-value service".into(),
                    timeout: false,
                });
            }
        };
        Ok(KvStore {
            op,
            name,
            timeout: spec.timeout,
            item_limit,
        })
    }

    fn path(ns: Namespace, key: &Digest) -> String {
        format!("v1/{}/{}", ns.as_str(), key.to_hex())
    }

    fn chunk_path(d: &Digest) -> String {
        format!("v1/chunk/{}", d.to_hex())
    }

    /// The raw object at `path`, or `None`.
    fn read(&self, path: &str, expect: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let op = self.op.clone();
        let p = path.to_string();
        block_on(&self.name, deadline_for(self.timeout, expect), async move {
            match op.read(&p).await {
                Ok(buf) => Ok(Some(buf.to_vec())),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    fn write(&self, path: &str, data: Vec<u8>) -> Result<(), StoreError> {
        let op = self.op.clone();
        let p = path.to_string();
        let deadline = deadline_for(self.timeout, data.len() as u64);
        block_on(&self.name, deadline, async move {
            op.write(&p, data).await.map(|_| ())
        })
    }

    fn corrupt(ns: Namespace, key: &Digest, detail: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            namespace: ns.as_str(),
            key: *key,
            detail: detail.into(),
        }
    }

    fn decode(
        &self,
        ns: Namespace,
        key: &Digest,
        stored: Vec<u8>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let Some((&tag, body)) = stored.split_first() else {
            return Err(Self::corrupt(ns, key, "empty item"));
        };
        match tag {
            TAG_RAW => Ok(Some(body.to_vec())),
            TAG_ZSTD => zstd::stream::decode_all(body)
                .map(Some)
                .map_err(|e| Self::corrupt(ns, key, format!("zstd: {e}"))),
            TAG_CHUNKS => {
                if body.len() % 32 != 0 || body.is_empty() {
                    return Err(Self::corrupt(ns, key, "malformed chunk list"));
                }
                let mut joined = Vec::new();
                for c in body.chunks(32) {
                    let mut raw = [0u8; 32];
                    raw.copy_from_slice(c);
                    let d = Digest::from_bytes(raw);
                    let Some(chunk) = self.read(&Self::chunk_path(&d), MEMCACHED_ITEM as u64)?
                    else {
                        // Evicted: the entry is gone as a whole.
                        return Ok(None);
                    };
                    if Digest::of(&chunk) != d {
                        return Err(Self::corrupt(
                            ns,
                            key,
                            format!("chunk {d} does not match its digest"),
                        ));
                    }
                    joined.extend_from_slice(&chunk);
                }
                match joined.first() {
                    Some(&TAG_CHUNKS) | None => Err(Self::corrupt(ns, key, "nested chunk list")),
                    Some(_) => self.decode(ns, key, joined),
                }
            }
            t => Err(Self::corrupt(ns, key, format!("unknown tag {t}"))),
        }
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

fn percent_decode(s: &str) -> String {
    crate::percent_decode(s)
}

impl Store for KvStore {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            list: false,
            write: true,
            max_value_size: self.item_limit.map(|l| l as u64),
            expires: true,
            delete: true,
        }
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
        let op = self.op.clone();
        let p = Self::path(ns, key);
        block_on(&self.name, self.timeout, async move {
            match op.delete(&p).await {
                Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        })
    }

    fn contains(&self, ns: Namespace, key: &Digest) -> Result<bool, StoreError> {
        let op = self.op.clone();
        let p = Self::path(ns, key);
        block_on(&self.name, self.timeout, async move {
            match op.stat(&p).await {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
                Err(e) => Err(e),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_compresses_only_when_it_pays() {
        let text = b"abc".repeat(1000);
        assert_eq!(encode(&text)[0], TAG_ZSTD);
        let small = b"{}";
        assert_eq!(encode(small), [&[TAG_RAW][..], small].concat());
    }
}
