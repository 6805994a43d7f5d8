"""coatcheck.integrations.flask: what a Flask application (and Flask-Login) can rely on."""

from __future__ import annotations

import re
import shutil
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import flask
import flask_login
import pytest
from flask.testing import FlaskClient
from markupsafe import Markup

from coatcheck.config import ConfigError
from coatcheck.integrations.flask import (
    CoatcheckSessionInterface,
    Session,
    current_session,
)
from coatcheck.stores import AsyncStoreAdapter, FileStore, MemoryStore, SQLiteStore, Store
from coatcheck.testing import CountingStore, FakeClock, key_of

from .servers import free_port


class User(flask_login.UserMixin):  # type: ignore[misc]
    def __init__(self, user_id: str) -> None:
        self.id = user_id


def make_app(store: Store | None = None, **config: Any) -> flask.Flask:
    """An app with coatcheck and Flask-Login, and routes that read, write, log in and out."""
    app = flask.Flask(__name__)
    app.config.update(TESTING=True, SECRET_KEY="for Flask-Login's remember cookie", **config)
    if store is not None:
        app.config["COATCHECK_STORE"] = store
    Session(app)
    login_manager = flask_login.LoginManager(app)
    login_manager.user_loader(User)

    @app.get("/")
    def nothing() -> str:
        return "hello"

    @app.get("/read")
    def read() -> dict[str, Any]:
        user = flask_login.current_user
        return {"data": dict(flask.session), "user": user.get_id() if user else None}

    @app.get("/write/<key>/<value>")
    def write(key: str, value: str) -> str:
        flask.session[key] = value
        return "ok"

    @app.get("/login/<name>")
    def login(name: str) -> str:
        flask_login.login_user(User(name), remember=flask.request.args.get("remember") == "1")
        return "in"

    @app.get("/logout")
    def logout() -> str:
        flask_login.logout_user()
        return "out"

    return app


def read(client: FlaskClient) -> dict[str, Any]:
    """What ``GET /read`` shows: the session's data and Flask-Login's user."""
    seen: dict[str, Any] = client.get("/read").get_json()
    return seen


def cookie_value(response: Any, name: str = "session") -> str:
    for header in response.headers.getlist("Set-Cookie"):
        if header.startswith(f"{name}="):
            return str(header.split(";", 1)[0].split("=", 1)[1])
    raise AssertionError(f"no {name} cookie in {response.headers}")


@pytest.fixture
def store() -> CountingStore:
    return CountingStore(MemoryStore())


@pytest.fixture
def app(store: CountingStore) -> flask.Flask:
    return make_app(store)


class TestStorage:
    def test_an_anonymous_visit_sets_no_cookie_and_calls_no_store(
        self, app: flask.Flask, store: CountingStore
    ) -> None:
        response = app.test_client().get("/read")
        assert response.json == {"data": {}, "user": None}
        assert "Set-Cookie" not in response.headers
        assert store.calls == {}

    def test_the_data_stays_on_the_server_and_the_cookie_holds_only_an_id(
        self, app: flask.Flask, store: CountingStore
    ) -> None:
        client = app.test_client()
        session_id = cookie_value(client.get("/write/colour/blue"))
        assert "blue" not in session_id
        assert store.inner.load(key_of(session_id)) is not None
        assert read(client)["data"] == {"colour": "blue"}

    def test_a_read_only_request_makes_one_store_call(
        self, app: flask.Flask, store: CountingStore
    ) -> None:
        client = app.test_client()
        client.get("/write/a/1")
        client.get("/read")  # Flask-Login's session protection writes _fresh=False once
        store.reset()
        client.get("/read")
        assert store.calls == {"load": 1}

    def test_values_come_back_as_flask_s_own_session_gives_them(self, store: Store) -> None:
        """Flask's tagged JSON: tuples, bytes, Markup, UUIDs, datetimes, tag-like dicts."""
        app = make_app(store)
        when = datetime.now(timezone.utc).replace(microsecond=0)
        the_uuid = uuid.uuid4()
        values = {
            "t": (1, 2, 3),
            "b": b"\xff",
            "m": Markup("<html>"),
            "u": the_uuid,
            "d": when,
            "nested": {"list": [(1, "a")], " t": "not-a-tuple"},
        }

        @app.get("/special")
        def special() -> str:
            flask.session.update(values)
            return ""

        @app.get("/check")
        def check() -> str:
            assert dict(flask.session) == values
            assert type(flask.session["m"]) is Markup
            return "same"

        client = app.test_client()
        client.get("/special")
        assert client.get("/check").text == "same"

    def test_a_change_inside_a_value_read_in_the_request_is_stored(self, app: flask.Flask) -> None:
        """Unlike Flask's cookie session, no ``session.modified = True`` is needed."""

        @app.get("/add/<item>")
        def add(item: str) -> str:
            flask.session.setdefault("cart", []).append((item, 1))
            return ""

        client = app.test_client()
        client.get("/add/apple")
        client.get("/add/pear")
        assert read(client)["data"] == {"cart": [["apple", 1], ["pear", 1]]}

    def test_emptying_the_session_destroys_it_and_expires_the_cookie(
        self, app: flask.Flask, store: CountingStore
    ) -> None:
        @app.get("/forget")
        def forget() -> str:
            flask.session.pop("a")
            return ""

        client = app.test_client()
        session_id = cookie_value(client.get("/write/a/1"))
        response = client.get("/forget")
        assert cookie_value(response) == ""
        assert store.inner.load(key_of(session_id)) is None


class TestCookie:
    def test_sessions_are_permanent_by_default_as_with_flask_session(
        self, app: flask.Flask
    ) -> None:
        header = app.test_client().get("/write/a/1").headers["Set-Cookie"]
        assert "Max-Age=2678400" in header  # Flask's PERMANENT_SESSION_LIFETIME, 31 days
        assert "Expires=" in header
        assert "HttpOnly" in header

    def test_session_permanent_false_gives_a_browser_session_cookie(self) -> None:
        app = make_app(MemoryStore(), SESSION_PERMANENT=False)
        header = app.test_client().get("/write/a/1").headers["Set-Cookie"]
        assert "Max-Age" not in header
        assert "Expires" not in header

    def test_flask_s_cookie_settings_are_followed(self) -> None:
        app = make_app(
            MemoryStore(),
            SESSION_COOKIE_NAME="__Host-sid",
            SESSION_COOKIE_SECURE=True,
            SESSION_COOKIE_SAMESITE="Strict",
            SESSION_COOKIE_PATH="/",
        )
        client = app.test_client()
        response = client.get("https://example.test/write/a/1")
        header = response.headers["Set-Cookie"]
        assert header.startswith("__Host-sid=")
        assert "Secure" in header
        assert "SameSite=Strict" in header
        response = client.get("https://example.test/read")
        assert response.get_json()["data"] == {"a": "1"}

    def test_changing_permanent_gives_a_new_cookie_with_the_new_lifetime(
        self, app: flask.Flask
    ) -> None:
        @app.get("/transient")
        def transient() -> str:
            flask.session.permanent = False
            return ""

        client = app.test_client()
        before = cookie_value(client.get("/write/a/1"))
        response = client.get("/transient")
        assert cookie_value(response) != before
        assert "Max-Age" not in response.headers["Set-Cookie"]
        assert read(client)["data"] == {"a": "1", "_permanent": False}

    def test_setting_permanent_to_its_default_creates_no_session(
        self, app: flask.Flask, store: CountingStore
    ) -> None:
        @app.get("/permanent")
        def permanent() -> str:
            flask.session.permanent = True
            return ""

        response = app.test_client().get("/permanent")
        assert "Set-Cookie" not in response.headers
        assert store.calls == {}

    def test_without_refresh_each_request_a_read_sends_no_cookie(self) -> None:
        app = make_app(MemoryStore(), SESSION_REFRESH_EACH_REQUEST=False)
        client = app.test_client()
        client.get("/write/a/1")
        client.get("/read")  # Flask-Login's session protection writes _fresh=False once
        assert "Set-Cookie" not in client.get("/read").headers

    def test_an_unknown_session_id_is_not_adopted(self, app: flask.Flask) -> None:
        client = app.test_client()
        client.set_cookie("session", "A" * 43)
        response = client.get("/write/a/1")
        assert cookie_value(response) not in ("", "A" * 43)


class TestFlaskLogin:
    def test_login_user_gives_the_session_a_new_id_and_keeps_its_data(
        self, app: flask.Flask, store: CountingStore
    ) -> None:
        client = app.test_client()
        anonymous = cookie_value(client.get("/write/cart/apple"))
        logged_in = cookie_value(client.get("/login/alice"))
        assert logged_in != anonymous
        assert store.inner.load(key_of(anonymous)) is None
        record = store.inner.load(key_of(logged_in))
        assert record is not None
        assert record.user_id == "alice"
        seen = read(client)
        assert seen["user"] == "alice"
        assert seen["data"]["cart"] == "apple"

    def test_the_old_cookie_is_anonymous_after_login(self, app: flask.Flask) -> None:
        attacker = app.test_client()
        planted = cookie_value(attacker.get("/write/a/1"))
        victim = app.test_client()
        victim.set_cookie("session", planted)
        victim.get("/login/alice")
        assert read(attacker) == {"data": {}, "user": None}

    def test_logout_user_destroys_the_session(self, app: flask.Flask, store: CountingStore) -> None:
        client = app.test_client()
        client.get("/write/cart/apple")
        session_id = cookie_value(client.get("/login/alice"))
        response = client.get("/logout")
        assert cookie_value(response) == ""
        assert store.inner.load(key_of(session_id)) is None
        replay = app.test_client()
        replay.set_cookie("session", session_id)
        assert read(replay) == {"data": {}, "user": None}

    def test_logout_user_still_clears_the_remember_me_cookie(self, app: flask.Flask) -> None:
        client = app.test_client()
        client.get("/login/alice?remember=1")
        assert client.get_cookie("remember_token") is not None
        client.get("/logout")
        assert client.get_cookie("remember_token") is None
        assert read(client) == {"data": {}, "user": None}

    def test_a_remember_me_login_binds_a_new_session(self, app: flask.Flask) -> None:
        client = app.test_client()
        client.get("/login/alice?remember=1")
        client.delete_cookie("session")  # the browser was closed
        response = client.get("/read")
        assert response.get_json()["user"] == "alice"
        assert cookie_value(response)
        assert current_user_of(app, cookie_value(response)) == "alice"

    def test_strong_session_protection_ends_the_session_it_unbinds(self) -> None:
        """Flask-Login's strong mode applies to non-permanent sessions only (its own rule)."""
        app = make_app(MemoryStore(), SESSION_PROTECTION="strong", SESSION_PERMANENT=False)
        client = app.test_client()
        session_id = cookie_value(client.get("/login/alice", headers={"User-Agent": "one"}))
        response = client.get("/read", headers={"User-Agent": "another"})
        assert response.get_json()["user"] is None
        assert cookie_value(response) == ""
        assert current_user_of(app, session_id) is None


def current_user_of(app: flask.Flask, session_id: str) -> str | None:
    interface = app.session_interface
    assert isinstance(interface, CoatcheckSessionInterface)
    record = interface.store.load(key_of(session_id))
    return record.user_id if record is not None else None


class TestLifecycleWithoutFlaskLogin:
    def test_regenerate_login_and_logout_are_on_the_session(self, app: flask.Flask) -> None:
        @app.get("/rotate")
        def rotate() -> str:
            current_session().regenerate()
            return ""

        @app.get("/interface-rotate")
        def interface_rotate() -> str:
            interface = flask.current_app.session_interface
            assert isinstance(interface, CoatcheckSessionInterface)
            interface.regenerate(flask.session)  # Flask-Session's spelling
            return ""

        @app.get("/bind")
        def bind() -> str:
            current_session().login("bob")
            return str(current_session().user_id)

        client = app.test_client()
        first = cookie_value(client.get("/write/a/1"))
        second = cookie_value(client.get("/rotate"))
        third = cookie_value(client.get("/interface-rotate"))
        fourth = cookie_value(client.get("/bind"))
        assert len({first, second, third, fourth}) == 4
        assert current_user_of(app, fourth) == "bob"
        assert read(client)["data"] == {"a": "1"}

    def test_current_session_needs_coatcheck(self) -> None:
        app = flask.Flask(__name__)
        app.secret_key = "plain Flask"
        with app.test_request_context(), pytest.raises(RuntimeError, match="Session"):
            current_session()


class TestConfiguration:
    def test_permanent_session_lifetime_is_the_idle_timeout(self) -> None:
        app = make_app(MemoryStore(), PERMANENT_SESSION_LIFETIME=timedelta(minutes=20))
        config = app_config(app)
        assert (config.idle_timeout, config.absolute_timeout) == (1200, 12 * 3600)
        assert config.touch_interval == 60

    def test_coatcheck_keys_come_first(self) -> None:
        app = make_app(
            MemoryStore(),
            COATCHECK_IDLE_TIMEOUT=600,
            COATCHECK_ABSOLUTE_TIMEOUT=timedelta(hours=2),
            COATCHECK_TOUCH_INTERVAL=5,
            COATCHECK_MAX_SIZE=4096,
            COATCHECK_HASH_SECRET=b"k" * 32,
        )
        config = app_config(app)
        assert (config.idle_timeout, config.absolute_timeout) == (600, 7200)
        assert (config.touch_interval, config.max_size) == (5, 4096)
        assert config.hash_secret == b"k" * 32

    def test_an_absolute_timeout_alone_caps_the_idle_timeout_flask_gave(self) -> None:
        clock = FakeClock(1_800_000_000.0)
        app = make_app(MemoryStore(), COATCHECK_ABSOLUTE_TIMEOUT=600, COATCHECK_CLOCK=clock)
        config = app_config(app)
        assert (config.idle_timeout, config.absolute_timeout) == (600, 600)  # not 31 days
        client = app.test_client()
        client.get("/write/a/1")
        clock.advance(599)
        assert read(client)["data"] == {"a": "1"}
        clock.advance(2)
        assert read(client)["data"] == {}
        lifetime = make_app(
            MemoryStore(),
            PERMANENT_SESSION_LIFETIME=timedelta(hours=2),
            COATCHECK_ABSOLUTE_TIMEOUT=timedelta(hours=1),
        )
        assert app_config(lifetime).idle_timeout == 3600

    def test_two_coatcheck_timeouts_that_contradict_are_refused(self) -> None:
        refusal = r"idle_timeout \(7200.0\) must not exceed absolute_timeout \(3600.0\)"
        with pytest.raises(ConfigError, match=refusal):
            make_app(MemoryStore(), COATCHECK_IDLE_TIMEOUT=7200, COATCHECK_ABSOLUTE_TIMEOUT=3600)

    def test_the_default_store_is_sqlite_in_the_instance_folder(self, tmp_path: Path) -> None:
        app = flask.Flask(__name__, instance_path=str(tmp_path / "instance"))
        Session(app)
        interface = app.session_interface
        assert isinstance(interface, CoatcheckSessionInterface)
        assert isinstance(interface.store, SQLiteStore)
        assert (tmp_path / "instance").is_dir()

    def test_a_store_url_picks_the_store(self, tmp_path: Path) -> None:
        app = flask.Flask(__name__)
        app.config["COATCHECK_STORE_URL"] = f"file://{tmp_path}/sessions"
        Session().init_app(app)
        assert isinstance(app.extensions["coatcheck"].store, FileStore)

    def test_an_async_store_is_refused(self) -> None:
        app = flask.Flask(__name__)
        app.config["COATCHECK_STORE"] = AsyncStoreAdapter(MemoryStore())
        with pytest.raises(TypeError, match="sync Store"):
            Session(app)


def app_config(app: flask.Flask) -> Any:
    interface = app.session_interface
    assert isinstance(interface, CoatcheckSessionInterface)
    return interface.config


class TestStoreFailure:
    def test_a_store_that_cannot_load_gives_503_before_the_view_runs(self, tmp_path: Path) -> None:
        root = tmp_path / "files"
        app = make_app(FileStore(root))
        shutil.rmtree(root)
        root.write_text("not a directory any more")
        ran = []

        @app.get("/effect")
        def effect() -> str:
            ran.append(True)
            return ""

        client = app.test_client()
        client.set_cookie("session", "A" * 43)
        response = client.get("/effect")
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        assert response.text.startswith("Session store unavailable")
        assert ran == []

    def test_an_unreachable_redis_gives_503(self) -> None:
        app = make_app(None, COATCHECK_STORE_URL=f"redis://127.0.0.1:{free_port()}/0?timeout=1")
        client = app.test_client()
        client.set_cookie("session", "A" * 43)
        assert client.get("/read").status_code == 503

    def test_a_store_that_cannot_save_turns_the_response_into_a_503(self, tmp_path: Path) -> None:
        root = tmp_path / "files"
        app = make_app(FileStore(root))
        client = app.test_client()
        client.get("/write/a/1")
        (root / ".locks").rename(tmp_path / "moved")
        (root / ".locks").write_text("not a directory")
        response = client.get("/write/b/2")
        assert response.status_code == 503
        assert response.text.startswith("Session store unavailable")
        assert "Set-Cookie" not in response.headers


def test_the_docs_quickstart_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = Path(__file__).parent.parent / "docs" / "integrations" / "flask.md"
    code = re.search(r"```python\n(.*?)```", docs.read_text(), re.DOTALL)
    assert code is not None
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": "flask_docs_quickstart"}
    exec(compile(code.group(1), str(docs), "exec"), namespace)
    client = namespace["app"].test_client()
    assert client.post("/cart/apple").json == ["apple"]
    before = client.get_cookie("session")
    assert before is not None
    assert client.post("/sudo").text == "ok"
    after = client.get_cookie("session")
    assert after is not None
    assert after.value != before.value
    assert client.post("/cart/pear").json == ["apple", "pear"]
    assert (tmp_path / "sessions.db").exists()
