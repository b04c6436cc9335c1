"""`global_gbm`: one LightGBM model trained on every series ending in the same hour at once,
each series on its own scale, forecasting every step of the horizon directly from same-hour
values of earlier days (no recursion)."""

from __future__ import annotations

from collections.abc import Sequence

import lightgbm as lgb
import numpy as np

from skyshard.config.policy import ForecastPolicy
from skyshard.forecast.backtest import nanmedian, robust_scale, rolling_cutoffs
from skyshard.forecast.candidates import DAY, WEEK
from skyshard.forecast.series import SeriesBlock

GLOBAL = "global_gbm"
# A series needs a day of level before its first anchor and a day of targets after it.
MIN_HISTORY = 3 * DAY
# Targets are drawn from the last TRAIN_HOURS of the window: recent behaviour, bounded cost.
TRAIN_HOURS = 21 * DAY
# At most this many training rows per fit (series x anchors x steps are sampled down to it),
# so a fit costs a few seconds whatever the number of series.
MAX_ROWS = 100_000
# Series ending in the same hour share a model; only this many groups (the largest) get one,
# which bounds the fits per run (series that stopped reporting earlier end elsewhere).
MAX_GROUPS = 4
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


def _window_mean(
    sums: np.ndarray, counts: np.ndarray, rows: np.ndarray, end: np.ndarray, hours: int
) -> np.ndarray:
    """Mean of each row's `hours` values before `end` (exclusive); NaN where one of them is
    missing or before the start. `sums` and `counts` are the cumulative sums of the known
    values and of their number, each with a leading 0 column."""
    start = np.maximum(end - hours, 0)
    known = counts[rows, end] - counts[rows, start]
    total = sums[rows, end] - sums[rows, start]
    return np.where((end >= hours) & (known == hours), total / hours, np.nan)


def _features(
    train: np.ndarray,
    sums: np.ndarray,
    counts: np.ndarray,
    scale: np.ndarray,
    rows: np.ndarray,
    anchor: np.ndarray,
    step: np.ndarray,
    start_hours: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """(samples, features) for forecasting hour `anchor + step` of each row from the hours
    before `anchor`, every value relative to the last day's mean and divided by the row's
    scale; and that level (samples,)."""

    def mean(end: np.ndarray, hours: int) -> np.ndarray:
        return _window_mean(sums, counts, rows, end, hours)

    level = mean(anchor, DAY)
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
    recent = mean(anchor, 6) - mean(anchor - DAY, 6)  # the last hours against a day before
    columns += [
        ((mean(anchor, WEEK) - level) / norm)[:, None],
        ((mean(anchor - DAY, DAY) - level) / norm)[:, None],
        ((train[rows, anchor - 1] - level) / norm)[:, None],
        (recent / norm)[:, None],
        (norm / np.maximum(np.abs(level), 1e-9))[:, None],
        step[:, None].astype(float),
    ]
    if start_hours is not None:
        hour = start_hours[rows] + target
        weekday = (hour // DAY + 3) % 7  # the epoch began on a Thursday; Monday is 0
        columns += [(hour % DAY)[:, None].astype(float), weekday[:, None].astype(float)]
    return np.hstack(columns), level


def global_forecasts(
    train: np.ndarray, horizon: int, start_hours: np.ndarray | None = None
) -> np.ndarray:
    """(series, horizon) forecasts of one model fitted on every row of `train`, gap-free
    after each row's first value (rows of shorter series are padded with NaN on the left);
    all NaN for a row with fewer than `MIN_HISTORY` hours. `start_hours` (epoch hours of
    each row's first column) adds hour of day and day of week as features."""
    rows, n = train.shape
    yhat = np.full((rows, horizon), np.nan)
    if n < MIN_HISTORY:
        return yhat
    known = np.isfinite(train)
    first = np.where(known.any(axis=1), known.argmax(axis=1), n)
    ready = n - first >= MIN_HISTORY
    if not ready.any():
        return yhat
    scale = robust_scale(train)
    zero = np.zeros((rows, 1))
    sums = np.concatenate([zero, np.cumsum(np.where(known, train, 0.0), axis=1)], axis=1)
    counts = np.concatenate([zero, np.cumsum(known, axis=1)], axis=1)
    # (row, anchor, step) triples of the ready rows with the target in the last TRAIN_HOURS,
    # sampled down, kept where the row has a day before the anchor.
    wanted = np.flatnonzero(ready)
    first_target = max(DAY, n - TRAIN_HOURS)
    targets = n - first_target
    total = len(wanted) * targets * horizon
    rng = np.random.default_rng(SEED)
    pick = rng.choice(total, size=MAX_ROWS, replace=False) if total > MAX_ROWS else np.arange(total)
    row, rest = np.divmod(pick, targets * horizon)
    row = wanted[row]
    target, step = np.divmod(rest, horizon)
    anchor = target + first_target - step
    keep = anchor - DAY >= first[row]
    row, anchor, step = row[keep], anchor[keep], step[keep]
    if len(row) == 0:
        return yhat
    x, level = _features(train, sums, counts, scale, row, anchor, step, start_hours)
    y = (train[row, anchor + step] - level) / scale[row]
    model = lgb.train(PARAMS, lgb.Dataset(x, y, free_raw_data=True), num_boost_round=ROUNDS)
    for at in range(0, len(wanted), PREDICT_ROWS):
        part = np.repeat(wanted[at : at + PREDICT_ROWS], horizon)
        steps = np.tile(np.arange(horizon), len(part) // horizon)
        anchors = np.full(len(part), n)
        x, level = _features(train, sums, counts, scale, part, anchors, steps, start_hours)
        predicted = level + scale[part] * model.predict(x, num_threads=PARAMS["num_threads"])
        yhat[wanted[at : at + PREDICT_ROWS]] = predicted.reshape(-1, horizon)
    return yhat


def global_backtest(
    blocks: Sequence[SeriesBlock], settings: ForecastPolicy
) -> list[dict[str, np.ndarray]]:
    """Per block, the global model's forecasts for every row at each of its backtest origins
    and from its full history: {GLOBAL: (rows, origins + 1, horizon)}, the shape
    `evaluate_chunk` takes; empty dicts when `settings.global_model` is off.

    Series ending in the same hour share one model per origin: their rows are aligned on
    their end (shorter ones padded on the left), so an origin k horizons before the end is
    the same hour of the clock for all of them and no series trains on another's future.
    Only the `MAX_GROUPS` largest such groups get one (NaN for the others)."""
    if not settings.global_model:
        return [{} for _ in blocks]
    horizon, count = settings.horizon_hours, settings.backtest_cutoffs
    # Per block, the number of horizons before its end of each origin (0: the final forecast).
    before = [
        [(b.n_hours - cut) // horizon for cut in rolling_cutoffs(b.n_hours, horizon, count)] + [0]
        for b in blocks
    ]
    out = [
        np.full((len(b.series_ids), len(k), horizon), np.nan)
        for b, k in zip(blocks, before, strict=True)
    ]
    members: dict[int, list[tuple[int, np.ndarray]]] = {}
    for index, block in enumerate(blocks):
        if block.n_hours == 0:
            continue
        for end in np.unique(block.end_hours):
            rows = np.flatnonzero(block.end_hours == end)
            members.setdefault(int(end), []).append((index, rows))

    def size(end: int) -> tuple[int, int]:
        return sum(len(rows) for _, rows in members[end]), end

    modelled = sorted(members, key=size, reverse=True)[:MAX_GROUPS]
    # Gap-filled copies only of the blocks a model reads (a copy per block otherwise).
    filled = {i: blocks[i].filled for end in modelled for i, _ in members[end]}
    for end in modelled:
        parts = members[end]
        width = max(blocks[i].n_hours for i, _ in parts)
        matrix = np.concatenate(
            [
                np.pad(
                    filled[i][rows],
                    ((0, 0), (width - blocks[i].n_hours, 0)),
                    constant_values=np.nan,
                )
                for i, rows in parts
            ]
        )
        starts = np.concatenate(
            [blocks[i].start_hours[rows] - (width - blocks[i].n_hours) for i, rows in parts]
        )
        for k in sorted({k for i, _ in parts for k in before[i]}, reverse=True):
            yhat = global_forecasts(matrix[:, : width - k * horizon], horizon, starts)
            at = 0
            for i, rows in parts:
                if k in before[i]:
                    out[i][rows, before[i].index(k)] = yhat[at : at + len(rows)]
                at += len(rows)
    return [{GLOBAL: runs} for runs in out]
