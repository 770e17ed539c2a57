"""Checks across settings: what no single FUNNEL_* variable can say is wrong on its own.

Each raises SettingsError naming the variable to change; `Settings` runs them when it is built.
"""

from __future__ import annotations

from typing import Any, Protocol

from processor.config.variables import SASL_VARS, SSL_VARS, TOPICS, VARS, SettingsError


class Settings(Protocol):
    """What the checks read of `processor.config.settings.Settings` (named here, not imported:
    settings.py runs these checks, so importing it back would tie the two in a circle). The
    topic, SASL and TLS variables are read by name through `value`."""

    @property
    def security_protocol(self) -> str: ...
    @property
    def ssl_certfile(self) -> object | None: ...
    @property
    def ssl_keyfile(self) -> object | None: ...
    @property
    def ssl_key_password(self) -> object | None: ...
    @property
    def web_token(self) -> object | None: ...
    @property
    def web_allow_unauthenticated_queries(self) -> str: ...


def value(settings: Settings, var: str) -> Any:
    """The value of the setting `var` names."""
    return getattr(settings, VARS[var].field)


def topics_are_distinct(settings: Settings) -> None:
    """No two topic settings name one topic, or two Kafka would take for one."""
    seen: dict[str, str] = {}  # Kafka refuses topics whose names differ only by '.' against '_'
    for var in (f"FUNNEL_TOPIC_{name}" for name in TOPICS):
        topic = value(settings, var)
        other = seen.setdefault(topic.replace(".", "_"), var)
        if other == var:
            continue
        if value(settings, other) == topic:
            raise SettingsError(f"{var}: {topic!r} is already the topic of {other}")
        raise SettingsError(
            f"{var}: {topic!r} collides with {other} ({value(settings, other)!r}): Kafka treats '.' and '_' alike"
        )


def security_fits_protocol(settings: Settings) -> None:
    """SASL and TLS values are set exactly when FUNNEL_SECURITY_PROTOCOL uses them, and in whole."""
    protocol = settings.security_protocol
    for group, applies, needs in (
        (SASL_VARS, protocol.startswith("SASL_"), "SASL_PLAINTEXT or SASL_SSL"),
        (SSL_VARS, protocol.endswith("SSL"), "SSL or SASL_SSL"),
    ):
        for var in group:
            if value(settings, var) is not None and not applies:
                raise SettingsError(
                    f"{var}: '{value(settings, var)}' is set, but FUNNEL_SECURITY_PROTOCOL is {protocol};"
                    f" it applies only to {needs}"
                )
    for var in SASL_VARS:
        if protocol.startswith("SASL_") and value(settings, var) is None:
            raise SettingsError(f"{var}: required when FUNNEL_SECURITY_PROTOCOL is {protocol}")
    if (settings.ssl_certfile is None) != (settings.ssl_keyfile is None):
        given, missing = ("CERTFILE", "KEYFILE") if settings.ssl_keyfile is None else ("KEYFILE", "CERTFILE")
        raise SettingsError(f"FUNNEL_SSL_{missing}: required with FUNNEL_SSL_{given} (they go together)")
    if settings.ssl_key_password is not None and settings.ssl_keyfile is None:
        raise SettingsError("FUNNEL_SSL_KEY_PASSWORD: '****' is set, but there is no FUNNEL_SSL_KEYFILE")


def web_access_is_clear(settings: Settings) -> None:
    """A token and unauthenticated queries are not both asked for."""
    if settings.web_token is not None and settings.web_allow_unauthenticated_queries == "true":
        raise SettingsError(
            "FUNNEL_WEB_ALLOW_UNAUTHENTICATED_QUERIES: 'true', but FUNNEL_WEB_TOKEN is set and the query"
            " endpoints need it; unset one of the two"
        )
