"""OpenTelemetry spans for a store's calls: :func:`traced`.

The ``tracing`` extra (``pip install 'coatcheck[tracing]'``, on opentelemetry-api; the
application brings the SDK and its exporter). Each call of a traced store is a span of kind
CLIENT, as OpenTelemetry's conventions for database clients have it, named ``coatcheck
<operation>`` (``coatcheck load``, ``coatcheck save``, ...; ``load_touching`` is a ``load`` and
``save_keeping_expiry`` a ``save``), with these attributes:

- ``db.system.name`` (and, for tools that read the older convention, ``db.system``): the kind
  of store, ``memory``, ``file``, ``sqlite``, ``redis``, ``postgresql``, ``mysql``,
  ``memcached``, ...;
- ``db.operation.name``: the operation;
- ``error.type``, on a call that raised (its exception's class, qualified), whose span's status
  is then ERROR, with no description.

A span never carries a session ID, a store key, a record or a user, nor the text of an
exception (which might quote one). The span is the current one while the call runs, so the
spans of an instrumented driver (Redis, psycopg) nest under it.

>>> from opentelemetry.sdk.trace import TracerProvider
>>> from coatcheck.stores import MemoryStore
>>> store = traced(MemoryStore(), tracer_provider=TracerProvider())
>>> store.load("0" * 64) is None
True
"""

from __future__ import annotations

from typing import Any, overload

from . import __version__
from ._observed import observed, store_name
from .stores.base import AsyncStore, MissingExtra, NotSupported, Store

try:
    from opentelemetry import context, trace
except ImportError as exc:  # pragma: no cover - the extra is missing
    raise MissingExtra(
        f"coatcheck.tracing needs the tracing extra: pip install 'coatcheck[tracing]' ({exc})",
        name=exc.name,
    ) from None

__all__ = ["traced"]


class _Spans:
    """The probe of one traced store: a span per call."""

    def __init__(self, tracer: trace.Tracer, system: str) -> None:
        self.tracer = tracer
        self.system = system

    def begin(self, operation: str) -> tuple[trace.Span, object]:
        span = self.tracer.start_span(
            f"coatcheck {operation}",
            kind=trace.SpanKind.CLIENT,
            attributes={
                "db.system.name": self.system,
                "db.system": self.system,
                "db.operation.name": operation,
            },
        )
        return span, context.attach(trace.set_span_in_context(span))

    def end(self, operation: str, begun: Any, result: object, error: BaseException | None) -> None:
        span, token = begun
        context.detach(token)
        if error is not None and not isinstance(error, NotSupported):
            kind = type(error)
            span.set_attribute("error.type", f"{kind.__module__}.{kind.__qualname__}")
            span.set_status(trace.Status(trace.StatusCode.ERROR))
        span.end()


@overload
def traced(
    store: Store,
    *,
    tracer_provider: trace.TracerProvider | None = None,
    name: str | None = None,
) -> Store: ...
@overload
def traced(
    store: AsyncStore,
    *,
    tracer_provider: trace.TracerProvider | None = None,
    name: str | None = None,
) -> AsyncStore: ...
def traced(
    store: Store | AsyncStore,
    *,
    tracer_provider: trace.TracerProvider | None = None,
    name: str | None = None,
) -> Store | AsyncStore:
    """``store``, with a span for each of its calls, from the tracer ``coatcheck`` of
    ``tracer_provider`` (the global one unless given). A sync store stays sync and an async one
    async, with the same capabilities; ``name`` is ``db.system.name`` (the kind of store unless
    given). To time the calls in Prometheus metrics too, wrap one in the other:
    ``instrumented(traced(store))``.
    """
    tracer = trace.get_tracer("coatcheck", __version__, tracer_provider=tracer_provider)
    return observed(store, _Spans(tracer, name or store_name(store)))
