"""A user's active sessions, through the store's user index: list them, end one, end them all.

A session is named by :func:`coatcheck.ids.fingerprint` of its store key, never by its ID, so
nothing shown on a page or sent by the API can be replayed as a cookie.
"""

from __future__ import annotations

import time
from typing import NamedTuple

from .. import codec
from ..config import SessionConfig
from ..encryption import KeyRing, unseal
from ..ids import fingerprint, store_key
from ..stores import AsyncStore, Record

DEVICE = "device"
"""The session key under which login records the device (from the User-Agent)."""


class SessionSummary(NamedTuple):
    """What the "your sessions" page shows of one session."""

    fingerprint: str
    device: str
    created_at: float
    last_active: float
    expires_at: float
    current: bool


def summarize(
    record: Record,
    config: SessionConfig,
    current_key: str | None,
    now: float,
    ring: KeyRing | None = None,
) -> SessionSummary | None:
    """One record as shown to its user; None when it has expired or does not decode."""
    if not record.expires_at > now:  # NaN too
        return None
    try:  # a record whose user column disagrees with its envelope is not the user's
        opened = unseal(ring, record.data, record.key)  # sealed with encryption_keys
        data, created_at, auth_at, _, _, _ = codec.decode_envelope(opened, record.user_id)
    except codec.DecodeError:
        return None
    expires_at = min(record.expires_at, auth_at + config.absolute_timeout)
    # A touch sets expires_at to min(then + idle_timeout, deadline): "then" is the last activity.
    last_active = max(created_at, min(expires_at - config.idle_timeout, now))
    device = data.get(DEVICE)
    return SessionSummary(
        fingerprint=fingerprint(record.key),
        device=device if isinstance(device, str) else "Unknown device",
        created_at=created_at,
        last_active=last_active,
        expires_at=expires_at,
        current=record.key == current_key,
    )


def current_key(cookie_value: str | None, config: SessionConfig) -> str | None:
    """The store key of the session a request's cookie names (None without a cookie)."""
    return store_key(cookie_value, config.hash_secret) if cookie_value else None


async def active_sessions(
    store: AsyncStore, config: SessionConfig, user_id: str, current: str | None
) -> list[SessionSummary]:
    """The user's live sessions, the most recently active first.

    Raises :class:`~coatcheck.stores.NotSupported` when the store has no user index.
    """
    now = time.time()
    records = await store.list_by_user(user_id)
    ring = KeyRing(config.encryption_keys) if config.encryption_keys else None
    found = (summarize(record, config, current, now, ring) for record in records)
    summaries = [summary for summary in found if summary is not None]
    return sorted(summaries, key=lambda summary: summary.last_active, reverse=True)


async def end_session(store: AsyncStore, user_id: str, session_fingerprint: str) -> Record | None:
    """Delete the user's session with this fingerprint; return its record, None if none has it.

    Only the user's own sessions are looked at, so a fingerprint cannot end anyone else's.
    """
    for record in await store.list_by_user(user_id):
        if fingerprint(record.key) == session_fingerprint:
            await store.delete(record.key)
            return record
    return None


async def end_all_sessions(store: AsyncStore, user_id: str) -> int:
    """Delete every session of the user; return how many there were."""
    return await store.delete_by_user(user_id)
