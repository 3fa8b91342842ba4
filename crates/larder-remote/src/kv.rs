//! Key-value and object services through opendal (stub; being written).

use larder_digest::Digest;
use larder_store::{Capabilities, Namespace, Store, StoreError};

use crate::RemoteSpec;

/// An opendal service.
pub(crate) struct KvStore {
    name: String,
}

impl KvStore {
    pub(crate) fn open(spec: &RemoteSpec) -> Result<KvStore, StoreError> {
        Ok(KvStore { name: spec.name() })
    }
    fn unsupported(&self) -> StoreError {
        StoreError::Remote {
            backend: self.name.clone(),
            message: "not implemented".into(),
            timeout: false,
        }
    }
}

impl Store for KvStore {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            list: false,
            write: true,
            max_value_size: None,
            expires: true,
            delete: false,
        }
    }
    fn get(&self, _ns: Namespace, _key: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        Err(self.unsupported())
    }
    fn put(&self, _ns: Namespace, _key: &Digest, _value: &[u8]) -> Result<(), StoreError> {
        Err(self.unsupported())
    }
    fn delete(&self, _ns: Namespace, _key: &Digest) -> Result<(), StoreError> {
        Err(self.unsupported())
    }
}
