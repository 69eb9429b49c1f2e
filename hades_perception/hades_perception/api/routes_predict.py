"""POST /v1/predict: one image in, the prediction JSON out (Prediction.to_json: model,
landmarks, plants with traits, certainty, monitoring, timing_ms).

Masks and the overlay come inline, as base64 PNGs in the same JSON (`?masks=true`:
{"masks": {class: PNG}}, uint8 0/255 at image size; `?overlay=true`: {"overlay": PNG},
the picture `hades-perception predict --overlay` writes; `?preview=true`: {"preview":
JPEG}, the image as the pipeline read it, 8-bit RGB at full size, which a browser can
show whatever was sent: TIFF, 16-bit, grey). Nothing is stored on the
server, so there is nothing to clean up, to expire or to leak to another key.

The request's order is the cost's order: the key (no body read yet), the content type,
the body (capped by limits.BodyLimit), the image header (format and size, nothing
decoded), then under the inference lock the decode and the pipeline. The pipeline is
read from the slot once, under that lock: a model swap takes effect between requests,
and a request finishes on the version it started with. Each prediction's monitoring
signals go into the drift window of the version that made it (served_drift.py).
run_prediction is also what a batch job runs per image (batch.py).
"""

from __future__ import annotations

import base64
import time
from typing import Annotated, Any, BinaryIO

import cv2
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from hades_perception.api.auth import PredictKey
from hades_perception.api.context import Context, context
from hades_perception.api.errors import ApiError, responses
from hades_perception.api.uploads import decode, png_bytes, read_header
from hades_perception.inference.overlay import prediction_picture
from hades_perception.inference.pipeline import InputError, as_rgb8

router = APIRouter(tags=["predict"])
FIELD = "image"
PREVIEW_QUALITY = 85


def multipart_body(fields: dict[str, dict[str, Any]], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """The OpenAPI request body of a multipart form route (FastAPI cannot infer it: the
    routes read the stream themselves, to cap its size)."""
    schema: dict[str, Any] = {"type": "object", "properties": fields}
    if required:
        schema["required"] = list(required)
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


def binary(description: str) -> dict[str, Any]:
    return {"type": "string", "format": "binary", "description": description}


UPLOAD_BODY = multipart_body({FIELD: binary("A PNG, JPEG or TIFF plate image: 8- or 16-bit, grey or RGB")}, (FIELD,))


class PredictionBody(BaseModel):
    """Prediction.to_json() (inference/prediction.py documents every field), plus what was asked for."""

    image: dict[str, int]
    model: dict[str, str]
    landmarks: list[dict[str, Any]]
    plants: list[dict[str, Any]]
    certainty: dict[str, Any]
    calibration: dict[str, Any]
    monitoring: dict[str, float]
    timing_ms: dict[str, float]
    masks: dict[str, str] | None = Field(None, description="?masks=true: class -> base64 PNG (uint8 0/255)")
    overlay: str | None = Field(None, description="?overlay=true: base64 PNG, masks and landmarks beside certainty")
    preview: str | None = Field(None, description="?preview=true: base64 JPEG, the image as read (8-bit RGB)")


def _b64png(image: Any) -> str:
    return base64.b64encode(png_bytes(image)).decode("ascii")


def _b64jpeg(rgb: Any) -> str:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, PREVIEW_QUALITY])
    if not ok:
        raise RuntimeError("JPEG encoding of the preview failed")
    return base64.b64encode(data.tobytes()).decode("ascii")


def run_prediction(
    ctx: Context, file: BinaryIO, masks: bool, overlay: bool, preview: bool = False
) -> tuple[dict[str, Any], str]:
    """The JSON for one uploaded file, and a Server-Timing header value (ms by stage);
    counted, and timed for the metrics endpoint when it is on."""
    ctx.counters.count("received")
    try:
        body, stages = _predict(ctx, file, masks, overlay, preview)
    except Exception:
        ctx.counters.count("errors")
        raise
    ctx.counters.count("processed")
    if ctx.metrics is not None:
        ctx.metrics.observe(stages)
    return body, ", ".join(f"{k};dur={v:.1f}" for k, v in stages.items())


def _predict(
    ctx: Context, file: BinaryIO, masks: bool, overlay: bool, preview: bool
) -> tuple[dict[str, Any], dict[str, float]]:
    t0 = time.perf_counter()
    header = read_header(file)
    t1 = time.perf_counter()
    with ctx.inference:
        t2 = time.perf_counter()
        if not ctx.slot.serving:
            raise ApiError(503, "unavailable", "no model is served yet; see /v2/health/ready")
        pipeline = ctx.slot.pipeline  # once per request
        image = decode(file.read(), header)
        t3 = time.perf_counter()
        try:
            pred = pipeline(image)
        except InputError as exc:
            raise ApiError(415, "unsupported image", f"{exc}; send 8- or 16-bit grey or RGB") from exc
        t4 = time.perf_counter()
    ctx.drift.add(pipeline.manifest, pred.signals)
    body = pred.to_json()
    if masks:
        body["masks"] = {cls: _b64png(mask) for cls, mask in pred.masks.items()}
    if overlay:
        body["overlay"] = _b64png(prediction_picture(as_rgb8(image), pred))
    if preview:
        body["preview"] = _b64jpeg(as_rgb8(image))
    t5 = time.perf_counter()
    seconds = {"header": t1 - t0, "wait": t2 - t1, "decode": t3 - t2, "pipeline": t4 - t3, "encode": t5 - t4}
    stages = {k: v * 1e3 for k, v in seconds.items()} | {k: v for k, v in pred.timing_ms.items() if k != "total"}
    stages["total"] = (t5 - t0) * 1e3
    return body, stages


def require_multipart(request: Request, holding: str, example: str) -> None:
    """415 unless the body is multipart/form-data."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "multipart/form-data":
        raise ApiError(
            415,
            "unsupported media type",
            f"expected multipart/form-data with {holding}, got {media or 'no Content-Type'}; e.g. {example}",
        )


@router.post(
    "/v1/predict",
    summary="Masks, root tips, plants and certainty for one plate image",
    response_model=PredictionBody,
    response_model_exclude_none=True,
    responses=responses(400, 401, 403, 413, 415, 422, 429, 503),
    openapi_extra=UPLOAD_BODY,
)
async def predict(
    request: Request,
    _key: PredictKey,
    masks: Annotated[bool, Query(description="add {'masks': {class: base64 PNG}}")] = False,
    overlay: Annotated[bool, Query(description="add {'overlay': base64 PNG}")] = False,
    preview: Annotated[bool, Query(description="add {'preview': base64 JPEG of the image as read}")] = False,
) -> JSONResponse:
    require_multipart(request, f"the image in field {FIELD!r}", f"curl -F {FIELD}=@plate.png")
    form = await request.form(max_files=1, max_fields=8)
    try:
        upload = form.get(FIELD)
        if not isinstance(upload, UploadFile):
            fields = ", ".join(sorted(form.keys())) or "none"
            missing = f"the multipart field {FIELD!r} with an image file is missing (fields: {fields})"
            raise ApiError(422, "invalid request", missing)
        body, timing = await run_in_threadpool(run_prediction, context(request), upload.file, masks, overlay, preview)
    finally:
        await form.close()
    return JSONResponse(body, headers={"Server-Timing": timing})
