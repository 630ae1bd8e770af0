"""The web console's HTTP surface: `GET /` and `/console/…` serve the page and its assets without a
signature; its data calls (`/console/api/…`) are signed like any Kinesis call, and refused without
a valid signature under --auth; requests that are not the console's are refused as before."""

from __future__ import annotations

import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from support import ACCESS_KEY, AMZ_JSON, REGION, SECRET_KEY, create_stream, error_type, signed_request, unique_name

ASSETS = {
    "/console/console.css": "text/css",
    "/console/console.js": "text/javascript",
    "/console/sigv4.js": "text/javascript",
    "/console/aws.js": "text/javascript",
    "/console/chart.js": "text/javascript",
}


def signed_get(endpoint: str, path: str, params: dict | None = None, secret: str = SECRET_KEY) -> requests.Response:
    url = endpoint + path
    request = AWSRequest(method="GET", url=url, params=params or {})
    SigV4Auth(Credentials(ACCESS_KEY, secret), "kinesis", REGION).add_auth(request)
    prepared = request.prepare()
    return requests.get(prepared.url, headers=dict(prepared.headers.items()), timeout=30)


def test_get_root_serves_the_console_page(endpoint):
    for path in ["/", "/console", "/console/"]:
        response = requests.get(endpoint + path, timeout=30)
        assert response.status_code == 200, path
        assert response.headers["Content-Type"].startswith("text/html")
        assert '<script type="module" src="/console/console.js">' in response.text
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    for path, content_type in ASSETS.items():
        response = requests.get(endpoint + path, timeout=30)
        assert response.status_code == 200, path
        assert response.headers["Content-Type"].startswith(content_type), path
    config = requests.get(endpoint + "/console/config.json", timeout=30).json()
    assert config["region"] == REGION
    assert config["auth"] is False


def test_unknown_requests_are_refused_as_before(endpoint):
    # No X-Amz-Target on `/`: unsigned or signed, it names no operation.
    for response in [
        requests.post(endpoint + "/", data=b"{}", headers={"Content-Type": AMZ_JSON}, timeout=30),
        signed_request(endpoint, None, b"{}"),
    ]:
        assert response.status_code == 400
        assert error_type(response.json()) == "UnknownOperationException"
    # Unknown targets, and paths nobody serves (including under /console/), are unchanged.
    response = signed_request(endpoint, "Kinesis_20131202.NoSuchOperation", b"{}")
    assert (response.status_code, error_type(response.json())) == (400, "UnknownOperationException")
    assert response.headers["Content-Type"] == AMZ_JSON
    for path in ["/nope", "/console/nope.js", "/consolex"]:
        response = requests.get(endpoint + path, timeout=30)
        assert response.status_code == 400, path
        assert error_type(response.json()) == "UnknownOperationException"
        assert response.headers["Content-Type"] == AMZ_JSON


def test_console_data_calls_are_signed_calls(endpoint, kinesis):
    unsigned = requests.get(endpoint + "/console/api/metrics", timeout=30)
    assert (unsigned.status_code, error_type(unsigned.json())) == (400, "MissingAuthenticationTokenException")
    name = unique_name("console-shards")
    create_stream(kinesis, name, 2)
    for _ in range(3):
        kinesis.put_record(StreamName=name, Data=b"x", PartitionKey="k", ExplicitHashKey="0")
    shards = signed_get(endpoint, "/console/api/shards", {"StreamName": name})
    assert shards.status_code == 200, shards.text
    written = {shard["ShardId"]: shard["RecordsWritten"] for shard in shards.json()["Shards"]}
    assert written == {"shardId-000000000000": 3, "shardId-000000000001": 0}
    metrics = signed_get(endpoint, "/console/api/metrics")
    assert metrics.status_code == 200
    assert f'kinesis_incoming_records_total{{stream="{name}"}} 3' in metrics.text
    missing = signed_get(endpoint, "/console/api/shards", {"StreamName": name + "-missing"})
    assert (missing.status_code, error_type(missing.json())) == (400, "ResourceNotFoundException")
    by_arn = signed_get(endpoint, "/console/api/shards", {"StreamARN": kinesis.describe_stream_summary(
        StreamName=name)["StreamDescriptionSummary"]["StreamARN"]})
    assert by_arn.json()["StreamName"] == name
    nameless = signed_get(endpoint, "/console/api/shards")
    assert nameless.status_code == 400
    assert error_type(nameless.json()) in ("InvalidArgumentException", "ValidationException")


def test_console_data_calls_need_a_known_key_with_auth(server_factory, tmp_path):
    credentials = tmp_path / "credentials"
    credentials.write_text(f"[default]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n")
    server = server_factory("--auth", "--credentials", str(credentials))
    page = requests.get(server.endpoint + "/", timeout=30)
    assert page.status_code == 200
    assert requests.get(server.endpoint + "/console/config.json", timeout=30).json()["auth"] is True
    assert signed_get(server.endpoint, "/console/api/metrics").status_code == 200
    wrong = signed_get(server.endpoint, "/console/api/metrics", secret="not-the-secret")
    assert (wrong.status_code, error_type(wrong.json())) == (400, "InvalidSignatureException")
    unsigned = requests.get(server.endpoint + "/console/api/metrics", timeout=30)
    assert error_type(unsigned.json()) == "MissingAuthenticationTokenException"

