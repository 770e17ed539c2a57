"""Who may use the worker's query endpoints (`/journeys/{id}/`, `/funnels/`).

A journey is personal data, so the query endpoints answer only:
- with `Authorization: Bearer <FUNNEL_WEB_TOKEN>`, when a token is set;
- to anyone, when no token is set and the web port binds a loopback address only
  (the demo, a laptop);
- to anyone, when no token is set on another address and the operator says so with
  FUNNEL_WEB_ALLOW_UNAUTHENTICATED_QUERIES=true.
Otherwise the worker runs without them: it still processes the stream and serves
/metrics and /health, and each query answers 403 with the message printed at start.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass

from processor.config.settings import Settings

LOOPBACK_NAMES = frozenset({"localhost"})


def is_loopback(bind: str) -> bool:
    """Whether an address to bind reaches this machine only; a host name other than localhost counts as not."""
    if bind.lower() in LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(bind.strip("[]"))
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).digest()


@dataclass(frozen=True)
class QueryAccess:
    """What the query endpoints require; `notice` is the one line the worker prints at start, if any."""

    served: bool
    token_digest: bytes | None  # SHA-256 of the token: compared in constant time, never kept in clear here
    notice: str | None

    def refusal(self, authorization: str | None) -> str | None:
        """None when a request with this Authorization header may query, else why not (for a 401)."""
        if self.token_digest is None:
            return None
        if not authorization:
            return "missing Authorization: Bearer token"
        scheme, _, credentials = authorization.strip().partition(" ")
        given = _digest(credentials.strip())
        # Hashing first makes the comparison take the same time whatever the length given.
        matches = hmac.compare_digest(given, self.token_digest)
        if scheme.lower() != "bearer" or not matches:
            return "invalid token"
        return None


def query_access(settings: Settings) -> QueryAccess:
    where = f"{settings.web_bind}:{settings.web_port}"
    if settings.web_token is not None:
        return QueryAccess(True, _digest(settings.web_token.reveal()), None)
    if is_loopback(settings.web_bind):
        return QueryAccess(True, None, None)
    if settings.web_allow_unauthenticated_queries == "true":
        notice = (
            f"the query endpoints (/journeys/, /funnels/) are served without a token on {where}:"
            " anyone who reaches the port can read journeys (FUNNEL_WEB_ALLOW_UNAUTHENTICATED_QUERIES=true)"
        )
        return QueryAccess(True, None, notice)
    notice = (
        f"the query endpoints (/journeys/, /funnels/) are off: the web port binds {where}, which is not"
        " loopback, and FUNNEL_WEB_TOKEN is not set. Set FUNNEL_WEB_TOKEN to serve them to clients that"
        " send it, or FUNNEL_WEB_ALLOW_UNAUTHENTICATED_QUERIES=true to serve them to anyone;"
        " the stream, /metrics and /health run as usual"
    )
    return QueryAccess(False, None, notice)
