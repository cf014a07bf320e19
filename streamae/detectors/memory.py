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
A ``SensorMemory`` adds, per sensor, the codes of that sensor's own windows
judged normal while it streams.

>>> recall(torch.tensor([[0.9, 0.1]]), torch.tensor([[0.0, 0.0], [1.0, 0.0]])).tolist()
[[1.0, 0.0]]
"""

from __future__ import annotations

from collections import deque

import torch
from torch import nn


def recall(codes: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
    """The memory item nearest (Euclidean) to each of ``codes`` ``[B, L]``."""
    return nearest(codes, memory)[0]


def nearest(codes: torch.Tensor, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The memory item nearest to each of ``codes`` ``[B, L]``, and ``|item|² - 2 code·item``.

    The second is the squared distance less ``|code|²``: comparable between two
    memories for the same code, which is all a nearest-item search needs.
    """
    # |c - m|² = |c|² - 2 c·m + |m|², and |c|² is the same for every item of a row:
    # the nearest item minimises |m|² - 2 c·m, one matrix product (a sixth of the
    # time of pairwise distances). Each row is its own dot products, so a code's
    # neighbour does not depend on which other codes share its batch, as long as
    # there are several: a single row takes another kernel path (callers pad).
    values, index = torch.addmm(memory.square().sum(dim=1), codes, memory.T, alpha=-2).min(dim=1)
    return memory[index], values


class SensorMemory:
    """One sensor's own normal codes, learned while it streams; at most ``size``, the newest.

    The training windows' memory covers what the first rows showed. A sensor then
    moves on (a new level, a pattern not in the training rows but normal), and
    its windows would be rebuilt badly for good. The pipeline hands every scored
    window's code here with whether the window was judged normal (the
    threshold's own rule: at or under the bar, no alert open: what is flagged is
    never learned), and the decoder may rebuild from these codes too.

    A window's code joins once ``delay`` more windows of its sensor were scored,
    at the end of a block of ``block`` windows: the sensor's ``j``-th scored
    window may rebuild from normal window ``i`` when a block ended between
    ``i + delay`` and ``j``. With ``delay`` >= ``block`` >= W / stride no window
    rebuilds from one it shares readings with, and as codes join only at block
    ends, how readings were batched never changes a score.
    """

    def __init__(self, size: int, block: int, latent: int, delay: int = 0) -> None:
        if size < 1 or block < 1:
            raise ValueError(f"sensor memory size and block must be >= 1, got {size}, {block}")
        self.size = size
        self.block = block
        self.delay = max(delay, block)
        #: Windows of this sensor scored so far.
        self.scored = 0
        self._ring = torch.empty(0, latent)
        self._filled = 0
        self._at = 0
        self._waiting: deque[tuple[int, torch.Tensor]] = deque()  # (window index, code)

    def items(self) -> torch.Tensor | None:
        """The codes a window may rebuild from now (None while there are none)."""
        return self._ring[: self._filled] if self._filled else None

    def add(self, code: torch.Tensor, normal: bool) -> None:
        """Record the sensor's next scored window: its code, and whether it was judged normal."""
        if normal:
            # A copy: the code is a row of a whole batch's codes, which it would keep alive.
            self._waiting.append((self.scored, code.clone()))
        self.scored += 1
        if self.scored % self.block == 0:
            due = []
            while self._waiting and self._waiting[0][0] + self.delay <= self.scored:
                due.append(self._waiting.popleft()[1])
            if due:
                self._remember(torch.stack(due))

    def _remember(self, codes: torch.Tensor) -> None:
        # A ring: the newest ``size`` codes, in no particular order (a search does not care).
        if len(self._ring) == 0:
            self._ring = codes.new_empty(self.size, codes.shape[1])
        codes = codes[-self.size :]
        first = min(len(codes), self.size - self._at)
        self._ring[self._at : self._at + first] = codes[:first]
        self._ring[: len(codes) - first] = codes[first:]
        self._at = (self._at + len(codes)) % self.size
        self._filled = min(self.size, self._filled + len(codes))


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
