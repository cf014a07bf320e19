"""Sensor data files (CSV or Parquet) → per-sensor series.

The column rules shared by ``replay``, ``train`` and ``detect``:

- the first column is the timestamp (ISO-8601 / ``YYYY-MM-DD hh:mm:ss`` or epoch ms);
- the first of ``anomaly`` / ``label`` present is the ground-truth label and
  ``changepoint`` is ignored, so neither is an input channel (with both label
  columns, ``label`` is an ordinary column: a channel when it holds numbers);
- a ``sensor_id`` column, when present, names each row's sensor (one file may hold
  many sensors); otherwise the sensor is named after the file (or ``sensor_id=``);
- every other numeric column is a channel; ``columns=`` picks a subset in order
  (a text column is not a channel, but a column of mostly numbers with a
  non-number cell is an error naming the cell);
- the CSV separator (``,`` or ``;``) is detected.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from streamae.exceptions import InputError

LABEL_COLUMNS = ("anomaly", "label")
IGNORED_COLUMNS = ("changepoint",)
SENSOR_COLUMN = "sensor_id"
SUFFIXES = (".csv", ".parquet")
#: Epoch ms before this (1973-03-03) suggest epoch seconds, or no timestamp column at all.
PLAUSIBLE_EPOCH_MS = 10**11

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class SensorSeries:
    """The rows of one sensor, in time order."""

    sensor_id: str
    ts_ms: np.ndarray  # int64 [N]
    values: np.ndarray  # float64 [N, C]
    channels: tuple[str, ...]
    labels: np.ndarray | None  # int8 [N], or None when the file has no label column
    source: Path

    def __len__(self) -> int:
        return len(self.ts_ms)

    def slice(self, start: int, stop: int | None = None) -> SensorSeries:
        labels = None if self.labels is None else self.labels[start:stop]
        return SensorSeries(
            self.sensor_id,
            self.ts_ms[start:stop],
            self.values[start:stop],
            self.channels,
            labels,
            self.source,
        )


def table_files(path: str | Path) -> list[Path]:
    """The data files at ``path``: the file itself, or every CSV/Parquet below a folder."""
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())
        if not files:
            raise InputError(f"{path}: no .csv or .parquet files in this folder")
        return files
    raise InputError(f"{path}: no such file or folder")


def read_frame(path: Path) -> pd.DataFrame:
    """Read a CSV (``,`` or ``;``) or Parquet file into a DataFrame, with clear errors."""
    with _table_errors(path):
        if path.suffix.lower() == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, sep=_separator(_header(path)))


def column_names(path: Path) -> list[str]:
    """The column names of a CSV or Parquet file, without reading its rows."""
    with _table_errors(path):
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq  # what pandas reads Parquet with

            return list(pq.read_schema(path).names)
        header = _header(path)
        return next(csv.reader([header], delimiter=_separator(header)))  # as pandas reads it


def _header(path: Path) -> str:
    with path.open("r", encoding="utf-8-sig", errors="strict") as handle:
        return handle.readline().rstrip("\r\n")


def _separator(header: str) -> str:
    return ";" if header.count(";") > header.count(",") else ","


@contextmanager
def _table_errors(path: Path) -> Iterator[None]:
    """The errors of reading ``path`` as one clear ``InputError`` each."""
    try:
        yield
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start})"
        ) from None
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise InputError(f"{path}: cannot be read as a table: {exc}") from None
    except ImportError as exc:
        raise InputError(f"{path}: reading Parquet needs pyarrow ({exc})") from None


def read_series(
    path: str | Path, columns: list[str] | None = None, sensor_id: str | None = None
) -> list[SensorSeries]:
    """The per-sensor series in one data file, sorted by time within each sensor."""
    path = Path(path)
    frame = read_frame(path)
    if frame.shape[1] < 2 or frame.empty:
        raise InputError(f"{path}: needs a timestamp column, at least one value column and rows")
    ts_col = frame.columns[0]
    ts_ms = _timestamps(frame[ts_col], path, ts_col)
    lower = {str(c).lower(): c for c in frame.columns}
    label_col = next((lower[name] for name in LABEL_COLUMNS if name in lower), None)
    non_inputs = {ts_col, label_col, SENSOR_COLUMN, *(lower.get(n) for n in IGNORED_COLUMNS)}
    candidates = [c for c in frame.columns if c not in non_inputs]
    if columns:
        unknown = [c for c in columns if c not in candidates]
        if unknown:
            raise InputError(
                f"{path}: unknown column(s) {', '.join(map(repr, unknown))}; "
                f"value columns here are {', '.join(map(repr, map(str, candidates)))}"
            )
        channels = list(columns)
        hint = "or leave the column out of --columns"
    else:
        # A text column (a unit, a status) is not a channel; a column of numbers with
        # a few other cells is a channel with typos, which must not vanish from the model.
        channels = [c for c in candidates if _mostly_numbers(frame[c])]
        hint = "or pick the value columns with --columns"
        if not channels:
            raise InputError(
                f"{path}: no numeric value column besides the timestamp and labels "
                f"(columns: {', '.join(map(repr, map(str, frame.columns)))})"
            )
    values = np.column_stack([_numbers(frame[c], path, hint) for c in channels])
    labels = None
    if label_col is not None:
        labels = _labels(frame[label_col], path)
    if SENSOR_COLUMN in frame.columns:
        sensor_ids = frame[SENSOR_COLUMN].astype(str).to_numpy()
    else:
        sensor_ids = np.full(len(frame), sensor_id or path.stem, dtype=object)
    out = []
    for sid in pd.unique(sensor_ids):
        rows = np.flatnonzero(sensor_ids == sid)
        rows = rows[np.argsort(ts_ms[rows], kind="stable")]
        out.append(
            SensorSeries(
                str(sid),
                ts_ms[rows],
                values[rows],
                tuple(map(str, channels)),
                None if labels is None else labels[rows],
                path,
            )
        )
    return out


def repeated_timestamps(series: SensorSeries) -> int:
    """How many rows of ``series`` repeat the timestamp of an earlier row."""
    return int(np.count_nonzero(np.diff(series.ts_ms) == 0))


def warn_repeated_timestamps(source: Path, count: int, consequence: str) -> None:
    """Warn that ``count`` rows of ``source`` repeat a timestamp of their sensor (if any);
    ``consequence`` says what the command does with them."""
    if count:
        log.warning(
            "%s: %d row(s) repeat the timestamp of an earlier row of their sensor: %s",
            source,
            count,
            consequence,
        )


def _mostly_numbers(column: pd.Series) -> bool:
    if pd.api.types.is_numeric_dtype(column):
        return True
    filled = column.dropna()
    return len(filled) > 0 and pd.to_numeric(filled, errors="coerce").notna().mean() > 0.5


def _numbers(column: pd.Series, path: Path, hint: str) -> np.ndarray:
    """``column`` as float64, or an error naming its first cell that is not a number."""
    numbers = pd.to_numeric(column, errors="coerce")
    bad = numbers.isna().to_numpy() & column.notna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"{path}: {_row(path, row)}, column {str(column.name)!r}: "
            f"{str(column.iloc[row])!r} is not a number; fix the cell (an empty cell is a "
            f"missing value), {hint}"
        )
    try:
        return numbers.to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:  # e.g. a date column picked as a channel
        raise InputError(f"{path}: column {str(column.name)!r} must be numeric ({exc})") from None


def _row(path: Path, index: int) -> str:
    """How a user finds row ``index`` (0-based, header excluded) in the file."""
    return f"row {index + 1}" if path.suffix.lower() == ".parquet" else f"row {index + 2}"


def _labels(column: pd.Series, path: Path) -> np.ndarray:
    """The 0/1 labels of ``column`` (empty: 0), or an error naming the first other value."""
    numbers = pd.to_numeric(column, errors="coerce")
    bad = ~(numbers.isin([0, 1]).to_numpy() | column.isna().to_numpy())
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"{path}: {_row(path, row)}, label column {str(column.name)!r}: "
            f"{str(column.iloc[row])!r} is not 0 or 1 (1 marks an anomaly)"
        )
    return numbers.fillna(0).to_numpy().astype(np.int8)


def _timestamps(column: pd.Series, path: Path, name: object) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(column):
        if column.isna().any():
            row = int(np.flatnonzero(column.isna().to_numpy())[0])
            raise InputError(f"{path}: {_row(path, row)}: empty timestamp in {name!r}")
        stamps = column.to_numpy(dtype=np.int64)
        if stamps.max() < PLAUSIBLE_EPOCH_MS:
            log.warning(
                "%s: the first column %r, read as epoch milliseconds, ends in %s; if it is "
                "epoch seconds or not a timestamp, make the first column ISO-8601 or epoch ms",
                path,
                name,
                pd.Timestamp(int(stamps.max()), unit="ms").year,
            )
        return stamps
    check_epoch_text(column, path, name)
    try:
        parsed = pd.to_datetime(column, utc=True, format="mixed")
    except (ValueError, TypeError) as exc:
        raise InputError(
            f"{path}: first column {name!r} must be timestamps (ISO-8601 or epoch ms): {exc}"
        ) from None
    if parsed.isna().any():
        row = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        raise InputError(f"{path}: {_row(path, row)}: empty or unreadable timestamp in {name!r}")
    return parsed.dt.as_unit("ms").astype("int64").to_numpy()


def check_epoch_text(column: pd.Series, path: Path, name: object) -> None:
    """A column of mostly epoch ms with a few other cells: name the first such cell.

    Read as text, its numbers fail to parse as dates, and pandas' error blames a
    valid epoch cell rather than the bad one.
    """
    bad = pd.to_numeric(column, errors="coerce").isna().to_numpy()
    # The channels' rule, empty cells left out: half of them empty is still epoch ms.
    if not (bad.any() and _mostly_numbers(column)):
        return
    row = int(np.flatnonzero(bad)[0])
    cell = column.iloc[row]
    what = "empty" if pd.isna(cell) else f"{str(cell)!r} is not a timestamp"
    raise InputError(
        f"{path}: {_row(path, row)}: {what} in {name!r}, whose other cells are epoch "
        "milliseconds; fix the cell"
    )
