"""Temperature scaling of the model's outputs on the validation split.

One temperature per class (pixels) and per landmark kind (heatmap peaks), fitted
by minimising the negative log-likelihood on held-out plates. Pixels are a
uniform random sample, never class-balanced: a balanced sample would calibrate
for a world where roots cover half the plate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar

from hades_perception.inference.pipeline import Pipeline
from hades_training.data.sample import Sample
from hades_training.evaluate.metrics import match_points
from hades_training.targets import landmark_points, prepare

log = logging.getLogger(__name__)
PIXELS_PER_IMAGE = 400_000
PEAK_FLOOR = 0.02  # collect heatmap peaks above this (uncalibrated) for fitting


# Mask thresholds tried per class, every 0.05 across (0, 1): the seed class's best was
# the old grid's lowest value (0.15), a bound and not an optimum.
THRESHOLDS = np.round(np.arange(0.05, 0.96, 0.05), 2)


@dataclass
class Fitted:
    seg_temperature: list[float]
    landmark_temperature: list[float]
    pixels: int
    peaks: int


def fit_thresholds(pipe: Pipeline, samples: list[Sample]) -> list[float]:
    """Per class, the mask threshold with the best IoU on the validation split, judged
    where masks are cut: calibrated logits resized to full resolution, as the pipeline
    does. Histograms of probability for true and false pixels give every candidate's
    IoU in one pass. Rare classes (seeds) end up below 0.5: probabilities stay honest,
    the cut moves."""
    import cv2

    m = pipe.manifest
    bins = np.linspace(0.0, 1.0, 101)
    pos_hist = np.zeros((len(m.outputs.classes), 100))
    neg_hist = np.zeros((len(m.outputs.classes), 100))
    temps = m.calibration.seg_temperature
    for s in samples:
        _, _, box, chw, _ = pipe.prepare(s.image)
        seg = pipe.infer(chw).seg
        x0, y0, x1, y1 = box
        for c, name in enumerate(m.outputs.classes):
            if name not in s.annotated:
                continue
            up = cv2.resize(seg[c] / temps[c], (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
            p = 1 / (1 + np.exp(-np.clip(up, -30, 30)))
            gt = s.masks[name][y0:y1, x0:x1] > 0
            pos_hist[c] += np.histogram(p[gt], bins)[0]
            neg_hist[c] += np.histogram(p[~gt], bins)[0]
    out = []
    for c in range(len(m.outputs.classes)):
        if pos_hist[c].sum() == 0:
            out.append(m.calibration.mask_threshold)
            continue
        best, best_iou = m.calibration.mask_threshold, -1.0
        for t in THRESHOLDS:
            k = round(t * 100)
            tp, fn, fp = pos_hist[c, k:].sum(), pos_hist[c, :k].sum(), neg_hist[c, k:].sum()
            iou = tp / max(tp + fp + fn, 1.0)
            if iou > best_iou + 1e-6:
                best, best_iou = float(t), iou
        out.append(best)
    log.info("mask thresholds per class (full-resolution IoU on validation): %s", out)
    return out


def _fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    if labels.size == 0 or labels.min() == labels.max():
        return 1.0  # nothing to learn from a constant label

    def nll(log_t: float) -> float:
        z = logits / np.exp(log_t)
        return float(np.mean(np.logaddexp(0, z) - labels * z))

    res = minimize_scalar(nll, bounds=(-2.0, 2.5), method="bounded")
    return float(np.exp(res.x))


def fit(pipe: Pipeline, samples: list[Sample], radius_px: float, seed: int = 0) -> Fitted:
    m = pipe.manifest
    classes, kinds, stride = m.outputs.classes, m.outputs.landmark_kinds, m.outputs.landmark_stride
    rng = np.random.default_rng(seed)
    seg_logits: list[list[np.ndarray]] = [[] for _ in classes]
    seg_labels: list[list[np.ndarray]] = [[] for _ in classes]
    peak_logits: list[list[float]] = [[] for _ in kinds]
    peak_labels: list[list[float]] = [[] for _ in kinds]
    for s in samples:
        _, _, _, chw, frame = pipe.prepare(s.image)
        logits = pipe.infer(chw)
        seg, heat = logits.seg, logits.heat
        target = prepare(s, classes, kinds, scale=m.input.scale, crop=m.input.crop, stride=stride, sigma=1.0)
        h, w = seg.shape[1:]
        idx = rng.choice(h * w, size=min(PIXELS_PER_IMAGE, h * w), replace=False)
        for c, name in enumerate(classes):
            if name not in s.annotated:
                continue
            seg_logits[c].append(seg[c].reshape(-1)[idx])
            seg_labels[c].append((target.seg[c, :h, :w].reshape(-1)[idx] > 0.5).astype(np.float32))
        truth = landmark_points(s, kinds)
        for k, kind in enumerate(kinds):
            prob = 1 / (1 + np.exp(-heat[k]))
            peaks = pipe.peaks(prob.astype(np.float32), logits.heat_shift, PEAK_FLOOR, frame)
            match = match_points([(x, y) for x, y, _ in peaks], truth[kind], radius_px)
            right = np.zeros(len(peaks))
            for pi, _ in match.pairs:
                right[pi] = 1.0
            for (_, _, score), r in zip(peaks, right, strict=True):
                peak_logits[k].append(float(np.log(score / (1 - score + 1e-9) + 1e-9)))
                peak_labels[k].append(r)
    seg_t = [
        _fit_temperature(np.concatenate(lg) if lg else np.zeros(0), np.concatenate(lb) if lb else np.zeros(0))
        for lg, lb in zip(seg_logits, seg_labels, strict=True)
    ]
    lm_t = [_fit_temperature(np.array(lg), np.array(lb)) for lg, lb in zip(peak_logits, peak_labels, strict=True)]
    n_pix = sum(sum(a.size for a in lg) for lg in seg_logits)
    n_peaks = sum(len(v) for v in peak_logits)
    log.info(
        "calibration: class temperatures %s, landmark temperatures %s (%d pixels, %d peaks)",
        [round(t, 3) for t in seg_t],
        [round(t, 3) for t in lm_t],
        n_pix,
        n_peaks,
    )
    return Fitted(seg_t, lm_t, n_pix, n_peaks)
