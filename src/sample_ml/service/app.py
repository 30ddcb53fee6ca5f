"""FastAPI application over one model bundle.

No ``from __future__ import annotations`` here: FastAPI must see the generated request
model as a real annotation, not a string it cannot resolve.

Records are validated by a pydantic model generated from the bundle's schema, so a bad
record gets a 422 that names the field. ``/health`` answers 503 until the model is loaded.
"""

import os
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from fastapi import FastAPI, HTTPException, Response
from pydantic import BaseModel, ConfigDict, Field, create_model

from sample_ml import __version__
from sample_ml.pipelines.bundle import Bundle, load_bundle
from sample_ml.pipelines.predict import predict_frame
from sample_ml.schema import CATEGORICAL, DIABETES, Schema

MAX_BATCH = 10_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def record_model(schema: Schema) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for col in schema.features:
        if col.kind == CATEGORICAL and col.categories:
            fields[col.name] = (Literal[col.categories], Field(description=col.description))  # type: ignore[valid-type]
        else:
            fields[col.name] = (float, Field(description=col.description))
    return create_model("Record", __base__=_Strict, **fields)


def request_model(schema: Schema) -> type[BaseModel]:
    record = record_model(schema)
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
    state: dict[str, Bundle] = {}
    if bundle is not None:
        schema = bundle.schema

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state["bundle"] = bundle if bundle is not None else load_bundle(bundle_dir or "")
        yield
        state.clear()

    app = FastAPI(title="sample-ml prediction service", version=__version__, lifespan=lifespan)
    Request = request_model(schema)

    def service_version() -> str:
        return os.environ.get("SERVICE_VERSION", __version__)

    @app.get("/health")
    def health(response: Response) -> dict[str, str]:
        if "bundle" not in state:
            response.status_code = 503
            return {"status": "loading"}
        return {"status": "ok"}

    @app.get("/metadata")
    def metadata() -> dict[str, Any]:
        if "bundle" not in state:
            raise HTTPException(503, "the model is still loading")
        meta = state["bundle"].metadata
        return {
            "model_name": meta["model_name"],
            "hyperparameters": meta.get("hyperparameters", {}),
            "trained_at": meta.get("trained_at"),
            "metrics": meta.get("metrics", {}),
            "data_fingerprint": meta.get("data", {}).get("fingerprint"),
            "package_version": meta.get("package_version"),
            "version": service_version(),
            "commit": os.environ.get("GIT_COMMIT") or meta.get("git_commit"),
            "image_digest": os.environ.get("IMAGE_DIGEST"),
            "features": state["bundle"].schema.feature_names,
        }

    @app.post("/predict", response_model=PredictResponse)
    def predict(request: Request) -> PredictResponse:  # type: ignore[valid-type]
        if "bundle" not in state:
            raise HTTPException(503, "the model is still loading")
        current = state["bundle"]
        records = request.model_dump()["records"]  # type: ignore[attr-defined]
        frame = pd.DataFrame.from_records(records, columns=current.schema.feature_names).astype("float64")
        predictions = predict_frame(current, frame)
        return PredictResponse(
            predictions=predictions.tolist(),
            model_name=current.metadata["model_name"],
            version=service_version(),
        )

    return app


def serve(bundle_dir: str | Path, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Run the service until SIGTERM or SIGINT, then drain requests and return (exit code 0)."""
    import uvicorn

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
