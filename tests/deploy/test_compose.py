"""docker-compose.yml, read as YAML and checked against the code and its other files.

Without a Docker engine, this proves the wiring: the services and the order they start
in, images pinned, every FUNNEL_* variable one the settings read (and accepted by
them), every command one the CLI parses, Kafka in KRaft mode advertising the address
the worker is given, and one web port for the port mapping, the healthcheck and the
Prometheus scrape. That the stack then runs is for `docker compose up`.
"""

from __future__ import annotations

import base64
import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from processor.cli import build_parser
from processor.config.settings import ENV_VARS, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
PROMETHEUS_CONFIG = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
# The services running the project's own image, and what each runs.
OURS = {"topics": "topics", "worker": "worker", "simulator": "simulate"}


def env_files(service: dict[str, Any]) -> list[dict[str, Any]]:
    """The service's env_file entries in the long form ({path, required})."""
    entries = service.get("env_file", [])
    entries = [entries] if isinstance(entries, str) else entries
    return [{"path": entry, "required": True} if isinstance(entry, str) else entry for entry in entries]


def environment(service: dict[str, Any]) -> dict[str, str]:
    """What the container gets: its env files that exist (in order), then `environment` over them."""
    merged: dict[str, str] = {}
    for entry in env_files(service):
        path = ROOT / entry["path"]
        if path.is_file():
            lines = [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
            merged.update(line.partition("=")[::2] for line in lines)
    env: dict[str, str] | list[str] = service.get("environment", {})
    if isinstance(env, list):  # the KEY=VALUE list form
        env = dict(item.partition("=")[::2] for item in env)
    return merged | env


def settings_of(name: str) -> Settings:
    return Settings.from_env(environment(SERVICES[name]))


def volume_targets(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> source, for the short `source:target[:mode]` syntax."""
    return {item.split(":")[1]: item.split(":")[0] for item in service.get("volumes", [])}


def worker_routes() -> set[str]:
    return set(re.findall(r'@app\.page\("([^"]+)"\)', (ROOT / "processor/worker/views.py").read_text()))


def test_the_stack_has_kafka_the_jobs_the_worker_and_monitoring() -> None:
    assert set(SERVICES) == {"kafka", "topics", "worker", "simulator", "prometheus", "grafana"}
    assert {name for name, service in SERVICES.items() if "build" in service} == set(OURS)


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_image_is_pinned(name: str) -> None:
    image = SERVICES[name]["image"]
    repository, _, tag = image.rpartition(":")
    assert repository and "/" not in tag, f"{name}: {image!r} has no tag"
    assert re.fullmatch(r"v?\d+(\.\d+){2}", tag), f"{name}: {image!r} is not pinned to a release"
    if "build" in SERVICES[name]:
        assert image == f"funnel-processor:{VERSION}", "the built image is tagged with the project's version"
        assert (ROOT / SERVICES[name]["build"]["context"] / SERVICES[name]["build"]["dockerfile"]).is_file()


@pytest.mark.parametrize("name", sorted(OURS))
def test_the_environment_is_settings_the_worker_reads(name: str) -> None:
    env = environment(SERVICES[name])
    assert env.keys() <= ENV_VARS, sorted(env.keys() - ENV_VARS)
    assert all(isinstance(value, str) for value in env.values()), "quote values: YAML turns 8 into a number"
    settings_of(name)  # raises SettingsError naming the variable


@pytest.mark.parametrize("name", sorted(OURS))
def test_every_command_parses_with_the_cli(name: str) -> None:
    assert "entrypoint" not in SERVICES[name], "the image's entrypoint is funnel-processor"
    args = build_parser().parse_args(SERVICES[name]["command"])
    assert args.command == OURS[name]
    if name == "topics":
        assert args.topics_action == "create"
    if name == "simulator":
        assert args.to_topic == "", "to the configured touchpoints topic"


@pytest.mark.parametrize("name", sorted(OURS))
def test_the_project_containers_are_hardened(name: str) -> None:
    service = SERVICES[name]
    assert service["read_only"] is True
    assert service["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in service["security_opt"]
    assert service["tmpfs"] == ["/tmp"]


def listeners(text: str) -> dict[str, tuple[str, int]]:
    """'NAME://host:port,...' -> {NAME: (host, port)}."""
    found = {}
    for item in text.split(","):
        name, _, address = item.partition("://")
        host, _, port = address.rpartition(":")
        found[name] = (host, int(port))
    return found


def test_kafka_runs_in_kraft_mode_and_advertises_the_address_the_workers_use() -> None:
    kafka = SERVICES["kafka"]
    env = environment(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not any("ZOOKEEPER" in key for key in env)
    assert len(base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")) == 16, "a cluster id is a base64 UUID"
    bound, advertised = listeners(env["KAFKA_LISTENERS"]), listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(bound) <= set(protocols)
    for name, (_host, port) in advertised.items():
        assert bound[name][1] == port, f"{name} is advertised on another port than it listens on"
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert controller not in advertised
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:{bound[controller][1]}"
    reachable = set(advertised.values())
    for name in OURS:
        for host in settings_of(name).broker_hosts():
            address, _, host_port = host.rpartition(":")
            assert (address, int(host_port)) in reachable, f"{name} uses {host}, which Kafka does not advertise"
    published = {tuple(int(p) for p in mapping.split(":")) for mapping in kafka["ports"]}
    assert {(port, port) for host, port in advertised.values() if host == "localhost"} == published
    health = kafka["healthcheck"]["test"]
    assert f"localhost:{bound['PLAINTEXT'][1]}" in health


def test_services_start_after_what_they_need() -> None:
    for name, service in SERVICES.items():
        for target, rule in service.get("depends_on", {}).items():
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[target], f"{name} waits for {target}, which has no healthcheck"
            if rule["condition"] == "service_completed_successfully":
                assert SERVICES[target]["restart"] == "no", f"{target} is a one-shot job"

    def needs(name: str) -> dict[str, str]:
        return {target: rule["condition"] for target, rule in SERVICES[name].get("depends_on", {}).items()}

    assert needs("topics") == {"kafka": "service_healthy"}
    assert needs("worker") == {"kafka": "service_healthy", "topics": "service_completed_successfully"}
    assert needs("simulator")["topics"] == "service_completed_successfully"
    assert needs("grafana") == {"prometheus": "service_healthy"}


def test_one_web_port_is_published_health_checked_and_scraped() -> None:
    worker = SERVICES["worker"]
    settings = settings_of("worker")
    assert settings.web_bind == "0.0.0.0"
    assert [mapping.split(":")[-1] for mapping in worker["ports"]] == [str(settings.web_port)]
    url = re.search(r"http://[^'\"]+", " ".join(worker["healthcheck"]["test"]))
    assert url, worker["healthcheck"]
    check = urlsplit(url[0])
    assert check.port == settings.web_port
    assert check.path in worker_routes(), f"the healthcheck asks {check.path}, which the worker does not serve"
    [job] = PROMETHEUS_CONFIG["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert [target for config in job["static_configs"] for target in config["targets"]] == [
        f"worker:{settings.web_port}"
    ]


def test_the_query_token_comes_from_an_ignored_env_file_and_the_port_from_loopback() -> None:
    """The worker binds 0.0.0.0 in its container: without a token it serves no queries. The token
    comes from an optional env file git ignores (a secret is never committed, nor required to start)."""
    worker = SERVICES["worker"]
    [entry] = env_files(worker)
    assert entry["required"] is False
    ignored = [line.strip() for line in (ROOT / ".gitignore").read_text().splitlines()]
    assert "/" + entry["path"] in ignored, f"{entry['path']} is not in .gitignore"
    assert (ROOT / f"{entry['path']}.example").is_file(), "an example beside it says how to make it"
    for name in OURS:
        assert "FUNNEL_WEB_TOKEN" not in SERVICES[name].get("environment", {}), "never in the compose file"
    assert [mapping.split(":")[0] for mapping in worker["ports"]] == ["127.0.0.1"], "published on loopback only"


def test_the_worker_keeps_rocksdb_in_a_named_volume() -> None:
    data_dir = str(settings_of("worker").data_dir)
    source = volume_targets(SERVICES["worker"])[data_dir]
    assert source in COMPOSE["volumes"], f"{data_dir} is on {source!r}, not a named volume"
    assert volume_targets(SERVICES["kafka"])[environment(SERVICES["kafka"])["KAFKA_LOG_DIRS"]] in COMPOSE["volumes"]


def test_prometheus_reads_its_config_and_the_rules_from_deploy() -> None:
    prometheus = SERVICES["prometheus"]
    mounts = volume_targets(prometheus)
    config = next(arg.partition("=")[2] for arg in prometheus["command"] if arg.startswith("--config.file="))
    assert (ROOT / mounts[config]).resolve() == ROOT / "deploy/prometheus/prometheus.yml"
    rules = {str(Path(pattern).parent) for pattern in PROMETHEUS_CONFIG["rule_files"]}
    assert {mounts[directory] for directory in rules} == {"./deploy/prometheus/rules"}


def test_grafana_is_provisioned_from_deploy() -> None:
    mounts = volume_targets(SERVICES["grafana"])
    assert mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    dashboards_dir = next(target for target, source in mounts.items() if source == "./deploy/grafana/dashboards")
    provisioning = ROOT / "deploy/grafana/provisioning"
    if not provisioning.is_dir():
        pytest.skip("deploy/grafana/provisioning/ is not written yet: its paths cannot be compared")
    providers = [
        provider
        for path in sorted((provisioning / "dashboards").glob("*.y*ml"))
        for provider in yaml.safe_load(path.read_text()).get("providers", [])
    ]
    assert providers, "a dashboards provider"
    for provider in providers:
        assert provider["options"]["path"].startswith(dashboards_dir), f"Grafana reads {dashboards_dir}"
    for path in sorted((provisioning / "datasources").glob("*.y*ml")):
        for source in yaml.safe_load(path.read_text()).get("datasources", []):
            if source.get("type") == "prometheus":
                assert urlsplit(source["url"]).netloc == "prometheus:9090", "the compose service `prometheus`"
