"""The demo shop: log in, fill a cart, see and end your sessions, on any store, on one instance
or several behind nginx. Run it with ``coatcheck demo`` (see docs/demo.md).

- :mod:`.app`: :func:`create_app`, the ASGI application (pages and JSON API, FastAPI).
- :mod:`.users`, :mod:`.catalog`, :mod:`.cart`, :mod:`.devices`: the shop's small domain.
- :mod:`.accounts`: a user's active sessions through the store's user index.
- :mod:`.pages` (templates in ``templates/``) and :mod:`.api`: the two faces.
- :mod:`.cluster`: several instances behind nginx, for ``coatcheck demo --instances N``.
"""

from .app import create_app

__all__ = ["create_app"]
