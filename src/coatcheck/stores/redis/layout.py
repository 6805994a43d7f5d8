"""The Redis key layout and the Lua scripts every Redis store face shares.

Keys (``prefix`` defaults to ``coatcheck:``):

- ``<prefix>s:<key>``: a HASH per session: ``d`` data, ``v`` version, ``e`` expires_at
  (Unix seconds, as text), ``u`` user id (empty when anonymous); its Redis TTL is ``e``
  (``PEXPIREAT``), so Redis itself drops expired sessions.
- ``<prefix>u:<user id>``: a ZSET per user of session keys scored by their expiry in ms; its
  own TTL is kept at its latest member's expiry, so an index outlives no session of its user.
  Expired members are pruned whenever the index is read.

Commands per call, each one round trip: load ``HGETALL``; create, save, touch, delete, rotate
(create the new, drop the old), list by user and delete by user one ``EVALSHA`` of the scripts
below. The engine's load is a plain ``HGETALL`` too: a script costs Redis some 20 µs where
``HGETALL`` costs 2, and the client more besides, so a due touch (at most once per
``touch_interval``) is a round trip of its own. Only with a touch interval under
:data:`SCRIPTED_TOUCH_BELOW` (a touch on nearly every request) does the load run a script that
also extends a due expiry (up to the deadline kept in field ``a``), in the same round trip.
Scripts derive a user's index key from the prefix, which a single Redis (or a Sentinel-managed
one) allows. On a Redis Cluster the two live in different slots: the
:data:`CLUSTER` scripts leave the index alone and the store updates it with :data:`INDEX_ADD`
or ``ZREM`` on the index's own node.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import redis.exceptions

from ..base import Record, StoreError, StoreUnavailable, stored_number, unreadable

DEFAULT_PREFIX = "coatcheck:"

SCRIPTED_TOUCH_BELOW = 1.0
"""A touch interval (s) under which the engine's load extends a due expiry in its own round trip
(a script); from it on, loads are plain ``HGETALL`` and a due touch is a call of its own."""

_HELPERS = """
local function extend(index, ms)
  if redis.call('PTTL', index) == -1 then
    redis.call('PEXPIREAT', index, ms)
  else
    redis.call('PEXPIREAT', index, ms, 'GT')
  end
end
local function file_user(prefix, user, key, ms)
  if user ~= '' then
    local index = prefix .. 'u:' .. user
    redis.call('ZADD', index, ms, key)
    extend(index, ms)
  end
end
local function unfile_user(prefix, user, key)
  if user and user ~= '' then redis.call('ZREM', prefix .. 'u:' .. user, key) end
end
"""

# In a Redis Cluster a user's index lives in another slot than the session: the scripts leave
# it alone, and the store updates it with a command of its own (see INDEX_ADD).
_CLUSTER_HELPERS = """
local function file_user(prefix, user, key, ms) end
local function unfile_user(prefix, user, key) end
"""

_STORE_NEW = """
-- KEYS[1] the new session; ARGV: prefix, data, version, expires (s), expires (ms), user,
-- deadline (s, or empty)
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'd', ARGV[2], 'v', ARGV[3], 'e', ARGV[4], 'u', ARGV[6], 'a', ARGV[7])
redis.call('PEXPIREAT', KEYS[1], ARGV[5])
file_user(ARGV[1], ARGV[6], KEYS[1], ARGV[5])
"""

_DROP = """
local function drop(prefix, key)
  local user = redis.call('HGET', key, 'u')
  redis.call('DEL', key)
  unfile_user(prefix, user, key)
  return user
end
"""

_SAVE = """
-- KEYS[1] session; ARGV: prefix, data, version, expires (s), expires (ms), user, deadline,
-- expected version
local current = redis.call('HMGET', KEYS[1], 'v', 'u')
if current[1] ~= ARGV[8] then return 0 end
redis.call('HSET', KEYS[1], 'd', ARGV[2], 'v', ARGV[3], 'e', ARGV[4], 'u', ARGV[6], 'a', ARGV[7])
redis.call('PEXPIREAT', KEYS[1], ARGV[5])
if current[2] ~= ARGV[6] then unfile_user(ARGV[1], current[2], KEYS[1]) end
file_user(ARGV[1], ARGV[6], KEYS[1], ARGV[5])
return 1
"""

SAVE_DATA = """
-- KEYS[1] session; ARGV: data, version, expected version. A save that keeps the expiry and
-- the user (most saves): the data and version alone, no TTL or index to update.
if redis.call('HGET', KEYS[1], 'v') ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[1], 'd', ARGV[1], 'v', ARGV[2])
return 1
"""

_TOUCH = """
-- KEYS[1] session; ARGV: prefix, expires (s), expires (ms); returns the user, or 0
local user = redis.call('HGET', KEYS[1], 'u')
if not user then return 0 end
redis.call('HSET', KEYS[1], 'e', ARGV[2])
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
file_user(ARGV[1], user, KEYS[1], ARGV[3])
return user
"""

_LOAD_TOUCHING = """
-- KEYS[1] session; ARGV: prefix, wanted expiry (s), least gain (s), now (s)
-- returns data, version, expiry, user, deadline, touched (1 or 0); nil when missing
local h = redis.call('HMGET', KEYS[1], 'd', 'v', 'e', 'u', 'a')
if not h[1] then return nil end
local touched = 0
local deadline = tonumber(h[5])
local current = tonumber(h[3])
if deadline and current then  -- fields that are not numbers: the engine rejects the record
  local wanted = math.min(tonumber(ARGV[2]), deadline)
  local live = current > tonumber(ARGV[4])  -- never revive an expired session
  if live and wanted > current and wanted - current >= tonumber(ARGV[3]) then
    local ms = math.floor(wanted * 1000)
    h[3] = string.format('%.6f', wanted)
    redis.call('HSET', KEYS[1], 'e', h[3])
    redis.call('PEXPIREAT', KEYS[1], ms)
    file_user(ARGV[1], h[4], KEYS[1], ms)
    touched = 1
  end
end
return {h[1], h[2], h[3], h[4], h[5] or '', touched}
"""

LIST_USER = """
-- KEYS[1] user index; returns key, data, version, expires, user for each live session
local now = redis.call('TIME')
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now[1] * 1000 + math.floor(now[2] / 1000))
local out = {}
for _, key in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local h = redis.call('HMGET', key, 'd', 'v', 'e', 'u')
  if h[1] then
    table.insert(out, key)
    for i = 1, 4 do table.insert(out, h[i]) end
  else
    redis.call('ZREM', KEYS[1], key)
  end
end
return out
"""

DELETE_USER = """
-- KEYS[1] user index; returns how many sessions were deleted
local deleted = 0
for _, key in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  deleted = deleted + redis.call('DEL', key)
end
redis.call('DEL', KEYS[1])
return deleted
"""

INDEX_ADD = (
    _HELPERS
    + """
-- KEYS[1] a user index (Cluster only); ARGV: expires (ms), session key
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
extend(KEYS[1], ARGV[1])
return 1
"""
)


class Scripts(NamedTuple):
    """The Lua of one deployment: a single Redis (or Sentinel's master), or a Cluster."""

    create: str
    rotate: str
    save: str
    touch: str
    load_touching: str
    delete: str


def _scripts(helpers: str) -> Scripts:
    return Scripts(
        create=helpers + _STORE_NEW + "return 1\n",
        rotate=helpers
        + _DROP
        + _STORE_NEW
        + "drop(ARGV[1], KEYS[2])  -- the old session\nreturn 1\n",
        save=helpers + _SAVE,
        touch=helpers + _TOUCH,
        load_touching=helpers + _LOAD_TOUCHING,
        delete=helpers + _DROP + "return drop(ARGV[1], KEYS[1])  -- KEYS[1] session\n",
    )


SINGLE = _scripts(_HELPERS)
CLUSTER = _scripts(_CLUSTER_HELPERS)


def session_key(prefix: str, key: str) -> str:
    return f"{prefix}s:{key}"


def user_key(prefix: str, user_id: str) -> str:
    return f"{prefix}u:{user_id}"


def write_args(prefix: str, record: Record) -> list[str | bytes | int]:
    """ARGV shared by the create and save scripts."""
    return [
        prefix,
        record.data,
        record.version,
        repr(record.expires_at),
        expiry_ms(record.expires_at),
        record.user_id or "",
        "" if record.deadline is None else repr(record.deadline),
    ]


def touch_args(prefix: str, expires_at: float) -> list[str | int]:
    return [prefix, repr(expires_at), expiry_ms(expires_at)]


def expiry_ms(seconds: float) -> int:
    """An expiry in Unix milliseconds, as PEXPIREAT and the index scores take it."""
    return max(1, round(seconds * 1000))


def from_hash(key: str, fields: Mapping[Any, Any]) -> Record | None:
    """A record from ``HGETALL``; None for a missing (or half-written) hash."""
    try:
        data, version, expires = fields[b"d"], fields[b"v"], fields[b"e"]
    except KeyError:
        return None
    return _record(key, data, version, expires, fields.get(b"u"), fields.get(b"a"))


def from_touching(key: str, row: list[bytes] | None) -> tuple[Record | None, bool]:
    """The record, and whether it was touched, from what :data:`LOAD_TOUCHING` returns."""
    if not row:
        return None, False
    data, version, expires, user, deadline, touched = row
    return _record(key, data, version, expires, user, deadline), int(touched) == 1


def _record(
    key: str,
    data: bytes,
    version: bytes,
    expires: bytes,
    user: bytes | None,
    deadline: bytes | None,
) -> Record:
    """A record from its hash fields; :func:`~coatcheck.stores.base.unreadable` for fields that
    do not parse (stored data is untrusted input)."""
    try:
        return Record(
            key,
            data,
            stored_number(expires),
            int(version),
            user.decode() if user else None,
            stored_number(deadline) if deadline else None,
        )
    except (ValueError, TypeError, AttributeError):  # UnicodeDecodeError is a ValueError
        return unreadable(key)


def from_rows(prefix: str, flat: list[bytes]) -> list[Record]:
    """Records from the flat list :data:`LIST_USER` returns."""
    records = []
    start = len(prefix) + 2  # "<prefix>s:"
    for i in range(0, len(flat), 5):
        key, data, version, expires, user = flat[i : i + 5]
        records.append(_record(key.decode()[start:], data, version, expires, user, None))
    return records


SAFE_POLICY = "noeviction"
"""The only ``maxmemory-policy`` under which Redis never evicts a live session when it is full
(it refuses writes instead: a 503 for a new session, never a user logged out at random)."""


def evicting_policy(info: Mapping[Any, Any]) -> str | None:
    """The ``maxmemory-policy`` under which a Redis (``INFO memory``, or a cluster's: one
    section per node) may evict live sessions: any but ``noeviction`` once ``maxmemory`` is
    set (``volatile-*`` ones too, since every session has a TTL); None when none may."""
    sections = [info] if "maxmemory_policy" in info else list(info.values())
    for section in sections:
        if not isinstance(section, Mapping):
            continue
        policy = section.get("maxmemory_policy")
        if isinstance(policy, bytes):
            policy = policy.decode()
        if policy and policy != SAFE_POLICY and int(section.get("maxmemory", 0) or 0) > 0:
            return str(policy)
    return None


def eviction_warning(policy: str) -> str:
    """The warning for a Redis whose ``maxmemory-policy`` may evict live sessions."""
    return (
        f"Redis maxmemory-policy is {policy} and maxmemory is set: when Redis is full it "
        "evicts live sessions, logging users out at random. Set maxmemory-policy "
        f"{SAFE_POLICY} (Redis then refuses new writes when full, and coatcheck answers them "
        "with a 503), or run sessions on a Redis of their own with the memory they need."
    )


@contextlib.contextmanager
def reported(call: str) -> Iterator[None]:
    """Turn redis-py's connection and timeout errors into :class:`StoreUnavailable`."""
    try:
        yield
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        raise StoreUnavailable(f"Redis {call}: {type(exc).__name__}: {exc}") from exc
    except redis.exceptions.RedisError as exc:
        raise StoreError(f"Redis {call}: {type(exc).__name__}: {exc}") from exc
