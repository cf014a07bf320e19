"""Option types and checks shared by several commands (``streamae.cli.options``)."""

import json
import os

import pytest

from streamae.cli import main
from streamae.cli.options import report_path, writable_file, writable_folder
from streamae.exceptions import ConfigError


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
def test_a_seed_beyond_64_bits_is_a_usage_error(capsys, command):
    err = usage_error(capsys, *command, "--seed", str(2**64))  # torch.manual_seed overflows
    assert f"argument --seed: must be 0..{2**64 - 1}, got {2**64}" in err
    assert "Traceback" not in err


def test_the_largest_seed_is_accepted(tmp_path, capsys):
    out = tmp_path / "run.csv"
    assert main(["simulate", "--duration", "1", "--seed", str(2**64 - 1), "--out", str(out)]) == 0
    assert out.is_file()
    model = tmp_path / "model"
    fast = ["--window", "16", "--hidden", "4", "--latent", "2", "--epochs", "1", "--device", "cpu"]
    train = ["train", "--input", str(write_csv(tmp_path / "data.csv")), "--out", str(model)]
    assert main([*train, *fast, "--quiet", "--seed", str(2**64 - 1)]) == 0  # torch takes it
    assert json.loads((model / "model.json").read_text())["training"]["config"]["seed"] == 2**64 - 1


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


@pytest.mark.parametrize("check", [report_path, writable_file])
def test_a_dangling_link_where_the_file_goes_is_left_as_it_is(tmp_path, check):
    link = tmp_path / "report.json"
    link.symlink_to(tmp_path / "target.json")
    check(link, "--out")
    assert link.is_symlink() and os.readlink(link) == str(tmp_path / "target.json")
    assert not (tmp_path / "target.json").exists()  # created by the probe and removed again


@pytest.mark.skipif(os.geteuid() == 0, reason="root may search any folder")
@pytest.mark.parametrize("check", [report_path, writable_file, writable_folder])
def test_a_place_under_a_folder_without_search_permission_is_the_options_error(tmp_path, check):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0)
    try:
        path = locked / "sub" / "report.json"
        with pytest.raises(ConfigError) as raised:
            check(path, "--out")
        assert str(raised.value) == (
            f"--out {path}: cannot write there (Permission denied); choose another place"
        )
    finally:
        locked.chmod(0o700)  # so pytest can remove it
