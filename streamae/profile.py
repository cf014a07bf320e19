"""Detection profiles: one TOML file of detection choices, beside the defaults (Orion style).

A profile says how to detect, so that the choices ``streamae benchmark`` measured
(``benchmarks/nab.toml``) are the ones ``train``, ``detect`` and ``monitor`` run:

- ``detector`` — ``conv``, ``lstm`` or ``zscore`` (what ``train`` / ``detect`` build);
- ``[settings]`` — any ``Settings`` field (window, threshold and alert settings);
- ``[training]`` — any ``TrainConfig`` field except ``window`` / ``device``, which come
  from the settings (``window_size``, ``device``).

Precedence everywhere: ``Settings`` / ``TrainConfig`` defaults < the profile <
``STREAMAE_*`` environment variables < command-line options.

>>> profile = load_profile("benchmarks/nab.toml")  # doctest: +SKIP
>>> layered_settings(profile).threshold_policy  # doctest: +SKIP
'calibrated'
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from streamae.config import Settings
from streamae.exceptions import ConfigError, InputError

#: A profile's ``detector`` → (what ``detect`` trains, the autoencoder architecture).
DETECTORS: Mapping[str, tuple[str, str | None]] = MappingProxyType(
    {"lstm": ("autoencoder", "lstm"), "conv": ("autoencoder", "conv"), "zscore": ("zscore", None)}
)


@dataclass(frozen=True)
class Profile:
    """A loaded profile; ``Profile()`` is the empty one (every default)."""

    file: str | None = None
    detector: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    training: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The file's content and name, as a report records it (``{}`` when empty)."""
        if self.file is None:
            return {}
        document: dict[str, Any] = {"file": self.file}
        if self.detector is not None:
            document["detector"] = self.detector
        for name in ("settings", "training"):
            if getattr(self, name):
                document[name] = dict(getattr(self, name))
        return document


def load_profile(path: str | Path) -> Profile:
    """Read and check a profile file; every mistake names the file and the key."""
    path = Path(path)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such profile file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder; give a profile's .toml file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the profile file: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc})") from None
    unknown = set(document) - {"detector", "settings", "training"}
    if unknown:
        raise InputError(
            f"{path}: unknown key(s) {', '.join(sorted(unknown))}; "
            "expected detector and [settings] / [training] tables"
        )
    detector = document.get("detector")
    if detector is not None and detector not in DETECTORS:
        raise InputError(
            f"{path}: detector {detector!r} is not one of {', '.join(map(repr, DETECTORS))}"
        )
    for name in ("settings", "training"):
        if not isinstance(document.get(name, {}), dict):
            raise InputError(f"{path}: '{name}' must be a table")
    settings, training = document.get("settings", {}), document.get("training", {})
    known = {f.name for f in dataclasses.fields(Settings)}
    wrong = sorted(set(settings) - known)
    if wrong:
        raise InputError(f"{path}: [settings] has unknown setting(s) {', '.join(wrong)}")
    fixed = sorted({"window", "device"} & set(training))
    if fixed:
        raise InputError(
            f"{path}: [training] {', '.join(fixed)} come(s) from [settings] "
            "(window_size, device); set them there"
        )
    return Profile(str(path), detector, MappingProxyType(settings), MappingProxyType(training))


def layered_settings(
    profile: Profile,
    explicit: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Settings: ``explicit`` (None: not given) > ``STREAMAE_*`` > the profile > defaults.

    A bad value from the profile is named with the file it came from.
    """
    env = os.environ if env is None else env
    layered = {k: v for k, v in profile.settings.items() if Settings.env_var(k) not in env}
    layered |= {k: v for k, v in (explicit or {}).items() if v is not None}
    with named_in(profile, "settings"):
        return Settings.load(env, **layered)


#: How an error names where a value may have come from, per table of a profile.
_LAYERS = {
    "settings": "[settings] < STREAMAE_* < options",
    "training": "[training] < options",
}


@contextmanager
def named_in(profile: Profile, table: str) -> Iterator[None]:
    """A ``ConfigError`` raised inside also names the profile file, when its ``table``
    (``settings`` or ``training``) has values that may have caused it."""
    try:
        yield
    except ConfigError as exc:
        if not getattr(profile, table):
            raise
        raise ConfigError(f"{exc} ({table}: {profile.file} {_LAYERS[table]})") from None
