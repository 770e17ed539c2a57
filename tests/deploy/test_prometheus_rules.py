"""The recording and alert rules of deploy/prometheus/rules/, checked by promtool.

`promtool check rules` proves they load; `promtool test rules` runs the unit tests in
tests/deploy/prometheus/*.test.yml, where every alert fires when it should and stays
silent when it should not (alerts-weekly.test.yml holds those that need a week of
history, evaluated less often so that promtool gets through it quickly). To show those
tests would notice, each alert is then replaced by one that always fires and by one
that never does, and both must fail them.
The series every rule reads must be exported by the worker or recorded by a rule, and
the PrometheusRule of deploy/k8s/ must hold exactly these rules.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from monitoring import ALERTS, GROUPS, RECORDED, ROOT, RULE_FILES, RULES, exported_names, rule_name
from promql import metric_names
from tools import require

UNIT_TESTS = sorted((ROOT / "tests/deploy/prometheus").glob("*.test.yml"))
SEVERITIES = {"critical", "warning"}


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require("promtool"), *map(str, args)], capture_output=True, text=True, timeout=120)


def test_the_rule_files_load() -> None:
    done = promtool("check", "rules", *RULE_FILES)
    assert done.returncode == 0, done.stdout + done.stderr
    assert ALERTS and RECORDED


def test_the_prometheus_config_loads() -> None:
    done = promtool("check", "config", ROOT / "deploy/prometheus/prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("tests", UNIT_TESTS, ids=lambda path: path.name)
def test_the_alert_unit_tests_pass(tests: Path) -> None:
    done = promtool("test", "rules", tests)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_each_alert_waits_and_says_what_is_wrong(name: str) -> None:
    alert = ALERTS[name]
    assert re.fullmatch(r"\d+[mh]", alert.get("for", "")), "a `for:` so one bad scrape pages nobody"
    assert alert["labels"]["severity"] in SEVERITIES
    assert set(alert["annotations"]) >= {"summary", "description"}
    assert all(text.strip() for text in alert["annotations"].values())


def test_every_series_a_rule_reads_is_exported_or_recorded() -> None:
    known = exported_names() | set(RECORDED) | {"up"}
    unknown = {rule_name(rule): sorted(metric_names(rule["expr"]) - known) for rule in RULES}
    assert {name: missing for name, missing in unknown.items() if missing} == {}


def test_recorded_names_follow_level_metric_operations() -> None:
    for name in RECORDED:
        assert re.fullmatch(r"[a-z_]+:[a-z_]+:[a-z_0-9]+", name), name


def _unit_tests(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def _unit_test_cases() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, case) for path in UNIT_TESTS for case in _unit_tests(path)["tests"]]


@pytest.mark.parametrize("tests", UNIT_TESTS, ids=lambda path: path.name)
def test_the_unit_tests_evaluate_recording_groups_before_the_alerts(tests: Path) -> None:
    # Left to itself promtool picks a random group order; an alert evaluated before the
    # group recording its input reads the previous interval's value (1 run in 10 failed).
    order = _unit_tests(tests)["group_eval_order"]
    assert sorted(order) == sorted(group["name"] for group in GROUPS)
    alerting = [group["name"] for group in GROUPS if any("alert" in rule for rule in group["rules"])]
    assert order[-len(alerting) :] == alerting


def test_every_alert_is_tested_firing_and_silent() -> None:
    checks = [check for _, case in _unit_test_cases() for check in case.get("alert_rule_test", [])]
    for name in ALERTS:
        mine = [check for check in checks if check["alertname"] == name]
        assert any(check["exp_alerts"] for check in mine), f"{name}: no test where it fires"
        assert any(not check["exp_alerts"] for check in mine), f"{name}: no test where it stays silent"


@pytest.mark.parametrize("replacement", ["vector(1)", "vector(1) < 0"], ids=["always", "never"])
@pytest.mark.parametrize("name", sorted(ALERTS))
def test_the_unit_tests_notice_an_alert_that_always_or_never_fires(name: str, replacement: str, tmp_path: Path) -> None:
    def mutate(rule: dict[str, Any]) -> dict[str, Any]:
        return {**rule, "expr": replacement} if rule.get("alert") == name else rule

    groups = [{**group, "rules": [mutate(rule) for rule in group["rules"]]} for group in GROUPS]
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": groups}))
    mine = [
        (path, case)
        for path, case in _unit_test_cases()
        if any(c["alertname"] == name for c in case.get("alert_rule_test", []))
    ]
    files = {path for path, _ in mine}
    assert len(files) == 1, f"{name} is tested in one file, so one evaluation interval: {sorted(files)}"
    original = _unit_tests(files.pop())
    tests = tmp_path / "alerts.test.yml"
    tests.write_text(
        yaml.safe_dump(
            {
                "rule_files": [rules.name],
                "evaluation_interval": original["evaluation_interval"],
                "group_eval_order": original["group_eval_order"],
                "tests": [case for _, case in mine],
            }
        )
    )
    done = promtool("test", "rules", tests)
    assert done.returncode != 0, f"{name} replaced by `{replacement}` passed the unit tests"
    assert "FAILED" in done.stdout + done.stderr


def _prometheus_rule_module() -> Any:
    spec = importlib.util.spec_from_file_location("prometheusrule", ROOT / "scripts/prometheusrule.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_kubernetes_prometheusrule_holds_exactly_these_rules(tmp_path: Path) -> None:
    module = _prometheus_rule_module()
    target = ROOT / "deploy/k8s/base/prometheusrule.yaml"
    assert target.read_text() == module.render(), "out of date: run python scripts/prometheusrule.py"
    resource = yaml.safe_load(target.read_text())
    assert (resource["apiVersion"], resource["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    assert resource["spec"]["groups"] == GROUPS
    extracted = tmp_path / "from-prometheusrule.yml"
    extracted.write_text(yaml.safe_dump(resource["spec"]))
    done = promtool("check", "rules", extracted)
    assert done.returncode == 0, done.stdout + done.stderr
