"""`hades-train replay-plants`: the plant step again on a bundle's cached engine outputs.

Why: changing a rule of the plant step (hades_perception.inference.plants) is judged on
thousands of dev plants, tips within 1 mm with the right plant number and which misses
are flagged, before and after. Through `evaluate` every try runs the engine and the
full-resolution masks again (about 1.5 s a plate on 2 CPU cores); here the engine runs
once per plate into a cache folder, and each try re-runs only the decode step (about
0.1 s a plate). The figures are `evaluate`'s (tests/unit/test_training.py compares them),
per plant, so two runs can be compared plant by plant.

The cache holds, per plate, the engine's logits and where the dish was (pickle, written
and read by this command only: a folder of your own, not one to take from elsewhere),
and the bundle's sha256: a cache of another bundle is refused.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path
from typing import Any

from tqdm import tqdm

from hades_perception.contract.bundle import open_bundle
from hades_perception.inference.pipeline import Pipeline, as_rgb8
from hades_training.data import open_dataset
from hades_training.evaluate.scoring import _hits_and_misses, plant_verdicts, tip_radius

BUNDLE_FILE = "bundle.json"  # which bundle the cache's outputs are from


def replay_plants(
    bundle: Path, data: str, split: str | None, cache: Path, *, precision: str = "fp32"
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The plants' summary (the keys of `evaluate`'s metrics.json "plants", without the
    interval) and one row per true plant: its stem and scoring.PlantVerdict, the error in
    mm (in 20 px units where the plate has no scale). Engine outputs come from `cache`,
    made there on first use."""
    manifest = open_bundle(bundle)
    key = {"name": manifest.name, "version": manifest.version, "sha256": manifest.sha256, "precision": precision}
    cache.mkdir(parents=True, exist_ok=True)
    stamp = cache / BUNDLE_FILE
    if stamp.exists() and json.loads(stamp.read_text()) != key:
        raise ValueError(f"{cache}: cached outputs of another bundle ({stamp.read_text().strip()}); use another folder")
    stamp.write_text(json.dumps(key))
    pipe = Pipeline.from_bundle(bundle, providers=("CPUExecutionProvider",), precision=precision)  # as evaluate
    reader = open_dataset(data, split, skip_bad=True)
    rows: list[dict[str, Any]] = []
    for i in tqdm(range(len(reader)), desc="replaying", unit="img"):
        sample = reader[i]
        file = cache / f"{sample.stem}.pkl"
        if file.exists():
            rec = pickle.loads(file.read_bytes())
        else:
            inferred = pipe.start(sample.image)
            rec = {
                "logits": inferred.logits,
                "frame": inferred.frame,
                "box": inferred.box,
                "shape": inferred.rgb.shape[:2],
                "dish": inferred.dish,
            }
            file.write_bytes(pickle.dumps(rec, protocol=5))
        grey = as_rgb8(sample.image)[..., 1]  # as `finish` gives it
        pred = pipe.decode(rec["logits"], rec["frame"], rec["box"], rec["shape"], rec["dish"], grey)
        ppm = sample.truth.px_per_mm
        for v in plant_verdicts(pred, sample, tip_radius(ppm)):
            row = {"stem": sample.stem, **dataclasses.asdict(v)}
            error = row.pop("error_px")
            rows.append({**row, "error_mm": None if error is None else error / (ppm or tip_radius(ppm))})
    hits, flagged = [r["hit"] for r in rows], [r["flagged"] for r in rows]
    return {"plants": len(rows), **_hits_and_misses(hits, flagged)}, rows
