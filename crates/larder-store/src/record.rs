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
}

/// What larder knows of a Rust library file it built or restored: the file names of the
/// libraries it was compiled against. Stored under the digest of the library file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkRecord {
    /// File names (`liba-0123abcd.rlib`) of the direct dependencies.
    pub deps: Vec<String>,
}
