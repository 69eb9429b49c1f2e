"""Labelled data over HTTP (scope train): upload a zip in the Hades layout, validated
item by item before anything is kept (datasets.py), list, look at and delete what was
kept. A kept dataset's id names the data of a job: {"new_data": "dataset:<id>"}.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from hades_perception.api.archives import DATASET_LIMITS
from hades_perception.api.auth import TrainKey
from hades_perception.api.context import context
from hades_perception.api.datasets import ID_PATTERN
from hades_perception.api.errors import ApiError, responses
from hades_perception.api.routes_predict import binary, multipart_body, require_multipart

router = APIRouter(tags=["datasets"])
FIELD = "archive"
DatasetId = Annotated[str, PathParam(pattern=ID_PATTERN, max_length=32, description="a dataset id")]
UPLOAD_BODY = multipart_body(
    {
        FIELD: binary(
            "a zip in the Hades layout (images/, masks/, optional landmarks/, "
            f"optional train/ val/ test/): {DATASET_LIMITS.describe()}"
        )
    },
    (FIELD,),
)


class Rejection(BaseModel):
    item: str
    reason: str


class DatasetBody(BaseModel):
    dataset: str
    created_at: str
    by: str
    items: int = Field(description="items kept (each an image with its masks)")
    splits: dict[str, int] = Field(description="items per split ('' for a flat folder)")
    rejected: list[Rejection]
    ignored: int = Field(description="files outside images/, masks/ and landmarks/, not kept")
    ignored_files: list[str]


class DatasetList(BaseModel):
    datasets: list[DatasetBody]


class Deleted(BaseModel):
    dataset: str
    deleted: bool


@router.post(
    "/v1/datasets",
    status_code=201,
    response_model=DatasetBody,
    responses=responses(400, 401, 403, 413, 415, 422, 429),
    openapi_extra=UPLOAD_BODY,
    summary="Upload labelled data (a zip in the Hades layout), validated before it is kept",
)
async def upload_dataset(request: Request, key: TrainKey) -> DatasetBody:
    require_multipart(request, f"a zip in field {FIELD!r}", f"curl -F {FIELD}=@plates.zip")
    form = await request.form(max_files=1, max_fields=8)
    try:
        upload = form.get(FIELD)
        if not isinstance(upload, UploadFile):
            fields = ", ".join(sorted(form.keys())) or "none"
            raise ApiError(
                422, "invalid request", f"the multipart field {FIELD!r} with a zip is missing (fields: {fields})"
            )
        record = await run_in_threadpool(context(request).datasets.add, upload.file, key.name)
    finally:
        await form.close()
    return DatasetBody(**record)


@router.get("/v1/datasets", response_model=DatasetList, responses=responses(401, 403, 429), summary="Datasets")
def list_datasets(request: Request, _key: TrainKey) -> DatasetList:
    return DatasetList(datasets=[DatasetBody(**r) for r in context(request).datasets.records()])


def _record(request: Request, dataset: str) -> dict[str, Any]:
    record = context(request).datasets.record(dataset)
    if record is None:
        raise ApiError(404, "not found", f"no dataset {dataset} (GET /v1/datasets lists them)")
    return record


@router.get(
    "/v1/datasets/{dataset}",
    response_model=DatasetBody,
    responses=responses(401, 403, 404, 422, 429),
    summary="A dataset: items, splits, rejections",
)
def get_dataset(request: Request, dataset: DatasetId, _key: TrainKey) -> DatasetBody:
    return DatasetBody(**_record(request, dataset))


@router.delete(
    "/v1/datasets/{dataset}",
    response_model=Deleted,
    responses=responses(401, 403, 404, 409, 422, 429),
    summary="Delete a dataset no queued or running job uses",
)
def delete_dataset(request: Request, dataset: DatasetId, _key: TrainKey) -> Deleted:
    _record(request, dataset)
    ctx = context(request)
    users = [j.id for j in ctx.jobs.recent() if not j.finished and f"dataset:{dataset}" in str(j.args)]
    if users:
        raise ApiError(409, "conflict", f"dataset {dataset} is used by job(s) {users}; wait or cancel them first")
    ctx.datasets.delete(dataset)
    return Deleted(dataset=dataset, deleted=True)
