"""Framework integrations: thin modules over the one engine and the same stores.

Each is imported by its own path (``coatcheck.integrations.flask``, ...) and needs its
framework's extra (``coatcheck[flask]``, ...); importing this package imports no framework.
"""
