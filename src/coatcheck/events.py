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

    ``lived`` is how many seconds the session had lived since it was created, on an event that
    ends one session when that is known: ``expired`` (found on load, or during the request) and
    ``revoked`` for one session (a user's oldest, past ``max_sessions_per_user``); None
    otherwise. The engine works it out only when someone listens (``on_event``, or
    ``metrics``).
    """

    kind: EventKind
    fingerprint: str | None
    user_id: str | None
    reason: str | None
    at: float
    count: int = 1
    lived: float | None = None

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


@dataclass(frozen=True, slots=True)
class Chained:
    """An ``on_event`` handler with one of coatcheck's own listeners in front of it: what
    :class:`~coatcheck.config.SessionConfig` makes of the application's handler when
    ``metrics`` is on. Each event goes to ``listener``, then to ``handler`` (the application's,
    if any).

    >>> seen = []
    >>> chained = Chained(lambda event: seen.append("metrics"), lambda event: seen.append("app"))
    >>> chained(SessionEvent("created", fingerprint=None, user_id=None, reason=None, at=0.0))
    >>> seen
    ['metrics', 'app']
    """

    listener: EventHandler
    handler: EventHandler | None

    def __call__(self, event: SessionEvent) -> None:
        self.listener(event)
        if self.handler is not None:
            self.handler(event)


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
    created: float | None = None,
) -> None:
    """Report what happened to the session stored at ``key`` (named by its fingerprint): log it
    on the audit logger and hand it to ``handler``. A failing handler is logged, never raised
    (an audit hook must not fail a request). ``created``: when the session an ending event
    ends was created (its ``lived`` is the time since)."""
    lived = None if created is None else max(0.0, at - created)
    event = SessionEvent(kind, fingerprint(key) if key else None, user_id, reason, at, count, lived)
    log_event(event)
    if handler is not None:
        try:
            handler(event)
        except Exception:
            _logger.exception("the on_event handler failed on %s", event.describe())
