"""The slow candidates, fitted one series at a time: statsforecast's AutoETS, MSTL and
AutoTheta, and Prophet (the product card's model). Each is backtested at the same origins as
the cheap candidates and chosen only where its backtest wins.

Prophet runs with MAP fitting and `uncertainty_samples=0`; its seasonalities follow the data
(daily from two days, weekly from two weeks, no yearly term) and its settings are fixed from
the series' full length, so backtest fits and the final fit use the same model. statsforecast
and Prophet are imported lazily (they are slow to import); Prophet's and cmdstanpy's loggers
are quietened to warnings.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

from skyshard.forecast.candidates import DAY, WEEK

AUTOETS = "autoets"
MSTL = "mstl"
AUTOTHETA = "autotheta"
PROPHET = "prophet"
SLOW = (AUTOETS, MSTL, AUTOTHETA, PROPHET)


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


def _prophet(history: np.ndarray, start_hour: int, horizon: int, full_length: int) -> np.ndarray:
    n = len(history)
    model = _prophet_class()(
        daily_seasonality=full_length >= 2 * DAY,
        weekly_seasonality=full_length >= 2 * WEEK,
        yearly_seasonality=False,
        # One candidate changepoint per day keeps fits fast and short series from overfitting.
        n_changepoints=min(int(np.clip(full_length // DAY, 3, 25)), max(n - 2, 0)),
        uncertainty_samples=0,
        mcmc_samples=0,
    )
    model.fit(pd.DataFrame({"ds": _hours_to_ds(start_hour, n), "y": history}))
    future = pd.DataFrame({"ds": _hours_to_ds(start_hour + n, horizon)})
    return model.predict(future)["yhat"].to_numpy()


def _statsforecast(model: str, history: np.ndarray, horizon: int) -> np.ndarray:
    from statsforecast.models import MSTL as MSTLModel
    from statsforecast.models import AutoETS, AutoTheta

    build: dict[str, Callable[[], Any]] = {
        AUTOETS: lambda: AutoETS(season_length=DAY),
        # The weekly season only once two weeks are seen.
        MSTL: lambda: MSTLModel(season_length=[DAY, WEEK] if len(history) >= 2 * WEEK else DAY),
        AUTOTHETA: lambda: AutoTheta(season_length=DAY),
    }
    return np.asarray(build[model]().forecast(y=history, h=horizon)["mean"], dtype=float)


def slow_forecast(
    model: str, history: np.ndarray, start_hour: int, horizon: int, full_length: int
) -> np.ndarray:
    """`model`'s point forecast of the `horizon` hours after gap-free `history` (starting at
    `start_hour`, epoch hours UTC; `full_length` hours is the whole series' length)."""
    with warnings.catch_warnings():
        # Numerical warnings inside the models (e.g. statsmodels' autocorrelation of a flat
        # stretch); a fit that really fails raises, and its backtest shows a bad forecast.
        warnings.simplefilter("ignore", RuntimeWarning)
        if model == PROPHET:
            return _prophet(history, start_hour, horizon, full_length)
        return _statsforecast(model, history, horizon)


def slow_backtest(
    models: Sequence[str], filled: np.ndarray, start_hour: int, cutoffs: Sequence[int], horizon: int
) -> dict[str, np.ndarray]:
    """Per model, (origins + 1, horizon): its forecast at each origin, then from the full
    history; all NaN for a model that failed on this series (it is then not a candidate)."""
    out = {}
    for model in models:
        try:
            out[model] = np.stack(
                [
                    slow_forecast(model, filled[:c], start_hour, horizon, len(filled))
                    for c in (*cutoffs, len(filled))
                ]
            )
        # statsforecast raises a bare Exception ("no model able to be fitted"), so any error
        # of a model's own code takes that model out of this series' race.
        except Exception as error:
            logging.getLogger(__name__).warning(
                "forecast model %s failed on a series of %d hours: %s", model, len(filled), error
            )
            out[model] = np.full((len(cutoffs) + 1, horizon), np.nan)
    return out
