//! larder's remote backends and the tier chain that puts them behind the local store.
//!
//! A remote is configured by URL ([`RemoteSpec::parse`]); [`open`] gives a
//! [`larder_store::Store`] for it:
//!
//! | URL | backend | library |
//! |---|---|---|
//! | `memcached://host:port` | memcached; values over 1 MiB are split into chunks | memcache (opendal's client lacks `TCP_NODELAY`: see the `kv` module) |
//! | `redis://[user:password@]host:port/db`, `rediss://` (TLS: the system's CAs, `SSL_CERT_FILE`) | Redis | redis (opendal's pool adds a round trip to each call: see the `redis_client` module) |
//! | `s3://bucket/prefix` | S3 or an S3-compatible server; endpoint, region and credentials from `AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` | opendal |
//! | `http(s)://host/prefix` | the bazel-remote HTTP protocol (`GET`/`PUT`/`HEAD` of `/ac/<hash>`, `/cas/<sha256>`), which a plain WebDAV server that creates parent collections on `PUT` also serves | reqwest |
//! | `webdav(s)://host/prefix` | WebDAV (`MKCOL` for parent collections, `PROPFIND`) over http(s) | opendal |
//! | `grpc(s)://host:port[/instance]` | REAPI v2: ActionCache, ContentAddressableStorage, ByteStream | tonic, bazel-remote-apis |
//! | `oci://registry[:port]/repository`, `oci+http://` (plain HTTP) | an OCI registry (distribution API): each entry an artifact manifest tagged `<namespace>-<key>` whose layer is the value; HTTPS except for loopback registries; credentials from the URL or the docker config | oci-client, docker_credential |
//! | `file:///path` or `/path` | a shared directory (NFS), in the local store's layout | larder-store |
//!
//! Credentials in a URL (`user:password@`) are removed from every name, message and
//! `Debug` output ([`redact`]).
//!
//! [`Tiers`] chains the local store and the remotes: a lookup tries each in turn and
//! backfills the faster tiers; a write goes to every writable tier. Each remote is its
//! backend wrapped in store layers: [`Verified`] (blobs checked against their digests),
//! [`Counted`] (counters for `larder stats`), [`Breaker`] (a remote never fails a build;
//! one that keeps failing is switched off for the rest of the build with one warning)
//! and [`ReadOnly`].
#![deny(missing_docs)]

mod admit;
mod bazel;
mod breaker;
mod counted;
mod http;
mod kept;
mod kv;
mod memcached;
mod oci;
mod reapi;
mod redis_client;
mod runtime;
#[cfg(test)]
mod test_server;
mod tiers;
mod verify;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use larder_store::{Capabilities, Store, StoreError};

pub use admit::Admit;
pub use breaker::{Breaker, FAILURES_TO_SWITCH_OFF, ReadOnly};
pub use counted::{ChainState, Counted, RemoteCounters};
pub use larder_store::build_id;
pub use tiers::{Hooks, Tier, Tiers};
pub use verify::Verified;

/// The most connections one process keeps to a memcached or Redis server: a
/// prefetch makes this many calls at once ([`Tiers`] is shared by its threads).
pub const MAX_CONNECTIONS: usize = 32;

/// The default deadline of one remote call, before the allowance for the bytes moved.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// What kind of server a remote URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `memcached://`
    Memcached,
    /// `redis://`, `rediss://`
    Redis,
    /// `s3://`
    S3,
    /// `http://`, `https://`: the bazel-remote HTTP protocol.
    Http,
    /// `webdav://`, `webdavs://`: WebDAV with collections.
    WebDav,
    /// `grpc://`, `grpcs://`: REAPI v2.
    Grpc,
    /// `oci://`, `oci+http://`: an OCI registry.
    Oci,
    /// `file://` or an absolute path: a shared directory.
    Dir,
}

/// One configured remote tier.
#[derive(Clone, PartialEq)]
pub struct RemoteSpec {
    /// The URL as configured (may hold credentials: never print it; use
    /// [`RemoteSpec::name`]).
    url: url::Url,
    /// The kind of server.
    pub kind: Kind,
    /// A read-only tier is read, never written.
    pub read_only: bool,
    /// Whether an action record from this tier is used only with a trusted signature
    /// ([`Admit`]). [`RemoteSpec::parse`] sets it for a read-only tier (a public cache);
    /// the configuration may change it.
    pub require_signatures: bool,
    /// Deadline of one call (a lookup; transfers get more time per byte).
    pub timeout: Duration,
}

/// A remote URL that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("remote {url}: {message}")]
pub struct SpecError {
    /// The URL, credentials removed.
    pub url: String,
    /// What is wrong.
    pub message: String,
}

impl RemoteSpec {
    /// Parses a remote URL (see the crate docs for the schemes).
    ///
    /// # Errors
    /// [`SpecError`] for an unknown scheme, a missing host, bucket or port, or a URL that
    /// does not parse; the message names the URL with credentials removed.
    pub fn parse(text: &str, read_only: bool, timeout: Duration) -> Result<RemoteSpec, SpecError> {
        let err = |message: &str| SpecError {
            url: redact(text),
            message: message.to_string(),
        };
        let text = text.trim();
        let url = if text.starts_with('/') {
            url::Url::from_file_path(text).map_err(|()| err("not an absolute path"))?
        } else {
            url::Url::parse(text).map_err(|e| err(&e.to_string()))?
        };
        let kind = match url.scheme() {
            "memcached" => Kind::Memcached,
            "redis" | "rediss" => Kind::Redis,
            "s3" => Kind::S3,
            "http" | "https" => Kind::Http,
            "webdav" | "webdavs" => Kind::WebDav,
            "grpc" | "grpcs" => Kind::Grpc,
            "oci" | "oci+http" => Kind::Oci,
            "file" => Kind::Dir,
            other => {
                return Err(err(&format!(
                    "unknown scheme {other:?}: expected memcached, redis, rediss, s3, http, \
                     https, webdav, webdavs, grpc, grpcs, oci, oci+http or file"
                )));
            }
        };
        match kind {
            Kind::Dir => {
                if url.host_str().is_some_and(|h| !h.is_empty()) {
                    return Err(err("file URLs name a local path: file:///path"));
                }
            }
            Kind::S3 => {
                if url.host_str().is_none_or(str::is_empty) {
                    return Err(err("no bucket: expected s3://bucket/prefix"));
                }
            }
            Kind::Memcached | Kind::Redis | Kind::Grpc => {
                if url.host_str().is_none_or(str::is_empty) {
                    return Err(err("no host"));
                }
                if url.port().is_none() {
                    return Err(err("no port: expected host:port"));
                }
            }
            Kind::Http | Kind::WebDav => {
                if url.host_str().is_none_or(str::is_empty) {
                    return Err(err("no host"));
                }
            }
            Kind::Oci => {
                if url.host_str().is_none_or(str::is_empty) {
                    return Err(err("no registry: expected oci://registry/repository"));
                }
                oci::repository(&url).map_err(|m| err(&m))?;
            }
        }
        if kind == Kind::Redis {
            let db = url.path().trim_matches('/');
            if !db.is_empty() && db.parse::<i64>().is_err() {
                return Err(err(
                    "the path of a redis URL is the database number: redis://host:port/0",
                ));
            }
        }
        if timeout.is_zero() {
            return Err(err("the timeout must be over 0 seconds"));
        }
        Ok(RemoteSpec {
            url,
            kind,
            read_only,
            require_signatures: read_only,
            timeout,
        })
    }

    /// The URL with credentials removed: safe for messages and logs.
    pub fn name(&self) -> String {
        redact(self.url.as_str())
    }

    /// The URL, credentials included, for the backends.
    pub(crate) fn url(&self) -> &url::Url {
        &self.url
    }

    /// The user name and password of the URL, percent-decoded, if it has either.
    pub(crate) fn credentials(&self) -> Option<(String, Option<String>)> {
        let url = &self.url;
        if url.username().is_empty() && url.password().is_none() {
            return None;
        }
        Some((
            percent_decode(url.username()),
            url.password().map(percent_decode),
        ))
    }

    /// A [`StoreError::Remote`] about configuring this remote, naming it without
    /// credentials.
    pub(crate) fn config_error(&self, message: impl std::fmt::Display) -> StoreError {
        StoreError::Remote {
            backend: self.name(),
            message: format!("cannot configure: {message}"),
            timeout: false,
        }
    }

    /// The path of a `file://` remote.
    pub(crate) fn dir_path(&self) -> Option<PathBuf> {
        self.url.to_file_path().ok()
    }

    /// The URL path without leading and trailing slashes (a key prefix, bucket prefix,
    /// REAPI instance name), percent-decoded.
    pub(crate) fn path_prefix(&self) -> String {
        let p = self.url.path().trim_matches('/');
        percent_decode(p)
    }
}

impl fmt::Debug for RemoteSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteSpec")
            .field("url", &self.name())
            .field("kind", &self.kind)
            .field("read_only", &self.read_only)
            .field("require_signatures", &self.require_signatures)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// `s` with `%XX` escapes decoded (URL user names, passwords, paths).
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// `url` with any password replaced by `***` and any user name kept (`redis://:***@h:1/0`,
/// `https://ci:***@cache/x`). Text that is not a URL is returned with everything
/// between `://` and the last `@` before the host replaced, so a malformed URL with a
/// password does not leak it either.
pub fn redact(url: &str) -> String {
    if let Ok(mut u) = url::Url::parse(url) {
        if u.password().is_some() {
            let _ = u.set_password(Some("***"));
        }
        // Query parameters may carry tokens; keep their names only.
        if u.query().is_some() {
            let names: Vec<String> = u.query_pairs().map(|(k, _)| format!("{k}=***")).collect();
            u.set_query(Some(&names.join("&")));
        }
        return u.to_string();
    }
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}***{}", &url[..s + 3], &url[at..]),
        _ => url.to_string(),
    }
}

/// What a shared server offers: no listing (`du`/`gc` are the server's business), entries
/// that may be evicted, writes (whether a tier writes is the tiers' decision).
pub(crate) fn server_capabilities(delete: bool, max_value_size: Option<u64>) -> Capabilities {
    Capabilities {
        list: false,
        write: true,
        max_value_size,
        expires: true,
        delete,
    }
}

/// Opens the backend for `spec`. Opening does not contact the server (connections are
/// made on first use), so a dead server shows up as errors of the calls, which the
/// tiers count.
///
/// # Errors
/// [`StoreError`] if the backend cannot be configured from the URL (an unusable
/// endpoint, a missing directory that cannot be created).
pub fn open(spec: &RemoteSpec) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match spec.kind {
        Kind::Memcached | Kind::Redis | Kind::S3 | Kind::WebDav => {
            Arc::new(kv::KvStore::open(spec)?)
        }
        Kind::Http => Arc::new(http::HttpStore::open(spec)?),
        Kind::Grpc => Arc::new(reapi::ReapiStore::open(spec)?),
        Kind::Oci => Arc::new(oci::OciStore::open(spec)?),
        Kind::Dir => {
            let path = spec.dir_path().ok_or_else(|| StoreError::Remote {
                backend: spec.name(),
                message: "not a local path".into(),
                timeout: false,
            })?;
            // A shared directory has no size bound of ours: its owner sizes it.
            Arc::new(larder_store::DiskStore::open(&path, u64::MAX)?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(u: &str) -> Result<RemoteSpec, SpecError> {
        RemoteSpec::parse(u, false, DEFAULT_TIMEOUT)
    }

    #[test]
    fn schemes() {
        assert_eq!(
            parse("memcached://127.0.0.1:11211").unwrap().kind,
            Kind::Memcached
        );
        assert_eq!(parse("redis://h:6379/2").unwrap().kind, Kind::Redis);
        assert_eq!(parse("rediss://h:6380/0").unwrap().kind, Kind::Redis);
        assert_eq!(parse("s3://bucket/pre/fix").unwrap().kind, Kind::S3);
        assert_eq!(parse("https://cache.example/x").unwrap().kind, Kind::Http);
        assert_eq!(parse("webdav://h:8080/dav").unwrap().kind, Kind::WebDav);
        assert_eq!(parse("grpc://h:8980/main").unwrap().kind, Kind::Grpc);
        assert_eq!(parse("oci://ghcr.io/team/cache").unwrap().kind, Kind::Oci);
        assert_eq!(parse("oci+http://h:5000/cache").unwrap().kind, Kind::Oci);
        assert_eq!(parse("/mnt/nfs/larder").unwrap().kind, Kind::Dir);
        assert_eq!(parse("file:///mnt/nfs").unwrap().kind, Kind::Dir);
        assert_eq!(
            parse("s3://bucket/pre/fix").unwrap().path_prefix(),
            "pre/fix"
        );
    }

    #[test]
    fn bad_urls_are_named() {
        for (u, what) in [
            ("ftp://h/x", "unknown scheme"),
            ("memcached://h", "no port"),
            ("redis://h:1/notanumber", "database number"),
            ("s3:///x", "no bucket"),
            ("grpc://:1", "host"),
            ("not a url", "relative URL"),
            ("oci://registry.example", "no repository"),
            ("oci://registry.example/", "no repository"),
            ("oci:///repo", "no registry"),
            ("oci://h:5000/Upper/case", "not a repository name"),
            ("oci://h/a//b", "not a repository name"),
        ] {
            let e = parse(u).unwrap_err().to_string();
            assert!(e.contains(what), "{u}: {e}");
        }
    }

    #[test]
    fn credentials_never_show() {
        let s = parse("redis://user:hunter2@h:6379/0").unwrap();
        assert!(!s.name().contains("hunter2"), "{}", s.name());
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(s.name().contains("user"));
        let e = parse("redis://u:hunter2@h:6379/x").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(!format!("{e:?}").contains("hunter2"));
        assert!(!redact("https://h/x?token=hunter2").contains("hunter2"));
        assert!(!redact("zz://a:hunter2@@b").contains("hunter2"));
        let s = parse("oci://ci:hunter2@registry.example/team/cache").unwrap();
        assert!(
            !s.name().contains("hunter2") && s.name().contains("ci"),
            "{}",
            s.name()
        );
        let e = parse("oci://ci:hunter2@registry.example").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
}
