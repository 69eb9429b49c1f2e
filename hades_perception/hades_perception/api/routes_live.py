"""GET /v1/live (scope read): a running node's latest plants, monitoring signals and
shadow agreement, as the server's live feed (live.py) holds them, or why it holds none."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from hades_perception.api.auth import ReadKey
from hades_perception.api.context import context
from hades_perception.api.errors import responses

router = APIRouter(tags=["monitoring"])


class Live(BaseModel):
    available: bool = Field(description="the server subscribes to a node's topics (ROS present, feed on)")
    namespace: str
    message: str = Field(description="what the feed holds, or plainly why it holds nothing")
    frames: int = Field(description="plants messages received since the server started")
    plants: dict[str, Any] | None = Field(
        description="the newest plants message: stamp, frame_id, model_version, received_at, plants "
        "(each as in the predict JSON)"
    )
    monitoring: dict[str, Any] | None = Field(
        description="the newest monitoring message: model, drift_level, drift_message, signals"
    )
    agreement: dict[str, Any] | None = Field(
        description="the newest shadow agreement of the node's candidate with its served model: serving_version, "
        "candidate_version, frames, mean_class_iou, mean_primary_tip_distance_px (none without a shadow channel)"
    )


@router.get(
    "/v1/live", response_model=Live, responses=responses(401, 403, 429), summary="A running node's latest results"
)
def live(request: Request, _key: ReadKey) -> Live:
    return Live(**context(request).live.snapshot())
