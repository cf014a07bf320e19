"""Detection profiles: one TOML file of detection choices, beside the defaults (Orion style).

A profile says how to detect, so that the choices ``streamae benchmark`` measured
(``benchmarks/nab.toml``) are the ones ``train``, ``detect`` and ``monitor`` run:

- ``detector`` (required) — ``conv``, ``lstm`` or ``zscore`` (what ``train`` /
  ``detect`` build);
- ``[settings]`` — any ``Settings`` field but the secrets (window, threshold and
  alert settings);
- ``[training]`` — any ``TrainConfig`` field except ``window`` / ``device``, which
  come from the settings (``window_size``, ``device``), and ``arch`` (the detector).

Precedence everywhere: ``Settings`` / ``TrainConfig`` defaults < the profile <
``STREAMAE_*`` environment variables < command-line options.

>>> profile = load_profile("benchmarks/nab.toml")  # doctest: +SKIP
>>> layered_settings(profile).threshold_policy  # doctest: +SKIP
'calibrated'
"""

from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, get_type_hints

from streamae.config import Secret, Settings
from streamae.exceptions import ConfigError, InputError

if TYPE_CHECKING:
    from streamae.detectors.base import Detector

log = logging.getLogger(__name__)

#: A profile's ``detector`` → (what ``detect`` trains, the autoencoder architecture).
DETECTORS: Mapping[str, tuple[str, str | None]] = MappingProxyType(
    {"lstm": ("autoencoder", "lstm"), "conv": ("autoencoder", "conv"), "zscore": ("zscore", None)}
)


@dataclass(frozen=True)
class Profile:
    """A loaded profile; ``Profile()`` is the empty one (every default)."""

    file: str | None = None
    detector: str | None = None
    settings: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    training: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

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
    for name in ("settings", "training"):
        if not isinstance(document.get(name, {}), dict):
            raise InputError(f"{path}: '{name}' must be a table")
    settings, training = document.get("settings", {}), document.get("training", {})
    _check_settings(path, settings)
    fixed = sorted({"window", "device", "arch"} & set(training))
    if fixed:
        raise InputError(
            f"{path}: [training] {', '.join(fixed)} come(s) from [settings] window_size and "
            "device, and from detector; set them there"
        )
    detector = document.get("detector")
    if not isinstance(detector, str) or detector not in DETECTORS:
        what = "is missing" if detector is None else f"is {detector!r}"
        raise InputError(
            f"{path}: detector {what}; set detector = one of {', '.join(map(repr, DETECTORS))}"
        )
    return Profile(str(path), detector, MappingProxyType(settings), MappingProxyType(training))


def _check_settings(path: Path, settings: Mapping[str, Any]) -> None:
    """Known names, TOML values of each setting's type (``"32"`` is not a window), no secrets."""
    hints = get_type_hints(Settings)
    wrong = sorted(set(settings) - hints.keys())
    if wrong:
        raise InputError(f"{path}: [settings] has unknown setting(s) {', '.join(wrong)}")
    for name, value in settings.items():
        kind = hints[name]
        if kind is Secret:
            raise InputError(
                f"{path}: [settings] {name} is a secret; keep it out of profile files and set "
                f"{Settings.env_var(name)} instead"
            )
        allowed = (int, float) if kind is float else (kind,)
        if isinstance(value, bool) is not (kind is bool) or not isinstance(value, allowed):
            quoted = "; remove the quotes" if isinstance(value, str) else ""
            raise InputError(
                f"{path}: [settings] {name} must be {kind.__name__}, got {value!r}{quoted}"
            )


def layered_settings(
    profile: Profile,
    explicit: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Settings: ``explicit`` (None: not given) > ``STREAMAE_*`` > the profile > defaults.

    An error the profile takes part in names its file; one that comes without the
    profile too is left as it is (it names its variable or option).
    """
    env = os.environ if env is None else env
    given = {k: v for k, v in (explicit or {}).items() if v is not None}
    layered = {k: v for k, v in profile.settings.items() if Settings.env_var(k) not in env}
    try:
        return Settings.load(env, **(layered | given))
    except ConfigError as exc:
        if not layered:
            raise
        try:
            Settings.load(env, **given)
        except ConfigError:
            raise exc from None
        raise ConfigError(
            f"{exc} (settings: {profile.file} [settings] < STREAMAE_* < options)"
        ) from None


def choose_detector(
    profile: Profile, detector: str | None = None, arch: str | None = None
) -> tuple[str, str | None]:
    """What ``detect`` trains: (``autoencoder`` or ``zscore``, the architecture or None).

    The options given (``detector``: autoencoder|zscore; ``arch`` implies the
    autoencoder) win over the profile's ``detector``; without either, the
    autoencoder with its default architecture.
    """
    kind, profile_arch = DETECTORS[profile.detector] if profile.detector else ("autoencoder", None)
    if detector is None and arch is None:
        return kind, profile_arch
    if detector == "zscore":
        return "zscore", None
    return "autoencoder", arch or profile_arch


def model_mismatches(profile: Profile, detector: Detector) -> list[str]:
    """How a trained model differs from what the profile would have trained (empty: none)."""
    if profile.file is None:
        return []
    found = []
    kind = getattr(detector, "arch", "zscore")  # a profile's detector names an arch or zscore
    if profile.detector is not None and profile.detector != kind:
        found.append(f"detector {kind} (the profile's: {profile.detector})")
    window = profile.settings.get("window_size")
    if window is not None and window != detector.window_size:
        found.append(f"window {detector.window_size} (the profile's: {window})")
    tail = profile.training.get("score_tail")
    model_tail = getattr(detector, "score_tail", None)
    if tail is not None and model_tail is not None and (tail or detector.window_size) != model_tail:
        found.append(f"score tail {model_tail} (the profile's: {tail or detector.window_size})")
    shape = getattr(detector, "hyperparameters", {})  # an autoencoder's size
    for key in ("hidden", "latent", "layers"):
        wanted = profile.training.get(key)
        if wanted is not None and key in shape and shape[key] != wanted:
            found.append(f"{key} {shape[key]} (the profile's: {wanted})")
    return found


def warn_mismatches(profile: Profile, detector: Detector, where: str) -> None:
    """Log what the model at ``where`` fixes differently from the profile: the model wins."""
    found = model_mismatches(profile, detector)
    if found:
        log.warning(
            "model %s (%s) was not trained with profile %s: %s; the model's own choices are "
            "used (retrain with `streamae train --config %s` to run the profile's)",
            detector.version,
            where,
            profile.file,
            ", ".join(found),
            profile.file,
        )


@contextmanager
def training_named(profile: Profile) -> Iterator[None]:
    """A ``ConfigError`` raised inside also names the profile's [training], when it has
    values that may have caused it."""
    try:
        yield
    except ConfigError as exc:
        if not profile.training:
            raise
        raise ConfigError(f"{exc} (training: {profile.file} [training] < options)") from None
