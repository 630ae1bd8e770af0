"""Stream settings: retention, tags (stream and resource APIs), encryption, enhanced monitoring and
resource policies."""

import json

import pytest
from botocore.exceptions import ClientError

from support import create_stream, drain, iterator, shard_id, stream_arn, wait_status

ALL_METRICS = {
    "IncomingBytes",
    "IncomingRecords",
    "OutgoingBytes",
    "OutgoingRecords",
    "WriteProvisionedThroughputExceeded",
    "ReadProvisionedThroughputExceeded",
    "IteratorAgeMilliseconds",
}


def summary(kinesis, name):
    return kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]


def test_increase_and_decrease_retention(kinesis, stream_name):
    create_stream(kinesis, stream_name, 1)
    kinesis.increase_stream_retention_period(StreamName=stream_name, RetentionPeriodHours=48)
    assert wait_status(kinesis, stream_name)["RetentionPeriodHours"] == 48
    assert kinesis.describe_stream(StreamName=stream_name)["StreamDescription"]["RetentionPeriodHours"] == 48
    kinesis.increase_stream_retention_period(StreamARN=stream_arn(stream_name), RetentionPeriodHours=8760)
    assert wait_status(kinesis, stream_name)["RetentionPeriodHours"] == 8760
    kinesis.decrease_stream_retention_period(StreamName=stream_name, RetentionPeriodHours=24)
    assert wait_status(kinesis, stream_name)["RetentionPeriodHours"] == 24
    # Setting the current value again is accepted by both calls.
    kinesis.increase_stream_retention_period(StreamName=stream_name, RetentionPeriodHours=24)
    kinesis.decrease_stream_retention_period(StreamName=stream_name, RetentionPeriodHours=24)
    assert wait_status(kinesis, stream_name)["RetentionPeriodHours"] == 24


def test_stream_tags(kinesis, stream_name):
    create_stream(kinesis, stream_name, 1)
    kinesis.add_tags_to_stream(StreamName=stream_name, Tags={"b": "2", "a": "1", "c": ""})
    listed = kinesis.list_tags_for_stream(StreamName=stream_name)
    assert {t["Key"]: t["Value"] for t in listed["Tags"]} == {"a": "1", "b": "2", "c": ""}
    assert listed["HasMoreTags"] is False

    page = kinesis.list_tags_for_stream(StreamName=stream_name, Limit=2)
    assert [t["Key"] for t in page["Tags"]] == ["a", "b"]
    assert page["HasMoreTags"] is True
    rest = kinesis.list_tags_for_stream(StreamName=stream_name, ExclusiveStartTagKey="b")
    assert rest["Tags"] == [{"Key": "c", "Value": ""}]
    assert rest["HasMoreTags"] is False

    kinesis.add_tags_to_stream(StreamName=stream_name, Tags={"a": "overwritten"})
    kinesis.remove_tags_from_stream(StreamName=stream_name, TagKeys=["b", "not-there"])
    listed = kinesis.list_tags_for_stream(StreamName=stream_name)
    assert {t["Key"]: t["Value"] for t in listed["Tags"]} == {"a": "overwritten", "c": ""}


def test_resource_tags_by_arn(kinesis, stream_name):
    create_stream(kinesis, stream_name, 1)
    arn = stream_arn(stream_name)
    kinesis.tag_resource(ResourceARN=arn, Tags={"owner": "me", "cost": "42"})
    tags = kinesis.list_tags_for_resource(ResourceARN=arn)["Tags"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [("cost", "42"), ("owner", "me")]
    # One tag set, whichever API wrote it.
    stream_tags = kinesis.list_tags_for_stream(StreamName=stream_name)["Tags"]
    assert sorted((t["Key"], t["Value"]) for t in stream_tags) == [("cost", "42"), ("owner", "me")]
    kinesis.add_tags_to_stream(StreamName=stream_name, Tags={"extra": "yes"})
    kinesis.untag_resource(ResourceARN=arn, TagKeys=["owner"])
    tags = kinesis.list_tags_for_resource(ResourceARN=arn)["Tags"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [("cost", "42"), ("extra", "yes")]


def test_stream_encryption(kinesis, stream_name):
    create_stream(kinesis, stream_name, 1)
    plain = kinesis.put_record(StreamName=stream_name, Data=b"plain-1", PartitionKey="k")
    assert plain.get("EncryptionType", "NONE") == "NONE"

    kinesis.start_stream_encryption(StreamName=stream_name, EncryptionType="KMS", KeyId="alias/aws/kinesis")
    state = wait_status(kinesis, stream_name)
    assert state["EncryptionType"] == "KMS"
    assert state["KeyId"] == "alias/aws/kinesis"
    assert kinesis.describe_stream(StreamName=stream_name)["StreamDescription"]["EncryptionType"] == "KMS"
    secret = kinesis.put_record(StreamName=stream_name, Data=b"secret", PartitionKey="k")
    assert secret["EncryptionType"] == "KMS"
    batch = kinesis.put_records(StreamName=stream_name, Records=[{"Data": b"secret-2", "PartitionKey": "k"}])
    assert batch["EncryptionType"] == "KMS"

    kinesis.stop_stream_encryption(StreamName=stream_name, EncryptionType="KMS", KeyId="alias/aws/kinesis")
    state = wait_status(kinesis, stream_name)
    assert state["EncryptionType"] == "NONE"
    after = kinesis.put_record(StreamName=stream_name, Data=b"plain-2", PartitionKey="k")
    assert after.get("EncryptionType", "NONE") == "NONE"

    records, _ = drain(kinesis, iterator(kinesis, stream_name, shard_id(0)))
    assert [(r["Data"], r.get("EncryptionType", "NONE")) for r in records] == [
        (b"plain-1", "NONE"),
        (b"secret", "KMS"),
        (b"secret-2", "KMS"),
        (b"plain-2", "NONE"),
    ]


def test_enhanced_monitoring(kinesis, stream_name):
    create_stream(kinesis, stream_name, 1)
    enabled = kinesis.enable_enhanced_monitoring(StreamName=stream_name, ShardLevelMetrics=["IncomingBytes", "OutgoingBytes"])
    assert enabled["StreamName"] == stream_name
    assert enabled["CurrentShardLevelMetrics"] == []
    assert set(enabled["DesiredShardLevelMetrics"]) == {"IncomingBytes", "OutgoingBytes"}
    state = wait_status(kinesis, stream_name)
    assert set(state["EnhancedMonitoring"][0]["ShardLevelMetrics"]) == {"IncomingBytes", "OutgoingBytes"}

    everything = kinesis.enable_enhanced_monitoring(StreamName=stream_name, ShardLevelMetrics=["ALL"])
    assert set(everything["CurrentShardLevelMetrics"]) == {"IncomingBytes", "OutgoingBytes"}
    assert set(everything["DesiredShardLevelMetrics"]) == ALL_METRICS
    wait_status(kinesis, stream_name)

    disabled = kinesis.disable_enhanced_monitoring(StreamName=stream_name, ShardLevelMetrics=["IncomingBytes"])
    assert set(disabled["CurrentShardLevelMetrics"]) == ALL_METRICS
    assert set(disabled["DesiredShardLevelMetrics"]) == ALL_METRICS - {"IncomingBytes"}
    state = wait_status(kinesis, stream_name)
    assert set(state["EnhancedMonitoring"][0]["ShardLevelMetrics"]) == ALL_METRICS - {"IncomingBytes"}

    none = kinesis.disable_enhanced_monitoring(StreamARN=stream_arn(stream_name), ShardLevelMetrics=["ALL"])
    assert none["DesiredShardLevelMetrics"] == []
    state = wait_status(kinesis, stream_name)
    assert state["EnhancedMonitoring"] == [{"ShardLevelMetrics": []}]


def test_resource_policy(kinesis, stream_name):
    create_stream(kinesis, stream_name, 1)
    arn = stream_arn(stream_name)
    policy = json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "read",
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
            "Action": ["kinesis:GetRecords", "kinesis:GetShardIterator"],
            "Resource": arn,
        }],
    })
    kinesis.put_resource_policy(ResourceARN=arn, Policy=policy)
    stored = kinesis.get_resource_policy(ResourceARN=arn)["Policy"]
    assert json.loads(stored) == json.loads(policy)

    replacement = json.dumps({"Version": "2012-10-17", "Statement": []})
    kinesis.put_resource_policy(ResourceARN=arn, Policy=replacement)
    assert json.loads(kinesis.get_resource_policy(ResourceARN=arn)["Policy"]) == {"Version": "2012-10-17", "Statement": []}

    kinesis.delete_resource_policy(ResourceARN=arn)
    try:
        after = kinesis.get_resource_policy(ResourceARN=arn)["Policy"]
    except ClientError as e:  # some services answer "no policy" with ResourceNotFoundException
        assert e.response["Error"]["Code"] == "ResourceNotFoundException"
    else:
        assert json.loads(after) == {}


def test_resource_policy_on_missing_stream(kinesis, stream_name):
    with pytest.raises(ClientError) as e:
        kinesis.put_resource_policy(ResourceARN=stream_arn(stream_name), Policy="{}")
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"


@pytest.mark.parametrize("statement, unsupported", [
    ({"Condition": {"Bool": {"aws:SecureTransport": "false"}}}, "Condition elements are not supported"),
    ({"Resource": stream_arn("${aws:username}")}, "policy variables"),
    ({"Unexpected": "x"}, "unknown element Unexpected"),
    ({"Effect": "Allow", "NotPrincipal": {"AWS": "arn:aws:iam::000000000000:root"}, "Principal": None},
     "NotPrincipal can only be used"),
])
def test_resource_policy_that_cannot_be_evaluated_is_refused(kinesis, stream_name, statement, unsupported):
    """A Deny that Tideline cannot evaluate must not be stored and silently ignored: the whole
    policy is refused, saying what is unsupported, and the stored policy stays as it was."""
    create_stream(kinesis, stream_name, 1)
    arn = stream_arn(stream_name)
    kept = json.dumps({"Version": "2012-10-17", "Statement": []})
    kinesis.put_resource_policy(ResourceARN=arn, Policy=kept)
    denial = {"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "kinesis:*", "Resource": arn, **statement}
    denial = {key: value for key, value in denial.items() if value is not None}
    with pytest.raises(ClientError) as e:
        kinesis.put_resource_policy(ResourceARN=arn, Policy=json.dumps({"Version": "2012-10-17", "Statement": [denial]}))
    assert e.value.response["Error"]["Code"] == "InvalidArgumentException"
    assert unsupported in e.value.response["Error"]["Message"]
    assert json.loads(kinesis.get_resource_policy(ResourceARN=arn)["Policy"]) == json.loads(kept)
