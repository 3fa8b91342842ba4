//! Signed action records: a build with a signing key signs each record it stores, and a
//! tier that requires signatures serves only records signed by a trusted key.
//!
//! - **Signing** ([`sign`]): the producer's [`SecretKey`] signs
//!   [`ActionRecord::signed_bytes`] (the result key, every output's path, digest, size
//!   and executable bit, the messages, the exit code), and the signature travels inside
//!   the record's bytes, so every backend (REAPI included) carries it and a record
//!   copied into a faster tier, exported or pushed further keeps it.
//! - **Checking** ([`Trust`]): a record is trusted if one of its signatures is by a key
//!   of the trusted list (by name, then verified); the producer's own key is trusted
//!   too. The tier chain asks [`Trust`] through [`larder_remote::Admit`] before it uses
//!   or backfills a record, only for tiers that require signatures.
//! - **What it binds**: a signature covers the result key, so a record cannot be moved
//!   under another key; a manifest entry is checked to lead to its own result key (the
//!   lookup recomputes it from the invocation key and the entry's inputs), so a forged
//!   manifest cannot point a unit at another unit's signed record. Blobs are checked
//!   against their digests as always.

use larder_digest::Digest;
use larder_store::{ActionRecord, RecordSignature};

use crate::signing::{PublicKey, SecretKey};

/// Signs `record`, to be stored under `key`, with `signer`: replaces a signature by a
/// key of the same name.
pub fn sign(signer: &SecretKey, key: &Digest, record: &mut ActionRecord) {
    record.signatures.retain(|s| s.key != signer.name);
    let sig = signer.sign(&record.signed_bytes(key));
    record.signatures.push(RecordSignature {
        key: signer.name.clone(),
        sig,
    });
}

/// What a record's signatures say to a reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Signed by this trusted key (its name).
    Trusted(String),
    /// No signature.
    Unsigned,
    /// Signed only by keys the reader does not trust (their names).
    Untrusted(Vec<String>),
    /// A signature under a trusted key's name does not verify (the name): the record or
    /// the signature was changed.
    Invalid(String),
}

impl Verdict {
    /// Why a record with this verdict is refused where signatures are required, or
    /// `None` if it is trusted.
    pub fn refusal(&self) -> Option<String> {
        match self {
            Verdict::Trusted(_) => None,
            Verdict::Unsigned => Some("unsigned".to_string()),
            Verdict::Untrusted(names) => {
                Some(format!("signed by {}, not trusted", names.join(", ")))
            }
            Verdict::Invalid(name) => Some(format!("invalid signature by {name}")),
        }
    }
}

/// The keys a reader trusts.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    keys: Vec<PublicKey>,
}

impl Trust {
    /// Trusts `keys`.
    pub fn new(keys: Vec<PublicKey>) -> Trust {
        Trust { keys }
    }

    /// What `record`'s signatures say, for a record stored under `key`.
    pub fn check(&self, key: &Digest, record: &ActionRecord) -> Verdict {
        self.check_message(&record.signed_bytes(key), &record.signatures)
    }

    /// What `signatures` say about `message` (the bytes a signer signed: a record's
    /// [`ActionRecord::signed_bytes`], a seed's [`crate::seed::remote::signed_bytes`]).
    pub fn check_message(&self, message: &[u8], signatures: &[RecordSignature]) -> Verdict {
        if signatures.is_empty() {
            return Verdict::Unsigned;
        }
        let mut invalid = None;
        let mut untrusted = Vec::new();
        for s in signatures {
            let mut named = self.keys.iter().filter(|k| k.name == s.key).peekable();
            if named.peek().is_none() {
                untrusted.push(s.key.clone());
                continue;
            }
            if named.any(|k| k.verifies(message, &s.sig)) {
                return Verdict::Trusted(s.key.clone());
            }
            invalid.get_or_insert_with(|| s.key.clone());
        }
        match invalid {
            Some(name) => Verdict::Invalid(name),
            None => Verdict::Untrusted(untrusted),
        }
    }

    /// `Ok` for a trusted verdict, else why it is refused (naming `LARDER_TRUSTED_KEYS`
    /// when no key is trusted at all).
    pub fn refusal(&self, verdict: &Verdict) -> Result<(), String> {
        match verdict.refusal() {
            None => Ok(()),
            Some(reason) if self.keys.is_empty() => {
                Err(format!("{reason}; no key is trusted (LARDER_TRUSTED_KEYS)"))
            }
            Some(reason) => Err(reason),
        }
    }
}

impl larder_remote::Admit for Trust {
    /// A tier that does not require signatures admits every record; one that does
    /// admits a trusted one. Bytes that are not a record are admitted: the restore
    /// finds them corrupt and drops them.
    fn admit(&self, required: bool, key: &Digest, record: &[u8]) -> Result<(), String> {
        if !required {
            return Ok(());
        }
        let Ok(record) = serde_json::from_slice::<ActionRecord>(record) else {
            return Ok(());
        };
        self.refusal(&self.check(key, &record))
    }
}

#[cfg(test)]
mod tests {
    use larder_store::OutputFile;

    use super::*;

    fn record() -> ActionRecord {
        ActionRecord {
            crate_name: "a".into(),
            outputs: vec![
                OutputFile {
                    path: "@@larder:target@@/debug/deps/liba-1.rlib".into(),
                    digest: Digest::of(b"rlib"),
                    size: 4,
                    executable: false,
                    rewrite_paths: false,
                },
                OutputFile {
                    path: "@@larder:target@@/debug/deps/liba-1.rmeta".into(),
                    digest: Digest::of(b"rmeta"),
                    size: 5,
                    executable: false,
                    rewrite_paths: false,
                },
            ],
            stdout: String::new(),
            stderr: "warning: unused".into(),
            compile_secs: 1.0,
            exit_code: 0,
            link_deps: vec![],
            origin: Some(Digest::of(b"here")),
            signatures: vec![],
        }
    }

    #[test]
    fn a_signed_record_is_trusted_only_as_signed_and_under_its_key() {
        let team = SecretKey::generate("team-ci-1").unwrap();
        let other = SecretKey::generate("mallory-1").unwrap();
        let trust = Trust::new(vec![team.public()]);
        let key = Digest::of(b"result");
        let mut r = record();
        assert_eq!(trust.check(&key, &r), Verdict::Unsigned);
        sign(&team, &key, &mut r);
        assert_eq!(trust.check(&key, &r), Verdict::Trusted("team-ci-1".into()));
        // Survives the trip through the stored bytes; compile time is not covered.
        let mut back: ActionRecord =
            serde_json::from_slice(&serde_json::to_vec(&r).unwrap()).unwrap();
        back.compile_secs = 99.0;
        assert_eq!(
            trust.check(&key, &back),
            Verdict::Trusted("team-ci-1".into())
        );
        // Under another key, or with any covered field changed: invalid.
        assert_eq!(
            trust.check(&Digest::of(b"x"), &r),
            Verdict::Invalid("team-ci-1".into())
        );
        type Change = Box<dyn Fn(&mut ActionRecord)>;
        let tampered: Vec<Change> = vec![
            Box::new(|r| r.outputs.swap(0, 1)),
            Box::new(|r| r.outputs[0].digest = Digest::of(b"evil")),
            Box::new(|r| r.outputs[0].size += 1),
            Box::new(|r| r.outputs[0].executable = true),
            Box::new(|r| r.outputs[0].path.push('x')),
            Box::new(|r| r.stderr.clear()),
            Box::new(|r| r.exit_code = 1),
            Box::new(|r| r.link_deps.push("libz.rlib".into())),
            Box::new(|r| r.crate_name = "b".into()),
            Box::new(|r| r.outputs.pop().map(drop).unwrap_or(())),
            Box::new(|r| r.origin = None),
        ];
        for (i, t) in tampered.iter().enumerate() {
            let mut x = r.clone();
            t(&mut x);
            assert_eq!(
                trust.check(&key, &x),
                Verdict::Invalid("team-ci-1".into()),
                "change {i}"
            );
        }
        // A forged signature under the team's name is invalid, by another key untrusted.
        let mut forged = record();
        sign(&other, &key, &mut forged);
        assert_eq!(
            trust.check(&key, &forged),
            Verdict::Untrusted(vec!["mallory-1".into()])
        );
        forged.signatures[0].key = "team-ci-1".into();
        assert_eq!(
            trust.check(&key, &forged),
            Verdict::Invalid("team-ci-1".into())
        );
        forged.signatures[0].sig = "not base64!".into();
        assert_eq!(
            trust.check(&key, &forged),
            Verdict::Invalid("team-ci-1".into())
        );
    }

    #[test]
    fn rotation_trusts_either_key_and_admission_follows_the_tier() {
        use larder_remote::Admit as _;
        let old = SecretKey::generate("team-ci-1").unwrap();
        let new = SecretKey::generate("team-ci-2").unwrap();
        let key = Digest::of(b"result");
        let (mut a, mut b) = (record(), record());
        sign(&old, &key, &mut a);
        sign(&new, &key, &mut b);
        let both = Trust::new(vec![old.public(), new.public()]);
        let only_new = Trust::new(vec![new.public()]);
        let bytes = |r: &ActionRecord| serde_json::to_vec(r).unwrap();
        assert!(both.admit(true, &key, &bytes(&a)).is_ok());
        assert!(both.admit(true, &key, &bytes(&b)).is_ok());
        assert_eq!(
            only_new.admit(true, &key, &bytes(&a)).unwrap_err(),
            "signed by team-ci-1, not trusted"
        );
        // A tier that does not require signatures takes anything.
        assert!(only_new.admit(false, &key, &bytes(&a)).is_ok());
        assert!(only_new.admit(false, &key, &bytes(&record())).is_ok());
        let none = Trust::default()
            .admit(true, &key, &bytes(&record()))
            .unwrap_err();
        assert!(
            none.contains("unsigned") && none.contains("LARDER_TRUSTED_KEYS"),
            "{none}"
        );
    }
}
