"""Evaluation metrics, checked against values worked out by hand.

Grouped by what they prove: segmentation counts, point matching, calibration,
and scalar error summaries (sMAPE, landmark errors with misses and mm scales).
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import pytest

from hades_training.evaluate.metrics import (
    CalibrationBins,
    PointMatch,
    SegCounts,
    error_summary,
    match_points,
    smape,
)

# --------------------------------------------------------------------------- segmentation: SegCounts


def test_iou_f1_precision_recall_of_a_small_mask_pair():
    # Three predicted pixels, two true ones, both true ones found: tp 2, fp 1, fn 0.
    pred = np.array([[1, 1], [1, 0]], dtype=bool)
    gt = np.array([[0, 1], [1, 0]], dtype=bool)
    c = SegCounts()
    c.add(pred, gt)
    assert (c.tp, c.fp, c.fn) == (2, 1, 0)
    assert c.iou == pytest.approx(2 / 3)
    assert c.precision == pytest.approx(2 / 3)
    assert c.recall == 1.0
    assert c.f1 == pytest.approx(4 / 5)  # 2*2 / (2*2 + 1 + 0)


def test_zero_one_integer_masks_count_like_bool_masks():
    pred = np.array([[1, 0, 1], [0, 0, 1]], dtype=np.uint8)
    gt = np.array([[1, 1, 0], [0, 0, 1]], dtype=np.uint8)
    a, b = SegCounts(), SegCounts()
    a.add(pred, gt)
    b.add(pred.astype(bool), gt.astype(bool))
    assert a == b == SegCounts(tp=2, fp=1, fn=1)


def test_dataset_iou_comes_from_summed_counts_not_the_mean_of_image_ious():
    # Image 1: 100 px, 90 found and 10 false alarms: IoU 0.9.
    pred1 = np.zeros(200, bool)
    pred1[:100] = True
    gt1 = np.zeros(200, bool)
    gt1[:90] = True
    # Image 2: a single true pixel, missed: IoU 0.
    pred2 = np.zeros(10, bool)
    gt2 = np.zeros(10, bool)
    gt2[3] = True
    c = SegCounts()
    c.add(pred1, gt1)
    c.add(pred2, gt2)
    assert (c.tp, c.fp, c.fn) == (90, 10, 1)
    assert c.iou == pytest.approx(90 / 101)  # not (0.9 + 0) / 2


def test_a_class_absent_from_prediction_and_truth_has_no_metric_and_does_not_dilute_others():
    empty = np.zeros((4, 4), bool)
    c = SegCounts()
    c.add(empty, empty)
    assert c.iou is None and c.f1 is None and c.precision is None and c.recall is None
    full = np.ones((4, 4), bool)
    c.add(full, full)
    c.add(empty, empty)
    assert c.iou == 1.0


def test_precision_or_recall_alone_is_undefined_when_its_denominator_is_empty():
    c = SegCounts()
    c.add(np.zeros(3, bool), np.array([1, 0, 0], bool))  # nothing predicted, one missed
    assert c.precision is None and c.recall == 0.0 and c.iou == 0.0 and c.f1 == 0.0


def test_mask_shape_mismatch_and_non_binary_masks_are_refused():
    c = SegCounts()
    with pytest.raises(ValueError, match="shape"):
        c.add(np.zeros((3, 4), bool), np.zeros((4, 3), bool))
    with pytest.raises(ValueError, match="0/1"):
        c.add(np.array([0, 255], np.uint8), np.array([0, 1], np.uint8))
    with pytest.raises(ValueError, match="0/1"):
        c.add(np.array([0.3, 0.9]), np.array([0, 1]))
    assert c == SegCounts()


def test_merging_seg_counts_adds_them():
    a, b = SegCounts(1, 2, 3), SegCounts(10, 20, 30)
    a.merge(b)
    assert a == SegCounts(11, 22, 33)


# --------------------------------------------------------------------------- landmarks: match_points


def test_optimal_matching_finds_both_pairs_where_greedy_nearest_first_finds_one():
    # Greedy takes the closest pair first, P0-G1 (2.5 px), which leaves P1 10 px from G0:
    # one match. Optimal pairs P0-G0 (3.5 px) and P1-G1 (4 px): two matches.
    gt = [(0.0, 0.0), (6.0, 0.0)]
    pred = [(3.5, 0.0), (10.0, 0.0)]
    m = match_points(pred, gt, radius=5.0)
    assert (m.tp, m.fp, m.fn) == (2, 0, 0)
    assert m.pairs == [(0, 0), (1, 1)]
    assert m.distances == pytest.approx([3.5, 4.0])


def test_matching_maximises_pairs_within_radius_before_minimising_distance():
    # P0 sits on G0; P1 and G1 are 6 px apart and each 5 px from that point.
    # Minimum total distance pairs P0-G0 (0) + P1-G1 (6): only one within 5.5 px.
    # P0-G1 (5) + P1-G0 (5) costs more in total but gives two matches, which is what counts.
    gt = [(0.0, 0.0), (3.0, 4.0)]
    pred = [(0.0, 0.0), (-3.0, 4.0)]
    m = match_points(pred, gt, radius=5.5)
    assert (m.tp, m.fp, m.fn) == (2, 0, 0)
    assert m.pairs == [(0, 1), (1, 0)]
    assert m.distances == pytest.approx([5.0, 5.0])


def test_among_equally_many_matches_the_closer_assignment_wins():
    gt = [(0.0, 0.0), (10.0, 0.0)]
    pred = [(9.0, 0.0), (1.0, 0.0)]
    m = match_points(pred, gt, radius=20.0)
    assert m.pairs == [(0, 1), (1, 0)]
    assert m.distances == pytest.approx([1.0, 1.0])


def test_points_beyond_the_radius_are_a_false_positive_and_a_false_negative():
    m = match_points([(0.0, 0.0), (100.0, 100.0)], [(3.0, 4.0), (50.0, 50.0), (0.0, 1.0)], radius=5.0)
    # (0, 0) is 1 px from gt 2 and 5 px from gt 0: it takes the closer one.
    assert (m.tp, m.fp, m.fn) == (1, 1, 2)
    assert m.pairs == [(0, 2)] and m.distances == pytest.approx([1.0])
    assert m.precision == 0.5 and m.recall == pytest.approx(1 / 3) and m.f1 == pytest.approx(0.4)


def test_a_distance_equal_to_the_radius_counts_as_a_match():
    m = match_points([(3.0, 4.0)], [(0.0, 0.0)], radius=5.0)
    assert m.tp == 1 and m.distances == [5.0]


def test_empty_point_sets_give_undefined_rates_not_zero():
    none = match_points([], [], radius=5.0)
    assert none == PointMatch(tp=0, fp=0, fn=0, distances=[], pairs=[])
    assert none.precision is None and none.recall is None and none.f1 is None
    only_gt = match_points([], [(1.0, 1.0)], radius=5.0)
    assert only_gt.precision is None and only_gt.recall == 0.0 and only_gt.f1 == 0.0
    only_pred = match_points([(1.0, 1.0)], [], radius=5.0)
    assert only_pred.precision == 0.0 and only_pred.recall is None and only_pred.fn == 0


def test_match_points_refuses_bad_input():
    with pytest.raises(ValueError, match="radius"):
        match_points([(0.0, 0.0)], [(0.0, 0.0)], radius=-1.0)
    with pytest.raises(ValueError, match="pred"):
        match_points([(0.0, 0.0, 0.0)], [(0.0, 0.0)], radius=1.0)  # type: ignore[list-item]


# --------------------------------------------------------------------------- calibration: CalibrationBins


def test_ece_and_mce_of_a_hand_computed_stream():
    # 10 bins. Four samples at 0.95, three right (acc 0.75, gap 0.2);
    # six at 0.55, three right (acc 0.5, gap 0.05).
    # ECE = 0.4 * 0.2 + 0.6 * 0.05 = 0.11; MCE = 0.2.
    b = CalibrationBins(n_bins=10)
    b.add(np.array([0.95] * 4 + [0.55] * 6), np.array([1, 1, 1, 0, 1, 1, 1, 0, 0, 0], bool))
    assert b.ece() == pytest.approx(0.11)
    assert b.mce() == pytest.approx(0.2)
    rows = b.reliability()
    assert len(rows) == 10
    assert rows[9] == pytest.approx({"lo": 0.9, "hi": 1.0, "count": 4, "mean_confidence": 0.95, "accuracy": 0.75})
    assert rows[5] == pytest.approx({"lo": 0.5, "hi": 0.6, "count": 6, "mean_confidence": 0.55, "accuracy": 0.5})
    assert rows[0] == {"lo": 0.0, "hi": 0.1, "count": 0, "mean_confidence": None, "accuracy": None}


def test_a_calibrated_stream_has_ece_near_zero_and_an_overconfident_one_its_gap():
    rng = np.random.default_rng(0)
    n = 2_000_000
    conf = rng.uniform(0.0, 1.0, n)
    calibrated = CalibrationBins()
    calibrated.add(conf, rng.uniform(size=n) < conf)  # right with exactly the stated probability
    assert calibrated.ece() == pytest.approx(0.0, abs=0.005)

    # Says 0.5..1 but is right 0.2 less often: every bin is off by 0.2.
    conf = rng.uniform(0.5, 1.0, n)
    over = CalibrationBins()
    over.add(conf, rng.uniform(size=n) < conf - 0.2)
    assert over.ece() == pytest.approx(0.2, abs=0.005)
    assert over.mce() == pytest.approx(0.2, abs=0.02)


def test_confidence_zero_and_one_fall_in_the_first_and_last_bins_and_shapes_are_flattened():
    b = CalibrationBins(n_bins=4)
    b.add(np.array([[0.0, 1.0], [0.25, 0.999]]), np.array([[0, 1], [1, 1]], bool))
    assert [r["count"] for r in b.reliability()] == [1, 1, 0, 2]
    assert b.count == 4


def test_calibration_input_is_validated():
    b = CalibrationBins()
    with pytest.raises(ValueError, match="elements"):
        b.add(np.array([0.5, 0.5]), np.array([True]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        b.add(np.array([1.5]), np.array([True]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        b.add(np.array([math.nan]), np.array([True]))
    with pytest.raises(ValueError, match="n_bins"):
        CalibrationBins(n_bins=0)
    assert b.count == 0


def test_an_empty_accumulator_has_no_ece_or_mce():
    b = CalibrationBins()
    assert b.ece() is None and b.mce() is None
    assert all(r["accuracy"] is None and r["count"] == 0 for r in b.reliability())


def test_calibration_memory_does_not_grow_with_the_number_of_samples():
    rng = np.random.default_rng(1)
    small, large = CalibrationBins(n_bins=15), CalibrationBins(n_bins=15)
    small.add(np.array([0.5]), np.array([True]))
    conf = rng.uniform(size=3_000_000).astype(np.float32)  # more than one internal chunk
    large.add(conf, conf > 0.5)
    arrays = [v for v in vars(large).values() if isinstance(v, np.ndarray)]
    assert arrays and all(a.size == 15 for a in arrays)
    assert len(pickle.dumps(large)) == len(pickle.dumps(small))
    assert large.count == 3_000_000


def test_merging_accumulators_equals_adding_everything_to_one():
    rng = np.random.default_rng(2)
    conf = rng.uniform(size=10_000)
    correct = rng.uniform(size=10_000) < conf**2
    whole = CalibrationBins(n_bins=12)
    whole.add(conf, correct)
    parts = [CalibrationBins(n_bins=12) for _ in range(3)]
    for part, idx in zip(parts, np.array_split(np.arange(10_000), 3), strict=True):
        part.add(conf[idx], correct[idx])
    merged = CalibrationBins(n_bins=12)
    for part in parts:
        merged.merge(part)
    np.testing.assert_array_equal(merged.counts, whole.counts)
    np.testing.assert_array_equal(merged.sum_correct, whole.sum_correct)
    np.testing.assert_allclose(merged.sum_confidence, whole.sum_confidence, rtol=1e-12)
    assert merged.ece() == pytest.approx(whole.ece(), rel=1e-12)
    assert merged.mce() == pytest.approx(whole.mce(), rel=1e-12)
    with pytest.raises(ValueError, match="bins"):
        merged.merge(CalibrationBins(n_bins=10))


def test_reliability_plot_writes_a_png(tmp_path: Path):
    rng = np.random.default_rng(3)
    conf = rng.uniform(size=5000)
    b = CalibrationBins()
    b.add(conf, rng.uniform(size=5000) < conf)
    out = tmp_path / "plots" / "reliability_root.png"
    b.plot(out, "root pixels")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # An empty accumulator still gives a (labelled) diagram rather than an error.
    empty = tmp_path / "empty.png"
    CalibrationBins().plot(empty, "nothing yet")
    assert empty.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- scalar errors: smape


def test_smape_of_known_pairs():
    # 110 vs 100: 20/210 = 2/21.  0 vs 0: 0.  50 vs 100: 100/150 = 14/21.  0 vs 5: 10/5 = 42/21.
    # mean = (58/21) / 4 = 29/42, in percent 2900/42.
    assert smape([110, 0, 50, 0], [100, 0, 100, 5]) == pytest.approx(2900 / 42)


def test_smape_is_symmetric_and_bounded_and_empty_is_undefined():
    assert smape([3.0], [7.0]) == pytest.approx(smape([7.0], [3.0]))
    assert smape([0.0], [9.0]) == pytest.approx(200.0)
    assert smape([4.0, 4.0], [4.0, 4.0]) == 0.0
    assert smape([], []) is None
    with pytest.raises(ValueError, match="values"):
        smape([1.0], [1.0, 2.0])


# --------------------------------------------------------------------------- scalar errors: error_summary


def test_error_summary_counts_a_missed_detection_against_every_rate():
    # Sorted px errors [1, 2, 3, inf]. Median: halfway between 2 and 3 = 2.5.
    # p95: position 0.95 * 3 = 2.85, between 3 and inf: inf. Mean and max over 1, 2, 3.
    # At 2 px/mm: [0.5, 1, 1.5, inf] mm, median 1.25, two of four within 1 mm.
    s = error_summary([1.0, 2.0, 3.0, None], px_per_mm=2.0)
    assert s == pytest.approx(
        {
            "count": 4,
            "missing": 1,
            "median_px": 2.5,
            "p95_px": math.inf,
            "mean_px": 2.0,
            "max_px": 3.0,
            "count_mm": 4,
            "median_mm": 1.25,
            "p95_mm": math.inf,
            "within_1mm": 0.5,
        }
    )


def test_inf_means_missing_too_and_a_majority_of_misses_makes_the_median_infinite():
    s = error_summary([1.0, math.inf, None], px_per_mm=None)
    assert s["count"] == 3 and s["missing"] == 2
    assert s["median_px"] == math.inf and s["mean_px"] == 1.0 and s["max_px"] == 1.0


def test_per_image_scales_convert_each_error_and_skip_uncalibrated_images_in_mm():
    # 4 px at 4 px/mm = 1 mm; 6 px at 2 px/mm = 3 mm; the third image has no scale.
    s = error_summary([4.0, 6.0, 10.0], px_per_mm=[4.0, 2.0, None])
    assert s["count"] == 3 and s["count_mm"] == 2
    assert s["median_px"] == 6.0
    assert s["median_mm"] == pytest.approx(2.0)
    assert s["p95_mm"] == pytest.approx(2.9)  # 1 + (3 - 1) * 0.95
    assert s["within_1mm"] == 0.5  # 1 mm counts as within
    assert error_summary([4.0, 6.0, 10.0], [4.0, 2.0, None], within_mm=3)["within_3mm"] == 1.0


def test_the_threshold_names_the_key():
    s = error_summary([1.0], px_per_mm=1.0, within_mm=0.5)
    assert "within_0.5mm" in s and s["within_0.5mm"] == 0.0


def test_without_calibration_mm_values_are_none():
    s = error_summary([1.0, 2.0], px_per_mm=None)
    assert s["median_mm"] is None and s["p95_mm"] is None and s["within_1mm"] is None and s["count_mm"] == 0
    assert s["median_px"] == 1.5


def test_finite_errors_match_numpys_percentiles():
    errs = np.random.default_rng(4).exponential(5.0, 101)
    s = error_summary(errs.tolist(), px_per_mm=None)
    assert s["median_px"] == pytest.approx(np.median(errs))
    assert s["p95_px"] == pytest.approx(np.percentile(errs, 95))
    assert s["missing"] == 0


def test_an_empty_error_list_is_all_undefined():
    s = error_summary([], px_per_mm=2.0)
    assert s["count"] == 0 and s["missing"] == 0
    assert all(s[k] is None for k in ("median_px", "p95_px", "mean_px", "max_px", "median_mm", "p95_mm", "within_1mm"))


def test_error_summary_refuses_ambiguous_input():
    with pytest.raises(ValueError, match="NaN"):
        error_summary([math.nan], px_per_mm=None)
    with pytest.raises(ValueError, match="px_per_mm"):
        error_summary([1.0, 2.0], px_per_mm=[2.0])
    with pytest.raises(ValueError, match="px_per_mm"):
        error_summary([1.0], px_per_mm=0.0)
