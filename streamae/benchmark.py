"""Benchmarks: ``detect`` over a labelled corpus with the corpus's own protocol, then ``evaluate``.

A protocol says what a detector may train on and how it is judged:

- ``nab`` — Numenta Anomaly Benchmark: train on the first 15% of each file only,
  labels from ``DIR/labels/combined_windows.json``; event and point P/R/F1 and the
  NAB standard / low-FP / low-FN scores of the alert onsets.
- ``skab`` — Skoltech Anomaly Benchmark: train on the first 400 rows of each file,
  labels in each file's ``anomaly`` column (files without it, such as
  ``anomaly-free.csv``, are skipped); point-wise F1 first, event metrics too.

Steps: resolve the data and labels → settings (``Settings`` defaults, then the
protocol's profile ``benchmarks/<name>.toml`` (``streamae.profile``), then ``STREAMAE_*``
environment variables, then explicit arguments) → per file, in ``jobs`` worker
processes, train on the protocol's rows and stream the rest through the live
``Pipeline`` (``streamae.detect.detect_file``) → ``evaluate_folder`` → a report
with the settings, the model configuration, per-file and total figures and the
wall time.

>>> report = run_benchmark("nab", "../shared/data/NAB", detector="conv")  # doctest: +SKIP
>>> report.evaluation.total["nab_standard"]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamae.config import Settings
from streamae.detect import DetectOptions, FileReport, detect_files, output_paths, train_config
from streamae.evaluation import EvaluationReport, Labels, evaluate_folder, load_labels
from streamae.evaluation.labels import ColumnLabels, WindowLabels
from streamae.exceptions import ConfigError, InputError
from streamae.profile import DETECTORS, Profile, layered_settings, load_profile, training_named
from streamae.tables import column_names, table_files

log = logging.getLogger(__name__)

#: The project checkout: default data is ``../shared/data`` beside it, profiles in ``benchmarks/``.
REPO = Path(__file__).resolve().parent.parent
PROFILES_DIR = REPO / "benchmarks"
DEFAULT_DETECTOR = "conv"
#: Settings that shape detection; the report records their values.
DETECTION_SETTINGS = (
    "window_size",
    "stride",
    "reorder_tolerance_ms",
    "max_gap_ms",
    "device",
    "threshold_policy",
    "threshold_window",
    "threshold_k",
    "threshold_quantile",
    "threshold_margin",
    "alert_open_after",
    "alert_close_after",
    "alert_rearm",
    "alert_fade",
)


@dataclass(frozen=True)
class Protocol:
    """How one benchmark corpus is run: its training rows, labels and headline figures."""

    name: str
    title: str
    default_data: Path
    labels: str
    train_fraction: float | None = None
    train_rows: int | None = None
    headline: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.train_fraction is not None:
            return f"train on the first {self.train_fraction:.0%} of each file"
        return f"train on the first {self.train_rows} rows of each file"


PROTOCOLS: dict[str, Protocol] = {
    "nab": Protocol(
        name="nab",
        title="Numenta Anomaly Benchmark",
        default_data=REPO.parent / "shared" / "data" / "NAB",
        labels="labels/combined_windows.json",
        train_fraction=0.15,
        headline=("event_f1", "nab_standard", "point_f1"),
    ),
    "skab": Protocol(
        name="skab",
        title="Skoltech Anomaly Benchmark",
        default_data=REPO.parent / "shared" / "data" / "SKAB",
        labels="column:anomaly",
        train_rows=400,
        headline=("point_f1", "event_f1", "nab_standard"),
    ),
}


@dataclass
class BenchmarkReport:
    """Everything one benchmark run used and measured."""

    protocol: Protocol
    data: Path
    labels: str
    detector: str
    jobs: int
    settings: dict[str, Any]
    profile: dict[str, Any]
    model: dict[str, Any]
    files: list[FileReport]
    skipped: list[str]
    evaluation: EvaluationReport
    seconds: dict[str, float]
    machine: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> list[FileReport]:
        return [f for f in self.files if f.error]

    def to_dict(self) -> dict[str, Any]:
        return {
            "benchmark": self.protocol.name,
            "protocol": {
                "title": self.protocol.title,
                "training": self.protocol.describe(),
                "train_fraction": self.protocol.train_fraction,
                "train_rows": self.protocol.train_rows,
                "headline": list(self.protocol.headline),
            },
            "data": str(self.data),
            "labels": self.labels,
            "detector": self.detector,
            "jobs": self.jobs,
            "settings": self.settings,
            "profile": self.profile,
            "model": self.model,
            "seconds": {k: round(v, 2) for k, v in self.seconds.items()},
            "machine": self.machine,
            "files": len(self.files),
            "failed": {str(f.source): f.error for f in self.failed},
            "skipped": self.skipped,
            "detect": {
                str(f.source): {"rows": f.rows, "scored": f.scored, "alerts": f.alerts}
                | {"seconds": round(f.seconds, 2)}
                for f in self.files
                if not f.error
            },
            "evaluation": self.evaluation.to_dict(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def headline(self) -> str:
        """One line with the protocol's headline figures of the total."""
        total = self.evaluation.total
        names = {
            "event_f1": "event F1",
            "point_f1": "point F1",
            "nab_standard": "NAB standard",
        }
        parts = []
        for key in self.protocol.headline:
            value = total.get(key)
            digits = 1 if key.startswith("nab_") else 3
            parts.append(f"{names.get(key, key)} {'-' if value is None else f'{value:.{digits}f}'}")
        return ", ".join(parts)


def run_benchmark(
    name: str,
    data: str | Path | None = None,
    labels: str | Path | None = None,
    detector: str | None = None,
    jobs: int = 2,
    profile_file: str | Path | None = None,
    settings: Mapping[str, Any] | None = None,
    workdir: str | Path | None = None,
    progress: bool = True,
    env: Mapping[str, str] | None = None,
) -> BenchmarkReport:
    """Run benchmark ``name`` (``nab`` or ``skab``); see the module docstring.

    ``settings`` are explicit Settings values (they win over everything);
    ``profile_file`` replaces ``benchmarks/<name>.toml``; ``workdir`` keeps the
    detection outputs there (default: a temporary folder, removed afterwards).
    """
    started = time.perf_counter()
    load_before = _load_average()
    protocol = _protocol(name)
    if jobs <= 0:
        raise ConfigError(f"jobs must be > 0, got {jobs}")
    dataset = Path(data) if data is not None else protocol.default_data
    data_root = _data_root(dataset, protocol)
    labels_spec = _labels_spec(dataset, labels, protocol)
    label_source = load_labels(labels_spec)
    profile = protocol_profile(profile_file, protocol)
    detector = detector or profile.detector or DEFAULT_DETECTOR
    if detector not in DETECTORS:
        raise ConfigError(f"unknown detector {detector!r}; choose one of {', '.join(DETECTORS)}")
    resolved = layered_settings(profile, settings, env)
    kind, arch = DETECTORS[detector]
    options = DetectOptions(
        train_fraction=protocol.train_fraction,
        train_rows=protocol.train_rows,
        detector=kind,
        arch=arch,
        training=tuple(sorted(profile.training.items())),
    )
    files, skipped = select_files(data_root, label_source)
    with training_named(profile):
        model = model_config(resolved, options)
    log.info("benchmark %s: %d file(s) under %s", protocol.name, len(files), data_root)

    with tempfile.TemporaryDirectory(prefix=f"streamae-{protocol.name}-") as scratch:
        out_dir = Path(workdir) if workdir is not None else Path(scratch)
        detections = out_dir / "detections"
        detect_started = time.perf_counter()
        reports = detect_files(
            files,
            output_paths(data_root, files, detections, option="--keep"),
            resolved,
            options,
            jobs=jobs,
            progress=progress,
            desc="benchmark",
        )
        detect_seconds = time.perf_counter() - detect_started
        if not any(not r.error for r in reports):
            first = reports[0].error if reports else "no files"
            raise InputError(f"every file failed; the first: {first}")
        evaluate_started = time.perf_counter()
        evaluation = evaluate_folder(detections, data_root, label_source)
        evaluate_seconds = time.perf_counter() - evaluate_started

    return BenchmarkReport(
        protocol=protocol,
        data=data_root,
        labels=label_source.describe(),
        detector=detector,
        jobs=jobs,
        settings={n: _jsonable(getattr(resolved, n)) for n in DETECTION_SETTINGS},
        profile=profile.to_dict(),
        model=model,
        files=reports,
        skipped=skipped,
        evaluation=evaluation,
        seconds={
            "wall": time.perf_counter() - started,
            "detect": detect_seconds,
            "evaluate": evaluate_seconds,
        },
        machine={
            "cpus": _cpus(),
            "load_average_before": load_before,
            "load_average_after": _load_average(),
        },
    )


def protocol_profile(path: str | Path | None, protocol: Protocol) -> Profile:
    """The profile at ``path``, else ``benchmarks/<name>.toml`` (empty when it does not exist)."""
    if path is None:
        path = PROFILES_DIR / f"{protocol.name}.toml"
        if not path.is_file():
            return Profile()
    return load_profile(path)


def select_files(data_root: Path, labels: Labels) -> tuple[list[Path], list[str]]:
    """The data files the labels cover, and the relative paths of those skipped."""
    files, skipped = [], []
    for path in table_files(data_root):
        relative = path.relative_to(data_root).as_posix()
        if isinstance(labels, WindowLabels):
            covered = relative in labels.windows_ms
        elif isinstance(labels, ColumnLabels):
            covered = labels.column in column_names(path)
        else:
            covered = True
        (files if covered else skipped).append(path if covered else relative)
    if skipped:
        log.warning("%d file(s) without labels skipped: %s", len(skipped), ", ".join(skipped))
    if not files:
        raise InputError(f"{data_root}: no data file has labels ({labels.describe()})")
    return files, skipped


def model_config(settings: Settings, options: DetectOptions) -> dict[str, Any]:
    """The detector's configuration as ``detect`` will train it."""
    if options.detector == "zscore":
        return {"kind": "zscore", "window": settings.window_size}
    return {"kind": "autoencoder", **dataclasses.asdict(train_config(settings, options))}


def _protocol(name: str) -> Protocol:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ConfigError(
            f"unknown benchmark {name!r}; choose one of {', '.join(PROTOCOLS)}"
        ) from None


def _data_root(dataset: Path, protocol: Protocol) -> Path:
    """``DIR/data`` when the dataset folder has one (the published layout), else ``DIR``."""
    if not dataset.is_dir():
        raise InputError(
            f"{dataset}: no such folder; give the {protocol.title} folder with --data "
            f"(default {protocol.default_data})"
        )
    inner = dataset / "data"
    return inner if inner.is_dir() else dataset


def _labels_spec(dataset: Path, labels: str | Path | None, protocol: Protocol) -> str:
    if labels is not None:
        return str(labels)
    if protocol.labels.startswith("column:"):
        return protocol.labels
    path = dataset / protocol.labels
    if not path.is_file():
        raise InputError(f"{path}: no labels file here; give one with --labels")
    return str(path)


def _cpus() -> int | None:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count()


def _load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages: other work on the machine slows a run."""
    if not hasattr(os, "getloadavg"):
        return None
    return [round(x, 2) for x in os.getloadavg()]


def _jsonable(value: Any) -> Any:
    return value if isinstance(value, int | float | str | bool) or value is None else str(value)
