"""Point-wise and event-level metrics on tiny hand-built arrays."""

import numpy as np
import pytest

from streamae.evaluation.metrics import Counts, event_counts, overlaps, point_counts, runs


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ([], []),
        ([0, 0, 0], []),
        ([1, 1, 1], [(0, 2)]),
        ([1, 0, 0, 1], [(0, 0), (3, 3)]),
        ([0, 1, 1, 0, 1, 1, 1, 0], [(1, 2), (4, 6)]),
        ([True, False, True], [(0, 0), (2, 2)]),
    ],
)
def test_runs_are_maximal_inclusive_stretches_of_ones(flags, expected):
    assert runs(np.array(flags, dtype=np.int8)) == expected


def test_point_counts_by_hand():
    truth = np.array([0, 0, 1, 1, 1, 1, 0, 0, 1, 0])
    pred = np.array([1, 0, 0, 1, 1, 0, 0, 1, 1, 0])
    # TP at 3, 4, 8; FP at 0, 7; FN at 2, 5.
    counts = point_counts(truth, pred)
    assert counts == Counts(tp=3, fp=2, fn=2)
    assert counts.precision == 3 / 5
    assert counts.recall == 3 / 5
    assert counts.f1 == 6 / (6 + 2 + 2)


def test_f1_is_the_harmonic_mean_when_defined():
    counts = Counts(tp=2, fp=6, fn=1)
    precision, recall = 2 / 8, 2 / 3
    assert counts.f1 == pytest.approx(2 * precision * recall / (precision + recall))


def test_undefined_ratios_are_none_and_f1_without_hits_is_zero():
    assert Counts().precision is None
    assert Counts().recall is None
    assert Counts().f1 is None
    nothing_found = Counts(tp=0, fp=0, fn=4)
    assert nothing_found.precision is None
    assert nothing_found.recall == 0.0
    assert nothing_found.f1 == 0.0
    only_false_alarms = Counts(tp=0, fp=3, fn=0)
    assert only_false_alarms.precision == 0.0
    assert only_false_alarms.recall is None
    assert only_false_alarms.f1 == 0.0


def test_counts_add_up():
    assert Counts(1, 2, 3) + Counts(10, 20, 30) == Counts(11, 22, 33)


def test_point_counts_reject_mismatched_lengths():
    with pytest.raises(ValueError, match="shape"):
        point_counts(np.zeros(3), np.zeros(4))


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((1, 3), (3, 5), True),  # share row 3
        ((1, 3), (4, 5), False),  # adjacent rows do not overlap
        ((4, 4), (1, 9), True),
        ((1, 9), (4, 4), True),
        ((5, 6), (1, 4), False),
    ],
)
def test_overlap_means_sharing_a_row(a, b, expected):
    assert overlaps(a, b) is expected


def test_event_counts_orion_fixture():
    # Orion's tests/evaluation/test_contextual.py fixture, overlap-segment method:
    # expected (None, fp=1, fn=1, tp=5). (16, 17) is missed, (19, 20) overlaps nothing.
    windows = [(1, 2), (5, 6), (7, 10), (12, 13), (16, 17), (22, 23)]
    detected = [(2, 3), (4, 5), (8, 9), (11, 14), (19, 20), (22, 23)]
    assert event_counts(windows, detected) == Counts(tp=5, fp=1, fn=1)


def test_event_counts_orion_point_fixture():
    windows = [(2, 2), (5, 5), (8, 8), (12, 12), (15, 17), (18, 18)]
    detected = [(2, 2), (3, 5), (8, 10), (11, 13), (16, 16), (20, 20)]
    assert event_counts(windows, detected) == Counts(tp=5, fp=1, fn=1)


def test_event_counts_two_runs_in_one_window_count_once():
    windows = [(10, 20), (40, 50)]
    detected = [(12, 13), (15, 25), (30, 31), (60, 61)]
    counts = event_counts(windows, detected)
    # Window (10, 20) found (twice, counted once); (40, 50) missed; two runs hit nothing.
    assert counts == Counts(tp=1, fp=2, fn=1)
    assert counts.precision == 1 / 3
    assert counts.recall == 1 / 2
    assert counts.f1 == 2 / (2 + 2 + 1)


def test_one_run_spanning_two_windows_finds_both():
    assert event_counts([(2, 3), (6, 7)], [(3, 6)]) == Counts(tp=2, fp=0, fn=0)


def test_event_counts_without_windows_or_runs():
    assert event_counts([], [(1, 2)]) == Counts(tp=0, fp=1, fn=0)
    assert event_counts([(1, 2)], []) == Counts(tp=0, fp=0, fn=1)
