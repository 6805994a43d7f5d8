"""Moving a running application to another store without logging anyone out:
:class:`MigratingStore` (sync) and :class:`AsyncMigratingStore` (async), a composition of the
old store and the new one.

The procedure (``docs/cli.md``, "Switching an application to the new store"):

1. Run the application on ``MigratingStore(old, new)``. A session the new store lacks is read
   from the old one and copied forward (read repair); every write reaches both stores.
2. Run ``coatcheck migrate --from OLD --to NEW`` while it serves: it copies the sessions no
   request has read yet. It never overwrites what the application wrote in the new store.
3. Run the application on the new store alone. Every live session is there, with its latest
   data; none was logged out on the way, and none that ended came back.

What each call does, and why nothing ended comes back:

- ``load``: the new store; on a miss, the old one, and a live record found there is copied
  into the new store with ``create``, which never overwrites: if another request or the
  back-fill copied it first, that copy is the answer. An expired one is returned as it is, not
  copied.
- ``create`` and ``rotate``: the new store first, then the old one; if the old store already
  holds the key, the new store's copy is undone and the call refused, as one store would.
- ``save``: compare-and-set against the new store, the truth (after a read repair the record
  is there, with the version the old store had, so the version the engine loaded is the one it
  compares). Then the old store follows with the same compare-and-set; the two stores' versions
  move in step. If they drifted (two writers' follow-ups crossing, one lost to a failure), the
  old copy is replaced when this save's version is newer, so the old store ends on the newest
  version; it is never created there.
- ``touch``, and a ``load_touching`` that touched: both stores.
- ``delete``, ``rotate``'s old key, ``delete_by_user``: both stores, **the old one first**.

No resurrection: a read repair (and the back-fill, which does the same) copies in three steps:
read the old record, ``create`` it in the new store, read the old store again, and undo the
copy if the record is gone from the old store. A delete removes the old copy, then the new one.
If the repair's second read comes after the delete's first step, it sees the record gone and
undoes its copy; if it comes before, its copy was made before the delete's second step, which
removes it. Either way nothing deleted survives, in either store.

The windows that remain (``tests/test_migrating_store.py`` shows each guarantee):

- While the stores run side by side, every call needs both: an old store that is down fails
  the requests (a delete must reach it, or the session would come back through a read repair).
- A rolling deploy that leaves some instances on the old store alone while others run on the
  composition: those instances write, log out and log in on the old store only. A session a
  composed instance copied forward misses their changes, and one they logged out stays in the
  new store. Switch every instance at once, or keep the rollout short.
- The same at the end, between instances on the composition and instances on the new store
  alone: a session the latter log out is still in the old store, and a read repair would copy
  it forward. Deploy ``MigratingStore(old, new, read_old=False)`` first (every session is in
  the new store once ``coatcheck migrate`` has run, and writes and deletes still reach both),
  then the new store alone.
- A record that expires in the old store in the instant between a repair's copy and its second
  read is undone in the new store as if deleted: at most a session at the very end of its idle
  timeout.
"""

from __future__ import annotations

from ._async import AsyncMigratingStore
from ._sync import MigratingStore

__all__ = ["AsyncMigratingStore", "MigratingStore"]
