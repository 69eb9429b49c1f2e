"""What every route reads: the settings, the ServingSlot (and its follower when a store
channel is followed), the keys, the rate limiter, the lock that lets one image at a
time through the pipeline (a Pipeline is not thread-safe, and on a CPU one inference
already takes every core), the drift windows of what was predicted, and the work dir's
jobs and datasets."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Request

from hades_perception.api.datasets import Datasets
from hades_perception.api.jobs import DONE, Jobs
from hades_perception.api.keys import KeyFile
from hades_perception.api.limits import RateLimiter
from hades_perception.api.live import LiveFeed
from hades_perception.api.served_drift import ServedDrift
from hades_perception.api.settings import ServeSettings
from hades_perception.api.train_jobs import Places
from hades_perception.models.follower import ModelFollower
from hades_perception.models.store import ModelStore
from hades_perception.serving.slot import ServingSlot
from hades_perception.serving.worker import Stats


class Counters:
    """Predictions asked for, made and failed (bad input included), for the metrics endpoint."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats = Stats()

    def count(self, field_name: str) -> None:
        with self._lock:
            setattr(self._stats, field_name, getattr(self._stats, field_name) + 1)

    def snapshot(self) -> Stats:
        with self._lock:
            return Stats(**vars(self._stats))


@dataclass
class Context:
    settings: ServeSettings
    slot: ServingSlot
    follower: ModelFollower | None
    keys: KeyFile
    limiter: RateLimiter
    inference: threading.Lock = field(default_factory=threading.Lock)
    counters: Counters = field(default_factory=Counters)
    metrics: Any = None  # monitoring.metrics.Metrics while --metrics-port is set
    drift: ServedDrift = field(init=False)
    jobs: Jobs = field(init=False)
    datasets: Datasets = field(init=False)
    live: LiveFeed = field(init=False)

    def __post_init__(self) -> None:
        s = self.settings
        self.live = LiveFeed(s.live_namespace)
        self.drift = ServedDrift(s.drift_window, s.drift_min_frames)
        self.jobs = Jobs(s.work_dir / "jobs", s.keep_jobs)
        self.datasets = Datasets(s.work_dir / "datasets")

    @property
    def store(self) -> ModelStore | None:
        """The model store the served channel comes from; None when serving a bundle folder."""
        return self.follower.store if self.follower is not None else None

    def served_bundle(self) -> Path:
        """The folder of the served version: the follower's cached copy, or the bundle folder."""
        m = self.slot.pipeline.manifest
        if self.follower is not None and self.follower.cache.has(m.name, m.version):
            return self.follower.cache.bundle_path(m.name, m.version).resolve()
        return Path(self.settings.param("model_bundle_path")).expanduser().resolve()

    def places(self) -> Places:
        """Where a job's path references may point (api/train_jobs.py)."""

        def job_done(job_id: str) -> bool | None:
            job = self.jobs.get(job_id)
            return None if job is None else job.status == DONE

        return Places(
            jobs=self.jobs.root,
            datasets=self.datasets.root,
            data_dirs=self.settings.data_dirs,
            served=self.served_bundle,
            job_done=job_done,
        )


def context(request: Request) -> Context:
    ctx: Context = request.app.state.context
    return ctx
