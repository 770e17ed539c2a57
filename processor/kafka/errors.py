"""What keeps a command or the worker from using Kafka, each with a message that says what to do."""

from __future__ import annotations

from processor.config.settings import Settings


class KafkaIOError(RuntimeError):
    """The broker or its topics keep a command from working; the message says what to do."""


class BrokerUnavailable(KafkaIOError):
    def __init__(self, settings: Settings, detail: object) -> None:
        hosts = ", ".join(settings.broker_hosts())
        super().__init__(f"cannot reach the Kafka broker at {hosts} (FUNNEL_BROKER_URL): {detail}")


class TlsFilesUnusable(KafkaIOError):
    """A TLS file exists but cannot be used (not PEM, wrong key password, key and certificate apart)."""


class TlsFailed(KafkaIOError):
    """The TLS handshake with the broker failed, most often its certificate verification."""


class AuthenticationFailed(KafkaIOError):
    """The broker refused the SASL mechanism or the user name and password."""


class TopicMissing(KafkaIOError):
    def __init__(self, topic: str) -> None:
        super().__init__(f"topic {topic!r} does not exist: run `funnel-processor topics create`")


class ProduceFailed(KafkaIOError):
    pass
