"""Options shared by several commands, and their translation into Settings."""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from streamae.config import MAX_SEED, Settings
from streamae.exceptions import ConfigError
from streamae.profile import Profile, layered_settings, load_profile


class HelpFormatter(argparse.HelpFormatter):
    """Wraps one-paragraph texts (descriptions) to the terminal; keeps laid-out ones (epilogs)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def _number(text: str, kind: type[int] | type[float]) -> Any:
    """``text`` as an int or a float, or argparse's usage error."""
    try:
        return kind(text)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None


def positive_int(text: str) -> int:
    value = _number(text, int)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def positive_float(text: str) -> float:
    value = _number(text, float)
    if not 0 < value < math.inf:  # inf overflows where the value becomes a count
        raise argparse.ArgumentTypeError(f"must be > 0 and finite, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = _number(text, float)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def random_seed(text: str) -> int:
    value = _number(text, int)
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be 0..{MAX_SEED}, got {value}")
    return value


def fraction(text: str) -> float:
    value = _number(text, float)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def open_fraction(text: str) -> float:
    """A number strictly between 0 and 1 (both ends would leave one side empty)."""
    value = fraction(text)
    if value in (0.0, 1.0):
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {text}")
    return value


def add_kafka_options(
    parser: argparse.ArgumentParser,
    help_text: str = "Kafka bootstrap servers (default: STREAMAE_BOOTSTRAP_SERVERS or 127.0.0.1:9092)",
) -> None:
    parser.add_argument("--bootstrap-servers", metavar="HOST:PORT", help=help_text)


def add_quiet_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bar; only warnings and errors logged"
    )


def add_profile_option(parser: argparse.ArgumentParser, uses: str) -> None:
    """``--config TOML``: a detection profile such as benchmarks/nab.toml; ``uses`` says
    which of its parts this command takes."""
    parser.add_argument(
        "--config",
        metavar="TOML",
        help=f"detection profile, e.g. benchmarks/nab.toml (the benchmark's choices); {uses}; "
        "STREAMAE_* variables and options win over it",
    )


def profile_from(args: argparse.Namespace) -> Profile:
    """The ``--config`` profile, or the empty one."""
    path = getattr(args, "config", None)
    return Profile() if path is None else load_profile(path)


def settings_from(
    args: argparse.Namespace, profile: Profile | None = None, **extra: Any
) -> Settings:
    """Settings: the command's options (those present and given) > ``STREAMAE_*`` >
    ``profile``'s [settings] (the ``--config`` one, read for commands that pass none)
    > defaults."""
    names = {"bootstrap_servers", "group_id", "model_path", "window_size", "stride", "device"}
    given = {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
    return layered_settings(profile or profile_from(args), given | extra)


def distinct_columns(columns: Sequence[str] | None) -> None:
    """Refuse a column named twice in --columns: a model with two channels of one name
    fits no data, and a reading holds one value per channel name."""
    twice = sorted(name for name, count in Counter(columns or ()).items() if count > 1)
    if twice:
        raise ConfigError(
            f"--columns names {', '.join(map(repr, twice))} more than once; give each column once"
        )


def report_path(path: Path | None, option: str) -> None:
    """Check where a JSON report goes before the work that makes it.

    A new file or an earlier report of ``evaluate`` or ``benchmark``; anything else
    there (data, labels, a model, a pipe or device) is never overwritten. The file
    and its folder are created and removed again, so a place that cannot be written
    fails now, not after the work.
    """
    if path is None:
        return
    with _unreachable(path, option):
        if path.is_dir():
            raise ConfigError(
                f"{option} {path}: is a folder; give a file, e.g. {path / 'report.json'}"
            )
        if path.exists() and not path.is_file():  # reading a pipe to check it would block
            raise ConfigError(
                f"{option} {path}: exists and is not a regular file (a pipe, socket or "
                "device?); left as it is (choose another file)"
            )
        if path.exists() and not _is_report(path):
            raise ConfigError(
                f"{option} {path}: exists and is not a report of evaluate or benchmark; left "
                "as it is (choose another file, or remove it)"
            )
        _probe(path, option, folder=False)


def writable_folder(path: Path, option: str) -> None:
    """Fail now, not after the work, if ``path`` cannot be a folder to write into.

    A missing folder is created and removed again; an existing one keeps its content.
    """
    with _unreachable(path, option):
        if path.exists() and not path.is_dir():
            raise ConfigError(f"{option} {path}: exists and is not a folder; give a folder")
        _probe(path, option, folder=True)


def writable_file(path: Path, option: str) -> None:
    """Fail now, not after the work, if the file ``path`` cannot be written; an existing
    file is left as it is."""
    with _unreachable(path, option):
        _probe(path, option, folder=False)


@contextmanager
def _unreachable(path: Path, option: str) -> Iterator[None]:
    """Any OSError while checking or probing ``path`` (e.g. a folder on the way without
    search permission, which makes even ``exists()`` fail) is the option's error."""
    try:
        yield
    except OSError as exc:
        raise ConfigError(
            f"{option} {path}: cannot write there ({exc.strerror or exc}); choose another place"
        ) from None


def _probe(path: Path, option: str, *, folder: bool) -> None:
    """Create ``path`` (a folder, or a file and its folder) as the work will; remove what
    this created. An existing file is opened for appending only, so it is not changed."""
    parent = path if folder else path.parent
    missing = _missing_folders(parent)
    base = missing[-1].parent if missing else parent
    if not base.is_dir():  # mkdir would say "File exists" or "Not a directory"
        raise ConfigError(f"{option} {path}: {base} is a file, not a folder; choose another place")
    # A link is the user's, even a dangling one (exists() is False): it stays. What the
    # work creates through it is its target, so that is the file removed again.
    made = None if folder or path.exists() else Path(os.path.realpath(path))
    try:
        parent.mkdir(parents=True, exist_ok=True)
        if folder:
            tempfile.TemporaryFile(dir=path).close()
        else:
            path.open("a", encoding="utf-8").close()
            if made is not None:  # only now: a failed open created nothing to remove
                with suppress(OSError):
                    made.unlink()
    finally:
        for created in missing:  # deepest first
            with suppress(OSError):
                created.rmdir()


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and its ancestors that do not exist yet, deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def write_report(path: Path, text: str, option: str) -> None:
    """Write a report checked by ``report_path``; a failure is the option's error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"{option} {path}: cannot write the report: {exc.strerror or exc}"
        ) from None


def _is_report(path: Path) -> bool:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    if not isinstance(doc, dict):
        return False
    return {"per_file", "total"} <= doc.keys() or {"benchmark", "evaluation"} <= doc.keys()
