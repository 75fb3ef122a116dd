"""FastAPI inference service: the default app of the `fastapi-inference` image template.

Endpoints
  GET  /healthz   200 {"status": "ok", ...} once the model is loaded (the template's health_check_path)
  POST /predict   {"inputs": ["text", ...]} -> {"model": ..., "predictions": [{"label": ..., "score": ...}]}

`PlaceholderModel` is a PLACEHOLDER for your model: it labels texts by length and returns made-up scores, so
the template can be deployed and checked without model weights. Replace `load_model()` and the model class with
your own (and add your packages to requirements.txt); keep the request and response shapes or change them
together with your clients. Settings come from the environment (see template.yaml).
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

log = logging.getLogger("inference")


def _env_int(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        sys.exit(f"app.py: environment variable {name}={raw!r} is not an integer")
    if value < minimum:
        sys.exit(f"app.py: environment variable {name}={value} must be at least {minimum}")
    return value


MODEL_NAME = os.environ.get("MODEL_NAME", "").strip() or "placeholder"
MODEL_VERSION = os.environ.get("MODEL_VERSION", "").strip() or "0"
MODEL_PATH = os.environ.get("MODEL_PATH", "").strip()
MAX_BATCH_SIZE = _env_int("MAX_BATCH_SIZE", 32)
MAX_INPUT_CHARS = _env_int("MAX_INPUT_CHARS", 4000)


class PlaceholderModel:
    """PLACEHOLDER for the user's model: NOT a real model.

    It calls texts of up to 20 characters "short" and longer ones "long", with a score derived from the length.
    Replace it with a class that loads your weights (from MODEL_PATH, say) and returns real predictions.
    """

    placeholder = True

    def predict(self, texts: list[str]) -> list[tuple[str, float]]:
        out = []
        for text in texts:
            length = len(text)
            label = "short" if length <= 20 else "long"
            score = round(min(1.0, 0.5 + abs(length - 20) / 80), 4)
            out.append((label, score))
        return out


def load_model() -> PlaceholderModel:
    """Loads the model once at start. Replace with your loading code (MODEL_PATH tells where the files are)."""
    if MODEL_PATH:
        log.warning("MODEL_PATH=%s is ignored by the placeholder model", MODEL_PATH)
    return PlaceholderModel()


class PredictRequest(BaseModel):
    inputs: list[str] = Field(min_length=1, max_length=MAX_BATCH_SIZE, description="Texts to score")


class Prediction(BaseModel):
    label: str
    score: float


class PredictResponse(BaseModel):
    model: str
    version: str
    placeholder: bool = Field(description="true while the template's placeholder model is in use")
    predictions: list[Prediction]


MODEL: PlaceholderModel | None = None


@asynccontextmanager
async def lifespan(_app: FastAPI):
    global MODEL
    MODEL = load_model()
    log.info("model %s (version %s) loaded", MODEL_NAME, MODEL_VERSION)
    yield
    MODEL = None


app = FastAPI(title=f"{MODEL_NAME} inference", version=MODEL_VERSION, lifespan=lifespan)


@app.get("/healthz")
def healthz() -> dict:
    if MODEL is None:
        raise HTTPException(status_code=503, detail="model not loaded")
    return {"status": "ok", "model": MODEL_NAME, "version": MODEL_VERSION}


@app.post("/predict", response_model=PredictResponse)
def predict(body: PredictRequest) -> PredictResponse:
    if MODEL is None:
        raise HTTPException(status_code=503, detail="model not loaded")
    for i, text in enumerate(body.inputs):
        if len(text) > MAX_INPUT_CHARS:
            raise HTTPException(
                status_code=422,
                detail=f"inputs[{i}] has {len(text)} characters; the limit is {MAX_INPUT_CHARS}",
            )
    results = MODEL.predict(body.inputs)
    return PredictResponse(
        model=MODEL_NAME,
        version=MODEL_VERSION,
        placeholder=getattr(MODEL, "placeholder", False),
        predictions=[Prediction(label=label, score=score) for label, score in results],
    )
