//! The records the action cache and the link index hold.

use larder_digest::Digest;
use serde::{Deserialize, Serialize};

/// One output file of a compile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputFile {
    /// The path, normalized (`@@larder:target@@/debug/deps/liba-1.rlib`).
    pub path: String,
    /// The digest of the content as stored. For a dep-info file that is the normalized
    /// text, denormalized when restored.
    pub digest: Digest,
    /// The size of the stored content, in bytes.
    pub size: u64,
    /// Whether the file is executable.
    pub executable: bool,
    /// Whether the content holds path placeholders to replace on restore.
    #[serde(default)]
    pub rewrite_paths: bool,
}

/// What a compile produced, stored in the action cache under its result key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionRecord {
    /// The crate name, for reports.
    pub crate_name: String,
    /// The output files, the dep-info file first if there is one.
    pub outputs: Vec<OutputFile>,
    /// What rustc wrote to standard output, normalized.
    pub stdout: String,
    /// What rustc wrote to standard error (diagnostics and artifact notifications),
    /// normalized.
    pub stderr: String,
    /// How long the compile took, in seconds.
    pub compile_secs: f64,
    /// rustc's exit code: 0, or 1 for a cached deterministic compile error (then
    /// `outputs` is empty).
    #[serde(default)]
    pub exit_code: i32,
    /// For each Rust library output (rlib, dylib, proc-macro), the file names of the
    /// libraries it was compiled against, so a link step can find its transitive inputs.
    #[serde(default)]
    pub link_deps: Vec<String>,
    /// Where the producer compiled: the digest of its root directories (the package's,
    /// the target directory, `CARGO_HOME`, the sysroot; `larder_key::Roots::digest`).
    /// Outputs embed these paths, so `larder verify` compares byte for byte only where
    /// they are the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Digest>,
    /// Signatures of the record by its producers ([`ActionRecord::signed_bytes`]); none
    /// when the producer had no signing key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signatures: Vec<RecordSignature>,
}

/// One producer's signature of an action record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordSignature {
    /// The name of the signing key (`team-ci-1`).
    pub key: String,
    /// The ed25519 signature of [`ActionRecord::signed_bytes`], base64.
    pub sig: String,
}

/// The first bytes of every signed message: a signature of a record can never be taken
/// for a signature of anything else, and a later form gets another tag.
const SIGNED_TAG: &[u8] = b"larder action record v1\0";

impl ActionRecord {
    /// The bytes a signature covers: the result key the record is stored under, the
    /// crate name, every output's path, digest, size, executable bit and path rewriting,
    /// stdout, stderr, the exit code, the link dependencies and the origin, each
    /// length-prefixed.
    /// Not covered: `compile_secs` (what a report says was saved) and the signatures.
    /// Stored under another key, the record's signatures do not verify.
    pub fn signed_bytes(&self, result_key: &Digest) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.stderr.len() + self.stdout.len());
        let mut field = |bytes: &[u8]| {
            out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            out.extend_from_slice(bytes);
        };
        field(SIGNED_TAG);
        field(result_key.as_bytes());
        field(self.crate_name.as_bytes());
        field(&(self.outputs.len() as u64).to_le_bytes());
        for o in &self.outputs {
            field(o.path.as_bytes());
            field(o.digest.as_bytes());
            field(&o.size.to_le_bytes());
            field(&[u8::from(o.executable), u8::from(o.rewrite_paths)]);
        }
        field(self.stdout.as_bytes());
        field(self.stderr.as_bytes());
        field(&self.exit_code.to_le_bytes());
        field(&(self.link_deps.len() as u64).to_le_bytes());
        for d in &self.link_deps {
            field(d.as_bytes());
        }
        if let Some(o) = &self.origin {
            field(o.as_bytes());
        }
        out
    }
}

/// What larder knows of a Rust library file it built or restored: the file names of the
/// libraries it was compiled against. Stored under the digest of the library file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkRecord {
    /// File names (`liba-0123abcd.rlib`) of the direct dependencies.
    pub deps: Vec<String>,
}
