"""Metrics for the `evaluate` command: pure functions and small accumulators.

Everything here works on numpy arrays and plain Python numbers (no torch, no
model, no files except the reliability plot), so evaluation code can feed it
from any source and the tests can check it with hand-computed values.

Conventions:
  * A metric that is undefined (no samples, a class absent from both prediction
    and truth) is ``None``, never 0 or NaN: 0 would read as "as bad as it gets"
    and NaN poisons averages and JSON, while None says "nothing to measure".
  * Accumulators (SegCounts, CalibrationBins) keep sums, not samples, because
    evaluation runs over full-size plates (4202x3006 pixels each) and the
    dataset-level number must come from summed counts, not from averaging
    per-image ratios (which over-weights images where a class is tiny).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

__all__ = [
    "CalibrationBins",
    "PointMatch",
    "SegCounts",
    "error_summary",
    "match_points",
    "smape",
]


def _ratio(num: float, den: float) -> float | None:
    """num/den, or None when the denominator is zero (the metric is undefined)."""
    return None if den == 0 else num / den


def _as_mask(a: npt.ArrayLike, name: str) -> npt.NDArray[np.bool_]:
    """A boolean mask from a bool or 0/1 array.

    Anything else (a probability map, a 0/255 mask) is rejected rather than
    thresholded at "nonzero": silently treating 0.3 as foreground would give a
    plausible-looking but wrong IoU.
    """
    arr = np.asarray(a)
    if arr.dtype == np.bool_:
        return arr
    if arr.size and bool(np.any((arr != 0) & (arr != 1))):
        raise ValueError(f"{name} must be a bool or 0/1 array; threshold probabilities and scale 0/255 masks first")
    return arr != 0


# --------------------------------------------------------------------------- segmentation


@dataclass
class SegCounts:
    """Pixel confusion counts for one class, summed over many images.

    Dataset-level IoU is computed from the summed counts (micro average), so a
    large image weighs by its pixels and an image where the class is absent in
    both prediction and truth contributes nothing instead of a fake 1.0 or 0.0.
    """

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, pred: npt.ArrayLike, gt: npt.ArrayLike) -> None:
        """Add one image's prediction and truth masks (bool or 0/1, same shape)."""
        p = _as_mask(pred, "pred")
        g = _as_mask(gt, "gt")
        if p.shape != g.shape:
            raise ValueError(f"pred shape {p.shape} != gt shape {g.shape}")
        tp = int(np.count_nonzero(p & g))
        self.tp += tp
        # Counting each mask once and subtracting avoids two more full-size temporaries.
        self.fp += int(np.count_nonzero(p)) - tp
        self.fn += int(np.count_nonzero(g)) - tp

    def merge(self, other: SegCounts) -> None:
        """Add another accumulator's counts (e.g. from a parallel worker)."""
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn

    @property
    def iou(self) -> float | None:
        """tp / (tp + fp + fn); None when the class is absent in both prediction and truth."""
        return _ratio(self.tp, self.tp + self.fp + self.fn)

    @property
    def f1(self) -> float | None:
        """Dice / F1 = 2tp / (2tp + fp + fn); None when the class is absent in both."""
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def precision(self) -> float | None:
        """tp / (tp + fp); None when nothing was predicted."""
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float | None:
        """tp / (tp + fn); None when the truth has none of the class."""
        return _ratio(self.tp, self.tp + self.fn)


# --------------------------------------------------------------------------- landmarks


@dataclass
class PointMatch:
    """Result of matching predicted points (e.g. root tips) to true points.

    ``pairs`` are (pred index, gt index), sorted by pred index, and
    ``distances[i]`` is the pixel distance of ``pairs[i]``.
    """

    tp: int
    fp: int
    fn: int
    distances: list[float] = field(default_factory=list)
    pairs: list[tuple[int, int]] = field(default_factory=list)

    @property
    def precision(self) -> float | None:
        """Share of predictions that matched a true point; None without predictions."""
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float | None:
        """Share of true points that were found; None without true points."""
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float | None:
        """2tp / (2tp + fp + fn); None when there are neither predictions nor true points."""
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)


def _points(pts: Sequence[tuple[float, float]] | npt.ArrayLike, name: str) -> npt.NDArray[np.float64]:
    arr = np.asarray(pts, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 2))
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name} must be a sequence of (x, y) points, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite coordinates")
    return arr


def match_points(pred: Sequence[tuple[float, float]], gt: Sequence[tuple[float, float]], radius: float) -> PointMatch:
    """One-to-one matching of predicted to true points; a pair counts when its distance <= radius.

    Greedy nearest-first matching can let one prediction take a true point that
    another prediction needed, losing a match; a plain minimum-total-distance
    assignment can prefer one very close pair plus one out-of-radius pair over
    two in-radius pairs. Both undercount. So the assignment first maximises the
    number of in-radius pairs and only then minimises their total distance: an
    out-of-radius pair costs more than any possible set of in-radius pairs.
    """
    if not (radius >= 0 and math.isfinite(radius)):
        raise ValueError(f"radius must be a finite number >= 0, got {radius}")
    p = _points(pred, "pred")
    g = _points(gt, "gt")
    if len(p) == 0 or len(g) == 0:
        return PointMatch(tp=0, fp=len(p), fn=len(g))
    dist = np.hypot(p[:, None, 0] - g[None, :, 0], p[:, None, 1] - g[None, :, 1])
    within = dist <= radius
    # Any assignment has at most min(n, m) pairs, each in-radius one costing <= radius,
    # so one out-of-radius pair (cost `big`) outweighs every in-radius total.
    big = radius * (min(dist.shape) + 1) + 1.0
    rows, cols = linear_sum_assignment(np.where(within, dist, big))
    pairs: list[tuple[int, int]] = []
    distances: list[float] = []
    for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
        if within[r, c]:
            pairs.append((int(r), int(c)))
            distances.append(float(dist[r, c]))
    tp = len(pairs)
    return PointMatch(tp=tp, fp=len(p) - tp, fn=len(g) - tp, distances=distances, pairs=pairs)


# --------------------------------------------------------------------------- calibration

# Inputs are binned in chunks so that temporaries stay bounded (a full plate is 12.6 M pixels).
_CHUNK = 1 << 22


class CalibrationBins:
    """Streaming reliability statistics: per confidence bin, count, sum of confidence, number correct.

    Certainty is only useful if "90 % sure" means right 90 % of the time. Checking
    that over every pixel of a test set means billions of samples, so only the
    per-bin sums are kept (memory is O(n_bins), independent of the input), and
    accumulators from different images or workers can be merged exactly.

    Bins split [0, 1] into ``n_bins`` equal intervals [lo, hi); the last one also
    holds confidence 1.0.
    """

    def __init__(self, n_bins: int = 15) -> None:
        if n_bins < 1:
            raise ValueError(f"n_bins must be >= 1, got {n_bins}")
        self.n_bins = int(n_bins)
        self.counts = np.zeros(self.n_bins, dtype=np.int64)
        self.sum_confidence = np.zeros(self.n_bins, dtype=np.float64)
        self.sum_correct = np.zeros(self.n_bins, dtype=np.int64)

    @property
    def count(self) -> int:
        """Number of samples added so far."""
        return int(self.counts.sum())

    def add(self, confidence: npt.ArrayLike, correct: npt.ArrayLike) -> None:
        """Add samples: confidence in [0, 1] that the prediction is right, and whether it was.

        Both arrays may have any shape (they are flattened) but must have the same
        number of elements. Nothing of the input is kept beyond the per-bin sums.
        """
        conf = np.asarray(confidence).reshape(-1)
        corr = np.asarray(correct).reshape(-1)
        if conf.size != corr.size:
            raise ValueError(f"confidence has {conf.size} elements but correct has {corr.size}")
        if corr.dtype != np.bool_:
            corr = _as_mask(corr, "correct")
        for start in range(0, conf.size, _CHUNK):
            c = conf[start : start + _CHUNK].astype(np.float64, copy=False)
            ok = corr[start : start + _CHUNK]
            # `not (c >= 0)` also catches NaN.
            if bool(np.any(~((c >= 0.0) & (c <= 1.0)))):
                raise ValueError("confidence must lie in [0, 1] (and not be NaN)")
            idx = np.minimum((c * self.n_bins).astype(np.intp), self.n_bins - 1)
            self.counts += np.bincount(idx, minlength=self.n_bins)
            self.sum_confidence += np.bincount(idx, weights=c, minlength=self.n_bins)
            self.sum_correct += np.bincount(idx[ok], minlength=self.n_bins)

    def merge(self, other: CalibrationBins) -> None:
        """Add another accumulator's sums; equal to having added its samples here."""
        if other.n_bins != self.n_bins:
            raise ValueError(f"cannot merge {other.n_bins} bins into {self.n_bins} bins")
        self.counts += other.counts
        self.sum_confidence += other.sum_confidence
        self.sum_correct += other.sum_correct

    def _gaps(self) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64]]:
        """Non-empty bins and |accuracy - mean confidence| per bin (0 for empty bins)."""
        nonempty = self.counts > 0
        safe = np.maximum(self.counts, 1)
        gaps = np.abs(self.sum_correct - self.sum_confidence) / safe
        return nonempty, np.where(nonempty, gaps, 0.0)

    def ece(self) -> float | None:
        """Expected calibration error: count-weighted mean of |accuracy - confidence| over bins.

        None before any sample, since a perfect 0 would be a claim without evidence.
        """
        total = self.count
        if total == 0:
            return None
        return float(np.abs(self.sum_correct - self.sum_confidence).sum() / total)

    def mce(self) -> float | None:
        """Maximum calibration error: the worst |accuracy - confidence| of any non-empty bin."""
        nonempty, gaps = self._gaps()
        if not nonempty.any():
            return None
        return float(gaps[nonempty].max())

    def reliability(self) -> list[dict[str, Any]]:
        """Per bin: lo, hi, count, mean_confidence and accuracy (both None for an empty bin)."""
        rows: list[dict[str, Any]] = []
        for i in range(self.n_bins):
            n = int(self.counts[i])
            rows.append(
                {
                    "lo": i / self.n_bins,
                    "hi": (i + 1) / self.n_bins,
                    "count": n,
                    "mean_confidence": float(self.sum_confidence[i]) / n if n else None,
                    "accuracy": int(self.sum_correct[i]) / n if n else None,
                }
            )
        return rows

    def plot(self, path: Path, title: str) -> None:
        """Write a reliability diagram PNG: accuracy per bin against the diagonal, counts below.

        Uses the Agg canvas directly (no pyplot), so it needs no display, leaves
        matplotlib's global backend alone and is safe in worker threads. Counts are
        on a log scale because pixel confidences pile up near 1.
        """
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        rows = self.reliability()
        width = 1.0 / self.n_bins
        los = [r["lo"] for r in rows]
        filled = [r for r in rows if r["count"]]

        fig = Figure(figsize=(6, 7), layout="constrained")
        FigureCanvasAgg(fig)
        top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
        top.bar(
            [r["lo"] for r in filled],
            [r["accuracy"] for r in filled],
            width=width,
            align="edge",
            color="tab:blue",
            edgecolor="black",
            linewidth=0.5,
            label="accuracy",
        )
        top.plot(
            [r["mean_confidence"] for r in filled],
            [r["mean_confidence"] for r in filled],
            "o",
            color="tab:red",
            markersize=3,
            label="mean confidence",
        )
        top.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
        top.set_xlim(0, 1)
        top.set_ylim(0, 1)
        top.set_ylabel("accuracy")
        top.legend(loc="upper left")
        ece = self.ece()
        top.set_title(f"{title}\nECE {ece:.4f}" if ece is not None else f"{title}\nECE n/a (no samples)")

        counts = [r["count"] for r in rows]
        bottom.bar(los, counts, width=width, align="edge", color="gray", edgecolor="black", linewidth=0.5)
        if any(counts):
            bottom.set_yscale("log")
        bottom.set_xlabel("confidence")
        bottom.set_ylabel("count")

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png", dpi=100)


# --------------------------------------------------------------------------- scalar errors


def smape(pred: Sequence[float], true: Sequence[float]) -> float | None:
    """Symmetric mean absolute percentage error in percent (0..200).

    mean(2|p - t| / (|p| + |t|)) * 100. Used for lengths and counts, where plain
    MAPE explodes on small true values and is asymmetric between over- and
    under-estimation. A pair where both are 0 is a perfect answer and counts 0.
    None for empty input.
    """
    p = np.asarray(pred, dtype=np.float64).reshape(-1)
    t = np.asarray(true, dtype=np.float64).reshape(-1)
    if p.size != t.size:
        raise ValueError(f"pred has {p.size} values but true has {t.size}")
    if p.size == 0:
        return None
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(t))):
        raise ValueError("smape needs finite values")
    den = np.abs(p) + np.abs(t)
    terms = np.divide(2.0 * np.abs(p - t), den, out=np.zeros_like(den), where=den > 0)
    return float(terms.mean() * 100.0)


def _percentile(sorted_values: npt.NDArray[np.float64], q: float) -> float:
    """Linear-interpolated percentile (numpy's default) that tolerates +inf.

    np.percentile computes lo + (hi - lo) * frac, which is NaN when hi is inf
    and frac is 0; here an inf neighbour with weight 0 is ignored and one with
    positive weight gives inf.
    """
    n = len(sorted_values)
    pos = q / 100.0 * (n - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    frac = pos - lo
    a, b = float(sorted_values[lo]), float(sorted_values[hi])
    if frac == 0 or a == b:
        return a
    return a + (b - a) * frac


def _within_key(within_mm: float) -> str:
    return f"within_{within_mm:g}mm"


def error_summary(
    errors_px: Sequence[float | None],
    px_per_mm: Sequence[float | None] | float | None,
    within_mm: float = 1.0,
) -> dict[str, Any]:
    """Summary of landmark (e.g. root-tip) position errors, in pixels and, where calibrated, mm.

    errors_px: one error per true landmark; None or inf means "no prediction"
        (a missed detection). A miss must not vanish from the statistics, or a
        model that only answers easy cases would look best: it counts in
        ``count`` and ``missing``, as a failure in ``within_Xmm``, and as an
        infinite error in the median and p95 (so those become inf once misses
        reach their rank). mean and max are over the finite errors only,
        because an infinite mean says nothing.
    px_per_mm: one scale for all errors, one per error (None where that image
        has no scale), or None when nothing is calibrated.
    within_mm: the threshold for the success rate; it names the key, e.g.
        "within_1mm" or "within_0.5mm".

    Returns a dict with count, missing, median_px, p95_px, mean_px, max_px,
    median_mm, p95_mm, count_mm (errors with a scale, misses included) and
    within_<X>mm (share 0..1). Values are None where undefined; the mm values
    are computed over the errors that have a scale, and are None without any.
    """
    if not (within_mm >= 0 and math.isfinite(within_mm)):
        raise ValueError(f"within_mm must be a finite number >= 0, got {within_mm}")
    errs = np.array([math.inf if e is None else float(e) for e in errors_px], dtype=np.float64)
    if np.any(np.isnan(errs)) or np.any(errs < 0):
        raise ValueError("errors must be >= 0, inf or None (NaN is ambiguous: use None for a missed detection)")
    n = len(errs)

    scales: npt.NDArray[np.float64]  # per error, NaN where uncalibrated
    if px_per_mm is None:
        scales = np.full(n, np.nan)
    elif isinstance(px_per_mm, int | float | np.integer | np.floating):
        scales = np.full(n, float(px_per_mm))
    else:
        per = list(px_per_mm)
        if len(per) != n:
            raise ValueError(f"px_per_mm has {len(per)} values for {n} errors")
        scales = np.array([math.nan if s is None else float(s) for s in per], dtype=np.float64)
    calibrated = ~np.isnan(scales)
    if np.any(~np.isfinite(scales[calibrated])) or np.any(scales[calibrated] <= 0):
        raise ValueError("px_per_mm values must be finite and > 0 (None for an uncalibrated image)")

    finite = errs[np.isfinite(errs)]
    sorted_px = np.sort(errs)
    errs_mm = errs[calibrated] / scales[calibrated]  # inf stays inf
    sorted_mm = np.sort(errs_mm)
    return {
        "count": n,
        "missing": int(n - finite.size),
        "median_px": _percentile(sorted_px, 50) if n else None,
        "p95_px": _percentile(sorted_px, 95) if n else None,
        "mean_px": float(finite.mean()) if finite.size else None,
        "max_px": float(finite.max()) if finite.size else None,
        "count_mm": int(errs_mm.size),
        "median_mm": _percentile(sorted_mm, 50) if errs_mm.size else None,
        "p95_mm": _percentile(sorted_mm, 95) if errs_mm.size else None,
        _within_key(within_mm): float(np.mean(errs_mm <= within_mm)) if errs_mm.size else None,
    }
