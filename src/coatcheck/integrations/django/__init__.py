"""coatcheck as a Django session engine: ``SESSION_ENGINE = "coatcheck.integrations.django"``.

Django keeps its ``request.session`` API, its cookie (``SESSION_COOKIE_*``) and its expiry
(``SESSION_COOKIE_AGE``, ``set_expiry``); coatcheck keeps the sessions: in the store
``COATCHECK_STORE_URL`` names (SQLite by default, Redis, PostgreSQL, ...), under hashed IDs,
as JSON. ``django.contrib.auth.login`` regenerates the ID through coatcheck (one store call).

.. code-block:: python

    # settings.py
    SESSION_ENGINE = "coatcheck.integrations.django"
    COATCHECK_STORE_URL = "redis://127.0.0.1:6379/0"
    MIDDLEWARE = [
        "coatcheck.integrations.django.SessionMiddleware",  # Django's, with 503 on store failure
        ...,
    ]
    INSTALLED_APPS = [..., "coatcheck.integrations.django"]  # only for `manage.py coatcheck_purge`

Options Django has no setting for go in ``COATCHECK_SESSION`` (``hash_secret``, ``max_size``,
``absolute_timeout``): see :mod:`coatcheck.integrations.django.config` and
docs/integrations/django.md.
"""

from __future__ import annotations

from .middleware import SessionMiddleware
from .session_store import SessionStore

__all__ = ["SessionMiddleware", "SessionStore"]
