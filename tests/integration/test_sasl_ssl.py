"""The worker and the commands over SASL_SSL on Apache Kafka: SCRAM-SHA-512 over TLS, for real.

The local Kafka's SASL_SSL listener (localbrokers.apachekafka) has a certificate signed by
a CA made at test time and one SCRAM-SHA-512 user. Everything here connects through it,
configured only by FUNNEL_* variables, as an operator would:

- end to end: `topics create`, `simulate --to-topic`, the worker and `report --from-topics`
  over SASL_SSL; the worker's outputs equal the file replay's, and the report read from
  the topics gives the figures the report of the replay's output gives;
- refused: a wrong password, a CA that did not sign the broker's certificate (another CA
  made here with keytool) and a CA file that does not exist each end the worker and every
  command with exit code 2 and one message naming the problem, no traceback, no secret,
  well within the connect timeout.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from expected import assert_same_outputs, collect, oracle

from localbrokers.tlsfiles import CertificateAuthority, make_ca
from processor.config.definitions import PRESETS
from processor.config.settings import Settings
from processor.kafka import clients as kafkaio

pytestmark = pytest.mark.kafka_only

TOUCHPOINTS = 10_000
PARTITIONS = 4
SEED = 11
END = "2025-06-01T00:00:00Z"  # fixed, so the file and the topic get the same touchpoints
OUTPUT_TIMEOUT_S = 300.0  # the whole stream through the worker
CONNECT_TIMEOUT_S = kafkaio.CONNECT_TIMEOUT_S  # the commands' and the worker's default
# Not a speed target: a refusal that took longer than this would be a hang.
REFUSED_WITHIN_S = CONNECT_TIMEOUT_S + 20.0
SETTINGS_HEADER = "funnel-processor worker settings:"
WRONG_PASSWORD = "wrong-password-0f3c9a"  # must never show in any output

COMMANDS = {
    "worker": ["worker"],
    "topics create": ["topics", "create"],
    "topics check": ["topics", "check"],
    "simulate --to-topic": ["simulate", "--funnel", "aida", "--touchpoints", "20", "--seed", "1", "--to-topic"],
    "report --from-topics": ["report", "--from-topics"],
}


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def messages(self) -> list[str]:
        """stderr's lines, without the settings the worker prints (masked) before it connects."""
        return [
            line
            for line in self.stderr.splitlines()
            if line.strip() and line != SETTINGS_HEADER and not line.startswith("FUNNEL_")
        ]


def cli(env: dict[str, str], *args: str, timeout_s: float = 120.0) -> Run:
    """`funnel-processor ARGS` in a subprocess configured by `env`; killed (and failed) after timeout_s."""
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "processor", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(
            f"funnel-processor {' '.join(args)} still ran after {timeout_s:g} s (killed):\n{exc.stderr!r:.3000}"
        )
    return Run(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


def sasl_env(broker: Any, sasl_ssl: Any, names: Any, **overrides: object) -> dict[str, str]:
    """The lane's worker environment with the SASL_SSL listener's address, user, password and CA."""
    env: dict[str, str] = broker.env(names, **overrides)
    env.update(sasl_ssl.env(sasl_ssl.user))
    return env


def simulate_args(touchpoints: int) -> list[str]:
    funnels = [arg for name in PRESETS for arg in ("--funnel", name)]
    return ["simulate", *funnels, "--touchpoints", str(touchpoints), "--seed", str(SEED), "--end", END]


def test_over_sasl_ssl_the_worker_equals_the_replay_and_the_report_reads_it(
    broker: Any,
    sasl_ssl: Any,
    topics: Callable[..., Any],
    worker: Callable[..., Any],
    free_port: Callable[[], int],
    tmp_path: Path,
) -> None:
    names = topics(PARTITIONS, create=False)  # made below by `topics create` over SASL_SSL; deleted at the end
    env = sasl_env(broker, sasl_ssl, names, idle_after="1d", store="rocksdb", web_port=free_port())
    settings = Settings.from_env(env)
    assert settings.security_protocol == "SASL_SSL" and settings.broker_url == sasl_ssl.url
    password = sasl_ssl.users[sasl_ssl.user]

    created = cli(env, "topics", "create")
    assert created.code == 0, created.stderr
    assert created.stdout.count("created ") == len(kafkaio.all_topics(settings)) + 1, created.stdout  # + definitions
    checked = cli(env, "topics", "check")
    assert checked.code == 0 and "topics ready" in checked.stdout, checked.stderr

    path = tmp_path / "touchpoints.jsonl"
    assert cli(env, *simulate_args(TOUCHPOINTS), "--output", str(path)).code == 0
    lines = path.read_bytes().splitlines()
    assert len(lines) == TOUCHPOINTS
    produced = cli(env, *simulate_args(TOUCHPOINTS), "--to-topic")
    assert produced.code == 0, produced.stderr
    assert f"to topic {names.touchpoints}" in produced.stderr
    on_topic = kafkaio.read_topic(settings, names.touchpoints, timeout_s=2.0, expect=TOUCHPOINTS)
    assert sorted(r.value or b"" for r in on_topic) == sorted(lines)  # the same touchpoints as the file, over SASL_SSL

    expected = oracle(lines, PARTITIONS)
    started = time.monotonic()
    proc = worker(env)
    proc.wait_ready()
    got = collect(settings, len(expected), OUTPUT_TIMEOUT_S)
    elapsed = time.monotonic() - started
    repeats = assert_same_outputs(got, expected)
    assert kafkaio.read_topic(settings, names.deadletter, timeout_s=1.0) == []

    replayed = tmp_path / "replay-outputs.jsonl"
    replayed.write_bytes(b"".join(orjson.dumps(output) + b"\n" for output in expected.values()))
    from_file = cli(env, "report", "--format", "json", "--input", str(replayed))
    from_topics = cli(env, "report", "--format", "json", "--from-topics")
    assert from_file.code == 0 and from_topics.code == 0, from_file.stderr + from_topics.stderr
    file_figures, topic_figures = orjson.loads(from_file.stdout), orjson.loads(from_topics.stdout)
    assert topic_figures["funnels"] == file_figures["funnels"]
    for count in ("transitions", "dropoffs"):
        assert topic_figures["records"][count] == file_figures["records"][count]
    assert topic_figures["records"]["duplicates"] == repeats
    transitions = file_figures["records"]["transitions"]
    print(
        f"SASL_SSL/SCRAM-SHA-512: {TOUCHPOINTS} touchpoints, {len(expected)} outputs ({transitions} transitions) "
        f"equal to the replay in {elapsed:.1f} s; {repeats} at-least-once repeats; report --from-topics equal"
    )

    assert proc.stop() == 0
    log = proc.log_text()
    assert "Traceback" not in log
    assert "FUNNEL_SASL_PASSWORD = ****" in log and password not in log
    for run in (created, checked, produced, from_topics):
        assert password not in run.stdout + run.stderr


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    """A CA that did not sign the broker's certificate (made with keytool, like the broker's own)."""
    return make_ca(tmp_path_factory.mktemp("other-ca"), "not-the-brokers-ca")


def _refusal(failure: str, sasl_ssl: Any, other_ca: CertificateAuthority, tmp_path: Path) -> tuple[dict[str, str], str]:
    """The variables that make `failure` happen, and the message it must give."""
    user = sasl_ssl.user
    if failure == "wrong password":
        return (
            sasl_ssl.env(user, password=WRONG_PASSWORD),
            f"authentication failed for user '{user}' (SASL SCRAM-SHA-512) at {sasl_ssl.bootstrap}: "
            "the broker refused the user name or password (FUNNEL_SASL_USERNAME, FUNNEL_SASL_PASSWORD)",
        )
    if failure == "another CA":
        return (
            sasl_ssl.env(user, cafile=other_ca.pem),
            f"TLS certificate verification failed at {sasl_ssl.bootstrap}: the broker's certificate is not "
            f"signed by the CA in FUNNEL_SSL_CAFILE={other_ca.pem}",
        )
    missing = tmp_path / "no-such-ca.pem"
    return sasl_ssl.env(user, cafile=missing), f"FUNNEL_SSL_CAFILE: '{missing}' does not exist or is not a file"


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("failure", ["wrong password", "another CA", "missing CA file"])
def test_refused_credentials_end_the_worker_and_every_command_with_one_message(
    broker: Any,
    sasl_ssl: Any,
    topics: Callable[..., Any],
    other_ca: CertificateAuthority,
    free_port: Callable[[], int],
    tmp_path: Path,
    failure: str,
    command: str,
) -> None:
    names = topics(2)  # the topics exist: the connection is what fails
    variables, expected = _refusal(failure, sasl_ssl, other_ca, tmp_path)
    env = {**broker.env(names, web_port=free_port()), **variables}
    run = cli(env, *COMMANDS[command], timeout_s=REFUSED_WITHIN_S)
    output = run.stdout + run.stderr

    assert run.code == 2, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    prefix = f"funnel-processor {command.split()[0]}: "
    assert len(run.messages) == 1, output  # one message, on one line
    assert run.messages[0].startswith(prefix + expected), run.messages
    for secret in (sasl_ssl.users[sasl_ssl.user], WRONG_PASSWORD):
        assert secret not in output
    if command == "worker" and failure != "missing CA file":  # it printed its settings, the password masked
        assert "FUNNEL_SASL_PASSWORD = ****" in run.stderr
    assert run.seconds < REFUSED_WITHIN_S  # also enforced by the subprocess timeout: no hang
    print(f"{command} / {failure}: exit {run.code} after {run.seconds:.1f} s: {run.messages[0]}")


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        (
            {"FUNNEL_SASL_MECHANISM": "SCRAM-SHA-256"},
            "the broker at {bootstrap} does not offer SASL SCRAM-SHA-256 (FUNNEL_SASL_MECHANISM) on this listener",
        ),
        (
            {"FUNNEL_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "FUNNEL_SSL_CAFILE": ""},
            "the broker at {bootstrap} dropped the connection while it was being set up as SASL_PLAINTEXT (",
        ),
    ],
    ids=["mechanism not offered", "no TLS to the TLS listener"],
)
def test_a_mechanism_or_protocol_the_listener_does_not_speak_is_named(
    broker: Any, sasl_ssl: Any, topics: Callable[..., Any], variables: dict[str, str], expected: str
) -> None:
    env = {**broker.env(topics(2)), **sasl_ssl.env(sasl_ssl.user), **variables}
    run = cli(env, "topics", "check", timeout_s=REFUSED_WITHIN_S)
    assert run.code == 2 and "Traceback" not in run.stderr, run.stderr
    assert run.messages == [run.messages[0]] and run.messages[0].startswith(
        "funnel-processor topics: " + expected.format(bootstrap=sasl_ssl.bootstrap)
    ), run.stderr
    assert sasl_ssl.users[sasl_ssl.user] not in run.stdout + run.stderr
