"""Model bundles for store and swap tests: other versions of a real exported bundle,
and a version that loads and passes its checksums but computes something else."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from hades_perception.bundle import MANIFEST, file_entries, write_manifest
from hades_perception.signing import SIGNATURE_FILE

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "models" / "hades-seedlings"
# A golden-check latency budget (ms) for tests about outputs, not speed. The default
# budget, 10x the export machine's time, is a timed check: on a CI host with 40 % steal
# a 266 ms golden pass took 3.7 s. The budget itself is tested in test_follower.py
# (a 1 ms budget) and test_pipeline.py (the default's value).
NOT_ABOUT_SPEED_MS = 600_000.0


def new_version(dst: Path, version: str, src: Path = SHIPPED, **changes: Any) -> Path:
    """A copy of a bundle under another version: what re-exporting the same weights gives."""
    shutil.copytree(src, dst)
    (dst / SIGNATURE_FILE).unlink(missing_ok=True)
    manifest = json.loads((dst / MANIFEST).read_text())
    manifest.update(version=version, **changes)
    write_manifest(dst, manifest)
    return dst


def miscomputing_version(dst: Path, version: str, src: Path = SHIPPED, **changes: Any) -> Path:
    """A version that loads and whose checksums all match its manifest, but whose
    segmentation head was negated after the golden sample was recorded: only the
    golden check can tell."""
    import onnx
    from onnx import numpy_helper

    new_version(dst, version, src, **changes)
    model = onnx.load(str(dst / "model.onnx"))
    for init in model.graph.initializer:
        if init.name.startswith("seg_head."):
            init.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(init), init.name))
    (dst / "model.onnx").unlink()  # a new file, never a write through to the source
    onnx.save(model, str(dst / "model.onnx"))
    manifest = json.loads((dst / MANIFEST).read_text())
    manifest["files"] = file_entries(dst)
    write_manifest(dst, manifest)
    return dst
