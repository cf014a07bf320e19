"""1-D convolutional autoencoder: strided convolutions down, transposed convolutions up.

Each of ``layers`` stages halves the window length (rounding up); the decoder's
transposed convolutions restore the exact lengths, so any window size works.
"""

from __future__ import annotations

import torch
from torch import nn

from streamae.detectors.memory import MemoryAutoencoder

KERNEL = 5
PADDING = KERNEL // 2


class ConvAutoencoder(MemoryAutoencoder):
    """``[B, W, C]`` → Conv1d stages (stride 2) → latent ``[B, latent]`` → ConvTranspose1d → ``[B, W, C]``.

    With ``memory`` > 0 it rebuilds from the nearest remembered normal code
    (``streamae.detectors.memory``).

    >>> ConvAutoencoder(channels=2, window=9)(torch.zeros(3, 9, 2)).shape
    torch.Size([3, 9, 2])
    """

    #: Conv filters are cheap: 64.
    DEFAULT_HIDDEN = 64

    def __init__(
        self,
        channels: int,
        window: int,
        hidden: int = DEFAULT_HIDDEN,
        latent: int = 16,
        layers: int = 1,
        memory: int = 0,
        tail: int = 0,
    ) -> None:
        super().__init__()
        self.hparams = {
            "channels": channels,
            "window": window,
            "hidden": hidden,
            "latent": latent,
            "layers": layers,
        }
        self._init_tail(tail, window)
        self._init_memory(memory, latent)
        lengths = [window]
        for _ in range(layers):
            lengths.append((lengths[-1] + 1) // 2)
        self.hidden = hidden
        self.inner_length = lengths[-1]

        down: list[nn.Module] = []
        for stage in range(layers):
            in_channels = channels if stage == 0 else hidden
            down += [nn.Conv1d(in_channels, hidden, KERNEL, stride=2, padding=PADDING), nn.ReLU()]
        self.encoder = nn.Sequential(*down)
        self.to_latent = nn.Linear(hidden * self.inner_length, latent)
        self.from_latent = nn.Linear(latent, hidden * self.inner_length)

        up: list[nn.Module] = []
        for stage in reversed(range(layers)):
            # output_padding picks the even or odd length the matching encoder stage had.
            extra = lengths[stage] - (2 * lengths[stage + 1] - 1)
            up += [
                nn.ConvTranspose1d(
                    hidden, hidden, KERNEL, stride=2, padding=PADDING, output_padding=extra
                ),
                nn.ReLU(),
            ]
        self.decoder = nn.Sequential(*up)
        self.to_output = nn.Conv1d(hidden, channels, kernel_size=1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(x.transpose(1, 2))
        return self.to_latent(features.flatten(1))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        features = self.from_latent(z).view(-1, self.hidden, self.inner_length)
        return self.to_output(self.decoder(features)).transpose(1, 2)
