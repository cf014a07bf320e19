import numpy as np
import pandas as pd
import pytest

from streamae.exceptions import InputError
from streamae.tables import read_series, table_files


def write(path, text):
    path.write_text(text)
    return path


def test_label_columns_are_labels_not_channels(tmp_path):
    path = write(
        tmp_path / "rig.csv",
        "datetime;a;b;anomaly;changepoint\n"
        "2024-01-01 00:00:00;1.0;2.0;0;0\n"
        "2024-01-01 00:00:01;1.5;2.5;1;1\n",
    )
    [series] = read_series(path)
    assert series.sensor_id == "rig"
    assert series.channels == ("a", "b")
    np.testing.assert_array_equal(series.values, [[1.0, 2.0], [1.5, 2.5]])
    np.testing.assert_array_equal(series.labels, [0, 1])
    assert series.ts_ms[1] - series.ts_ms[0] == 1000
    assert series.ts_ms[0] == 1704067200000


def test_with_both_label_columns_anomaly_is_the_label_and_label_a_channel(tmp_path):
    path = write(tmp_path / "rig.csv", "ts,a,label,anomaly\n1000,1.0,5,0\n2000,2.0,6,1\n")
    [series] = read_series(path)
    assert series.channels == ("a", "label")
    np.testing.assert_array_equal(series.labels, [0, 1])


def test_sensor_id_column_splits_rows_and_sorts_by_time(tmp_path):
    path = write(
        tmp_path / "many.csv",
        "timestamp,sensor_id,x,label\n3000,s2,30,0\n1000,s1,10,0\n2000,s2,20,1\n2000,s1,11,0\n",
    )
    by_id = {s.sensor_id: s for s in read_series(path)}
    assert sorted(by_id) == ["s1", "s2"]
    np.testing.assert_array_equal(by_id["s2"].ts_ms, [2000, 3000])
    np.testing.assert_array_equal(by_id["s2"].values[:, 0], [20, 30])
    np.testing.assert_array_equal(by_id["s2"].labels, [1, 0])


def test_columns_pick_channels_in_order_and_unknown_is_refused(tmp_path):
    path = write(tmp_path / "f.csv", "timestamp,a,b\n1,1,2\n2,3,4\n")
    [series] = read_series(path, columns=["b", "a"])
    assert series.channels == ("b", "a")
    with pytest.raises(InputError, match="unknown column.*'c'"):
        read_series(path, columns=["c"])


def test_parquet_is_read_like_csv(tmp_path):
    import pandas as pd

    frame = pd.DataFrame({"timestamp": [1, 2], "v": [0.5, 0.25], "anomaly": [0, 1]})
    frame.to_parquet(tmp_path / "f.parquet")
    [series] = read_series(tmp_path / "f.parquet")
    assert series.channels == ("v",)
    np.testing.assert_array_equal(series.labels, [0, 1])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("timestamp\n1\n", "needs a timestamp column"),
        ("timestamp,name\n1,abc\n", "no numeric value column"),
        ("timestamp,v\nnot-a-date,1\n", "must be timestamps"),
    ],
)
def test_malformed_files_give_clear_errors(tmp_path, text, message):
    path = write(tmp_path / "bad.csv", text)
    with pytest.raises(InputError, match=message):
        read_series(path)


def test_binary_file_is_refused(tmp_path):
    path = tmp_path / "bin.csv"
    path.write_bytes(b"\xff\xfe\x00\x01garbage")
    with pytest.raises(InputError, match="UTF-8"):
        read_series(path)


def test_table_files_lists_folders_and_refuses_missing(tmp_path):
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "b.csv", "t,v\n1,1\n")
    write(tmp_path / "a.csv", "t,v\n1,1\n")
    write(tmp_path / "notes.txt", "x")
    assert [p.name for p in table_files(tmp_path)] == ["a.csv", "b.csv"]
    with pytest.raises(InputError, match="no such file"):
        table_files(tmp_path / "missing")


def test_reads_shared_nab_and_skab_files(shared_data):
    [nab] = read_series(shared_data / "NAB/data/realKnownCause/nyc_taxi.csv")
    assert nab.channels == ("value",) and nab.labels is None and len(nab) > 10_000
    [skab] = read_series(shared_data / "SKAB/data/valve1/0.csv")
    assert len(skab.channels) == 8 and skab.labels is not None and skab.labels.any()


def test_a_typo_in_a_numeric_column_is_an_error_naming_the_cell(tmp_path):
    path = write(tmp_path / "rig.csv", "ts,a,b\n1000,1,2\n2000,2,abc\n3000,3,4\n")
    with pytest.raises(InputError, match=r"row 3, column 'b': 'abc' is not a number"):
        read_series(path)


def test_a_text_column_is_not_a_channel_even_with_a_number_in_it(tmp_path):
    path = write(
        tmp_path / "rig.csv", "ts,a,unit,status\n1000,1,kPa,0\n2000,2,kPa,OK\n3000,3,kPa,OK\n"
    )
    [series] = read_series(path)
    assert series.channels == ("a",)


def test_numbers_stored_as_text_in_parquet_are_a_channel(tmp_path):
    path = tmp_path / "rig.parquet"
    pd.DataFrame({"ts": [1767225600000, 1767225601000], "a": ["1.5", "2"]}).to_parquet(path)
    [series] = read_series(path)
    np.testing.assert_array_equal(series.values[:, 0], [1.5, 2.0])
    stamps = [1767225600000, 1767225601000, 1767225602000]
    pd.DataFrame({"ts": stamps, "a": ["1.5", "x", "2"]}).to_parquet(path)
    with pytest.raises(InputError, match=r"row 2, column 'a': 'x' is not a number"):
        read_series(path)  # Parquet has no header line: data row 2


# The empty label (0) makes pandas read the column as floats: 3 shows as 3.0.
@pytest.mark.parametrize(("cell", "shown"), [("yes", "'yes'"), ("3", "'3.0'")])
def test_a_label_other_than_0_or_1_is_an_error_naming_the_cell(tmp_path, cell, shown):
    path = write(tmp_path / "rig.csv", f"ts,a,label\n1000,1,0\n2000,2,{cell}\n3000,3,\n")
    with pytest.raises(InputError, match=f"row 3, label column 'label': {shown} is not 0 or 1"):
        read_series(path)


def test_an_empty_epoch_timestamp_is_an_error_naming_the_row(tmp_path):
    path = write(tmp_path / "rig.csv", "ts,a\n1000,1\n,2\n3000,3\n")
    with pytest.raises(InputError, match="row 3: empty timestamp in 'ts'"):
        read_series(path)


def test_a_bad_cell_among_epoch_timestamps_is_named_with_its_row(tmp_path):
    rows = [f"{1_767_225_600_000 + 1000 * i},{i}" for i in range(8)]
    rows[5] = "notatime,5"  # the 7th line of the file, after the header
    path = write(tmp_path / "rig.csv", "ts,a\n" + "\n".join(rows) + "\n")
    with pytest.raises(InputError, match="rig.csv: row 7: 'notatime' is not a timestamp in 'ts'"):
        read_series(path)


def test_a_bad_cell_among_epoch_timestamps_and_many_empty_ones_is_named(tmp_path):
    stamps = [f"{1_767_225_600_000 + 1000 * i}" for i in range(4)] + [""] * 5 + ["x"]
    rows = [f"{ts},{i}" for i, ts in enumerate(stamps)]  # 40% epoch ms, 50% empty, one 'x'
    path = write(tmp_path / "rig.csv", "ts,a\n" + "\n".join(rows) + "\n")
    with pytest.raises(InputError, match="rig.csv: row 6: empty in 'ts', whose other cells are"):
        read_series(path)


def test_a_first_column_that_cannot_be_epoch_ms_is_warned_about(tmp_path, caplog):
    seconds = write(tmp_path / "seconds.csv", "ts,a\n1767225600,1\n1767225601,2\n")
    millis = write(tmp_path / "millis.csv", "ts,a\n1767225600000,1\n1767225601000,2\n")
    read_series(millis)
    assert "epoch" not in caplog.text
    read_series(seconds)
    assert "the first column 'ts', read as epoch milliseconds, ends in 1970" in caplog.text


def test_column_names_are_the_columns_read_frame_gives(tmp_path):
    from streamae.tables import column_names, read_frame

    semicolons = write(tmp_path / "rig.csv", '\ufeffdatetime;"a b";anomaly\n2024-01-01;1;0\n')
    parquet = tmp_path / "rig.parquet"
    pd.DataFrame({"ts": [1], "x y": [2.0]}).to_parquet(parquet)
    for path in (semicolons, parquet):
        assert column_names(path) == list(read_frame(path).columns)
    assert column_names(semicolons) == ["datetime", "a b", "anomaly"]
