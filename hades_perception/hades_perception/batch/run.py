"""`hades-perception batch`: every plate of an archive through the same pipeline, spread
over a Ray cluster with Ray Data (a local Ray on this machine by default, `--address`
for a cluster), resumable, with a progress bar, a failure list and one CSV of every
plant's traits.

    input (folder or blob prefix) --list--> keys --minus done results--> to do
      --Ray Data map over an actor pool (one pipeline per worker, worker.py)--> rows
    results/<name>.json per plate (the predict JSON, written as each plate finishes)
    failures.csv: this run's plates that failed, and why (tried again on the next run)
    traits.csv:   one row per plant of every plate in results/, done in this run or before

A local Ray is started on 127.0.0.1 without its dashboard or usage reporting (nothing
leaves the machine); a cluster's own settings apply with --address.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hades_perception.batch.archive import FAILURES_CSV, RESULTS, TRAITS_CSV, Archive, Results, result_name
from hades_perception.batch.worker import Job, PlatePredictor

log = logging.getLogger(__name__)
TRAIT_COLUMNS = (
    "source",
    "model_version",
    "plant",
    "base_x",
    "base_y",
    "primary_root_tip_x",
    "primary_root_tip_y",
    "primary_root_length_px",
    "primary_root_length_mm",
    "total_root_length_px",
    "lateral_root_count",
    "shoot_area_px",
    "confidence",
    "low_confidence",
    "reason",
)


@dataclass
class Summary:
    images: int
    skipped: int  # done by an earlier run
    predicted: int
    failed: int
    seconds: float  # the whole run, Ray's start included
    workers: int
    seconds_predicting: float = 0.0  # from Ray up to the last plate (workers' model loads included)

    @property
    def images_per_s(self) -> float:
        """Plates done per second while predicting (a cluster is started once, not per plate)."""
        seconds = self.seconds_predicting or self.seconds
        return self.predicted / seconds if seconds > 0 else 0.0


@contextlib.contextmanager
def ray_session(address: str | None, cpus: int) -> Iterator[Any]:
    """Ray for this batch: the cluster at `address`, or a local one on loopback."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report leaves the machine
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise RuntimeError(f"the batch needs Ray Data: pip install 'hades_perception[batch]' ({exc})") from exc
    if address:
        ray.init(address=address, logging_level=logging.WARNING)
    else:
        ray.init(
            num_cpus=max(cpus, os.cpu_count() or 1),
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            logging_level=logging.WARNING,
        )
    ray.data.DataContext.get_current().enable_progress_bars = False  # ours counts plates
    try:
        yield ray
    finally:
        ray.shutdown()


def plan(archive: Archive, results: Results) -> tuple[list[str], list[str]]:
    """(every image key, the keys still to do). Two keys that would share a result file
    (a.png and a.tif in one folder) are refused before anything runs."""
    keys = archive.keys()
    names: dict[str, str] = {}
    for key in keys:
        other = names.setdefault(result_name(key), key)
        if other != key:
            raise ValueError(f"{other} and {key} would both be results/{result_name(key)}: rename one")
    done = results.done()
    return keys, [k for k in keys if result_name(k) not in done]


def run_batch(job: Job, workers: int = 1, address: str | None = None, progress: bool = True) -> Summary:
    archive, results = Archive(job.source), Results(job.out)
    keys, todo = plan(archive, results)
    log.info("%d images in %s; %d done before, %d to do", len(keys), job.source, len(keys) - len(todo), len(todo))
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    predicting = 0.0
    if todo:
        from tqdm import tqdm

        with ray_session(address, workers * job.threads) as ray:
            t_up = time.perf_counter()
            items = ray.data.from_items([{"key": k} for k in todo], override_num_blocks=min(len(todo), 4 * workers))
            done = items.map(
                PlatePredictor,
                fn_constructor_kwargs={"job": job},
                compute=ray.data.ActorPoolStrategy(size=workers),
                num_cpus=job.threads,
            )
            bar = tqdm(total=len(todo), desc="plates", unit="plate", disable=not progress)
            for row in done.iter_rows():
                rows.append(row)
                bar.update(1)
                if not row["ok"]:
                    bar.write(f"failed: {row['key']}: {row['error']}")
            bar.close()
            predicting = time.perf_counter() - t_up
    seconds = time.perf_counter() - t0
    failed = sorted((r for r in rows if not r["ok"]), key=lambda r: str(r["key"]))
    write_failures(results, failed)
    write_traits(results)
    return Summary(len(keys), len(keys) - len(todo), len(rows) - len(failed), len(failed), seconds, workers, predicting)


def write_failures(results: Results, failed: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["source", "error"])
    w.writerows([r["key"], r["error"]] for r in failed)
    results.write(FAILURES_CSV, buf.getvalue().encode())


def trait_rows(doc: dict[str, Any]) -> list[list[Any]]:
    """One CSV row per plant of one predict JSON."""
    out = []
    for p in doc.get("plants", []):
        base, tip = p.get("base") or [None, None], p.get("primary_root_tip") or [None, None]
        out.append(
            [
                doc.get("source", ""),
                doc.get("model", {}).get("version", ""),
                p.get("plant"),
                *base,
                *tip,
                p.get("primary_root_length_px"),
                p.get("primary_root_length_mm"),
                p.get("total_root_length_px"),
                p.get("lateral_root_count"),
                p.get("shoot_area_px"),
                p.get("confidence"),
                p.get("low_confidence"),
                p.get("reason", ""),
            ]
        )
    return out


def write_traits(results: Results) -> int:
    """traits.csv from every result, in the order of their names; the plant rows written."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(TRAIT_COLUMNS)
    n = 0
    for name in sorted(results.done()):
        for row in trait_rows(json.loads(results.read(f"{RESULTS}/{name}"))):
            w.writerow(["" if v is None else v for v in row])
            n += 1
    results.write(TRAITS_CSV, buf.getvalue().encode())
    return n
