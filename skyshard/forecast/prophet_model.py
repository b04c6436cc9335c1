"""Prophet fit and predict, tuned for many small hourly series.

Prophet runs with `uncertainty_samples=0` (no sampling at predict time) and MAP fitting; the
bounds come from quantiles of the in-sample residuals instead. Seasonalities follow the data:
daily from two days, weekly from two weeks; no yearly term. Prophet and cmdstanpy are imported
lazily (they are slow to import) and their loggers are quietened to warnings.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

from skyshard.forecast.bounds import Band, residual_quantiles


class ProphetFailed(RuntimeError):
    """Prophet could not fit or predict this series."""


@dataclass(frozen=True)
class ProphetSpec:
    """The Prophet settings for one series, fixed from its full length so that backtest fits
    and the final fit use the same model."""

    daily: bool
    weekly: bool
    n_changepoints: int


def spec_for(n_hours: int) -> ProphetSpec:
    # One candidate changepoint per day keeps fits fast and short series from overfitting.
    return ProphetSpec(
        daily=n_hours >= 2 * 24,
        weekly=n_hours >= 2 * 168,
        n_changepoints=int(np.clip(n_hours // 24, 3, 25)),
    )


@cache
def _prophet_class() -> Any:
    logging.getLogger("prophet.plot").setLevel(logging.CRITICAL)  # "plotly missing" at import
    # A NullHandler keeps Python's last-resort stderr printing away when the application has
    # configured no logging, and stops cmdstanpy from installing its own INFO handler; records
    # still reach the application's handlers.
    for name in ("prophet", "cmdstanpy"):
        logger = logging.getLogger(name)
        if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
            logger.addHandler(logging.NullHandler())
        logger.setLevel(logging.WARNING)
    from prophet import Prophet

    return Prophet


def _hours_to_ds(start_hour: int, count: int) -> pd.Series:
    seconds = (start_hour + np.arange(count, dtype=np.int64)) * 3600
    return pd.Series(pd.to_datetime(seconds, unit="s"))


def prophet_forecast(
    history: np.ndarray, start_hour: int, horizon: int, interval: float, spec: ProphetSpec
) -> Band:
    """Fit Prophet on gap-free hourly `history` starting at `start_hour` (epoch hours, UTC)
    and forecast the next `horizon` hours."""
    n = len(history)
    model = _prophet_class()(
        daily_seasonality=spec.daily,
        weekly_seasonality=spec.weekly,
        yearly_seasonality=False,
        n_changepoints=min(spec.n_changepoints, max(n - 2, 0)),
        uncertainty_samples=0,
        mcmc_samples=0,
    )
    try:
        model.fit(pd.DataFrame({"ds": _hours_to_ds(start_hour, n), "y": history}))
        predicted = model.predict(pd.DataFrame({"ds": _hours_to_ds(start_hour, n + horizon)}))
    except (RuntimeError, ValueError) as error:
        raise ProphetFailed(f"prophet failed on {n} hourly points: {error}") from error
    yhat = predicted["yhat"].to_numpy()
    low, high = residual_quantiles(history - yhat[:n], interval)
    future = yhat[n:]
    return Band(yhat=future, lower=future + low, upper=future + high)
