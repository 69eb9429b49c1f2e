"""One batch item: read the image, run the same pipeline as `hades-perception predict`,
write its predict JSON (and, when asked, its masks) to the output, answer one row.

A worker (a Ray actor, or an Azure ML parallel-job process) loads the pipeline once and
predicts item after item. Whatever goes wrong with one image (unreadable, not an image,
too large, an inference error) is that row's `error`, never the batch's end; the item's
result is not written, so a resumed run tries it again.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import cv2

from hades_perception.batch.archive import RESULTS, Archive, Results, result_name
from hades_perception.inference.image_files import decode_image

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """What every worker needs to know (picklable: it travels to Ray workers)."""

    bundle: str
    source: str
    out: str
    threads: int = 1
    masks: bool = False
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    precision: str = "auto"  # as everywhere: the int8 variant where it passed its gate (docs/engines.md)


class PlatePredictor:
    """Callable on one row {"key": ...}; a Ray Data actor class (run.py)."""

    def __init__(self, job: Job) -> None:
        from hades_perception.inference.loading import load_checked

        self.job = job
        self.pipeline = load_checked(Path(job.bundle), job.providers, precision=job.precision, threads=job.threads)
        self.archive, self.results = Archive(job.source), Results(job.out)

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        key = str(row["key"])
        t0 = time.perf_counter()
        try:
            plants = self.predict(key)
        except Exception as exc:  # one plate's failure is its row, never the batch's
            log.warning("%s: %s", key, exc)
            return {"key": key, "ok": False, "error": f"{type(exc).__name__}: {exc}"[:500], "ms": 0.0, "plants": 0}
        return {"key": key, "ok": True, "error": "", "ms": (time.perf_counter() - t0) * 1e3, "plants": plants}

    def predict(self, key: str) -> int:
        image = decode_image(self.archive.read(key), key)
        pred = self.pipeline(image)
        name = result_name(key)
        if self.job.masks:
            stem = PurePosixPath(name).stem
            for cls, mask in pred.masks.items():
                ok, png = cv2.imencode(".png", mask)
                if not ok:
                    raise RuntimeError(f"PNG encoding of the {cls} mask failed")
                self.results.write(f"masks/{stem}_{cls}_mask.png", png.tobytes())
        doc = {"source": key, **pred.to_json()}
        # Written last: a result file means the item is done (resume skips it).
        self.results.write(f"{RESULTS}/{name}", json.dumps(doc).encode())
        return len(pred.plants)
