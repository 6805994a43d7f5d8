"""Shared test set-up: detailed assertion messages from the public conformance suite."""

import pytest

pytest.register_assert_rewrite("coatcheck.testing")
