"""A fast store in front of a durable one: :class:`TieredStore` (sync) and
:class:`AsyncTieredStore` (async), built from two store objects, e.g. Redis in front of
PostgreSQL, MariaDB or SQLite::

    store = TieredStore(RedisStore(redis_client, prefix="app:"), SQLiteStore("sessions.db"))

The durable store is the truth; the fast tier is a cache of it that is never trusted past what
the durable store says.

- ``load``: the fast tier; on a miss, the durable store, and a live record found there is
  copied into the fast tier with ``create`` (never over a copy a writer put there first), then
  the durable store is read again and the copy undone if the record is gone (a logout crossed
  it). A copy in the fast tier that has expired answers nothing: the durable store does.
- ``save``: compare-and-set in the durable store, then the fast tier follows with the same
  compare-and-set; if its copy's version drifted, the copy is replaced when this save's is
  newer, so it ends on the newest version. A save the durable store refuses makes the fast
  copy the durable record's (or removes it) before the engine loads again.
- ``create``, ``touch``, ``delete``, ``rotate``, ``delete_by_user``: the durable store first,
  then the fast tier. ``list_by_user``, ``iter_records``, ``purge_expired``: the durable store.

**The epoch.** The fast tier's keys are named for an *epoch*, a record in the durable store
(its key :data:`EPOCH_KEY`; a random number and a version). Whenever a change may have missed
the fast tier, the epoch moves on: when a call on the fast tier fails (its write, or any call,
since a server that fails may lose what it acknowledged), and after every change made while the
fast tier rests. Keys of an earlier epoch are never read again, and expire in the fast tier by
themselves. So a fast tier that comes back with its old data, from before it went down, serves
none of it: not the old data of a session written meanwhile, nor a session logged out or revoked
meanwhile, which the durable store no longer holds.

**A fast tier that fails** raises :class:`~coatcheck.stores.StoreError` (Redis down or late:
:class:`~coatcheck.stores.StoreUnavailable`). The call is served by the durable store, the fast
tier rests for ``retry_interval`` seconds (every call goes to the durable store alone; the next
one after that tries the fast tier again), a warning is logged and ``on_event`` told. Sessions
keep working, degraded: no request fails for it. A durable store that fails fails the request
(a 503), as it would alone.

The windows that remain (``tests/test_tiered_store.py`` shows each):

- **Other instances follow the epoch within ``check_interval``** (1 s by default): each reads it
  from the durable store at most that often. An instance that made no call while the fast tier
  was down, nor since, may trust the old epoch's keys for what is left of that time after the
  fast tier is back; so may every instance when the fast tier failed for one instance only. With
  ``check_interval=0`` every call reads the epoch, and there is no window, at one more durable
  round trip per call.
- **A fast tier that loses writes it acknowledged without any call failing** (a Redis that
  restarts between two calls from a snapshot, or from an append-only file it did not sync on
  every write) comes back older than the durable store with no failure to move the epoch on.
  Run it without persistence (it comes back empty) or with ``appendfsync always``.
- **The operator's commands work on one store.** ``coatcheck revoke --all`` on the durable
  store deletes the epoch record too: the next epoch is a new one, and no fast copy is read
  again. ``coatcheck revoke --user`` on the durable store alone leaves the fast tier's copies of
  the user's sessions: revoke there too, or end them through the application
  (``password_changed()``, ``logout(everywhere=True)``), which reaches both.
"""

from __future__ import annotations

from ._async import AsyncTieredStore
from ._state import EPOCH_KEY, TierEvent, TierEventKind, TierStats
from ._sync import TieredStore

__all__ = [
    "EPOCH_KEY",
    "AsyncTieredStore",
    "TierEvent",
    "TierEventKind",
    "TierStats",
    "TieredStore",
]
