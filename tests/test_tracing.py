"""OpenTelemetry spans for store calls (coatcheck.tracing, docs/operations.md "Tracing"), read
back from the SDK's in-memory exporter: one CLIENT span per call, named and attributed as
OpenTelemetry's database conventions have it, an error's class and status on a call that raised,
and never an ID, a store key, a user or an exception's text."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import CollectorRegistry
from starlette.testclient import TestClient

from coatcheck.ids import fingerprint, store_key
from coatcheck.metrics import SessionMetrics, instrumented
from coatcheck.stores import (
    AsyncStore,
    AsyncStoreAdapter,
    MemoryStore,
    NotSupported,
    Record,
    SQLiteStore,
    Store,
)
from coatcheck.testing import StoreConformance
from coatcheck.tracing import traced

from .apps import starlette_app
from .test_metrics import Bare, Failing

ATTRIBUTES = {"db.system.name", "db.system", "db.operation.name"}


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def names(spans: tuple[ReadableSpan, ...]) -> list[str]:
    return [span.name for span in spans]


def test_each_store_call_is_a_client_span_named_and_attributed_by_the_conventions(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    app = starlette_app(traced(MemoryStore(), tracer_provider=provider))
    with TestClient(app) as client:
        client.post("/write", json={"a": 1})
        client.post("/login/zebedee")
        session_id = client.cookies["session"]
        client.post("/write", json={"b": 2})
        client.post("/logout")
    spans = exporter.get_finished_spans()
    assert names(spans) == [
        "coatcheck create",
        "coatcheck load",  # load_touching
        "coatcheck rotate",
        "coatcheck load",
        "coatcheck save",  # save_keeping_expiry
        "coatcheck load",
        "coatcheck delete",
    ]
    key = store_key(session_id)
    for span in spans:
        assert span.kind is SpanKind.CLIENT
        assert span.instrumentation_scope is not None
        assert span.instrumentation_scope.name == "coatcheck"
        assert span.attributes is not None
        assert set(span.attributes) == ATTRIBUTES
        assert span.attributes["db.system.name"] == span.attributes["db.system"] == "memory"
        assert span.name.removeprefix("coatcheck ") == span.attributes["db.operation.name"]
        assert span.status.status_code is StatusCode.UNSET
        assert span.parent is None
        assert not span.events
        everything = json.dumps([span.name, dict(span.attributes)])
        for secret in (session_id, key, fingerprint(key), "zebedee"):
            assert secret not in everything


def test_a_call_that_raised_has_its_errors_class_and_status_and_nothing_of_its_text(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    app = starlette_app(traced(Failing(), tracer_provider=provider))
    with TestClient(app) as client:
        client.post("/write", json={"a": 1})
        assert client.get("/read").status_code == 503
    created, failed = exporter.get_finished_spans()
    assert created.status.status_code is StatusCode.UNSET
    assert failed.name == "coatcheck load"
    assert failed.attributes is not None
    assert failed.attributes["error.type"] == "coatcheck.stores.base.StoreUnavailable"
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description is None
    assert not failed.events  # no exception event: its message could quote what it failed on
    assert "the store is down" not in json.dumps(dict(failed.attributes))


def test_a_capability_the_store_lacks_is_no_error(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    store = traced(AsyncStoreAdapter(Bare()), tracer_provider=provider)

    async def purge() -> None:
        with pytest.raises(NotSupported):
            await store.purge_expired(0.0, 10)

    anyio.run(purge)
    [span] = exporter.get_finished_spans()
    assert span.attributes is not None
    assert "error.type" not in span.attributes
    assert span.status.status_code is StatusCode.UNSET


class Nesting(MemoryStore):
    """A store whose driver makes a span of its own, as an instrumented Redis or psycopg does."""

    def __init__(self, tracer: trace.Tracer) -> None:
        super().__init__()
        self.tracer = tracer

    def load(self, key: str) -> Record | None:
        with self.tracer.start_as_current_span("driver GET"):
            return super().load(key)


def test_the_span_is_current_while_the_call_runs(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    store = traced(Nesting(provider.get_tracer("driver")), tracer_provider=provider)
    store.load("0" * 64)
    driver, call = exporter.get_finished_spans()
    assert call.name == "coatcheck load"
    assert driver.parent is not None
    assert call.context is not None
    assert driver.parent.span_id == call.context.span_id
    assert trace.get_current_span() is trace.INVALID_SPAN  # and no longer after it


def test_an_async_store_is_traced_on_its_own_face(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    store = traced(AsyncStoreAdapter(MemoryStore(), offload=True), tracer_provider=provider)
    assert isinstance(store, AsyncStore)
    app = starlette_app(store)
    with TestClient(app) as client:
        client.post("/write", json={"a": 1})
        client.get("/read")
    assert names(exporter.get_finished_spans()) == ["coatcheck create", "coatcheck load"]


def test_metrics_and_spans_together(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    metrics = SessionMetrics(CollectorRegistry())
    store = instrumented(traced(MemoryStore(), tracer_provider=provider), metrics=metrics)
    store.load("0" * 64)
    assert names(exporter.get_finished_spans()) == ["coatcheck load"]
    assert metrics.registry is not None
    labels = {"store": "memory", "operation": "load"}
    assert metrics.registry.get_sample_value("coatcheck_store_operation_seconds_count", labels)


def test_db_system_name_can_be_named(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    traced(MemoryStore(), tracer_provider=provider, name="carts").load("0" * 64)
    [span] = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["db.system.name"] == "carts"


GLOBAL = """\
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from coatcheck.stores import MemoryStore
from coatcheck.tracing import traced
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
traced(MemoryStore()).load("0" * 64)
print([(span.name, span.attributes["db.system.name"]) for span in exporter.get_finished_spans()])
"""


def test_the_global_tracer_provider_unless_one_is_given() -> None:
    done = subprocess.run(
        [sys.executable, "-c", GLOBAL], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[('coatcheck load', 'memory')]"


class TestTracedMemoryStore(StoreConformance):
    @pytest.fixture
    def store(self) -> Store:
        return traced(MemoryStore(), tracer_provider=TracerProvider())


class TestTracedAsyncStore(StoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> AsyncStore:
        adapter = AsyncStoreAdapter(SQLiteStore(tmp_path / "sessions.db"), offload=True)
        return traced(adapter, tracer_provider=TracerProvider())
