"""Firehose's Redshift destination, end to end: boto3 creates delivery streams whose
RedshiftDestinationConfiguration points at a real PostgreSQL (postgres.py), PutRecordBatch sends
JSON, CSV and pipe-delimited records, and the rows are read back with psycopg. Records are
concatenated as Firehose concatenates them, so each carries its own trailing newline.
"""

from __future__ import annotations

import base64
import time
import uuid
from decimal import Decimal

import pytest

import support
from firehose_support import ROLE_ARN, folder_objects
from postgres import DATABASE, PASSWORD, SUPERUSER, postgres_server  # noqa: F401  (fixture)

WAIT_SECS = 30.0


@pytest.fixture(scope="module")
def firehose(server):
    return server.client(service="firehose")


@pytest.fixture
def db(postgres_server):  # noqa: F811
    with postgres_server.connect() as conn:
        yield conn


def unique_table(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def redshift_configuration(pg, table: str, options: str, columns: str | None = None, bucket: str = "redshift-tests",
                           **extra) -> dict:
    copy = {"DataTableName": table, "CopyOptions": options}
    if columns is not None:
        copy["DataTableColumns"] = columns
    return {
        "RoleARN": ROLE_ARN,
        "ClusterJDBCURL": pg.jdbc_url(),
        "CopyCommand": copy,
        "Username": SUPERUSER,
        "Password": PASSWORD,
        "S3Configuration": {
            "RoleARN": ROLE_ARN,
            "BucketARN": f"arn:aws:s3:::{bucket}",
            "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 1},
        },
        **extra,
    }


def create_stream(client, name: str, configuration: dict) -> None:
    client.create_delivery_stream(
        DeliveryStreamName=name, DeliveryStreamType="DirectPut", RedshiftDestinationConfiguration=configuration
    )
    deadline = time.monotonic() + WAIT_SECS
    while True:
        status = client.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]
        if status["DeliveryStreamStatus"] == "ACTIVE":
            return
        assert time.monotonic() < deadline, f"{name} still {status['DeliveryStreamStatus']}"
        time.sleep(0.1)


def put(client, name: str, records: list[str]) -> None:
    response = client.put_record_batch(DeliveryStreamName=name, Records=[{"Data": r.encode()} for r in records])
    assert response["FailedPutCount"] == 0, response


def wait_rows(conn, sql: str, count: int) -> list[tuple]:
    deadline = time.monotonic() + WAIT_SECS
    while True:
        rows = conn.execute(sql).fetchall()
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def test_json_auto_loads_rows(firehose, postgres_server, db):  # noqa: F811
    table = unique_table("events")
    db.execute(
        f"CREATE TABLE {table} (id int NOT NULL, name varchar(40), score numeric, "
        "loaded timestamptz NOT NULL DEFAULT now())"
    )
    name = support.unique_name("redshift-json")
    create_stream(firehose, name, redshift_configuration(postgres_server, table, "JSON 'auto'", "id,name,score"))
    put(firehose, name, [
        '{"id": 1, "name": "first", "score": 1.5}\n',
        '{"id": 2, "name": "second", "ignored": [1, 2]}\n',
        '{"id": 3, "Name": "keys match exactly with \'auto\'", "score": -7}\n',
    ])
    rows = wait_rows(db, f"SELECT id, name, score FROM {table} ORDER BY id", 3)
    assert rows == [(1, "first", Decimal("1.5")), (2, "second", None), (3, None, Decimal("-7"))]
    description = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]
    redshift = description["Destinations"][0]["RedshiftDestinationDescription"]
    assert redshift["ClusterJDBCURL"] == postgres_server.jdbc_url()
    assert redshift["CopyCommand"]["DataTableName"] == table
    assert "Password" not in redshift
    firehose.delete_delivery_stream(DeliveryStreamName=name)


def test_csv_and_pipe_delimited_text(firehose, postgres_server, db):  # noqa: F811
    table = unique_table("people")
    db.execute(f"CREATE TABLE {table} (id int, name text, city text)")
    csv_stream = support.unique_name("redshift-csv")
    create_stream(firehose, csv_stream, redshift_configuration(postgres_server, table, "CSV IGNOREBLANKLINES"))
    put(firehose, csv_stream, ['1,"Smith, Jo","New\nYork"\n', '2,"say ""hi""",\n', "\n"])
    text_stream = support.unique_name("redshift-text")
    create_stream(firehose, text_stream, redshift_configuration(postgres_server, table, "", "id, name"))
    put(firehose, text_stream, ["3|pipe\n", "4|\\N\n"])
    rows = wait_rows(db, f"SELECT id, name, city FROM {table} ORDER BY id", 4)
    assert rows == [(1, "Smith, Jo", "New\nYork"), (2, 'say "hi"', ""), (3, "pipe", None), (4, None, None)]
    for name in (csv_stream, text_stream):
        firehose.delete_delivery_stream(DeliveryStreamName=name)


def test_failed_batches_go_to_the_errors_folder(server_factory, postgres_server, tmp_path):  # noqa: F811
    """Retries end after RetryOptions.DurationInSeconds; AWS then writes a manifest of the
    intermediate objects under errors/ in the S3 bucket, Tideline the records themselves."""
    s3_dir = tmp_path / "s3"
    srv = server_factory("--s3-dir", str(s3_dir))
    client = srv.client(service="firehose")
    name = support.unique_name("redshift-missing")
    configuration = redshift_configuration(
        postgres_server, unique_table("missing"), "JSON 'auto'", bucket="redshift-errors",
        RetryOptions={"DurationInSeconds": 0},
    )
    create_stream(client, name, configuration)
    put(client, name, ['{"id": 1}\n'])
    encoded = base64.b64encode(b'{"id": 1}\n').decode()
    deadline = time.monotonic() + WAIT_SECS
    while True:
        objects = folder_objects(s3_dir / "redshift-errors")
        matching = [key for key, content in objects.items() if encoded.encode() in content]
        if matching or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert matching, f"no error output with the record under {s3_dir}: {list(objects)}"
    assert all(key.split("/")[0] == "errors" for key in matching), matching
    assert any(b"Redshift.TableNotFound" in content for content in objects.values()), objects
