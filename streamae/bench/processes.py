"""Child processes of the benchmark: started by spawning, each with its own OpenMP threads."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.context import SpawnContext

OMP_THREADS = "OMP_NUM_THREADS"


def spawn_context() -> SpawnContext:
    """Fresh interpreters: a forked child would inherit the parent's torch threads."""
    return multiprocessing.get_context("spawn")


@contextmanager
def openmp_threads(threads: int) -> Iterator[None]:
    """Children started inside this block start their OpenMP runtime with ``threads``.

    A child reads ``OMP_NUM_THREADS`` once, as torch loads, and a later
    ``torch.set_num_threads`` cannot shrink the team it starts with (see
    ``streamae.cli.pin_openmp``): the benchmark's children get the count it
    reports, whatever this process was started with.
    """
    saved = os.environ.get(OMP_THREADS)
    if threads > 0:
        os.environ[OMP_THREADS] = str(threads)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(OMP_THREADS, None)
        else:
            os.environ[OMP_THREADS] = saved
