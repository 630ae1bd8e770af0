//! The typed in-process way into Firehose for Tideline's other services (Lambda's on-failure
//! destinations): a record put to a delivery stream as PutRecord puts it (same size limit, same
//! errors, durable before it returns), and an object written to a bucket of the store Firehose's
//! S3 destination writes to (`--s3-dir` folders by default, or `--s3-endpoint`).

use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};
use tideline_proto::{AwsError, Validator};

use crate::model::record_id;
use crate::ops::records::{accept, MAX_RECORD_BYTES};
use crate::service::FirehoseService;

impl FirehoseService {
    /// Puts one record to a DirectPut delivery stream; returns its RecordId.
    pub async fn put_record_in_process(&self, delivery_stream: &str, data: Bytes) -> Result<String, AwsError> {
        // The same length check, and the same ValidationException, as PutRecord's `record.data`.
        let mut v = Validator::new();
        v.blob("record.data", Some(&data[..]), MAX_RECORD_BYTES);
        v.finish()?;
        let (stream_id, index, _) = accept(self, delivery_stream, vec![data]).await?;
        Ok(record_id(stream_id, index))
    }

    /// Writes one object to `bucket` under `key`.
    pub async fn put_object(&self, bucket: &str, key: &str, data: Bytes) -> Result<(), AwsError> {
        let failed = |code: &str, message: String| AwsError::internal(format!("{code}: {message}"));
        let store = self.buckets.bucket(bucket).map_err(|error| failed(error.code, error.message))?;
        let path = ObjectPath::parse(key).map_err(|error| failed("S3.InvalidKey", error.to_string()))?;
        store.put(&path, PutPayload::from(data)).await.map_err(|error| failed("S3.PutObject", error.to_string()))?;
        Ok(())
    }
}
