"""FastAPI application over one model bundle.

No ``from __future__ import annotations`` here: FastAPI must see the generated request
model as a real annotation, not a string it cannot resolve.

Records are validated by a pydantic model generated from the bundle's schema, so a bad
record gets a 422 that names the field. ``/health`` answers 503 until the model is loaded.

Input cannot hurt it: a body over ``SERVICE_MAX_BODY_BYTES`` (default 6 MiB) is answered 413
before it is parsed; at most ``MAX_BATCH`` records; every numeric feature finite and within the
bounds of the training data (the bundle's summary, widened by ``SERVICE_BOUNDS_MARGIN`` times
its range on each side, default 1.0); a 422 names the field and the allowed range and never
echoes the input. ``/docs`` and ``/openapi.json`` exist only with ``SERVICE_DOCS=1``;
``/metadata`` shows the version, commit and image digest (and the model name), the rest only
with ``SERVICE_METADATA=full``. ``/metrics`` is Prometheus (``sample_ml.service.metrics``) unless
``SERVICE_METRICS=0``; the prediction log (``sample_ml.service.prediction_log``) is opt-in.
"""

import os
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from fastapi import FastAPI, Header, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, create_model

from sample_ml import __version__
from sample_ml.pipelines.bundle import Bundle, load_bundle
from sample_ml.pipelines.predict import predict_frame
from sample_ml.schema import CATEGORICAL, DIABETES, Schema
from sample_ml.service import metrics
from sample_ml.service.prediction_log import PredictionLog

MAX_BATCH = 10_000
MAX_BODY_BYTES = 6 * 1024 * 1024  # 10,000 records of the sample's ten features fit with room
MAX_ERRORS = 20  # a 422 lists at most this many problems


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {raw!r}")
    return value


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets a 413 before anything parses it,
    by its Content-Length or, for a streamed body, as soon as the bytes received pass the limit.
    A body within the limit is read here and handed on whole."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def _refuse(self, send: Any) -> None:
        body = f'{{"detail": "the request body is over {self.limit} bytes (SERVICE_MAX_BODY_BYTES)"}}'.encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await self._refuse(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        body, handed = b"".join(chunks), False

        async def replay() -> Any:
            nonlocal handed
            if not handed:
                handed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # then: the disconnect, when it comes

        await self.app(scope, replay, send)


def feature_bounds(metadata: dict[str, Any], margin: float) -> dict[str, tuple[float, float]]:
    """Per numeric feature: the training data's min and max, each widened by ``margin`` times the range."""
    features = (metadata.get("data", {}).get("summary") or {}).get("features") or {}
    bounds = {}
    for name, summary in features.items():
        if "min" in summary and "max" in summary:
            lo, hi = float(summary["min"]), float(summary["max"])
            widen = margin * ((hi - lo) or abs(hi) or 1.0)
            bounds[name] = (lo - widen, hi + widen)
    return bounds


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def record_model(schema: Schema, bounds: dict[str, tuple[float, float]] | None = None) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for col in schema.features:
        if col.kind == CATEGORICAL and col.categories:
            fields[col.name] = (Literal[col.categories], Field(description=col.description))  # type: ignore[valid-type]
        elif col.name in (bounds or {}):
            lo, hi = (bounds or {})[col.name]
            fields[col.name] = (float, Field(description=col.description, ge=lo, le=hi))
        else:
            fields[col.name] = (float, Field(description=col.description))
    return create_model("Record", __base__=_Strict, **fields)


def request_model(schema: Schema, bounds: dict[str, tuple[float, float]] | None = None) -> type[BaseModel]:
    record = record_model(schema, bounds)
    return create_model(
        "PredictRequest",
        __base__=_Strict,
        records=(list[record], Field(min_length=1, max_length=MAX_BATCH)),  # type: ignore[valid-type]
    )


class PredictResponse(BaseModel):
    predictions: list[float]
    model_name: str
    version: str


def create_app(
    bundle_dir: str | Path | None = None, bundle: Bundle | None = None, schema: Schema = DIABETES
) -> FastAPI:
    """Serve ``bundle`` (already loaded) or the bundle at ``bundle_dir`` (loaded at start-up)."""
    state: dict[str, Any] = {}
    trained: dict[str, Any] = {}
    if bundle is not None:
        schema, trained = bundle.schema, bundle.metadata
    elif bundle_dir is not None and (Path(bundle_dir) / "metadata.json").is_file():
        import json  # the bounds must be known before the first request: read them now

        trained = json.loads((Path(bundle_dir) / "metadata.json").read_text())
    bounds = feature_bounds(trained, _env_number("SERVICE_BOUNDS_MARGIN", 1.0))
    docs = os.environ.get("SERVICE_DOCS") == "1"
    measured = os.environ.get("SERVICE_METRICS", "1") != "0"
    full_metadata = os.environ.get("SERVICE_METADATA") == "full"

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state["bundle"] = bundle if bundle is not None else load_bundle(bundle_dir or "")
        meta = state["bundle"].metadata
        commit = os.environ.get("GIT_COMMIT") or meta.get("git_commit") or ""
        metrics.MODEL_INFO.labels(
            meta["model_name"], service_version(), os.environ.get("IMAGE_DIGEST", ""), commit
        ).set(1)
        state["log"] = PredictionLog.from_env(state["bundle"].schema.feature_names)
        yield
        if state.get("log") is not None:
            state["log"].close()
        state.clear()

    app = FastAPI(
        title="sample-ml prediction service",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.add_middleware(BodyLimit, limit=int(_env_number("SERVICE_MAX_BODY_BYTES", MAX_BODY_BYTES)))
    if measured:
        app.add_middleware(metrics.RequestMetrics)  # outermost: a 413 is counted too
    PredictRequest = request_model(schema, bounds)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        """Where and why, never the input itself (it may be huge, or not even JSON-encodable)."""
        problems = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in err.errors()[:MAX_ERRORS]
        ]
        return JSONResponse(status_code=422, content={"detail": problems, "errors": len(err.errors())})

    def service_version() -> str:
        return os.environ.get("SERVICE_VERSION", __version__)

    @app.get("/health")
    def health(response: Response) -> dict[str, str]:
        if "bundle" not in state:
            response.status_code = 503
            return {"status": "loading"}
        return {"status": "ok"}

    if measured:

        @app.get("/metrics", include_in_schema=False)  # Prometheus text, not part of the JSON API
        def prometheus() -> Response:
            return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)

    @app.get("/metadata")
    def metadata() -> dict[str, Any]:
        if "bundle" not in state:
            raise HTTPException(503, "the model is still loading")
        meta = state["bundle"].metadata
        shown = {
            "model_name": meta["model_name"],
            "version": service_version(),
            "commit": os.environ.get("GIT_COMMIT") or meta.get("git_commit"),
            "image_digest": os.environ.get("IMAGE_DIGEST"),
        }
        if not full_metadata:
            return shown
        return {
            **shown,
            "hyperparameters": meta.get("hyperparameters", {}),
            "trained_at": meta.get("trained_at"),
            "metrics": meta.get("metrics", {}),
            "data_fingerprint": meta.get("data", {}).get("fingerprint"),
            "package_version": meta.get("package_version"),
            "features": state["bundle"].schema.feature_names,
            "bounds": {name: list(b) for name, b in bounds.items()},
        }

    @app.post("/predict", response_model=PredictResponse)
    def predict(
        request: PredictRequest,  # type: ignore[valid-type]
        x_request_id: str | None = Header(default=None, max_length=64),
    ) -> PredictResponse:
        if "bundle" not in state:
            raise HTTPException(503, "the model is still loading")
        current = state["bundle"]
        records = request.model_dump()["records"]  # type: ignore[attr-defined]
        frame = pd.DataFrame.from_records(records, columns=current.schema.feature_names).astype("float64")
        predictions = predict_frame(current, frame)
        if not np.isfinite(predictions).all():  # never a 500 for a number JSON cannot carry
            raise HTTPException(422, "the model gives no finite prediction for some of these records")
        if measured:
            metrics.observe_predictions(predictions)
        if state.get("log") is not None:
            state["log"].record(frame.to_numpy(), predictions, service_version(), x_request_id)
        return PredictResponse(
            predictions=predictions.tolist(),
            model_name=current.metadata["model_name"],
            version=service_version(),
        )

    return app


def app_from_env() -> FastAPI:
    """The app a worker process makes (``serve`` with several workers): the bundle in ``MODEL_DIR``."""
    return create_app(os.environ["MODEL_DIR"])


def serve(
    bundle_dir: str | Path, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info", workers: int = 1
) -> None:
    """Run the service until SIGTERM or SIGINT, then drain requests and return (exit code 0).

    With ``workers`` > 1, uvicorn runs that many processes (each loads the bundle); the metrics
    go through prometheus-client's multiprocess mode in a fresh ``PROMETHEUS_MULTIPROC_DIR``.
    """
    import uvicorn

    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if workers > 1:
        import shutil
        import tempfile

        load_bundle(bundle_dir)  # fail before binding the port if the bundle is bad
        folder = tempfile.mkdtemp(prefix="metrics-")  # /tmp is a tmpfs in the service container
        os.environ.update(MODEL_DIR=str(Path(bundle_dir).resolve()), PROMETHEUS_MULTIPROC_DIR=folder)
        try:
            uvicorn.run(
                "sample_ml.service.app:app_from_env", factory=True, host=host, port=port,
                log_level=log_level, workers=workers,
            )  # fmt: skip
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return

    class _Server(uvicorn.Server):
        # uvicorn re-raises the captured signal after a graceful shutdown, so the process would
        # die "killed by SIGTERM" (143). A stop we were asked for is a clean exit: return instead.
        @contextmanager
        def capture_signals(self) -> Iterator[None]:
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGTERM, signal.SIGINT)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    bundle = load_bundle(bundle_dir)  # fail before binding the port if the bundle is bad
    config = uvicorn.Config(create_app(bundle=bundle), host=host, port=port, log_level=log_level, workers=1)
    _Server(config).run()
