"""Loading labels: NAB-style windows JSON and per-row label columns."""

import json
import logging

import numpy as np
import pandas as pd
import pytest

from streamae.evaluation.labels import (
    ColumnLabels,
    WindowLabels,
    binary_column,
    load_labels,
    parse_timestamps,
)
from streamae.exceptions import InputError
from streamae.tables import read_frame

STAMPS = pd.Series(
    ["2024-01-01 00:00:00", "2024-01-01 00:01:00", "2024-01-01 00:02:00", "2024-01-01 00:02:00",
     "2024-01-01 00:03:00", "2024-01-01 00:04:00"],
    name="timestamp",
)  # fmt: skip


def ms(text: str) -> int:
    return int(pd.Timestamp(text, tz="UTC").value // 1_000_000)


def write_json(tmp_path, content) -> str:
    path = tmp_path / "windows.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def test_timestamps_parse_alike_from_text_with_or_without_zone_and_from_epoch_ms():
    naive = parse_timestamps(pd.Series(["2014-02-19 10:50:00"], name="t"), "x")
    zulu = parse_timestamps(pd.Series(["2014-02-19T10:50:00.000Z"], name="t"), "x")
    epoch = parse_timestamps(pd.Series([1392807000000], name="t"), "x")
    assert naive.tolist() == zulu.tolist() == epoch.tolist() == [1392807000000]


def test_unreadable_timestamp_is_an_input_error():
    with pytest.raises(InputError, match="row 3"):
        parse_timestamps(pd.Series(["2014-02-19 10:50:00", ""], name="t"), "x")


def test_windows_json_maps_onto_rows_inclusively(tmp_path):
    labels = load_labels(
        write_json(
            tmp_path,
            {
                "cat/a.csv": [
                    ["2024-01-01 00:04:00.000000", "2024-01-01 00:04:00.000000"],
                    ["2024-01-01 00:00:30.000000", "2024-01-01 00:02:00.000000"],
                ]
            },
        )
    )
    assert isinstance(labels, WindowLabels)
    ts = parse_timestamps(STAMPS, "x")
    # The second window starts between rows 0 and 1 and ends on the repeated 00:02:00.
    assert labels.row_windows("cat/a.csv", ts, pd.DataFrame()) == [(1, 3), (5, 5)]


def test_window_covering_no_row_is_dropped_with_a_warning(tmp_path, caplog):
    labels = load_labels(
        write_json(tmp_path, {"a.csv": [["2030-01-01 00:00:00", "2030-01-02 00:00:00"]]})
    )
    with caplog.at_level(logging.WARNING):
        assert labels.row_windows("a.csv", parse_timestamps(STAMPS, "x"), pd.DataFrame()) == []
    assert "covers no data row" in caplog.text


def test_epoch_ms_bounds_are_accepted(tmp_path):
    labels = load_labels(
        write_json(tmp_path, {"a.csv": [[ms("2024-01-01 00:01:00"), ms("2024-01-01 00:01:00")]]})
    )
    assert labels.row_windows("a.csv", parse_timestamps(STAMPS, "x"), pd.DataFrame()) == [(1, 1)]


def test_overlapping_windows_are_refused(tmp_path):
    labels = load_labels(
        write_json(
            tmp_path,
            {
                "a.csv": [
                    ["2024-01-01 00:00:00", "2024-01-01 00:02:00"],
                    ["2024-01-01 00:02:00", "2024-01-01 00:03:00"],
                ]
            },
        )
    )
    with pytest.raises(InputError, match="overlap"):
        labels.row_windows("a.csv", parse_timestamps(STAMPS, "x"), pd.DataFrame())


def test_file_missing_from_the_json_is_an_input_error(tmp_path):
    labels = load_labels(write_json(tmp_path, {"cat/a.csv": []}))
    with pytest.raises(InputError, match=r"no entry for 'cat/b.csv'.*'cat/a.csv'"):
        labels.row_windows("cat/b.csv", np.array([0]), pd.DataFrame())


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected an object"),
        (json.dumps({"a.csv": [["2024-01-01"]]}), "list of \\[start, end\\] pairs"),
        (json.dumps({"a.csv": "2024-01-01"}), "list of \\[start, end\\] pairs"),
        (json.dumps({"a.csv": [["soon", "later"]]}), "'soon' is not a timestamp"),
        (json.dumps({"a.csv": [["2024-01-02", "2024-01-01"]]}), "ends before it starts"),
    ],
)
def test_malformed_windows_json_is_an_input_error(tmp_path, content, message):
    with pytest.raises(InputError, match=message):
        load_labels(write_json(tmp_path, content))


@pytest.mark.parametrize("bound", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_a_non_finite_numeric_bound_names_the_file_the_entry_and_the_bound(tmp_path, bound):
    path = write_json(tmp_path, f'{{"a.csv": [[1000, {bound}]]}}')  # json.loads takes them
    with pytest.raises(InputError) as raised:
        load_labels(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: 'a.csv': window bound ")
    assert repr(float(bound.replace("Infinity", "inf"))) in message
    assert "is not a timestamp" in message


@pytest.mark.parametrize("bound", [str(10**400), str(2**63), str(-(2**63) - 1), "9.3e18"])
def test_a_numeric_bound_beyond_int64_is_refused_like_a_non_finite_one(tmp_path, bound):
    path = write_json(tmp_path, f'{{"a.csv": [[{bound}, {bound}]]}}')
    with pytest.raises(InputError) as raised:  # not an OverflowError from math.isfinite
        load_labels(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: 'a.csv': window bound ")
    assert "is not a timestamp; give epoch ms or a date-time" in message


def test_missing_labels_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no such labels file"):
        load_labels(tmp_path / "nope.json")


def test_column_labels_turn_runs_of_ones_into_windows():
    labels = load_labels("column:anomaly")
    assert isinstance(labels, ColumnLabels)
    rows = pd.DataFrame({"x": range(7), "anomaly": [0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0]})
    assert labels.row_windows("a.csv", np.arange(7), rows) == [(1, 2), (5, 6)]


def test_column_labels_need_the_column_and_0_1_values():
    with pytest.raises(InputError, match="no label column 'anomaly'"):
        ColumnLabels("anomaly").row_windows("a.csv", np.arange(2), pd.DataFrame({"x": [1, 2]}))
    with pytest.raises(InputError, match="row 3 has 2"):
        ColumnLabels("y").row_windows("a.csv", np.arange(2), pd.DataFrame({"y": [0, 2]}))
    with pytest.raises(InputError, match="needs a column name"):
        load_labels("column:")


def test_binary_column_accepts_numbers_booleans_and_true_false_text():
    assert binary_column(pd.Series([0, 1.0, 1], name="f"), "x").tolist() == [0, 1, 1]
    assert binary_column(pd.Series([True, False], name="f"), "x").tolist() == [1, 0]
    assert binary_column(pd.Series(["True", "false", "1"], name="f"), "x").tolist() == [1, 0, 1]
    with pytest.raises(InputError, match="must be 0 or 1"):
        binary_column(pd.Series([0.0, np.nan], name="f"), "x")
    with pytest.raises(InputError, match="must be 0 or 1"):
        binary_column(pd.Series(["yes"], name="f"), "x")


def test_nab_windows_map_exactly_onto_nab_data_timestamps(nab_root):
    labels = load_labels(nab_root / "labels" / "combined_windows.json")
    assert isinstance(labels, WindowLabels)
    data_files = sorted((nab_root / "data").rglob("*.csv"))
    assert data_files
    for path in data_files:
        key = path.relative_to(nab_root / "data").as_posix()
        frame = read_frame(path)
        ts = np.sort(parse_timestamps(frame["timestamp"], key), kind="stable")
        windows = labels.row_windows(key, ts, frame)
        assert len(windows) == len(labels.windows_ms[key]), key
        for (first, last), (start, end) in zip(windows, labels.windows_ms[key], strict=True):
            # Every NAB window starts and ends on a timestamp of its file.
            assert (ts[first], ts[last]) == (start, end), key
        if key.startswith("artificialNoAnomaly/"):
            assert windows == []
        else:
            assert windows


def test_skab_anomaly_column_gives_windows(skab_root):
    path = skab_root / "data" / "valve1" / "0.csv"
    frame = read_frame(path)
    windows = load_labels("column:anomaly").row_windows(
        "valve1/0.csv", np.arange(len(frame)), frame
    )
    assert windows
    assert sum(last - first + 1 for first, last in windows) == int(frame["anomaly"].sum())
