"""Hand-made forecast tables for planning tests."""

from __future__ import annotations

from datetime import UTC, timedelta

import polars as pl

from skyshard.forecast.run import FORECAST_SCHEMA
from tests.planning.sky import AS_OF


def forecast_rows(
    series: dict[str, list[tuple[float, float, float]]], sd: float | None = None
) -> pl.DataFrame:
    """`series_id -> [(yhat, lower, upper) per step 1..H]` as a forecast table ending at AS_OF,
    every row with the residual standard deviation `sd` (None: unknown)."""
    end = AS_OF.replace(tzinfo=UTC)
    rows = [
        {
            "series_id": sid,
            "ts": end + timedelta(hours=step),
            "yhat": yhat,
            "yhat_lower": lower,
            "yhat_upper": upper,
            "yhat_sd": sd,
            "model": "test",
            "reason": "planted",
            "trained_at": end,
            "train_start": end - timedelta(hours=71),
            "train_end": end,
            "interval": 0.9,
            "input_fingerprint": "x",
        }
        for sid, values in series.items()
        for step, (yhat, lower, upper) in enumerate(values, start=1)
    ]
    return pl.DataFrame(rows, schema=FORECAST_SCHEMA, orient="row")
