//! StartDeliveryStreamEncryption and StopDeliveryStreamEncryption: server-side encryption at rest
//! of the buffered records. Tideline records the setting and reports it (Encrypted in put
//! responses); there is no KMS, so the key is not used.

use serde::Deserialize;
use tideline_proto::{AwsError, Validator};

use super::delivery_streams::validate_name;
use super::Empty;
use crate::model::{DeliveryStreamType, Encryption};
use crate::service::FirehoseService;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct EncryptionInput {
    #[serde(rename = "KeyARN")]
    pub key_arn: Option<String>,
    pub key_type: Option<String>,
}

/// Checks a DeliveryStreamEncryptionConfigurationInput; `path` is its member name.
pub(crate) fn validate_encryption(v: &mut Validator, path: &str, input: &EncryptionInput) -> Result<(), AwsError> {
    v.string(&format!("{path}.keyARN"), input.key_arn.as_deref(), 1, 512, None);
    if v.required(&format!("{path}.keyType"), input.key_type.as_ref()) {
        v.one_of(&format!("{path}.keyType"), input.key_type.as_deref(), &["AWS_OWNED_CMK", "CUSTOMER_MANAGED_CMK"]);
    }
    match (input.key_type.as_deref(), &input.key_arn) {
        (Some("CUSTOMER_MANAGED_CMK"), None) => {
            Err(AwsError::invalid_argument("KeyARN must be specified when KeyType is CUSTOMER_MANAGED_CMK."))
        }
        (Some("AWS_OWNED_CMK"), Some(_)) => {
            Err(AwsError::invalid_argument("KeyARN must not be specified when KeyType is AWS_OWNED_CMK."))
        }
        _ => Ok(()),
    }
}

pub(crate) fn encryption_of(input: &EncryptionInput) -> Encryption {
    Encryption {
        key_type: input.key_type.clone().unwrap_or_else(|| "AWS_OWNED_CMK".into()),
        key_arn: input.key_arn.clone(),
        enabled: true,
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct StartInput {
    delivery_stream_name: Option<String>,
    delivery_stream_encryption_configuration_input: Option<EncryptionInput>,
}

pub(crate) async fn start(service: &std::sync::Arc<FirehoseService>, input: StartInput) -> Result<Empty, AwsError> {
    let mut v = Validator::new();
    validate_name(&mut v, input.delivery_stream_name.as_deref());
    let config = input
        .delivery_stream_encryption_configuration_input
        .unwrap_or(EncryptionInput { key_arn: None, key_type: Some("AWS_OWNED_CMK".into()) });
    let semantic = validate_encryption(&mut v, "deliveryStreamEncryptionConfigurationInput", &config);
    v.finish()?;
    semantic?;
    set(service, input.delivery_stream_name.unwrap_or_default(), Some(encryption_of(&config))).await
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct StopInput {
    delivery_stream_name: Option<String>,
}

pub(crate) async fn stop(service: &std::sync::Arc<FirehoseService>, input: StopInput) -> Result<Empty, AwsError> {
    let mut v = Validator::new();
    validate_name(&mut v, input.delivery_stream_name.as_deref());
    v.finish()?;
    set(service, input.delivery_stream_name.unwrap_or_default(), None).await
}

async fn set(
    service: &std::sync::Arc<FirehoseService>,
    name: String,
    encryption: Option<Encryption>,
) -> Result<Empty, AwsError> {
    let _change = service.changes.lock().await;
    let mut meta = (*service.get(&name)?.meta).clone();
    if meta.kind == DeliveryStreamType::KinesisStreamAsSource {
        return Err(AwsError::invalid_argument(format!(
            "Server-side encryption is not supported for delivery stream {name} under account {} because its source is a Kinesis data stream; encrypt the source stream instead.",
            service.account()
        )));
    }
    meta.encryption = encryption;
    service.commit(meta).await?;
    Ok(Empty {})
}
