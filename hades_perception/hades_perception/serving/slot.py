"""The ServingSlot: which pipeline is being served, its version, and the swap.

One object that a follower (models/follower.py) and an adapter (the ROS node, replay,
the HTTP API) both hold, so that neither reaches into the other:
- the follower asks the slot to build a candidate (`load`, with the adapter's engine
  settings), to run its golden passes where they do not slow a frame
  (`run_between_frames`, on the adapter's inference worker), and to `install` it;
- the adapter reads `pipeline` once per frame and hears of swaps through listeners.

A frame reads `slot.pipeline` once and finishes on what it read: a swap takes effect
at the next frame, and the old pipeline is freed when its last frame ends.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from hades_perception.inference.pipeline import Pipeline
from hades_perception.serving.worker import InferenceWorker

R = TypeVar("R")
STAGES = ("download", "verify", "load", "warmup", "validation")


@dataclass
class Attempt:
    """One try at making a version servable, with where the time went."""

    version: str
    reason: str  # "channel", "pin", "start-up", "bundle"
    ok: bool = False
    error: str = ""
    retry: bool = False  # the store failed, not the version: try again at the next poll
    stages_ms: dict[str, float] = field(default_factory=dict)
    pointer_seen: float | None = None  # time.time() when the poll saw the pointer move
    ready_at: float | None = None  # time.time() when the candidate passed every check
    waited_ms: float = 0.0  # how long the golden passes waited for a gap between frames
    golden: dict[str, Any] = field(default_factory=dict)


Listener = Callable[[Pipeline, "Pipeline | None", Attempt], None]


class ServingSlot:
    def __init__(
        self, load: Callable[[Path], Pipeline], worker: InferenceWorker[Any] | None = None, history: int = 20
    ) -> None:
        """`load(bundle folder) -> Pipeline` builds a candidate on this adapter's engine
        settings (the folder was already verified). `worker`: the adapter's inference
        worker, whose gaps between frames a candidate's golden passes use; without one
        they run on the caller's thread."""
        self._load = load
        self._worker = worker
        self._lock = threading.Lock()
        self._pipeline: Pipeline | None = None
        self._loaded_at = 0.0
        self._history: deque[Attempt] = deque(maxlen=history)
        self._listeners: list[Listener] = []

    # --- what the follower uses ---------------------------------------------------------
    def load(self, bundle: Path) -> Pipeline:
        return self._load(bundle)

    def run_between_frames(self, fn: Callable[[], R], not_after: float | None = None) -> R:
        """Run fn between two frames (at the latest from `not_after`, time.monotonic())."""
        return self._worker.run_when_idle(fn, not_after) if self._worker is not None else fn()

    def install(self, pipeline: Pipeline, attempt: Attempt) -> None:
        """Serve `pipeline` from the next frame on; tell the listeners (on this thread)."""
        with self._lock:
            old, self._pipeline = self._pipeline, pipeline
            self._loaded_at = time.time()
            self._history.append(attempt)
            listeners = list(self._listeners)
        for listener in listeners:
            listener(pipeline, old, attempt)

    # --- what the adapter uses ----------------------------------------------------------
    @property
    def pipeline(self) -> Pipeline:
        """The pipeline to run the next frame on."""
        p = self._pipeline
        if p is None:
            raise RuntimeError("nothing is served yet: install a pipeline first")
        return p

    @property
    def serving(self) -> bool:
        return self._pipeline is not None

    @property
    def version(self) -> str:
        """The served version, "" while nothing is served."""
        p = self._pipeline
        return p.manifest.version if p is not None else ""

    @property
    def loaded_at(self) -> float:
        """time.time() of the last install."""
        return self._loaded_at

    def history(self) -> list[Attempt]:
        """The last installs, oldest first (a copy: safe to read from any thread)."""
        with self._lock:
            return list(self._history)

    def add_listener(self, listener: Listener) -> None:
        """listener(new, old, attempt), called on the installing thread after each install."""
        with self._lock:
            self._listeners.append(listener)
