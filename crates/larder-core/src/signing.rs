//! Signing keys for action records (issue 12): ed25519 keys named with a rotation suffix,
//! as Nix names its binary-cache keys (`team-ci-1`).
//!
//! Forms, both one line of text:
//! - a secret key file: `NAME:<base64 of the 32-byte seed and the 32-byte public key>`,
//!   written with mode 0600 (`larder key generate --out FILE`);
//! - a public key: `NAME:<base64 of the 32-byte public key>`, what readers list as
//!   trusted.
//!
//! The key pair is `ed25519-dalek`'s; the seed comes from the operating system's random
//! source (`getrandom`).

use std::fmt;
use std::io::Write as _;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

/// A signing key and its name.
#[derive(Clone)]
pub struct SecretKey {
    /// The key's name (`team-ci-1`).
    pub name: String,
    key: SigningKey,
}

/// A public key and its name, as readers trust it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// The key's name (`team-ci-1`).
    pub name: String,
    key: VerifyingKey,
}

/// A key that cannot be made, read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The name is empty or holds `:` or white space.
    #[error("key name {0:?}: use letters, digits, '.', '-' and '_' (e.g. team-ci-1)")]
    Name(String),
    /// The key text is not `NAME:<base64>` of the right length.
    #[error("{what}: not a larder {kind} key (expected NAME:<base64>)")]
    Malformed {
        /// Where the text came from (a path, `LARDER_TRUSTED_KEYS`).
        what: String,
        /// `secret` or `public`.
        kind: &'static str,
    },
    /// The file exists: a key is never overwritten.
    #[error("{0} exists: larder never overwrites a key (remove it or choose another file)")]
    Exists(String),
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The operating system gave no random bytes.
    #[error("no random bytes from the operating system: {0}")]
    Random(String),
}

/// Whether `name` may name a key.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

impl SecretKey {
    /// A new key named `name`.
    ///
    /// # Errors
    /// [`KeyError::Name`] for a name that is not allowed, [`KeyError::Random`] if the
    /// operating system gives no random bytes.
    pub fn generate(name: &str) -> Result<SecretKey, KeyError> {
        if !valid_name(name) {
            return Err(KeyError::Name(name.to_string()));
        }
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(SecretKey {
            name: name.to_string(),
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// Parses a secret key file's text; `what` names it in errors.
    ///
    /// # Errors
    /// [`KeyError::Malformed`] unless it is `NAME:<base64 of 64 bytes>` with a valid
    /// name, whose second half is the public key of the first.
    pub fn parse(text: &str, what: &str) -> Result<SecretKey, KeyError> {
        let (name, bytes, bad) = named::<64>(text, what, "secret")?;
        let key = SigningKey::from_keypair_bytes(&bytes).map_err(|_| bad)?;
        Ok(SecretKey { name, key })
    }

    /// Reads a secret key file; errors name `what` (`LARDER_SIGNING_KEY=/path`).
    ///
    /// # Errors
    /// [`KeyError::Io`] if it cannot be read, [`KeyError::Malformed`] if it is not a key.
    pub fn read(path: &Path, what: &str) -> Result<SecretKey, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: what.to_string(),
            source,
        })?;
        SecretKey::parse(&text, what)
    }

    /// The signature of `message`, base64.
    pub fn sign(&self, message: &[u8]) -> String {
        BASE64.encode(self.key.sign(message).to_bytes())
    }

    /// The public key.
    pub fn public(&self) -> PublicKey {
        PublicKey {
            name: self.name.clone(),
            key: self.key.verifying_key(),
        }
    }

    /// Writes the key to `path` (mode 0600 on Unix), which must not exist.
    ///
    /// # Errors
    /// [`KeyError::Exists`] if it does, [`KeyError::Io`] if it cannot be written.
    pub fn write_new(&self, path: &Path) -> Result<(), KeyError> {
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                KeyError::Exists(path.display().to_string())
            } else {
                io(e)
            }
        })?;
        writeln!(
            file,
            "{}:{}",
            self.name,
            BASE64.encode(self.key.to_keypair_bytes())
        )
        .and_then(|()| file.sync_all())
        .map_err(io)
    }
}

/// Two secret keys are the same key if their public halves are.
impl PartialEq for SecretKey {
    fn eq(&self, other: &SecretKey) -> bool {
        self.public() == other.public()
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl PublicKey {
    /// Parses `NAME:<base64 of 32 bytes>`; `what` names its source in errors.
    ///
    /// # Errors
    /// [`KeyError::Malformed`] unless it is one.
    pub fn parse(text: &str, what: &str) -> Result<PublicKey, KeyError> {
        let (name, bytes, bad) = named::<32>(text, what, "public")?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| bad)?;
        Ok(PublicKey { name, key })
    }
}

impl PublicKey {
    /// Whether `signature` (base64) is this key's signature of `message`.
    pub fn verifies(&self, message: &[u8], signature: &str) -> bool {
        let Ok(bytes) = BASE64.decode(signature) else {
            return false;
        };
        let Ok(sig) = Signature::from_slice(&bytes) else {
            return false;
        };
        self.key.verify_strict(message, &sig).is_ok()
    }
}

impl fmt::Display for PublicKey {
    /// `NAME:<base64>`, the form readers list as trusted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, BASE64.encode(self.key.as_bytes()))
    }
}

/// `NAME:<base64 of N bytes>` (a `kind` key from `what`) split into a valid name and the
/// bytes, with the error to give if the bytes are not a key either.
fn named<const N: usize>(
    text: &str,
    what: &str,
    kind: &'static str,
) -> Result<(String, [u8; N], KeyError), KeyError> {
    let bad = || KeyError::Malformed {
        what: what.to_string(),
        kind,
    };
    let (name, b64) = text.trim().split_once(':').ok_or_else(bad)?;
    if !valid_name(name) {
        return Err(bad());
    }
    let bytes = BASE64.decode(b64).map_err(|_| bad())?;
    let bytes: [u8; N] = bytes.try_into().map_err(|_| bad())?;
    Ok((name.to_string(), bytes, bad()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("team-ci-1.secret");
        let key = SecretKey::generate("team-ci-1").unwrap();
        key.write_new(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let back = SecretKey::parse(&text, "file").unwrap();
        assert_eq!(back.public(), key.public());
        let public = key.public().to_string();
        assert!(public.starts_with("team-ci-1:"), "{public}");
        assert_eq!(PublicKey::parse(&public, "line").unwrap(), key.public());
        // Two keys differ.
        assert_ne!(
            SecretKey::generate("team-ci-1").unwrap().public(),
            key.public()
        );
    }

    #[test]
    fn a_key_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, "precious").unwrap();
        let e = SecretKey::generate("k")
            .unwrap()
            .write_new(&path)
            .unwrap_err();
        assert!(matches!(e, KeyError::Exists(_)), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
    }

    #[test]
    fn bad_names_and_texts_are_refused() {
        for name in ["", "a:b", "a b", "ключ"] {
            assert!(
                matches!(SecretKey::generate(name), Err(KeyError::Name(_))),
                "{name}"
            );
        }
        let key = SecretKey::generate("k-1").unwrap();
        let public = key.public().to_string();
        // A public key is not a secret key, a truncated one is nothing.
        assert!(SecretKey::parse(&public, "x").is_err());
        assert!(PublicKey::parse(&public[..public.len() - 4], "x").is_err());
        assert!(PublicKey::parse("no-colon", "x").is_err());
        // A keypair whose halves do not match is refused.
        let mut bytes = key.key.to_keypair_bytes();
        bytes[40] ^= 1;
        let forged = format!("k-1:{}", BASE64.encode(bytes));
        assert!(SecretKey::parse(&forged, "x").is_err());
        // The secret never shows in Debug.
        assert!(!format!("{key:?}").contains(&BASE64.encode(key.key.to_bytes())));
    }
}
