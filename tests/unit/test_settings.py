"""Worker settings from FUNNEL_* variables: defaults, parsing, and refusals that name the variable."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import orjson
import pytest

from processor.config.definitions import PRESET_DIR, PRESETS, load_funnels
from processor.config.settings import ENV_VARS, Secret, Settings, SettingsError
from processor.funnel.definition import Breakdown
from processor.funnel.timefmt import parse_time

PASSWORD = "s3cr3t-hunter2"
KEY_PASSWORD = "k3y-pass-phrase"
WEB_TOKEN = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def from_env(**env: str) -> Settings:
    """Settings from variables given without their FUNNEL_ prefix: from_env(PARTITIONS="4")."""
    return Settings.from_env({f"FUNNEL_{name}": value for name, value in env.items()})


def refusal(**env: str) -> str:
    with pytest.raises(SettingsError) as caught:
        from_env(**env)
    return str(caught.value)


def tls_files(directory: Path) -> dict[str, str]:
    """CA, certificate and key files that exist (their content is not read by the settings)."""
    names = {"SSL_CAFILE": "ca.pem", "SSL_CERTFILE": "client.pem", "SSL_KEYFILE": "client.key"}
    for filename in names.values():
        (directory / filename).write_text("-----BEGIN PLACEHOLDER-----\n")
    return {var: str(directory / filename) for var, filename in names.items()}


def sasl(protocol: str = "SASL_SSL", mechanism: str = "SCRAM-SHA-512") -> dict[str, str]:
    return {
        "SECURITY_PROTOCOL": protocol,
        "SASL_MECHANISM": mechanism,
        "SASL_USERNAME": "svc",
        "SASL_PASSWORD": PASSWORD,
    }


def test_defaults_are_the_documented_ones() -> None:
    settings = from_env()
    assert settings == Settings()
    assert (settings.broker_url, settings.funnels, settings.app_id) == (
        "kafka://127.0.0.1:9092",
        PRESETS,
        "funnel-processor",
    )
    topics = (
        settings.topic_touchpoints,
        settings.topic_transitions,
        settings.topic_dropoffs,
        settings.topic_deadletter,
    )
    assert topics == ("touchpoints", "funnel.transitions", "funnel.dropoffs", "funnel.deadletter")
    assert settings.topic_ticks == "funnel-processor-ticks"
    assert (settings.partitions, settings.replication_factor, settings.web_port) == (8, 1, 6066)
    assert (settings.web_bind, settings.web_host, settings.data_dir) == ("127.0.0.1", "127.0.0.1", Path("data"))
    assert (settings.store, settings.processing_guarantee, settings.log_level) == ("rocksdb", "at_least_once", "info")
    assert settings.dedup_horizon_us == 24 * 3600 * 1_000_000
    assert settings.future_tolerance_us == 5 * 60 * 1_000_000
    assert (settings.tick_interval_s, settings.idle_after_s, settings.session_timeout_s) == (0.5, 1.0, 30.0)
    assert (settings.batch_size, settings.batch_wait_s, settings.fetch_max_wait_s) == (1000, 0.05, 1.5)
    assert settings.security_protocol == "PLAINTEXT"
    unset = ("sasl_mechanism", "sasl_username", "sasl_password", "ssl_cafile", "ssl_certfile", "ssl_keyfile")
    assert all(getattr(settings, name) is None for name in (*unset, "ssl_key_password", "web_token"))
    assert settings.web_allow_unauthenticated_queries == "false"


def test_every_variable_is_read(tmp_path: Path) -> None:
    files = tls_files(tmp_path)
    mapping = tmp_path / "mapping.json"
    mapping.write_text('{"events": {"Order Completed": "purchase"}}')
    env = {
        **sasl(),
        **files,
        "SSL_KEY_PASSWORD": KEY_PASSWORD,
        "BROKER_URL": "kafka://k1:9093;k2:9094",
        "FUNNELS": "aida, quote-to-deal",
        "BREAKDOWNS": "trigger_channel=web,sales; first_campaign=spring",
        "TOPIC_TOUCHPOINTS": "tp",
        "TOPIC_TRANSITIONS": "tr",
        "TOPIC_DROPOFFS": "dr",
        "TOPIC_DEADLETTER": "dl",
        "TOPIC_TICKS": "ti",
        "INPUT_FORMAT": "segment",
        "INPUT_KEYED": "any",
        "INPUT_MAPPING": str(mapping),
        "APP_ID": "funnels-eu",
        "PARTITIONS": "24",
        "REPLICATION_FACTOR": "3",
        "WEB_PORT": "7000",
        "WEB_BIND": "0.0.0.0",
        "WEB_HOST": "worker-1.funnels",
        "WEB_TOKEN": WEB_TOKEN,
        "WEB_ALLOW_UNAUTHENTICATED_QUERIES": "false",
        "DATA_DIR": str(tmp_path / "tables"),
        "STORE": "memory",
        "PROCESSING_GUARANTEE": "exactly_once",
        "DEDUP_HORIZON": "12h",
        "FUTURE_TOLERANCE": "15m",
        "TICK_INTERVAL": "0.5s",
        "IDLE_AFTER": "2m",
        "BATCH_SIZE": "250",
        "BATCH_WAIT": "0.02s",
        "FETCH_MAX_WAIT": "0.1s",
        "SESSION_TIMEOUT": "6s",
        "LOG_LEVEL": "debug",
        "END_OFFSETS_FROM_FETCH": "true",
    }
    assert {f"FUNNEL_{name}" for name in env} == ENV_VARS  # the test sets each one
    got = from_env(**env)
    expected = Settings(
        broker_url="kafka://k1:9093;k2:9094",
        funnels=("aida", "quote-to-deal"),
        breakdowns=(Breakdown("first_campaign", ("spring",)), Breakdown("trigger_channel", ("web", "sales"))),
        topic_touchpoints="tp",
        topic_transitions="tr",
        topic_dropoffs="dr",
        topic_deadletter="dl",
        topic_ticks="ti",
        input_format="segment",
        input_keyed="any",
        input_mapping=mapping,
        app_id="funnels-eu",
        partitions=24,
        replication_factor=3,
        web_port=7000,
        web_bind="0.0.0.0",
        web_host="worker-1.funnels",
        web_token=Secret(WEB_TOKEN),
        web_allow_unauthenticated_queries="false",
        data_dir=tmp_path / "tables",
        store="memory",
        processing_guarantee="exactly_once",
        dedup_horizon_us=12 * 3600 * 1_000_000,
        future_tolerance_us=15 * 60 * 1_000_000,
        tick_interval_s=0.5,
        idle_after_s=120.0,
        batch_size=250,
        batch_wait_s=0.02,
        fetch_max_wait_s=0.1,
        session_timeout_s=6.0,
        log_level="debug",
        end_offsets_from_fetch="true",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="svc",
        sasl_password=Secret(PASSWORD),
        ssl_cafile=Path(files["SSL_CAFILE"]),
        ssl_certfile=Path(files["SSL_CERTFILE"]),
        ssl_keyfile=Path(files["SSL_KEYFILE"]),
        ssl_key_password=Secret(KEY_PASSWORD),
    )
    assert got == expected


def test_the_variable_table_covers_every_field() -> None:
    assert set(Settings.ENV) == ENV_VARS
    assert set(Settings.ENV.values()) == {field.name for field in dataclasses.fields(Settings)}
    assert all(var.startswith("FUNNEL_") for var in ENV_VARS)


def test_empty_means_unset_and_os_environ_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert from_env(PARTITIONS="", SASL_PASSWORD="", FUNNEL_TYPO="") == Settings()
    monkeypatch.setenv("FUNNEL_PARTITIONS", "3")
    assert Settings.from_env().partitions == 3


def test_choices_ignore_case_and_are_kept_in_their_usual_spelling() -> None:
    settings = from_env(LOG_LEVEL="WARNING", STORE="Memory", **sasl("sasl_plaintext", "scram-sha-256"))
    assert (settings.log_level, settings.store) == ("warning", "memory")
    assert (settings.security_protocol, settings.sasl_mechanism) == ("SASL_PLAINTEXT", "SCRAM-SHA-256")


@pytest.mark.parametrize(
    ("url", "hosts"),
    [
        ("broker:9092", ["broker:9092"]),
        ("kafka://a:9092, b:9093", ["a:9092", "b:9093"]),
        ("kafka://a:9092;kafka://b:9093;", ["a:9092", "b:9093"]),
        ("KAFKA://[::1]:9092", ["[::1]:9092"]),
    ],
)
def test_broker_url_forms(url: str, hosts: list[str]) -> None:
    settings = from_env(BROKER_URL=url)
    assert settings.broker_hosts() == hosts
    assert settings.faust_broker() == "kafka://" + ";".join(hosts)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"PARTITIONS": "eight"}, "FUNNEL_PARTITIONS: 'eight' is not a whole number"),
        ({"PARTITIONS": "0"}, "FUNNEL_PARTITIONS: '0' is not between 1 and 1024"),
        ({"REPLICATION_FACTOR": "17"}, "FUNNEL_REPLICATION_FACTOR: '17' is not between 1 and 16"),
        ({"WEB_PORT": "65536"}, "FUNNEL_WEB_PORT: '65536' is not between 1 and 65535"),
        ({"WEB_PORT": "6.5"}, "FUNNEL_WEB_PORT: '6.5' is not a whole number"),
        (
            {"SECURITY_PROTOCOL": "SASL"},
            "FUNNEL_SECURITY_PROTOCOL: 'SASL' is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL",
        ),
        ({"STORE": "redis"}, "FUNNEL_STORE: 'redis' is not one of rocksdb, memory"),
        ({"PROCESSING_GUARANTEE": "once"}, "FUNNEL_PROCESSING_GUARANTEE: 'once' is not one of at_least_once, exact"),
        ({"LOG_LEVEL": "trace"}, "FUNNEL_LOG_LEVEL: 'trace' is not one of debug, info, warning, error"),
        ({"DEDUP_HORIZON": "a day"}, "FUNNEL_DEDUP_HORIZON: 'a day' is not a duration"),
        ({"TICK_INTERVAL": "-1s"}, "FUNNEL_TICK_INTERVAL: duration must be positive"),
        ({"FUTURE_TOLERANCE": "0s"}, "FUNNEL_FUTURE_TOLERANCE: duration must be positive, got '0s'; or 'off'"),
        ({"FUTURE_TOLERANCE": "none"}, "FUNNEL_FUTURE_TOLERANCE: 'none' is not a duration"),
        ({"IDLE_AFTER": "0s"}, "FUNNEL_IDLE_AFTER: duration must be positive"),
        ({"SESSION_TIMEOUT": "30 sec"}, "FUNNEL_SESSION_TIMEOUT: '30 sec' is not a duration"),
        ({"BATCH_SIZE": "0"}, "FUNNEL_BATCH_SIZE: '0' is not between 1 and 100000"),
        ({"BATCH_WAIT": "0s"}, "FUNNEL_BATCH_WAIT: duration must be positive"),
        ({"FETCH_MAX_WAIT": "soon"}, "FUNNEL_FETCH_MAX_WAIT: 'soon' is not a duration"),
        ({"BATCH_WAIT": "2s", "SESSION_TIMEOUT": "3s"}, "FUNNEL_BATCH_WAIT: 2s must be under half FUNNEL_SESSION"),
        ({"BROKER_URL": "http://broker:9092"}, "FUNNEL_BROKER_URL: 'http://broker:9092' uses the scheme 'http://'"),
        ({"BROKER_URL": "kafka://broker"}, "FUNNEL_BROKER_URL: 'kafka://broker' has no port"),
        ({"BROKER_URL": "broker:kafka"}, "FUNNEL_BROKER_URL: 'broker:kafka': the port 'kafka' is not a number"),
        ({"BROKER_URL": " ; "}, "FUNNEL_BROKER_URL: "),
        ({"TOPIC_TOUCHPOINTS": "touch points"}, "FUNNEL_TOPIC_TOUCHPOINTS: 'touch points' is not a Kafka topic name"),
        ({"TOPIC_TICKS": ".."}, "FUNNEL_TOPIC_TICKS: '..' is not a Kafka topic name"),
        ({"TOPIC_DROPOFFS": "d" * 250}, "FUNNEL_TOPIC_DROPOFFS: 'dddd"),
        ({"APP_ID": "funnels/eu"}, "FUNNEL_APP_ID: 'funnels/eu' is not a Kafka topic name"),
        ({"WEB_BIND": "local host"}, "FUNNEL_WEB_BIND: 'local host' is not a host name"),
        ({"FUNNELS": "aida,nope"}, "FUNNEL_FUNNELS: preset 'nope': no such preset"),
        ({"FUNNELS": "aida,aida"}, "FUNNEL_FUNNELS: aida: name: funnel 'aida' is configured twice"),
        ({"FUNNELS": " , "}, "FUNNEL_FUNNELS: ',' names no funnels"),
        (sasl() | {"SASL_MECHANISM": "GSSAPI"}, "FUNNEL_SASL_MECHANISM: 'GSSAPI' is not one of PLAIN, SCRAM-SHA-256"),
        (
            {"BREAKDOWNS": "first_chanel"},
            "FUNNEL_BREAKDOWNS: 'first_chanel' is not a breakdown; did you mean 'first_ch",
        ),
        ({"BREAKDOWNS": "last_touch_type"}, "FUNNEL_BREAKDOWNS: 'last_touch_type' is not a breakdown; choose from "),
        ({"BREAKDOWNS": "first_campaign"}, "FUNNEL_BREAKDOWNS: first_campaign needs its values listed"),
        ({"BREAKDOWNS": "trigger_channel=email,none"}, "FUNNEL_BREAKDOWNS: trigger_channel: 'none' is a label of"),
        ({"BREAKDOWNS": "first_channel=a,b,a"}, "FUNNEL_BREAKDOWNS: first_channel: a value is listed twice"),
        ({"BREAKDOWNS": "first_channel;first_channel=a"}, "FUNNEL_BREAKDOWNS: first_channel is named twice"),
        ({"BREAKDOWNS": "first_channel="}, "FUNNEL_BREAKDOWNS: first_channel= lists no values"),
        ({"BREAKDOWNS": "first_channel=" + "c" * 65}, "FUNNEL_BREAKDOWNS: first_channel: 'ccc"),
        ({"BREAKDOWNS": "first_channel=" + ",".join(map(str, range(51)))}, "FUNNEL_BREAKDOWNS: first_channel takes"),
        ({"BREAKDOWNS": " ; "}, "FUNNEL_BREAKDOWNS: ';' names no breakdown"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(env: dict[str, str], expected: str) -> None:
    assert refusal(**env).startswith(expected)


@pytest.mark.parametrize(
    "text",
    ["first_channel;trigger_channel", "off", "first_channel=a,b;first_campaign=spring,autumn", "trigger_channel=web"],
)
def test_breakdowns_print_as_they_are_read(text: str) -> None:
    settings = from_env(BREAKDOWNS=text)
    assert f"FUNNEL_BREAKDOWNS = {text}" in settings.describe()
    assert from_env(BREAKDOWNS=text.replace(";", " ; ")) == settings


def test_the_presets_get_the_breakdowns_setting_and_a_definition_file_keeps_its_own(tmp_path: Path) -> None:
    default = Settings()
    assert [(b.by, b.values) for b in default.breakdowns] == [
        ("first_channel", ("organic", "paid_search", "email", "direct", "referral", "social")),
        ("trigger_channel", ("organic", "paid_search", "email", "direct", "referral", "social")),
    ]
    doc: dict[str, Any] = orjson.loads((PRESET_DIR / "aida.json").read_bytes())
    mine = tmp_path / "mine.json"
    mine.write_bytes(orjson.dumps({**doc, "name": "mine", "breakdowns": {"first_campaign": {"values": ["spring"]}}}))
    aida, own = load_funnels(["aida", str(mine)], default.breakdowns)
    assert aida.breakdowns == default.breakdowns
    assert own.breakdowns == (Breakdown("first_campaign", ("spring",)),)
    assert load_funnels(["aida"])[0].breakdowns == ()


def test_topic_names_at_the_kafka_limits() -> None:
    assert from_env(TOPIC_DROPOFFS="d" * 249, TOPIC_TICKS="a.b_c-D9").topic_dropoffs == "d" * 249
    assert "longer than 249 characters" in refusal(TOPIC_DROPOFFS="d" * 250)


def test_two_settings_cannot_share_a_topic() -> None:
    assert refusal(TOPIC_DROPOFFS="funnel.transitions") == (
        "FUNNEL_TOPIC_DROPOFFS: 'funnel.transitions' is already the topic of FUNNEL_TOPIC_TRANSITIONS"
    )
    # Kafka refuses to create a topic whose name differs from another's only by '.' against '_'.
    message = refusal(TOPIC_DEADLETTER="funnel_dropoffs")
    assert message.startswith("FUNNEL_TOPIC_DEADLETTER: 'funnel_dropoffs' collides with FUNNEL_TOPIC_DROPOFFS")


def test_funnel_files_are_loaded_and_their_errors_reported(tmp_path: Path) -> None:
    doc: dict[str, Any] = orjson.loads((PRESET_DIR / "aida.json").read_bytes())
    (tmp_path / "mine.json").write_bytes(orjson.dumps({**doc, "name": "my-aida"}))
    assert from_env(FUNNELS=f"aida,{tmp_path / 'mine.json'}").funnels == ("aida", str(tmp_path / "mine.json"))
    (tmp_path / "broken.json").write_bytes(orjson.dumps({**doc, "stages": "awareness"}))
    message = refusal(FUNNELS=str(tmp_path / "broken.json"))
    assert message.startswith(f"FUNNEL_FUNNELS: {tmp_path / 'broken.json'}: stages")


def test_a_data_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("")
    assert (
        refusal(DATA_DIR=str(tmp_path / "data"))
        == f"FUNNEL_DATA_DIR: '{tmp_path / 'data'}' exists and is not a directory"
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (sasl("PLAINTEXT"), "FUNNEL_SASL_MECHANISM: 'SCRAM-SHA-512' is set, but"),
        ({"SASL_PASSWORD": PASSWORD}, "FUNNEL_SASL_PASSWORD: '****' is set, but FUNNEL_SECURITY_PROTOCOL is PLAINTEXT"),
        (
            {"SECURITY_PROTOCOL": "SASL_SSL"},
            "FUNNEL_SASL_MECHANISM: required when FUNNEL_SECURITY_PROTOCOL is SASL_SSL",
        ),
        (sasl() | {"SASL_USERNAME": ""}, "FUNNEL_SASL_USERNAME: required when FUNNEL_SECURITY_PROTOCOL is SASL_SSL"),
        (sasl() | {"SASL_PASSWORD": ""}, "FUNNEL_SASL_PASSWORD: required when FUNNEL_SECURITY_PROTOCOL is SASL_SSL"),
        (
            {"SSL_CAFILE": "/no/such/ca.pem", "SECURITY_PROTOCOL": "SSL"},
            "FUNNEL_SSL_CAFILE: '/no/such/ca.pem' does not",
        ),
        ({"SSL_KEY_PASSWORD": KEY_PASSWORD, "SECURITY_PROTOCOL": "SSL"}, "FUNNEL_SSL_KEY_PASSWORD: '****' is set, but"),
    ],
)
def test_security_combinations_are_checked(env: dict[str, str], expected: str) -> None:
    message = refusal(**env)
    assert message.startswith(expected)
    assert PASSWORD not in message and KEY_PASSWORD not in message


def test_ssl_files_only_with_ssl_and_certificate_with_key(tmp_path: Path) -> None:
    files = tls_files(tmp_path)
    assert refusal(SSL_CAFILE=files["SSL_CAFILE"]).startswith("FUNNEL_SSL_CAFILE: ")
    assert "it applies only to SSL or SASL_SSL" in refusal(SSL_CAFILE=files["SSL_CAFILE"], **sasl("SASL_PLAINTEXT"))
    lone_cert = refusal(SECURITY_PROTOCOL="SSL", SSL_CERTFILE=files["SSL_CERTFILE"])
    assert lone_cert == "FUNNEL_SSL_KEYFILE: required with FUNNEL_SSL_CERTFILE (they go together)"


def test_secrets_never_show(tmp_path: Path) -> None:
    settings = from_env(**sasl(), **tls_files(tmp_path), SSL_KEY_PASSWORD=KEY_PASSWORD, WEB_TOKEN=WEB_TOKEN)
    for text in (settings.describe(), repr(settings), str(settings), f"{settings.sasl_password}"):
        assert PASSWORD not in text and KEY_PASSWORD not in text and WEB_TOKEN not in text
    assert "FUNNEL_SASL_PASSWORD = ****" in settings.describe().splitlines()
    assert "FUNNEL_WEB_TOKEN = ****" in settings.describe().splitlines()
    assert settings.web_token is not None and settings.web_token.reveal() == WEB_TOKEN
    assert settings.sasl_password is not None and settings.sasl_password.reveal() == PASSWORD
    assert repr(Secret(PASSWORD)) == str(Secret(PASSWORD)) == "****"


def test_describe_lists_every_variable_in_a_form_that_reads_back(tmp_path: Path) -> None:
    settings = from_env(BROKER_URL="a:1,b:2", FUNNELS="aida,b2b-sales", TICK_INTERVAL="0.25s", DEDUP_HORIZON="90m")
    lines = settings.describe().splitlines()
    assert [line.split(" = ")[0] for line in lines] == list(Settings.ENV)
    env = dict(line.split(" = ", 1) for line in lines if not line.endswith("(unset)"))
    assert env["FUNNEL_TICK_INTERVAL"] == "0.25s" and env["FUNNEL_DEDUP_HORIZON"] == "90m"
    assert Settings.from_env(env) == settings


def test_the_future_tolerance_can_be_switched_off_for_synthetic_data() -> None:
    off = from_env(FUTURE_TOLERANCE="OFF")
    widest = parse_time("9999-12-31T23:59:59.999999Z") - parse_time("0001-01-01T00:00:00Z")
    assert off.future_tolerance_us > widest  # no event time is that far ahead of any arrival
    assert "FUNNEL_FUTURE_TOLERANCE = off" in off.describe().splitlines()
    assert Settings.from_env({"FUNNEL_FUTURE_TOLERANCE": "off"}) == off
    assert "FUNNEL_FUTURE_TOLERANCE = 5m" in Settings().describe().splitlines()


def test_the_web_token_is_read_without_surrounding_whitespace() -> None:
    token = from_env(WEB_TOKEN=f"  {WEB_TOKEN}\n").web_token  # e.g. a file's final newline
    assert token is not None and token.reveal() == WEB_TOKEN


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WEB_TOKEN": "change-me"}, "FUNNEL_WEB_TOKEN: '****' is 9 characters; a token has at least 32"),
        ({"WEB_TOKEN": "s3cr3t " * 6}, "FUNNEL_WEB_TOKEN: '****' holds characters a Bearer token cannot carry"),
        ({"WEB_TOKEN": WEB_TOKEN + '"'}, "FUNNEL_WEB_TOKEN: '****' holds characters a Bearer token cannot carry"),
        ({"WEB_ALLOW_UNAUTHENTICATED_QUERIES": "yes"}, "FUNNEL_WEB_ALLOW_UNAUTHENTICATED_QUERIES: 'yes' is not one"),
        (
            {"WEB_TOKEN": WEB_TOKEN, "WEB_ALLOW_UNAUTHENTICATED_QUERIES": "true"},
            "FUNNEL_WEB_ALLOW_UNAUTHENTICATED_QUERIES: 'true', but FUNNEL_WEB_TOKEN is set",
        ),
    ],
)
def test_web_access_settings_are_checked_without_showing_the_token(env: dict[str, str], expected: str) -> None:
    message = refusal(**env)
    assert message.startswith(expected)
    assert "s3cr3t" not in message and WEB_TOKEN not in message and "change-me" not in message


def test_an_unknown_funnel_variable_is_refused_with_a_suggestion() -> None:
    assert refusal(PARTITON="4") == "FUNNEL_PARTITON: not a setting this worker reads; did you mean FUNNEL_PARTITIONS?"


def test_unknown_variables_hint_and_what_is_left_alone() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"funnel_sasl_pasword": PASSWORD})
    assert str(caught.value).endswith("did you mean FUNNEL_SASL_PASSWORD?")
    assert PASSWORD not in str(caught.value)
    assert "the variables read are FUNNEL_APP_ID, FUNNEL_BATCH_SIZE, FUNNEL_BATCH_WAIT" in refusal(ZZZ="1")
    unrelated = {"PATH": "/usr/bin", "KAFKA_FUNNEL_X": "1", "FUNNEL_TEST_BROKER": "localhost:9092"}
    assert Settings.from_env(unrelated) == Settings()


@pytest.mark.parametrize(
    ("env", "web_host"),
    [
        ({}, "127.0.0.1"),
        ({"WEB_BIND": "10.1.2.3"}, "10.1.2.3"),
        ({"WEB_BIND": "0.0.0.0"}, "this-machine"),
        ({"WEB_BIND": "::"}, "this-machine"),
        ({"WEB_BIND": "0.0.0.0", "WEB_HOST": "worker-0.funnel"}, "worker-0.funnel"),
    ],
)
def test_web_host_defaults_to_the_bind_address_or_the_hostname(
    env: dict[str, str], web_host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("socket.gethostname", lambda: "this-machine")
    assert from_env(**env).web_host == web_host


def test_settings_built_directly_are_checked_and_frozen() -> None:
    with pytest.raises(SettingsError, match=r"^FUNNEL_PARTITIONS: '0' is not between 1 and 1024$"):
        Settings(partitions=0)
    with pytest.raises(SettingsError, match=r"^FUNNEL_WEB_PORT: '6066' is not a whole number$"):
        Settings(web_port="6066")  # type: ignore[arg-type]
    with pytest.raises(SettingsError, match=r"^FUNNEL_STORE: "):
        dataclasses.replace(Settings(), store="sqlite")
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().partitions = 2  # type: ignore[misc]


def test_the_input_format_decides_the_keying_unless_touchpoints_are_keyed_any_way(tmp_path: Path) -> None:
    assert (from_env().input_keyed, from_env().rekeyed) == ("contact", False)
    assert (from_env(INPUT_KEYED="any").rekeyed, from_env(INPUT_FORMAT="Snowplow").input_keyed) == (True, "any")
    with pytest.raises(
        SettingsError, match=r"^FUNNEL_INPUT_KEYED: 'contact' applies only to FUNNEL_INPUT_FORMAT=touchpoint"
    ):
        from_env(INPUT_FORMAT="segment", INPUT_KEYED="contact")
    with pytest.raises(SettingsError, match=r"^FUNNEL_INPUT_FORMAT: 'avro' is not one of"):
        from_env(INPUT_FORMAT="avro")


def test_a_mapping_file_is_checked_at_start_and_only_for_the_formats_that_use_it(tmp_path: Path) -> None:
    mapping = tmp_path / "mapping.json"
    mapping.write_text('{"events": {"Order Completed": "Purchase"}}')
    with pytest.raises(SettingsError) as caught:
        from_env(INPUT_FORMAT="segment", INPUT_MAPPING=str(mapping))
    assert str(caught.value) == (
        f"FUNNEL_INPUT_MAPPING: {mapping}: events.Order Completed: 'Purchase' is not in normal form: write 'purchase'"
    )
    mapping.write_text('{"events": {}}')
    with pytest.raises(
        SettingsError, match="FUNNEL_INPUT_FORMAT is touchpoint; it applies only to segment and snowplow"
    ):
        from_env(INPUT_MAPPING=str(mapping))
    with pytest.raises(SettingsError, match=r"^FUNNEL_INPUT_MAPPING: .* does not exist"):
        from_env(INPUT_FORMAT="segment", INPUT_MAPPING=str(tmp_path / "none.json"))
