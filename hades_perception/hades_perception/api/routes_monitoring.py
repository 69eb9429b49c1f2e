"""Monitoring over HTTP (scope read): the drift of the frames this server predicted
(served_drift.py: the node's test, a window per served version), and the drift reports
that monitor jobs (`hades-train monitor`) wrote.

Shadow agreement is the node's (it runs a shadow channel beside the served one): it
reaches this server through the live feed, GET /v1/live (routes_live.py).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from hades_perception.api.auth import ReadKey
from hades_perception.api.context import Context, context
from hades_perception.api.errors import ApiError, responses
from hades_perception.api.jobs import DONE, OUT_DIR
from hades_perception.api.served_drift import HISTORY_EVERY
from hades_perception.contract.bundle import Manifest

router = APIRouter(tags=["monitoring"])


class DriftSummary(BaseModel):
    model: dict[str, str] = Field(description="the served model's name and version: whose window this is")
    level: str = Field(description="OK, WARN or ERROR")
    message: str
    frames: int = Field(description="frames in the window (at most `window`)")
    window: int
    min_frames: int = Field(description="frames needed before drift is judged")
    signals: list[dict[str, Any]] = Field(description="per signal: KS statistic, threshold, shift, effect, level")


class DriftPoint(BaseModel):
    at: str = Field(description="UTC time the window was judged")
    frames_seen: int = Field(description="frames this version had predicted by then")
    window_frames: int
    level: str
    worst_signal: str = Field(description="the signal that drifted most; empty when none did")
    worst_ratio: float | None = Field(description="the most extreme signal's KS statistic / its threshold")


class DriftHistory(BaseModel):
    model: dict[str, str]
    every: int = Field(description="frames between two points")
    points: list[DriftPoint] = Field(description="oldest first")


class DriftReport(BaseModel):
    job: str
    finished_at: str | None
    by: str
    args: dict[str, Any]
    report: dict[str, Any] = Field(description="drift.json as hades-train monitor wrote it")


class DriftReports(BaseModel):
    reports: list[DriftReport]


def _served(ctx: Context) -> Manifest:
    """The served version's manifest; 503 before any version is served."""
    if not ctx.slot.serving:
        raise ApiError(503, "unavailable", "no model is served yet, so no frames were predicted")
    return ctx.slot.pipeline.manifest


@router.get(
    "/v1/monitoring/drift",
    response_model=DriftSummary,
    responses=responses(401, 403, 429, 503),
    summary="Drift of the frames this server predicted with the served version",
)
def drift(request: Request, _key: ReadKey) -> DriftSummary:
    ctx = context(request)
    return DriftSummary(**ctx.drift.summary(_served(ctx)))


@router.get(
    "/v1/monitoring/drift/history",
    response_model=DriftHistory,
    responses=responses(401, 403, 429, 503),
    summary="The served version's drift over time: its window judged every few frames",
)
def drift_history(request: Request, _key: ReadKey) -> DriftHistory:
    ctx = context(request)
    m = _served(ctx)
    points = [DriftPoint(**p) for p in ctx.drift.history(m)]
    return DriftHistory(model={"name": m.name, "version": m.version}, every=HISTORY_EVERY, points=points)


@router.get(
    "/v1/monitoring/reports",
    response_model=DriftReports,
    responses=responses(401, 403, 429),
    summary="Drift reports (drift.json) of finished monitor jobs, newest first",
)
def reports(request: Request, _key: ReadKey) -> DriftReports:
    ctx = context(request)
    found = []
    for job in ctx.jobs.recent(["monitor"]):
        path = ctx.jobs.path(job.id) / OUT_DIR / "drift.json"
        if job.status != DONE or not path.is_file():
            continue
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        doc.pop("current", None)  # a server path; the job's args say what was judged
        found.append(DriftReport(job=job.id, finished_at=job.finished_at, by=job.by, args=job.args, report=doc))
    return DriftReports(reports=found)
