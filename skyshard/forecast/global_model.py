"""`global_gbm`: one LightGBM model trained on every series of a (series x hours) matrix at
once, each series on its own scale, forecasting every step of the horizon directly from
same-hour values of earlier days (no recursion)."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np

from skyshard.config.policy import ForecastPolicy
from skyshard.forecast.backtest import nanmedian, robust_scale, rolling_cutoffs
from skyshard.forecast.candidates import DAY, WEEK
from skyshard.forecast.series import SeriesBlock

GLOBAL = "global_gbm"
# Training needs a day of level before its first anchor and a day of targets after it.
MIN_HISTORY = 3 * DAY
# Targets are drawn from the last TRAIN_HOURS of the window: recent behaviour, bounded cost.
TRAIN_HOURS = 21 * DAY
# At most this many training rows per fit (series x anchors x steps are sampled down to it),
# so a block of any size fits in a few seconds.
MAX_ROWS = 100_000
# Series per prediction batch: bounds the feature matrix on large skies.
PREDICT_ROWS = 2048
SAME_HOUR_DAYS = 7
MEDIAN_DAYS = (3, 7, 14)
SEED = 9
PARAMS = {
    "objective": "l1",
    "learning_rate": 0.1,
    "num_leaves": 31,
    "min_data_in_leaf": 50,
    "max_bin": 63,
    "num_threads": 1,
    "deterministic": True,
    "force_row_wise": True,
    "seed": SEED,
    "verbose": -1,
}
ROUNDS = 150


def _window_mean(cumsum: np.ndarray, rows: np.ndarray, end: np.ndarray, hours: int) -> np.ndarray:
    """Mean of each row's `hours` values before `end` (exclusive); NaN where they run past
    the start. `cumsum` has a leading 0 column."""
    start = end - hours
    ok = start >= 0
    start = np.where(ok, start, 0)
    total = cumsum[rows, end] - cumsum[rows, start]
    return np.where(ok, total / hours, np.nan)


def _features(
    train: np.ndarray,
    cumsum: np.ndarray,
    scale: np.ndarray,
    rows: np.ndarray,
    anchor: np.ndarray,
    step: np.ndarray,
    start_hours: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """(samples, features) for forecasting hour `anchor + step` of each row from the hours
    before `anchor`, every value relative to the last day's mean and divided by the row's
    scale; and that level (samples,)."""
    level = _window_mean(cumsum, rows, anchor, DAY)
    norm = scale[rows]
    target = anchor + step
    # The same hour on the latest days before the anchor (a step past a day reaches back further).
    first = step // DAY + 1
    days = np.arange(max(MEDIAN_DAYS))
    back = target[:, None] - DAY * (first[:, None] + days[None, :])
    same = np.where(back >= 0, train[rows[:, None], np.maximum(back, 0)], np.nan)
    same = (same - level[:, None]) / norm[:, None]
    columns = [same[:, :SAME_HOUR_DAYS]]
    columns += [nanmedian(same[:, :d], axis=1)[:, None] for d in MEDIAN_DAYS]
    last = train[rows, anchor - 1]
    columns += [
        ((_window_mean(cumsum, rows, anchor, WEEK) - level) / norm)[:, None],
        ((_window_mean(cumsum, rows, anchor - DAY, DAY) - level) / norm)[:, None],
        ((last - level) / norm)[:, None],
        (
            (_window_mean(cumsum, rows, anchor, 6) - _window_mean(cumsum, rows, anchor - DAY, 6))
            / norm
        )[:, None],
        (norm / np.maximum(np.abs(level), 1e-9))[:, None],
        step[:, None].astype(float),
    ]
    if start_hours is not None:
        hour = start_hours[rows] + target
        columns += [
            (hour % DAY)[:, None].astype(float),
            ((hour // DAY + 3) % 7)[:, None].astype(float),
        ]
    return np.hstack(columns), level


def global_forecasts(
    train: np.ndarray, horizon: int, start_hours: np.ndarray | None = None
) -> np.ndarray:
    """(series, horizon) forecasts of one model fitted on every row of the gap-free `train`
    matrix; all NaN when the window is shorter than `MIN_HISTORY`. `start_hours` (epoch hours
    of each row's first column) adds hour of day and day of week as features."""
    rows, n = train.shape
    missing = np.full((rows, horizon), np.nan)
    if n < MIN_HISTORY or rows == 0:
        return missing
    scale = robust_scale(train)
    cumsum = np.concatenate([np.zeros((rows, 1)), np.cumsum(train, axis=1)], axis=1)
    # Every (row, anchor, step) whose target lies in the training window, sampled down.
    first_target = max(DAY, n - TRAIN_HOURS)
    targets = n - first_target
    total = rows * targets * horizon
    rng = np.random.default_rng(SEED)
    pick = (
        rng.choice(total, size=min(total, MAX_ROWS), replace=False)
        if total > MAX_ROWS
        else np.arange(total)
    )
    row, rest = np.divmod(pick, targets * horizon)
    target, step = np.divmod(rest, horizon)
    target += first_target
    anchor = target - step
    keep = anchor >= DAY
    row, anchor, step = row[keep], anchor[keep], step[keep]
    x, level = _features(train, cumsum, scale, row, anchor, step, start_hours)
    y = (train[row, anchor + step] - level) / scale[row]
    model = lgb.train(PARAMS, lgb.Dataset(x, y, free_raw_data=True), num_boost_round=ROUNDS)
    yhat = np.empty((rows, horizon))
    for first in range(0, rows, PREDICT_ROWS):
        part = np.repeat(np.arange(first, min(first + PREDICT_ROWS, rows)), horizon)
        steps = np.tile(np.arange(horizon), len(part) // horizon)
        anchors = np.full(len(part), n)
        x, level = _features(train, cumsum, scale, part, anchors, steps, start_hours)
        predicted = level + scale[part] * model.predict(x, num_threads=PARAMS["num_threads"])
        yhat[first : first + PREDICT_ROWS] = predicted.reshape(-1, horizon)
    return yhat


def global_backtest(block: SeriesBlock, settings: ForecastPolicy) -> dict[str, np.ndarray]:
    """The global model's forecasts for every row of `block` at each backtest origin and from
    the full history: {GLOBAL: (rows, origins + 1, horizon)}, the shape `evaluate_chunk`
    takes; empty when `settings.global_model` is off."""
    if not settings.global_model or block.n_hours == 0:
        return {}
    horizon, filled = settings.horizon_hours, block.filled
    cuts = [*rolling_cutoffs(block.n_hours, horizon, settings.backtest_cutoffs), block.n_hours]
    runs = [global_forecasts(filled[:, :cut], horizon, block.start_hours) for cut in cuts]
    return {GLOBAL: np.stack(runs, axis=1)}
