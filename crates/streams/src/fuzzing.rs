//! Entry points for the fuzz targets in `fuzz/` (docs/reliability.md, "Fuzzing"). Not an API:
//! hidden from the docs, thin wrappers over the crate's internals, and free to change with them.
//!
//! Requests need nothing from here: the targets drive the service through its
//! [`Service`](tideline_proto::Service) operation table as the server does. What they cannot reach from outside is the shard iterator codec, and a service whose
//! iterator key is known, so that tokens saved in a corpus stay valid from one run to the next.

use std::sync::Arc;

use tideline_storage::{Storage, StorageConfig};

use crate::iterator::IteratorCodec;
pub use crate::iterator::IteratorPosition;
use crate::{StreamsConfig, StreamsService};

/// A shard iterator token, signed with `secret`.
pub fn encode_iterator(secret: [u8; 32], position: &IteratorPosition) -> String {
    IteratorCodec::new(secret).encode(position)
}

/// The position in a token signed with `secret`; `None` for anything else.
pub fn decode_iterator(secret: [u8; 32], token: &str) -> Option<IteratorPosition> {
    IteratorCodec::new(secret).decode(token)
}

/// A service over in-memory storage whose iterator tokens are signed with `iterator_secret`
/// rather than a random key.
pub async fn in_memory_service(
    config: StreamsConfig,
    iterator_secret: [u8; 32],
) -> Result<Arc<StreamsService>, String> {
    let storage = Storage::open(StorageConfig::in_memory()).map_err(|error| error.to_string())?;
    StreamsService::open_with_iterator_secret(storage, config, iterator_secret).await.map_err(|error| error.to_string())
}
