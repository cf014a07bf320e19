"""A memory of normal latent codes: an autoencoder that can only rebuild what it has seen.

An autoencoder generalises. Trained on two days of a daily cycle that sits at 20
or at 80, it also rebuilds a day stuck at 40 almost perfectly — and so misses it.
With a memory (MemAE, Gong et al. 2019, here with hard nearest-item addressing)
the decoder gets the *training code nearest to* the window's own code: a window
like the training windows is rebuilt nearly as well as before, a window unlike
all of them is rebuilt as the closest normal window, and its reconstruction
error measures how far from normal it is.

The memory is filled after training (``set_memory``) with the codes of the
training windows; it is a buffer of the module, so it is saved with the weights.

>>> recall(torch.tensor([[0.9, 0.1]]), torch.tensor([[0.0, 0.0], [1.0, 0.0]])).tolist()
[[1.0, 0.0]]
"""

from __future__ import annotations

import torch
from torch import nn


def recall(codes: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
    """The memory item nearest (Euclidean) to each of ``codes`` ``[B, L]``."""
    # |c - m|² = |c|² - 2 c·m + |m|², and |c|² is the same for every item of a row:
    # the nearest item minimises |m|² - 2 c·m, one matrix product (a sixth of the
    # time of pairwise distances). Each row is its own dot products, so a code's
    # neighbour does not depend on which other codes share its batch.
    return memory[torch.addmm(memory.square().sum(dim=1), codes, memory.T, alpha=-2).argmin(dim=1)]


class MemoryAutoencoder(nn.Module):
    """Base of the autoencoder modules: ``encode``/``decode`` plus an optional memory.

    Subclasses set ``hparams`` and call ``_init_tail`` and ``_init_memory`` in their constructor, and
    define ``encode`` (``[B, W, C]`` → ``[B, latent]``) and ``decode`` (the reverse).
    ``hparams["memory"]`` (the number of items) is present only when there is a
    memory, and ``hparams["tail"]`` only when the score covers part of the window,
    so older modules keep their original hyperparameters and weights.
    """

    hparams: dict[str, int]
    memory: torch.Tensor | None

    def _init_tail(self, tail: int, window: int) -> None:
        """Record that scores average the last ``tail`` readings of a window (0: all of them).

        The score is the detector's business (``AutoencoderDetector.score``); the
        module only carries the number, so it is saved with the model.
        """
        if not 0 <= tail <= window:
            raise ValueError(f"score tail must be in 0..{window} (0: the whole window), got {tail}")
        if tail:
            self.hparams["tail"] = tail

    def _init_memory(self, size: int, latent: int) -> None:
        if size < 0:
            raise ValueError(f"memory size must be >= 0, got {size}")
        self.register_buffer("memory", torch.zeros(size, latent) if size else None)
        if size:
            self.hparams["memory"] = size

    def set_memory(self, codes: torch.Tensor) -> None:
        """Remember ``codes`` ``[N, latent]`` (N >= 1) as the normal codes."""
        if codes.ndim != 2 or len(codes) == 0:
            raise ValueError(f"memory codes must be [N >= 1, latent], got {list(codes.shape)}")
        self.memory = codes.detach().clone()
        self.hparams["memory"] = len(codes)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        latent = self.encode(x)
        if self.memory is not None:
            latent = recall(latent, self.memory)
        return self.decode(latent)
