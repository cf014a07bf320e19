"""The Numenta Anomaly Benchmark (NAB) score of a detector's alerts.

A port of NAB's scoring for binary detections, from numenta/NAB
``nab/sweeper.py`` (``scaledSigmoid``, ``Sweeper.calcSweepScore``,
``calcScoreByThreshold``), ``nab/scorer.py`` (per-file scoring) and
``nab/runner.py`` (``Runner.normalize``); weights from ``config/profiles.json``.

For one series of ``n_rows`` rows, anomaly ``windows`` (inclusive row
intervals) and ``detections`` (the rows where an alert opened):

- the first ``min(floor(0.15·n_rows), 750)`` rows are probationary: detections
  there are ignored, and a window ending inside them is not scored;
- a window with a detection scores ``tp·S(p)/S(-1)`` for its *first* detection,
  where ``p = -(last - i + 1) / width`` (-1 at the window's first row, close to
  0 at its last) and ``S(p) = 2·sigmoid(-5p) - 1`` (``S(p) = -1`` for p > 3);
  a window without one scores ``-fn``;
- a detection outside every window scores ``fp·S(q)``, ``q = (i - last) /
  (width - 1)`` of the closest preceding window (so an alert just after a
  window costs little), or ``-fp`` when no window precedes it. NAB divides by
  zero for a one-row preceding window; like NAB's older ``scorer.py`` we then
  use ``q = 2``.

Scores are summed over series (and files) *before* normalising, as NAB sums
its corpus: ``100 · (raw - null) / (perfect - null)`` where ``null`` is the
score of the detector that never fires (``-fn`` per scored window) and
``perfect = tp · number of windows``. Normalising is undefined without windows.

>>> round(scaled_sigmoid(-0.5), 5)
0.84828
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

from streamae.evaluation.metrics import Interval

PROBATION_PERCENT = 0.15
# NAB caps the probationary period at 15% of 5000 rows (sweeper._getProbationaryLength).
PROBATION_CAP_ROWS = 5000


@dataclass(frozen=True)
class Profile:
    """A NAB application profile: the weight of each kind of outcome."""

    tp_weight: float
    fp_weight: float
    fn_weight: float


PROFILES: dict[str, Profile] = {
    "standard": Profile(tp_weight=1.0, fp_weight=0.11, fn_weight=1.0),
    "reward_low_FP_rate": Profile(tp_weight=1.0, fp_weight=0.22, fn_weight=1.0),
    "reward_low_FN_rate": Profile(tp_weight=1.0, fp_weight=0.11, fn_weight=2.0),
}


def scaled_sigmoid(position: float) -> float:
    """NAB's ``scaledSigmoid``: 0.98661 at -1 (window start), 0 at 0, -1 beyond 3."""
    if position > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


def probationary_length(n_rows: int, percent: float = PROBATION_PERCENT) -> float:
    """Rows at the start of a series that NAB does not score (row index < this)."""
    return min(math.floor(percent * n_rows), percent * PROBATION_CAP_ROWS)


@dataclass(frozen=True)
class NabEvents:
    """The profile-independent outcome of NAB scoring one series.

    ``tp_positions`` holds the relative position of the first detection in each
    detected window, ``fp_positions`` the position past the preceding window of
    each false detection (``None`` when no window precedes it).
    """

    windows: int
    scored_windows: int
    tp_positions: tuple[float, ...]
    fp_positions: tuple[float | None, ...]

    @property
    def detected(self) -> int:
        return len(self.tp_positions)

    @property
    def missed(self) -> int:
        return self.scored_windows - self.detected

    @property
    def false_alarms(self) -> int:
        return len(self.fp_positions)


@dataclass(frozen=True)
class NabScore:
    """Raw, null-detector and perfect-detector scores; add them, then normalise."""

    raw: float = 0.0
    null: float = 0.0
    perfect: float = 0.0

    def __add__(self, other: NabScore) -> NabScore:
        return NabScore(self.raw + other.raw, self.null + other.null, self.perfect + other.perfect)

    @property
    def normalised(self) -> float | None:
        """``100 · (raw - null) / (perfect - null)``; ``None`` when there are no windows."""
        span = self.perfect - self.null
        return 100.0 * (self.raw - self.null) / span if span else None


def nab_events(
    n_rows: int,
    windows: Sequence[Interval],
    detections: Sequence[int],
    probation_percent: float = PROBATION_PERCENT,
) -> NabEvents:
    """Classify the ``detections`` (row indices) of one series against its ``windows``.

    ``windows`` must be sorted, disjoint and inside ``[0, n_rows)``.
    """
    _check_windows(n_rows, windows)
    probation = probationary_length(n_rows, probation_percent)
    starts = [first for first, _ in windows]
    first_hit: dict[int, float] = {}
    fp_positions: list[float | None] = []
    for row in sorted(set(detections)):
        if row < probation:
            continue
        k = bisect.bisect_right(starts, row) - 1  # last window starting at or before row
        if k >= 0 and row <= windows[k][1]:
            first, last = windows[k]
            # Detections come in row order, so the first one seen is the earliest.
            first_hit.setdefault(k, -(last - row + 1) / (last - first + 1))
        elif k >= 0:
            first, last = windows[k]
            width = last - first + 1
            fp_positions.append((row - last) / (width - 1) if width > 1 else 2.0)
        else:
            fp_positions.append(None)
    return NabEvents(
        windows=len(windows),
        scored_windows=sum(1 for _, last in windows if last >= probation),
        tp_positions=tuple(first_hit[k] for k in sorted(first_hit)),
        fp_positions=tuple(fp_positions),
    )


def nab_score(events: NabEvents, profile: Profile) -> NabScore:
    """The raw, null and perfect NAB scores of one series under ``profile``."""
    max_tp = scaled_sigmoid(-1.0)
    tp = sum(profile.tp_weight * scaled_sigmoid(p) / max_tp for p in events.tp_positions)
    fp = sum(
        profile.fp_weight * (-1.0 if q is None else scaled_sigmoid(q)) for q in events.fp_positions
    )
    fn = -profile.fn_weight * events.missed
    return NabScore(
        raw=tp + fp + fn,
        null=-profile.fn_weight * events.scored_windows,
        perfect=profile.tp_weight * events.windows,
    )


def _check_windows(n_rows: int, windows: Sequence[Interval]) -> None:
    previous_last = -1
    for first, last in windows:
        if not previous_last < first <= last < n_rows:
            raise ValueError(
                f"windows must be sorted, disjoint and within 0..{n_rows - 1}: {list(windows)}"
            )
        previous_last = last
