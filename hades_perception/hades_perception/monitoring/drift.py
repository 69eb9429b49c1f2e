"""Drift: do the recent frames' signals still look like the frames the model was
validated on?

Each signal is tested on its own with SciPy's two-sample Kolmogorov-Smirnov test,
current values against the reference values the bundle carries (export measured them
on its validation images: manifest `reference_stats.signals`). A signal drifts when
both hold:
- the KS statistic D exceeds the critical value at `alpha`, Bonferroni-corrected over
  the signals (so a plate of 20 signals is not 20 chances of a false alarm), and
- the medians differ by at least MIN_EFFECT times the reference's robust spread
  (IQR / 1.349, at least the signal's `min_spread`), so a statistically clear but
  harmless shift (a slightly brighter lamp, with a large reference) stays quiet.
A drifted signal whose median moved ERROR_EFFECT spreads or more is an ERROR,
otherwise a WARN. The same test serves the node (a sliding window of recent frames,
DriftMonitor) and `hades-train monitor` (a folder or a bag against a bundle), so a robot
and the report agree.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import ks_2samp

from hades_perception.contract.bundle import Manifest
from hades_perception.monitoring.signals import Signal, signals_for

ALPHA = 0.001  # family-wise false-alarm rate of one test of all signals
MIN_EFFECT = 1.0  # a shift of the median smaller than this many reference spreads is never drift
ERROR_EFFECT = 3.0  # a drifted signal whose median moved this many spreads is an ERROR
OK, WARN, ERROR = 0, 1, 2
LEVEL_NAMES = {OK: "OK", WARN: "WARN", ERROR: "ERROR"}


@dataclass(frozen=True)
class SignalDrift:
    name: str
    statistic: str  # "ks": the two-sample Kolmogorov-Smirnov D
    value: float
    threshold: float  # the critical D at the corrected alpha for these sample sizes
    shift: float  # median(current) - median(reference)
    effect: float  # |shift| in reference spreads
    drifted: bool
    level: int

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["level"] = LEVEL_NAMES[self.level]
        return d


def critical_d(n: int, m: int, alpha: float) -> float:
    """The asymptotic two-sample KS critical value c(alpha) * sqrt((n + m) / (n m))."""
    return math.sqrt(-math.log(alpha / 2) / 2) * math.sqrt((n + m) / (n * m))


def compare(
    reference: Mapping[str, Sequence[float]],
    current: Mapping[str, Sequence[float]],
    signals: Sequence[Signal],
    alpha: float = ALPHA,
) -> list[SignalDrift]:
    """Each signal present in both, tested as the module docstring says."""
    tested = [s for s in signals if len(reference.get(s.name, ())) >= 2 and len(current.get(s.name, ())) >= 2]
    corrected = alpha / max(len(tested), 1)
    out = []
    for s in tested:
        ref = np.asarray(reference[s.name], float)
        cur = np.asarray(current[s.name], float)
        d = float(ks_2samp(ref, cur).statistic)
        crit = critical_d(len(ref), len(cur), corrected)
        shift = float(np.median(cur) - np.median(ref))
        q1, q3 = np.percentile(ref, [25, 75])
        effect = abs(shift) / max(float(q3 - q1) / 1.349, s.min_spread)
        drifted = d > crit and effect >= MIN_EFFECT
        level = (ERROR if effect >= ERROR_EFFECT else WARN) if drifted else OK
        out.append(SignalDrift(s.name, "ks", d, crit, shift, effect, drifted, level))
    return out


def worst(results: Sequence[SignalDrift]) -> SignalDrift | None:
    """The signal that drifted most (highest level, then D over its threshold)."""
    return max(results, key=lambda r: (r.level, r.value / r.threshold), default=None)


def reference_of(manifest_raw: Mapping[str, Any]) -> dict[str, list[float]]:
    """The per-signal reference values a bundle's manifest carries ({} for bundles
    exported before monitoring existed)."""
    return dict((manifest_raw.get("reference_stats") or {}).get("signals") or {})


@dataclass(frozen=True)
class DriftStatus:
    level: int
    message: str
    frames: int
    results: tuple[SignalDrift, ...]

    @property
    def level_name(self) -> str:
        return LEVEL_NAMES[self.level]

    @property
    def worst_signal(self) -> str:
        """The signal that drifted most, "" when none did."""
        top = worst(self.results)
        return top.name if top is not None and top.drifted else ""


class DriftMonitor:
    """A sliding window of the latest frames' signals, judged against a reference.

    `add` is called from the worker thread for every frame; `status` from whoever reports
    (diagnostics, metrics) at its own rate, so the tests cost nothing per frame."""

    def __init__(
        self,
        reference: Mapping[str, Sequence[float]],
        signals: Sequence[Signal],
        window: int = 50,
        min_frames: int = 20,
        alpha: float = ALPHA,
    ) -> None:
        self.reference = {k: list(v) for k, v in reference.items()}
        self.signals = tuple(signals)
        self.window, self.min_frames, self.alpha = window, min(min_frames, window), alpha
        self._values: dict[str, deque[float]] = {s.name: deque(maxlen=window) for s in self.signals}
        self._frames = 0
        self._lock = threading.Lock()

    @classmethod
    def for_model(cls, manifest: Manifest, window: int = 50, min_frames: int = 20) -> DriftMonitor:
        """A window for the frames of the model a manifest describes: its reference
        signals, and the signals its classes produce."""
        return cls(reference_of(manifest.raw), signals_for(manifest.outputs.classes), window, min_frames)

    def reset(self) -> None:
        """Forget the window (a new model: its reference is another)."""
        with self._lock:
            for v in self._values.values():
                v.clear()
            self._frames = 0

    def add(self, signals: Mapping[str, float]) -> None:
        with self._lock:
            for name, values in self._values.items():
                if name in signals:
                    values.append(float(signals[name]))
            self._frames += 1

    def status(self) -> DriftStatus:
        with self._lock:
            current = {k: list(v) for k, v in self._values.items()}
            frames = min(self._frames, self.window)
        if not self.reference:
            return DriftStatus(OK, "not judged: the bundle carries no reference signals", frames, ())
        if frames < self.min_frames:
            return DriftStatus(OK, f"collecting frames ({frames} of {self.min_frames})", frames, ())
        results = tuple(compare(self.reference, current, self.signals, self.alpha))
        top = worst(results)
        if top is None or top.level == OK:
            return DriftStatus(OK, f"no drift over the last {frames} frames", frames, results)
        drifted = sum(r.drifted for r in results)
        return DriftStatus(
            top.level,
            f"{drifted} signal(s) drifted over the last {frames} frames; worst {top.name}: "
            f"median moved {top.shift:+.3g} (KS D {top.value:.2f} > {top.threshold:.2f})",
            frames,
            results,
        )
