"""OpenMP's thread count comes from STREAMAE_TORCH_THREADS, before torch loads."""

from __future__ import annotations

import os
import subprocess
import sys

from streamae.cli import pin_openmp


def test_torch_threads_become_openmp_threads():
    env = {"STREAMAE_TORCH_THREADS": "1"}
    pin_openmp(env)
    assert env["OMP_NUM_THREADS"] == "1"


def test_an_explicit_openmp_setting_and_the_default_are_left_alone():
    chosen = {"STREAMAE_TORCH_THREADS": "1", "OMP_NUM_THREADS": "3"}
    pin_openmp(chosen)
    assert chosen["OMP_NUM_THREADS"] == "3"
    for unset in ({}, {"STREAMAE_TORCH_THREADS": "0"}, {"STREAMAE_TORCH_THREADS": "x"}):
        pin_openmp(unset)
        assert "OMP_NUM_THREADS" not in unset


def test_a_command_scores_with_the_threads_it_was_given():
    # A fresh interpreter, as a user runs it: torch reads OpenMP's count when it loads.
    code = (
        "from streamae.cli import pin_openmp; pin_openmp(); "
        "import torch; print(torch.get_num_threads())"
    )
    env = {"STREAMAE_TORCH_THREADS": "1", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "1"


def test_loading_a_model_keeps_the_threads_openmp_started_with():
    # The detector module sets torch to every core only when nobody chose a count.
    code = (
        "import torch; from streamae.detectors.autoencoder import resolve_device; "
        "resolve_device('cpu'); print(torch.get_num_threads())"
    )
    base = {"PATH": "/usr/bin:/bin"}
    for env, expected in (
        ({**base, "OMP_NUM_THREADS": "1"}, 1),
        (base, len(os.sched_getaffinity(0))),
    ):
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        assert int(out.stdout.strip()) == expected
