"""Prometheus metrics of the prediction service, served at ``/metrics`` (prometheus-client).

- ``http_requests_total{route,method,status}`` and ``http_request_duration_seconds{route,method}``:
  every request, by its route template (``/predict``, not the raw path; ``unmatched`` otherwise)
  and its method (one of HTTP's own, ``other`` for any other word: a client cannot grow the
  label sets, and with them ``/metrics`` and the service's memory, by inventing methods);
- ``http_requests_in_flight``: requests being served now;
- ``model_prediction_value``: a histogram of the values predicted (buckets from
  ``SERVICE_PREDICTION_BUCKETS``, comma-separated, default 0 to 400 by 25);
- ``model_info{model_name,version,digest,commit}`` = 1 for the model being served.

With several uvicorn workers (``SERVICE_WORKERS``) each worker is its own process: prometheus-client's
multiprocess mode keeps their samples in ``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` adds them up,
so a scrape sees the whole service whichever worker answers it.
"""

import os
import time
from typing import Any

import numpy as np
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)


def _buckets() -> tuple[float, ...]:
    raw = os.environ.get("SERVICE_PREDICTION_BUCKETS")
    if not raw:
        return tuple(float(b) for b in range(0, 401, 25))
    try:
        return tuple(sorted(float(b) for b in raw.split(",") if b.strip()))
    except ValueError:
        raise ValueError(f"SERVICE_PREDICTION_BUCKETS must be comma-separated numbers, got {raw!r}") from None


# RFC 9110's methods and PATCH: every other method a client sends is counted as "other".
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
REQUESTS = Counter("http_requests", "HTTP requests by route, method and status", ["route", "method", "status"])
LATENCY = Histogram("http_request_duration_seconds", "HTTP request latency by route and method", ["route", "method"])
IN_FLIGHT = Gauge("http_requests_in_flight", "HTTP requests being served now", multiprocess_mode="livesum")
PREDICTIONS = Histogram("model_prediction_value", "Predicted values", buckets=_buckets())
MODEL_INFO = Gauge(
    "model_info", "The model being served (1)", ["model_name", "version", "digest", "commit"], multiprocess_mode="max"
)
CONTENT_TYPE = CONTENT_TYPE_LATEST


def observe_predictions(values: np.ndarray) -> None:
    """A request's predictions into the histogram: one increment a bucket, not one a value (a
    1,000-record batch took 6 ms value by value). The same counts as ``observe`` on each value:
    a value goes to the first bucket whose upper bound is at least the value."""
    bounds, buckets, total = (getattr(PREDICTIONS, name, None) for name in ("_upper_bounds", "_buckets", "_sum"))
    if bounds is None or buckets is None or total is None:  # another prometheus-client: the public way
        for value in values.tolist():
            PREDICTIONS.observe(value)
        return
    counts = np.bincount(np.searchsorted(np.asarray(bounds), values, side="left"), minlength=len(bounds))
    for i in np.flatnonzero(counts):
        buckets[i].inc(int(counts[i]))
    total.inc(float(values.sum()))


def exposition() -> bytes:
    """Every metric, added up over the workers in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return bytes(generate_latest(registry))
    return bytes(generate_latest(REGISTRY))


class RequestMetrics:
    """ASGI middleware: counts, times and tracks every HTTP request by its route template."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # unless the app answers
        start = time.perf_counter()
        counted = False

        def count() -> None:
            nonlocal counted
            if not counted:
                counted = True
                route = getattr(scope.get("route"), "path", None) or "unmatched"
                method = str(scope.get("method", ""))
                method = method if method in METHODS else "other"
                REQUESTS.labels(route, method, str(status)).inc()
                LATENCY.labels(route, method).observe(time.perf_counter() - start)

        async def noted(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                count()  # before the last byte leaves: a client that has its answer finds it counted
            await send(message)

        IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, noted)
        finally:
            IN_FLIGHT.dec()
            count()  # an app that failed before it answered: a 500
