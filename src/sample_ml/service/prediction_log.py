"""The prediction log: what the deployed model was asked and what it answered, for drift checks.

Opt-in: ``SERVICE_PREDICTION_LOG`` names a SQLAlchemy URL (``sqlite:////var/lib/predictions/predictions.sqlite``
on a volume that outlives the container, or any database). Each logged row holds one record's
features, its prediction, the model version, a request id and the time (UTC). Nothing else:
no client address, no headers. The request id is made here, or, when the client sent an
``X-Request-ID``, the first 32 hex digits of its SHA-256: a client finds its rows by hashing its
own id, and whatever it put in the header is never stored as it was.

- ``SERVICE_PREDICTION_LOG_SAMPLE`` (0 to 1, default 1): the share of requests logged;
- ``SERVICE_PREDICTION_LOG_MAX_ROWS`` (default 1,000,000): the newest rows kept, older ones deleted;
- ``SERVICE_PREDICTION_LOG_MAX_AGE_DAYS`` (default 90): rows older than this are deleted too
  (checked about once a minute).

Writing never fails a request and costs it an append: a request hands its records and predictions
to a bounded queue (``QUEUE_ROWS`` rows), and a background thread turns them into rows and writes
them about once a second, in batches. When the queue is full or the database is down, the rows
are dropped and counted (``prediction_log_dropped_total``), and the service keeps serving.

The drift check reads the log back with the ``predictions`` data loader.
"""

import hashlib
import os
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from prometheus_client import Counter

from sample_ml.data_loaders.prediction_log import TABLE

LOGGED = Counter("prediction_log_rows", "Prediction rows written to the prediction log")
DROPPED = Counter("prediction_log_dropped", "Prediction rows dropped (queue full or sink down)")
QUEUE_ROWS = 100_000  # rows waiting at most; beyond, a request's rows are dropped
BATCH = 1_000  # rows a transaction at most
FLUSH_SECONDS = 1.0  # how often the writer wakes up: a row reaches the database within about this
AGE_CHECK_SECONDS = 60.0  # how often rows past the age limit are deleted


def stored_request_id(given: str | None) -> str:
    """What the log keeps as a request's id: the first 32 hex digits of the SHA-256 of the
    client's ``X-Request-ID``, or a new random one when it sent none."""
    return hashlib.sha256(given.encode()).hexdigest()[:32] if given else uuid.uuid4().hex


def _number(name: str, default: float, lo: float, hi: float) -> float:
    raw = os.environ.get(name)
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be from {lo} to {hi}, got {raw!r}")
    return value


class PredictionLog:
    """A background writer of prediction rows into one table of a SQLAlchemy database."""

    def __init__(
        self,
        url: str,
        features: Sequence[str],
        sample: float = 1.0,
        max_rows: int = 1_000_000,
        max_age_days: float = 90.0,
    ) -> None:
        self.url, self.features, self.sample, self.max_rows = url, list(features), sample, max_rows
        self.max_age_seconds = max_age_days * 86400
        self.clock = time.time  # seconds since the epoch; the age limit counts from it
        self.aged = 0.0  # when rows past the age limit were last deleted (clock time)
        # One entry a request, turned into rows by the writer: a request pays for an append only.
        self.pending: deque[tuple[str, str, str, np.ndarray, np.ndarray]] = deque()
        self.queued = 0  # rows waiting, at most QUEUE_ROWS
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.engine = sa.create_engine(url)
        columns = [sa.Column(name, sa.Float) for name in self.features]
        self.table = sa.Table(
            TABLE,
            sa.MetaData(),
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("time", sa.String(40), nullable=False, index=True),  # ISO 8601 in UTC: sorts as time does
            sa.Column("request_id", sa.String(64), nullable=False),
            sa.Column("version", sa.String(64), nullable=False),
            sa.Column("prediction", sa.Float, nullable=False),
            *columns,
        )
        # The insert, compiled once for this database; run through its driver's executemany with
        # plain tuples: about four times faster than the ORM-free Core path with a dict a row.
        self.columns = ["time", "request_id", "version", "prediction", *self.features]
        self.insert = sa.insert(self.table).compile(dialect=self.engine.dialect, column_keys=self.columns)
        self.thread = threading.Thread(target=self._write_forever, name="prediction-log", daemon=True)
        self.thread.start()

    @classmethod
    def from_env(cls, features: Sequence[str]) -> "PredictionLog | None":
        url = os.environ.get("SERVICE_PREDICTION_LOG")
        if not url:
            return None
        sample = _number("SERVICE_PREDICTION_LOG_SAMPLE", 1.0, 0.0, 1.0)
        max_rows = int(_number("SERVICE_PREDICTION_LOG_MAX_ROWS", 1_000_000, 1, 1e12))
        max_age = _number("SERVICE_PREDICTION_LOG_MAX_AGE_DAYS", 90.0, 1e-6, 36500)
        return cls(url, features, sample, max_rows, max_age)

    def record(self, features: np.ndarray, predictions: np.ndarray, version: str, request_id: str | None) -> None:
        """Queue one request's rows (if sampled): ``features`` a records × features matrix in
        :attr:`features` order, ``predictions`` one value a record, ``request_id`` the client's
        (stored hashed: :func:`stored_request_id`) or None. Never blocks, never raises; the
        request must not change the arrays afterwards."""
        if self.sample < 1.0 and random.random() >= self.sample:  # noqa: S311 - sampling, not security
            return
        with self.lock:
            if self.queued + len(predictions) > QUEUE_ROWS:
                DROPPED.inc(len(predictions))
                return
            self.queued += len(predictions)
        when = datetime.fromtimestamp(self.clock(), UTC).isoformat(timespec="microseconds")
        self.pending.append((when, stored_request_id(request_id), version, features, predictions))

    def _write_forever(self) -> None:
        # Wake once every FLUSH_SECONDS (or at close), never per request: the database sees one
        # transaction a second, and the rows are built here, off the request's path.
        created = False
        while True:
            stopping = self.stopping.wait(FLUSH_SECONDS)
            batch: list[tuple[Any, ...]] = []
            while self.pending:
                when, request_id, version, features, predictions = self.pending.popleft()
                with self.lock:
                    self.queued -= len(predictions)
                head = (when, request_id, version)
                batch += [(*head, p, *row) for row, p in zip(features.tolist(), predictions.tolist(), strict=True)]
                if len(batch) >= BATCH:
                    created, batch = self._write(batch, created), []
            if batch:
                created = self._write(batch, created)
            if stopping:
                return

    def _write(self, batch: list[tuple[Any, ...]], created: bool) -> bool:
        """Write one batch (and trim the table); rows that cannot be written are counted as dropped."""
        if self.insert.positional:
            order = [self.columns.index(key) for key in self.insert.positiontup or ()]
            params: list[Any] = [tuple(row[i] for i in order) for row in batch]
        else:
            params = [dict(zip(self.columns, row, strict=True)) for row in batch]
        try:
            with self.engine.begin() as conn:
                if not created:
                    self.table.metadata.create_all(conn)
                    created = True
                conn.exec_driver_sql(str(self.insert), params)
                newest = conn.execute(sa.select(sa.func.max(self.table.c.id))).scalar_one()
                if newest is not None and newest > self.max_rows:
                    conn.execute(sa.delete(self.table).where(self.table.c.id <= newest - self.max_rows))
                now = self.clock()
                if now - self.aged >= AGE_CHECK_SECONDS:
                    oldest = datetime.fromtimestamp(now - self.max_age_seconds, UTC).isoformat(timespec="microseconds")
                    conn.execute(sa.delete(self.table).where(self.table.c.time < oldest))
                    self.aged = now
            LOGGED.inc(len(batch))
        except sa.exc.SQLAlchemyError:
            DROPPED.inc(len(batch))
        return created

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (up to ``timeout`` seconds), then stop."""
        self.stopping.set()
        self.thread.join(timeout)
        self.engine.dispose()
