"""The Kubernetes manifests of deploy/k8s/, rendered and checked offline.

The base is rendered by reading its kustomization's resources (no tool needed); the
example overlay by `kubectl kustomize`, skipped with the reason when kubectl is absent.
Every rendered object is validated against the Kubernetes JSON schemas that
kubernetes-validate bundles (strict: unknown fields fail), for the oldest release the
manifests are written for and the newest the validator knows; the PodMonitor, a
Prometheus Operator resource those schemas do not cover, gets a structural check (the
PrometheusRule is checked with the rule files, in test_prometheus_rules.py).
Then the manifests are checked against the code: the settings accept the configuration
each container gets, secrets come from Secrets, commands parse, one web port and one data
directory are used throughout, and the NetworkPolicy lets only the workers and the
monitoring namespace reach that port. Every FUNNEL_* name in any deploy file (manifests,
compose, Dockerfile, env files) must be one the settings read. Whether pods start and
become ready, and whether a network plugin enforces the policy, needs a cluster.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from processor.cli import build_parser
from processor.config.settings import ENV_VARS, Settings

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy/k8s/base"
OVERLAY = ROOT / "deploy/k8s/overlays/example"
MIN_KUBERNETES = "1.30"  # the oldest release the manifests are written for (see base/kustomization.yaml)
VERSIONS = sorted({MIN_KUBERNETES, latest_version()})
DEPLOY_FILES = [ROOT / "Dockerfile", ROOT / "docker-compose.yml"]  # plus everything under deploy/
WEB_SECRET = "funnel-processor-web"  # FUNNEL_WEB_TOKEN
NAMESPACE_NAME = "kubernetes.io/metadata.name"  # the label every namespace carries with its own name
CUSTOM_KINDS = {("monitoring.coreos.com/v1", "PodMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
POD = {"metadata.name": "funnel-processor-0", "metadata.namespace": "funnels"}  # for $(VAR) and fieldRef
Obj = dict[str, Any]


def render_base() -> list[Obj]:
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    assert set(kustomization) == {"apiVersion", "kind", "resources"}, "this renderer reads only `resources`"
    return [doc for name in kustomization["resources"] for doc in yaml.safe_load_all((BASE / name).read_text()) if doc]


def kubectl_kustomize(path: Path) -> list[Obj]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip(
            f"kubectl is not installed: `kubectl kustomize {path.relative_to(ROOT)}` not run"
            " (the base is still read from its files and validated)"
        )
    done = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module", params=["base", "overlays/example"])
def rendered(request: pytest.FixtureRequest) -> list[Obj]:
    return render_base() if request.param == "base" else kubectl_kustomize(OVERLAY)


def one(objects: list[Obj], kind: str, name: str | None = None) -> Obj:
    found = [obj for obj in objects if obj["kind"] == kind and name in (None, obj["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def pod(objects: list[Obj]) -> Obj:
    template: Obj = one(objects, "StatefulSet")["spec"]["template"]
    return template


def container(objects: list[Obj], name: str) -> Obj:
    spec = pod(objects)["spec"]
    return next(c for c in spec["containers"] + spec.get("initContainers", []) if c["name"] == name)


def all_containers(objects: list[Obj]) -> list[Obj]:
    spec = pod(objects)["spec"]
    return list(spec["containers"] + spec.get("initContainers", []))


def environment(objects: list[Obj], spec: Obj) -> dict[str, str]:
    """The container's variables as the kubelet sets them: envFrom first, then env with $(VAR) expanded."""
    env: dict[str, str] = {}
    for source in spec.get("envFrom", []):
        assert "prefix" not in source, "a prefix would rename the FUNNEL_* variables"
        if "configMapRef" in source:
            env.update(one(objects, "ConfigMap", source["configMapRef"]["name"]).get("data", {}))
        if "secretRef" in source:
            secret = one(objects, "Secret", source["secretRef"]["name"])
            env.update({key: base64.b64decode(value).decode() for key, value in secret.get("data", {}).items()})
            env.update(secret.get("stringData", {}))
    for item in spec.get("env", []):
        if "value" in item:
            env[item["name"]] = re.sub(r"\$\((\w+)\)", lambda match: env[match[1]], item["value"])
        else:
            env[item["name"]] = POD[item["valueFrom"]["fieldRef"]["fieldPath"]]
    return env


def settings_of(objects: list[Obj], spec: Obj, tmp_path: Path) -> Settings:
    """Settings from the container's FUNNEL_* variables; a file setting must be on a mounted volume."""
    env = {key: value for key, value in environment(objects, spec).items() if key.startswith("FUNNEL_")}
    assert env.keys() <= ENV_VARS, f"{spec['name']}: {sorted(env.keys() - ENV_VARS)} are not settings"
    mounts = [Path(mount["mountPath"]) for mount in spec.get("volumeMounts", [])]
    for var in sorted(name for name in env.keys() & ENV_VARS if name.endswith("FILE")):
        assert any(Path(env[var]).is_relative_to(mount) for mount in mounts), f"{spec['name']}: {var} is on no volume"
        stand_in = tmp_path / var  # the settings check that the file exists
        stand_in.write_text("stand-in\n")
        env[var] = str(stand_in)
    return Settings.from_env(env)


def is_core(obj: Obj) -> bool:
    return (obj["apiVersion"], obj["kind"]) not in CUSTOM_KINDS


@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_validates_against_the_kubernetes_schemas(rendered: list[Obj], version: str) -> None:
    failures = []
    for obj in filter(is_core, rendered):
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            failures.append(f"{obj['kind']}/{obj['metadata']['name']} at {list(error.path)}: {error.message}")
    assert not failures, "\n".join(failures)


def test_the_strict_schemas_catch_a_misspelt_field() -> None:
    statefulset = copy.deepcopy(one(render_base(), "StatefulSet"))
    statefulset["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFileSystem"] = True
    with pytest.raises(kubernetes_validate.ValidationError, match="readOnlyRootFileSystem"):
        kubernetes_validate.validate(statefulset, MIN_KUBERNETES, strict=True)


def test_kubectl_renders_the_base_as_its_files_read() -> None:
    def key(obj: Obj) -> tuple[str, str]:
        return obj["kind"], obj["metadata"]["name"]

    assert sorted(kubectl_kustomize(BASE), key=key) == sorted(render_base(), key=key)


def test_only_the_prometheus_operator_resources_are_outside_the_core_schemas(rendered: list[Obj]) -> None:
    assert sorted(obj["kind"] for obj in rendered if not is_core(obj)) == ["PodMonitor", "PrometheusRule"]


def test_the_podmonitor_scrapes_the_workers_web_port_at_metrics(rendered: list[Obj]) -> None:
    monitor = one(rendered, "PodMonitor")
    spec = monitor["spec"]
    assert set(spec) <= {"jobLabel", "selector", "podMetricsEndpoints", "namespaceSelector", "podTargetLabels"}
    labels = pod(rendered)["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    ports = {port["name"] for port in container(rendered, "worker")["ports"]}
    [endpoint] = spec["podMetricsEndpoints"]
    assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "scheme", "honorLabels"}
    assert endpoint["port"] in ports and endpoint["path"] == "/metrics"
    assert all(re.fullmatch(r"\d+[smh]", endpoint[key]) for key in ("interval", "scrapeTimeout"))
    # The job label is the same in Kubernetes and in the compose stack's Prometheus.
    prometheus = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    assert labels[spec["jobLabel"]] == prometheus["scrape_configs"][0]["job_name"]


def test_each_container_gets_settings_the_worker_accepts(rendered: list[Obj], tmp_path: Path) -> None:
    for spec in all_containers(rendered):
        settings_of(rendered, spec, tmp_path)


def test_the_commands_parse_with_the_cli(rendered: list[Obj]) -> None:
    expected = {"worker": ("worker", None), "topics": ("topics", "create")}
    assert {spec["name"] for spec in all_containers(rendered)} == set(expected)
    for spec in all_containers(rendered):
        assert "command" not in spec, "the image's entrypoint is funnel-processor"
        args = build_parser().parse_args(spec["args"])
        assert (args.command, getattr(args, "topics_action", None)) == expected[spec["name"]]


def test_one_web_port_for_the_container_probes_services_and_peers(rendered: list[Obj], tmp_path: Path) -> None:
    worker = container(rendered, "worker")
    settings = settings_of(rendered, worker, tmp_path)
    assert settings.web_bind == "0.0.0.0"
    named = {port["name"]: port["containerPort"] for port in worker["ports"]}
    assert list(named.values()) == [settings.web_port]

    def resolve(port: int | str) -> int:
        return named[port] if isinstance(port, str) else port

    routes = set(re.findall(r'@app\.page\("([^"]+)"\)', (ROOT / "processor/worker/views.py").read_text()))
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        action = worker[probe].get("httpGet") or worker[probe]["tcpSocket"]
        assert resolve(action["port"]) == settings.web_port, probe
        if "path" in action:
            assert action["path"] in routes, f"{probe} asks {action['path']}, which the worker does not serve"
    labels = pod(rendered)["metadata"]["labels"]
    services = [obj for obj in rendered if obj["kind"] == "Service"]
    for service in services:
        assert service["spec"]["selector"].items() <= labels.items()
        assert [resolve(port["targetPort"]) for port in service["spec"]["ports"]] == [settings.web_port]
    # Each worker advertises its name under the StatefulSet's headless Service.
    statefulset = one(rendered, "StatefulSet")
    headless = one(rendered, "Service", statefulset["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert settings.web_host.split(".")[:3] == [POD["metadata.name"], headless["metadata"]["name"], "funnels"]


def test_rocksdb_lives_on_each_pods_own_volume(rendered: list[Obj], tmp_path: Path) -> None:
    worker = container(rendered, "worker")
    data_dir = str(settings_of(rendered, worker, tmp_path).data_dir)
    [volume] = [mount["name"] for mount in worker["volumeMounts"] if mount["mountPath"] == data_dir]
    claims = one(rendered, "StatefulSet")["spec"]["volumeClaimTemplates"]
    assert volume in [claim["metadata"]["name"] for claim in claims]


def test_pods_are_hardened_and_sized(rendered: list[Obj]) -> None:
    spec = pod(rendered)["spec"]
    assert spec["automountServiceAccountToken"] is False
    security = spec["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] > 0
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    for each in all_containers(rendered):
        context = each["securityContext"]
        assert context["allowPrivilegeEscalation"] is False and context["readOnlyRootFilesystem"] is True
        assert context["capabilities"] == {"drop": ["ALL"]} and not context.get("privileged")
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= each["resources"][bound].keys(), f"{each['name']}: {bound}"
        assert "/tmp" in [mount["mountPath"] for mount in each["volumeMounts"]], "a writable /tmp"


def test_images_are_pinned(rendered: list[Obj]) -> None:
    for each in all_containers(rendered):
        repository, _, tag = each["image"].rpartition(":")
        assert repository and "/" not in tag and tag != "latest", each["image"]
        assert tag == VERSION, "the image of this release"


def test_disruptions_take_one_worker_at_a_time(rendered: list[Obj]) -> None:
    budget = one(rendered, "PodDisruptionBudget")["spec"]
    assert budget["maxUnavailable"] == 1
    assert budget["selector"]["matchLabels"].items() <= pod(rendered)["metadata"]["labels"].items()
    statefulset = one(rendered, "StatefulSet")["spec"]
    assert statefulset["selector"]["matchLabels"].items() <= pod(rendered)["metadata"]["labels"].items()
    assert statefulset["replicas"] >= 2, "one worker may be disrupted while another keeps consuming"


def secret_variables() -> set[str]:
    fields = {field.name: field for field in dataclasses.fields(Settings)}
    return {var for var, name in Settings.ENV.items() if "Secret" in str(fields[name].type)}


def test_secrets_come_only_from_secrets(rendered: list[Obj]) -> None:
    secrets = secret_variables()
    assert {"FUNNEL_SASL_PASSWORD", "FUNNEL_SSL_KEY_PASSWORD", "FUNNEL_WEB_TOKEN"} <= secrets
    for config in (obj for obj in rendered if obj["kind"] == "ConfigMap"):
        assert not secrets & config.get("data", {}).keys(), config["metadata"]["name"]
    for each in all_containers(rendered):
        assert not secrets & {item["name"] for item in each.get("env", [])}, each["name"]

    # The query token's Secret goes to the worker, which checks it, and not to the init container.
    def secret_refs(name: str) -> set[str]:
        return {ref["secretRef"]["name"] for ref in container(rendered, name)["envFrom"] if "secretRef" in ref}

    assert WEB_SECRET in secret_refs("worker") and WEB_SECRET not in secret_refs("topics")
    if "FUNNEL_WEB_TOKEN" in one(rendered, "Secret", WEB_SECRET).get("data", {}):  # an overlay filled it
        assert "FUNNEL_WEB_TOKEN" in environment(rendered, container(rendered, "worker"))


def test_only_the_workers_and_the_monitoring_namespace_reach_the_web_port(rendered: list[Obj], tmp_path: Path) -> None:
    [policy] = [obj for obj in rendered if obj["kind"] == "NetworkPolicy"]
    spec = policy["spec"]
    labels = pod(rendered)["metadata"]["labels"]
    assert spec["podSelector"]["matchLabels"].items() <= labels.items() and set(spec["podSelector"]) == {"matchLabels"}
    # Ingress only: the workers' own connections (Kafka, DNS) are not restricted by this policy.
    assert spec["policyTypes"] == ["Ingress"] and "egress" not in spec
    [rule] = spec["ingress"]
    worker = container(rendered, "worker")
    named = {port["name"]: port["containerPort"] for port in worker["ports"]}
    web_port = settings_of(rendered, worker, tmp_path).web_port
    assert [(named.get(port["port"], port["port"]), port["protocol"]) for port in rule["ports"]] == [(web_port, "TCP")]
    assert set(named.values()) == {web_port}, "the web port is the only port the pods listen on"
    peers, namespaces = rule["from"], []
    assert len(peers) == 2 and not any("ipBlock" in peer for peer in peers)
    for peer in peers:
        if "namespaceSelector" in peer:  # every pod of one namespace, named by its label
            assert set(peer) == {"namespaceSelector"}
            selector = peer["namespaceSelector"]
            assert set(selector) == {"matchLabels"} and list(selector["matchLabels"]) == [NAMESPACE_NAME]
            namespaces.append(selector["matchLabels"][NAMESPACE_NAME])
        else:  # the workers of the policy's own namespace (forwarded queries)
            assert set(peer) == {"podSelector"} and peer["podSelector"]["matchLabels"] == labels
    [monitoring] = namespaces
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", monitoring)
    namespace = policy["metadata"].get("namespace")
    assert monitoring != namespace, "the monitoring namespace is another one than the workers'"


def test_the_example_overlay_names_its_own_monitoring_namespace() -> None:
    def monitoring(objects: list[Obj]) -> str:
        [peer] = [
            peer for peer in one(objects, "NetworkPolicy")["spec"]["ingress"][0]["from"] if "namespaceSelector" in peer
        ]
        return str(peer["namespaceSelector"]["matchLabels"][NAMESPACE_NAME])

    assert monitoring(render_base()) == "monitoring"
    assert monitoring(kubectl_kustomize(OVERLAY)) == "observability"


def deploy_files() -> list[Path]:
    return DEPLOY_FILES + sorted(path for path in (ROOT / "deploy").rglob("*") if path.is_file())


def test_every_funnel_variable_named_in_a_deploy_file_is_a_setting() -> None:
    """Manifests, env files, compose and the Dockerfile, comments included: a name the worker
    does not read would be refused at start (or, in a comment, mislead whoever reads it)."""
    named: dict[str, set[str]] = {}
    for path in deploy_files():
        for name in re.findall(r"\bFUNNEL_[A-Z0-9_]*[A-Z0-9]", path.read_text(errors="replace")):
            named.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    assert {"FUNNEL_WEB_TOKEN", "FUNNEL_BROKER_URL"} <= named.keys(), "the scan finds the names"
    unknown = {name: sorted(paths) for name, paths in named.items() if name not in ENV_VARS}
    assert not unknown, f"not settings the worker reads: {unknown}"
    env_files = [path for path in deploy_files() if path.name.endswith((".env", ".env.example"))]
    assert env_files, "the example overlay's env files"
    for path in env_files:  # each one a KEY=VALUE list of FUNNEL_* settings
        lines = [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
        assert all(re.fullmatch(r"FUNNEL_[A-Z0-9_]+=.*", line) for line in lines), path
