"""Audit events: what happened to which session, for logs, metrics and alerts.

The engine reports every lifecycle step as a :class:`SessionEvent` to the ``on_event`` callable
of its config, and logs it on the ``coatcheck.audit`` logger at INFO (rejections at WARNING).
Events never carry a raw ID or token, only the session's :func:`~coatcheck.ids.fingerprint`, and
every text in them is made safe for a log line (no CR, LF or other control characters).

>>> event = SessionEvent("rejected", fingerprint=None, user_id=None, reason="unknown", at=0.0)
>>> event.describe()
'session rejected (unknown)'
>>> safe("bob\\r\\nINFO forged line")
'bob\\\\r\\\\nINFO forged line'
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from .ids import fingerprint

EventKind = Literal[
    "created",
    "regenerated",
    "logged_in",
    "logged_out",
    "expired",
    "revoked",
    "rejected",
    "flagged",
    "purged",
]

audit_logger = logging.getLogger("coatcheck.audit")

_UNSAFE = {c: f"\\x{c:02x}" for c in range(32)} | {13: "\\r", 10: "\\n", 9: "\\t", 127: "\\x7f"}


def safe(text: str, limit: int = 200) -> str:
    """``text`` with control characters escaped and its length capped, fit for one log line."""
    return text[:limit].translate(_UNSAFE)


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """One thing that happened to a session.

    ``reason`` says why for ``rejected``, ``expired``, ``flagged`` and ``revoked`` (e.g.
    ``"malformed"``, ``"unknown"``, ``"idle"``, ``"absolute"``, ``"undecodable"``, ``"tampered"``,
    ``"binding"``); ``count`` is how many sessions a ``revoked`` event ended, or how many
    expired records a ``purged`` event deleted (a purge the app runs itself, every
    ``purge_interval``; it names no session).
    """

    kind: EventKind
    fingerprint: str | None
    user_id: str | None
    reason: str | None
    at: float
    count: int = 1

    def describe(self) -> str:
        """The event as one safe log line."""
        parts = [f"session {self.kind}"]
        if self.reason:
            parts.append(f"({safe(self.reason)})")
        if self.fingerprint:
            parts.append(f"fp={self.fingerprint}")
        if self.user_id is not None:
            parts.append(f"user={safe(self.user_id)}")
        if self.count != 1:
            parts.append(f"count={self.count}")
        return " ".join(parts)


EventHandler = Callable[[SessionEvent], None]

_ROUTINE_REJECTIONS = frozenset({"unknown"})
"""Rejections a browser causes in the normal run of things (a cookie outliving its session)."""


def log_event(event: SessionEvent) -> None:
    """Write ``event`` to the ``coatcheck.audit`` logger (the default audit trail).

    Flags, and rejections that point at tampering or guessing, are WARNINGs; the rest INFO.
    """
    suspicious = event.kind == "flagged" or (
        event.kind == "rejected" and event.reason not in _ROUTINE_REJECTIONS
    )
    level = logging.WARNING if suspicious else logging.INFO
    if audit_logger.isEnabledFor(level):
        audit_logger.log(level, "%s", event.describe())


_logger = logging.getLogger("coatcheck")


def emit(
    handler: EventHandler | None,
    at: float,
    kind: EventKind,
    key: str | None,
    user_id: str | None = None,
    reason: str | None = None,
    count: int = 1,
) -> None:
    """Report what happened to the session stored at ``key`` (named by its fingerprint): log it
    on the audit logger and hand it to ``handler``. A failing handler is logged, never raised
    (an audit hook must not fail a request)."""
    event = SessionEvent(kind, fingerprint(key) if key else None, user_id, reason, at, count)
    log_event(event)
    if handler is not None:
        try:
            handler(event)
        except Exception:
            _logger.exception("the on_event handler failed on %s", event.describe())
