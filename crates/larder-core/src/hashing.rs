//! Hashing input files, each at most once per process.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use larder_digest::Digest;

/// Digests of files, memoized for the life of one wrapper process.
#[derive(Debug, Default)]
pub struct FileHasher {
    memo: HashMap<PathBuf, Option<(Digest, u64)>>,
}

impl FileHasher {
    /// The digest of the file at `path`, or `None` if it cannot be read.
    pub fn digest(&mut self, path: &Path) -> Option<Digest> {
        self.digest_and_size(path).map(|(d, _)| d)
    }

    /// The digest and size of the file at `path`, or `None` if it cannot be read.
    pub fn digest_and_size(&mut self, path: &Path) -> Option<(Digest, u64)> {
        if let Some(v) = self.memo.get(path) {
            return *v;
        }
        let v = std::fs::File::open(path).and_then(Digest::of_reader).ok();
        self.memo.insert(path.to_path_buf(), v);
        v
    }

    /// Records the digest of a file this process just wrote.
    pub fn remember(&mut self, path: &Path, digest: Digest, size: u64) {
        self.memo.insert(path.to_path_buf(), Some((digest, size)));
    }
}
