"""The detector contract: a trained model that scores windows.

A detector turns a batch of raw (unscaled) windows ``[B, W, C]`` into a score
per window (higher = more anomalous) and the per-channel part of that score.
Scoring never changes state. Detectors are made by training (``streamae.training``)
or by loading an artifact (``streamae.artifact``), never learn while scoring. A
detector may offer a per-sensor memory (``sensor_memory``) that the *pipeline*
fills with a sensor's normal windows; it is sensor state, like a threshold.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from streamae.exceptions import InputError, first_few


class NormalMemory(Protocol):
    """One sensor's memory of its normal windows (``streamae.detectors.memory.SensorMemory``)."""

    #: Windows of the sensor scored so far; codes join at the end of every ``block`` of them.
    scored: int
    block: int

    def items(self) -> Any:
        """What a window may rebuild from now (None: nothing yet)."""

    def add(self, code: Any, normal: bool) -> None:
        """Record the sensor's next scored window: its code, and whether it was judged normal."""

    def state(self) -> dict[str, Any]:
        """JSON-able counters of a checkpoint; the codes are in ``changes``' chunks."""

    def changes(self) -> tuple[dict[int, dict[str, Any]], list[int]]:
        """Chunks of codes to write since the last call, and chunk numbers to delete."""

    def moved(self) -> range:
        """Write every chunk at the next ``changes``; returns the chunk numbers stored before."""

    def stored(self) -> range:
        """The chunk numbers a checkpoint may hold."""

    def restore(self, state: dict[str, Any], chunks: dict[int, dict[str, Any]]) -> None:
        """Load a checkpoint; ``ValueError`` if it cannot be the same memory."""


class Detector(ABC):
    """Scores windows of ``window_size`` readings over ``channels``."""

    #: Readings per window.
    window_size: int
    #: Channel names, in the order of the windows' last axis.
    channels: tuple[str, ...]
    #: Identifies the trained model (the artifact's content hash).
    version: str
    #: Window scores on held-back normal data: the threshold's warm start.
    normal_scores: np.ndarray

    @abstractmethod
    def score(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Score ``windows`` (float ``[B, W, C]``, raw units).

        Returns ``(scores [B], channel_errors [B, C])`` as float64, where
        ``scores == channel_errors.mean(axis=1)``.
        """

    @property
    def can_remember(self) -> bool:
        """Whether it can rebuild windows from a sensor's memory (``sensor_memory``)."""
        return False

    def sensor_memory(self, size: int, block: int, delay: int = 0) -> NormalMemory:
        """A memory for one sensor's normal windows: ``size`` codes, each usable by windows
        at least ``max(delay, block)`` later, from the next end of a ``block`` of windows.

        Only detectors that ``can_remember`` implement it.
        """
        raise NotImplementedError(f"{type(self).__name__} has no sensor memory")

    def score_remembering(
        self, windows: np.ndarray, memories: Sequence[Any | None]
    ) -> tuple[np.ndarray, np.ndarray, Any]:
        """``score``, each window also rebuilt from ``memories[i]`` (its sensor's memory's
        ``items()``, or None); returns the windows' codes too, for the memories to learn.

        Only detectors that ``can_remember`` implement it.
        """
        raise NotImplementedError(f"{type(self).__name__} has no sensor memory")


def finite_training_values(
    values: np.ndarray, channels: Sequence[str] = (), sources: Sequence[Path] = ()
) -> np.ndarray:
    """``values`` ``[N, C]`` with every non-finite entry as NaN (to be ignored when fitting).

    Raises ``InputError`` if a channel has no finite value at all (see ``check_channels_filled``).
    """
    check_channels_filled(values, channels, sources)
    return np.where(np.isfinite(values), values, np.nan)


def check_channels_filled(
    values: np.ndarray, channels: Sequence[str] = (), sources: Sequence[Path] = ()
) -> None:
    """Refuse training ``values`` ``[N, C]`` where a channel has no finite value, naming
    it (when ``channels`` are given) and the files it came from (``sources``)."""
    empty = np.flatnonzero(~np.isfinite(values).any(axis=0))
    if not len(empty):
        return
    names = ", ".join(repr(channels[i]) if channels else f"#{i + 1}" for i in empty)
    where = first_few(sorted({str(s) for s in sources}))  # a folder may hold thousands
    which = f"channel {names} has" if len(empty) == 1 else f"channels {names} have"
    raise InputError(
        f"{where + ': ' if where else ''}{which} no finite training value (each is empty "
        "or not a number); leave it out with --columns"
    )
