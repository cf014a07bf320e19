"""Normal sensor behaviour: shared latent signals mixed into correlated channels.

Each channel of a sensor is ``base + scale * (loadings @ terms(t) + noise)`` where the
terms are sinusoids grouped into four latent signals that all channels share:

- a slow, "daily" cycle (1,000-2,500 readings, with a harmonic for an uneven shape);
- a fast machine cycle (20-50 readings, with a harmonic);
- a quasi-random wobble (several incommensurate periods of 80-400 readings);
- a very slow wander (periods of 8,000-40,000 readings): the normal drift.

Periods count readings, not seconds, so the values do not depend on the rate.
The deterministic part is a function of a (fractional) reading index, so any slice
of a series is computed without what comes before it and anomalies can warp time.
Noise is drawn per fixed block of readings from the block's own seed, so it too
is the same however a series is sliced.

>>> model = SensorModel.random(np.random.default_rng(0), channels=2, noise_seed=(0, 0))
>>> model.normal(0, 5).shape
(5, 2)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# (name, typical level, typical spread) of the first channels; more are "channel_<i>".
CHANNEL_PROFILES = (
    ("temperature", 60.0, 4.0),
    ("pressure", 2.0, 0.15),
    ("vibration", 0.5, 0.08),
    ("current", 12.0, 1.5),
    ("flow", 30.0, 3.0),
    ("voltage", 230.0, 3.0),
    ("humidity", 45.0, 5.0),
    ("speed", 1500.0, 60.0),
)
NOISE_BLOCK = 4096

# The latent signals: (name, number of sinusoid terms).
_LATENTS = (("daily", 2), ("fast", 2), ("wobble", 4), ("wander", 2))
_FAST_TERMS = slice(2, 4)


def channel_names(count: int) -> tuple[str, ...]:
    """Names of the first ``count`` channels, e.g. ``("temperature", "pressure")``."""
    named = [name for name, _, _ in CHANNEL_PROFILES[:count]]
    return tuple(named + [f"channel_{i}" for i in range(len(named), count)])


@dataclass(frozen=True, eq=False)
class SensorModel:
    """One sensor's normal behaviour; see the module docstring for its shape."""

    channels: tuple[str, ...]
    base: np.ndarray  # [C] level
    scale: np.ndarray  # [C] channel units per latent unit
    periods: np.ndarray  # [M] readings per cycle of each sinusoid term
    phases: np.ndarray  # [M]
    weights: np.ndarray  # [M, C] amplitude of each term in each channel (latent units)
    noise_std: np.ndarray  # [C] latent units
    noise_seed: tuple[int, ...]
    fast_period: float  # readings per fast cycle

    @classmethod
    def random(cls, rng: np.random.Generator, channels: int, noise_seed: tuple[int, ...]):
        """A sensor with its own levels, periods, phases and channel mixing."""
        names = channel_names(channels)
        # Channels past the named ones borrow the named ones' levels, in turn.
        profiles = [CHANNEL_PROFILES[i % len(CHANNEL_PROFILES)] for i in range(channels)]
        base = np.array([p[1] for p in profiles]) * rng.uniform(0.9, 1.1, channels)
        scale = np.array([p[2] for p in profiles]) * rng.uniform(0.7, 1.3, channels)

        daily = rng.uniform(1000.0, 2500.0)
        fast = rng.uniform(20.0, 50.0)
        periods = np.concatenate(
            [
                [daily, daily / 2],
                [fast, fast / 2],
                rng.uniform(80.0, 400.0, 4),
                rng.uniform(8000.0, 40000.0, 2),
            ]
        )
        amplitudes = np.concatenate(
            [
                [1.0, rng.uniform(0.2, 0.4)],
                [rng.uniform(0.6, 0.9), rng.uniform(0.1, 0.25)],
                rng.uniform(0.1, 0.2, 4),
                rng.uniform(0.3, 0.5, 2),
            ]
        )
        phases = rng.uniform(0.0, 2 * np.pi, len(periods))
        # Every channel loads strongly on the daily and fast cycles (with its own sign),
        # which is what makes the channels of one sensor correlated.
        signs = rng.choice([-1.0, 1.0], size=(2, channels))
        loadings = np.stack(
            [
                signs[0] * rng.uniform(0.5, 1.0, channels),
                signs[1] * rng.uniform(0.5, 1.0, channels),
                rng.uniform(-0.6, 0.6, channels),
                rng.uniform(0.2, 0.8, channels) * rng.choice([-1.0, 1.0], channels),
            ]
        )  # [latent, C]
        term_latent = np.repeat(np.arange(len(_LATENTS)), [n for _, n in _LATENTS])
        weights = amplitudes[:, None] * loadings[term_latent]
        return cls(
            channels=names,
            base=base,
            scale=scale,
            periods=periods,
            phases=phases,
            weights=weights,
            noise_std=rng.uniform(0.08, 0.25, channels),
            noise_seed=noise_seed,
            fast_period=float(fast),
        )

    @property
    def sigma(self) -> np.ndarray:
        """Nominal standard deviation of each channel (channel units): anomaly magnitudes use it."""
        variance = (self.weights**2).sum(axis=0) / 2 + self.noise_std**2
        return self.scale * np.sqrt(variance)

    def structured(self, t: np.ndarray) -> np.ndarray:
        """The noise-free signal ``[len(t), C]`` at reading indices ``t`` (may be fractional)."""
        angles = (2 * np.pi) * np.asarray(t, dtype=np.float64)[:, None] / self.periods
        return self.base + self.scale * (np.sin(angles + self.phases) @ self.weights)

    def cycle(self, t: np.ndarray) -> np.ndarray:
        """The fast cycle's part ``[len(t), C]`` of the signal (channel units) at indices ``t``."""
        fast = _FAST_TERMS
        angles = (2 * np.pi) * np.asarray(t, dtype=np.float64)[:, None] / self.periods[fast]
        return self.scale * (np.sin(angles + self.phases[fast]) @ self.weights[fast])

    def noise(self, start: int, stop: int) -> np.ndarray:
        """The noise ``[stop - start, C]`` (channel units) of readings ``start..stop-1``."""
        first, last = start // NOISE_BLOCK, (stop - 1) // NOISE_BLOCK
        blocks = [
            np.random.default_rng([*self.noise_seed, block]).standard_normal(
                (NOISE_BLOCK, len(self.channels))
            )
            for block in range(first, last + 1)
        ]
        offset = start - first * NOISE_BLOCK
        return np.concatenate(blocks)[offset : offset + stop - start] * (
            self.scale * self.noise_std
        )

    def normal(self, start: int, stop: int) -> np.ndarray:
        """The normal readings ``[stop - start, C]`` with indices ``start..stop-1``."""
        return self.structured(np.arange(start, stop)) + self.noise(start, stop)
