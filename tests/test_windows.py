import json

import numpy as np
import pytest

from streamae.exceptions import InputError
from streamae.windows import Pushed, SensorWindow


def feed(window: SensorWindow, stamps, out=None) -> list:
    """Push one-channel readings whose value equals their timestamp."""
    out = [] if out is None else out
    for ts in stamps:
        window.push(ts, np.array([float(ts)]), ts % 2, out)
    return out


def ends(out) -> list[int]:
    return [ts for ts, _, _ in out]


def test_first_window_after_w_readings_then_every_stride():
    out = feed(SensorWindow(window_size=4, channels=1, stride=3), range(12))
    assert ends(out) == [3, 6, 9]
    assert [w[:, 0].tolist() for _, _, w in out] == [
        [0.0, 1.0, 2.0, 3.0],
        [3.0, 4.0, 5.0, 6.0],
        [6.0, 7.0, 8.0, 9.0],
    ]


def test_stride_one_windows_are_in_time_order_across_the_ring_wrap():
    out = feed(SensorWindow(window_size=3, channels=1), range(8))
    assert ends(out) == [2, 3, 4, 5, 6, 7]
    for ts, label, window in out:
        assert window[:, 0].tolist() == [ts - 2.0, ts - 1.0, float(ts)]
        assert label == ts % 2


def test_ready_windows_are_copies_not_views_of_the_buffer():
    out = feed(SensorWindow(window_size=2, channels=1), range(6))
    assert [w[:, 0].tolist() for _, _, w in out] == [[0, 1], [1, 2], [2, 3], [3, 4], [4, 5]]


def test_multichannel_rows_keep_their_channel_order():
    window = SensorWindow(window_size=2, channels=3)
    out: list = []
    window.push(10, np.array([1.0, 2.0, 3.0]), None, out)
    window.push(20, np.array([4.0, 5.0, 6.0]), None, out)
    np.testing.assert_array_equal(out[0][2], [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])


def test_duplicates_and_late_readings_are_dropped_without_tolerance():
    window = SensorWindow(window_size=2, channels=1)
    out: list = []
    assert window.push(5, np.array([5.0]), None, out) is Pushed.ACCEPTED
    assert window.push(5, np.array([99.0]), None, out) is Pushed.DUPLICATE
    assert window.push(4, np.array([99.0]), None, out) is Pushed.LATE
    assert window.push(6, np.array([6.0]), None, out) is Pushed.ACCEPTED
    assert [w[:, 0].tolist() for _, _, w in out] == [[5.0, 6.0]]


def test_out_of_order_within_tolerance_is_put_in_order():
    window = SensorWindow(window_size=3, channels=1, reorder_tolerance_ms=10)
    out = feed(window, [0, 10, 5, 20, 15, 30, 25, 40])
    # Released once the newest reading is 10 ms ahead: everything up to 30.
    assert ends(out) == [10, 15, 20, 25, 30]
    assert out[0][2][:, 0].tolist() == [0.0, 5.0, 10.0]
    assert window.held == 1
    window.flush(out)
    assert ends(out)[-1] == 40 and window.held == 0


def test_with_tolerance_duplicates_of_held_readings_and_too_late_ones_are_dropped():
    window = SensorWindow(window_size=2, channels=1, reorder_tolerance_ms=10)
    out: list = []
    assert window.push(0, np.array([0.0]), None, out) is Pushed.ACCEPTED
    assert window.push(5, np.array([5.0]), None, out) is Pushed.ACCEPTED
    assert window.push(5, np.array([9.0]), None, out) is Pushed.DUPLICATE
    assert window.push(30, np.array([30.0]), None, out) is Pushed.ACCEPTED  # releases 0, 5
    assert window.push(3, np.array([3.0]), None, out) is Pushed.LATE
    assert window.push(5, np.array([9.0]), None, out) is Pushed.DUPLICATE
    window.flush(out)
    assert [w[:, 0].tolist() for _, _, w in out] == [[0.0, 5.0], [5.0, 30.0]]


def test_gap_restarts_the_window():
    window = SensorWindow(window_size=3, channels=1, max_gap_ms=10)
    out = feed(window, [0, 5, 10, 15, 100, 105, 110, 115])
    assert ends(out) == [10, 15, 110, 115]
    assert out[2][2][:, 0].tolist() == [100.0, 105.0, 110.0]
    assert window.restarts == 1


def test_no_gap_restart_when_max_gap_is_off():
    out = feed(SensorWindow(window_size=3, channels=1), [0, 5, 10, 1_000_000])
    assert ends(out) == [10, 1_000_000]


def test_window_view_holds_partial_windows_in_order():
    window = SensorWindow(window_size=4, channels=1)
    feed(window, [1, 2])
    assert window.window()[:, 0].tolist() == [1.0, 2.0]


@pytest.mark.parametrize("tolerance", [0, 10])
def test_state_round_trip_continues_exactly(tolerance):
    stamps = [0, 7, 3, 14, 21, 18, 28, 35, 31, 42, 49, 56, 53, 63, 70]
    whole = feed(SensorWindow(4, 1, stride=2, reorder_tolerance_ms=tolerance), stamps)
    first = SensorWindow(4, 1, stride=2, reorder_tolerance_ms=tolerance)
    out = feed(first, stamps[:6])
    state = json.loads(json.dumps(first.state()))
    second = SensorWindow(4, 1, stride=2, reorder_tolerance_ms=tolerance)
    second.restore(state)
    feed(second, stamps[6:], out)
    assert ends(out) == ends(whole)
    for (_, _, a), (_, _, b) in zip(out, whole, strict=True):
        np.testing.assert_array_equal(a, b)


def test_restore_refuses_state_of_another_shape():
    state = SensorWindow(4, 2).state()
    with pytest.raises(InputError, match=r"\[4, 2\]"):
        SensorWindow(4, 1).restore(state)


def test_invalid_stride_is_refused():
    with pytest.raises(ValueError, match="stride"):
        SensorWindow(window_size=4, channels=1, stride=5)
