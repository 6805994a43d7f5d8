"""The Django app, needed only for the ``coatcheck_purge`` management command."""

from __future__ import annotations

from django.apps import AppConfig


class CoatcheckConfig(AppConfig):  # type: ignore[misc]  # Django ships no type information
    name = "coatcheck.integrations.django"
    label = "coatcheck"
    verbose_name = "coatcheck sessions"
