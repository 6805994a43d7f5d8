"""The Django app the Django benchmark serves under gunicorn: bare, or with a session engine.

``COATCHECK_BENCH_DJANGO`` names the variant (``VARIANTS`` of :mod:`..django`),
``COATCHECK_BENCH_REDIS`` the Redis both session engines use, and ``COATCHECK_BENCH_PREFIX`` the
key prefix that keeps this run's keys apart. The routes are those of :mod:`benchmarks.apps`:
``/anon`` never touches the session, ``/setup`` stores :data:`benchmarks.apps.SESSION_DATA`,
``/read`` reads one key, ``/write`` increments a counter.
"""

from __future__ import annotations

import os
from typing import Any

import django
from django.conf import settings

from benchmarks.apps import SESSION_DATA
from benchmarks.frameworks.django import (
    BARE,
    COATCHECK,
    COATCHECK_SQLITE,
    DJANGO_CACHE,
    DJANGO_DB,
    PREFIX_ENV,
    REDIS_ENV,
    SQLITE_ENV,
    VARIANT_ENV,
    VARIANTS,
)


def _settings(variant: str) -> dict[str, Any]:
    redis_url = os.environ.get(REDIS_ENV, "redis://127.0.0.1:6379/0")
    prefix = os.environ.get(PREFIX_ENV, "coatcheck-bench-django:")
    common: dict[str, Any] = {
        "DEBUG": False,
        "SECRET_KEY": "benchmark-only-secret-key-0123456789abcdef",
        "ALLOWED_HOSTS": ["127.0.0.1"],
        "ROOT_URLCONF": __name__,
        "INSTALLED_APPS": [],
        "DATABASES": {},
        "USE_TZ": True,
        "SESSION_COOKIE_AGE": 30 * 60,
    }
    if variant == BARE:
        return {**common, "MIDDLEWARE": []}
    if variant == COATCHECK:
        return {
            **common,
            "MIDDLEWARE": ["coatcheck.integrations.django.SessionMiddleware"],
            "SESSION_ENGINE": "coatcheck.integrations.django",
            "COATCHECK_STORE_URL": f"{redis_url}?prefix={prefix}",
        }
    if variant == DJANGO_CACHE:
        return {
            **common,
            "MIDDLEWARE": ["django.contrib.sessions.middleware.SessionMiddleware"],
            "SESSION_ENGINE": "django.contrib.sessions.backends.cache",
            "CACHES": {
                "default": {
                    "BACKEND": "django.core.cache.backends.redis.RedisCache",
                    "LOCATION": redis_url,
                    "KEY_PREFIX": prefix,
                }
            },
        }
    if variant in (COATCHECK_SQLITE, DJANGO_DB):
        return {**common, **_database_settings(variant, os.environ[SQLITE_ENV])}
    raise ValueError(f"unknown Django benchmark variant {variant!r}; known: {VARIANTS}")


def _database_settings(variant: str, path: str) -> dict[str, Any]:
    """coatcheck's engine on its SQLiteStore, or Django's db engine, on the SQLite file ``path``.

    Both apps have the same database, with the pragmas coatcheck's store sets (WAL,
    ``synchronous=NORMAL``) and a persistent connection (``CONN_MAX_AGE = None``, as a site
    with a database runs): Django's db engine stores there (its ``django_session`` table), and
    coatcheck's in a table of its own in the same file.
    """
    database = {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        "CONN_MAX_AGE": None,
        "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL"},
    }
    found: dict[str, Any] = {"DATABASES": {"default": database}}
    if variant == COATCHECK_SQLITE:
        return {
            **found,
            "MIDDLEWARE": ["coatcheck.integrations.django.SessionMiddleware"],
            "SESSION_ENGINE": "coatcheck.integrations.django",
            "COATCHECK_STORE_URL": f"sqlite:///{path}",
        }
    return {
        **found,
        "INSTALLED_APPS": ["django.contrib.sessions"],
        "MIDDLEWARE": ["django.contrib.sessions.middleware.SessionMiddleware"],
        "SESSION_ENGINE": "django.contrib.sessions.backends.db",
    }


settings.configure(**_settings(os.environ.get(VARIANT_ENV, BARE)))
django.setup()

from django.core.handlers.wsgi import WSGIHandler  # noqa: E402 - after the settings
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402


def _session(request: HttpRequest) -> Any:
    """The request's session; a throwaway dict in the bare app, which has none."""
    return getattr(request, "session", {})


def anonymous(request: HttpRequest) -> HttpResponse:
    return HttpResponse("hello", content_type="text/plain")


def setup(request: HttpRequest) -> HttpResponse:
    _session(request).update(SESSION_DATA)
    return HttpResponse("ok", content_type="text/plain")


def read(request: HttpRequest) -> HttpResponse:
    user = _session(request).get("user")
    return HttpResponse(user["name"] if user else "no session", content_type="text/plain")


def write(request: HttpRequest) -> HttpResponse:
    session = _session(request)
    session["counter"] = counter = session.get("counter", 0) + 1
    return HttpResponse(str(counter), content_type="text/plain")


urlpatterns = [
    path("anon", anonymous),
    path("setup", setup),
    path("read", read),
    path("write", write),
]

application = WSGIHandler()
