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

import base64
import secrets
from typing import Any

import numpy as np
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


#: Codes per chunk of a checkpointed ``SensorMemory``: at latent 16, 4 kB of float32 codes,
#: about the size of the rest of a sensor's state record (a chunk is rewritten as it fills).
CHUNK = 64


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

    The n-th normal code sits in slot ``n % size`` of a ring once it joined, so the
    memory is a function of its codes in order. A checkpoint (``state``,
    ``changes``) stores them in chunks of ``CHUNK`` by that number: a chunk is
    written again only while codes are added to it, and dropped once the ring
    no longer holds any of its codes; ``restore`` rebuilds the same ring.
    """

    def __init__(
        self, size: int, block: int, latent: int, delay: int = 0, device: torch.device | None = None
    ) -> None:
        if size < 1 or block < 1:
            raise ValueError(f"sensor memory size and block must be >= 1, got {size}, {block}")
        self.size = size
        self.block = block
        self.latent = latent
        self.delay = max(delay, block)
        self.device = device or torch.device("cpu")
        #: Windows of this sensor scored so far.
        self.scored = 0
        #: Normal codes recorded so far, and how many of them joined the ring.
        self.added = 0
        self.joined = 0
        #: Names this memory's codes in a checkpoint: a chunk of another memory is never used.
        self.generation = secrets.token_hex(8)
        self._ring = torch.empty(0, latent, device=self.device)
        self._ring_windows = np.zeros(size, dtype=np.int64)  # each slot's window index
        self._waiting = _Queue(latent, self.device)  # normal codes not joined yet
        self._saved = 0  # codes a checkpoint holds (``changes``)
        self._dropped = 0  # chunks before this one were dropped from the checkpoint

    def items(self) -> torch.Tensor | None:
        """The codes a window may rebuild from now (None while there are none)."""
        return self._ring[: min(self.joined, self.size)] if self.joined else None

    def add(self, code: torch.Tensor, normal: bool) -> None:
        """Record the sensor's next scored window: its code, and whether it was judged normal."""
        if normal:
            self._waiting.append(self.scored, code)
            self.added += 1
        self.scored += 1
        if self.scored % self.block == 0:
            windows, codes = self._waiting.pop_until(self.scored - self.delay)
            if len(windows):
                self._remember(windows, codes)

    def _remember(self, windows: np.ndarray, codes: torch.Tensor) -> None:
        # Code n goes to slot n % size: of more than ``size`` at once, the newest ``size``.
        if len(self._ring) == 0:
            self._ring = codes.new_empty(self.size, codes.shape[1])
        count = len(codes)
        keep = min(count, self.size)
        self._put(self.joined + count - keep, codes[-keep:], windows[-keep:])
        self.joined += count

    def _put(self, first: int, codes: torch.Tensor, windows: np.ndarray) -> None:
        """Place codes numbered ``first`` on (at most ``size``) in their slots."""
        for slot, stop, offset in self._spans(first, first + len(codes)):
            self._ring[slot:stop] = codes[offset : offset + stop - slot]
            self._ring_windows[slot:stop] = windows[offset : offset + stop - slot]

    def _spans(self, first: int, stop: int) -> list[tuple[int, int, int]]:
        """``(slot, slot_stop, offset)``: the runs of slots of codes numbered ``first`` to
        ``stop - 1`` (at most ``size`` of them, so at most two runs), offsets from ``first``."""
        spans, n = [], first
        while n < stop:
            slot = n % self.size
            length = min(stop - n, self.size - slot)
            spans.append((slot, slot + length, n - first))
            n += length
        return spans

    # -- checkpoints -------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """JSON-able counters; the codes go in the chunks of ``changes``."""
        return {
            "generation": self.generation,
            "size": self.size,
            "block": self.block,
            "delay": self.delay,
            "scored": self.scored,
            "added": self.added,
            "joined": self.joined,
        }

    def changes(self) -> tuple[dict[int, dict[str, Any]], list[int]]:
        """Since the last call: the chunks to write (number → JSON-able chunk, with every
        code the memory still holds in it) and the numbers of chunks no longer needed."""
        low = self._low()
        chunks = {}
        if self.added > self._saved:  # codes were added: to the chunk of _saved on
            for k in range(max(self._saved, low) // CHUNK, -(-self.added // CHUNK)):
                chunks[k] = self._chunk(k, max(k * CHUNK, low))
        dropped = list(range(self._dropped, low // CHUNK))
        self._saved, self._dropped = self.added, max(self._dropped, low // CHUNK)
        return chunks, dropped

    def moved(self) -> range:
        """The checkpoint moves (the sensor's readings came from another partition): the
        next ``changes`` writes every chunk the memory holds. Returns the chunks stored
        where it was, to delete there."""
        stored = self.stored()
        self._saved, self._dropped = 0, self._low() // CHUNK
        return stored

    def stored(self) -> range:
        """The chunk numbers a checkpoint may hold (to delete them with the sensor)."""
        return range(self._dropped, -(-self._saved // CHUNK))

    def restore(self, state: dict[str, Any], chunks: dict[int, dict[str, Any]]) -> None:
        """Load a ``state`` and its ``chunks``; ``ValueError`` if they do not make the memory
        this one would have been (other settings, a chunk missing, short or of another memory)."""
        if not isinstance(state, dict):
            raise ValueError(f"not a memory's state: {type(state).__name__}")
        settings = {"size": self.size, "block": self.block, "delay": self.delay}
        if {key: state.get(key) for key in settings} != settings:
            raise ValueError(f"saved with other memory settings than {settings}")
        scored, added, joined = (int(state[key]) for key in ("scored", "added", "joined"))
        if not 0 <= joined <= added <= scored:
            raise ValueError(f"counts out of order: {joined} joined, {added} added, {scored}")
        generation, low = str(state["generation"]), max(0, joined - self.size)
        windows, codes = _read_chunks(chunks, generation, low, added, self.latent)
        held = torch.from_numpy(codes).to(self.device)
        self.generation, self.scored, self.added, self.joined = generation, scored, added, joined
        self._ring = torch.empty(self.size if joined else 0, self.latent, device=self.device)
        self._put(low, held[: joined - low], windows[: joined - low])
        self._waiting = _Queue(self.latent, self.device)
        self._waiting.extend(windows[joined - low :], held[joined - low :])
        self._saved, self._dropped = added, low // CHUNK

    def _low(self) -> int:
        """The number of the oldest code the memory still holds."""
        return max(0, self.joined - self.size)

    def _chunk(self, k: int, first: int) -> dict[str, Any]:
        stop = min((k + 1) * CHUNK, self.added)
        joined = min(stop, self.joined)
        spans = self._spans(first, joined)
        waiting_windows, waiting_codes = self._waiting.span(
            max(first, joined) - joined, stop - joined
        )
        codes = [self._ring[a:b] for a, b, _ in spans] + [waiting_codes]
        windows = [self._ring_windows[a:b] for a, b, _ in spans] + [waiting_windows]
        raw = torch.cat(codes).cpu().numpy().astype(np.float32)
        return {
            "generation": self.generation,
            "first": first,
            "windows": np.concatenate(windows).tolist(),
            "codes": base64.b64encode(raw.tobytes()).decode("ascii"),
        }


class _Queue:
    """Codes and their window numbers, oldest first, in two growing arrays (a tensor per
    code would cost ~0.8 kB each; a sensor may hold thousands waiting)."""

    def __init__(self, latent: int, device: torch.device) -> None:
        self._codes = torch.empty(0, latent, device=device)
        self._windows = np.zeros(0, np.int64)
        self._head = self._count = 0

    def __len__(self) -> int:
        return self._count

    def append(self, window: int, code: torch.Tensor) -> None:
        if self._head + self._count == len(self._windows):
            self.extend(np.array([window], np.int64), code[None])
            return
        self._codes[self._head + self._count] = code  # a copy into the queue's storage
        self._windows[self._head + self._count] = window
        self._count += 1

    def extend(self, windows: np.ndarray, codes: torch.Tensor) -> None:
        """Add ``codes`` (copied) with their window numbers, newest last."""
        count = self._count + len(windows)
        if self._head + count > len(self._windows):
            # Move what is held to the front, into larger arrays unless a quarter of its
            # size stays free behind it: a move copies every code held, so it then comes
            # at most once per count / 4 codes added, whatever the block and delay.
            capacity = len(self._windows)
            if capacity < 64 or capacity < count + count // 4:
                capacity = max(64, count + count // 2)
            held = slice(self._head, self._head + self._count)
            new_codes = self._codes.new_empty(capacity, self._codes.shape[1])
            new_codes[: self._count] = self._codes[held]
            new_windows = np.zeros(capacity, np.int64)
            new_windows[: self._count] = self._windows[held]
            self._codes, self._windows, self._head = new_codes, new_windows, 0
        tail = slice(self._head + self._count, self._head + count)
        self._codes[tail] = codes
        self._windows[tail] = windows
        self._count = count

    def pop_until(self, window: int) -> tuple[np.ndarray, torch.Tensor]:
        """Take out the codes of windows up to ``window``, oldest first: views, which stay
        as they are (the queue writes only past what it holds, or into new arrays)."""
        held = self._windows[self._head : self._head + self._count]
        taken = int(np.searchsorted(held, window, side="right"))
        windows, codes = self.span(0, taken)
        self._head += taken
        self._count -= taken
        return windows, codes

    def span(self, start: int, stop: int) -> tuple[np.ndarray, torch.Tensor]:
        """Views of the window numbers and codes ``start`` to ``stop - 1``, oldest = 0."""
        held = slice(self._head + start, self._head + max(start, stop))
        return self._windows[held], self._codes[held]


def _read_chunks(
    chunks: dict[int, dict[str, Any]], generation: str, low: int, added: int, latent: int
) -> tuple[np.ndarray, np.ndarray]:
    """The window indices and codes numbered ``low`` to ``added - 1`` from a memory's ``chunks``."""
    windows, codes = [np.zeros(0, np.int64)], [np.zeros((0, latent), np.float32)]
    for k in range(low // CHUNK, -(-added // CHUNK)):
        chunk = chunks.get(k)
        if chunk is None or chunk.get("generation") != generation:
            raise ValueError(f"chunk {k} of its codes is missing")
        first = int(chunk["first"])
        start, stop = max(k * CHUNK, low), min((k + 1) * CHUNK, added)
        block = np.frombuffer(base64.b64decode(chunk["codes"]), np.float32).reshape(-1, latent)
        if first > start or first + len(block) < stop or len(chunk["windows"]) != len(block):
            raise ValueError(f"chunk {k} of its codes is short")
        try:
            numbers = np.asarray(chunk["windows"], np.int64)
        except OverflowError:
            raise ValueError(f"chunk {k} has a window number out of range") from None
        windows.append(numbers[start - first : stop - first])
        codes.append(block[start - first : stop - first])
    return np.concatenate(windows), np.concatenate(codes)


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
