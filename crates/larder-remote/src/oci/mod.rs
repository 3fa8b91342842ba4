//! An OCI registry (the distribution API): `oci://registry[:port]/repository`.
//!
//! Any registry that stores OCI artifacts serves as a larder remote: the CNCF
//! distribution server (`registry:2`, Debian's `docker-registry`), Harbor, GitLab's,
//! GitHub's (`ghcr.io`), cloud registries. The client is `oci-client`, which speaks the
//! distribution API and the registries' token flows.
//!
//! The mapping: every entry `(namespace, key)` is one artifact manifest
//! (`artifactType` `application/vnd.larder.entry.v1`) tagged `<namespace>-<key hex>`
//! (`ac-3f0c…`, `cas-9a1e…`) in the repository, its config the OCI empty descriptor and
//! its one layer the value's bytes as a blob (media type
//! `application/vnd.larder.<namespace>.v1`). An annotation names the entry, so two
//! entries holding the same bytes still have distinct manifests (deleting one never
//! removes the other's tag). An empty value's layer is the OCI empty descriptor, with no
//! blob of its own.
//!
//! - `put`: the value's blob (monolithic upload: `POST` and `PUT`; the registry checks
//!   the digest, so a CAS blob that does not match its key is refused), then the
//!   manifest by tag (`PUT`). The empty config blob is made sure of once per process.
//! - `get` of a record: the manifest by tag, then its layer's blob; `get` of a CAS blob
//!   reads the blob by its digest directly (larder's digests are SHA-256, the registry's
//!   own), one request. The client checks every blob against its digest.
//! - `contains`: the manifest by tag (`GET`: one request whether present or not). A CAS
//!   blob counts as present only while its manifest is: a blob without one is the
//!   registry's garbage.
//! - `delete`: the manifest by digest (`DELETE`, which needs `storage.delete.enabled` on
//!   the distribution server; a registry that refuses is [`StoreError::Unsupported`]),
//!   and for a CAS entry the blob too.
//!
//! Registry garbage collection removes blobs no manifest references (and, with
//! `--delete-untagged`, manifests a newer `put` replaced): it never removes a tagged
//! entry. The repository can't be listed cheaply (tags carry no sizes or dates), so
//! `larder du --remote` and `larder prune --remote` don't apply (`list: false`);
//! retention is the registry's business, so entries may vanish (`expires: true`).
//!
//! Transport (one rule, [`plain_http`]): HTTPS, except plain HTTP for a registry on a
//! loopback address (`127.0.0.0/8`, `::1`, `localhost`), as docker treats them, or when
//! the URL says so with the scheme `oci+http://`.
//!
//! Credentials: a user and password in the URL; else the docker config's for the
//! registry (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`: `auths` entries and
//! credential helpers, read with `docker_credential`); else anonymous. The client turns
//! them into the registry's bearer tokens where it asks for them (`WWW-Authenticate`),
//! or sends them as basic authentication. They never appear in messages or `Debug`.
//!
//! Every operation runs on the process's runtime under one deadline (the remote's
//! timeout plus an allowance for the bytes moved); connecting is bounded by the timeout.
//! Errors are [`StoreError::Remote`] naming the URL without credentials; "unknown"
//! manifests, blobs and repositories are "absent".

mod auth;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use larder_digest::Digest;
use larder_store::{Capabilities, Namespace, Store, StoreError};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::{OCI_IMAGE_MEDIA_TYPE, OciDescriptor, OciImageManifest, OciManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};

use crate::{RemoteSpec, runtime};
use auth::registry_auth;

/// The artifact type of larder's manifests.
const ENTRY_TYPE: &str = "application/vnd.larder.entry.v1";
/// The annotation naming the entry a manifest holds (`<namespace>/<key hex>`).
const ENTRY_ANNOTATION: &str = "dev.larder.entry";
/// The OCI empty descriptor: `{}`, the config of every larder manifest and the layer of
/// an empty value.
const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
const EMPTY_DATA: &[u8] = b"{}";
const EMPTY_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

/// An OCI registry repository holding larder's entries.
pub(crate) struct OciStore {
    /// The URL without credentials, for messages.
    name: String,
    /// `host[:port]`.
    registry: String,
    /// The repository path (`team/larder`).
    repository: String,
    /// Whether requests go over plain HTTP ([`plain_http`]).
    plain_http: bool,
    auth: RegistryAuth,
    client: Client,
    /// For the one request the client lacks: `DELETE` of a manifest or blob.
    http: reqwest::Client,
    timeout: Duration,
    /// Whether the empty config blob is known to be in the repository.
    config_present: AtomicBool,
}

impl fmt::Debug for OciStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OciStore")
            .field("name", &self.name)
            .field("plain_http", &self.plain_http)
            .field(
                "auth",
                &match self.auth {
                    RegistryAuth::Anonymous => "anonymous",
                    RegistryAuth::Basic(..) | RegistryAuth::Bearer(_) => "***",
                },
            )
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Whether the registry of `url` is spoken to over plain HTTP: when the scheme is
/// `oci+http`, or the host is a loopback address (`127.0.0.0/8`, `::1`, `localhost`),
/// as docker does for such registries. Otherwise HTTPS.
pub(crate) fn plain_http(url: &url::Url) -> bool {
    if url.scheme() == "oci+http" {
        return true;
    }
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The repository named by the path of `url`, checked against the distribution
/// grammar (lowercase components of `[a-z0-9]` joined by `.`, `_`, `__` or dashes,
/// separated by `/`).
///
/// # Errors
/// What is wrong with the path, for [`crate::SpecError`].
pub(crate) fn repository(url: &url::Url) -> Result<String, String> {
    let path = crate::percent_decode(url.path().trim_matches('/'));
    if path.is_empty() {
        return Err("no repository: expected oci://registry/repository".into());
    }
    for component in path.split('/') {
        if !valid_component(component) {
            return Err(format!(
                "{path:?} is not a repository name: lowercase letters and digits, joined by \
                 '.', '_', '__' or '-', in components separated by '/'"
            ));
        }
    }
    if path.len() > 255 {
        return Err("the repository name is over 255 characters".into());
    }
    Ok(path)
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_component(c: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = c.as_bytes();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// The tag of an entry: `<namespace>-<key hex>` (at most 73 characters, within the
/// distribution's `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`).
fn tag(ns: Namespace, key: &Digest) -> String {
    format!("{}-{}", ns.as_str(), key.to_hex())
}

/// The registry's form of a digest.
fn oci_digest(d: &Digest) -> String {
    format!("sha256:{}", d.to_hex())
}

/// The digest of no bytes: an empty CAS blob is stored as an entry with the empty layer.
fn is_empty_blob(d: &Digest) -> bool {
    static EMPTY: std::sync::OnceLock<Digest> = std::sync::OnceLock::new();
    *d == *EMPTY.get_or_init(|| Digest::of(b""))
}

fn empty_descriptor() -> OciDescriptor {
    OciDescriptor {
        media_type: EMPTY_MEDIA_TYPE.into(),
        digest: EMPTY_DIGEST.into(),
        size: EMPTY_DATA.len() as i64,
        ..OciDescriptor::default()
    }
}

/// The manifest of entry `(ns, key)` whose value is described by `layer`.
fn entry_manifest(ns: Namespace, key: &Digest, layer: OciDescriptor) -> OciImageManifest {
    OciImageManifest {
        schema_version: 2,
        media_type: Some(OCI_IMAGE_MEDIA_TYPE.into()),
        config: empty_descriptor(),
        layers: vec![layer],
        subject: None,
        artifact_type: Some(ENTRY_TYPE.into()),
        annotations: Some(BTreeMap::from([(
            ENTRY_ANNOTATION.to_string(),
            format!("{}/{}", ns.as_str(), key.to_hex()),
        )])),
    }
}

/// The layer of a manifest read back for `(ns, key)`, if the manifest is one of
/// larder's for that entry.
fn entry_layer(ns: Namespace, key: &Digest, body: &[u8]) -> Result<OciDescriptor, String> {
    let m: OciImageManifest =
        serde_json::from_slice(body).map_err(|e| format!("not an OCI image manifest: {e}"))?;
    let want = format!("{}/{}", ns.as_str(), key.to_hex());
    let named = m.annotations.as_ref().and_then(|a| a.get(ENTRY_ANNOTATION));
    if m.artifact_type.as_deref() != Some(ENTRY_TYPE) || named != Some(&want) {
        return Err(format!(
            "the manifest tagged {} is not larder's entry {want}",
            tag(ns, key)
        ));
    }
    match <[OciDescriptor; 1]>::try_from(m.layers) {
        Ok([layer]) if layer.size >= 0 => Ok(layer),
        _ => Err("the manifest does not have exactly one layer".into()),
    }
}

/// Whether `e` means the manifest, blob or repository does not exist.
fn is_absent(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|e| {
            matches!(
                e.code,
                OciErrorCode::ManifestUnknown
                    | OciErrorCode::BlobUnknown
                    | OciErrorCode::NameUnknown
                    | OciErrorCode::NotFound
            )
        }),
        OciDistributionError::ServerError { code, .. } => *code == 404,
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        _ => false,
    }
}

impl OciStore {
    /// Configures the backend for `spec`; no request is made.
    ///
    /// # Errors
    /// [`StoreError::Remote`] if the URL names no usable repository, the credentials
    /// cannot be read, or the HTTP client cannot be built.
    pub(crate) fn open(spec: &RemoteSpec) -> Result<OciStore, StoreError> {
        let url = spec.url();
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| spec.config_error("no registry host"))?;
        let registry = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        let repository = repository(url).map_err(|m| spec.config_error(m))?;
        let plain_http = plain_http(url);
        let auth = registry_auth(spec, &registry).map_err(|m| spec.config_error(m))?;
        let _guard = runtime::runtime()?.enter();
        let config = ClientConfig {
            protocol: if plain_http {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            // Two requests per blob instead of three or more; blobs are in memory anyway.
            use_monolithic_push: true,
            connect_timeout: Some(spec.timeout),
            platform_resolver: None,
            ..ClientConfig::default()
        };
        let client = Client::try_from(config)
            .map_err(|e| spec.config_error(format!("cannot set up the registry client: {e}")))?;
        let http = reqwest::Client::builder()
            .connect_timeout(spec.timeout)
            .build()
            .map_err(|e| spec.config_error(format!("cannot set up the HTTP client: {e}")))?;
        Ok(OciStore {
            name: spec.name(),
            registry,
            repository,
            plain_http,
            auth,
            client,
            http,
            timeout: spec.timeout,
            config_present: AtomicBool::new(false),
        })
    }

    /// The reference of tag `tag` in the repository.
    fn reference(&self, tag: String) -> Reference {
        Reference::with_tag(self.registry.clone(), self.repository.clone(), tag)
    }

    /// The reference blob operations go through (only its registry and repository count).
    fn repo_reference(&self) -> Reference {
        self.reference("larder".into())
    }

    /// Gives the client the credentials (once): the calls that take no credentials
    /// (blobs, pushing a manifest) use those it holds, which only the calls that take
    /// them (manifests) would otherwise have given it.
    async fn with_credentials(&self, reference: &Reference) {
        self.client
            .store_auth_if_needed(reference.resolve_registry(), &self.auth)
            .await;
    }

    /// Runs `fut` under the deadline for moving `bytes` bytes.
    fn run<T>(
        &self,
        bytes: u64,
        fut: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let deadline = runtime::deadline_for(self.timeout, bytes);
        runtime::block_on(&self.name, deadline, async move {
            Ok::<_, Infallible>(fut.await)
        })?
    }

    /// The error for a failed registry call.
    fn remote(&self, what: &str, e: &OciDistributionError) -> StoreError {
        let (message, timeout) = match e {
            OciDistributionError::UnauthorizedError { .. } => (
                "not authorized (HTTP 401): give credentials in the URL or the docker config"
                    .to_string(),
                false,
            ),
            OciDistributionError::RequestError(r) => {
                let mut m = if r.is_timeout() {
                    "timed out".to_string()
                } else if r.is_connect() {
                    "cannot connect".to_string()
                } else {
                    "request failed".to_string()
                };
                let mut source = std::error::Error::source(r);
                while let Some(s) = source {
                    m.push_str(": ");
                    m.push_str(&s.to_string());
                    source = s.source();
                }
                (m, r.is_timeout())
            }
            OciDistributionError::ServerError { code, message, .. } => (
                format!("HTTP {code}: {}", message.trim()),
                *code == 408 || *code == 504,
            ),
            other => (other.to_string(), false),
        };
        StoreError::Remote {
            backend: self.name.clone(),
            message: format!("{what}: {message}"),
            timeout,
        }
    }

    /// The manifest of `(ns, key)` and its digest, or `None`.
    async fn manifest(
        &self,
        ns: Namespace,
        key: &Digest,
    ) -> Result<Option<(Vec<u8>, String)>, StoreError> {
        let reference = self.reference(tag(ns, key));
        match self
            .client
            .pull_manifest_raw(&reference, &self.auth, &[OCI_IMAGE_MEDIA_TYPE])
            .await
        {
            Ok((body, digest)) => Ok(Some((body.to_vec(), digest))),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(self.remote(&format!("GET manifest {}", tag(ns, key)), &e)),
        }
    }

    /// The blob with digest `digest` (`sha256:…`), checked against it by the client, or
    /// `None`.
    async fn blob(
        &self,
        ns: Namespace,
        key: &Digest,
        layer: &OciDescriptor,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let mut out = Vec::with_capacity(usize::try_from(layer.size).unwrap_or(0));
        let reference = self.repo_reference();
        self.with_credentials(&reference).await;
        match self.client.pull_blob(&reference, layer, &mut out).await {
            Ok(()) => Ok(Some(out)),
            Err(e) if is_absent(&e) => Ok(None),
            Err(OciDistributionError::DigestError(e)) => {
                Err(StoreError::corrupt(ns, key, e.to_string()))
            }
            Err(e) => Err(self.remote(&format!("GET blob {}", layer.digest), &e)),
        }
    }

    /// The value of a record (or of the empty CAS blob): its manifest, then its blob.
    async fn get_entry(&self, ns: Namespace, key: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        let Some((body, _)) = self.manifest(ns, key).await? else {
            return Ok(None);
        };
        let layer = entry_layer(ns, key, &body).map_err(|d| StoreError::corrupt(ns, key, d))?;
        if layer.media_type == EMPTY_MEDIA_TYPE {
            return Ok(Some(Vec::new()));
        }
        let Some(value) = self.blob(ns, key, &layer).await? else {
            // The manifest outlived its blob (deleted with another entry of the same
            // bytes): a miss.
            return Ok(None);
        };
        if value.len() as u64 != layer.size as u64 {
            return Err(StoreError::corrupt(
                ns,
                key,
                format!("{} bytes, the manifest says {}", value.len(), layer.size),
            ));
        }
        Ok(Some(value))
    }

    /// A CAS blob, read by its digest.
    async fn get_cas(&self, key: &Digest, size: u64) -> Result<Option<Vec<u8>>, StoreError> {
        if is_empty_blob(key) {
            return self.get_entry(Namespace::Cas, key).await;
        }
        let layer = OciDescriptor {
            digest: oci_digest(key),
            size: i64::try_from(size).unwrap_or(0),
            ..OciDescriptor::default()
        };
        self.blob(Namespace::Cas, key, &layer).await
    }

    /// Makes sure the empty config blob is in the repository (once per process).
    async fn ensure_config(&self) -> Result<(), StoreError> {
        if self.config_present.load(Ordering::Relaxed) {
            return Ok(());
        }
        let reference = self.repo_reference();
        self.with_credentials(&reference).await;
        let exists = self
            .client
            .blob_exists(&reference, EMPTY_DIGEST)
            .await
            .map_err(|e| self.remote("HEAD blob (empty config)", &e))?;
        if !exists {
            self.client
                .push_blob(&reference, EMPTY_DATA, EMPTY_DIGEST)
                .await
                .map_err(|e| self.remote("push blob (empty config)", &e))?;
        }
        self.config_present.store(true, Ordering::Relaxed);
        Ok(())
    }

    async fn put_entry(&self, ns: Namespace, key: &Digest, value: &[u8]) -> Result<(), StoreError> {
        self.ensure_config().await?;
        let layer = if value.is_empty() {
            if ns == Namespace::Cas && !is_empty_blob(key) {
                return Err(StoreError::corrupt(
                    ns,
                    key,
                    "an empty value under another digest",
                ));
            }
            empty_descriptor()
        } else {
            // A CAS blob goes up under its key: the registry refuses one that does not
            // hash to it.
            let digest = oci_digest(&if ns == Namespace::Cas {
                *key
            } else {
                Digest::of(value)
            });
            self.client
                .push_blob(&self.repo_reference(), value.to_vec(), &digest)
                .await
                .map_err(|e| self.remote(&format!("push blob {digest}"), &e))?;
            OciDescriptor {
                media_type: format!("application/vnd.larder.{}.v1", ns.as_str()),
                digest,
                size: value.len() as i64,
                ..OciDescriptor::default()
            }
        };
        let manifest = OciManifest::Image(entry_manifest(ns, key, layer));
        self.client
            .push_manifest(&self.reference(tag(ns, key)), &manifest)
            .await
            .map_err(|e| self.remote(&format!("PUT manifest {}", tag(ns, key)), &e))?;
        Ok(())
    }

    /// `DELETE /v2/<repository>/<what>/<digest>`: `Ok(true)` if deleted, `Ok(false)` if
    /// it was not there.
    async fn delete_by_digest(&self, what: &str, digest: &str) -> Result<bool, StoreError> {
        let scheme = if self.plain_http { "http" } else { "https" };
        let url = format!(
            "{scheme}://{}/v2/{}/{what}/{digest}",
            self.registry, self.repository
        );
        let reference = self.repo_reference();
        let token = self
            .client
            .auth(&reference, &self.auth, RegistryOperation::Push)
            .await
            .map_err(|e| self.remote("authenticate", &e))?;
        let mut req = self.http.delete(&url);
        req = match (token, &self.auth) {
            (Some(token), _) => req.bearer_auth(token),
            (None, RegistryAuth::Basic(user, password)) => req.basic_auth(user, Some(password)),
            (None, _) => req,
        };
        let call = format!("DELETE {what}/{digest}");
        let resp = req.send().await.map_err(|e| {
            self.remote(&call, &OciDistributionError::RequestError(e.without_url()))
        })?;
        match resp.status().as_u16() {
            200..=299 => Ok(true),
            404 => Ok(false),
            405 => Err(StoreError::Unsupported {
                backend: self.name.clone(),
                operation: "delete entries (the registry refuses DELETE: on the \
                            distribution server, set storage.delete.enabled)",
            }),
            code => Err(self.remote(
                &call,
                &OciDistributionError::ServerError {
                    code,
                    url: String::new(),
                    message: resp.text().await.unwrap_or_default(),
                },
            )),
        }
    }

    async fn delete_entry(&self, ns: Namespace, key: &Digest) -> Result<(), StoreError> {
        if let Some((_, digest)) = self.manifest(ns, key).await? {
            self.delete_by_digest("manifests", &digest).await?;
        }
        if ns == Namespace::Cas && !is_empty_blob(key) {
            self.delete_by_digest("blobs", &oci_digest(key)).await?;
        }
        Ok(())
    }
}

impl Store for OciStore {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn capabilities(&self) -> Capabilities {
        crate::server_capabilities(true, None)
    }

    fn get(&self, ns: Namespace, key: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        if ns == Namespace::Cas {
            return self.run(0, self.get_cas(key, 0));
        }
        self.run(0, self.get_entry(ns, key))
    }

    fn put(&self, ns: Namespace, key: &Digest, value: &[u8]) -> Result<(), StoreError> {
        self.run(value.len() as u64, self.put_entry(ns, key, value))
    }

    fn delete(&self, ns: Namespace, key: &Digest) -> Result<(), StoreError> {
        self.run(0, self.delete_entry(ns, key))
    }

    fn contains(&self, ns: Namespace, key: &Digest) -> Result<bool, StoreError> {
        self.run(0, async { Ok(self.manifest(ns, key).await?.is_some()) })
    }

    fn get_blob(&self, digest: &Digest, size: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.run(size, self.get_cas(digest, size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(url: &str) -> RemoteSpec {
        RemoteSpec::parse(url, false, Duration::from_secs(1)).unwrap()
    }

    #[test]
    fn plain_http_only_for_loopback_or_when_asked() {
        for (u, plain) in [
            ("oci://127.0.0.1:5000/r", true),
            ("oci://127.8.9.10/r", true),
            ("oci://localhost:5000/r", true),
            ("oci://LOCALHOST/r", true),
            ("oci://[::1]:5000/r", true),
            ("oci://registry.example/r", false),
            ("oci://10.0.0.1:5000/r", false),
            ("oci://localhost.example/r", false),
            ("oci://[::2]/r", false),
            ("oci+http://registry.lan:5000/r", true),
        ] {
            assert_eq!(plain_http(spec(u).url()), plain, "{u}");
        }
    }

    #[test]
    fn repository_names() {
        let s = OciStore::open(&spec("oci://reg.example:5000/team/larder-cache/x.y")).unwrap();
        assert_eq!(s.registry, "reg.example:5000");
        assert_eq!(s.repository, "team/larder-cache/x.y");
        assert!(!s.plain_http);
        let s = OciStore::open(&spec("oci://[::1]:5000/r/")).unwrap();
        assert_eq!(
            (s.registry.as_str(), s.repository.as_str()),
            ("[::1]:5000", "r")
        );
        assert!(s.plain_http);
        for ok in ["a", "a_b", "a__b", "a---b", "a.b/c-d/e0"] {
            assert!(valid_component(ok.split('/').next().unwrap()), "{ok}");
        }
        for bad in ["", "A", "-a", "a-", "a._b", "a___b", "a..b", "a b"] {
            assert!(!valid_component(bad), "{bad}");
        }
    }

    #[test]
    fn tags_are_valid_and_distinct() {
        let k = Digest::of(b"k");
        let t = tag(Namespace::Manifest, &k);
        assert_eq!(t, format!("manifest-{}", k.to_hex()));
        assert!(t.len() <= 128);
        assert_ne!(tag(Namespace::Action, &k), tag(Namespace::Cas, &k));
    }

    #[test]
    fn manifests_name_their_entry() {
        let k = Digest::of(b"k");
        let m = entry_manifest(Namespace::Action, &k, empty_descriptor());
        let body = serde_json::to_vec(&m).unwrap();
        let layer = entry_layer(Namespace::Action, &k, &body).unwrap();
        assert_eq!(layer.media_type, EMPTY_MEDIA_TYPE);
        // Another entry's manifest (same bytes, another key or namespace) is not taken.
        assert!(entry_layer(Namespace::Manifest, &k, &body).is_err());
        assert!(entry_layer(Namespace::Action, &Digest::of(b"j"), &body).is_err());
        assert!(entry_layer(Namespace::Action, &k, b"{}").is_err());
        assert_eq!(
            oci_digest(&Digest::of(EMPTY_DATA)),
            EMPTY_DIGEST,
            "the empty descriptor's digest"
        );
    }

    #[test]
    fn url_credentials_win_and_never_show() {
        let s = OciStore::open(&spec("oci://ci:hunter2@reg.example/r")).unwrap();
        assert_eq!(s.auth, RegistryAuth::Basic("ci".into(), "hunter2".into()));
        assert!(!format!("{s:?}").contains("hunter2"), "{s:?}");
        assert!(!s.name().contains("hunter2"), "{}", s.name());
    }

    #[test]
    fn dead_registry_is_a_remote_error_at_once() {
        // Port 9 (discard) on localhost: nothing listens in the test environment.
        let s = OciStore::open(&spec("oci://u:hunter2@127.0.0.1:9/r")).unwrap();
        let t = std::time::Instant::now();
        for r in [
            s.get(Namespace::Action, &Digest::of(b"k")).map(|_| ()),
            s.put(Namespace::Action, &Digest::of(b"k"), b"v"),
            s.contains(Namespace::Cas, &Digest::of(b"k")).map(|_| ()),
        ] {
            match r {
                Err(e @ StoreError::Remote { .. }) => {
                    let text = e.to_string();
                    assert!(text.contains("127.0.0.1:9"), "{text}");
                    assert!(!text.contains("hunter2"), "{text}");
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    }

    #[test]
    fn capabilities() {
        let c = OciStore::open(&spec("oci://reg.example/r"))
            .unwrap()
            .capabilities();
        assert!(c.write && c.expires && c.delete && !c.list);
        assert_eq!(c.max_value_size, None);
    }
}
