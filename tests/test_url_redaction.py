"""A store URL is printed and logged only through :func:`coatcheck.stores.redacted`, which hides
every credential a URL can carry (the userinfo's password, the value of every query option
that may be one, a fragment) and keeps the rest as given; :func:`coatcheck.stores.scrubbed`
takes those credentials out of a driver's message, however the driver spelled them."""

from __future__ import annotations

import pytest

from coatcheck.stores import redacted, scrubbed

SHOWN_AS_GIVEN = [
    "memory://",
    "memory://?max_entries=100",
    "file:///var/lib/sessions",
    "file:relative/dir",
    "sqlite:///sessions.db?table=web&offload=true",
    "sqlite:////abs/sessions.db",
    "redis://127.0.0.1:6379/0?prefix=app:&timeout=2",
    "redis://app@127.0.0.1:6379/0",  # a user name alone is no secret
    "redis+cluster://127.0.0.1:7000",
    "redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/mymaster/0",
    "rediss://[::1]:6380/0",
    "postgresql://postgres@127.0.0.1:5432/test?table=sessions&pool_size=4",
    "postgresql:///test?host=/run/postgresql&sslmode=require",
    "mysql://root@127.0.0.1:3306/test",
    "memcached://127.0.0.1:11211?prefix=app:",
    "postgresql://u@h/db?password=",  # nothing there to hide
    "file:///srv/app@2/sessions",
    "redis://h/0?prefix=team@app:",
    "",
    "not a URL at all",
]


@pytest.mark.parametrize("url", SHOWN_AS_GIVEN)
def test_a_url_without_credentials_is_shown_exactly_as_given(url: str) -> None:
    assert redacted(url) == url


REDACTED = [
    ("redis://:hunter2@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
    ("rediss://default:hunter2@cache:6380/1", "rediss://default:***@cache:6380/1"),
    ("redis://:hun%40ter2@h/0?prefix=a:", "redis://:***@h/0?prefix=a:"),
    ("redis://:hun@ter2@h/0", "redis://:***@h/0"),  # an "@" left unencoded in the password
    ("redis://:p:a:ss@h/0", "redis://:***@h/0"),  # so is a ":"
    ("REDIS://:hunter2@H/0", "REDIS://:***@H/0"),
    (
        "redis+sentinel://:hunter2@s1:26379,s2:26379/mymaster",
        "redis+sentinel://:***@s1:26379,s2:26379/mymaster",
    ),
    ("redis+cluster://:hunter2@n1:7000", "redis+cluster://:***@n1:7000"),
    ("postgresql://ops:hunter2@db:5432/app", "postgresql://ops:***@db:5432/app"),
    ("postgresql://ops:@db/app", "postgresql://ops:***@db/app"),
    ("postgresql://u@127.0.0.1:1/x?password=hunter2", "postgresql://u@127.0.0.1:1/x?password=***"),
    ("postgresql://u@h/x?PASSWORD=hunter2&table=t", "postgresql://u@h/x?PASSWORD=***&table=t"),
    (
        "postgresql://u@h/x?sslpassword=hunter2&sslmode=verify-full",
        "postgresql://u@h/x?sslpassword=***&sslmode=verify-full",
    ),
    ("postgresql://u@h/x?pass%77ord=hunter2", "postgresql://u@h/x?pass%77ord=***"),  # encoded name
    (
        "postgresql://u@h/x?table=t&password=hunter2&timeout=1",
        "postgresql://u@h/x?table=t&password=***&timeout=1",
    ),
    ("postgresql://u:one@h/x?password=two", "postgresql://u:***@h/x?password=***"),
    ("mysql://root:hunter2@db/test?passwd=hunter3", "mysql://root:***@db/test?passwd=***"),
    ("mariadb://root@db/test?pass=hunter2", "mariadb://root@db/test?pass=***"),
    ("memcached://h:11211?secret=hunter2", "memcached://h:11211?secret=***"),
    ("redis://h/0?token=hunter2", "redis://h/0?token=***"),
    ("redis://h/0?Auth=hunter2", "redis://h/0?Auth=***"),
    ("redis://h/0?key=hunter2", "redis://h/0?key=***"),
    (
        "redis://h/0?access_key=hunter2&secret_access_key=hunter3",
        "redis://h/0?access_key=***&secret_access_key=***",
    ),
    ("redis://h/0?api-key=hunter2", "redis://h/0?api-key=***"),
    ("redis://h/0?client_secret=hunter2", "redis://h/0?client_secret=***"),
    ("redis://h/0?auth_token=hunter2", "redis://h/0?auth_token=***"),
    ("redis://h/0?sig=hunter2", "redis://h/0?sig=***"),
    ("redis://h/0?pwd=hunter2", "redis://h/0?pwd=***"),
    ("postgresql://u@h/x?password=hun;ter2&table=t", "postgresql://u@h/x?password=***&table=t"),
    # A "#", "?" or "/" left unencoded in a password would end the netloc: it is hidden whole.
    ("redis://:hun#ter2@h/0", "redis://:***@h/0"),
    ("postgresql://u:hun?ter2@h/x?password=hunter3", "postgresql://u:***@h/x?password=***"),
    ("redis://:hun/ter2@h/0?prefix=a:", "redis://:***@h/0?prefix=a:"),
    ("redis://h/0#hunter2", "redis://h/0#***"),
    # After a "host:port" an "@" reads the same way: when in doubt, hidden.
    ("redis://h:6379/0?prefix=team@app:", "redis://h:***@app:"),
    ("redis://:hunter2@[::1/0", "redis://:***@[::1/0"),  # a URL urllib refuses to split
]


@pytest.mark.parametrize(("url", "shown"), REDACTED)
def test_every_credential_is_shown_as_stars_and_the_rest_as_given(url: str, shown: str) -> None:
    assert redacted(url) == shown


@pytest.mark.parametrize(("url", "shown"), REDACTED)
def test_a_redacted_url_redacts_to_itself(url: str, shown: str) -> None:
    assert redacted(shown) == shown


def test_a_drivers_message_loses_the_credentials_however_they_are_spelled() -> None:
    url = "postgresql://ops:hun%40ter2@db/app?sslpassword=a+b%21&table=t"
    message = "auth failed for ops with 'hun@ter2' (key 'a b!', as given 'a+b%21')"
    assert scrubbed(message, url) == "auth failed for ops with '***' (key '***', as given '***')"


def test_a_message_is_left_alone_when_the_url_holds_no_credential() -> None:
    message = "connection refused: 127.0.0.1:6379 (password=?)"
    assert scrubbed(message, "redis://127.0.0.1:6379/0?prefix=a:") == message
