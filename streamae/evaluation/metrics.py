"""Point-wise and event-level detection metrics on row-indexed arrays.

Everything here works on positions in one series (row indices) and inclusive
intervals ``(first, last)`` of row indices:

- a *window* is a labelled anomaly: the rows whose ground truth is 1;
- a *run* is a maximal stretch of consecutive rows with ``is_anomaly == 1``.

Point-wise counts compare the label and the prediction row by row.

Event-level counts follow Orion's overlap segment method
(sintel-dev/Orion ``orion/evaluation/contextual.py``: ``_overlap_segment``, the
``weighted=False`` / ``method=_overlap_segment`` variant of
``contextual_f1_score``):

- TP = labelled windows overlapped by at least one run;
- FN = labelled windows overlapped by no run;
- FP = runs overlapping no labelled window;
- precision = TP / (TP + FP), recall = TP / (TP + FN).

Two intervals overlap when they share at least one row (Orion pads every
interval by one time unit and tests strict overlap, which for integer
positions is the same thing). Note the mixed units of Orion's precision: TP
counts windows, FP counts runs, so two runs inside one window count once.

F1 is ``2·TP / (2·TP + FP + FN)``, the harmonic mean of precision and recall
whenever both are defined and 0 when TP = 0 (where Orion returns NaN). A ratio
whose denominator is 0 is undefined and returned as ``None``.

>>> runs(np.array([0, 1, 1, 0, 1]))
[(1, 2), (4, 4)]
>>> event_counts(windows=[(1, 3), (6, 8)], detected=[(3, 4), (10, 10)])
Counts(tp=1, fp=1, fn=1)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Interval = tuple[int, int]


@dataclass(frozen=True)
class Counts:
    """True positives, false positives and false negatives (of rows or of events)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def precision(self) -> float | None:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float | None:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float | None:
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def runs(flags: np.ndarray) -> list[Interval]:
    """The maximal runs of non-zero ``flags`` as inclusive ``(first, last)`` indices."""
    on = np.asarray(flags).astype(bool).astype(np.int8)
    edges = np.diff(np.concatenate(([0], on, [0])))
    starts = np.flatnonzero(edges == 1)
    stops = np.flatnonzero(edges == -1) - 1
    return [(int(a), int(b)) for a, b in zip(starts, stops, strict=True)]


def point_counts(truth: np.ndarray, predicted: np.ndarray) -> Counts:
    """Row-by-row counts of ``predicted`` (0/1) against ``truth`` (0/1)."""
    truth = np.asarray(truth).astype(bool)
    predicted = np.asarray(predicted).astype(bool)
    if truth.shape != predicted.shape:
        raise ValueError(f"truth has shape {truth.shape}, predicted {predicted.shape}")
    return Counts(
        tp=int(np.count_nonzero(truth & predicted)),
        fp=int(np.count_nonzero(~truth & predicted)),
        fn=int(np.count_nonzero(truth & ~predicted)),
    )


def overlaps(a: Interval, b: Interval) -> bool:
    """Whether two inclusive intervals share at least one position."""
    return a[0] <= b[1] and b[0] <= a[1]


def event_counts(windows: Sequence[Interval], detected: Sequence[Interval]) -> Counts:
    """Orion's overlap-segment counts of ``detected`` runs against labelled ``windows``."""
    tp = sum(1 for w in windows if any(overlaps(w, r) for r in detected))
    fp = sum(1 for r in detected if not any(overlaps(w, r) for w in windows))
    return Counts(tp=tp, fp=fp, fn=len(windows) - tp)
