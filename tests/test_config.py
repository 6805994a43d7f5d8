"""Options: sane defaults, and a bad value refused at construction with its name."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest

from coatcheck.config import ConfigError, SessionConfig


def test_defaults() -> None:
    config = SessionConfig()
    assert (config.idle_timeout, config.absolute_timeout, config.touch_interval) == (
        1800.0,
        43200.0,
        60.0,
    )
    assert (config.secure, config.same_site, config.path, config.domain) == (
        True,
        "lax",
        "/",
        None,
    )
    assert config.max_size == 65536
    assert config.cookie_key == "__Host-session"


def test_timedeltas_become_seconds() -> None:
    config = SessionConfig.from_options(
        idle_timeout=timedelta(minutes=5), absolute_timeout=timedelta(hours=1)
    )
    assert (config.idle_timeout, config.absolute_timeout) == (300.0, 3600.0)


def test_it_is_frozen() -> None:
    with pytest.raises(AttributeError):
        SessionConfig().secure = False  # type: ignore[misc]


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"cookie_name": "bad name"}, "cookie_name"),
        ({"cookie_name": ""}, "cookie_name"),
        ({"same_site": "sometimes"}, "same_site"),
        ({"same_site": "none", "secure": False}, "same_site"),
        ({"partitioned": True, "secure": False}, "partitioned"),
        ({"domain": "exa mple.com"}, "domain"),
        ({"path": "no-slash"}, "path"),
        ({"path": "/a;b"}, "path"),
        ({"idle_timeout": 0}, "idle_timeout"),
        ({"idle_timeout": "30"}, "idle_timeout"),
        ({"idle_timeout": True}, "idle_timeout"),
        ({"absolute_timeout": -1}, "absolute_timeout"),
        ({"idle_timeout": 7200, "absolute_timeout": 3600}, "idle_timeout"),
        ({"touch_interval": 1800}, "touch_interval"),
        ({"touch_interval": -1}, "touch_interval"),
        ({"max_size": 1.5}, "max_size"),
        ({"max_size": 0}, "max_size"),
        ({"hash_secret": b"short"}, "hash_secret"),
        ({"hash_secret": "text"}, "hash_secret"),
        ({"clock": 5}, "clock"),
    ],
)
def test_a_bad_value_is_refused_by_name(options: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        SessionConfig(**options)


# -- the timeouts: one given alone, the others follow it --------------------------------------


def test_an_absolute_timeout_alone_is_accepted_and_the_idle_timeout_follows_it() -> None:
    config = SessionConfig(absolute_timeout=600)
    assert (config.idle_timeout, config.absolute_timeout, config.touch_interval) == (
        600.0,
        600.0,
        60.0,
    )
    assert SessionConfig(absolute_timeout=86400).idle_timeout == 1800.0


def test_an_idle_timeout_alone_is_accepted_and_the_absolute_timeout_follows_it() -> None:
    config = SessionConfig(idle_timeout=2 * 86400)
    assert (config.idle_timeout, config.absolute_timeout) == (172800.0, 172800.0)
    assert SessionConfig(idle_timeout=600).absolute_timeout == 43200.0


def test_a_short_timeout_alone_brings_the_touch_interval_below_the_idle_timeout() -> None:
    config = SessionConfig(absolute_timeout=30)
    assert (config.idle_timeout, config.touch_interval) == (30.0, 15.0)
    assert SessionConfig(idle_timeout=90).touch_interval == 45.0


def test_only_chosen_timeouts_that_contradict_are_refused() -> None:
    with pytest.raises(
        ConfigError, match=r"^idle_timeout \(7200.0\) must not exceed absolute_timeout \(3600.0\)$"
    ):
        SessionConfig(idle_timeout=7200, absolute_timeout=3600)
    with pytest.raises(ConfigError, match="touch_interval"):
        SessionConfig(absolute_timeout=600, touch_interval=600)  # the idle timeout follows: 600
    with pytest.raises(ConfigError, match="absolute_timeout must be positive"):
        SessionConfig(absolute_timeout=-1)  # named, not the idle timeout that would follow it


def test_the_timeouts_follow_however_the_config_is_built() -> None:
    assert SessionConfig.from_options(absolute_timeout=600).idle_timeout == 600.0
    followed = SessionConfig(absolute_timeout=600)
    assert dataclasses.replace(followed, absolute_timeout=7200).idle_timeout == 1800.0
    assert dataclasses.replace(followed, secure=False).idle_timeout == 600.0
    chosen = SessionConfig(idle_timeout=600, absolute_timeout=600)
    with pytest.raises(ConfigError, match="must not exceed"):
        dataclasses.replace(chosen, absolute_timeout=300)
    assert SessionConfig(absolute_timeout=600) == SessionConfig(
        idle_timeout=600, absolute_timeout=600
    )


def test_unknown_options_are_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="idle_timeuot"):
        SessionConfig.from_options(idle_timeuot=5)


def test_the_cookie_name_takes_the_strongest_prefix_browsers_allow() -> None:
    assert SessionConfig().cookie_key == "__Host-session"
    assert SessionConfig(path="/app").cookie_key == "__Secure-session"
    assert SessionConfig(domain="example.com").cookie_key == "__Secure-session"
    assert SessionConfig(secure=False).cookie_key == "session"
    assert SessionConfig(cookie_name="__Secure-sid").cookie_key == "__Secure-sid"
    assert SessionConfig(cookie_name="__Host-sid").cookie_key == "__Host-sid"


# -- the options are declared once: SessionConfig's fields, by group ---------------------------


def test_the_typed_options_are_the_configs_fields_group_by_group() -> None:
    from coatcheck import config

    assert sorted(config.SessionOptions.__annotations__) == sorted(config.option_names())
    typed = {
        "transport": config.TransportOptions,
        "cookie": config.CookieOptions,
        "timeouts": config.TimeoutOptions,
        "storage": config.StorageOptions,
        "hooks": config.HookOptions,
        "defences": config.DefenceOptions,
    }
    assert tuple(typed) == config.GROUPS
    for group, options in typed.items():
        assert sorted(options.__annotations__) == sorted(config.option_names(group)), group


def test_every_option_belongs_to_one_group() -> None:
    from coatcheck.config import GROUPS, option_names

    grouped = [name for group in GROUPS for name in option_names(group)]
    assert sorted(grouped) == sorted(option_names())
    with pytest.raises(ValueError, match="unknown option group"):
        option_names("cookies")


def test_each_integration_takes_every_option_it_does_not_set_by_its_own_means() -> None:
    from coatcheck.config import option_names
    from coatcheck.integrations import flask
    from coatcheck.integrations.django.config import DJANGO_OWNS, OPTIONS
    from coatcheck.integrations.starlette import STARLETTE_OWNS, CoatcheckOptions

    assert set(CoatcheckOptions.__annotations__) == set(option_names()) - set(STARLETTE_OWNS)
    flask_keys = set(flask.OPTION_KEYS)
    assert flask_keys == set(option_names()) - set(option_names("cookie"))
    assert all(key == f"COATCHECK_{name.upper()}" for name, key in flask.OPTION_KEYS.items())
    assert OPTIONS.isdisjoint(DJANGO_OWNS)
    assert OPTIONS.issubset(option_names())
