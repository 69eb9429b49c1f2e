"""Jobs over HTTP: a batch of predictions (POST /v1/predict/batch, scope predict) and
`hades-train` runs (POST /v1/jobs, scope train), followed by id: status, counts,
per-image errors and results, the log's tail, the MLflow run; cancelled by DELETE.

Who sees a job: a key with the scope that starting it needed (predict for a batch,
train for the rest). A lab shares its jobs; a key without that scope gets 403, as it
would have starting one.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from hades_perception.api import batch, train_jobs
from hades_perception.api.archives import BATCH_LIMITS
from hades_perception.api.auth import AnyKey, PredictKey, TrainKey, check_scope
from hades_perception.api.context import Context, context
from hades_perception.api.errors import ApiError, responses
from hades_perception.api.jobs import DONE, ID_PATTERN, OUT_DIR, Job
from hades_perception.api.routes_predict import binary, multipart_body, require_multipart

router = APIRouter(tags=["jobs"])
KIND_SCOPE = {"batch": "predict", **dict.fromkeys(train_jobs.KINDS, "train")}
MAX_OUTPUTS = 200
JobId = Annotated[str, PathParam(pattern=ID_PATTERN, max_length=32, description="a job id, as POST answered it")]
BATCH_BODY = multipart_body(
    {
        "images": {
            "type": "array",
            "items": {"type": "string", "format": "binary"},
            "description": f"plate images (PNG, JPEG, TIFF); at most {BATCH_LIMITS.members}",
        },
        "archive": binary(f"or one zip of images: {BATCH_LIMITS.describe()}"),
    }
)


class JobCreated(BaseModel):
    job: str
    kind: str
    status: str
    status_url: str
    log_url: str


class JobBody(BaseModel):
    job: str
    kind: str = Field(description="batch, train, evaluate, export, pipeline or monitor")
    status: str = Field(description="queued, running, done, failed or cancelled")
    by: str = Field(description="the name of the key that started it")
    created_at: str
    started_at: str | None
    finished_at: str | None
    args: dict[str, Any]
    error: str | None = Field(description="why it failed or was cancelled")
    exit_code: int | None = Field(description="hades-train's exit status")
    command: list[str] | None = Field(description="the hades-train command line, once it started")
    mlflow_run_id: str | None
    counts: dict[str, int] | None = Field(description="a batch: images, predicted, failed")
    errors: list[dict[str, str]] = Field(description="a batch: the images refused, each with why")
    results: list[dict[str, Any]] | None = Field(None, description="a done batch: a predict JSON per image")
    outputs: list[str] | None = Field(None, description="a hades-train job: files it wrote (in out/)")
    log_url: str


class JobList(BaseModel):
    jobs: list[JobBody]


class JobLog(BaseModel):
    job: str
    status: str
    lines: list[str]


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["train", "evaluate", "export", "pipeline", "monitor", "azure_train", "azure_pipeline"]
    args: dict[str, Any] = Field(
        default_factory=dict,
        description="the subcommand's options by name (e.g. max_items); paths as 'served', 'dataset:ID', "
        "'job:ID/sub/path' or an absolute path in a data dir",
    )


def created(job: Job) -> JobCreated:
    return JobCreated(
        job=job.id, kind=job.kind, status=job.status, status_url=f"/v1/jobs/{job.id}", log_url=f"/v1/jobs/{job.id}/log"
    )


def body(ctx: Context, job: Job, full: bool) -> JobBody:
    doc = JobBody(
        job=job.id,
        kind=job.kind,
        status=job.status,
        by=job.by,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        args=job.args,
        error=job.error,
        exit_code=job.exit_code,
        command=job.command,
        mlflow_run_id=job.mlflow_run_id,
        counts=job.counts,
        errors=job.errors,
        results=None,
        outputs=None,
        log_url=f"/v1/jobs/{job.id}/log",
    )
    if full and job.kind == "batch" and job.status == DONE:
        doc.results = batch.results(ctx.jobs.path(job.id))
    elif full and job.kind != "batch":
        out = ctx.jobs.path(job.id) / OUT_DIR
        files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) if out.is_dir() else []
        doc.outputs = files[:MAX_OUTPUTS]
    return doc


def visible(request: Request, key: Any, job_id: str) -> Job:
    """The job, when it exists (404) and the key has its kind's scope (403)."""
    job = context(request).jobs.get(job_id)
    if job is None:
        raise ApiError(404, "not found", f"no job {job_id}: it never existed or was pruned (GET /v1/jobs lists them)")
    check_scope(request, key, KIND_SCOPE[job.kind], f" (a {job.kind} job)")
    return job


JOB_ERRORS = responses(401, 403, 404, 422, 429)


@router.post(
    "/v1/predict/batch",
    status_code=202,
    response_model=JobCreated,
    responses=responses(400, 401, 403, 413, 415, 422, 429, 503),
    openapi_extra=BATCH_BODY,
    summary="Predict several images (files or one zip) as a job; follow it at status_url",
)
async def predict_batch(request: Request, key: PredictKey) -> JobCreated:
    require_multipart(request, "images in field 'images' or one zip in 'archive'", "curl -F images=@a.png -F ...")
    form = await request.form(max_files=BATCH_LIMITS.members, max_fields=8)
    try:
        files = list(form.getlist("images"))
        archive = form.get("archive")
        if any(not isinstance(f, UploadFile) for f in files) or (
            archive is not None and not isinstance(archive, UploadFile)
        ):
            raise ApiError(422, "invalid request", "'images' and 'archive' must be files, not text fields")
        if bool(files) == (archive is not None):
            fields = ", ".join(sorted(set(form.keys()))) or "none"
            raise ApiError(
                422,
                "invalid request",
                "send image files in the field 'images' (repeated) or one zip in 'archive', not both "
                f"(fields: {fields})",
            )
        uploads = [f for f in files if isinstance(f, UploadFile)]
        ctx = context(request)
        zipped = archive if isinstance(archive, UploadFile) else None

        def submit() -> Job:
            with ctx.jobs.staging() as staging:
                names = batch.stage(staging, uploads, zipped)
                args = {"images": len(names), "source": "archive" if zipped else "files"}
                return ctx.jobs.submit(
                    "batch",
                    "predict",
                    key.name,
                    args,
                    lambda handle: batch.predict_all(ctx, handle),
                    staged=staging,
                    counts={"images": len(names), "predicted": 0, "failed": 0},
                )

        job = await run_in_threadpool(submit)
    finally:
        await form.close()
    return created(job)


@router.post(
    "/v1/jobs",
    status_code=202,
    response_model=JobCreated,
    responses=responses(400, 401, 403, 409, 422, 429, 503),
    summary="Start a hades-train run (train, evaluate, export, pipeline, monitor; or on Azure ML) as a job",
)
def start_job(request: Request, req: JobRequest, key: TrainKey) -> JobCreated:
    ctx = context(request)
    store_url = str(ctx.settings.param("store_url")) if ctx.follower is not None else ""
    model = ctx.follower.model if ctx.follower is not None else ""
    plan = train_jobs.plan(
        req.kind,
        req.args,
        ctx.places(),
        store_url,
        model,
        ctx.settings.work_dir / "pipeline-state.json",
        azure=ctx.settings.azure_ml,
    )
    command = ctx.settings.train_command
    job = ctx.jobs.submit(req.kind, "train", key.name, req.args, lambda handle: train_jobs.run(handle, plan, command))
    return created(job)


@router.get("/v1/jobs", response_model=JobList, responses=responses(401, 403, 429), summary="Jobs, newest first")
def list_jobs(request: Request, key: AnyKey) -> JobList:
    kinds = [kind for kind, scope in KIND_SCOPE.items() if scope in key.scopes]
    if not kinds:
        check_scope(request, key, "train", " (jobs are seen with the scope that starts them: predict or train)")
    ctx = context(request)
    return JobList(jobs=[body(ctx, job, full=False) for job in ctx.jobs.recent(kinds)])


@router.get("/v1/jobs/{job_id}", response_model=JobBody, responses=JOB_ERRORS, summary="A job: status and results")
def get_job(request: Request, job_id: JobId, key: AnyKey) -> JobBody:
    return body(context(request), visible(request, key, job_id), full=True)


@router.get("/v1/jobs/{job_id}/log", response_model=JobLog, responses=JOB_ERRORS, summary="The end of a job's log")
def job_log(
    request: Request,
    job_id: JobId,
    key: AnyKey,
    tail: Annotated[int, Query(ge=1, le=10000, description="lines from the end")] = 100,
) -> JobLog:
    job = visible(request, key, job_id)
    return JobLog(job=job.id, status=job.status, lines=context(request).jobs.log_tail(job.id, tail))


@router.delete(
    "/v1/jobs/{job_id}",
    response_model=JobBody,
    responses=responses(401, 403, 404, 409, 422, 429),
    summary="Cancel a queued or running job (a subprocess gets SIGTERM)",
)
def cancel_job(request: Request, job_id: JobId, key: AnyKey) -> JobBody:
    visible(request, key, job_id)
    ctx = context(request)
    return body(ctx, ctx.jobs.cancel(job_id), full=True)
