"""Stable fingerprints of each series' input (hourly values, timestamps, its capacity when one
is given, forecast settings and model version), so a caller refits only the series whose input
changed."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np
import polars as pl

from skyshard.forecast.config import ForecastConfig
from skyshard.forecast.screen import Limit, limits_by_id
from skyshard.forecast.series import HourlySeries, SeriesBlock, series_blocks


def series_fingerprint(
    series: HourlySeries, config: ForecastConfig, limit: Limit | None = None
) -> str:
    """Hex digest over the settings, the capacity (it steers screening), the start hour and
    the hourly values (missing = NaN)."""
    values = np.where(np.isfinite(series.observed), series.observed, np.nan)  # one NaN form
    digest = hashlib.sha256()
    digest.update(config.as_key().encode())
    if limit is not None:
        digest.update(f";capacity={limit[0]!r};free={limit[1]!r}".encode())
    digest.update(np.int64(series.start_hour).tobytes())
    digest.update(np.ascontiguousarray(values, dtype="<f8").tobytes())
    return digest.hexdigest()[:32]


def block_fingerprints(
    block: SeriesBlock, config: ForecastConfig, limits: Mapping[str, Limit]
) -> list[str]:
    """The fingerprint of every row of a block, in row order."""
    return [
        series_fingerprint(block.series(row), config, limits.get(sid))
        for row, sid in enumerate(block.series_ids)
    ]


def input_fingerprints(
    frame: pl.DataFrame,
    config: ForecastConfig | None = None,
    limits: pl.DataFrame | None = None,
) -> dict[str, str]:
    """Fingerprint of every series in an input frame, by series id; `limits` as given to
    `forecast_series`."""
    config = config or ForecastConfig()
    by_id = limits_by_id(limits)
    return {
        sid: fp
        for block in series_blocks(frame)
        for sid, fp in zip(block.series_ids, block_fingerprints(block, config, by_id), strict=True)
    }


def series_to_refit(current: Mapping[str, str], previous: Mapping[str, str]) -> list[str]:
    """Ids (sorted) whose fingerprint is new or differs from the one stored at the last fit."""
    return sorted(sid for sid, fp in current.items() if previous.get(sid) != fp)
