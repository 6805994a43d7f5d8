"""The engine's store calls are plain ``(method, args)`` tuples whose types mypy checks: each
method's tuple is typed as its parameters are in ``Store`` (or a capability: ``UserIndex``,
``Purgeable``), so a plan that yields a misspelt method or a wrong argument is a type error, at
no cost per request."""

from __future__ import annotations

import inspect
import typing
from pathlib import Path

from mypy import api

from coatcheck import engine
from coatcheck.stores import Store
from coatcheck.stores.base import AsyncStore, Purgeable, UserIndex

CAPABILITIES: dict[str, type] = {
    "list_by_user": UserIndex,
    "delete_by_user": UserIndex,
    "purge_expired": Purgeable,
}
"""The calls a plan may make that are a capability's, not every store's."""


def typed_calls() -> dict[str, tuple[object, ...]]:
    """Each method ``StoreCall`` allows, with the types of its arguments."""
    calls: dict[str, tuple[object, ...]] = {}
    for member in typing.get_args(engine.StoreCall):
        (name,), args = (typing.get_args(part) for part in typing.get_args(member))
        calls[name] = args
    return calls


def parameters(owner: type, name: str) -> tuple[object, ...]:
    """The types of a store method's parameters, ``self`` left out."""
    method = getattr(owner, name)
    hints = typing.get_type_hints(method)
    return tuple(hints[p] for p in list(inspect.signature(method).parameters)[1:])


def test_every_call_is_typed_as_the_store_method_it_names() -> None:
    calls = typed_calls()
    assert calls.pop(engine.PAUSE) == (float,)  # the one call that is no store's: a sleep
    for name, args in calls.items():
        owner = CAPABILITIES.get(name, Store)
        assert args == parameters(owner, name), name
        assert args == parameters(AsyncStore, name), name  # the async face takes the same


def test_mypy_refuses_a_plan_that_yields_a_call_no_store_method_fits(tmp_path: Path) -> None:
    plan = tmp_path / "plan.py"
    plan.write_text(
        "from coatcheck.engine import Plan\n"
        "def plan(key: str) -> Plan[None]:\n"
        "    yield ('load', (key,))\n"  # fits
        "    yield ('load', (1,))\n"
        "    yield ('save', (key,))\n"
        "    yield ('lode', (key,))\n"
    )
    out, _, status = api.run(["--strict", "--no-incremental", str(plan)])
    assert status == 1
    lines = [line.split(":")[1] for line in out.splitlines() if ": error: " in line]
    assert lines == ["4", "5", "6"], out
