"""Altair charts of one sensor: reconstruction error with threshold and alert shading,
and its raw channel values over the same span."""

from __future__ import annotations

import altair as alt
import pandas as pd

SCORE_COLOR = "#1f6fb4"
THRESHOLD_COLOR = "#d62728"
ALERT_COLOR = "#f28e2b"
CHART_HEIGHT = 260
CHANNEL_HEIGHT = 70

_TIME = alt.X(
    "time:T",
    title="event time (UTC)",
    scale=alt.Scale(type="utc"),
    axis=alt.Axis(format="%H:%M:%S", labelOverlap=True),
)


def score_chart(scores: pd.DataFrame, spans: pd.DataFrame, selected_alert: str | None) -> alt.Chart:
    """Score and threshold lines over shaded alert periods; flagged windows as red dots."""
    lines = (
        alt.Chart(scores)
        .transform_fold(["score", "threshold"], as_=["series", "value"])
        .mark_line(strokeWidth=1.6, interpolate="step-after")
        .encode(
            x=_TIME,
            y=alt.Y("value:Q", title="reconstruction error"),
            color=alt.Color(
                "series:N",
                title=None,
                scale=alt.Scale(
                    domain=["score", "threshold"], range=[SCORE_COLOR, THRESHOLD_COLOR]
                ),
                legend=alt.Legend(orient="top-left", direction="horizontal"),
            ),
            strokeDash=alt.StrokeDash(
                "series:N",
                scale=alt.Scale(domain=["score", "threshold"], range=[[1, 0], [6, 4]]),
                legend=None,
            ),
            tooltip=[
                alt.Tooltip("time:T", title="time", format="%Y-%m-%d %H:%M:%S"),
                alt.Tooltip("series:N"),
                alt.Tooltip("value:Q", format=".4f"),
            ],
        )
    )
    flagged = (
        alt.Chart(scores)
        .transform_filter(alt.datum.is_anomaly)
        .mark_circle(color=THRESHOLD_COLOR, size=22, opacity=0.9)
        .encode(x=_TIME, y="score:Q")
    )
    layers: list[alt.Chart] = []
    if not spans.empty:
        layers.append(
            alt.Chart(spans)
            .mark_rect(color=ALERT_COLOR)
            .encode(
                x=alt.X("start:T", scale=alt.Scale(type="utc")),
                x2="end:T",
                opacity=alt.condition(
                    alt.datum.alert_id == (selected_alert or ""), alt.value(0.32), alt.value(0.16)
                ),
                tooltip=[
                    alt.Tooltip("alert_id:N", title="alert"),
                    alt.Tooltip("state:N"),
                    alt.Tooltip("start:T", format="%H:%M:%S"),
                    alt.Tooltip("end:T", format="%H:%M:%S"),
                ],
            )
        )
    layers += [lines, flagged]
    return alt.layer(*layers).properties(height=CHART_HEIGHT)


def values_chart(values: pd.DataFrame, top_channels: list[str]) -> alt.FacetChart:
    """One small panel per channel (own y scale, shared time axis); top channels in red."""
    values = values.assign(top=values["channel"].isin(top_channels))
    order = list(dict.fromkeys(values["channel"]))
    return (
        alt.Chart(values)
        .mark_line(strokeWidth=1.2)
        .encode(
            x=_TIME,
            y=alt.Y("value:Q", title=None, scale=alt.Scale(zero=False)),
            color=alt.condition(alt.datum.top, alt.value(THRESHOLD_COLOR), alt.value("#4c4c4c")),
            tooltip=[
                alt.Tooltip("time:T", format="%Y-%m-%d %H:%M:%S"),
                alt.Tooltip("channel:N"),
                alt.Tooltip("value:Q", format=".4f"),
            ],
        )
        .properties(height=CHANNEL_HEIGHT)
        .facet(
            row=alt.Row(
                "channel:N",
                sort=order,
                title=None,
                header=alt.Header(labelAngle=0, labelAlign="left", labelFontWeight="bold"),
            )
        )
        .resolve_scale(y="independent")
    )
