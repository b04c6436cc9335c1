"""Level-shift detection: re-level a cheap candidate's forecast when its recent residuals sit
persistently outside the band in one direction.

The cheap estimators (same-hour medians over days, seasonal naive) follow a level shift only
after a day or more. At an origin `c`, each candidate is also run from `c - L` (L =
`level_shift_hours`); its residuals over the last L hours (actual minus that forecast, 1 to L
hours ahead) are a tracking signal on the model's own errors, not on raw levels, so a daily
peak the model already predicts does not move it, and a spike of fewer than L hours does not
either. When every one of the L residuals lies beyond the band in the same direction, the
forecast from `c` is moved by their median, less what the model has already caught up (the
median change between its forecasts from `c - L` and from `c` over the hours both cover).

The band is the series' in-sample seasonal-naive interval at the policy's `interval`
(`select.in_sample_quantiles`, calibrated on the history before `c - L`): a residual beyond
it is larger than the day-over-day changes the series showed. The re-levelled candidates
are what the backtest scores, the selection chooses among and the conformal intervals are
calibrated on, so the bands widen by the errors re-levelling makes (or narrow by those it
saves) without a separate rule.
"""

from __future__ import annotations

import numpy as np

from skyshard.forecast.backtest import nanmedian, robust_scale
from skyshard.forecast.candidates import BASELINE, DAY, cheap_forecasts
from skyshard.forecast.select import in_sample_quantiles


def level_shifts(
    recent: np.ndarray, before: np.ndarray, now: np.ndarray, band: np.ndarray
) -> np.ndarray:
    """(rows,) the shift to add to the forecasts `now` (rows, horizon): `recent` (rows, L) are
    the last L observed values (NaN where missing), `before` (rows, horizon) the same model's
    forecast made L hours earlier, `band` (rows, 2) the lower and upper residual thresholds.
    0 where the L residuals are not all beyond the band on one side (a missing hour breaks
    the run) or the model has already caught up."""
    hours = recent.shape[1]
    if hours == 0:
        return np.zeros(len(recent))
    residuals = recent - before[:, :hours]
    with np.errstate(invalid="ignore"):
        up = (residuals > band[:, 1:2]).all(axis=1)
        down = (residuals < band[:, 0:1]).all(axis=1)
    level = nanmedian(residuals, axis=1)
    overlap = now.shape[1] - hours
    caught = (
        nanmedian(now[:, :overlap] - before[:, hours:], axis=1)
        if overlap > 0
        else np.zeros(len(recent))
    )
    caught = np.nan_to_num(caught)
    return np.where(
        up,
        np.maximum(level - caught, 0.0),
        np.where(down, np.minimum(level - caught, 0.0), 0.0),
    )


def shifted_forecasts(
    observed: np.ndarray,
    filled: np.ndarray,
    cut: int,
    horizon: int,
    hours: int,
    interval: float,
) -> dict[str, np.ndarray]:
    """Every cheap candidate's forecast from the first `cut` hours, each re-levelled by its
    own residuals over the last `hours` hours (none when `hours` is 0 or the history before
    them is shorter than a day). The daily seasonal naive stays as it is: it is the plain
    reference every MASE and the forecasts' gain are measured against."""
    now = cheap_forecasts(filled[:, :cut], horizon)
    start = cut - hours
    if hours == 0 or start < DAY:
        return now
    before = cheap_forecasts(filled[:, :start], horizon)
    history = observed[:, :start]
    norm = robust_scale(history)
    band = in_sample_quantiles(history, norm, interval) * norm[:, None]
    recent = observed[:, start:cut]
    return {
        model: forecast
        if model == BASELINE
        else forecast + level_shifts(recent, before[model], forecast, band)[:, None]
        for model, forecast in now.items()
    }
