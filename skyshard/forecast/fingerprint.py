"""Stable fingerprints of each series' input (hourly values, timestamps, forecast settings and
model version), so a caller refits only the series whose input changed."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np
import polars as pl

from skyshard.forecast.config import ForecastConfig
from skyshard.forecast.series import HourlySeries, split_series


def series_fingerprint(series: HourlySeries, config: ForecastConfig) -> str:
    """Hex digest over the settings, the start hour and the hourly values (missing = NaN)."""
    values = np.where(np.isfinite(series.observed), series.observed, np.nan)  # one NaN form
    digest = hashlib.sha256()
    digest.update(config.as_key().encode())
    digest.update(np.int64(series.start_hour).tobytes())
    digest.update(np.ascontiguousarray(values, dtype="<f8").tobytes())
    return digest.hexdigest()[:32]


def input_fingerprints(frame: pl.DataFrame, config: ForecastConfig | None = None) -> dict[str, str]:
    """Fingerprint of every series in an input frame, by series id."""
    config = config or ForecastConfig()
    return {s.series_id: series_fingerprint(s, config) for s in split_series(frame)}


def series_to_refit(current: Mapping[str, str], previous: Mapping[str, str]) -> list[str]:
    """Ids (sorted) whose fingerprint is new or differs from the one stored at the last fit."""
    return sorted(sid for sid, fp in current.items() if previous.get(sid) != fp)
