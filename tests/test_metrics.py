"""Prometheus metrics (coatcheck.metrics, docs/operations.md "Metrics and tracing"): the demo
over real HTTP serving the counts, the store's histograms and the session durations; every
event, duration, store call, error and conflict counted, and never an ID, key or user in a
label; off, nothing imported and nothing changed; the scrape configuration, the alert rules and
the Grafana dashboard naming only metrics and labels that exist."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import yaml
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from coatcheck.config import ConfigError, SessionConfig, option_names
from coatcheck.events import Chained, SessionEvent
from coatcheck.ids import fingerprint, new_id, store_key
from coatcheck.metrics import COUNTED, SessionMetrics, default_metrics, instrumented
from coatcheck.stores import (
    AsyncStore,
    AsyncStoreAdapter,
    FileStore,
    Iterable,
    MemoryStore,
    NotSupported,
    Purgeable,
    Record,
    SQLiteStore,
    Store,
    StoreUnavailable,
    UserIndex,
    as_async,
)
from coatcheck.stores.migrating import MigratingStore
from coatcheck.testing import FakeClock, Harness, StoreConformance, cookie_id

from .apps import starlette_app
from .shop_servers import Demo, log_in, run_demo

ROOT = Path(__file__).resolve().parent.parent
OPERATIONS_DOC = ROOT / "docs" / "operations.md"
DASHBOARD = ROOT / "docs" / "grafana-dashboard.json"
IDLE = 600.0
START = 1_800_000_000.0


@pytest.fixture
def metrics() -> SessionMetrics:
    return SessionMetrics(CollectorRegistry())


def registry_of(metrics: SessionMetrics) -> CollectorRegistry:
    assert metrics.registry is not None
    return metrics.registry


def value(metrics: SessionMetrics, name: str, **labels: str) -> float:
    """A sample's value in ``metrics``' registry (0 when it is not there)."""
    assert metrics.registry is not None
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def events_of(metrics: SessionMetrics) -> dict[str, float]:
    return {kind: value(metrics, "coatcheck_session_events_total", event=kind) for kind in COUNTED}


def calls(metrics: SessionMetrics, store: str = "memory") -> dict[str, float]:
    """How many calls of each operation ``store`` saw (those with any)."""
    assert metrics.registry is not None
    counted = {}
    for family in metrics.registry.collect():
        for sample in family.samples:
            if (
                sample.name == "coatcheck_store_operation_seconds_count"
                and sample.labels["store"] == store
                and sample.value
            ):
                counted[sample.labels["operation"]] = sample.value
    return counted


class Recorder(list[SessionEvent]):
    def __call__(self, event: SessionEvent) -> None:
        self.append(event)


def exposition(registry: CollectorRegistry) -> dict[str, set[frozenset[str]]]:
    """Every sample name of ``registry``, with the label sets it comes with."""
    text = generate_latest(registry).decode()
    found: dict[str, set[frozenset[str]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, set()).add(frozenset(sample.labels))
    return found


# -- over real HTTP: the demo ----------------------------------------------------------------


def parse(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    database = tmp_path_factory.mktemp("metrics") / "shop.db"
    with run_demo("--store", f"sqlite:///{database}", "--idle-timeout", "2") as running:
        yield running


def test_the_demo_serves_the_counts_the_store_histograms_and_the_durations(demo: Demo) -> None:
    """The issue's must-show: after logins and logouts, /metrics shows the created and
    logged_out counts, the store's histograms with operation="load" buckets, and how long
    sessions lived (those logged out, and one left to expire, found so on its next request)."""
    for user in ("alice", "bob"):
        with httpx.Client(base_url=demo.url) as http:
            log_in(http, user)
            assert http.post("/api/logout").status_code == 204
    with httpx.Client(base_url=demo.url) as idle:
        log_in(idle, "carol")
        cookie = idle.cookies["session"]
        time.sleep(2.5)  # past the idle timeout
        # The client's jar dropped the cookie as its Max-Age ran out; one sent all the same (a
        # clock behind, a tab left open) finds the session expired on load.
        idle.cookies.clear()
        late = idle.get("/api/me", headers={"cookie": f"session={cookie}"})
        assert late.status_code == 401

    response = httpx.get(demo.url + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST  # Prometheus's text format
    samples = parse(response.text)

    def sample(name: str, **labels: str) -> float:
        return samples[(name, frozenset(labels.items()))]

    events = "coatcheck_session_events_total"
    assert sample(events, event="created") == 3  # each client's CSRF token, before its login
    assert sample(events, event="logged_in") == 3
    assert sample(events, event="regenerated") == 3
    assert sample(events, event="logged_out") == 2
    assert sample(events, event="expired") == 1
    loads = {
        dict(labels)["le"]: count
        for (name, labels), count in samples.items()
        if name == "coatcheck_store_operation_seconds_bucket"
        and ("operation", "load") in labels
        and ("store", "sqlite") in labels
    }
    assert len(loads) == 16  # the 15 buckets and +Inf
    assert loads["+Inf"] >= 5  # every request with a cookie loads
    assert sample("coatcheck_store_operation_seconds_count", store="sqlite", operation="rotate")
    # Two sessions logged out within moments of their creation, one expired after 2.5 s.
    assert sample("coatcheck_session_duration_seconds_count") == 3
    assert 2.5 <= sample("coatcheck_session_duration_seconds_sum") < 60
    assert sample("coatcheck_session_duration_seconds_bucket", le="1.0") <= 2
    assert sample("coatcheck_session_duration_seconds_bucket", le="10.0") == 3
    assert sample("coatcheck_store_errors_total", store="sqlite", operation="load") == 0


# -- events and durations ------------------------------------------------------------------


def test_every_event_is_counted_and_every_kind_is_there_from_the_start(
    metrics: SessionMetrics,
) -> None:
    assert events_of(metrics) == dict.fromkeys(COUNTED, 0.0)
    assert set(COUNTED) == {
        "created",
        "logged_in",
        "logged_out",
        "regenerated",
        "expired",
        "revoked",
        "rejected",
        "flagged",
    }
    seen = Recorder()
    clock = FakeClock(START)
    store = MemoryStore()
    options: dict[str, Any] = {"clock": clock, "idle_timeout": IDLE}
    app = starlette_app(store, on_event=metrics.counting(seen), **options)
    with TestClient(app) as phone, TestClient(app) as laptop:
        phone.post("/write", json={"a": 1})  # created
        phone.post("/login/alice")  # regenerated, logged_in
        laptop.post("/login/alice")  # created, logged_in
        laptop.post("/logout-everywhere")  # logged_out, and the phone's session revoked
        laptop.post("/login/alice")  # created, logged_in
        clock.advance(IDLE + 1)
        laptop.get("/read")  # expired
        phone.get("/read")  # rejected: its session was revoked
    flagging = starlette_app(
        store, on_event=metrics.counting(seen), bind_to=["user_agent"], binding_action="flag"
    )
    with TestClient(flagging, headers={"user-agent": "one"}) as client:
        client.post("/write", json={"a": 1})  # created
        client.get("/read", headers={"user-agent": "another"})  # flagged
    assert events_of(metrics) == {
        "created": 4,
        "regenerated": 1,
        "logged_in": 3,
        "logged_out": 1,
        "revoked": 1,
        "expired": 1,
        "rejected": 1,
        "flagged": 1,
    }
    assert len(seen) == 13  # the application's handler gets every event still


def test_revoked_counts_the_sessions_a_revocation_ended(metrics: SessionMetrics) -> None:
    app = starlette_app(MemoryStore(), on_event=metrics.counting())
    clients = [TestClient(app) for _ in range(4)]
    for client in clients:
        client.post("/login/alice")
    clients[0].post("/logout-everywhere")
    assert events_of(metrics)["revoked"] == 3
    assert events_of(metrics)["logged_out"] == 1


def durations(metrics: SessionMetrics) -> tuple[float, float]:
    return (
        value(metrics, "coatcheck_session_duration_seconds_count"),
        value(metrics, "coatcheck_session_duration_seconds_sum"),
    )


@pytest.fixture
def harness(metrics: SessionMetrics) -> Harness:
    harness = Harness(instrumented(MemoryStore(), metrics=metrics), None)
    harness.clock.now = START
    harness.engine = harness.engine_with(on_event=metrics.counting(harness.events.append))
    return harness


def test_a_session_found_expired_on_load_observes_how_long_it_lived(
    harness: Harness, metrics: SessionMetrics
) -> None:
    session_id = harness.new_session(a=1)
    harness.clock.advance(100)
    harness.request(session_id, lambda s: s.update(b=2))
    harness.clock.advance(10_000)  # past the idle timeout
    harness.load(session_id)
    [expired] = [event for event in harness.events if event.kind == "expired"]
    assert expired.reason == "idle"
    assert expired.lived == 10_100
    assert durations(metrics) == (1, 10_100)


def test_a_session_ended_while_a_request_wrote_it_observes_how_long_it_lived(
    harness: Harness, metrics: SessionMetrics
) -> None:
    session_id = harness.new_session(a=1)
    harness.clock.advance(50)
    session = harness.load(session_id)
    harness.call("delete", store_key(session_id))  # another request logs it out meanwhile
    session["a"] = 2
    harness.commit(session)
    [expired] = [event for event in harness.events if event.kind == "expired"]
    assert expired.reason == "ended during the request"
    assert durations(metrics) == (1, 50)


def test_a_session_past_its_absolute_deadline_during_a_request_observes_it(
    harness: Harness, metrics: SessionMetrics
) -> None:
    counting = metrics.counting(harness.events.append)
    harness.engine = harness.engine_with(on_event=counting, idle_timeout=900, absolute_timeout=900)
    session_id = harness.new_session(a=1)
    absolute = 900
    harness.clock.advance(absolute - 1)
    session = harness.load(session_id)
    harness.clock.advance(2)  # the deadline passes while the request runs
    harness.commit(session)
    [expired] = [event for event in harness.events if event.kind == "expired"]
    assert expired.reason == "absolute"
    assert durations(metrics) == (1, absolute + 1)


def test_a_session_revoked_as_its_users_oldest_observes_how_long_it_lived(
    harness: Harness, metrics: SessionMetrics
) -> None:
    harness.engine = harness.engine_with(
        on_event=metrics.counting(harness.events.append), max_sessions_per_user=1
    )
    harness.request(None, lambda s: s.login("alice"))
    harness.clock.advance(300)
    harness.request(None, lambda s: s.login("alice"))
    [revoked] = [event for event in harness.events if event.kind == "revoked"]
    assert revoked.reason == "sessions per user"
    assert revoked.lived == 300
    assert durations(metrics) == (1, 300)


def test_a_logout_observes_how_long_the_session_lived(
    harness: Harness, metrics: SessionMetrics
) -> None:
    session_id = harness.new_session(a=1)
    harness.clock.advance(60)
    harness.request(session_id, lambda s: s.logout())
    [logged_out] = [event for event in harness.events if event.kind == "logged_out"]
    assert logged_out.lived == 60
    assert durations(metrics) == (1, 60)


def test_with_no_one_listening_no_stored_session_is_decoded_for_its_age(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from coatcheck import codec

    decoded: list[bytes] = []
    decode = codec.decode

    def counting(blob: bytes) -> Any:
        decoded.append(blob)
        return decode(blob)

    monkeypatch.setattr(codec, "decode", counting)
    harness = Harness(MemoryStore(), None)
    harness.engine = harness.engine_with(on_event=None)
    session_id = harness.new_session(a=1)
    harness.clock.advance(IDLE * 10)
    harness.load(session_id)
    assert decoded == []
    harness.engine = harness.engine_with()
    session_id = harness.new_session(a=1)
    harness.clock.advance(IDLE * 10)
    harness.load(session_id)
    assert len(decoded) == 1


# -- store calls -----------------------------------------------------------------------------


def test_every_store_call_is_timed_by_operation(harness: Harness, metrics: SessionMetrics) -> None:
    harness.engine = harness.engine_with(
        on_event=metrics.counting(), max_sessions_per_user=5, purge_interval=60
    )
    session_id = harness.new_session(a=1)  # create (and the purge's calls: its first request)
    harness.clock.advance(harness.engine.config.touch_interval + 1)
    harness.request(session_id)  # load, touch
    harness.request(session_id, lambda s: s.update(b=2))  # load, save (keeping the expiry)
    _, cookie = harness.request(session_id, lambda s: s.login("alice"))  # list_by_user, rotate
    harness.request(cookie_id(cookie), lambda s: s.logout(everywhere=True))  # delete, by user
    assert set(calls(metrics)) == {
        "load",
        "create",
        "save",
        "touch",
        "rotate",
        "delete",
        "list_by_user",
        "delete_by_user",
        "purge_expired",
    }
    assert calls(metrics)["load"] >= 4
    text = generate_latest(registry_of(metrics)).decode()
    assert "load_touching" not in text
    assert "save_keeping_expiry" not in text


class Failing(MemoryStore):
    def load_touching(
        self, key: str, now: float, expires_at: float, min_gain: float
    ) -> tuple[Record | None, bool]:
        raise StoreUnavailable("the store is down")


def test_a_call_that_raises_is_counted_as_an_error(metrics: SessionMetrics) -> None:
    app = starlette_app(instrumented(Failing(), metrics=metrics))
    with TestClient(app) as client:
        client.post("/write", json={"a": 1})
        assert client.get("/read").status_code == 503
    assert value(metrics, "coatcheck_store_errors_total", store="failing", operation="load") == 1
    assert calls(metrics, "failing")["load"] == 1  # timed too
    assert value(metrics, "coatcheck_store_errors_total", store="failing", operation="create") == 0


class Bare(Store):
    """A store with the core calls and no capability."""

    def __init__(self) -> None:
        self.inner = MemoryStore()

    def load(self, key: str) -> Record | None:
        return self.inner.load(key)

    def create(self, record: Record) -> bool:
        return self.inner.create(record)

    def save(self, record: Record, expected_version: int) -> bool:
        return self.inner.save(record, expected_version)

    def touch(self, key: str, expires_at: float) -> None:
        self.inner.touch(key, expires_at)

    def delete(self, key: str) -> None:
        self.inner.delete(key)


def test_a_capability_the_store_lacks_is_no_error_on_either_face(metrics: SessionMetrics) -> None:
    sync = instrumented(Bare(), metrics=metrics)
    assert not isinstance(sync, UserIndex | Purgeable | Iterable)
    assert getattr(sync, "purge_expired", None) is None  # the engine says NotSupported itself
    asynchronous = instrumented(AsyncStoreAdapter(Bare()), metrics=metrics)

    async def purge() -> None:
        with pytest.raises(NotSupported):
            await asynchronous.purge_expired(0.0, 10)

    anyio.run(purge)
    assert (
        value(metrics, "coatcheck_store_errors_total", store="bare", operation="purge_expired") == 0
    )
    assert "purge_expired" not in calls(metrics, "bare")


def test_a_save_refused_by_compare_and_set_is_a_conflict(
    harness: Harness, metrics: SessionMetrics
) -> None:
    session_id = harness.new_session(a=1)
    first, second = harness.load(session_id), harness.load(session_id)
    first["b"] = 2
    second["c"] = 3
    harness.commit(first)
    assert value(metrics, "coatcheck_save_conflicts_total") == 0
    harness.commit(second)  # refused once, then replayed onto the first one's record
    assert value(metrics, "coatcheck_save_conflicts_total") == 1
    assert harness.load(session_id) == {"a": 1, "b": 2, "c": 3}


def test_no_label_holds_an_id_a_key_or_a_user(metrics: SessionMetrics) -> None:
    app = starlette_app(instrumented(MemoryStore(), metrics=metrics), on_event=metrics.counting())
    with TestClient(app) as client:
        client.post("/login/zebedee")
        session_id = client.cookies["session"]
        client.post("/write", json={"a": 1})
        client.cookies.set("session", new_id())
        client.get("/read")  # rejected
    text = generate_latest(registry_of(metrics)).decode()
    key = store_key(session_id)
    for secret in (session_id, key, fingerprint(key), "zebedee"):
        assert secret not in text
    exposed = exposition(registry_of(metrics)).values()
    labels = {label for names in exposed for labelled in names for label in labelled}
    assert labels <= {"event", "store", "operation", "le"}


# -- the wrapper keeps the store as it was ---------------------------------------------------


def test_the_wrapper_keeps_the_face_the_capabilities_and_the_offloading(
    tmp_path: Path, metrics: SessionMetrics
) -> None:
    memory = instrumented(MemoryStore(), metrics=metrics)
    assert isinstance(memory, Store)
    assert isinstance(memory, UserIndex | Purgeable | Iterable)
    adapter = as_async(memory)
    assert isinstance(adapter, AsyncStoreAdapter)
    assert not adapter.offload  # driven inline, as a MemoryStore is
    file = instrumented(FileStore(tmp_path / "sessions"), metrics=metrics)
    assert isinstance(file, Store)
    assert file.offload_async  # worker threads, as the file store asks
    asynchronous = instrumented(as_async(MemoryStore()), metrics=metrics)
    assert isinstance(asynchronous, AsyncStore)
    both = MigratingStore(memory, instrumented(MemoryStore(), metrics=metrics))
    assert isinstance(both, UserIndex | Purgeable | Iterable)
    composed = MigratingStore(memory, instrumented(Bare(), metrics=metrics))
    assert not isinstance(composed, UserIndex | Purgeable | Iterable)  # the bare store has none


def test_the_shop_still_knows_a_memory_store_behind_the_metrics() -> None:
    from coatcheck.shop.app import _per_process

    assert _per_process(as_async(instrumented(MemoryStore(), metrics=SessionMetrics(None))))
    assert not _per_process(as_async(instrumented(Bare(), metrics=SessionMetrics(None))))


def test_the_store_label_is_the_kind_of_store_unless_named(
    tmp_path: Path, metrics: SessionMetrics
) -> None:
    from coatcheck._observed import store_name
    from coatcheck.stores import from_url

    assert store_name(MemoryStore()) == "memory"
    assert store_name(as_async(FileStore(tmp_path / "f"))) == "file"
    assert store_name(SQLiteStore(tmp_path / "s.db")) == "sqlite"
    lazy = {  # the async stores connect at their first call: none here
        "redis://127.0.0.1:1/0": "redis",
        "postgresql://app@127.0.0.1:1/sessions": "postgresql",
        "mysql://app@127.0.0.1:1/sessions": "mysql",
        "memcached://127.0.0.1:1": "memcached",
    }
    for url, name in lazy.items():
        assert store_name(from_url(url, asynchronous=True)) == name
    store = instrumented(MemoryStore(), metrics=metrics, name="carts")
    store.load("0" * 64)
    assert calls(metrics, "carts") == {"load": 1}


class TestInstrumentedMemoryStore(StoreConformance):
    @pytest.fixture
    def store(self) -> Store:
        return instrumented(MemoryStore(), metrics=SessionMetrics(None))


class TestInstrumentedSQLiteStore(StoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Store:
        return instrumented(SQLiteStore(tmp_path / "sessions.db"), metrics=SessionMetrics(None))


class TestInstrumentedAsyncStore(StoreConformance):
    """The async face: a sync store's calls in worker threads, then instrumented."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> AsyncStore:
        adapter = AsyncStoreAdapter(SQLiteStore(tmp_path / "sessions.db"), offload=True)
        return instrumented(adapter, metrics=SessionMetrics(None))


def test_the_async_face_through_the_asgi_middleware(metrics: SessionMetrics) -> None:
    store = instrumented(AsyncStoreAdapter(MemoryStore(), offload=True), metrics=metrics)
    app = starlette_app(store, on_event=metrics.counting())
    with TestClient(app) as client:
        client.post("/write", json={"a": 1})
        assert client.get("/read").json() == {"a": 1}
        client.post("/logout")
    assert calls(metrics) == {"create": 1, "load": 2, "delete": 1}
    assert events_of(metrics)["logged_out"] == 1


# -- the option ------------------------------------------------------------------------------


def default_count(kind: str) -> float:
    return REGISTRY.get_sample_value("coatcheck_session_events_total", {"event": kind}) or 0.0


def test_metrics_true_counts_in_the_default_registry_before_the_applications_handler() -> None:
    seen = Recorder()
    config = SessionConfig(metrics=True, on_event=seen, secure=False)
    assert isinstance(config.on_event, Chained)
    assert config.on_event.listener == default_metrics().record
    assert config.on_event.handler is seen
    before = default_count("created")
    app = starlette_app(MemoryStore(), config=config)
    with TestClient(app) as client:
        client.post("/write", json={"a": 1})
    assert default_count("created") == before + 1
    assert [event.kind for event in seen] == ["created"]
    # A config made from another (dataclasses.replace) counts once, and not at all when off.
    again = dataclasses.replace(config, idle_timeout=60)
    assert again.on_event == config.on_event
    off = dataclasses.replace(config, metrics=False)
    assert off.on_event is seen
    # A handler of the application's own that counts in its own registry stays as it is.
    mine = SessionMetrics(CollectorRegistry()).counting(seen)
    assert SessionConfig(on_event=mine).on_event is mine
    assert dataclasses.replace(config, on_event=mine, metrics=False).on_event is mine


def default_calls(store: str, operation: str) -> float:
    labels = {"store": store, "operation": operation}
    return REGISTRY.get_sample_value("coatcheck_store_operation_seconds_count", labels) or 0.0


def test_metrics_true_alone_times_the_store_in_every_kind_of_middleware(tmp_path: Path) -> None:
    """The one option also times the store's calls: the ASGI and WSGI middleware, Flask's
    COATCHECK_METRICS; a store the application wrapped itself is not timed twice."""
    import flask
    from werkzeug.test import Client

    from coatcheck import wsgi
    from coatcheck.integrations import flask as coatcheck_flask

    before = default_calls("memory", "create")
    app = starlette_app(MemoryStore(), config=SessionConfig(metrics=True, secure=False))
    with TestClient(app) as client:
        client.post("/write", json={"a": 1})
    assert default_calls("memory", "create") == before + 1

    def hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ[wsgi.ENVIRON_KEY]["seen"] = True
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hi"]

    mine = instrumented(MemoryStore())
    middleware = wsgi.SessionMiddleware(hello, store=mine, metrics=True, secure=False)
    assert middleware.store is mine  # already timed: not wrapped again
    Client(middleware).get("/")
    assert default_calls("memory", "create") == before + 2

    flask_app = flask.Flask(__name__)
    flask_app.config["COATCHECK_STORE_URL"] = f"sqlite:///{tmp_path / 'flask.db'}"
    flask_app.config["COATCHECK_METRICS"] = True
    coatcheck_flask.Session(flask_app)

    @flask_app.get("/")
    def write() -> str:
        flask.session["seen"] = True
        return "hi"

    sqlite_before = default_calls("sqlite", "create")
    flask_app.test_client().get("/")
    assert default_calls("sqlite", "create") == sqlite_before + 1


def test_metrics_is_true_or_false() -> None:
    with pytest.raises(ConfigError, match="metrics must be True or False"):
        SessionConfig(metrics="yes")  # type: ignore[arg-type]


def test_off_the_handler_is_the_applications_own() -> None:
    assert SessionConfig().on_event is None
    seen = Recorder()
    assert SessionConfig(on_event=seen).on_event is seen


def test_metrics_is_an_option_of_every_integration() -> None:
    from coatcheck.integrations import app_config
    from coatcheck.integrations.django.config import OPTIONS
    from coatcheck.integrations.starlette import CoatcheckOptions

    assert "metrics" in option_names("hooks")
    assert app_config.OPTION_KEYS["metrics"] == "COATCHECK_METRICS"  # Flask's and Quart's
    assert "metrics" in OPTIONS
    assert "metrics" in CoatcheckOptions.__annotations__


OFF = """\
import sys
from starlette.applications import Starlette
from starlette.testclient import TestClient
from coatcheck.asgi import SessionMiddleware
from coatcheck.stores import MemoryStore
store = MemoryStore()
app = SessionMiddleware(Starlette(), store=store, secure=False)
assert app.engine.config.on_event is None
assert app.store.store is store  # the store as given, not wrapped
with TestClient(app) as client:
    client.get("/")
loaded = [m for m in ("prometheus_client", "opentelemetry", "coatcheck.metrics",
                      "coatcheck.tracing") if m in sys.modules]
print(loaded)
"""


def test_off_nothing_of_it_is_imported() -> None:
    done = subprocess.run(
        [sys.executable, "-c", OFF], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


def test_the_docs_example_serves_the_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = OPERATIONS_DOC.read_text()
    section = text[text.index("## Metrics and tracing") :]
    example = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert example is not None
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    exec(example.group(1), namespace)
    with TestClient(namespace["app"]) as client:
        client.post("/anything")  # a 404, no session
        page = client.get("/metrics/")
    assert page.status_code == 200
    assert "coatcheck_session_events_total" in page.text
    assert 'coatcheck_store_operation_seconds_count{operation="load",store="sqlite"}' in page.text


# -- the scrape configuration, the alert rules, the dashboard --------------------------------


def yaml_blocks() -> list[dict[str, Any]]:
    text = OPERATIONS_DOC.read_text()
    section = text[text.index("## Metrics and tracing") :]
    return [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)]


@pytest.fixture(scope="module")
def every_sample() -> dict[str, set[frozenset[str]]]:
    """What a populated registry exposes: each sample name with its label names."""
    metrics = SessionMetrics(CollectorRegistry())
    app = starlette_app(instrumented(MemoryStore(), metrics=metrics), on_event=metrics.counting())
    with TestClient(app) as client:
        client.post("/login/alice")
        client.post("/logout")
    metrics.durations.observe(1.0)
    assert metrics.registry is not None
    return exposition(registry_of(metrics))


METRIC = re.compile(r"\b(coatcheck_\w+)(?:\{([^}]*)\})?")
GROUPING = re.compile(r"\bby \(([^)]*)\)")


def check_query(query: str, every_sample: dict[str, set[frozenset[str]]]) -> set[str]:
    """Every metric ``query`` names exists, with the labels it selects or groups by; return
    the metrics."""
    named = set()
    for name, selector in METRIC.findall(query):
        assert name in every_sample, name
        named.add(name)
        labels = set().union(*every_sample[name])
        for matcher in filter(None, (part.strip() for part in selector.split(","))):
            assert re.split(r"[=!~]", matcher)[0] in labels, (name, matcher)
        for grouping in GROUPING.findall(query):
            assert {label.strip() for label in grouping.split(",")} <= labels, (name, grouping)
    assert named, query
    return named


def test_the_scrape_configuration_names_what_the_demo_serves() -> None:
    from coatcheck.cli.demo import demo
    from coatcheck.shop.app import METRICS_PATH

    [job] = yaml_blocks()[0]["scrape_configs"]
    assert job["metrics_path"] == METRICS_PATH
    [target] = job["static_configs"][0]["targets"]
    port = next(param.default for param in demo.params if param.name == "port")
    assert target == f"127.0.0.1:{port}"


def test_the_alert_rules_name_metrics_and_labels_that_exist(
    every_sample: dict[str, set[frozenset[str]]],
) -> None:
    [group] = yaml_blocks()[1]["groups"]
    alerts = {rule["alert"]: rule for rule in group["rules"]}
    assert set(alerts) == {"CoatcheckStoreErrors", "CoatcheckStoreSlow", "CoatcheckRejectedSpike"}
    assert check_query(alerts["CoatcheckStoreErrors"]["expr"], every_sample) == {
        "coatcheck_store_errors_total"
    }
    assert check_query(alerts["CoatcheckStoreSlow"]["expr"], every_sample) == {
        "coatcheck_store_operation_seconds_bucket"
    }
    assert check_query(alerts["CoatcheckRejectedSpike"]["expr"], every_sample) == {
        "coatcheck_session_events_total"
    }
    for rule in alerts.values():
        assert rule["expr"].count("(") == rule["expr"].count(")")
        assert re.fullmatch(r"\d+m", rule["for"])
        for label in re.findall(r"\$labels\.(\w+)", json.dumps(rule["annotations"])):
            assert f"by ({label}" in rule["expr"] or f", {label}" in rule["expr"]


def test_the_dashboard_names_every_metric_and_only_those_that_exist(
    every_sample: dict[str, set[frozenset[str]]],
) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    named: set[str] = set()
    titles = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        titles.append(panel["title"])
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        for target in panel["targets"]:
            named |= check_query(target["expr"], every_sample)
            assert target["expr"].count("(") == target["expr"].count(")")
    [variable] = dashboard["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == (
        "datasource",
        "datasource",
        "prometheus",
    )
    assert {name.removesuffix("_bucket").removesuffix("_count") for name in named} == {
        "coatcheck_session_events_total",
        "coatcheck_session_duration_seconds",
        "coatcheck_store_operation_seconds",
        "coatcheck_store_errors_total",
        "coatcheck_save_conflicts_total",
    }
    assert titles == [
        "Lifecycle events",
        "Rejected and flagged",
        "How long sessions lived",
        "Store calls",
        "Store latency",
        "Store errors",
        "Compare-and-set conflicts",
    ]


def test_a_tiered_stores_fast_tier_is_reported_at_each_scrape(tmp_path: Path) -> None:
    """With metrics=True, a TieredStore's state goes to the default registry: down while its
    fast tier (a Redis nothing listens on, here) fails, and its calls by outcome."""
    from coatcheck.stores import SQLiteStore, TieredStore, from_url

    from .servers import free_port

    fast = from_url(f"redis://127.0.0.1:{free_port()}/0?timeout=0.5")
    assert isinstance(fast, Store)
    store = TieredStore(fast, SQLiteStore(tmp_path / "durable.db"))
    app = starlette_app(store, config=SessionConfig(metrics=True, secure=False))
    with TestClient(app) as client:
        assert client.post("/write", json={"a": 1}).status_code == 200
    labels = {"store": "tiered"}
    assert REGISTRY.get_sample_value("coatcheck_fast_tier_down", labels) == 1.0
    failures = {**labels, "outcome": "failure"}
    assert (REGISTRY.get_sample_value("coatcheck_fast_tier_calls_total", failures) or 0) >= 1
    store.close()


def test_a_healthy_fast_tier_counts_its_hits_and_misses(tmp_path: Path) -> None:
    from coatcheck.stores import SQLiteStore, TieredStore

    metrics = SessionMetrics(CollectorRegistry())
    store = TieredStore(MemoryStore(), SQLiteStore(tmp_path / "durable.db"))
    metrics.watch_tiers(store, name="sessions")
    harness = Harness(store, None)
    session_id = harness.new_session(a=1)
    for _ in range(3):
        harness.load(session_id)
    registry = metrics.registry
    assert registry is not None
    labels = {"store": "sessions"}
    assert registry.get_sample_value("coatcheck_fast_tier_down", labels) == 0.0
    hits = registry.get_sample_value(
        "coatcheck_fast_tier_calls_total", {**labels, "outcome": "hit"}
    )
    assert hits == store.stats.fast_hits >= 3
