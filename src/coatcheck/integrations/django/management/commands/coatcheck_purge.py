"""``manage.py coatcheck_purge``: delete expired sessions from the coatcheck store.

Needs ``"coatcheck.integrations.django"`` in ``INSTALLED_APPS``. Django's own ``clearsessions``
does the same through ``SessionStore.clear_expired()`` when ``django.contrib.sessions`` is
installed; this one works without it and says how many it deleted. Stores with native expiry
(Redis, Memcached) need no purge: it deletes nothing there.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from ...session_store import SessionStore


class Command(BaseCommand):  # type: ignore[misc]  # Django ships no type information
    help = "Delete expired sessions from the coatcheck session store."

    def handle(self, *args: Any, **options: Any) -> None:
        purged = SessionStore.clear_expired()
        self.stdout.write(f"Purged {purged} expired session(s).")
