//! Destination types by name: which CreateDeliveryStream and UpdateDestination members configure
//! which type (the list in `destinations`), and the tag stored metadata keeps a configuration
//! under. A [`DestinationConfig`] is one type's configuration behind its spec, so nothing outside
//! a destination's folder matches on destination types.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::{DeserializeOwned, Error as _};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use tideline_proto::{AwsError, ErrorCode};

use super::config::merge_update;
use super::{DestinationSpec, DESTINATION_TYPES};
use crate::model::{BufferingHints, ProcessingConfiguration, S3Location};

/// A destination type's configuration, as the API and the stored metadata name it; implemented
/// in the destination's `config.rs`.
pub trait DestinationType: DestinationSpec + Clone + Default + Serialize + DeserializeOwned + 'static {
    /// The tag stored metadata keeps the configuration under. Data directories hold it: never
    /// renamed.
    const STORED_AS: &'static str;
    /// CreateDeliveryStream's members that configure this type.
    const CONFIGURATIONS: &'static [&'static str];
    /// UpdateDestination's members that update it.
    const UPDATES: &'static [&'static str];

    /// The configuration that `member`, one of `CONFIGURATIONS`, gives.
    fn from_member(_member: &str, value: Value) -> Result<Self, serde_json::Error> {
        serde_json::from_value(value)
    }
}

/// Every destination member of CreateDeliveryStream in AWS's API, in its order: those no
/// registered type claims are refused by name rather than ignored.
const AWS_CONFIGURATIONS: &[&str] = &[
    "S3DestinationConfiguration",
    "ExtendedS3DestinationConfiguration",
    "RedshiftDestinationConfiguration",
    "ElasticsearchDestinationConfiguration",
    "AmazonopensearchserviceDestinationConfiguration",
    "SplunkDestinationConfiguration",
    "HttpEndpointDestinationConfiguration",
    "AmazonOpenSearchServerlessDestinationConfiguration",
    "SnowflakeDestinationConfiguration",
    "IcebergDestinationConfiguration",
];

/// A registered destination type, whatever its configuration type.
pub(crate) trait DestinationKind: Sync {
    fn stored_as(&self) -> &'static str;
    fn configurations(&self) -> &'static [&'static str];
    fn updates(&self) -> &'static [&'static str];
    fn parse_member(&self, member: &str, value: Value) -> Result<DestinationConfig, serde_json::Error>;
    fn parse_stored(&self, value: Value) -> Result<DestinationConfig, serde_json::Error>;
    /// An empty configuration: where UpdateDestination to another type starts, as AWS does.
    fn empty(&self) -> DestinationConfig;
}

/// The [`DestinationKind`] of a configuration type: what `DESTINATION_TYPES` lists.
pub(crate) struct Registered<T>(PhantomData<fn() -> T>);

impl<T> Registered<T> {
    pub const NEW: Self = Self(PhantomData);
}

impl<T: DestinationType> DestinationKind for Registered<T> {
    fn stored_as(&self) -> &'static str {
        T::STORED_AS
    }

    fn configurations(&self) -> &'static [&'static str] {
        T::CONFIGURATIONS
    }

    fn updates(&self) -> &'static [&'static str] {
        T::UPDATES
    }

    fn parse_member(&self, member: &str, value: Value) -> Result<DestinationConfig, serde_json::Error> {
        T::from_member(member, value).map(DestinationConfig::new)
    }

    fn parse_stored(&self, value: Value) -> Result<DestinationConfig, serde_json::Error> {
        serde_json::from_value::<T>(value).map(DestinationConfig::new)
    }

    fn empty(&self) -> DestinationConfig {
        DestinationConfig::new(T::default())
    }
}

/// What a configuration does that depends on its concrete type (serde).
trait Configured: DestinationSpec {
    fn stored_as(&self) -> &'static str;
    fn to_stored(&self) -> Result<Value, serde_json::Error>;
    fn merged(&self, update: &Value) -> Result<DestinationConfig, AwsError>;
}

impl<T: DestinationType> Configured for T {
    fn stored_as(&self) -> &'static str {
        T::STORED_AS
    }

    fn to_stored(&self) -> Result<Value, serde_json::Error> {
        serde_json::to_value(self)
    }

    fn merged(&self, update: &Value) -> Result<DestinationConfig, AwsError> {
        merge_update(self, update).map(DestinationConfig::new)
    }
}

/// Exactly one destination per delivery stream, as AWS allows: one registered type's
/// configuration. Stored as `{"<STORED_AS>": configuration}`.
#[derive(Debug, Clone)]
pub struct DestinationConfig(Arc<dyn Configured>);

impl DestinationConfig {
    fn new<T: DestinationType>(config: T) -> Self {
        Self(Arc::new(config))
    }

    pub fn spec(&self) -> &dyn DestinationSpec {
        &*self.0
    }

    /// The buffering hints that decide when a batch is delivered.
    pub fn buffering(&self) -> BufferingHints {
        self.0.buffering_hints().cloned().unwrap_or_default()
    }

    pub fn metric_name(&self) -> &'static str {
        self.0.metric_name()
    }

    pub fn processing(&self) -> Option<&ProcessingConfiguration> {
        self.0.processing_configuration().filter(|processing| processing.enabled.unwrap_or(true))
    }

    pub fn error_bucket(&self) -> S3Location {
        self.0.error_bucket()
    }

    /// CreateDeliveryStream's destination members that a registered type claims, each as its
    /// validation path (`extendedS3DestinationConfiguration`) and configuration. A member of the
    /// wrong shape is a SerializationException, as when the request body is decoded.
    pub(crate) fn from_create(members: &Map<String, Value>) -> Result<Vec<(String, Self)>, AwsError> {
        let mut given = Vec::new();
        for kind in DESTINATION_TYPES {
            for &member in kind.configurations() {
                let Some(value) = members.get(member).filter(|value| !value.is_null()) else { continue };
                let config = kind
                    .parse_member(member, value.clone())
                    .map_err(|error| AwsError::new(ErrorCode::Serialization, error.to_string()))?;
                given.push((member_path(member), config));
            }
        }
        Ok(given)
    }

    /// The first of AWS's destination members that the request gives and Tideline cannot deliver to.
    pub(crate) fn unsupported_in_create(members: &Map<String, Value>) -> Option<&'static str> {
        let claimed = |member: &str| DESTINATION_TYPES.iter().any(|kind| kind.configurations().contains(&member));
        AWS_CONFIGURATIONS
            .iter()
            .copied()
            .find(|member| !claimed(member) && members.get(*member).is_some_and(|value| !value.is_null()))
    }

    /// UpdateDestination: the one `*DestinationUpdate` member given, merged into this
    /// configuration (or into an empty one of another type), with its validation path.
    pub(crate) fn updated(&self, members: &Map<String, Value>) -> Result<(String, Self), AwsError> {
        let kind_of = |member: &str| DESTINATION_TYPES.iter().find(|kind| kind.updates().contains(&member));
        if let Some(member) =
            members.keys().find(|member| member.ends_with("DestinationUpdate") && kind_of(member).is_none())
        {
            return Err(AwsError::invalid_argument(format!("{member} is not supported by Tideline.")));
        }
        let mut given: Vec<(&String, &Value)> =
            members.iter().filter(|(member, value)| kind_of(member).is_some() && !value.is_null()).collect();
        if given.len() != 1 {
            return Err(AwsError::invalid_argument("Exactly one destination update is supported for a Firehose"));
        }
        let Some((member, update)) = given.pop() else { return Err(AwsError::internal("no update")) };
        let Some(kind) = kind_of(member) else { return Err(AwsError::internal("no destination type")) };
        let merged = if kind.stored_as() == self.0.stored_as() {
            self.0.merged(update)?
        } else {
            kind.empty().0.merged(update)?
        };
        Ok((member_path(member), merged))
    }
}

/// A member's name in validation messages: `S3DestinationUpdate` → `s3DestinationUpdate`.
fn member_path(member: &str) -> String {
    let mut chars = member.chars();
    chars.next().map(|first| first.to_ascii_lowercase().to_string() + chars.as_str()).unwrap_or_default()
}

impl Serialize for DestinationConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let config = self.0.to_stored().map_err(serde::ser::Error::custom)?;
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(self.0.stored_as(), &config)?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for DestinationConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let tagged = BTreeMap::<String, Value>::deserialize(deserializer)?;
        let mut entries = tagged.into_iter();
        let (Some((tag, config)), None) = (entries.next(), entries.next()) else {
            return Err(D::Error::custom("a destination configuration has exactly one type"));
        };
        let kind = DESTINATION_TYPES
            .iter()
            .find(|kind| kind.stored_as() == tag)
            .ok_or_else(|| D::Error::custom(format!("unknown destination type {tag}")))?;
        kind.parse_stored(config).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_configurations_keep_their_tags() {
        let stored = serde_json::json!({ "HttpEndpoint": {
            "EndpointConfiguration": { "Url": "http://127.0.0.1:1/" },
            "S3Configuration": { "BucketARN": "arn:aws:s3:::b" },
        }});
        let config: DestinationConfig = serde_json::from_value(stored).expect("stored HTTP endpoint configuration");
        assert_eq!(config.metric_name(), "HttpEndpoint");
        let again = serde_json::to_value(&config).expect("serializes");
        assert_eq!(again["HttpEndpoint"]["EndpointConfiguration"]["Url"], "http://127.0.0.1:1/");
        assert!(serde_json::from_value::<DestinationConfig>(serde_json::json!({ "Splunk": {} })).is_err());
    }

    #[test]
    fn create_members_name_their_type_and_path() {
        let members = serde_json::json!({
            "S3DestinationConfiguration": { "BucketARN": "arn:aws:s3:::b", "ProcessingConfiguration": { "Enabled": true } },
            "SplunkDestinationConfiguration": {},
        });
        let members = members.as_object().expect("object");
        let given = DestinationConfig::from_create(members).expect("parses");
        assert_eq!(given.len(), 1);
        assert_eq!(given[0].0, "s3DestinationConfiguration");
        // The plain S3 configuration has no processing: what it does not define is not read.
        assert!(given[0].1.processing().is_none());
        assert_eq!(DestinationConfig::unsupported_in_create(members), Some("SplunkDestinationConfiguration"));
    }

    #[test]
    fn an_update_of_another_type_starts_empty() {
        let members =
            serde_json::json!({ "S3DestinationConfiguration": { "BucketARN": "arn:aws:s3:::b", "Prefix": "p/" } });
        let (_, s3) = DestinationConfig::from_create(members.as_object().expect("object")).expect("parses").remove(0);
        let update = serde_json::json!({ "RedshiftDestinationUpdate": { "Username": "u" } });
        let (path, redshift) = s3.updated(update.as_object().expect("object")).expect("merges");
        assert_eq!((path.as_str(), redshift.metric_name()), ("redshiftDestinationUpdate", "Redshift"));
        assert!(redshift.error_bucket().prefix.is_empty());
        let unsupported = serde_json::json!({ "SplunkDestinationUpdate": {} });
        let error = s3.updated(unsupported.as_object().expect("object")).expect_err("refused");
        assert_eq!(error.message.as_deref(), Some("SplunkDestinationUpdate is not supported by Tideline."));
    }
}
