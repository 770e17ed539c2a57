"""Dead-letter records: what was refused, why, where it came from, and the bytes.

Shape (schemas/deadletter/jsonschema/1-0-0.json):
  {"kind": "deadletter", "reason": "<code>", "detail": "<readable>",
   "source": {"file": ..., "line": ...} | {"topic": ..., "partition": ..., "offset": ...},
   "payload": "<text>", "payload_encoding": "utf-8" | "base64",
   "key": "<text>", "key_encoding": "utf-8" | "base64"}      (key only from Kafka)
"""

from __future__ import annotations

import base64
from typing import Any


def _text(raw: bytes) -> tuple[str, str]:
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"


def dead_letter(
    reason: str, detail: str, payload: bytes, source: dict[str, Any], key: bytes | None = None
) -> dict[str, Any]:
    text, encoding = _text(payload)
    record: dict[str, Any] = {
        "kind": "deadletter",
        "reason": reason,
        "detail": detail,
        "source": source,
        "payload": text,
        "payload_encoding": encoding,
    }
    if key is not None:
        record["key"], record["key_encoding"] = _text(key)
    return record


def file_source(path: str, line: int) -> dict[str, Any]:
    return {"file": path, "line": line}


def topic_source(topic: str, partition: int, offset: int) -> dict[str, Any]:
    return {"topic": topic, "partition": partition, "offset": offset}
