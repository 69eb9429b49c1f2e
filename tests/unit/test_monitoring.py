"""Monitoring: every frame carries cheap signals about its input and its prediction; a
window of them is judged against the bundle's reference, quietly on frames like the
reference and loudly on frames that moved."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from hades_perception.inference.pipeline import Pipeline
from hades_perception.monitoring.drift import ERROR, OK, WARN, DriftMonitor, compare, reference_of, worst
from hades_perception.monitoring.signals import Signal, input_signals, signals_for
from hades_perception.serving.probation import Probation
from tests.bundles import SHIPPED

BOX = (0, 0, 1200, 900)


def plate(
    rng: np.random.Generator, *, blur: float = 0.6, noise: float = 2.0, gain: float = 1.0, drops: int = 0
) -> np.ndarray:
    """Agar with thin dark roots: enough structure for sharpness, on a known noise floor;
    `drops` condensation drops on the lid, small lenses with a dark rim and a bright centre."""
    img = np.full((900, 1200), 180.0, np.float32)
    for x in range(100, 1200, 150):
        cv2.line(img, (x, 100), (x + 40, 850), 120.0, 3)
    for _ in range(drops):
        c, r = (int(rng.integers(0, 1200)), int(rng.integers(0, 900))), int(rng.integers(5, 16))
        cv2.circle(img, c, r, 171.0, 2)
        cv2.circle(img, c, r // 2, 185.0, -1)
    blurred = cv2.GaussianBlur(img, (0, 0), blur).astype(np.float64)
    noisy = (blurred - 128) * gain + 128 + rng.normal(0, noise, img.shape)
    grey = np.clip(noisy, 0, 255).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


class TestSignals:
    def test_blur_lowers_sharpness_and_not_the_noise_estimate(self):
        rng = np.random.default_rng(0)
        sharp, blurred = input_signals(plate(rng), BOX, 0.5, True), input_signals(plate(rng, blur=2.5), BOX, 0.5, True)
        assert blurred["input.sharpness"] < 0.7 * sharp["input.sharpness"]
        assert blurred["input.noise"] == pytest.approx(sharp["input.noise"], rel=0.2)

    def test_the_noise_estimate_follows_sensor_noise(self):
        rng = np.random.default_rng(1)
        # At scale 0.5 the signals read every other pixel: noise is measured as it is.
        low, high = (input_signals(plate(rng, noise=n), BOX, 0.5, True)["input.noise"] for n in (2.0, 8.0))
        assert low == pytest.approx(2.0, rel=0.35) and high == pytest.approx(8.0, rel=0.2)

    def test_lower_contrast_narrows_the_grey_percentiles(self):
        rng = np.random.default_rng(2)
        normal, flat = (input_signals(plate(rng, gain=g), BOX, 0.5, True) for g in (1.0, 0.5))
        assert flat["input.contrast"] < 0.7 * normal["input.contrast"]
        assert normal["input.p01"] <= normal["input.p50"] <= normal["input.p99"]

    def test_condensation_drops_raise_the_dark_spot_fraction(self):
        rng = np.random.default_rng(10)
        clear, fogged = (input_signals(plate(rng, drops=n), BOX, 0.5, True)["input.drops"] for n in (0, 1500))
        assert fogged > clear + 0.02

    def test_the_dark_spot_fraction_counts_spots_not_sensor_noise_or_brightness(self):
        # Its depth is the measured noise sigma: noise alone, weak or strong, makes no spots.
        rng = np.random.default_rng(11)
        for sigma in (2.0, 8.0):
            agar = np.clip(rng.normal(180, sigma, (900, 1200, 1)), 0, 255).astype(np.uint8).repeat(3, axis=2)
            assert input_signals(agar, BOX, 0.5, True)["input.drops"] < 0.001
        image = plate(rng, drops=300)
        brighter = (image.astype(np.int16) + 30).clip(0, 255).astype(np.uint8)
        assert input_signals(brighter, BOX, 0.5, True)["input.drops"] == pytest.approx(
            input_signals(image, BOX, 0.5, True)["input.drops"], abs=0.002
        )

    def test_a_window_too_small_for_its_background_has_no_dark_spots(self):
        tiny = plate(np.random.default_rng(12), drops=50)[:20, :20]
        assert input_signals(tiny, (0, 0, 20, 20), 0.5, True)["input.drops"] == 0.0

    def test_every_served_frame_carries_every_signal_of_its_model_in_its_json(self):
        pipe = Pipeline.from_bundle(SHIPPED, ("CPUExecutionProvider",))
        pred = pipe(plate(np.random.default_rng(3)))
        names = [s.name for s in signals_for(pipe.manifest.outputs.classes)]
        assert sorted(pred.signals) == sorted(names)
        assert pred.to_json()["monitoring"].keys() == pred.signals.keys()
        assert "monitoring" in pred.timing_ms


SIGNALS = (Signal("a", "", 0.1), Signal("b", "", 0.1))


def draws(rng: np.random.Generator, n: int, shift: float = 0.0) -> dict[str, list[float]]:
    return {"a": list(rng.normal(10 + shift, 1, n)), "b": list(rng.normal(0, 1, n))}


class TestDriftTests:
    def test_frames_like_the_reference_do_not_drift(self):
        rng = np.random.default_rng(4)
        results = compare(draws(rng, 64), draws(rng, 50), SIGNALS)
        assert [r.drifted for r in results] == [False, False]

    def test_a_shift_of_three_spreads_is_an_error_named_as_the_worst_signal(self):
        rng = np.random.default_rng(5)
        results = compare(draws(rng, 64), draws(rng, 50, shift=3.5), SIGNALS)
        top = worst(results)
        assert top is not None and top.name == "a" and top.drifted and top.level == ERROR
        assert top.value > top.threshold and top.shift == pytest.approx(3.5, abs=0.6)
        assert top.to_dict()["level"] == "ERROR"

    def test_a_significant_but_small_shift_is_not_drift(self):
        # 2000 frames make a 0.3-spread shift statistically certain; it still is no alarm.
        rng = np.random.default_rng(6)
        results = compare(draws(rng, 2000), draws(rng, 2000, shift=0.3), SIGNALS)
        a = next(r for r in results if r.name == "a")
        assert a.value > a.threshold and not a.drifted

    def test_a_reference_that_never_varies_uses_the_signals_smallest_spread(self):
        results = compare({"a": [1.0] * 20}, {"a": [1.05] * 30}, SIGNALS)
        assert not results[0].drifted  # 0.05 moved, under the 0.1 floor
        results = compare({"a": [1.0] * 20}, {"a": [0.0] * 30}, SIGNALS)
        assert results[0].drifted and results[0].level == ERROR


class TestDriftMonitor:
    def test_it_says_it_is_collecting_until_it_has_enough_frames(self):
        rng = np.random.default_rng(7)
        mon = DriftMonitor(draws(rng, 64), SIGNALS, window=50, min_frames=20)
        for _ in range(19):
            mon.add({"a": 30.0, "b": 0.0})
        status = mon.status()
        assert status.level == OK and "collecting" in status.message
        mon.add({"a": 30.0, "b": 0.0})
        assert mon.status().level == ERROR

    def test_no_false_alarm_over_500_reference_frames_checked_every_frame(self):
        rng = np.random.default_rng(8)
        mon = DriftMonitor(draws(rng, 64), SIGNALS, window=50)
        levels = []
        for _ in range(500):
            frame = draws(rng, 1)
            mon.add({k: v[0] for k, v in frame.items()})
            levels.append(mon.status().level)
        assert max(levels) == OK

    def test_drift_is_reported_within_a_window_and_clears_when_the_frames_return(self):
        rng = np.random.default_rng(9)
        mon = DriftMonitor(draws(rng, 64), SIGNALS, window=50)
        for _ in range(50):
            mon.add({"a": float(rng.normal(10, 1)), "b": float(rng.normal(0, 1))})
        first = None
        for i in range(50):
            mon.add({"a": float(rng.normal(12, 1)), "b": float(rng.normal(0, 1))})
            if first is None and mon.status().level >= WARN:
                first = i + 1
        assert first is not None and first <= 50
        assert "a" in mon.status().message
        for _ in range(50):
            mon.add({"a": float(rng.normal(10, 1)), "b": float(rng.normal(0, 1))})
        assert mon.status().level == OK

    def test_a_signal_an_older_bundles_reference_lacks_is_left_untested_not_alarmed(self):
        # A bundle exported before a signal existed: the frames carry it, the reference does not.
        rng = np.random.default_rng(13)
        reference = {"a": list(rng.normal(10, 1, 64))}
        mon = DriftMonitor(reference, SIGNALS, window=50)
        for _ in range(50):
            mon.add({"a": float(rng.normal(10, 1)), "b": 1000.0})
        status = mon.status()
        assert status.level == OK and [r.name for r in status.results] == ["a"]
        assert [r.name for r in compare(reference, {"a": [10.0] * 30, "b": [1000.0] * 30}, SIGNALS)] == ["a"]

    def test_a_window_of_condensed_plates_drifts_on_the_dark_spot_fraction(self):
        rng = np.random.default_rng(14)
        reference: dict[str, list[float]] = {}
        for i in range(24):  # the reference mixes lightly and heavily condensed plates
            for k, v in input_signals(plate(rng, drops=150 + 250 * (i % 2)), BOX, 0.5, True).items():
                reference.setdefault(k, []).append(v)
        mon = DriftMonitor(reference, signals_for(()), window=30, min_frames=20)
        for _ in range(20):
            mon.add(input_signals(plate(rng, drops=1500), BOX, 0.5, True))
        status = mon.status()
        assert status.level >= WARN and status.worst_signal == "input.drops"

    def test_a_bundle_without_reference_signals_is_not_judged(self):
        mon = DriftMonitor(reference_of({"reference_stats": {"input": {}}}), SIGNALS, min_frames=1)
        mon.add({"a": 1.0})
        status = mon.status()
        assert status.level == OK and "not judged" in status.message


class TestProbation:
    def test_the_version_served_at_start_up_is_not_on_probation(self):
        p = Probation(frames=10)
        p.swapped("1.0", "")
        for _ in range(10):
            p.frame("1.0", ok=False)
        assert p.check(ERROR, "drifted") is None

    def test_failed_frames_above_the_rate_mark_a_swap_degraded_once(self):
        p = Probation(frames=10, max_error_rate=0.2)
        p.swapped("2.0", "1.0")
        for ok in (True, True, False, True, False, False):
            p.frame("2.0", ok=ok)
        d = p.check(OK)
        assert d is not None and (d.version, d.previous) == ("2.0", "1.0") and "3 of its first 6" in d.reason
        assert p.check(OK) is None and p.degraded == d  # reported once; remembered until the next swap

    def test_a_drift_error_during_probation_marks_it_degraded_and_after_it_does_not(self):
        p = Probation(frames=5)
        p.swapped("2.0", "1.0")
        p.frame("2.0", ok=True)
        assert p.check(WARN, "a little") is None
        d = p.check(ERROR, "input.p50 moved")
        assert d is not None and "input.p50 moved" in d.reason
        p.swapped("3.0", "2.0")
        for _ in range(5):
            p.frame("3.0", ok=True)
        assert p.check(ERROR, "later") is None  # past its probation: drift is the world's, not the swap's

    def test_frames_of_the_version_before_do_not_count(self):
        p = Probation(frames=10, max_error_rate=0.2)
        p.swapped("2.0", "1.0")
        for _ in range(5):
            p.frame("1.0", ok=False)  # finished after the swap, served by the old pipeline
        assert p.check(OK) is None


class TestFrameTraces:
    def test_a_frame_is_one_trace_with_a_span_per_stage_at_the_measured_times(self):
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        from hades_perception.monitoring.tracing import FrameTracer, sequential

        spans = InMemorySpanExporter()
        tracer = FrameTracer("/hades/hades_perception", exporter=spans)
        start = 1_700_000_000_000_000_000
        stages = [("queue", start, start + 2_000_000), *sequential(start + 2_000_000, [("engine", 900.0)])]
        tracer.frame(start, start + 905_000_000, stages, {"model.version": "2.0"})
        tracer.close()
        got = {s.name: s for s in spans.get_finished_spans()}
        assert set(got) == {"frame", "queue", "engine"}
        frame = got["frame"]
        assert frame.attributes is not None and frame.attributes["model.version"] == "2.0"
        assert frame.context is not None
        parents = [got[n].parent for n in ("queue", "engine")]
        assert all(p is not None and p.span_id == frame.context.span_id for p in parents)
        assert got["engine"].start_time == start + 2_000_000 and got["engine"].end_time == start + 902_000_000
        assert frame.resource.attributes["service.name"] == "/hades/hades_perception"
