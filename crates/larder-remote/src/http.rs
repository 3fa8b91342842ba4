//! The bazel-remote HTTP cache protocol: `http(s)://host[:port]/prefix`.
//!
//! This is the protocol Bazel speaks with `--remote_cache=http://...`, served by
//! bazel-remote, and also by any plain WebDAV server that creates parent collections on
//! `PUT` (nginx with `dav_methods PUT` and `create_full_put_path on`):
//!
//! - CAS blob with SHA-256 `D`: `GET`/`PUT`/`HEAD {base}/cas/{hex D}`, raw bytes.
//! - Action cache entry with action digest `A`: `{base}/ac/{hex A}`, the body a serialized
//!   `ActionResult` protobuf.
//!
//! larder's records (every namespace but the CAS) are stored as described in
//! [`crate::bazel`]: the record is uploaded as a CAS blob, then an AC entry whose
//! `stdout_digest` names it is written under a deterministic action digest.
//!
//! `404` is "absent"; any `2xx` is success (nginx answers `201` for a new file and `204`
//! for a replaced one); anything else, a connection failure or running out of time is
//! [`StoreError::Remote`] naming the URL without credentials and the HTTP status. A user
//! and password in the URL are sent as HTTP basic authentication and never appear in
//! request URLs, messages or `Debug` output.
//!
//! The empty blob is never transferred: it is always "present" (bazel-remote treats it
//! so, and nginx answers a `PUT` with an empty body with `500`). A record whose `/ac/`
//! entry does not decode or does not match its bytes is [`StoreError::Corrupt`]; one
//! whose CAS blob the server has evicted is a miss.
//!
//! The protocol has no deletion (bazel-remote refuses `DELETE`), so [`HttpStore`] declares
//! `delete: false` and its `delete` does nothing; the server's own eviction removes
//! entries (`expires: true`).

use std::fmt;
use std::time::Duration;

use larder_digest::Digest;
use larder_store::{Capabilities, Namespace, Store, StoreError};
use reqwest::{Method, StatusCode};

use crate::{RemoteSpec, bazel, runtime};

/// A bazel-remote HTTP cache (or WebDAV server speaking its layout).
pub(crate) struct HttpStore {
    /// The URL without credentials, for messages.
    name: String,
    /// The base URL, credentials removed, path without a trailing slash.
    base: url::Url,
    /// Basic-authentication user and password, percent-decoded.
    auth: Option<(String, String)>,
    client: reqwest::Client,
    timeout: Duration,
}

impl fmt::Debug for HttpStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpStore")
            .field("name", &self.name)
            .field("auth", &self.auth.as_ref().map(|_| "***"))
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// What a request is for: the namespace it addresses on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Area {
    /// `/cas/`
    Cas,
    /// `/ac/`
    Ac,
}

impl Area {
    fn as_str(self) -> &'static str {
        match self {
            Area::Cas => "cas",
            Area::Ac => "ac",
        }
    }
}

impl HttpStore {
    /// Configures the backend for `spec`; no request is made.
    ///
    /// # Errors
    /// [`StoreError::Remote`] if the URL cannot serve as a base or the HTTP client cannot
    /// be built.
    pub(crate) fn open(spec: &RemoteSpec) -> Result<HttpStore, StoreError> {
        let name = spec.name();
        let err = |message: String| spec.config_error(message);
        let url = spec.url();
        let auth = spec
            .credentials()
            .map(|(user, password)| (user, password.unwrap_or_default()));
        let base = base_url(url).ok_or_else(|| err("not usable as a base URL".into()))?;
        // Building the client needs no runtime, but enter it so that anything the
        // connector sets up lands on the process's runtime.
        let _guard = runtime::runtime()?.enter();
        let client = reqwest::Client::builder()
            .connect_timeout(spec.timeout)
            // Shorter than common server keep-alive timeouts (nginx: 75 s), so an idle
            // connection the server has closed is not reused.
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| {
                err(format!(
                    "cannot set up the HTTP client: {}",
                    e.without_url()
                ))
            })?;
        Ok(HttpStore {
            name,
            base,
            auth,
            client,
            timeout: spec.timeout,
        })
    }

    /// The URL of `hex` in `area`: `{base}/{area}/{hex}`.
    fn url(&self, area: Area, hex: &str) -> url::Url {
        entry_url(&self.base, area, hex)
    }

    /// Sends one request and returns the status and, for `GET`, the body. `404` gives
    /// `None`; a non-2xx status, a transport failure or the deadline is an error.
    fn request(
        &self,
        method: Method,
        area: Area,
        hex: &str,
        body: Option<Vec<u8>>,
        bytes: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let what = format!("{method} {}/{hex}", area.as_str());
        let mut req = self.client.request(method.clone(), self.url(area, hex));
        if let Some((user, password)) = &self.auth {
            req = req.basic_auth(user, Some(password));
        }
        if let Some(body) = body {
            req = req.body(body);
        }
        let deadline = runtime::deadline_for(self.timeout, bytes);
        let name = &self.name;
        let fut = async {
            let resp = req
                .send()
                .await
                .map_err(|e| transport_error(name, &what, &e))?;
            let status = resp.status();
            if status == StatusCode::NOT_FOUND {
                return Ok(None);
            }
            if !status.is_success() {
                return Err(status_error(name, &what, status));
            }
            if method == Method::GET {
                let body = resp
                    .bytes()
                    .await
                    .map_err(|e| transport_error(name, &what, &e))?;
                Ok(Some(body.to_vec()))
            } else {
                Ok(Some(Vec::new()))
            }
        };
        flatten(runtime::block_on(name, deadline, async move {
            Ok::<_, std::convert::Infallible>(fut.await)
        }))
    }

    fn get_cas(&self, digest: &Digest, size: u64) -> Result<Option<Vec<u8>>, StoreError> {
        if is_empty_blob(digest) {
            return Ok(Some(Vec::new()));
        }
        self.request(Method::GET, Area::Cas, &digest.to_hex(), None, size)
    }

    fn put_cas(&self, digest: &Digest, value: &[u8]) -> Result<(), StoreError> {
        if value.is_empty() && is_empty_blob(digest) {
            return Ok(());
        }
        self.request(
            Method::PUT,
            Area::Cas,
            &digest.to_hex(),
            Some(value.to_vec()),
            value.len() as u64,
        )
        .and_then(|r| self.absent_after_put(r, Area::Cas))
    }

    /// A `404` answering a `PUT` is a failure, not "absent".
    fn absent_after_put(&self, r: Option<Vec<u8>>, area: Area) -> Result<(), StoreError> {
        match r {
            Some(_) => Ok(()),
            None => Err(status_error(
                &self.name,
                &format!("PUT {}", area.as_str()),
                StatusCode::NOT_FOUND,
            )),
        }
    }
}

impl Store for HttpStore {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn capabilities(&self) -> Capabilities {
        // No deletes: the protocol has none.
        crate::server_capabilities(false, None)
    }

    fn get(&self, ns: Namespace, key: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        if ns == Namespace::Cas {
            return self.get_cas(key, 0);
        }
        let action = bazel::action_digest(ns, key);
        let Some(body) = self.request(Method::GET, Area::Ac, &action.hash, None, 0)? else {
            return Ok(None);
        };
        let result = bazel::decode_action_result(ns, key, &body)?;
        let (bytes, digest, size) = match bazel::record_source(ns, key, result)? {
            bazel::RecordSource::Inline {
                bytes,
                digest,
                size,
            } => (bytes, digest, size),
            bazel::RecordSource::Cas { digest, size } => match self.get_cas(&digest, size)? {
                Some(bytes) => (bytes, digest, size),
                // The server evicted the record but kept the entry: a miss.
                None => return Ok(None),
            },
        };
        bazel::check_record(ns, key, &bytes, &digest, size)?;
        Ok(Some(bytes))
    }

    fn put(&self, ns: Namespace, key: &Digest, value: &[u8]) -> Result<(), StoreError> {
        if ns == Namespace::Cas {
            return self.put_cas(key, value);
        }
        let record = Digest::of(value);
        let size = value.len() as u64;
        // The record first, so the entry never names a blob the server lacks.
        self.put_cas(&record, value)?;
        let action = bazel::action_digest(ns, key);
        let body = bazel::encode_action_result(&record, size);
        self.request(Method::PUT, Area::Ac, &action.hash, Some(body), 0)
            .and_then(|r| self.absent_after_put(r, Area::Ac))
    }

    /// Does nothing: the bazel-remote protocol has no deletion (bazel-remote refuses
    /// `DELETE`), so entries leave only by the server's eviction. `capabilities()` says
    /// `delete: false`; a caller removing a corrupt blob gets `Ok` and the blob is
    /// caught again by verification on every read.
    fn delete(&self, _ns: Namespace, _key: &Digest) -> Result<(), StoreError> {
        Ok(())
    }

    fn contains(&self, ns: Namespace, key: &Digest) -> Result<bool, StoreError> {
        let r = if ns == Namespace::Cas {
            if is_empty_blob(key) {
                return Ok(true);
            }
            self.request(Method::HEAD, Area::Cas, &key.to_hex(), None, 0)?
        } else {
            let action = bazel::action_digest(ns, key);
            self.request(Method::HEAD, Area::Ac, &action.hash, None, 0)?
        };
        Ok(r.is_some())
    }

    fn get_blob(&self, digest: &Digest, size: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_cas(digest, size)
    }
}

/// Whether `digest` is the SHA-256 of no bytes. The empty blob is never transferred:
/// bazel-remote (like every REAPI server) treats it as always present, and nginx
/// refuses a `PUT` with an empty body (`500`, "PUT request body must be in a file").
fn is_empty_blob(digest: &Digest) -> bool {
    static EMPTY: std::sync::OnceLock<Digest> = std::sync::OnceLock::new();
    *digest == *EMPTY.get_or_init(|| Digest::of(b""))
}

/// `url` without credentials and without a trailing slash in its path; `None` if it
/// cannot be a base (`mailto:`-like URLs).
fn base_url(url: &url::Url) -> Option<url::Url> {
    let mut base = url.clone();
    base.set_username("").ok()?;
    base.set_password(None).ok()?;
    base.set_fragment(None);
    base.path_segments_mut().ok()?.pop_if_empty();
    Some(base)
}

/// `{base}/{area}/{hex}`, keeping any query of the base.
fn entry_url(base: &url::Url, area: Area, hex: &str) -> url::Url {
    let mut u = base.clone();
    if let Ok(mut segments) = u.path_segments_mut() {
        segments.pop_if_empty().extend([area.as_str(), hex]);
    }
    u
}

/// The error for an unexpected HTTP status.
fn status_error(name: &str, what: &str, status: StatusCode) -> StoreError {
    StoreError::Remote {
        backend: name.to_string(),
        message: format!("{what}: HTTP {status}"),
        timeout: status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::GATEWAY_TIMEOUT,
    }
}

/// The error for a request that got no usable answer. The request URL is left out
/// (it may carry query parameters); the backend name identifies the server.
fn transport_error(name: &str, what: &str, e: &reqwest::Error) -> StoreError {
    let mut message = format!("{what}: {}", without_url(e));
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    StoreError::Remote {
        backend: name.to_string(),
        message,
        timeout: e.is_timeout(),
    }
}

/// The top-level text of `e` without the URL reqwest appends.
fn without_url(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "cannot connect".into()
    } else if e.is_body() || e.is_decode() {
        "reading the response failed".into()
    } else if e.is_request() {
        "sending the request failed".into()
    } else {
        "request failed".into()
    }
}

/// Joins the runtime's error (deadline, no runtime) with the request's own.
fn flatten<T>(r: Result<Result<T, StoreError>, StoreError>) -> Result<T, StoreError> {
    r?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(url: &str) -> RemoteSpec {
        RemoteSpec::parse(url, false, Duration::from_secs(1)).unwrap()
    }

    #[test]
    fn urls_have_no_credentials_and_one_slash() {
        for (u, want) in [
            (
                "http://ci:hunter2@cache:8080/bazel/",
                "http://cache:8080/bazel/cas/ab",
            ),
            ("http://cache:8080/bazel", "http://cache:8080/bazel/cas/ab"),
            ("https://cache", "https://cache/cas/ab"),
            ("http://cache/a/b?t=x", "http://cache/a/b/cas/ab?t=x"),
        ] {
            let s = HttpStore::open(&spec(u)).unwrap();
            assert_eq!(s.url(Area::Cas, "ab").as_str(), want, "{u}");
        }
        let s = HttpStore::open(&spec("http://cache/x")).unwrap();
        assert_eq!(s.url(Area::Ac, "cd").as_str(), "http://cache/x/ac/cd");
    }

    #[test]
    fn credentials_become_basic_auth_and_never_show() {
        let s = HttpStore::open(&spec("https://ci%40corp:hun%3Ater2@cache/x")).unwrap();
        assert_eq!(
            s.auth,
            Some(("ci@corp".to_string(), "hun:ter2".to_string()))
        );
        assert!(!format!("{s:?}").contains("hun"), "{s:?}");
        assert!(!s.name().contains("hun"), "{}", s.name());
        let e = status_error(&s.name, "GET cas/ab", StatusCode::UNAUTHORIZED);
        let text = e.to_string();
        assert!(text.contains("401") && !text.contains("hun"), "{text}");
        assert!(!e.is_temporary());
    }

    #[test]
    fn dead_server_is_a_remote_error_without_credentials() {
        // Port 9 (discard) on localhost: nothing listens in the test environment.
        let s = HttpStore::open(&spec("http://u:hunter2@127.0.0.1:9/x")).unwrap();
        match s.get(Namespace::Action, &Digest::of(b"k")) {
            Err(e @ StoreError::Remote { .. }) => {
                let text = e.to_string();
                assert!(text.contains("127.0.0.1:9"), "{text}");
                assert!(!text.contains("hunter2"), "{text}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn capabilities() {
        let c = HttpStore::open(&spec("http://cache/x"))
            .unwrap()
            .capabilities();
        assert!(c.write && c.expires && !c.delete && !c.list);
        assert_eq!(c.max_value_size, None);
    }
}
