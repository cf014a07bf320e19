"""Offline detection: a data file (or a folder of them) through the same ``Pipeline`` as live.

Per file, per sensor: train on the first rows (or on a separate normal file, or
use a saved model), prime each sensor's window with the last ``W - 1`` training
rows so there is no blind spot, then stream the remaining rows through a
``Pipeline`` in chunks, exactly as the monitor would receive them. The output
has one row per input row::

    timestamp, score, threshold, anomaly_score, is_anomaly, err_<channel>..., [label], [sensor_id]

``score``/``threshold``/``err_*`` are empty where no window ended (training rows,
the first ``W - 1`` rows without priming, rows skipped by the stride, rows with a
missing value: those are left out of the windows, like readings the monitor refuses);
``anomaly_score = score / (score + threshold)`` in 0..1 (0 where there is no
score); ``is_anomaly`` is 1 while an alert is open (0 in the training rows).

>>> result = detect_series(series, detector, Settings(), train_rows=[500])  # doctest: +SKIP
>>> result.frame.is_anomaly.sum(), len(result.alerts)  # doctest: +SKIP
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from streamae.config import Settings
from streamae.detectors.base import Detector
from streamae.detectors.zscore import ZScoreDetector
from streamae.exceptions import ConfigError, InputError, StreamaeError
from streamae.messages import Alert, Reading
from streamae.pipeline import Pipeline
from streamae.tables import (
    SENSOR_COLUMN,
    SensorSeries,
    column_names,
    read_series,
    table_files,
    warn_repeated_timestamps,
)

if TYPE_CHECKING:
    from streamae.training import TrainConfig

log = logging.getLogger(__name__)

DETECTORS = ("autoencoder", "zscore")
#: Readings per ``Pipeline.process`` call: like a large Kafka poll.
CHUNK = 4096


@dataclass(frozen=True)
class DetectOptions:
    """How ``detect`` gets its detector for each file; exactly one training source or a model."""

    train_fraction: float | None = None
    train_rows: int | None = None
    train_file: Path | None = None
    model: Path | None = None
    columns: tuple[str, ...] | None = None
    detector: str = "autoencoder"
    arch: str | None = None
    epochs: int | None = None
    #: Further ``TrainConfig`` fields for the autoencoder, as ``(name, value)`` pairs.
    training: tuple[tuple[str, Any], ...] = ()
    chunk: int = CHUNK

    def __post_init__(self) -> None:
        given = [
            name
            for name in ("train_fraction", "train_rows", "train_file")
            if getattr(self, name) is not None
        ]
        if len(given) > 1:
            raise ConfigError(f"give only one of {', '.join(given)}")
        if not given and self.model is None:
            raise ConfigError(
                "say what to train on (--train-fraction, --train-rows or --train-file) "
                "or give a trained model (--model)"
            )
        if self.train_fraction is not None and not 0.0 < self.train_fraction < 1.0:
            raise ConfigError(
                f"train fraction must be between 0 and 1 (exclusive), got {self.train_fraction}"
            )
        if self.train_rows is not None and self.train_rows <= 0:
            raise ConfigError(f"train rows must be > 0, got {self.train_rows}")
        if self.detector not in DETECTORS:
            raise ConfigError(
                f"unknown detector {self.detector!r}; choose one of {', '.join(DETECTORS)}"
            )
        if self.model is not None and self.train_file is not None:
            raise ConfigError("give either --model or --train-file, not both")
        if self.chunk <= 0:
            raise ConfigError(f"chunk must be > 0, got {self.chunk}")


@dataclass
class DetectResult:
    """The per-row output of one file, and the alert events of the run."""

    frame: pd.DataFrame
    alerts: list[Alert]
    model_version: str


@dataclass(frozen=True)
class FileReport:
    """What happened to one input file (``error`` is set when it failed)."""

    source: Path
    output: Path | None
    rows: int = 0
    scored: int = 0
    alerts: int = 0
    seconds: float = 0.0
    error: str | None = None


def detect_series(
    series: Sequence[SensorSeries],
    detector: Detector,
    settings: Settings,
    train_rows: Sequence[int] | None = None,
    chunk: int = CHUNK,
) -> DetectResult:
    """Score ``series`` with ``detector`` through one ``Pipeline``.

    ``train_rows[i]`` rows at the start of ``series[i]`` are training data: they
    are not scored, and their last ``W - 1`` prime the window.
    """
    train_rows = list(train_rows) if train_rows is not None else [0] * len(series)
    pipeline = Pipeline(settings, detector)
    width = detector.window_size - 1
    primer, gaps = _readings(
        [s.slice(max(0, n - width), n) for s, n in zip(series, train_rows, strict=True)]
    )
    rejected = pipeline.prime(primer)
    test, test_gaps = _readings([s.slice(n) for s, n in zip(series, train_rows, strict=True)])
    for sensor_id, count in (gaps + test_gaps).items():
        log.warning(
            "%s: %d row(s) with a missing value left out of the windows (no score there)",
            sensor_id,
            count,
        )
    scores, alerts = [], []
    for start in range(0, len(test), chunk):
        out = pipeline.process(test[start : start + chunk])
        scores += out.scores
        alerts += out.alerts
        rejected += out.rejected
    out = pipeline.flush()
    scores += out.scores
    alerts += out.alerts
    if rejected:
        raise InputError(rejected[0][1])
    # Rows are in time order per sensor, so nothing is late; repeats are duplicates.
    warn_repeated_timestamps(
        series[0].source,
        pipeline.counts["duplicate"],
        "only the first row with each timestamp is scored",
    )
    frames = []
    by_sensor: dict[str, list] = {}
    for score in scores:
        by_sensor.setdefault(score.sensor_id, []).append(score)
    for one, n_train in zip(series, train_rows, strict=True):
        frames.append(_frame(one, n_train, by_sensor.get(one.sensor_id, []), detector.channels))
    return DetectResult(pd.concat(frames, ignore_index=True), alerts, detector.version)


def detect_file(
    path: Path,
    out_path: Path,
    settings: Settings,
    options: DetectOptions,
    detector: Detector | None,
) -> FileReport:
    """Detect on one data file and write its output CSV (``detector`` None: train one here)."""
    started = time.perf_counter()
    series = read_series(path, _columns(options))
    train_rows = [_train_rows(s, options) for s in series]
    for one, n in zip(series, train_rows, strict=True):
        if n >= len(one):
            raise InputError(
                f"{path}: sensor {one.sensor_id!r} has {len(one)} rows, all used for training; "
                "nothing is left to score (use a smaller --train-fraction/--train-rows)"
            )
    if detector is None:
        if options.model is not None:
            detector = load_model(options.model, settings)
        elif options.train_file is not None:
            detector = train(read_series(options.train_file, _columns(options)), settings, options)
        else:
            heads = [s.slice(0, n) for s, n in zip(series, train_rows, strict=True)]
            detector = train(heads, settings, options)
    check_channels(detector, series[0].channels, path)
    result = detect_series(series, detector, settings, train_rows, options.chunk)
    if SENSOR_COLUMN in column_names(path):  # then the output names each row's sensor too
        result.frame[SENSOR_COLUMN] = np.concatenate(
            [np.full(len(s), s.sensor_id, dtype=object) for s in series]
        )
    _write_table(result.frame, out_path)
    return FileReport(
        source=path,
        output=out_path,
        rows=len(result.frame),
        scored=int(result.frame["score"].notna().sum()),
        alerts=sum(a.state == "open" for a in result.alerts),
        seconds=time.perf_counter() - started,
    )


def detect_path(
    source: str | Path,
    out: str | Path,
    settings: Settings,
    options: DetectOptions,
    jobs: int = 2,
    progress: bool = True,
    model: Detector | None = None,
) -> list[FileReport]:
    """Detect on a file or every data file below a folder; one output CSV per input file.

    In a folder, a failing file does not stop the others: its report carries the error.
    Files are processed by ``jobs`` worker processes (one torch thread each).
    ``model`` is ``options.model`` already loaded (the caller looked at it).
    """
    # "out/" names a folder even before it exists (Path drops the slash).
    as_folder = str(out).endswith(("/", os.sep))
    source, out = Path(source), Path(out)
    files = table_files(source)
    targets = output_paths(source, files, out, as_folder=as_folder)
    detector = model
    if options.train_file is not None:
        detector = train(read_series(options.train_file, _columns(options)), settings, options)
    elif options.model is not None and detector is None:
        detector = load_model(options.model, settings)  # fail early, once, on a bad model
    if source.is_file():  # one file: its error is the command's error
        return [detect_file(files[0], targets[files[0]], settings, options, detector)]
    # Workers load a saved model themselves rather than receive it pickled.
    shared = detector if options.model is None else None
    return detect_files(
        files, targets, settings, options, shared=shared, jobs=jobs, progress=progress
    )


def detect_files(
    files: list[Path],
    targets: dict[Path, Path],
    settings: Settings,
    options: DetectOptions,
    *,
    shared: Detector | None = None,
    jobs: int = 2,
    progress: bool = True,
    desc: str = "detect",
) -> list[FileReport]:
    """``detect_file`` of each of ``files`` into ``targets[file]``, in ``files`` order.

    A failing file does not stop the others: its report carries the error. With
    ``jobs`` > 1, files go to that many worker processes (one torch thread each).
    """
    reports: list[FileReport] = []
    bar = tqdm(total=len(files), desc=desc, unit="file", file=sys.stderr, disable=not progress)
    with bar:
        if jobs <= 1 or len(files) == 1:
            for path in files:
                reports.append(_guarded(path, targets[path], settings, options, shared))
                bar.update()
            return reports
        torch_needed = options.detector == "autoencoder" or options.model is not None
        with concurrent.futures.ProcessPoolExecutor(
            max_workers=min(jobs, len(files)),
            initializer=_init_worker,
            initargs=(torch_needed,),
        ) as pool:
            # Largest first, so no big file starts last while the other workers idle.
            largest_first = sorted(files, key=lambda p: p.stat().st_size, reverse=True)
            futures = {
                path: pool.submit(_guarded, path, targets[path], settings, options, shared)
                for path in largest_first
            }
            for future in concurrent.futures.as_completed(futures.values()):
                report = future.result()
                bar.set_postfix_str(report.source.name)
                bar.update()
            return [futures[path].result() for path in files]


def output_paths(
    source: Path, files: list[Path], out: Path, *, as_folder: bool = False, option: str = "--out"
) -> dict[Path, Path]:
    """Where each input's output goes: ``out`` mirrors a folder's relative paths, as CSV.

    ``option`` is how the user gave ``out``, for the messages.
    """
    if source.is_dir():
        if out.exists() and not out.is_dir():
            raise InputError(f"{option} {out} is a file; for a folder of inputs give a folder")
        if out.resolve().is_relative_to(source.resolve()):  # a rerun would read its outputs
            raise InputError(
                f"{option} {out} is inside the input folder {source}; the next run would "
                f"take its outputs for inputs: choose a folder outside {source}"
            )
        targets = {p: (out / p.relative_to(source)).with_suffix(".csv") for p in files}
    elif out.is_dir() or as_folder:
        targets = {files[0]: out / files[0].with_suffix(".csv").name}
    else:
        targets = {files[0]: out}
    for path, target in targets.items():
        if target.resolve() == path.resolve():
            raise InputError(
                f"{target}: the output would overwrite its input; choose another {option}"
            )
        if target.exists() and not target.is_file():  # a pipe, a device, a folder
            raise InputError(
                f"{target}: exists and is not a regular file; left as it is "
                f"(choose another {option})"
            )
        if target.is_file() and not _is_detect_output(target):
            raise InputError(
                f"{target}: exists and is not an output of detect; left as it is "
                f"(choose another {option}, or remove it)"
            )
    return targets


def _is_detect_output(path: Path) -> bool:
    """Whether ``path`` is a table that ``detect`` wrote (which it may replace)."""
    try:
        columns = column_names(path)
    except InputError:
        return False
    return {"timestamp", "score", "threshold", "is_anomaly"} <= set(columns)


def train(series: list[SensorSeries], settings: Settings, options: DetectOptions) -> Detector:
    """A detector trained on ``series`` with the options' detector kind."""
    if options.detector == "zscore":
        return ZScoreDetector.fit(series, settings.window_size)
    from streamae.training import train_detector  # torch: only when needed

    return train_detector(series, train_config(settings, options), progress=False)


def train_config(settings: Settings, options: DetectOptions) -> TrainConfig:
    """The autoencoder's TrainConfig: the options' training fields, arch and epochs, on
    the settings' window and device."""
    from streamae.training import config_from_options  # torch: only when needed

    changes = dict(options.training)
    changes |= {k: v for k, v in (("arch", options.arch), ("epochs", options.epochs)) if v}
    return config_from_options(settings.window_size, settings.device, changes)


def load_model(folder: Path, settings: Settings) -> Detector:
    from streamae import artifact  # torch: only when needed

    return artifact.load(folder, settings.device)


def check_channels(detector: Detector, channels: Sequence[str], where: Path) -> None:
    """The data must have the model's channels (any order: the pipeline reorders by name)."""
    if set(channels) != set(detector.channels):
        raise InputError(
            f"{where}: the data has channels {list(channels)} but model {detector.version} "
            f"expects {list(detector.channels)} (pick them with --columns, or retrain)"
        )


def failed_summary(reports: Sequence[FileReport]) -> str | None:
    """One message naming every failed file, or None when all succeeded."""
    failed = [r for r in reports if r.error]
    if not failed:
        return None
    names = ", ".join(str(r.source) for r in failed)
    return f"{len(failed)} of {len(reports)} file(s) failed: {names}"


def _guarded(
    path: Path,
    out_path: Path,
    settings: Settings,
    options: DetectOptions,
    detector: Detector | None,
) -> FileReport:
    """``detect_file``, with a user error turned into a failed report instead of an exception."""
    try:
        return detect_file(path, out_path, settings, options, detector)
    except StreamaeError as exc:
        return FileReport(source=path, output=None, error=str(exc))


def _init_worker(torch_needed: bool) -> None:
    # Workers share the machine's cores: one torch thread each, or they fight.
    if torch_needed:
        import torch

        from streamae.detectors.autoencoder import resolve_device

        resolve_device("cpu")  # lets the detector module set its default first
        torch.set_num_threads(1)


def _train_rows(series: SensorSeries, options: DetectOptions) -> int:
    if options.train_fraction is not None:
        return int(len(series) * options.train_fraction)
    if options.train_rows is not None:
        return options.train_rows
    return 0


def _columns(options: DetectOptions) -> list[str] | None:
    return list(options.columns) if options.columns else None


def _readings(series: Sequence[SensorSeries]) -> tuple[list[Reading], Counter[str]]:
    """The rows of all ``series`` as readings, merged in time order like a live stream,
    and how many rows each sensor had with a missing value.

    A row with a missing (or non-finite) value is a gap, as a reading the monitor
    refuses would be: it is left out, and its output row carries the alert state on.
    """
    readings: list[Reading] = []
    stamps: list[np.ndarray] = []
    gaps: Counter[str] = Counter()
    for one in series:
        complete = np.isfinite(one.values).all(axis=1)
        gaps[one.sensor_id] += len(one) - int(complete.sum())
        labels = one.labels[complete].tolist() if one.labels is not None else None
        ts_ms, values = one.ts_ms[complete], one.values[complete]
        channels = one.channels
        readings += [
            Reading(one.sensor_id, ts, dict(zip(channels, row, strict=True)), label)
            for ts, row, label in zip(
                ts_ms.tolist(), values.tolist(), labels or [None] * len(ts_ms), strict=True
            )
        ]
        stamps.append(ts_ms)
    gaps = +gaps  # only the sensors with gaps
    if len(series) <= 1:
        return readings, gaps
    order = np.argsort(np.concatenate(stamps), kind="stable")
    return [readings[i] for i in order], gaps


def _frame(
    series: SensorSeries, n_train: int, scores: list, channels: tuple[str, ...]
) -> pd.DataFrame:
    """The output rows of one sensor (see the module docstring)."""
    n = len(series)
    score = np.full(n, np.nan)
    threshold = np.full(n, np.nan)
    errors = np.full((n, len(channels)), np.nan)
    flag = np.full(n, -1, dtype=np.int8)  # -1: no window ended here
    if scores:
        # The first complete row with the window's end ts (rows with a missing value
        # never entered a window; a later duplicate was dropped, unscored).
        complete = np.flatnonzero(np.isfinite(series.values).all(axis=1))
        at = np.searchsorted(series.ts_ms[complete], [s.ts for s in scores], side="left")
        rows = complete[at]
        score[rows] = [s.score for s in scores]
        threshold[rows] = [s.threshold for s in scores]
        errors[rows] = [[s.channel_errors[c] for c in channels] for s in scores]
        flag[rows] = [s.is_anomaly for s in scores]
    # Between windows the alert state carries on from the last window's.
    flag[:n_train] = 0
    known = np.maximum.accumulate(np.where(flag >= 0, np.arange(n), 0))
    filled = np.maximum(flag[known], 0)
    total = score + threshold
    with np.errstate(invalid="ignore", divide="ignore"):
        anomaly = np.where(np.isfinite(total) & (total > 0), score / total, 0.0)
    frame = pd.DataFrame(
        {
            "timestamp": np.char.add(
                np.datetime_as_string(series.ts_ms.astype("datetime64[ms]"), unit="ms"), "Z"
            ),
            "score": score,
            "threshold": threshold,
            "anomaly_score": anomaly,
            "is_anomaly": filled,
        }
    )
    for i, channel in enumerate(channels):
        frame[f"err_{channel}"] = errors[:, i]
    if series.labels is not None:
        frame["label"] = series.labels
    return frame


def _write_table(frame: pd.DataFrame, path: Path) -> None:
    """CSV, or Parquet when ``path`` ends in .parquet."""
    # Write beside the target and rename, so a crash never leaves half a file.
    partial = path.with_name(f".{path.name}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix.lower() == ".parquet":
            frame.to_parquet(partial, index=False)
        else:
            frame.to_csv(partial, index=False)
        os.replace(partial, path)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from exc
