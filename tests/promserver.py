"""A real Prometheus server for a test: Debian's `prometheus`, on a loopback port.

It scrapes the given targets every second as job funnel-processor, evaluates the
project's rule files every second, keeps its data in a temporary folder, and is
stopped by its PID. Queries go through the HTTP API, as Grafana's do.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from localbrokers.net import free_loopback_port

JOB = "funnel-processor"
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


class QueryFailed(AssertionError):
    pass


@dataclass
class PrometheusServer:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def api(self, path: str, **params: str | float) -> Any:
        query = urllib.parse.urlencode({k: str(v) for k, v in params.items()})
        request = urllib.request.Request(f"{self.url}/api/v1/{path}", data=query.encode(), method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as error:
            body = json.loads(error.read() or b"{}")
        if body.get("status") != "success":
            raise QueryFailed(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query at now: [{metric: labels, value: float}]."""
        data = self.api("query", query=expr)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": float(data["result"][1])}]
        return [{"metric": r["metric"], "value": float(r["value"][1])} for r in data["result"]]

    def query_range(self, expr: str, start: float, end: float, step: float = 1.0) -> list[dict[str, Any]]:
        """A range query: [{metric: labels, values: [float...]}]."""
        data = self.api("query_range", query=expr, start=start, end=end, step=step)
        return [{"metric": r["metric"], "values": [float(v) for _, v in r["values"]]} for r in data["result"]]

    def returns_data(self, expr: str, start: float, end: float) -> bool:
        """Whether the expression gives at least one finite value between start and end."""
        return any(math.isfinite(v) for series in self.query_range(expr, start, end) for v in series["values"])

    def wait_for(self, expr: str, timeout_s: float, check: Any = bool) -> list[dict[str, Any]]:
        deadline, result = time.monotonic() + timeout_s, []
        while time.monotonic() < deadline:
            result = self.query(expr)
            if check(result):
                return result
            time.sleep(0.5)
        raise AssertionError(f"{expr} did not satisfy the check within {timeout_s} s; last: {result}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=STOP_TIMEOUT_S)


def start_prometheus(
    binary: str, workdir: Path, targets: Sequence[str], rule_files: Sequence[Path]
) -> PrometheusServer:
    workdir.mkdir(parents=True, exist_ok=True)
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": list(targets)}]}],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_loopback_port()
    log = workdir / "prometheus.log"
    command = [
        binary,
        f"--config.file={workdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = PrometheusServer(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"prometheus exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{server.url}/-/ready", timeout=1) as response:
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(0.2)
    server.stop()
    raise AssertionError(f"prometheus not ready within {READY_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")
