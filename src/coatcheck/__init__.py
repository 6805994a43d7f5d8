"""coatcheck: server-side sessions for Python web applications.

One session engine (:mod:`coatcheck.engine`) with a sync and an async face, ASGI and WSGI
middleware, and stores chosen by URL (:func:`coatcheck.stores.from_url`).
"""

from __future__ import annotations

from .codec import DecodeError, SessionTooLarge
from .config import ConfigError, SessionConfig
from .engine import SessionEngine, WriteConflict
from .session import Session
from .stores import Record, Store, StoreError, StoreUnavailable, from_url

__all__ = [
    "ConfigError",
    "DecodeError",
    "Record",
    "Session",
    "SessionConfig",
    "SessionEngine",
    "SessionTooLarge",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "WriteConflict",
    "from_url",
]

# The one place the version is written: the build reads it (pyproject.toml, [tool.hatch.version]).
__version__ = "0.1.0"
