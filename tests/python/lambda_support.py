"""Helpers of the Lambda tests: a Tideline server whose functions run under this interpreter
(which has `awslambdaric`), handlers zipped from source text, and waiting for what functions
write."""

from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path

import support

ROLE = f"arn:aws:iam::{support.ACCOUNT}:role/lambda-role"


def lambda_flags() -> list[str]:
    return ["--lambda-python", sys.executable]


def zip_source(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def create_function(client, name: str, source: str, *, env: dict | None = None, timeout: int = 10, **kwargs) -> dict:
    """A python3.11 function whose `app.lambda_handler` is `source`."""
    return client.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.lambda_handler",
        Code={"ZipFile": zip_source({"app.py": source})},
        Timeout=timeout,
        Environment={"Variables": env or {}},
        **kwargs,
    )


def read_lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_mapping_idle(client, uuid: str, path: Path, count: int, timeout: float = 30.0) -> list[dict]:
    """The lines a mapping's handler wrote, once there are at least `count`."""
    return support.wait_for(lambda: (lines := read_lines(path)) and len(lines) >= count and lines, timeout,
                            what=f"{count} records via mapping {uuid}; have {len(read_lines(path))}")
