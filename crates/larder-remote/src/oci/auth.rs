//! The OCI tier's credentials: a user and password in the URL, else the docker config's
//! for the registry (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`: `auths`
//! entries and credential helpers, read with `docker_credential`), else anonymous.

use std::path::PathBuf;

use oci_client::secrets::RegistryAuth;

use crate::RemoteSpec;

/// Credentials from the docker config at `config` (its bytes) for `registry`
/// (`host[:port]`): the `auths` entry or credential helper for the registry, under any of
/// the names docker files it by. `Ok(None)` when there is none.
///
/// # Errors
/// A credential larder cannot use (an identity token) or cannot decode.
fn credential_from_docker_config(
    config: &[u8],
    registry: &str,
) -> Result<Option<RegistryAuth>, String> {
    use docker_credential::{CredentialRetrievalError as E, DockerCredential};
    let mut names = vec![
        registry.to_string(),
        format!("https://{registry}"),
        format!("http://{registry}"),
    ];
    if matches!(
        registry,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    ) {
        names.push("https://index.docker.io/v1/".into());
    }
    for name in &names {
        match docker_credential::get_credential_from_reader(config, name) {
            Ok(DockerCredential::UsernamePassword(user, password)) => {
                return Ok(Some(RegistryAuth::Basic(user, password)));
            }
            Ok(DockerCredential::IdentityToken(_)) => {
                return Err(format!(
                    "the docker config's credential for {name} is an identity token, which \
                     larder cannot use: give a user and password (or access token) in the URL"
                ));
            }
            Err(E::CredentialDecodingError | E::CredentialMismatchError) => {
                return Err(format!(
                    "the docker config's credential for {name} cannot be decoded"
                ));
            }
            // No entry under this name, or a credential helper that has none (or failed):
            // try the next name, then go anonymous; a registry that wants credentials
            // then answers 401, which names the fix.
            Err(e) => {
                tracing::debug!("docker config, {name}: {e:?}");
            }
        }
    }
    Ok(None)
}

/// The docker config file: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
fn docker_config_path() -> Option<PathBuf> {
    // larder-remote's credential lookup: docker's own variables, read as docker does.
    #[allow(clippy::disallowed_methods)]
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    let dir = var("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".docker")))?;
    Some(dir.join("config.json"))
}

/// The credentials for `spec`'s registry: the URL's, else the docker config's, else
/// anonymous.
pub(super) fn registry_auth(spec: &RemoteSpec, registry: &str) -> Result<RegistryAuth, String> {
    if let Some((user, password)) = spec.credentials() {
        return Ok(RegistryAuth::Basic(user, password.unwrap_or_default()));
    }
    let Some(path) = docker_config_path() else {
        return Ok(RegistryAuth::Anonymous);
    };
    let config = match std::fs::read(&path) {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(RegistryAuth::Anonymous),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    Ok(credential_from_docker_config(&config, registry)?.unwrap_or(RegistryAuth::Anonymous))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_credentials() {
        // "ci:hunter2", base64.
        let config = br#"{"auths":{"reg.example:5000":{"auth":"Y2k6aHVudGVyMg=="},
            "https://other.example":{"username":"u","password":"p"}}}"#;
        assert_eq!(
            credential_from_docker_config(config, "reg.example:5000").unwrap(),
            Some(RegistryAuth::Basic("ci".into(), "hunter2".into()))
        );
        assert_eq!(
            credential_from_docker_config(config, "other.example").unwrap(),
            Some(RegistryAuth::Basic("u".into(), "p".into()))
        );
        assert_eq!(
            credential_from_docker_config(config, "third.example").unwrap(),
            None
        );
        let token = br#"{"auths":{"reg.example":{"identitytoken":"secret"}}}"#;
        let e = credential_from_docker_config(token, "reg.example").unwrap_err();
        assert!(e.contains("identity token") && !e.contains("secret"), "{e}");
    }
}
