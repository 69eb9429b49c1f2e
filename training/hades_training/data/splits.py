"""Splits that keep an experiment together.

Plates of one experiment share seeds, dishes, lighting and dates; splitting them
across train and test leaks all of that, so splits assign whole groups, never
single images and never patches.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

_EXPERIMENT = re.compile(r"(exp\d+)", re.IGNORECASE)
_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})")


def experiment_key(stem: str) -> str:
    """The group a file stem belongs to: its `expNN` token, else its date, else its
    first `_`-separated field (NPEC stems start with a plate/series number)."""
    for pattern in (_EXPERIMENT, _DATE):
        m = pattern.search(stem)
        if m:
            return m.group(1).lower()
    return stem.split("_", 1)[0]


def split_groups(groups: Sequence[str], fractions: dict[str, float], seed: int = 0) -> dict[str, str]:
    """Assign each distinct group to a split so the item counts approach `fractions`.

    Deterministic for a seed. Returns group -> split name.
    """
    if not fractions or any(f < 0 for f in fractions.values()) or sum(fractions.values()) <= 0:
        raise ValueError(f"split fractions must be non-negative and not all zero, got {fractions}")
    counts: dict[str, int] = {}
    for g in groups:
        counts[g] = counts.get(g, 0) + 1
    order = sorted(counts)
    np.random.default_rng(seed).shuffle(order)
    total = sum(fractions.values())
    want = {name: f / total * len(groups) for name, f in fractions.items()}
    have = dict.fromkeys(fractions, 0)
    assignment = {}
    for g in order:
        # Give the group to the split furthest below its target.
        name = max(want, key=lambda n: want[n] - have[n])
        assignment[g] = name
        have[name] += counts[g]
    return assignment
