"""Stable fingerprints of each series' input (hourly values, timestamps, its capacity when one
is given, forecast settings and model version), so a caller refits only the series whose input
changed."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np
import polars as pl

from skyshard.config.policy import ForecastPolicy
from skyshard.forecast.screen import Limit, limits_by_id
from skyshard.forecast.series import HourlySeries, SeriesBlock, series_blocks

# Bump when forecasting logic changes so that stored fingerprints no longer match and every
# series is refitted with the new code.
MODEL_VERSION = "forecast-6"


def settings_key(settings: ForecastPolicy) -> str:
    """A canonical text form of the settings and the model version."""
    return MODEL_VERSION + ";" + settings.model_dump_json()


def series_fingerprint(
    series: HourlySeries, settings: ForecastPolicy, limit: Limit | None = None
) -> str:
    """Hex digest over the settings, the limits (they steer screening and clipping), the
    start hour and the hourly values (missing = NaN)."""
    values = np.where(np.isfinite(series.observed), series.observed, np.nan)  # one NaN form
    digest = hashlib.sha256()
    digest.update(settings_key(settings).encode())
    if limit is not None:
        digest.update(f";{limit!r}".encode())
    digest.update(np.int64(series.start_hour).tobytes())
    digest.update(np.ascontiguousarray(values, dtype="<f8").tobytes())
    return digest.hexdigest()[:32]


def block_fingerprints(
    block: SeriesBlock, settings: ForecastPolicy, limits: Mapping[str, Limit]
) -> list[str]:
    """The fingerprint of every row of a block, in row order."""
    return [
        series_fingerprint(block.series(row), settings, limits.get(sid))
        for row, sid in enumerate(block.series_ids)
    ]


def input_fingerprints(
    frame: pl.DataFrame,
    settings: ForecastPolicy | None = None,
    limits: pl.DataFrame | None = None,
) -> dict[str, str]:
    """Fingerprint of every series in an input frame, by series id; `limits` as given to
    `forecast_series`."""
    settings = settings or ForecastPolicy()
    by_id = limits_by_id(limits)
    return {
        sid: fp
        for block in series_blocks(frame)
        for sid, fp in zip(
            block.series_ids, block_fingerprints(block, settings, by_id), strict=True
        )
    }


def series_to_refit(current: Mapping[str, str], previous: Mapping[str, str]) -> list[str]:
    """Ids (sorted) whose fingerprint is new or differs from the one stored at the last fit."""
    return sorted(sid for sid, fp in current.items() if previous.get(sid) != fp)
