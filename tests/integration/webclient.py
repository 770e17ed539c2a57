"""Asking a worker's web server: GETs with or without the bearer token, and polling until an answer."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import orjson
import pytest

TOKEN = "f3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def get_json(url: str) -> tuple[int, Any]:
    """(status, JSON body) of a GET on the worker's web port."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, orjson.loads(error.read())


def path_of(contact_id: str) -> str:
    """How a client puts an id in the path: every reserved character percent-encoded, dots too."""
    return "/journeys/" + quote(contact_id, safe="").replace(".", "%2E") + "/"


def get(port: int, path: str, token: str | None = None, **headers: str) -> tuple[int, dict[str, str], Any]:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            status, head, body = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, head, body = error.code, dict(error.headers), error.read()
    try:
        return status, head, orjson.loads(body)
    except orjson.JSONDecodeError:
        return status, head, body.decode(errors="replace")


def poll(port: int, path: str, token: str | None, done: Callable[[int, Any], bool], timeout_s: float) -> Any:
    deadline, status, body = time.monotonic() + timeout_s, 0, None
    while time.monotonic() < deadline:
        status, _, body = get(port, path, token)
        if done(status, body):
            return body
        time.sleep(0.3)
    pytest.fail(f"GET {path} on port {port}: still {status} {body!r:.300} after {timeout_s} s")
