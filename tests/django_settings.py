"""Django's settings for the whole test process, configured once, whichever module needs Django
first (tests/test_django.py, or the integration conformance suite's Django app).

pytest-django is not used: ``settings.configure`` with an in-memory SQLite database for
``django.contrib.auth``'s users, then ``django.setup()``. The URLconf is tests/test_django.py's;
a module serving other views switches to its own with ``override_settings(ROOT_URLCONF=...)``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import django

# In the test run's temporary root (tests/conftest.py: in memory where there is a tmpfs).
SCRATCH = Path(
    tempfile.mkdtemp(prefix="coatcheck-django-", dir=os.environ.get("PYTEST_DEBUG_TEMPROOT"))
)
atexit.register(shutil.rmtree, SCRATCH, ignore_errors=True)
SQLITE_URL = f"sqlite:///{SCRATCH}/sessions.db"


def configure() -> None:
    """Configure Django for the tests and set it up, unless it already is."""
    # Not a module global: doctest collection would probe the unconfigured LazySettings.
    from django.conf import settings

    if settings.configured:
        return
    settings.configure(
        SECRET_KEY="coatcheck-django-tests-not-a-secret",
        DEBUG=False,
        ALLOWED_HOSTS=["testserver"],
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "django.contrib.sessions",  # the upstream module imports its model
            "coatcheck.integrations.django",
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        SESSION_ENGINE="coatcheck.integrations.django",
        SESSION_COOKIE_AGE=600,  # Redis drops what a test leaves behind within minutes
        COATCHECK_STORE_URL=SQLITE_URL,
        MIDDLEWARE=[
            "coatcheck.integrations.django.SessionMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
        ],
        ROOT_URLCONF="tests.test_django",
        USE_TZ=True,
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],  # fast, tests only
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    )
    django.setup()
