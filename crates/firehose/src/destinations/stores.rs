//! Buckets: where `arn:aws:s3:::BUCKET` points. Either an S3-compatible endpoint (`--s3-endpoint`,
//! path-style requests, as MinIO, Ceph, moto and friends expect), or a plain local directory with
//! one folder per bucket (`--s3-dir`, the default: `<data-dir>/s3`), or memory (`--in-memory`
//! without either). All three go through the `object_store` crate, so the S3 destination code is
//! the same for each.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::ObjectStore;
use parking_lot::Mutex;

use super::DeliveryError;

#[derive(Debug, Clone)]
pub enum BucketsConfig {
    S3 { endpoint: String, region: String, access_key_id: String, secret_access_key: String },
    Directory(PathBuf),
    Memory,
}

pub struct Buckets {
    config: BucketsConfig,
    opened: Mutex<HashMap<String, Arc<dyn ObjectStore>>>,
}

impl Buckets {
    pub fn new(config: BucketsConfig) -> Self {
        Self { config, opened: Mutex::new(HashMap::new()) }
    }

    pub fn bucket(&self, name: &str) -> Result<Arc<dyn ObjectStore>, DeliveryError> {
        if let Some(store) = self.opened.lock().get(name) {
            return Ok(Arc::clone(store));
        }
        let store = self.open(name)?;
        self.opened.lock().insert(name.to_string(), Arc::clone(&store));
        Ok(store)
    }

    fn open(&self, name: &str) -> Result<Arc<dyn ObjectStore>, DeliveryError> {
        // The BucketARN pattern lets `.` and `..` through; as folder names they would escape.
        if name.is_empty() || name.chars().all(|c| c == '.') {
            return Err(DeliveryError::new("S3.InvalidBucketName", format!("Invalid bucket name '{name}'.")));
        }
        match &self.config {
            BucketsConfig::S3 { endpoint, region, access_key_id, secret_access_key } => {
                let store = AmazonS3Builder::new()
                    .with_endpoint(endpoint)
                    .with_allow_http(true)
                    .with_virtual_hosted_style_request(false)
                    .with_region(region)
                    .with_access_key_id(access_key_id)
                    .with_secret_access_key(secret_access_key)
                    .with_bucket_name(name)
                    .build()
                    .map_err(|error| DeliveryError::new("S3.InvalidConfiguration", error.to_string()))?;
                Ok(Arc::new(store))
            }
            BucketsConfig::Directory(root) => {
                let folder = root.join(name);
                std::fs::create_dir_all(&folder).map_err(|error| {
                    DeliveryError::new("S3.InternalError", format!("cannot create {}: {error}", folder.display()))
                })?;
                let store = LocalFileSystem::new_with_prefix(&folder)
                    .map_err(|error| DeliveryError::new("S3.InternalError", error.to_string()))?;
                Ok(Arc::new(store))
            }
            BucketsConfig::Memory => Ok(Arc::new(InMemory::new())),
        }
    }
}

/// Firehose's error code for an object store failure.
pub fn store_error(error: &object_store::Error) -> DeliveryError {
    let code = match error {
        object_store::Error::NotFound { .. } => "S3.NoSuchBucket",
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => "S3.AccessDenied",
        _ => "S3.InternalError",
    };
    DeliveryError::new(code, error.to_string())
}
