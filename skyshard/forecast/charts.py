"""Forecast charts, drawn with matplotlib's object API (no pyplot state, safe in any thread)."""

from __future__ import annotations

import polars as pl
from matplotlib.figure import Figure

from skyshard.forecast.series_id import SeriesId

MAX_PANELS = 4


def forecast_vs_capacity_chart(forecasts: pl.DataFrame, at_risk: pl.DataFrame) -> Figure:
    """One panel per shard at risk (rows of `forecast.predicted_bottlenecks`, soonest first, at
    most MAX_PANELS): the shard's forecast with its interval against what its host can give it."""
    rows = at_risk.head(MAX_PANELS).to_dicts()
    figure = Figure(figsize=(7.2, 2.2 * max(1, len(rows))), dpi=90, layout="constrained")
    for i, row in enumerate(rows, start=1):
        axes = figure.add_subplot(len(rows), 1, i)
        series_id = str(SeriesId.shard(row["shard_id"], row["resource"]))
        series = forecasts.filter(pl.col("series_id") == series_id).sort("ts")
        # Bottleneck times are naive UTC; forecast times carry the zone.
        ts = series["ts"].dt.replace_time_zone(None).to_list()
        axes.fill_between(
            ts,
            series["yhat_lower"].to_list(),
            series["yhat_upper"].to_list(),
            alpha=0.25,
            color="#3b6ea8",
            label="forecast interval",
        )
        axes.plot(ts, series["yhat"].to_list(), color="#3b6ea8", label="forecast")
        axes.axhline(row["available"], color="#c0392b", linestyle="--", label="host can give")
        axes.axvline(row["expected_at"], color="#555555", linewidth=0.8)
        axes.set_title(f"{series_id}: over capacity in {row['hours_ahead']:.0f} h", fontsize=9)
        axes.tick_params(labelsize=7)
        if i == 1:
            axes.legend(fontsize=7, loc="upper left")
    return figure
