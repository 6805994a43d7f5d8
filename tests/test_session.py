"""The Session mapping: a dict of JSON values that knows what the request changed."""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Callable
from datetime import datetime

import pytest

from coatcheck.codec import JSONValue, SessionTooLarge
from coatcheck.session import NOTHING_ASKED, Asked, Ending, Rotation, Session, Stored

pytestmark = pytest.mark.usefixtures("json_backend")


def fresh(max_size: int = 64 * 1024) -> Session:
    return Session.fresh(now=1000.0, max_size=max_size)


def stored(user: str | None = None, **data: JSONValue) -> Session:
    """A session as loaded from a store (under the key ``"key"``), holding ``data``."""
    record = Stored("id", "key", 1, b"{}", 3000.0, 5000.0)
    return Session.load(
        dict(data), record, 1000.0, 1000.0, 1000.0, user, None, None, 1000.0, 1 << 16, None
    )


def test_it_is_a_dict_that_json_can_dump() -> None:
    session = fresh()
    session["cart"] = [{"sku": "A1", "qty": 2}]
    assert isinstance(session, dict)
    assert json.loads(json.dumps(session)) == {"cart": [{"sku": "A1", "qty": 2}]}
    assert session == {"cart": [{"sku": "A1", "qty": 2}]}


def test_a_fresh_session_is_new_and_unmodified() -> None:
    session = fresh()
    assert (session.is_new, session.modified, session.user_id) == (True, False, None)
    assert session.created_at == session.last_active == 1000.0
    assert session.expires_at is None


@pytest.mark.parametrize(
    "mutate",
    [
        lambda s: s.__setitem__("a", 1),
        lambda s: s.update(a=1),
        lambda s: s.update({"a": 1}),
        lambda s: s.setdefault("a", 1),
        lambda s: s.__ior__({"a": 1}),
    ],
)
def test_every_way_of_writing_marks_it_modified(mutate: object) -> None:
    session = fresh()
    mutate(session)  # type: ignore[operator]
    assert session.modified
    assert session["a"] == 1


def test_every_way_of_removing_marks_it_modified() -> None:
    removals: list[Callable[[Session], object]] = [
        lambda s: s.pop("a"),
        lambda s: s.popitem(),
        lambda s: s.__delitem__("a"),
        lambda s: s.clear(),
    ]
    for remove in removals:
        session = stored(a=1)
        assert not session.modified
        remove(session)
        assert session.modified
        assert session == {}


def test_missing_keys_behave_as_in_a_dict() -> None:
    session = fresh()
    assert session.get("nope") is None
    assert session.pop("nope", 7) == 7
    with pytest.raises(KeyError):
        session.pop("nope")
    with pytest.raises(KeyError):
        del session["nope"]
    with pytest.raises(KeyError):
        session.popitem()
    assert not session.modified


@pytest.mark.parametrize(
    "value", [object(), {1, 2}, datetime(2026, 1, 1), b"bytes", float("nan"), {"k": {1: 2}}]
)
def test_a_value_json_cannot_hold_is_refused_naming_the_key(value: object) -> None:
    session = fresh()
    with pytest.raises(TypeError, match="session\\['when'\\]"):
        session["when"] = value
    assert "when" not in session
    assert not session.modified


def test_a_non_string_key_is_refused() -> None:
    with pytest.raises(TypeError, match="keys must be str"):
        fresh()[1] = "one"  # type: ignore[index]


def test_growing_past_max_size_is_refused_and_the_data_is_kept() -> None:
    session = fresh(max_size=100)
    session["a"] = "x" * 50
    with pytest.raises(SessionTooLarge, match="max_size=100"):
        session["b"] = "y" * 50
    assert session == {"a": "x" * 50}
    session["a"] = "z" * 80  # replacing a value counts only the difference
    assert json.dumps(session, separators=(",", ":")).__len__() <= 100


def test_size_tracking_never_underestimates_and_never_refuses_what_fits() -> None:
    session = fresh(max_size=400)
    for round_ in range(30):
        for i in range(10):
            value = "v" * ((i * 7 + round_ * 3) % 25)
            session[f"k{i}"] = value  # always fits: 10 keys of at most 24 characters
            actual = len(json.dumps(session, separators=(",", ":")))
            assert session._data_size() >= actual
            assert actual <= 400
        del session[f"k{round_ % 10}"]
        assert session._data_size() >= len(json.dumps(session, separators=(",", ":")))


def test_sessions_are_never_pickled() -> None:
    session = fresh()
    session["a"] = 1
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(session)
    with pytest.raises(TypeError):
        copy.copy(session)


def test_copy_is_a_plain_dict() -> None:
    session = fresh()
    session["a"] = [1]
    assert type(session.copy()) is dict
    assert type(session | {"b": 2}) is dict


def test_login_requires_a_user_id() -> None:
    with pytest.raises(TypeError):
        fresh().login("")


def test_logout_empties_the_session() -> None:
    session = fresh()
    session["a"] = 1
    session.login("alice")
    session.logout()
    assert session == {}
    assert session.user_id is None
    assert session.is_new


def test_a_session_is_accessed_once_handed_out_or_changed() -> None:
    untouched, handed_out, written = fresh(), fresh(), fresh()
    assert "a" not in untouched  # reading it directly is not what marks it
    handed_out.mark_accessed()  # what Starlette's request.session does
    written["a"] = 1
    assert (untouched.accessed, handed_out.accessed, written.accessed) == (False, True, True)
    assert not handed_out.modified


def test_a_stored_session_the_request_emptied_ends() -> None:
    session = stored(cart=["tea"])
    del session["cart"]
    assert session.end_if_emptied()
    assert session.modified  # the logout is what the commit carries out


def test_an_emptied_session_holding_a_user_a_token_or_other_keys_stays() -> None:
    untouched = stored()
    assert not untouched.end_if_emptied()  # nothing this request did
    flagged = stored(cart=["tea"], _permanent=True)
    del flagged["cart"]
    assert flagged.end_if_emptied(ignoring=("_permanent",))
    kept = stored(cart=["tea"], other=1)
    del kept["cart"]
    assert not kept.end_if_emptied()
    with_token = stored(cart=["tea"])
    with_token.csrf_token()
    del with_token["cart"]
    assert not with_token.end_if_emptied()
    assert not fresh().end_if_emptied()  # never stored: nothing to end


# -- what a request asks: one Rotation and one Ending, the stronger kept ---------------------


def test_a_request_that_asks_nothing_leaves_the_one_empty_value() -> None:
    session = stored(cart=["tea"])
    session["cart"] = ["tea", "jam"]
    assert session.asked is NOTHING_ASKED  # the commit's common case: an identity check


def test_regenerating_a_session_never_stored_asks_nothing() -> None:
    session = fresh()
    session.regenerate()
    session.privileges_changed()
    assert session.asked.rotation is Rotation.NONE  # a new session gets a new ID anyway


def test_a_stronger_rotation_is_not_weakened_by_a_later_regenerate() -> None:
    session = stored()
    session.privileges_changed()
    session.regenerate()  # would give the old ID a grace window
    assert session.asked.rotation is Rotation.PRIVILEGES
    session.login("ada")
    session.regenerate()
    assert session.asked == Asked(Rotation.LOGIN)


def test_a_login_on_a_new_session_counts_as_a_login() -> None:
    session = fresh()
    session.login("ada")
    assert session.asked.rotation is Rotation.LOGIN
    assert session.modified


def test_logout_ends_the_stored_record_and_remembers_its_user_and_age() -> None:
    session = stored(user="ada", cart=["tea"])
    created = session.created_at
    session.logout()
    assert session.asked == Asked(Rotation.NONE, Ending.LOGOUT, "key", "ada", created)
    assert (session.is_new, session.user_id, dict(session)) == (True, None, {})
    session.logout(everywhere=True)  # a second logout widens it, and still ends that record
    assert session.asked == Asked(Rotation.NONE, Ending.EVERYWHERE, "key", "ada", created)


def test_logout_after_a_password_change_ends_every_session_of_the_user() -> None:
    session = stored(user="ada")
    session.password_changed()
    assert session.asked == Asked(Rotation.PRIVILEGES, Ending.OTHERS)
    session.logout()  # the others were to end: they still do
    assert session.asked == Asked(Rotation.NONE, Ending.EVERYWHERE, "key", "ada", 1000.0)
