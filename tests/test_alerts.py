import json

import numpy as np
import pytest

from streamae.alerts import AlertTracker, alert_id

CHANNELS = ("a", "b", "c", "d")
THRESHOLD = 1.0


def run(tracker: AlertTracker, scores, errors=None) -> list:
    events = []
    for ts, score in enumerate(scores):
        channel_errors = np.full(4, score) if errors is None else errors[ts]
        events.extend(tracker.update(ts * 10, score, THRESHOLD, channel_errors))
    return events


def tracker(open_after=3, close_after=2) -> AlertTracker:
    return AlertTracker("pump-7", CHANNELS, "model-1", open_after, close_after)


def test_opens_after_k_consecutive_windows_over_and_closes_after_m_below():
    t = tracker()
    scores = [0, 2, 2, 0, 2, 2, 2, 2, 0, 2, 0, 0, 0, 2, 2]
    events = run(t, scores)
    assert [(e.state, e.opened_at, e.closed_at) for e in events] == [
        ("open", 40, None),  # the run of 3 starting at window 4 (ts 40)
        ("closed", 40, 110),  # the second of two windows below in a row (ts 100, 110)
    ]
    assert not t.is_open


def test_is_open_from_the_kth_window_until_the_closing_window():
    t = tracker(open_after=2, close_after=2)
    states = []
    for ts, score in enumerate([2, 2, 2, 0, 0, 0]):
        t.update(ts, score, THRESHOLD, np.zeros(4))
        states.append(t.is_open)
    assert states == [False, True, True, True, False, False]


def test_each_alert_has_exactly_one_open_and_one_closed_event():
    scores = ([2] * 5 + [0] * 5) * 3
    events = run(tracker(), scores)
    assert [e.state for e in events] == ["open", "closed"] * 3
    ids = [e.alert_id for e in events]
    assert ids[0] == ids[1] and ids[2] == ids[3] and ids[4] == ids[5]
    assert len(set(ids)) == 3


def test_alert_id_is_deterministic_and_depends_on_sensor_start_and_model():
    events = run(tracker(), [2, 2, 2])
    assert events[0].alert_id == alert_id("pump-7", 0, "model-1")
    assert events[0].alert_id == run(tracker(), [2, 2, 2])[0].alert_id
    assert len(events[0].alert_id) == 16
    others = {alert_id("pump-8", 0, "model-1"), alert_id("pump-7", 1, "model-1")}
    assert events[0].alert_id not in others | {alert_id("pump-7", 0, "model-2")}


def test_peak_and_top_channels_come_from_the_highest_window_including_before_opening():
    errors = [np.array(e, float) for e in ([1, 9, 3, 2], [1, 2, 3, 4], [5, 1, 2, 6], [0, 0, 0, 0])]
    t = tracker(open_after=3, close_after=1)
    events = run(t, [9.0, 3.0, 4.0, 0.0], errors)
    opened, closed = events
    assert opened.peak_score == 9.0 and closed.peak_score == 9.0
    assert opened.top_channels == ["b", "c", "d"]
    assert opened.threshold == THRESHOLD


def test_closed_event_carries_the_peak_reached_after_opening():
    t = tracker(open_after=1, close_after=1)
    events = run(t, [2.0, 7.0, 0.0])
    assert [(e.state, e.peak_score) for e in events] == [("open", 2.0), ("closed", 7.0)]


def test_a_short_dip_below_does_not_close_or_reopen():
    events = run(tracker(open_after=2, close_after=3), [2, 2, 0, 0, 2, 2, 0, 0, 0])
    assert [(e.state, e.opened_at) for e in events] == [("open", 0), ("closed", 0)]


def test_state_round_trip_mid_alert():
    scores = [2, 2, 2, 5, 0, 2, 0, 0]
    whole = run(tracker(), scores)
    first = tracker()
    events = run(first, scores[:4])
    second = tracker()
    second.restore(json.loads(json.dumps(first.state())))
    for ts, score in enumerate(scores[4:], start=4):
        events.extend(second.update(ts * 10, score, THRESHOLD, np.full(4, score)))
    assert events == whole


def rearming(rearm: int) -> AlertTracker:
    return AlertTracker("pump-7", CHANNELS, "model-1", open_after=1, close_after=1, rearm=rearm)


def test_rearm_holds_back_lower_scores_for_rearm_windows():
    t = rearming(rearm=3)
    # Alert at ts 0 (peak 5), closed at ts 10; for ts 20-40 the bar is 5 ** (2/3) = 2.92,
    # 5 ** (1/3) = 1.71, then the threshold 1.
    events = run(t, [5, 0, 2.5, 1.5, 0, 1.5])
    assert [(e.state, e.opened_at) for e in events] == [
        ("open", 0),
        ("closed", 0),
        ("open", 50),  # the re-arm period is over: 1.5 > the threshold is enough again
    ]


def test_the_rearm_bar_falls_geometrically_from_the_last_peak_to_the_threshold():
    # Peak 16 over a threshold of 1, re-arm 4: the bar is 16 ** (3/4) = 8, then 4, 2, 1.
    def first_reopening(score: float) -> int | None:
        t = rearming(rearm=4)
        events = run(t, [16, 0] + [score] * 5)
        return events[2].opened_at if len(events) > 2 else None

    assert first_reopening(9) == 20  # over 8: at once
    assert first_reopening(7) == 30  # under 8, over 4
    assert first_reopening(3) == 40  # over 2
    assert first_reopening(1.5) == 50  # over the threshold once the bar reached it
    assert first_reopening(0.5) is None


def test_rearm_lets_a_worse_score_alert_at_once():
    t = rearming(rearm=100)
    events = run(t, [5, 0, 3, 6])
    assert [(e.state, e.opened_at, e.peak_score) for e in events] == [
        ("open", 0, 5.0),
        ("closed", 0, 5.0),
        ("open", 30, 6.0),
    ]


def test_rearm_zero_changes_nothing():
    t = rearming(rearm=0)
    events = run(t, [5, 0, 3])
    assert [(e.state, e.opened_at) for e in events] == [("open", 0), ("closed", 0), ("open", 20)]


def test_rearm_state_survives_a_checkpoint_and_old_states_still_load():
    t = rearming(rearm=3)
    run(t, [5, 0, 2])  # one re-arm window used (bar 2.92), two left, peak 5
    state = json.loads(json.dumps(t.state()))
    fresh = rearming(rearm=3)
    fresh.restore(state)
    # Bars 1.71 then 1: the second 1.5 opens.
    assert [(e.state, e.opened_at) for e in run(fresh, [1.5, 1.5])] == [("open", 10)]
    old = {k: v for k, v in state.items() if k not in ("rearm_left", "last_peak")}
    legacy = rearming(rearm=3)
    legacy.restore(old)
    assert [(e.state, e.opened_at) for e in run(legacy, [1.5])] == [("open", 0)]


def test_negative_rearm_is_refused():
    with pytest.raises(ValueError, match="rearm"):
        rearming(rearm=-1)


def fading(fade: float, close_after: int = 3, rearm: int = 100) -> AlertTracker:
    return AlertTracker(
        "pump-7", CHANNELS, "model-1", open_after=2, close_after=close_after, rearm=rearm, fade=fade
    )


def test_fade_closes_an_alert_whose_scores_fell_to_part_of_its_peak_while_over_the_bar():
    # Peak 10; then 2 (over the bar of 1, at most 0.25 x 10) for close_after windows.
    events = run(fading(0.25), [10, 10, 2, 2, 2, 2])
    assert [(e.state, e.closed_at) for e in events] == [("open", None), ("closed", 40)]


def test_fade_keeps_the_alert_open_while_scores_stay_above_that_part_of_the_peak():
    t = fading(0.25)
    events = run(t, [10, 10, 3, 3, 3, 3, 2, 2])
    assert [e.state for e in events] == ["open"]
    assert t.is_open


def test_a_window_over_the_faded_level_restarts_the_count():
    events = run(fading(0.25), [10, 10, 2, 2, 3, 2, 2, 2])
    assert [(e.state, e.closed_at) for e in events] == [("open", None), ("closed", 70)]


def test_fade_zero_keeps_an_alert_open_while_scores_are_over_the_bar():
    t = fading(0.0)
    assert [e.state for e in run(t, [10, 10, 2, 2, 2, 2])] == ["open"]
    assert t.is_open


def test_a_score_at_exactly_the_faded_level_is_calm():
    events = run(fading(0.25), [10, 10, 2.5, 2.5, 2.5])
    assert [(e.state, e.closed_at) for e in events] == [("open", None), ("closed", 40)]


def test_after_an_alert_closed_the_fade_has_no_say_in_opening_the_next():
    # The first alert's peak (100) no longer counts once it closed: 20 is over the bar.
    t = fading(0.25, close_after=1, rearm=1)
    events = run(t, [100, 100, 0.5, 0.5, 20, 20, 20])
    assert [(e.state, e.opened_at) for e in events] == [("open", 0), ("closed", 0), ("open", 40)]


def test_each_alert_fades_from_its_own_peak():
    # Second alert: peak 8, so 3 (> 0.25 x 8) keeps it open, however high the first peak was.
    t = fading(0.25, rearm=2)
    events = run(t, [100, 100, 0, 0, 0, 0, 0, 8, 8, 3, 3, 3, 3])
    assert [(e.state, e.opened_at) for e in events] == [("open", 0), ("closed", 0), ("open", 70)]
    assert t.is_open


def test_fade_without_rearm_is_refused():
    with pytest.raises(ValueError, match="fade needs rearm"):
        fading(0.25, rearm=0)


@pytest.mark.parametrize("fade", [-0.1, 1.0, 2.0])
def test_a_fade_outside_0_1_is_refused(fade):
    with pytest.raises(ValueError, match="fade must be in"):
        fading(fade)
