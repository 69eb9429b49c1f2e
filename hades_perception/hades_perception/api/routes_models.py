"""Models over HTTP: what the store holds (versions, channels, a version's manifest
summary, metrics, lineage and records), and the two moves a person makes, promote and
roll back, through the same ModelStore calls as `hades-model`.

Without a store (a server started on a bundle folder) the listing is the served
bundle, and moves are refused (409): there is no channel to move.

Moves need the promote scope and a reason; they are recorded with the key's name as
`by`. Production needs confirm=true: without it the answer is 409 with what is known
about the version (the retraining pipeline's gates, drift, shadow agreement), the same
evidence `hades-model promote` shows before it asks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, Field, StringConstraints

from hades_perception.api.auth import PromoteKey, ReadKey
from hades_perception.api.context import Context, context
from hades_perception.api.errors import ApiError, responses
from hades_perception.contract.signing import SIGNATURE_FILE
from hades_perception.models.blobs import ConflictError, NotFoundError, StoreError
from hades_perception.models.cli import evidence_text
from hades_perception.models.store import PRODUCTION, ModelStore, Pointer, version_summary

router = APIRouter(tags=["models"])
# Names of models, versions and channels: they become store keys, so nothing that climbs.
PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+-]*$"
Token = Annotated[str, StringConstraints(pattern=PATTERN, max_length=128)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
ModelName = Annotated[str, PathParam(pattern=PATTERN, max_length=128, description="model name, as in the store")]
VersionName = Annotated[str, PathParam(pattern=PATTERN, max_length=128, description="a published version")]


class ModelEntry(BaseModel):
    name: str
    serving: str | None = Field(None, description="the version this server serves, when it is this model")


class ModelList(BaseModel):
    source: str = Field(description="'store' or 'bundle' (a server started on a bundle folder)")
    location: str
    models: list[ModelEntry]


class VersionEntry(BaseModel):
    version: str
    created_at: str
    channels: list[str]


class ModelDetail(BaseModel):
    name: str
    serving: str | None
    followed_channel: str | None
    versions: list[VersionEntry]
    channels: dict[str, dict[str, Any]] = Field(description="channel -> pointer: version, by, at, reason, history")


class VersionDetail(BaseModel):
    name: str
    version: str
    created_at: str
    signed: bool
    classes: list[str]
    landmark_kinds: list[str]
    plants: int | None
    files: dict[str, int]
    metrics: dict[str, Any]
    lineage: dict[str, Any]
    records: dict[str, dict[str, Any]]
    channels: list[str]
    serving: bool


class Move(BaseModel):
    version: Token = Field(description="the version to promote")
    channel: Token = Field(description="e.g. canary or production; never implied")
    reason: Reason = Field(description="why; recorded in the channel's history")
    confirm: bool = Field(False, description=f"required for {PRODUCTION}: a person read the evidence")


class Rollback(BaseModel):
    version: Token | None = Field(
        None, description="optional: the version the channel serves now and that you roll back from (checked)"
    )
    channel: Token
    reason: Reason
    confirm: bool = Field(False, description=f"required for {PRODUCTION}")


class MoveResult(BaseModel):
    model: str
    channel: str
    version: str
    previous: str | None
    by: str
    at: str
    reason: str
    action: str
    serving: str = Field(description="what this server serves now; a followed channel swaps at the next poll")


@contextlib.contextmanager
def store_errors() -> Iterator[None]:
    try:
        yield
    except NotFoundError as exc:
        raise ApiError(404, "not found", str(exc)) from exc
    except ConflictError as exc:
        raise ApiError(409, "conflict", str(exc)) from exc
    except StoreError as exc:
        raise ApiError(503, "store unavailable", f"the model store cannot be reached: {exc}") from exc


def _bundle(ctx: Context, name: str) -> dict[str, Any]:
    manifest = ctx.slot.pipeline.manifest
    if name != manifest.name:
        raise ApiError(404, "not found", f"this server serves the bundle of {manifest.name!r} only, not {name!r}")
    return manifest.raw


def _store(ctx: Context, doing: str) -> ModelStore:
    if ctx.store is None:
        raise ApiError(
            409,
            "conflict",
            f"this server serves a bundle folder, without a model store: {doing} needs one "
            "(start it with --store URL --model NAME --channel C)",
        )
    return ctx.store


def _serving(ctx: Context, name: str) -> str | None:
    return ctx.slot.version if ctx.slot.serving and ctx.slot.pipeline.manifest.name == name else None


@router.get("/v1/models", response_model=ModelList, responses=responses(401, 403, 429, 503), summary="Models")
def list_models(request: Request, _key: ReadKey) -> ModelList:
    ctx = context(request)
    if ctx.store is None:
        name = ctx.slot.pipeline.manifest.name
        location = str(ctx.settings.param("model_bundle_path"))
        return ModelList(source="bundle", location=location, models=[ModelEntry(name=name, serving=ctx.slot.version)])
    with store_errors():
        names = ctx.store.models()
    entries = [ModelEntry(name=n, serving=_serving(ctx, n)) for n in names]
    return ModelList(source="store", location=ctx.store.describe(), models=entries)


@router.get(
    "/v1/models/{name}",
    response_model=ModelDetail,
    responses=responses(401, 403, 404, 422, 429, 503),
    summary="A model's versions and channels",
)
def model_detail(request: Request, name: ModelName, _key: ReadKey) -> ModelDetail:
    ctx = context(request)
    followed = ctx.follower.channel if ctx.follower is not None and ctx.follower.model == name else None
    if ctx.store is None:
        m = _bundle(ctx, name)
        only = VersionEntry(version=m["version"], created_at=m.get("created_at", ""), channels=[])
        return ModelDetail(name=name, serving=ctx.slot.version, followed_channel=None, versions=[only], channels={})
    with store_errors():
        versions = ctx.store.versions(name)
        if not versions:
            raise ApiError(404, "not found", f"no model {name!r} in {ctx.store.describe()}")
        channels = ctx.store.channels(name)
        rows = [
            VersionEntry(
                version=v,
                created_at=str(ctx.store.manifest(name, v).get("created_at", "")),
                channels=sorted(c for c, p in channels.items() if p.version == v),
            )
            for v in versions
        ]
    return ModelDetail(
        name=name,
        serving=_serving(ctx, name),
        followed_channel=followed,
        versions=rows,
        channels={c: asdict(p) for c, p in channels.items()},
    )


@router.get(
    "/v1/models/{name}/versions/{version}",
    response_model=VersionDetail,
    responses=responses(401, 403, 404, 422, 429, 503),
    summary="A version's manifest summary, metrics, lineage and records",
)
def version_detail(request: Request, name: ModelName, version: VersionName, _key: ReadKey) -> VersionDetail:
    ctx = context(request)
    serving = _serving(ctx, name) == version
    if ctx.store is None:
        m = _bundle(ctx, name)
        if version != m["version"]:
            raise ApiError(404, "not found", f"the served bundle of {name!r} is version {m['version']}, not {version}")
        signed = (Path(ctx.settings.param("model_bundle_path")).expanduser() / SIGNATURE_FILE).is_file()
        return VersionDetail(**version_summary(m, signed), records={}, channels=[], serving=serving)
    with store_errors():
        m = ctx.store.manifest(name, version)
        signed = ctx.store.is_signed(name, version)
        records = ctx.store.records(name, version)
        on = sorted(c for c, p in ctx.store.channels(name).items() if p.version == version)
    return VersionDetail(**version_summary(m, signed), records=records, channels=on, serving=serving)


def _moved(ctx: Context, p: Pointer) -> MoveResult:
    return MoveResult(
        model=p.model,
        channel=p.channel,
        version=p.version,
        previous=p.previous,
        by=p.by,
        at=p.at,
        reason=p.reason,
        action=p.action,
        serving=ctx.slot.version,
    )


def _confirmed(channel: str, confirm: bool, what: str, evidence: list[str]) -> None:
    if channel == PRODUCTION and not confirm:
        raise ApiError(
            409,
            "confirmation required",
            f"moving {PRODUCTION} is a person's decision: read the evidence about {what} "
            "and send the same request with confirm=true",
            evidence=evidence,
        )


MOVE_ERRORS = responses(400, 401, 403, 404, 409, 422, 429, 503)


@router.post(
    "/v1/models/{name}/promote",
    response_model=MoveResult,
    responses=MOVE_ERRORS,
    summary="Point a channel at a version (scope promote)",
)
def promote(request: Request, move: Move, name: ModelName, key: PromoteKey) -> MoveResult:
    ctx = context(request)
    store = _store(ctx, "promotion")
    with store_errors():
        store.manifest(name, move.version)  # a version that is not published: 404 before anything else
        evidence = evidence_text(store.records(name, move.version)) if move.channel == PRODUCTION else []
        _confirmed(move.channel, move.confirm, f"{name} {move.version}", evidence)
        try:
            pointer = store.promote(name, move.version, move.channel, move.reason, by=key.name)
        except ValueError as exc:  # already there
            raise ApiError(409, "conflict", str(exc)) from exc
    return _moved(ctx, pointer)


@router.post(
    "/v1/models/{name}/rollback",
    response_model=MoveResult,
    responses=MOVE_ERRORS,
    summary="Point a channel back at the version it served before (scope promote)",
)
def rollback(request: Request, move: Rollback, name: ModelName, key: PromoteKey) -> MoveResult:
    ctx = context(request)
    store = _store(ctx, "rollback")
    with store_errors():
        got = store.pointer(name, move.channel)
        if got is None:
            raise ApiError(404, "not found", f"{name}: channel {move.channel!r} was never set; nothing to roll back")
        current = got[0].version
        if move.version is not None and move.version != current:
            raise ApiError(
                409,
                "conflict",
                f"{name} {move.channel} serves {current} now, not {move.version}: someone moved it meanwhile; "
                "look again before rolling back",
            )
        _confirmed(
            move.channel,
            move.confirm,
            f"rolling {name} back from {current}",
            [f"{move.channel} serves {current}; a rollback returns it to the version it served before"],
        )
        try:
            pointer = store.rollback(name, move.channel, move.reason, by=key.name)
        except ValueError as exc:
            raise ApiError(409, "conflict", str(exc)) from exc
    return _moved(ctx, pointer)
