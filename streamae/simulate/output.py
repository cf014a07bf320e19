"""Saving a simulated run to files that ``streamae.tables.read_series`` reads back.

``run.csv`` or ``run.parquet`` holds every sensor, rows in time order, with columns
``timestamp, sensor_id, <channels...>, label``; a folder (a path ending in ``/`` or
an existing directory) gets one ``<sensor_id>.csv`` per sensor, without the
``sensor_id`` column. Timestamps are ISO-8601 UTC in CSV and typed in Parquet.
The injected events go beside the data as JSON (``run.events.json``, or
``events.json`` in a folder). Each file is written under a temporary name and
renamed when complete, so an interrupted run leaves no half-written data behind.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from streamae.exceptions import ConfigError, InputError
from streamae.messages import format_ts
from streamae.simulate.simulator import Simulator
from streamae.tables import SENSOR_COLUMN, SensorSeries, column_names

CHUNK_READINGS = 50_000
FILE_SUFFIXES = (".csv", ".parquet")


def is_folder(out: str | Path) -> bool:
    """Whether ``out`` names a folder (one file per sensor) rather than a single file."""
    text = str(out)
    return text.endswith(("/", os.sep)) or Path(text).is_dir()


def check_out(out: str | Path) -> None:
    """Refuse an output path that is neither a folder nor a ``.csv`` / ``.parquet`` file,
    or that holds anything but an earlier run (its data and its events file)."""
    folder = is_folder(out)
    if not folder and Path(out).suffix.lower() not in FILE_SUFFIXES:
        raise ConfigError(
            f"{out}: name a .csv or .parquet file, or a folder (ending in '/') for one "
            "file per sensor"
        )
    path = Path(out)
    events = path / "events.json" if folder else events_path(path)
    _check_kind(path, folder)
    _check_kind(events, folder=False)
    # Only an earlier run is replaced, never other data.
    if folder:
        data = [p for p in path.rglob("*") if p.suffix.lower() in FILE_SUFFIXES]
        for one in data:
            _check_kind(one, folder=False)
        foreign = bool(data) and not events.exists()
    else:
        foreign = path.exists() and not _earlier_run(path)
    if foreign:
        raise ConfigError(
            f"{out}: holds data that simulate did not write; left as it is (choose another "
            "--out, or remove it)"
        )
    # The run's events file would replace a user's file of that name too.
    if events.exists() and not _is_events_file(events):
        raise ConfigError(
            f"{events}: exists and is not an events file of simulate, which would replace it; "
            "left as it is (choose another --out, or remove it)"
        )


def events_path(data: Path) -> Path:
    """Where the events of a single-file run go: ``run.events.json`` beside ``run.csv``."""
    return data.with_name(data.stem + ".events.json")


def _check_kind(path: Path, folder: bool) -> None:
    """Refuse an existing ``path`` that is not a folder (or a regular file): a pipe or a
    device would be replaced by a file, and reading it to check it could block."""
    if path.exists() and not (path.is_dir() if folder else path.is_file()):
        kind = "a folder" if folder else "a regular file"
        raise ConfigError(f"{path}: exists and is not {kind}; left as it is (choose another --out)")


def _earlier_run(path: Path) -> bool:
    """Whether ``path`` is a single-file run of simulate: its columns, its events file."""
    if not _is_events_file(events_path(path)):
        return False
    try:
        columns = column_names(path)
    except InputError:
        return False
    return columns[:2] == ["timestamp", SENSOR_COLUMN] and columns[-1] == "label"


def _is_events_file(path: Path) -> bool:
    """Whether ``path`` is an events file of simulate: a list of events (or none)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    keys = {"sensor_id", "kind", "start_ts", "end_ts"}
    return isinstance(doc, list) and all(isinstance(e, dict) and keys <= e.keys() for e in doc)


def write_run(
    simulator: Simulator, out: str | Path, progress: Callable[[int], None] | None = None
) -> list[Path]:
    """Write the run to ``out`` (file or folder, see the module docstring); return the paths.

    ``progress`` is called with the number of readings written after each chunk.
    """
    check_out(out)
    report = progress or (lambda count: None)
    if is_folder(out):
        folder = Path(out)
        paths = [folder / f"{sensor_id}.csv" for sensor_id in simulator.sensor_ids]
        for sensor, path in enumerate(paths):
            blocks = (
                [simulator.block(sensor, start, min(simulator.length, start + CHUNK_READINGS))]
                for start in range(0, simulator.length, CHUNK_READINGS)
            )
            _write(path, blocks, report, with_sensor=False)
        events = folder / "events.json"
    else:
        path = Path(out)
        _write(path, simulator.chunks(CHUNK_READINGS), report, with_sensor=True)
        paths = [path]
        events = events_path(path)
    with _writing(events) as part:
        part.write_text(json.dumps(_events_json(simulator), indent=1) + "\n", encoding="utf-8")
    return [*paths, events]


def _events_json(simulator: Simulator) -> list[dict[str, object]]:
    return [
        {
            "sensor_id": e.sensor_id,
            "kind": e.kind,
            "start": format_ts(e.start_ts),
            "end": format_ts(e.end_ts),
            "start_ts": e.start_ts,
            "end_ts": e.end_ts,
            "first_row": e.start,
            "last_row": e.stop - 1,
            "channels": list(e.channels),
        }
        for e in simulator.events
    ]


def _frame(blocks: Sequence[SensorSeries], with_sensor: bool, iso: bool) -> pd.DataFrame:
    """Same-length slices of several sensors as rows in time order (the sensors take turns)."""
    ts = np.stack([b.ts_ms for b in blocks], axis=1).ravel()
    values = np.stack([b.values for b in blocks], axis=1).reshape(len(ts), -1)
    stamps = ts.astype("datetime64[ms]")
    columns: dict[str, object] = {
        "timestamp": np.datetime_as_string(stamps, unit="ms", timezone="UTC")
        if iso
        else pd.DatetimeIndex(stamps).tz_localize("UTC")
    }
    if with_sensor:
        columns[SENSOR_COLUMN] = np.tile([b.sensor_id for b in blocks], len(blocks[0]))
    columns.update(zip(blocks[0].channels, values.T, strict=True))
    columns["label"] = np.stack([b.labels for b in blocks], axis=1).ravel()
    return pd.DataFrame(columns)


def _write(
    path: Path,
    chunks: Iterator[Sequence[SensorSeries]],
    report: Callable[[int], None],
    with_sensor: bool,
) -> None:
    parquet = path.suffix.lower() == ".parquet"
    with _writing(path) as part:
        if parquet:
            writer = None
            try:
                for chunk in chunks:
                    table = pa.Table.from_pandas(
                        _frame(chunk, with_sensor, iso=False), preserve_index=False
                    )
                    writer = writer or pq.ParquetWriter(part, table.schema)
                    writer.write_table(table)
                    report(table.num_rows)
            finally:
                if writer is not None:
                    writer.close()
        else:
            with part.open("w", encoding="utf-8", newline="") as handle:
                for number, chunk in enumerate(chunks):
                    frame = _frame(chunk, with_sensor, iso=True)
                    frame.to_csv(handle, index=False, header=number == 0, lineterminator="\n")
                    report(len(frame))


@contextmanager
def _writing(path: Path) -> Iterator[Path]:
    """A temporary path next to ``path`` that becomes ``path`` only if the block succeeds."""
    part = path.with_name(path.name + ".part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield part
        os.replace(part, path)
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot write the simulated data ({exc.strerror or exc}); "
            "choose another output path"
        ) from exc
    finally:
        with suppress(OSError):  # nothing to clean up when the folder itself is unusable
            part.unlink(missing_ok=True)
