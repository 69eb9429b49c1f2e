"""Open Inference Protocol (v2) health and metadata, so KServe-style probes and clients
find the server: live, ready, server metadata, model metadata, model ready.

Health routes carry no key (probes have none); metadata needs the read scope. The
model's metadata describes its ONNX graph from the manifest (tensor names, types,
shapes, classes). The protocol's infer route, which takes that normalised tensor, is not
offered: images go to /v1/predict, which runs the whole pipeline around the graph.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from pydantic import BaseModel

import hades_perception
from hades_perception.api.auth import ReadKey
from hades_perception.api.context import context
from hades_perception.api.errors import ApiError, responses
from hades_perception.contract.bundle import Manifest

router = APIRouter(tags=["open inference protocol v2"])
DATATYPES = {"float32": "FP32", "float16": "FP16", "uint8": "UINT8", "int8": "INT8"}


class Live(BaseModel):
    live: bool


class Ready(BaseModel):
    ready: bool


class ModelReady(BaseModel):
    name: str
    ready: bool


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]
    parameters: dict[str, Any] | None = None


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


def metadata(m: Manifest) -> ModelMetadata:
    """OIP model metadata from a manifest: -1 for the sizes the pipeline chooses per image."""
    raw_in = m.raw["input"]
    seg, lm = m.raw["outputs"]["segmentation"], m.raw["outputs"]["landmarks"]
    dtype = DATATYPES.get(str(raw_in.get("dtype", "float32")), str(raw_in.get("dtype")).upper())
    keep = ("layout", "channels", "normalisation", "crop", "scale", "tile", "tile_overlap", "size_divisor")
    return ModelMetadata(
        name=m.name,
        versions=[m.version],
        platform="onnxruntime",
        inputs=[
            TensorMetadata(
                name=m.input.tensor,
                datatype=dtype,
                shape=[-1, len(m.input.mean), -1, -1],
                parameters={k: raw_in[k] for k in keep if k in raw_in},
            )
        ],
        outputs=[
            TensorMetadata(
                name=m.outputs.seg_tensor,
                datatype="FP32",
                shape=[-1, len(m.outputs.classes), -1, -1],
                parameters={"classes": list(m.outputs.classes), "activation": seg.get("activation"), "stride": 1},
            ),
            TensorMetadata(
                name=m.outputs.landmark_tensor,
                datatype="FP32",
                shape=[-1, len(m.outputs.landmark_kinds), -1, -1],
                parameters={
                    "kinds": list(m.outputs.landmark_kinds),
                    "activation": lm.get("activation"),
                    "stride": m.outputs.landmark_stride,
                },
            ),
        ],
    )


def served(request: Request, name: str) -> Manifest:
    slot = context(request).slot
    if not slot.serving:
        raise ApiError(503, "unavailable", "no model is served yet")
    manifest = slot.pipeline.manifest
    if name != manifest.name:
        raise ApiError(404, "not found", f"this server serves model {manifest.name!r}, not {name!r}")
    return manifest


Name = Annotated[str, PathParam(description="the served model's name (its manifest's)", max_length=256)]


@router.get("/v2/health/live", response_model=Live, responses=responses(422), summary="The server is up")
def live() -> Live:
    return Live(live=True)


@router.get(
    "/v2/health/ready",
    response_model=Ready,
    responses={**responses(422), 503: {"model": Ready, "description": "Nothing is served yet"}},
    summary="A model is served",
)
def ready(request: Request) -> Any:
    if context(request).slot.serving:
        return Ready(ready=True)
    return JSONResponse({"ready": False}, status_code=503)


@router.get("/v2", response_model=ServerMetadata, responses=responses(401, 403, 429), summary="Server metadata")
def server_metadata(_key: ReadKey) -> ServerMetadata:
    return ServerMetadata(name="hades-perception", version=hades_perception.__version__, extensions=[])


@router.get(
    "/v2/models/{name}",
    response_model=ModelMetadata,
    responses=responses(401, 403, 404, 422, 429, 503),
    summary="The served model's metadata (its ONNX graph's tensors)",
)
def model_metadata(request: Request, name: Name, _key: ReadKey) -> ModelMetadata:
    return metadata(served(request, name))


@router.get(
    "/v2/models/{name}/ready",
    response_model=ModelReady,
    responses=responses(404, 422, 503),
    summary="The named model is served",
)
def model_ready(request: Request, name: Name) -> ModelReady:
    served(request, name)
    return ModelReady(name=name, ready=True)
