"""Evaluate a folder of ``streamae detect`` outputs against labelled data.

Each detections file (``timestamp, ..., is_anomaly, ...`` and, for multi-sensor
files, ``sensor_id``) is matched by its path relative to the detections folder
with the data file at the same relative path under the data folder. Its rows
are matched to the data rows by timestamp (per sensor). Then, per series:

- point-wise counts over the scored rows: the rows of the detections file from
  the first one with a ``score`` on (``detect`` leaves the score of its
  training rows empty; all rows count when there is no ``score`` column);
- event counts of the detected runs against all the labelled windows (a
  window among the training rows, which the detector cannot flag, counts as
  missed);
- NAB on alert onsets (the first row of each run), over the data file's rows,
  so that NAB's probationary period is 15% of the *data* file.

Rows are taken in time order (a stable sort), as every streamae stage reads
them. NAB itself walks a file in row order; the two differ only where a file's
timestamps go backwards (12 rows of NAB's machine_temperature_system_failure,
far from its windows).

>>> report = evaluate_folder("det-out", "data/NAB/data", "data/NAB/labels/combined_windows.json")
... # doctest: +SKIP
>>> report.total["nab_standard"]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from streamae.evaluation.labels import (
    Labels,
    WindowLabels,
    binary_column,
    load_labels,
    parse_timestamps,
)
from streamae.evaluation.metrics import event_counts, point_counts, runs
from streamae.evaluation.nab import nab_events
from streamae.evaluation.report import EvaluationReport, Tally, total_of
from streamae.exceptions import InputError, first_few
from streamae.tables import SENSOR_COLUMN, SUFFIXES, read_frame, table_files

log = logging.getLogger(__name__)

TIMESTAMP_COLUMN = "timestamp"
FLAG_COLUMN = "is_anomaly"
SCORE_COLUMN = "score"
ROOT_CATEGORY = "."


def evaluate_folder(
    detections_dir: str | Path,
    data_dir: str | Path,
    labels: Labels | str | Path,
    progress: bool = False,
) -> EvaluationReport:
    """Evaluate every detections file under ``detections_dir``; see the module docstring.

    ``labels`` is a :class:`Labels`, a windows JSON path or ``"column:NAME"``.
    Raises :class:`InputError` for missing folders, unreadable labels, a
    detections file without a matching data file, or malformed files.
    """
    detections_dir, data_dir = Path(detections_dir), Path(data_dir)
    for what, folder in (("detections", detections_dir), ("data", data_dir)):
        if not folder.is_dir():
            raise InputError(f"{folder}: no such {what} folder")
    if not isinstance(labels, Labels):
        labels = load_labels(labels)
    if isinstance(labels, WindowLabels):
        warn_unmatched(labels, data_dir)
    per_file: dict[str, Tally] = {}
    files = table_files(detections_dir)
    for path in tqdm(files, desc="evaluate", unit="file", disable=not progress, file=sys.stderr):
        relative = path.relative_to(detections_dir)
        data_path = matching_data_file(data_dir, relative)
        key = data_path.relative_to(data_dir).as_posix()
        per_file[relative.as_posix()] = evaluate_file(path, data_path, key, labels)
    categories: dict[str, list[Tally]] = {}
    for name, tally in per_file.items():
        category = name.split("/", 1)[0] if "/" in name else ROOT_CATEGORY
        categories.setdefault(category, []).append(tally)
    return EvaluationReport(
        per_file={name: t.metrics() for name, t in per_file.items()},
        per_category={name: total_of(ts).metrics() for name, ts in sorted(categories.items())},
        total=total_of(per_file.values()).metrics(),
        labels=labels.describe(),
    )


def warn_unmatched(labels: WindowLabels, data_dir: Path) -> None:
    """Warn about labelled files the data folder lacks: no error (a corpus's labels may
    be used on part of it), but the figures then cover less than the labels do."""
    present = {p.relative_to(data_dir).as_posix() for p in table_files(data_dir)}
    absent = sorted(set(labels.windows_ms) - present)
    if absent:
        log.warning(
            "%s: %d labelled file(s) not in %s, so not scored: %s",
            labels.source,
            len(absent),
            data_dir,
            first_few(absent),
        )


def matching_data_file(data_dir: Path, relative: Path) -> Path:
    """The data file at ``relative`` (or the same name with another table suffix)."""
    candidates = [data_dir / relative] + [
        data_dir / relative.with_suffix(s) for s in SUFFIXES if s != relative.suffix.lower()
    ]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise InputError(
        f"{relative}: detections file has no matching data file {data_dir / relative} "
        "(the detections folder must mirror the data folder's relative paths)"
    )


def evaluate_file(detections_path: Path, data_path: Path, key: str, labels: Labels) -> Tally:
    """The tally of one detections file against its data file and labels."""
    detections = read_frame(detections_path)
    missing = [c for c in (TIMESTAMP_COLUMN, FLAG_COLUMN) if c not in detections.columns]
    if missing:
        raise InputError(
            f"{detections_path}: no {' or '.join(map(repr, missing))} column; "
            "expected the output of `streamae detect`"
        )
    data = read_frame(data_path)
    if data.empty:
        raise InputError(f"{data_path}: no rows")
    has_sensor = SENSOR_COLUMN in detections.columns, SENSOR_COLUMN in data.columns
    if has_sensor[0] != has_sensor[1]:
        raise InputError(
            f"{detections_path}: {'has' if has_sensor[0] else 'lacks'} a {SENSOR_COLUMN!r} column "
            f"but {data_path} {'does not' if has_sensor[0] else 'does'}"
        )
    det_ts = parse_timestamps(detections[TIMESTAMP_COLUMN], detections_path)
    det_flags = binary_column(detections[FLAG_COLUMN], str(detections_path))
    if SCORE_COLUMN in detections.columns:
        det_scored = detections[SCORE_COLUMN].notna().to_numpy()
    else:
        det_scored = np.ones(len(detections), dtype=bool)
    data_ts = parse_timestamps(data.iloc[:, 0], data_path)
    if has_sensor[0]:
        det_groups = _groups(detections[SENSOR_COLUMN])
        data_groups = _groups(data[SENSOR_COLUMN])
        unknown = sorted(set(det_groups) - set(data_groups))
        if unknown:
            raise InputError(f"{detections_path}: sensor(s) {unknown[:5]} not in {data_path}")
    else:
        det_groups = {"": np.arange(len(detections))}
        data_groups = {"": np.arange(len(data))}
    total = Tally()
    for sensor, data_rows in data_groups.items():
        data_rows = data_rows[np.argsort(data_ts[data_rows], kind="stable")]
        det_rows = det_groups.get(sensor, np.array([], dtype=np.int64))
        det_rows = det_rows[np.argsort(det_ts[det_rows], kind="stable")]
        where = f"{detections_path}" + (f" (sensor {sensor!r})" if sensor else "")
        total += _series_tally(
            where,
            series_ts=data_ts[data_rows],
            series_rows=data.iloc[data_rows],
            det_ts=det_ts[det_rows],
            flags=det_flags[det_rows],
            scored=det_scored[det_rows],
            key=key,
            labels=labels,
        )
    return dataclasses.replace(total, files=1)


def _series_tally(
    where: str,
    series_ts: np.ndarray,
    series_rows: pd.DataFrame,
    det_ts: np.ndarray,
    flags: np.ndarray,
    scored: np.ndarray,
    key: str,
    labels: Labels,
) -> Tally:
    # Position of each detections row among the data rows: the k-th one at a
    # timestamp is the k-th data row at that timestamp (real files repeat some).
    repeat = np.arange(len(det_ts)) - np.searchsorted(det_ts, det_ts, side="left")
    positions = np.searchsorted(series_ts, det_ts, side="left") + repeat
    matched = (positions < len(series_ts)) & (
        series_ts[np.minimum(positions, len(series_ts) - 1)] == det_ts
    )
    if not matched.all():
        stamp = pd.Timestamp(int(det_ts[~matched][0]), unit="ms", tz="UTC")
        raise InputError(
            f"{where}: {int((~matched).sum())} row(s) have timestamps not in the data file, "
            f"first {stamp}"
        )
    if len(det_ts) < len(series_ts):
        log.warning(
            "%s: the detections have %d of the data's %d rows; the NAB score counts the "
            "others as not flagged, the point-wise counts leave them out",
            where,
            len(det_ts),
            len(series_ts),
        )
    windows = labels.row_windows(key, series_ts, series_rows)
    truth = np.zeros(len(series_ts), dtype=np.int8)
    for first, last in windows:
        truth[first : last + 1] = 1
    detected = [(int(positions[a]), int(positions[b])) for a, b in runs(flags)]
    # Rows before the first score are the detector's training rows: not point-scored.
    skip = int(np.argmax(scored)) if scored.any() else len(scored)
    return Tally.of_series(
        rows=len(det_ts) - skip,
        windows=len(windows),
        runs=len(detected),
        point=point_counts(truth[positions[skip:]], flags[skip:]),
        event=event_counts(windows, detected),
        nab=nab_events(len(series_ts), windows, [first for first, _ in detected]),
    )


def _groups(column: pd.Series) -> dict[str, np.ndarray]:
    names = column.astype(str).to_numpy()
    return {str(name): np.flatnonzero(names == name) for name in pd.unique(names)}
