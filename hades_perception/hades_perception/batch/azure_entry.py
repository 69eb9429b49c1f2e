"""The Azure ML parallel job's entry script (azure.py): init() once per process, then
run(mini_batch) per list of mounted image paths. The same per-plate work as the Ray
batch (worker.PlatePredictor): results/<name>.json under the output, a failed plate a
row with its error. Azure ML passes the program arguments on sys.argv."""

from __future__ import annotations

import argparse
import os
from typing import Any

from hades_perception.batch.worker import Job, PlatePredictor

_predictor: PlatePredictor | None = None
_root = ""


def init() -> None:
    global _predictor, _root
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=1)
    a, _ = ap.parse_known_args()  # Azure ML adds arguments of its own
    _root = a.input
    _predictor = PlatePredictor(Job(a.model, a.input, a.out, a.threads))


def run(mini_batch: list[Any]) -> list[str]:
    """One row per image: source, ok, error (Azure ML appends them to parallel_rows.csv)."""
    assert _predictor is not None, "init() first"
    rows = []
    for path in mini_batch:
        key = os.path.relpath(str(path), _root).replace(os.sep, "/")
        row = _predictor({"key": key})
        rows.append(f"{row['key']},{row['ok']},{str(row['error']).replace(',', ';')}")
    return rows
