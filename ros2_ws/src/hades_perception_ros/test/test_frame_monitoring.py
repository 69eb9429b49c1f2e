"""The node's drift window and probation, without a node: a version on probation is
judged by its own frames only. Right after a fall back, the window the node holds is
still its predecessor's; that drift is not the fallen-back version's fault, and judging
it by that made two versions swap back and forth."""

from __future__ import annotations

from pathlib import Path
from statistics import median
from types import SimpleNamespace

from hades_perception.contract.bundle import open_bundle
from hades_perception.monitoring.drift import ERROR, OK, reference_of
from hades_perception.serving.probation import Probation
from hades_perception_ros.frame_monitoring import FrameMonitoring

BUNDLE = Path(__file__).parent / "data" / "bundle"


def test_a_fallen_back_version_is_not_judged_by_its_predecessors_drift():
    v1 = open_bundle(BUNDLE)
    v2 = type(v1).from_dict({**v1.raw, "version": "2.0.0"})
    reference = reference_of(v1.raw)
    far = dict.fromkeys(reference, 1e6)  # every signal far outside its reference
    usual = {name: float(median(values)) for name, values in reference.items()}
    fm = FrameMonitoring(window=20, min_frames=10, probation=Probation(frames=40))

    fm.probation.swapped("2.0.0", v1.version)
    for _ in range(12):
        fm.add(SimpleNamespace(manifest=v2), far, {})  # type: ignore[arg-type]
    status, degraded = fm.judge()
    assert status is not None and status.level == ERROR
    assert degraded is not None and degraded.version == "2.0.0"

    fm.probation.swapped(v1.version, "2.0.0")  # the node falls back
    status, degraded = fm.judge()
    assert status is not None and status.level == ERROR  # still 2.0.0's window: reported as it is
    assert degraded is None  # but not held against v1

    for _ in range(12):
        fm.add(SimpleNamespace(manifest=v1), usual, {})  # type: ignore[arg-type]
    status, degraded = fm.judge()
    assert status is not None and status.level == OK and degraded is None
