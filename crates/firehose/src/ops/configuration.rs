//! The `Destinations` entry of DescribeDeliveryStream. What each destination type checks,
//! defaults and merges is its `DestinationSpec` (`destinations/<type>/config.rs`); which members
//! name which type is `destinations::registry`; the shared checks are `destinations::config`.

use serde_json::{Map, Value};
use tideline_proto::AwsError;

pub(crate) use crate::destinations::config::validate_role_arn;
use crate::model::DestinationConfig;

/// The destination's entry of DescribeDeliveryStream's `Destinations`.
pub(crate) fn describe(destination: &DestinationConfig) -> Result<Value, AwsError> {
    let mut entry = Map::new();
    entry.insert("DestinationId".into(), Value::from(DESTINATION_ID));
    destination.spec().describe(&mut entry)?;
    let mut entry = Value::Object(entry);
    strip_nulls(&mut entry);
    Ok(entry)
}

/// Members never set are left out, as AWS leaves them out.
fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(object) => {
            object.retain(|_, member| !member.is_null());
            object.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// A delivery stream has one destination, always with this id.
pub(crate) const DESTINATION_ID: &str = "destinationId-000000000001";
