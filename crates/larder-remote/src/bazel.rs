//! The Bazel remote-cache data model, shared by the bazel-remote HTTP backend
//! ([`crate::http`]) and the REAPI backend ([`crate::reapi`]).
//!
//! Both protocols know two kinds of entry: content-addressed blobs (the CAS) and action
//! cache (AC) entries, which map an action digest to an `ActionResult` protobuf. larder
//! maps its namespaces onto them so that every larder client computes the same names:
//!
//! - [`Namespace::Cas`], digest `D`, size `S`: the server's CAS blob `D/S`, raw bytes.
//!   larder's CAS keys are the SHA-256 of the uncompressed content, which is exactly the
//!   REAPI default digest function, so no translation is needed.
//! - Any other namespace, key `K`: an AC entry under the action digest of the bytes
//!   `larder/v1/<ns>/<hex K>` ([`action_digest`]). Its `ActionResult` has `exit_code` 0
//!   and `stdout_digest` = the digest of the record's bytes, which are uploaded to the CAS
//!   first (servers that check that referenced blobs exist then accept the entry).
//!   Reading takes the record from `stdout_raw` when the server inlined it, else from the
//!   CAS blob `stdout_digest` names, and checks it against `stdout_digest`
//!   ([`record_source`], [`check_record`]).
//!
//! An AC entry that does not decode, has no `stdout_digest`, or whose record does not
//! hash to it is [`StoreError::Corrupt`].

use bazel_remote_apis::build::bazel::remote::execution::v2 as re;
use larder_digest::Digest;
use larder_store::{Namespace, StoreError};
use prost::Message;

/// The prefix of the bytes an action digest is computed from; the version lets a future
/// layout live beside this one.
const ACTION_KEY_PREFIX: &[u8] = b"larder/v1/";

/// The bytes whose digest names the AC entry of `key` in `ns`:
/// `larder/v1/<ns>/<hex key>`.
pub(crate) fn action_key_bytes(ns: Namespace, key: &Digest) -> Vec<u8> {
    let mut out = Vec::with_capacity(ACTION_KEY_PREFIX.len() + 10 + 64);
    out.extend_from_slice(ACTION_KEY_PREFIX);
    out.extend_from_slice(ns.as_str().as_bytes());
    out.push(b'/');
    out.extend_from_slice(key.to_hex().as_bytes());
    out
}

/// The REAPI action digest under which the record `key` of `ns` is stored: the SHA-256
/// and length of [`action_key_bytes`]. Deterministic, so every client finds the entries
/// every other client wrote.
pub(crate) fn action_digest(ns: Namespace, key: &Digest) -> re::Digest {
    let bytes = action_key_bytes(ns, key);
    blob_digest(&Digest::of(&bytes), bytes.len() as u64)
}

/// The REAPI digest of the blob with SHA-256 `digest` and `size` bytes.
pub(crate) fn blob_digest(digest: &Digest, size: u64) -> re::Digest {
    re::Digest {
        hash: digest.to_hex(),
        size_bytes: i64::try_from(size).unwrap_or(i64::MAX),
    }
}

/// The `ActionResult` that holds a record whose bytes hash to `record` and are `size`
/// bytes long (the bytes themselves go to the CAS).
pub(crate) fn action_result(record: &Digest, size: u64) -> re::ActionResult {
    re::ActionResult {
        exit_code: 0,
        stdout_digest: Some(blob_digest(record, size)),
        ..Default::default()
    }
}

/// [`action_result`] serialized as protobuf (the body of an HTTP `/ac/` entry).
pub(crate) fn encode_action_result(record: &Digest, size: u64) -> Vec<u8> {
    action_result(record, size).encode_to_vec()
}

/// Decodes the body of an HTTP `/ac/` entry; bytes that are not an `ActionResult` are
/// [`StoreError::Corrupt`] for the entry `key` of `ns`.
pub(crate) fn decode_action_result(
    ns: Namespace,
    key: &Digest,
    bytes: &[u8],
) -> Result<re::ActionResult, StoreError> {
    re::ActionResult::decode(bytes)
        .map_err(|e| StoreError::corrupt(ns, key, format!("not an ActionResult: {e}")))
}

/// Where the record of an AC entry is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RecordSource {
    /// The server inlined it (`stdout_raw`); still to be checked against the digest.
    Inline {
        /// The record bytes.
        bytes: Vec<u8>,
        /// Their expected SHA-256.
        digest: Digest,
        /// Their expected length.
        size: u64,
    },
    /// It is the CAS blob with this SHA-256 and length.
    Cas {
        /// The blob's SHA-256.
        digest: Digest,
        /// The blob's length.
        size: u64,
    },
}

/// Where the record of `result` (the AC entry `key` of `ns`) is to be read from.
///
/// # Errors
/// [`StoreError::Corrupt`] if the entry has no `stdout_digest` or its digest is not a
/// SHA-256 with a valid size.
pub(crate) fn record_source(
    ns: Namespace,
    key: &Digest,
    result: re::ActionResult,
) -> Result<RecordSource, StoreError> {
    let Some(d) = result.stdout_digest else {
        return Err(StoreError::corrupt(
            ns,
            key,
            "ActionResult has no stdout_digest",
        ));
    };
    let digest: Digest = d
        .hash
        .parse()
        .map_err(|e| StoreError::corrupt(ns, key, format!("stdout_digest: {e}")))?;
    let size = u64::try_from(d.size_bytes).map_err(|_| {
        StoreError::corrupt(ns, key, format!("stdout_digest size {}", d.size_bytes))
    })?;
    if !result.stdout_raw.is_empty() || size == 0 {
        Ok(RecordSource::Inline {
            bytes: result.stdout_raw,
            digest,
            size,
        })
    } else {
        Ok(RecordSource::Cas { digest, size })
    }
}

/// Checks that `bytes`, the record of the AC entry `key` of `ns`, match the digest and
/// size the entry names.
///
/// # Errors
/// [`StoreError::Corrupt`] on a mismatch.
pub(crate) fn check_record(
    ns: Namespace,
    key: &Digest,
    bytes: &[u8],
    digest: &Digest,
    size: u64,
) -> Result<(), StoreError> {
    if bytes.len() as u64 != size {
        return Err(StoreError::corrupt(
            ns,
            key,
            format!("record is {} bytes, its entry says {size}", bytes.len()),
        ));
    }
    let actual = Digest::of(bytes);
    if actual != *digest {
        return Err(StoreError::corrupt(
            ns,
            key,
            format!("record hashes to {actual}, its entry says {digest}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_digests_are_deterministic_and_distinct() {
        let k = Digest::of(b"key");
        let a = action_digest(Namespace::Action, &k);
        assert_eq!(a, action_digest(Namespace::Action, &k));
        assert_ne!(a, action_digest(Namespace::Manifest, &k));
        assert_ne!(a, action_digest(Namespace::Action, &Digest::of(b"other")));
        let text = format!("larder/v1/ac/{}", k.to_hex());
        assert_eq!(action_key_bytes(Namespace::Action, &k), text.as_bytes());
        assert_eq!(a.hash, Digest::of(text.as_bytes()).to_hex());
        assert_eq!(a.size_bytes, text.len() as i64);
        // Pinned: other clients compute the same name.
        assert_eq!(
            action_digest(Namespace::Link, &Digest::from_bytes([0; 32])).size_bytes,
            10 + 4 + 1 + 64
        );
    }

    #[test]
    fn action_results_round_trip() {
        let record = b"{\"record\":1}";
        let d = Digest::of(record);
        let k = Digest::of(b"k");
        let bytes = encode_action_result(&d, record.len() as u64);
        let ar = decode_action_result(Namespace::Action, &k, &bytes).unwrap();
        assert_eq!(ar.exit_code, 0);
        assert_eq!(
            record_source(Namespace::Action, &k, ar).unwrap(),
            RecordSource::Cas {
                digest: d,
                size: record.len() as u64
            }
        );
        check_record(Namespace::Action, &k, record, &d, record.len() as u64).unwrap();
    }

    #[test]
    fn inlined_and_empty_records() {
        let k = Digest::of(b"k");
        let record = b"inline me".to_vec();
        let mut ar = action_result(&Digest::of(&record), record.len() as u64);
        ar.stdout_raw = record.clone();
        match record_source(Namespace::Manifest, &k, ar).unwrap() {
            RecordSource::Inline {
                bytes,
                digest,
                size,
            } => check_record(Namespace::Manifest, &k, &bytes, &digest, size).unwrap(),
            other => panic!("{other:?}"),
        }
        // An empty record is never fetched: its bytes are known.
        let ar = action_result(&Digest::of(b""), 0);
        assert!(matches!(
            record_source(Namespace::Link, &k, ar).unwrap(),
            RecordSource::Inline { ref bytes, size: 0, .. } if bytes.is_empty()
        ));
    }

    #[test]
    fn bad_entries_are_corrupt() {
        let k = Digest::of(b"k");
        let is_corrupt = |r: Result<_, StoreError>| matches!(r, Err(StoreError::Corrupt { .. }));
        assert!(is_corrupt(
            decode_action_result(Namespace::Action, &k, b"\xff\xff\xff").map(|_| ())
        ));
        assert!(is_corrupt(
            record_source(Namespace::Action, &k, re::ActionResult::default()).map(|_| ())
        ));
        let mut ar = action_result(&Digest::of(b"x"), 1);
        ar.stdout_digest.as_mut().unwrap().hash = "md5ish".into();
        assert!(is_corrupt(
            record_source(Namespace::Action, &k, ar).map(|_| ())
        ));
        let d = Digest::of(b"good");
        assert!(is_corrupt(check_record(
            Namespace::Action,
            &k,
            b"evil",
            &d,
            4
        )));
        assert!(is_corrupt(check_record(
            Namespace::Action,
            &k,
            b"good!",
            &d,
            4
        )));
    }
}
