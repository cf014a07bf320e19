"""Option types and checks shared by several commands (``streamae.cli.options``)."""

import pytest

from streamae.cli import main


def usage_error(capsys, *args) -> str:
    """Run a command that argparse must refuse; its stderr."""
    with pytest.raises(SystemExit) as exit_info:
        main([str(arg) for arg in args])
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def write_csv(path):
    rows = ["timestamp,temp,pres"] + [
        f"{1_767_225_600_000 + 1000 * i},{i % 7},{i % 5}" for i in range(300)
    ]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("option", ["--rate", "--duration"])
def test_an_infinite_rate_or_duration_is_a_usage_error(tmp_path, capsys, option):
    err = usage_error(capsys, "simulate", option, "inf", "--out", tmp_path / "run.csv")
    assert f"argument {option}: must be > 0 and finite, got inf" in err
    assert "Traceback" not in err and not (tmp_path / "run.csv").exists()


@pytest.mark.parametrize(
    "command", [["simulate", "--out", "run.csv"], ["train", "--input", "x.csv", "--out", "m"]]
)
def test_a_seed_beyond_32_bits_is_a_usage_error(capsys, command):
    err = usage_error(capsys, *command, "--seed", "99999999999999999999999")
    assert "argument --seed: must be 0..4294967295" in err and "Traceback" not in err


def test_the_largest_seed_is_accepted(tmp_path, capsys):
    out = tmp_path / "run.csv"
    assert main(["simulate", "--duration", "1", "--seed", str(2**32 - 1), "--out", str(out)]) == 0
    assert out.is_file()


@pytest.mark.parametrize(
    "command",
    [
        ["train", "--input", "data.csv", "--out", "model", "--columns", "temp", "pres", "temp"],
        ["detect", "data.csv", "--out", "out.csv", "--train-rows", "100", "--columns", "temp",
         "temp"],
        ["replay", "data.csv", "--columns", "temp,pres", "--columns", "temp",
         "--bootstrap-servers", "127.0.0.1:1"],  # never a real broker
    ],
)  # fmt: skip
def test_a_column_named_twice_is_refused_before_any_work(tmp_path, monkeypatch, capsys, command):
    monkeypatch.chdir(tmp_path)
    write_csv(tmp_path / "data.csv")
    assert main(command) == 2
    err = capsys.readouterr().err
    assert "--columns names 'temp' more than once; give each column once" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv"]
