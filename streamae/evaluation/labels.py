"""Ground-truth labels: where the anomalies are in each data file.

Two sources, both turned into inclusive row windows ``(first, last)`` over a
series' time-sorted rows:

- a NAB-style windows JSON, ``{"<category>/<name>.csv": [[start, end], ...]}``
  (timestamps like ``"2014-02-19 10:50:00.000000"`` or epoch ms; naive times are
  UTC, as everywhere in streamae). A window covers the rows with
  ``start <= ts <= end``; one that covers no row is dropped with a warning;
- ``column:NAME``: per-row 0/1 labels in column NAME of the data files (SKAB's
  ``anomaly``); each maximal run of 1s is a window.

>>> load_labels("column:anomaly").describe()
"column 'anomaly' of the data files"
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
import pandas as pd

from streamae.evaluation.metrics import Interval, runs
from streamae.exceptions import InputError
from streamae.tables import check_epoch_text

log = logging.getLogger(__name__)

COLUMN_PREFIX = "column:"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def parse_timestamps(column: pd.Series, where: str | Path) -> np.ndarray:
    """Epoch milliseconds (int64) of a timestamp column: epoch ms numbers or date-time text.

    ``where`` is the file (``column`` all its rows), so a bad cell is named with its row.
    """
    if pd.api.types.is_numeric_dtype(column):
        if column.isna().any():
            raise InputError(f"{where}: empty timestamp in column {column.name!r}")
        return column.to_numpy(dtype=np.int64)
    check_epoch_text(column, Path(where), column.name)
    try:
        parsed = pd.to_datetime(column, utc=True, format="mixed")
    except (ValueError, TypeError) as exc:
        raise InputError(
            f"{where}: column {column.name!r} must hold timestamps (ISO-8601 or epoch ms): {exc}"
        ) from None
    if parsed.isna().any():
        row = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        raise InputError(f"{where}: row {row + 2}: empty or unreadable timestamp")
    return parsed.dt.as_unit("ms").astype("int64").to_numpy()


def binary_column(column: pd.Series, where: str) -> np.ndarray:
    """A 0/1 column (ints, floats, booleans or true/false text) as int8; anything else fails."""
    if pd.api.types.is_bool_dtype(column):
        return column.to_numpy(dtype=np.int8)
    if pd.api.types.is_numeric_dtype(column):
        values = column.to_numpy(dtype=np.float64)
    else:
        text = column.astype(str).str.strip().str.lower()
        values = text.map({"0": 0.0, "1": 1.0, "false": 0.0, "true": 1.0}).to_numpy(
            dtype=np.float64, na_value=np.nan
        )
    bad = ~np.isin(values, (0.0, 1.0))
    if bad.any():
        at = int(np.flatnonzero(bad)[0])
        # The index is the row's position in its file; +2 for the header and 1-based lines.
        raise InputError(
            f"{where}: column {column.name!r} must be 0 or 1; row {int(column.index[at]) + 2} "
            f"has {column.tolist()[at]!r}"
        )
    return values.astype(np.int8)


class Labels(ABC):
    """Where the labelled anomalies of each data file are."""

    @abstractmethod
    def describe(self) -> str:
        """A short human description of the source, for reports."""

    @abstractmethod
    def row_windows(self, key: str, ts_ms: np.ndarray, rows: pd.DataFrame) -> list[Interval]:
        """The sorted, disjoint labelled windows of one series.

        ``key`` is the data file's path relative to the data folder (``/``
        separated), ``ts_ms`` the series' sorted timestamps and ``rows`` its data
        rows in the same order.
        """


class WindowLabels(Labels):
    """Anomaly windows per file, from a NAB-style windows JSON."""

    def __init__(self, windows_ms: dict[str, list[tuple[int, int]]], source: str) -> None:
        self.windows_ms = windows_ms
        self.source = source

    @classmethod
    def load(cls, path: str | Path) -> WindowLabels:
        path = Path(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(
                f"{path}: no such labels file (give a windows JSON or column:NAME)"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: cannot read the labels file: {exc}") from None
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(raw, dict):
            raise InputError(f"{path}: expected an object {{file: [[start, end], ...]}}")
        return cls(
            {key: _parse_windows(value, f"{path}: {key!r}") for key, value in raw.items()},
            str(path),
        )

    def describe(self) -> str:
        return f"windows from {self.source}"

    def row_windows(self, key: str, ts_ms: np.ndarray, rows: pd.DataFrame) -> list[Interval]:
        if key not in self.windows_ms:
            raise InputError(
                f"{self.source}: no entry for {key!r} (keys look like {self._example()})"
            )
        out = []
        for start, end in self.windows_ms[key]:
            first = int(np.searchsorted(ts_ms, start, side="left"))
            last = int(np.searchsorted(ts_ms, end, side="right")) - 1
            if first > last:
                log.warning("%s: a window of %r covers no data row; ignored", self.source, key)
                continue
            out.append((first, last))
        out.sort()
        for (_, last), (first, _) in zip(out, out[1:], strict=False):
            if first <= last:
                raise InputError(f"{self.source}: windows of {key!r} overlap; merge them")
        return out

    def _example(self) -> str:
        return repr(next(iter(self.windows_ms), "category/name.csv"))


class ColumnLabels(Labels):
    """Per-row 0/1 labels in a column of the data files."""

    def __init__(self, column: str) -> None:
        self.column = column

    def describe(self) -> str:
        return f"column {self.column!r} of the data files"

    def row_windows(self, key: str, ts_ms: np.ndarray, rows: pd.DataFrame) -> list[Interval]:
        if self.column not in rows.columns:
            raise InputError(
                f"{key}: no label column {self.column!r}; columns are "
                f"{', '.join(map(repr, map(str, rows.columns)))}"
            )
        return runs(binary_column(rows[self.column], key))


def load_labels(spec: str | Path) -> Labels:
    """``column:NAME`` → per-row labels; anything else is the path of a windows JSON."""
    text = str(spec)
    if text.startswith(COLUMN_PREFIX):
        column = text.removeprefix(COLUMN_PREFIX).strip()
        if not column:
            raise InputError("labels: 'column:' needs a column name, e.g. column:anomaly")
        return ColumnLabels(column)
    return WindowLabels.load(text)


def _parse_windows(value: object, where: str) -> list[tuple[int, int]]:
    if not isinstance(value, list) or not all(
        isinstance(pair, list) and len(pair) == 2 for pair in value
    ):
        raise InputError(f"{where}: expected a list of [start, end] pairs")
    windows = [(_bound_ms(start, where), _bound_ms(end, where)) for start, end in value]
    for start, end in windows:
        if start > end:
            raise InputError(f"{where}: a window ends before it starts")
    return windows


def _bound_ms(bound: object, where: str) -> int:
    if isinstance(bound, int | float) and not isinstance(bound, bool):
        # JSON's NaN, Infinity, 1e400, or an integer like 10**400 (math.isfinite would
        # overflow on it): outside int64, where the windows are compared with the rows.
        if not INT64_MIN <= bound <= INT64_MAX:
            raise InputError(
                f"{where}: window bound {bound!r} is not a timestamp; give epoch ms or a "
                'date-time like "2014-02-19 10:50:00"'
            )
        return int(bound)
    try:
        stamp = pd.Timestamp(str(bound))
    except ValueError as exc:
        raise InputError(f"{where}: {bound!r} is not a timestamp ({exc})") from None
    if stamp is pd.NaT:
        raise InputError(f"{where}: {bound!r} is not a timestamp")
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.value // 1_000_000
