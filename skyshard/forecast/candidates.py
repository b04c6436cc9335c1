"""The cheap candidates: point forecasts computed with numpy for a whole (series x hours) matrix
at once, so every series is backtested with all of them in every cycle.

Each candidate reads only the last days of its training window:

- `seasonal_naive`: each hour repeats the same hour one day earlier (the daily baseline);
- `seasonal_naive_weekly`: ... one week earlier (needs a week of history);
- `seasonal_naive_drift`: the daily baseline plus the median day-over-day change of the last
  3 days per day ahead, so a steady growth is followed rather than lagged;
- `median_3d`, `median_7d`, `median_14d`: the median of the same hour over the last 3, 7 or
  14 days (robust to one-off bursts and idle days);
- `mean_3d`, `mean_7d`: the mean of the same hour over the last 3 or 7 days;
- `median_3d_level`, `median_7d_level`, `median_14d_level`: the same-hour median moved to the
  last day's level (a level shift or drift is followed at once, the daily shape still comes
  from several days);
- `median_7d_trend`: `median_7d_level` plus the week's mean day-over-day change per day ahead;
- `level_mix`: the mean of the three level-moved medians;
- `median_7d_naive`: the mean of `median_7d` and `seasonal_naive` (a combination is often
  better than either).

A candidate that needs more history than the window holds is absent (NaN); under one day of
history the baseline repeats the last value.
"""

from __future__ import annotations

import numpy as np

DAY = 24
WEEK = 168
BASELINE = "seasonal_naive"
CHEAP = (
    BASELINE,
    "seasonal_naive_weekly",
    "seasonal_naive_drift",
    "median_3d",
    "median_7d",
    "median_14d",
    "mean_3d",
    "mean_7d",
    "median_7d_level",
    "median_7d_naive",
    "median_3d_level",
    "median_14d_level",
    "median_7d_trend",
    "level_mix",
)


def _same_hour(train: np.ndarray, horizon: int, days: int) -> np.ndarray:
    """(days, series, horizon): the value at the same hour of day on each of the last `days`
    days, for every forecast hour."""
    n = train.shape[1]
    steps = np.arange(horizon) % DAY
    return np.stack([train[:, n - DAY * d + steps] for d in range(1, days + 1)])


def cheap_forecasts(train: np.ndarray, horizon: int) -> dict[str, np.ndarray]:
    """Every cheap candidate's (series, horizon) point forecast from gap-free training rows;
    all NaN for a candidate the window is too short for."""
    rows, n = train.shape
    missing = np.full((rows, horizon), np.nan)
    steps = np.arange(horizon)
    out = dict.fromkeys(CHEAP, missing)
    if n < DAY:
        out[BASELINE] = np.repeat(train[:, -1:], horizon, axis=1)
        return out
    naive = train[:, n - DAY + steps % DAY]
    out[BASELINE] = naive
    if n >= WEEK:
        out["seasonal_naive_weekly"] = train[:, n - WEEK + steps % WEEK]
    if n >= 4 * DAY:
        change = np.median(train[:, -3 * DAY :] - train[:, -4 * DAY : -DAY], axis=1)
        out["seasonal_naive_drift"] = naive + change[:, None] * (steps // DAY + 1)
    for days in (3, 7, 14):
        if n < days * DAY:
            continue
        same = _same_hour(train, horizon, days)
        out[f"median_{days}d"] = np.median(same, axis=0)
        if days < 14:
            out[f"mean_{days}d"] = same.mean(axis=0)
    if n >= 7 * DAY:
        median = out["median_7d"]
        profile = np.median(_same_hour(train, DAY, 7), axis=0)
        shift = train[:, -DAY:].mean(axis=1) - profile.mean(axis=1)
        out["median_7d_level"] = median + shift[:, None]
        out["median_7d_naive"] = (median + naive) / 2.0
        week_change = (
            (train[:, -DAY:].mean(axis=1) - train[:, -8 * DAY : -7 * DAY].mean(axis=1)) / 7
            if n >= 8 * DAY
            else np.zeros(rows)
        )
        out["median_7d_trend"] = out["median_7d_level"] + week_change[:, None] * (
            steps // DAY + 0.5
        )
    for days in (3, 14):
        if n >= days * DAY:
            profile = np.median(_same_hour(train, DAY, days), axis=0)
            shift = train[:, -DAY:].mean(axis=1) - profile.mean(axis=1)
            out[f"median_{days}d_level"] = out[f"median_{days}d"] + shift[:, None]
    if n >= 14 * DAY:
        out["level_mix"] = (
            out["median_7d_level"] + out["median_14d_level"] + out["median_3d_level"]
        ) / 3
    return out
