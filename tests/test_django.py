"""coatcheck as Django's session engine (``coatcheck.integrations.django``).

The core of this file is Django's own backend test mixin, ``SessionTestsMixin`` from
``tests/sessions_tests/tests.py`` of the installed Django's sdist, run unchanged against
coatcheck's ``SessionStore`` on the SQLite store and on the Redis store, sync and async tests
alike. Django's ``SessionMiddlewareTests`` run too, with coatcheck as ``SESSION_ENGINE``.

Runtime adaptation of the upstream file: its ``from .models import SessionStore as
CustomDatabaseSession`` (a custom database model of Django's test project, used only by
``CustomDatabaseSessionTests``, which is not run here) is replaced by a placeholder; nothing else.

Excluded upstream tests, with their reasons:

- ``SessionMiddlewareTests.test_empty_session_saved``: it reads the session back through
  ``django.contrib.sessions.models.Session`` (the database engine's table), which coatcheck does
  not use; ``test_an_emptied_session_stays_stored_with_its_key`` checks the same through the
  store.

Django is configured by hand (pytest-django is not used), once per process, by
tests/django_settings.py (shared with the integration conformance suite): ``settings.configure``
with an in-memory SQLite database for ``django.contrib.auth``'s users, then ``django.setup()``.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import types
import uuid
from datetime import timedelta
from io import StringIO
from typing import Any

import httpx
import pytest
import redis
from django.conf import settings

from tests.django_settings import configure
from tests.servers import serve_wsgi
from tests.services import REDIS_URL, require
from tests.test_concurrency import hammer
from tests.upstream import upstream_file

REDIS_PREFIX = f"coatcheck-django-test-{uuid.uuid4().hex[:12]}:"

configure()

from django.contrib import auth  # noqa: E402 - needs the settings above
from django.contrib.auth.models import User  # noqa: E402
from django.contrib.sessions.backends.base import UpdateError  # noqa: E402
from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.http import HttpRequest, HttpResponse, JsonResponse  # noqa: E402
from django.middleware.csrf import get_token  # noqa: E402
from django.test import Client, SimpleTestCase, TestCase, override_settings  # noqa: E402
from django.urls import path  # noqa: E402

from coatcheck.codec import decode  # noqa: E402
from coatcheck.encryption import is_sealed  # noqa: E402
from coatcheck.events import SessionEvent  # noqa: E402
from coatcheck.ids import is_well_formed, store_key  # noqa: E402
from coatcheck.integrations.django import SessionMiddleware, SessionStore  # noqa: E402
from coatcheck.integrations.django.config import backing  # noqa: E402
from coatcheck.limits import is_counter  # noqa: E402
from coatcheck.stores import Iterable, Record  # noqa: E402
from coatcheck.testing import FakeClock  # noqa: E402

call_command("migrate", verbosity=0, run_syncdb=True)

CUSTOM_MODEL_IMPORT = "from .models import SessionStore as CustomDatabaseSession"


def _upstream() -> types.ModuleType:
    """Django's tests/sessions_tests/tests.py of the installed version, as a module."""
    source = upstream_file("django", "tests/sessions_tests/tests.py")
    assert CUSTOM_MODEL_IMPORT in source, "the upstream file changed: review the adaptation"
    adapted = source.replace(CUSTOM_MODEL_IMPORT, "CustomDatabaseSession = None")
    module = types.ModuleType("django_upstream_sessions_tests")
    exec(compile(adapted, "django:tests/sessions_tests/tests.py", "exec"), module.__dict__)
    return module


upstream = _upstream()


def stored_records() -> list[Record]:
    store = backing().store
    assert isinstance(store, Iterable)
    return list(store.iter_records())


def drop_redis_keys() -> None:
    """Delete what the tests left in Redis under ``REDIS_PREFIX``."""
    client = redis.Redis.from_url(REDIS_URL)
    for name in client.scan_iter(match=f"{REDIS_PREFIX}*", count=500):
        client.delete(name)
    client.close()


# -- Django's own tests ------------------------------------------------------------------------


class TestDjangoBackendMixinOnSQLite(upstream.SessionTestsMixin, SimpleTestCase):  # type: ignore[misc,name-defined]
    """Every test of Django's SessionTestsMixin, on coatcheck's SQLite store."""

    backend = SessionStore


@override_settings(COATCHECK_STORE_URL=f"{REDIS_URL}?prefix={REDIS_PREFIX}")
class TestDjangoBackendMixinOnRedis(upstream.SessionTestsMixin, SimpleTestCase):  # type: ignore[misc,name-defined]
    """Every test of Django's SessionTestsMixin, on coatcheck's Redis store."""

    backend = SessionStore

    @classmethod
    def setUpClass(cls) -> None:
        require("Redis", "127.0.0.1", 6379)
        super().setUpClass()

    @classmethod
    def tearDownClass(cls) -> None:
        super().tearDownClass()
        drop_redis_keys()

    def test_sessions_live_in_redis_under_the_prefix(self) -> None:
        self.session["where"] = "redis"
        self.session.save()
        client = redis.Redis.from_url(REDIS_URL)
        key = store_key(self.session.session_key, backing().config.hash_secret)
        assert client.exists(f"{REDIS_PREFIX}s:{key}") == 1
        client.close()


class TestDjangoMiddlewareWithCoatcheck(upstream.SessionMiddlewareTests):  # type: ignore[misc,name-defined]
    """Django's SessionMiddlewareTests with coatcheck as SESSION_ENGINE (one excluded above).

    ``test_session_update_error_redirect`` builds Django's database engine by name; it runs,
    and ``test_a_save_after_a_concurrent_logout_is_interrupted_not_resurrected`` checks the
    same with coatcheck.
    """

    def test_empty_session_saved(self) -> None:
        pytest.skip("reads django.contrib.sessions' database table (see the module docstring)")


# -- what coatcheck adds or guarantees ---------------------------------------------------------


class TestStorage(SimpleTestCase):  # type: ignore[misc]
    def test_ids_are_coatcheck_ids_and_stored_only_hashed_with_a_secret_from_secret_key(
        self,
    ) -> None:
        session = SessionStore()
        session["cart"] = ["apple"]
        session.save()
        session_id = session.session_key
        assert is_well_formed(session_id)
        records = {record.key: record for record in stored_records()}
        assert session_id not in str(list(records))
        assert store_key(session_id) not in records  # not a plain SHA-256 either
        record = records[store_key(session_id, backing().config.hash_secret)]
        assert session_id.encode() not in record.data
        assert decode(record.data)[0] == {"cart": ["apple"]}
        session.delete()

    def test_an_unknown_or_malformed_cookie_loads_empty_and_is_never_adopted(self) -> None:
        for cookie in ("x" * 43, "definitely-not-an-id", SessionStore()._get_new_session_key()):
            session = SessionStore(cookie)
            assert session.get("anything") is None
            assert session.session_key is None
            session["a"] = 1
            session.save()
            assert session.session_key != cookie
            session.delete()

    def test_values_must_be_json_whatever_session_serializer_says(self) -> None:
        session = SessionStore()
        session["when"] = object()
        with pytest.raises(TypeError, match="when"):
            session.save()

    def test_the_logged_in_user_is_the_records_user(self) -> None:
        session = SessionStore()
        session[auth.SESSION_KEY] = "42"
        session.save()
        key = store_key(session.session_key, backing().config.hash_secret)
        assert next(r for r in stored_records() if r.key == key).user_id == "42"
        session.delete()

    def test_cycle_key_moves_the_data_to_a_new_id_and_deletes_the_old_record(self) -> None:
        session = SessionStore()
        session["a"] = "b"
        session.save()
        old_id = session.session_key
        session.cycle_key()
        assert session.session_key != old_id
        assert is_well_formed(session.session_key)
        assert not SessionStore().exists(old_id)
        assert SessionStore(session.session_key)["a"] == "b"
        assert session.modified  # so SessionMiddleware sends the new cookie
        session.delete()

    def test_a_save_after_a_concurrent_logout_is_interrupted_not_resurrected(self) -> None:
        first = SessionStore()
        first["a"] = 1
        first.save()
        SessionStore(first.session_key).flush()
        first["a"] = 2
        with pytest.raises(UpdateError):
            first.save()
        assert not first.exists(first.session_key)

    def test_a_concurrent_writers_key_survives_a_save(self) -> None:
        first = SessionStore()
        first["n"] = 1
        first.save()
        first = SessionStore(first.session_key)
        assert first["n"] == 1  # loaded: the baseline its changes are measured against
        second = SessionStore(first.session_key)
        second["theirs"] = "kept"
        second.save()
        first["mine"] = "kept too"  # first's version is stale: it replays only its own key
        first.save()
        assert dict(SessionStore(first.session_key).items()) == {
            "n": 1,
            "theirs": "kept",
            "mine": "kept too",
        }
        assert first["theirs"] == "kept"  # the request sees what it wrote
        first["again"] = True  # and a second save from it keeps the other writer's key
        first.save()
        assert SessionStore(first.session_key)["theirs"] == "kept"
        first.delete()

    def test_a_key_both_writers_changed_keeps_the_later_saves_value(self) -> None:
        first = SessionStore()
        first["n"] = 1
        first.save()
        second = SessionStore(first.session_key)
        second["n"] = 2
        second.save()
        first["n"] = 3  # changed here too: this request's value is replayed
        first.save()
        assert SessionStore(first.session_key)["n"] == 3
        first.delete()

    def test_a_key_this_request_deleted_stays_deleted(self) -> None:
        first = SessionStore()
        first.update({"gone": 1, "kept": 2})
        first.save()
        first = SessionStore(first.session_key)
        assert first["gone"] == 1
        second = SessionStore(first.session_key)
        second["theirs"] = 3
        second.save()
        del first["gone"]
        first.save()
        assert dict(SessionStore(first.session_key).items()) == {"kept": 2, "theirs": 3}
        first.delete()

    def test_a_key_only_the_other_writer_deleted_stays_deleted(self) -> None:
        first = SessionStore()
        first.update({"theirs": 1, "mine": 1})
        first.save()
        first = SessionStore(first.session_key)
        assert first["theirs"] == 1
        second = SessionStore(first.session_key)
        del second["theirs"]
        second.save()
        first["mine"] = 2
        first.save()
        assert dict(SessionStore(first.session_key).items()) == {"mine": 2}
        first.delete()

    def test_after_clear_this_requests_view_wins(self) -> None:
        first = SessionStore()
        first.update({"a": 1, "b": 2})
        first.save()
        first = SessionStore(first.session_key)
        assert first["a"] == 1
        second = SessionStore(first.session_key)
        second["theirs"] = 3
        second.save()
        first.clear()
        first["c"] = 4
        first.save()
        assert dict(SessionStore(first.session_key).items()) == {"c": 4}
        first.delete()

    def test_a_save_after_a_concurrent_write_then_logout_is_not_resurrected(self) -> None:
        first = SessionStore()
        first["a"] = 1
        first.save()
        second = SessionStore(first.session_key)
        second["b"] = 2
        second.save()
        second.flush()
        first["a"] = 2
        with pytest.raises(UpdateError):
            first.save()
        assert not first.exists(first.session_key)

    async def test_asave_replays_its_own_keys_too(self) -> None:
        first = SessionStore()
        await first.aset("n", 1)
        await first.asave()
        first = SessionStore(first.session_key)
        assert await first.aget("n") == 1
        second = SessionStore(first.session_key)
        await second.aset("theirs", "kept")
        await second.asave()
        await first.aset("mine", "kept too")
        await first.apop("n")
        await first.asave()
        again = SessionStore(first.session_key)
        assert dict(await again.aitems()) == {"theirs": "kept", "mine": "kept too"}
        await first.adelete()

    def test_an_emptied_session_stays_stored_with_its_key(self) -> None:
        session = SessionStore()
        session["foo"] = "bar"
        session.save()
        del session["foo"]
        session.save()
        again = SessionStore(session.session_key)
        assert dict(again.items()) == {}
        assert again.session_key == session.session_key
        session.delete()


class TestOptions(SimpleTestCase):  # type: ignore[misc]
    def test_absolute_timeout_ends_a_session_however_active(self) -> None:
        clock = FakeClock(1_000_000.0)
        with self.settings(COATCHECK_SESSION={"clock": clock, "absolute_timeout": 300}):
            session = SessionStore()
            session["a"] = 1
            session.save()
            clock.advance(200)
            session["a"] = 2
            session.save()  # activity: the expiry slides, but not past the deadline
            clock.advance(101)
            assert SessionStore(session.session_key).get("a") is None

    def test_cycle_key_restarts_the_absolute_timeout(self) -> None:
        clock = FakeClock(1_000_000.0)
        with self.settings(COATCHECK_SESSION={"clock": clock, "absolute_timeout": 300}):
            session = SessionStore()
            session["a"] = 1
            session.save()
            clock.advance(200)
            session.cycle_key()  # what login does
            clock.advance(200)
            assert SessionStore(session.session_key).get("a") == 1

    def test_cookie_options_are_refused_with_the_django_setting_to_use(self) -> None:
        refused: list[tuple[dict[str, Any], str]] = [
            ({"COATCHECK_SESSION": {"cookie_name": "sid"}}, "SESSION_COOKIE_NAME"),
            ({"COATCHECK_SESSION": {"csrf": "token"}}, "CsrfViewMiddleware"),
            ({"COATCHECK_SESSION": {"trusted_origins": []}}, "CSRF_TRUSTED_ORIGINS"),
            ({"COATCHECK_SESSION": {"hash_secret": b"short"}}, "hash_secret"),
            ({"COATCHECK_SESSION": {"absolute_timeout": -1}}, "absolute_timeout"),
            ({"COATCHECK_STORE_URL": "nosuch://x"}, "COATCHECK_STORE_URL"),
        ]
        for overrides, named in refused:
            with self.settings(**overrides), pytest.raises(ImproperlyConfigured, match=named):
                backing()

    def test_encryption_keys_seal_the_data_at_rest_and_rotate(self) -> None:
        old, new = bytes(range(32)), bytes(range(1, 33))
        with self.settings(COATCHECK_SESSION={"encryption_keys": [old]}):
            session = SessionStore()
            session["card"] = "4111-1111"
            session.save()
            session_key = session.session_key
            key = store_key(session_key, backing().config.hash_secret)
            (record,) = [r for r in stored_records() if r.key == key]
            assert is_sealed(record.data)
            assert b"4111" not in record.data
        with self.settings(COATCHECK_SESSION={"encryption_keys": [new, old]}):
            assert SessionStore(session_key)["card"] == "4111-1111"  # the old key still opens
        with self.settings(COATCHECK_SESSION={"encryption_keys": [new]}):
            assert SessionStore(session_key).get("card") is None  # no key opens it: discarded
        with self.settings(COATCHECK_SESSION={"encryption_keys": [old]}):
            SessionStore(session_key).delete()

    def test_lifecycle_steps_are_audit_events_with_fingerprints_only(self) -> None:
        events: list[SessionEvent] = []
        clock = FakeClock(1_800_000_000.0)
        with self.settings(COATCHECK_SESSION={"on_event": events.append, "clock": clock}):
            session = SessionStore()
            session["_auth_user_id"] = "7"
            session.save()
            first = session.session_key
            session.cycle_key()
            SessionStore(first).load()  # the old ID names nothing now
            session.delete()
            SessionStore("x" * 43).load()
        kinds = [(e.kind, e.reason, e.user_id) for e in events]
        assert kinds == [
            ("created", None, "7"),
            ("regenerated", None, "7"),
            ("rejected", "unknown", None),
            ("logged_out", None, "7"),
            ("rejected", "malformed", None),
        ]
        assert all(first not in repr(e) for e in events)

    def test_an_explicit_hash_secret_is_used(self) -> None:
        secret = b"0123456789abcdef0123456789abcdef"
        with self.settings(COATCHECK_SESSION={"hash_secret": secret}):
            session = SessionStore()
            session["a"] = 1
            session.save()
            keys = {record.key for record in stored_records()}
            assert store_key(session.session_key, secret) in keys
            session.delete()


class TestPurge(SimpleTestCase):  # type: ignore[misc]
    def _expired_session(self) -> str:
        session = SessionStore()
        session["old"] = True
        session.set_expiry(-timedelta(seconds=10))
        session.save()
        return store_key(session.session_key, backing().config.hash_secret)

    def test_coatcheck_purge_deletes_expired_sessions_and_says_how_many(self) -> None:
        SessionStore.clear_expired()
        key = self._expired_session()
        live = SessionStore()
        live["fresh"] = True
        live.save()
        output = StringIO()
        call_command("coatcheck_purge", stdout=output)
        assert output.getvalue().strip() == "Purged 1 expired session(s)."
        keys = {record.key for record in stored_records()}
        assert key not in keys
        assert live.exists(live.session_key)
        live.delete()

    def test_djangos_clearsessions_purges_through_clear_expired(self) -> None:
        key = self._expired_session()
        call_command("clearsessions")
        assert key not in {record.key for record in stored_records()}

    async def test_aclear_expired_purges_too(self) -> None:
        session = SessionStore()
        await session.aset("old", True)
        await session.aset_expiry(-timedelta(seconds=10))
        await session.asave()
        assert await SessionStore.aclear_expired() >= 1


class TestPurgeFromTheApp(SimpleTestCase):  # type: ignore[misc]
    """``COATCHECK_SESSION["purge_interval"]``: coatcheck's middleware purges expired sessions
    after a response, once per interval, up to ``purge_batch`` of them."""

    def test_requests_purge_expired_sessions_a_batch_per_interval(self) -> None:
        clock, events = FakeClock(1_800_000_000.0), list[SessionEvent]()
        options = {
            "clock": clock,
            "on_event": events.append,
            "purge_interval": 300,
            "purge_batch": 2,
        }
        scratch = tempfile.mkdtemp(prefix="coatcheck-django-purge-")
        self.addCleanup(shutil.rmtree, scratch, ignore_errors=True)
        url = f"sqlite:///{scratch}/sessions.db"
        with self.settings(COATCHECK_STORE_URL=url, COATCHECK_SESSION=options):
            for n in range(5):
                self.client.cookies.clear()
                assert self.client.get(f"/theme?theme={n}").content == b"set"

            def purged() -> list[int]:
                return [event.count for event in events if event.kind == "purged"]

            def left() -> int:
                return len([r for r in stored_records() if not is_counter(r)])

            assert (purged(), left()) == ([0], 5)
            clock.advance(settings.SESSION_COOKIE_AGE + 1)  # all five expired
            self.client.cookies.clear()
            assert self.client.get("/whoami").status_code == 200
            assert (purged(), left()) == ([0, 2], 3)
            self.client.get("/whoami")  # within the interval: no purge
            assert (purged(), left()) == ([0, 2], 3)
            clock.advance(300)
            self.client.get("/whoami")
            assert (purged(), left()) == ([0, 2, 2], 1)

    def test_djangos_own_session_middleware_does_not_purge(self) -> None:
        clock, events = FakeClock(1_800_000_000.0), list[SessionEvent]()
        options = {"clock": clock, "on_event": events.append, "purge_interval": 300}
        own = ["django.contrib.sessions.middleware.SessionMiddleware"]
        with self.settings(MIDDLEWARE=own, COATCHECK_SESSION=options):
            assert self.client.get("/theme?theme=dark").content == b"set"
            clock.advance(settings.SESSION_COOKIE_AGE + 1)
            self.client.get("/theme?theme=light")
        assert [event.kind for event in events] == ["created", "expired", "created"]


# -- end to end through Django's request handling ----------------------------------------------


def login_view(request: HttpRequest) -> HttpResponse:
    user = auth.authenticate(
        request, username=request.POST["username"], password=request.POST["password"]
    )
    if user is None:
        return HttpResponse("no", status=403)
    auth.login(request, user)
    return HttpResponse("ok")


def logout_view(request: HttpRequest) -> HttpResponse:
    auth.logout(request)
    return HttpResponse("bye")


def whoami_view(request: HttpRequest) -> HttpResponse:
    body: dict[str, Any] = {"user": request.user.get_username() or None}
    body["theme"] = request.session.get("theme")
    return JsonResponse(body)


def theme_view(request: HttpRequest) -> HttpResponse:
    request.session["theme"] = request.GET["theme"]
    return HttpResponse("set")


async def async_whoami_view(request: HttpRequest) -> HttpResponse:
    user = await request.auser()
    return JsonResponse({"user": user.get_username() or None})


def csrf_form_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse(get_token(request))  # what {% csrf_token %} puts in a form


def race_write_view(request: HttpRequest) -> HttpResponse:
    """Load the session, hold it ``delay`` seconds, then set the query's other parameters."""
    params = request.GET.dict()
    delay = float(params.pop("delay", 0))
    request.session.get("anything")  # loaded now: its version is the one held
    time.sleep(delay)
    request.session.update(params)
    return JsonResponse(dict(request.session.items()))


urlpatterns = [
    path("login", login_view),
    path("logout", logout_view),
    path("whoami", whoami_view),
    path("theme", theme_view),
    path("async-whoami", async_whoami_view),
    path("csrf-form", csrf_form_view),
    path("write", race_write_view),
]


class TestLoginThroughDjangoAuth(TestCase):  # type: ignore[misc]
    """``django.contrib.auth.login`` and ``logout`` with coatcheck as the session engine."""

    @classmethod
    def setUpTestData(cls) -> None:
        User.objects.create_user("ada", password="lovelace")

    def cookie(self) -> str:
        value: str = self.client.cookies[settings.SESSION_COOKIE_NAME].value
        return value

    def test_login_regenerates_the_id_and_keeps_the_data(self) -> None:
        assert self.client.get("/theme?theme=dark").content == b"set"
        before = self.cookie()
        response = self.client.post("/login", {"username": "ada", "password": "lovelace"})
        assert response.content == b"ok"
        after = self.cookie()
        assert after != before
        assert is_well_formed(after)
        assert not SessionStore().exists(before)
        assert self.client.get("/whoami").json() == {"user": "ada", "theme": "dark"}

    def test_a_replayed_pre_login_cookie_is_anonymous(self) -> None:
        self.client.get("/theme?theme=dark")
        before = self.cookie()
        self.client.post("/login", {"username": "ada", "password": "lovelace"})
        self.client.cookies[settings.SESSION_COOKIE_NAME] = before
        assert self.client.get("/whoami").json() == {"user": None, "theme": None}

    def test_logout_makes_the_old_cookie_anonymous(self) -> None:
        self.client.post("/login", {"username": "ada", "password": "lovelace"})
        logged_in = self.cookie()
        self.client.get("/logout")
        self.client.cookies[settings.SESSION_COOKIE_NAME] = logged_in
        assert self.client.get("/whoami").json() == {"user": None, "theme": None}

    def test_an_async_view_sees_the_user(self) -> None:
        self.client.post("/login", {"username": "ada", "password": "lovelace"})
        assert self.client.get("/async-whoami").json() == {"user": "ada"}


class TestAsyncLogin(TestCase):  # type: ignore[misc]
    async def test_alogin_regenerates_through_acycle_key(self) -> None:
        user = await User.objects.acreate_user("grace", password="hopper")
        request = HttpRequest()
        request.session = SessionStore()
        await request.session.aset("theme", "light")
        await request.session.asave()
        before = request.session.session_key
        await auth.alogin(request, user)
        assert request.session.session_key != before
        assert not await SessionStore().aexists(before)
        await request.session.asave()
        again = SessionStore(request.session.session_key)
        assert await again.aget(auth.SESSION_KEY) == str(user.pk)
        assert await again.aget("theme") == "light"


class TestClientBinding(SimpleTestCase):  # type: ignore[misc]
    """With ``bind_to``, a session belongs to the client that started it: the cookie replayed by
    another client (here, another user agent) finds nothing, or is flagged."""

    def started_by(self, user_agent: str) -> str:
        self.client.get("/theme?theme=dark", HTTP_USER_AGENT=user_agent)
        value: str = self.client.cookies[settings.SESSION_COOKIE_NAME].value
        return value

    def test_another_client_with_the_cookie_finds_no_session(self) -> None:
        events: list[SessionEvent] = []
        options = {"bind_to": ["user_agent"], "on_event": events.append}
        with self.settings(COATCHECK_SESSION=options):
            sid = self.started_by("phone")
            assert self.client.get("/whoami", HTTP_USER_AGENT="phone").json()["theme"] == "dark"
            stolen = self.client_class()
            stolen.cookies[settings.SESSION_COOKIE_NAME] = sid
            assert stolen.get("/whoami", HTTP_USER_AGENT="laptop").json()["theme"] is None
            assert ("rejected", "binding") in [(e.kind, e.reason) for e in events]
            # The owner's session is untouched.
            assert self.client.get("/whoami", HTTP_USER_AGENT="phone").json()["theme"] == "dark"

    def test_with_the_flag_action_the_session_is_served_and_flagged(self) -> None:
        options = {"bind_to": ["user_agent"], "binding_action": "flag"}
        with self.settings(COATCHECK_SESSION=options):
            sid = self.started_by("phone")
            request = HttpRequest()
            request.META.update(HTTP_USER_AGENT="laptop", REMOTE_ADDR="127.0.0.1")
            request.COOKIES[settings.SESSION_COOKIE_NAME] = sid
            middleware = SessionMiddleware(lambda request: HttpResponse())
            assert middleware.process_request(request) is None
            assert request.session["theme"] == "dark"
            assert request.session.flagged

    def test_a_session_store_used_outside_a_request_binds_nothing(self) -> None:
        with self.settings(COATCHECK_SESSION={"bind_to": ["user_agent"]}):
            session = SessionStore()
            session["a"] = 1
            session.save()
            assert SessionStore(session.session_key)["a"] == 1


def django_write(client: httpx.Client, sid: str, n: int) -> httpx.Response:
    """Add key ``k<n>`` to the session through Django, holding the loaded version 50 ms."""
    headers = {"Cookie": f"{settings.SESSION_COOKIE_NAME}={sid}"} if sid else {}
    return client.get("/write", params={"delay": "0.05", f"k{n}": str(n)}, headers=headers)


@override_settings(ALLOWED_HOSTS=["127.0.0.1"])
class TestRacingRequestsOverARealServer(SimpleTestCase):  # type: ignore[misc]
    """50 concurrent requests through Django's WSGI handler on a threading server, each setting
    its own key on one session, all kept (``hammer`` from the core's concurrency tests). On
    SQLite, the integration conformance suite races Django as every integration."""

    def test_on_redis_none_is_lost(self) -> None:
        require("Redis", "127.0.0.1", 6379)
        try:
            redis_store = self.settings(COATCHECK_STORE_URL=f"{REDIS_URL}?prefix={REDIS_PREFIX}")
            with redis_store, serve_wsgi(WSGIHandler()) as base:
                hammer(base, django_write)
        finally:
            drop_redis_keys()


@override_settings(
    CSRF_USE_SESSIONS=True,
    MIDDLEWARE=[
        "coatcheck.integrations.django.SessionMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
    ],
)
class TestCsrfInTheSession(TestCase):  # type: ignore[misc]
    """Django's ``CsrfViewMiddleware`` with ``CSRF_USE_SESSIONS = True`` (what
    docs/integrations/django.md recommends): the CSRF secret lives in the coatcheck session,
    unsafe requests without its token are refused, and ``auth.login`` rotates it."""

    @classmethod
    def setUpTestData(cls) -> None:
        User.objects.create_user("ada", password="lovelace")

    def setUp(self) -> None:
        self.client = Client(enforce_csrf_checks=True)  # Django's test client skips it otherwise

    def token(self) -> str:
        response = self.client.get("/csrf-form")
        assert "csrftoken" not in response.cookies  # no CSRF cookie: the secret is server-side
        return str(response.content.decode())

    def test_an_unsafe_request_needs_the_token_in_the_field_or_the_header(self) -> None:
        self.token()  # the session now holds the CSRF secret
        assert self.client.post("/logout").status_code == 403
        assert self.client.post("/logout", {"csrfmiddlewaretoken": "x" * 64}).status_code == 403
        assert self.client.post("/logout", HTTP_X_CSRFTOKEN="").status_code == 403
        token = self.token()
        assert self.client.post("/logout", {"csrfmiddlewaretoken": token}).content == b"bye"
        token = self.token()  # logout ended the session and its secret: a new one
        assert self.client.post("/logout", HTTP_X_CSRFTOKEN=token).content == b"bye"

    def test_an_origin_with_another_scheme_is_refused(self) -> None:
        """Django's own Origin check (coatcheck leaves CSRF to it) compares the scheme too: the
        plain-http test server is another origin than its own host over https."""
        token = self.token()
        https = {"HTTP_X_CSRFTOKEN": token, "HTTP_ORIGIN": "https://testserver"}
        assert self.client.post("/logout", **https).status_code == 403
        http = {"HTTP_X_CSRFTOKEN": token, "HTTP_ORIGIN": "http://testserver"}
        assert self.client.post("/logout", **http).content == b"bye"

    def test_the_secret_is_kept_in_coatchecks_store(self) -> None:
        self.token()
        session_id = self.client.cookies[settings.SESSION_COOKIE_NAME].value
        key = store_key(session_id, backing().config.hash_secret)
        record = next(record for record in stored_records() if record.key == key)
        assert "_csrftoken" in decode(record.data)[0]

    def test_login_rotates_the_token(self) -> None:
        before = self.token()
        credentials = {"username": "ada", "password": "lovelace", "csrfmiddlewaretoken": before}
        assert self.client.post("/login", credentials).content == b"ok"
        assert self.client.post("/logout", HTTP_X_CSRFTOKEN=before).status_code == 403
        after = self.token()
        assert self.client.post("/logout", HTTP_X_CSRFTOKEN=after).content == b"bye"


@override_settings(COATCHECK_STORE_URL=f"{REDIS_URL}?prefix={REDIS_PREFIX}")
class TestAlteredRecordsAreRejected(TestCase):  # type: ignore[misc]
    """With encryption at rest, a store writer who sets a session's user column (Redis field
    ``u``) to another user gets a fresh, anonymous session and a ``rejected`` event."""

    @classmethod
    def setUpTestData(cls) -> None:
        cls.ada = User.objects.create_user("ada", password="lovelace")
        cls.mallory = User.objects.create_user("mallory", password="mallory")

    def test_a_user_column_set_to_another_user_is_rejected(self) -> None:
        require("Redis", "127.0.0.1", 6379)
        events: list[SessionEvent] = []
        keys = [bytes(range(32))]
        with self.settings(COATCHECK_SESSION={"encryption_keys": keys, "on_event": events.append}):
            self.client.post("/login", {"username": "mallory", "password": "mallory"})
            assert self.client.get("/whoami").json()["user"] == "mallory"
            session_id = self.client.cookies[settings.SESSION_COOKIE_NAME].value
            key = store_key(session_id, backing().config.hash_secret)
            client = redis.Redis.from_url(REDIS_URL)
            name = f"{REDIS_PREFIX}s:{key}"
            assert client.hget(name, "u") == str(self.mallory.pk).encode()
            client.hset(name, "u", str(self.ada.pk))
            client.close()
            response = self.client.get("/whoami")
            assert response.status_code == 200
            assert response.json() == {"user": None, "theme": None}
        assert [(e.kind, e.reason) for e in events if e.kind == "rejected"] == [
            ("rejected", "tampered")
        ]
