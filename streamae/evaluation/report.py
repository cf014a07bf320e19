"""Adding up per-file outcomes, naming the figures, and printing them.

A :class:`Tally` holds only additive quantities (counts and raw NAB scores), so
a category's or the total's figures come from summing its files' tallies and
*then* taking ratios: point and event TP/FP/FN are summed before computing
precision, recall and F1, and NAB scores are summed before normalising, as NAB
does over its corpus.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from streamae.evaluation.metrics import Counts
from streamae.evaluation.nab import PROFILES, NabEvents, NabScore, nab_score

Metrics = dict[str, float | int | None]

# Short column titles for the table; every profile gets a NAB column.
_PROFILE_TITLES = {
    "standard": "NAB",
    "reward_low_FP_rate": "NAB lowFP",
    "reward_low_FN_rate": "NAB lowFN",
}


@dataclass(frozen=True)
class Tally:
    """The additive outcome of evaluating one or more series."""

    files: int = 0
    rows: int = 0
    windows: int = 0
    runs: int = 0
    point: Counts = Counts()
    event: Counts = Counts()
    nab_detected: int = 0
    nab_missed: int = 0
    nab_false_alarms: int = 0
    nab: Mapping[str, NabScore] = field(default_factory=lambda: {p: NabScore() for p in PROFILES})

    @classmethod
    def of_series(
        cls, rows: int, windows: int, runs: int, point: Counts, event: Counts, nab: NabEvents
    ) -> Tally:
        return cls(
            files=0,
            rows=rows,
            windows=windows,
            runs=runs,
            point=point,
            event=event,
            nab_detected=nab.detected,
            nab_missed=nab.missed,
            nab_false_alarms=nab.false_alarms,
            nab={name: nab_score(nab, profile) for name, profile in PROFILES.items()},
        )

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            files=self.files + other.files,
            rows=self.rows + other.rows,
            windows=self.windows + other.windows,
            runs=self.runs + other.runs,
            point=self.point + other.point,
            event=self.event + other.event,
            nab_detected=self.nab_detected + other.nab_detected,
            nab_missed=self.nab_missed + other.nab_missed,
            nab_false_alarms=self.nab_false_alarms + other.nab_false_alarms,
            nab={p: self.nab[p] + other.nab[p] for p in PROFILES},
        )

    def metrics(self) -> Metrics:
        """Every figure, by name (``None`` where a ratio is undefined)."""
        out: Metrics = {
            "files": self.files,
            "rows": self.rows,
            "windows": self.windows,
            "runs": self.runs,
        }
        for kind, counts in (("point", self.point), ("event", self.event)):
            out |= {
                f"{kind}_tp": counts.tp,
                f"{kind}_fp": counts.fp,
                f"{kind}_fn": counts.fn,
                f"{kind}_precision": counts.precision,
                f"{kind}_recall": counts.recall,
                f"{kind}_f1": counts.f1,
            }
        out |= {
            "nab_detected": self.nab_detected,
            "nab_missed": self.nab_missed,
            "nab_false_alarms": self.nab_false_alarms,
        }
        for name, score in self.nab.items():
            out |= {
                f"nab_{name}": score.normalised,
                f"nab_{name}_raw": score.raw,
                f"nab_{name}_null": score.null,
                f"nab_{name}_perfect": score.perfect,
            }
        return out


def total_of(tallies: Iterable[Tally]) -> Tally:
    return sum(tallies, Tally())


@dataclass(frozen=True)
class EvaluationReport:
    """Figures per file (relative path), per category (first path part) and in total."""

    per_file: dict[str, Metrics]
    per_category: dict[str, Metrics]
    total: Metrics
    labels: str

    def to_dict(self) -> dict[str, object]:
        return {
            "labels": self.labels,
            "profiles": {
                name: {"tp_weight": p.tp_weight, "fp_weight": p.fp_weight, "fn_weight": p.fn_weight}
                for name, p in PROFILES.items()
            },
            "per_file": self.per_file,
            "per_category": self.per_category,
            "total": self.total,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def table(self, per_file: bool = False) -> str:
        """A plain-text table: one row per category (or per file) and a total row."""
        rows = self.per_file if per_file else self.per_category
        header = [
            "file" if per_file else "category",
            "files",
            "windows",
            "point P",
            "point R",
            "point F1",
            "event P",
            "event R",
            "event F1",
            *(_PROFILE_TITLES.get(name, f"NAB {name}") for name in PROFILES),
        ]
        body = [_row(name, m) for name, m in rows.items()]
        body.append(_row("total", self.total))
        widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

        def render(line: list[str]) -> str:
            first = line[0].ljust(widths[0])
            rest = (cell.rjust(width) for cell, width in zip(line[1:], widths[1:], strict=True))
            return "  ".join([first, *rest]).rstrip()

        rule = "-" * len(render(header))
        return "\n".join([render(header), rule, *map(render, body[:-1]), rule, render(body[-1])])


def _row(name: str, m: Metrics) -> list[str]:
    ratios = [
        f"{kind}_{what}" for kind in ("point", "event") for what in ("precision", "recall", "f1")
    ]
    return [
        name,
        str(m["files"]),
        str(m["windows"]),
        *(_fmt(m[key], 3) for key in ratios),
        *(_fmt(m[f"nab_{profile}"], 1) for profile in PROFILES),
    ]


def _fmt(value: float | int | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
