//! Content digests for larder.
//!
//! Every blob in the content-addressed store (CAS), every cache key and every input
//! fingerprint is a [`Digest`]: the SHA-256 of some bytes, 32 bytes, printed as 64
//! lowercase hex characters. SHA-256 is the default digest function of the Bazel Remote
//! Execution API and of bazel-remote's `/cas/<sha256>` paths, so a digest computed here is
//! valid on those servers without translation; on x86_64 with SHA-NI it hashes at well
//! over 1 GB/s.
//!
//! [`KeyHasher`] builds digests from typed, length-prefixed fields so that two different
//! field sequences can never produce the same byte stream (no ambiguity between
//! `("ab", "c")` and `("a", "bc")`). It never hashes `std::hash::Hash` or `Debug` output,
//! whose formats are not stable across Rust versions.
#![deny(missing_docs)]

use std::fmt;
use std::io::{self, Read};
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

/// A SHA-256 digest (32 bytes).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(Sha256::digest(bytes).into())
    }

    /// The digest of everything `reader` yields, and the number of bytes read.
    ///
    /// # Errors
    /// Any error the reader returns.
    pub fn of_reader(reader: impl Read) -> io::Result<(Digest, u64)> {
        let mut hasher = ContentHasher::default();
        let total = for_each_chunk(reader, |chunk| hasher.update(chunk))?;
        Ok((hasher.finish(), total))
    }

    /// The digest whose raw bytes are `bytes` (as stored by [`Digest::as_bytes`]).
    pub fn from_bytes(bytes: [u8; 32]) -> Digest {
        Digest(bytes)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64-character lowercase hex form.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses the form [`Digest::to_hex`] writes; `None` for anything else.
    pub fn from_hex(text: &str) -> Option<Digest> {
        let bytes: [u8; 32] = hex::decode(text).ok()?.try_into().ok()?;
        Some(Digest(bytes))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", &self.to_hex()[..16])
    }
}

/// The error of parsing a [`Digest`] from text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseDigestError(String);

impl fmt::Display for ParseDigestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a SHA-256 digest (64 hex characters): {:?}", self.0)
    }
}

impl std::error::Error for ParseDigestError {}

impl FromStr for Digest {
    type Err = ParseDigestError;

    fn from_str(s: &str) -> Result<Digest, ParseDigestError> {
        let mut out = [0u8; 32];
        if s.len() != 64 || hex::decode_to_slice(s, &mut out).is_err() {
            return Err(ParseDigestError(s.chars().take(80).collect()));
        }
        Ok(Digest(out))
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The [`Digest`] of bytes given a piece at a time: the same as [`Digest::of`] of all
/// of them.
#[derive(Clone, Default)]
pub struct ContentHasher {
    inner: Sha256,
}

impl ContentHasher {
    /// Adds the next bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.inner.update(bytes);
    }

    /// The digest of all bytes added.
    pub fn finish(self) -> Digest {
        Digest(self.inner.finalize().into())
    }
}

/// The size of the chunks [`for_each_chunk`] reads: large enough that a file of
/// hundreds of MiB takes few reads.
const CHUNK: usize = 256 * 1024;

std::thread_local! {
    /// One reading buffer per thread, allocated once: a wrapper hashes thousands of
    /// small source files, and a zeroed buffer per file cost more than hashing them.
    static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Reads `reader` to its end, handing each chunk read to `f`, and returns the number of
/// bytes read. The one reading loop of everything that hashes or checks a stream.
///
/// # Errors
/// Any error the reader returns (an interrupted read is retried).
pub fn for_each_chunk(mut reader: impl Read, mut f: impl FnMut(&[u8])) -> io::Result<u64> {
    BUFFER.with(|cell| {
        // A reader that hashes another stream in turn (never done) gets its own buffer.
        let mut own = Vec::new();
        let mut borrowed = cell.try_borrow_mut();
        let buf = match &mut borrowed {
            Ok(b) => &mut **b,
            Err(_) => &mut own,
        };
        buf.resize(CHUNK, 0);
        let mut total = 0u64;
        loop {
            let n = match reader.read(buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            f(&buf[..n]);
            total += n as u64;
        }
        Ok(total)
    })
}

/// Builds a [`Digest`] from a sequence of tagged, length-prefixed fields.
///
/// Each field is written as `len(tag) tag len(value) value` with little-endian `u64`
/// lengths, so the stream is unambiguous whatever the fields contain.
#[derive(Clone, Default)]
pub struct KeyHasher {
    inner: Sha256,
}

impl KeyHasher {
    /// A hasher with nothing written yet.
    pub fn new() -> KeyHasher {
        KeyHasher::default()
    }

    /// Writes one field.
    pub fn field(&mut self, tag: &str, value: impl AsRef<[u8]>) -> &mut Self {
        let value = value.as_ref();
        self.inner.update((tag.len() as u64).to_le_bytes());
        self.inner.update(tag.as_bytes());
        self.inner.update((value.len() as u64).to_le_bytes());
        self.inner.update(value);
        self
    }

    /// Writes a field whose value is a digest.
    pub fn digest_field(&mut self, tag: &str, value: &Digest) -> &mut Self {
        self.field(tag, value.as_bytes())
    }

    /// The digest of all fields written.
    pub fn finish(self) -> Digest {
        Digest(self.inner.finalize().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Streams of any length, read in chunks through the thread's buffer, hash as the
    /// whole bytes do, also when one is read while another is (the buffer is then not
    /// shared).
    #[test]
    fn a_stream_hashes_as_its_bytes_do() {
        let bytes: Vec<u8> = (0..(2 * CHUNK + 17)).map(|i| (i % 251) as u8).collect();
        for len in [0, 1, CHUNK, bytes.len()] {
            let (d, n) = Digest::of_reader(&bytes[..len]).unwrap();
            assert_eq!((d, n), (Digest::of(&bytes[..len]), len as u64));
        }
        let mut inner = None;
        let outer = for_each_chunk(&bytes[..], |_| {
            if inner.is_none() {
                inner = Some(Digest::of_reader(&bytes[..100]).unwrap());
            }
        })
        .unwrap();
        assert_eq!(outer, bytes.len() as u64);
        assert_eq!(inner, Some((Digest::of(&bytes[..100]), 100)));
    }

    #[test]
    fn known_vector() {
        assert_eq!(
            Digest::of(b"abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hex_round_trip_and_rejects_garbage() {
        let d = Digest::of(b"x");
        assert_eq!(d.to_hex().parse::<Digest>().unwrap(), d);
        assert!("zz".parse::<Digest>().is_err());
        assert!("g".repeat(64).parse::<Digest>().is_err());
    }

    #[test]
    fn reader_matches_slice() {
        let data = vec![7u8; 1_000_000];
        let (d, n) = Digest::of_reader(&data[..]).unwrap();
        assert_eq!(n, 1_000_000);
        assert_eq!(d, Digest::of(&data));
    }

    #[test]
    fn fields_are_unambiguous() {
        let mut a = KeyHasher::new();
        a.field("t", "ab").field("t", "c");
        let mut b = KeyHasher::new();
        b.field("t", "a").field("t", "bc");
        assert_ne!(a.finish(), b.finish());
    }
}
