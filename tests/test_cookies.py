"""Reading the session cookie out of a Cookie header, and writing Set-Cookie."""

from __future__ import annotations

import pytest

from coatcheck.config import SessionConfig
from coatcheck.cookies import AMBIGUOUS, CookieWriter, find_cookie


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("session=abc", "abc"),
        ("a=1;session=abc;b=2", "abc"),
        (" session = abc ", "abc"),
        ('session="abc"', "abc"),
        ("session=", ""),
        ("session", None),
        ("other=session", None),
        ("xsession=abc; sessionx=def", None),
        ("session=abc; session=abc", "abc"),
        ("session=abc; session=def", AMBIGUOUS),
        (";;;===;", None),
        ("\x00\xff session=\xe9", None),
        ("\x00\xff; session=\xe9", "\xe9"),
    ],
)
def test_find_cookie(header: str, expected: str | None) -> None:
    assert find_cookie(header, "session") == expected


def test_set_cookie_attributes() -> None:
    writer = CookieWriter(SessionConfig())
    assert writer.name == "__Host-session"
    assert writer.issue("ID", 1799.2) == (
        "__Host-session=ID; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=1799"
    )
    assert writer.expire() == (
        "__Host-session=; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=0; "
        "Expires=Thu, 01 Jan 1970 00:00:00 GMT"
    )


def test_no_host_prefix_without_secure_or_with_a_path() -> None:
    assert CookieWriter(SessionConfig(secure=False)).name == "session"
    assert CookieWriter(SessionConfig(path="/app")).name == "__Secure-session"
    writer = CookieWriter(SessionConfig(cookie_name="sid", path="/app", same_site="none"))
    assert writer.issue("ID", 60) == (
        "__Secure-sid=ID; Path=/app; HttpOnly; Secure; SameSite=None; Max-Age=60"
    )


def test_a_partitioned_cookie_says_so_when_issued_and_when_expired() -> None:
    writer = CookieWriter(SessionConfig(partitioned=True, same_site="none"))
    assert writer.issue("ID", 60) == (
        "__Host-session=ID; Path=/; HttpOnly; Secure; SameSite=None; Partitioned; Max-Age=60"
    )
    assert "; Partitioned; Max-Age=0; " in writer.expire()
