"""A batch of predictions as a job: several image files or one zip in, a predict JSON per
image out (without masks: ask /v1/predict for one image's masks).

The request only stages: the images are copied (or, from a zip, read with the caps of
archives.SafeZip) into the job's inputs/ under numbered names of ours, and the zip's
checks refuse it (4xx) before any job exists. The job then predicts them in order on
the `predict` lane, each through routes_predict.run_prediction: the same header checks,
the same serving lock (single requests slip in between two images), the same drift
window. An image that is refused (not an image, truncated, too many pixels) is an
error of that item, reported with its name, and the batch goes on. Each input is
deleted once predicted; the results stay in out/ as <n>_<stem>.json until the job is
pruned, which is what `hades-train monitor` reads as a folder of predict JSONs.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

from starlette.datastructures import UploadFile

from hades_perception.api.archives import BATCH_LIMITS, SafeZip
from hades_perception.api.context import Context
from hades_perception.api.errors import ApiError
from hades_perception.api.jobs import INPUTS_DIR, OUT_DIR, Handle
from hades_perception.api.routes_predict import run_prediction

log = logging.getLogger(__name__)
ITEMS = "items.json"  # the item names, in order: the i-th is inputs/<i>


def _input(folder: Path, i: int) -> Path:
    return folder / INPUTS_DIR / f"{i:04d}"


def stage(staging: Path, files: list[UploadFile], archive: UploadFile | None) -> list[str]:
    """Copy the uploaded images, or the zip's members, into staging/inputs; their names."""
    (staging / INPUTS_DIR).mkdir()
    names: list[str] = []
    if archive is not None:
        with SafeZip(archive.file, BATCH_LIMITS) as z:
            for i, (member, data) in enumerate(z):
                _input(staging, i).write_bytes(data)
                names.append(member.name)
        if not names:
            raise ApiError(422, "invalid request", "the zip holds no files (folders only); put the images in it")
    else:
        if len(files) > BATCH_LIMITS.members:
            raise ApiError(413, "too many images", f"{len(files)} images; a batch takes at most {BATCH_LIMITS.members}")
        for i, upload in enumerate(files):
            upload.file.seek(0)
            with _input(staging, i).open("wb") as f:
                shutil.copyfileobj(upload.file, f)
            names.append(upload.filename or f"image {i + 1}")
    (staging / ITEMS).write_text(json.dumps(names))
    return names


def result_name(i: int, item: str) -> str:
    stem = Path(item.replace("\\", "/")).stem
    return f"{i:04d}_{re.sub(r'[^A-Za-z0-9._-]+', '_', stem)[:80]}.json"


def predict_all(ctx: Context, handle: Handle) -> None:
    """The job's work: every staged image through the pipeline, in order, until cancelled."""
    names: list[str] = json.loads((handle.folder / ITEMS).read_text())
    counts = {"images": len(names), "predicted": 0, "failed": 0}
    errors: list[dict[str, str]] = []
    for i, name in enumerate(names):
        if handle.cancelled.is_set():
            break
        path = _input(handle.folder, i)
        try:
            with path.open("rb") as f:
                body, _timing = run_prediction(ctx, f, masks=False, overlay=False)
        except ApiError as exc:
            counts["failed"] += 1
            errors.append({"item": name, "error": exc.error, "detail": str(exc.detail)})
            handle.log(f"{name}: refused ({exc.status_code} {exc.error}): {exc.detail}")
        except Exception as exc:
            log.exception("batch %s: %s failed", handle.id, name)
            counts["failed"] += 1
            errors.append({"item": name, "error": "internal error", "detail": f"{type(exc).__name__}: {exc}"})
            handle.log(f"{name}: failed ({type(exc).__name__}: {exc})")
        else:
            counts["predicted"] += 1
            (handle.out / result_name(i, name)).write_text(json.dumps({"item": name, **body}))
            handle.log(f"{name}: {len(body['plants'])} plants in {body['timing_ms'].get('total', 0):.0f} ms")
        finally:
            path.unlink(missing_ok=True)
        handle.update(counts=dict(counts), errors=list(errors))
    shutil.rmtree(handle.folder / INPUTS_DIR, ignore_errors=True)


def results(folder: Path) -> list[dict[str, Any]]:
    """A finished batch's predict JSONs, in the order the images came."""
    return [json.loads(p.read_text()) for p in sorted((folder / OUT_DIR).glob("*.json"))]
