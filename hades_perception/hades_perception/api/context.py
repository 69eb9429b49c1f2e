"""What every route reads: the settings, the ServingSlot (and its follower when a store
channel is followed), the keys, the rate limiter, and the lock that lets one image at a
time through the pipeline (a Pipeline is not thread-safe, and on a CPU one inference
already takes every core)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from fastapi import Request

from hades_perception.api.keys import KeyFile
from hades_perception.api.limits import RateLimiter
from hades_perception.api.settings import ServeSettings
from hades_perception.models.follower import ModelFollower
from hades_perception.models.store import ModelStore
from hades_perception.serving.slot import ServingSlot


@dataclass
class Context:
    settings: ServeSettings
    slot: ServingSlot
    follower: ModelFollower | None
    keys: KeyFile
    limiter: RateLimiter
    inference: threading.Lock = field(default_factory=threading.Lock)

    @property
    def store(self) -> ModelStore | None:
        """The model store the served channel comes from; None when serving a bundle folder."""
        return self.follower.store if self.follower is not None else None


def context(request: Request) -> Context:
    ctx: Context = request.app.state.context
    return ctx
