"""Altair charts of one sensor: reconstruction error with threshold and alert shading,
and its raw channel values on the same time axis."""

from __future__ import annotations

import altair as alt
import pandas as pd

SCORE_COLOR = "#1f6fb4"
THRESHOLD_COLOR = "#d62728"
ALERT_COLOR = "#f28e2b"
CHANNEL_COLOR = "#4c5a67"
SCORE_HEIGHT = 240
CHANNEL_HEIGHT = 95
# Same room for every chart's y axis, so their time axes line up one above the other.
AXIS_EXTENT = 70


def _utc_domain(domain: tuple[int, int]) -> list[str]:
    # ISO strings: Vega-Lite misplaces a temporal domain given as epoch numbers here.
    return [pd.Timestamp(ms, unit="ms", tz="UTC").isoformat() for ms in domain]


def _time_axis(domain: tuple[int, int], labels: bool = True) -> alt.X:
    return alt.X(
        "time:T",
        title="event time (UTC)" if labels else None,
        scale=alt.Scale(type="utc", domain=_utc_domain(domain)),
        axis=alt.Axis(format="%H:%M:%S", labelOverlap=True, labels=labels, ticks=labels),
    )


def score_chart(
    scores: pd.DataFrame,
    spans: pd.DataFrame,
    selected_alert: str | None,
    domain: tuple[int, int],
) -> alt.LayerChart:
    """Score and threshold lines over shaded alert periods; flagged windows as red dots.

    ``domain`` is the time span drawn, as epoch milliseconds (first, last).
    """
    lines = (
        alt.Chart(scores)
        .transform_fold(["score", "threshold"], as_=["series", "value"])
        .mark_line(strokeWidth=1.6)
        .encode(
            x=_time_axis(domain),
            y=alt.Y(
                "value:Q",
                title=None,
                axis=alt.Axis(minExtent=AXIS_EXTENT, maxExtent=AXIS_EXTENT),
            ),
            color=alt.Color(
                "series:N",
                title=None,
                scale=alt.Scale(
                    domain=["score", "threshold"], range=[SCORE_COLOR, THRESHOLD_COLOR]
                ),
                legend=alt.Legend(orient="top-left", direction="horizontal", fillColor="white"),
            ),
            strokeDash=alt.StrokeDash(
                "series:N",
                scale=alt.Scale(domain=["score", "threshold"], range=[[1, 0], [6, 4]]),
                legend=None,
            ),
            tooltip=[
                alt.Tooltip("utcyearmonthdatehoursminutesseconds(time):T", title="time (UTC)"),
                alt.Tooltip("series:N"),
                alt.Tooltip("value:Q", format=".4f"),
            ],
        )
    )
    flagged = (
        alt.Chart(scores)
        .transform_filter(alt.datum.is_anomaly)
        .mark_circle(color=THRESHOLD_COLOR, size=20, opacity=0.9)
        .encode(x=_time_axis(domain), y="score:Q")
    )
    layers = [_span_layer(spans, selected_alert, domain)] if not spans.empty else []
    layers += [lines, flagged]
    title = _title("reconstruction error", CHANNEL_COLOR, bold=False)
    return alt.layer(*layers).properties(height=SCORE_HEIGHT, title=title)


def channel_chart(
    values: pd.DataFrame,
    channel: str,
    top: bool,
    domain: tuple[int, int],
    spans: pd.DataFrame,
    last: bool,
) -> alt.LayerChart:
    """One channel's raw values (columns time, value) over the same alert shading;
    a top channel of the alert is drawn in red. Only the ``last`` chart of a stack
    labels its time axis."""
    color = THRESHOLD_COLOR if top else CHANNEL_COLOR
    line = (
        alt.Chart(values)
        .mark_line(strokeWidth=1.3, color=color)
        .encode(
            x=_time_axis(domain, labels=last),
            y=alt.Y(
                "value:Q",
                title=None,
                scale=alt.Scale(zero=False),
                axis=alt.Axis(minExtent=AXIS_EXTENT, maxExtent=AXIS_EXTENT, tickCount=3),
            ),
            tooltip=[
                alt.Tooltip("utcyearmonthdatehoursminutesseconds(time):T", title="time (UTC)"),
                alt.Tooltip("value:Q", title=channel, format=".4f"),
            ],
        )
    )
    layers = [_span_layer(spans, None, domain)] if not spans.empty else []
    title = _title(channel + (" · top channel" if top else ""), color, bold=top)
    return alt.layer(*layers, line).properties(
        height=CHANNEL_HEIGHT + (50 if last else 0), title=title
    )


def _title(text: str, color: str, bold: bool) -> alt.TitleParams:
    # Titles above the plot, not beside the y axis, so every axis has the same width
    # and the stacked charts' time axes line up.
    return alt.TitleParams(
        text,
        anchor="start",
        fontSize=12,
        fontWeight="bold" if bold else "normal",
        color=color,
        offset=4,
    )


def _span_layer(
    spans: pd.DataFrame, selected_alert: str | None, domain: tuple[int, int]
) -> alt.Chart:
    """Alert periods as shaded bands; the selected alert darker."""
    return (
        alt.Chart(spans)
        .mark_rect(color=ALERT_COLOR, clip=True)
        .encode(
            x=alt.X("start:T", scale=alt.Scale(type="utc", domain=_utc_domain(domain))),
            x2="end:T",
            opacity=alt.condition(
                alt.datum.alert_id == (selected_alert or ""), alt.value(0.35), alt.value(0.15)
            ),
            tooltip=[
                alt.Tooltip("alert_id:N", title="alert"),
                alt.Tooltip("state:N"),
                alt.Tooltip("utchoursminutesseconds(start):T", title="from (UTC)"),
                alt.Tooltip("utchoursminutesseconds(end):T", title="to (UTC)"),
            ],
        )
    )
