"""Writes deploy/k8s/base/prometheusrule.yaml from the rule files of deploy/prometheus/rules/.

The compose stack's Prometheus reads the rule files directly; the Prometheus Operator
wants them wrapped in a PrometheusRule. One source, two forms: edit the rule files,
then run `python scripts/prometheusrule.py`; tests/deploy fail while the two differ
(`--check` tells the same without writing).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "deploy/prometheus/rules"
TARGET = ROOT / "deploy/k8s/base/prometheusrule.yaml"
HEADER = """\
# GENERATED from deploy/prometheus/rules/*.yml by scripts/prometheusrule.py: do not edit
# here. The funnel processor's recording and alert rules, for the Prometheus Operator.
# A Prometheus picks up rules whose labels match its ruleSelector: add that label in an
# overlay if yours selects on one (e.g. `release: <your prometheus>`).
"""


def rule_files() -> list[Path]:
    return sorted([*RULES.glob("*.yml"), *RULES.glob("*.yaml")])


def prometheus_rule() -> dict[str, Any]:
    groups = [group for path in rule_files() for group in yaml.safe_load(path.read_text())["groups"]]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "funnel-processor",
            "labels": {"app.kubernetes.io/name": "funnel-processor", "app.kubernetes.io/component": "worker"},
        },
        "spec": {"groups": groups},
    }


def render() -> str:
    return HEADER + yaml.safe_dump(prometheus_rule(), sort_keys=False, width=100, allow_unicode=True)


def main(argv: list[str]) -> int:
    text = render()
    if argv[1:] == ["--check"]:
        if TARGET.exists() and TARGET.read_text() == text:
            return 0
        print(f"{TARGET.relative_to(ROOT)} is out of date: run python scripts/prometheusrule.py", file=sys.stderr)
        return 1
    TARGET.write_text(text)
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
