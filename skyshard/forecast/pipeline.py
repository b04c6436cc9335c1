"""Forecast one hourly series end to end: guard rails (no data, constant, too short), backtest
of Prophet and the baseline, model choice, and the final fit of the chosen model.

This is the path of the series screening sends to Prophet; the others take the vectorized
baseline of `batch`, which gives the same numbers as `forecast_one(..., with_prophet=False)`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from skyshard.forecast.backtest import Fold, Forecaster, mean_mase, rolling_cutoffs, run_folds
from skyshard.forecast.bounds import Band, blend
from skyshard.forecast.config import ForecastConfig
from skyshard.forecast.prophet_model import ProphetFailed, prophet_forecast, spec_for
from skyshard.forecast.seasonal_naive import season_for, seasonal_naive
from skyshard.forecast.select import BASELINE, BLEND, PROPHET, choose_model
from skyshard.forecast.series import HourlySeries

# Why a model was chosen, as written to the `reason` column.
BEST_BACKTEST = "best_backtest"
CONSTANT = "constant"
TOO_SHORT = "too_short"
PROPHET_FAILED = "prophet_failed"
NO_DATA = "no_data"
SCREENED_LOW_RISK = "screened_low_risk"


@dataclass(frozen=True)
class SeriesForecast:
    """Everything one series contributes to the forecast, backtest and summary tables."""

    series: HourlySeries
    fingerprint: str
    season: int
    model: str | None  # None only for a series without any observed value
    reason: str
    band: Band | None
    blend_weight_prophet: float | None = None
    selected_on: str | None = None
    folds: list[Fold] = field(default_factory=list)
    risk: float | None = None

    @property
    def end_hour(self) -> int:
        return self.series.start_hour + len(self.series.observed) - 1

    def mean_mase(self, model: str) -> float | None:
        if not self.folds or model not in self.folds[0].bands:
            return None
        return mean_mase(self.folds, model)

    def mean_score(self, model: str, metric: str) -> float | None:
        """Mean of `metric` ("mape" or "coverage") over the folds where it is defined."""
        if not self.folds or model not in self.folds[0].bands:
            return None
        values = [getattr(f.scores(model), metric) for f in self.folds]
        values = [v for v in values if v is not None]
        return float(np.mean(values)) if values else None


def forecast_one(
    series: HourlySeries, config: ForecastConfig, fingerprint: str, with_prophet: bool = True
) -> SeriesForecast:
    """Forecast one series; with `with_prophet=False` only the baseline runs (screened out)."""
    if series.n_observed == 0:
        return SeriesForecast(series, fingerprint, 0, None, NO_DATA, None)

    history = series.filled
    horizon, interval = config.horizon_h, config.interval
    season = season_for(len(history))

    def baseline(train: np.ndarray) -> Band:
        return seasonal_naive(train, horizon, season, interval)

    spec = spec_for(len(history))

    def prophet(train: np.ndarray) -> Band:
        return prophet_forecast(train, series.start_hour, horizon, interval, spec)

    cutoffs = rolling_cutoffs(len(history), horizon, config.cutoffs, min_train=2 * season)

    def baseline_only(reason: str) -> SeriesForecast:
        folds = run_folds(series.observed, history, {BASELINE: baseline}, horizon, season, cutoffs)
        return SeriesForecast(
            series, fingerprint, season, BASELINE, reason, baseline(history), folds=folds
        )

    observed = series.observed[np.isfinite(series.observed)]
    if observed.max() == observed.min():
        return baseline_only(CONSTANT)
    if not cutoffs:
        return baseline_only(TOO_SHORT)
    if not with_prophet:
        return baseline_only(SCREENED_LOW_RISK)

    forecasters: dict[str, Forecaster] = {BASELINE: baseline, PROPHET: prophet}
    try:
        folds = run_folds(series.observed, history, forecasters, horizon, season, cutoffs)
        selection = choose_model(folds)
        band = _final_band(selection.model, selection.blend_weight_prophet, history, forecasters)
    except ProphetFailed:
        return baseline_only(PROPHET_FAILED)
    return SeriesForecast(
        series,
        fingerprint,
        season,
        selection.model,
        BEST_BACKTEST,
        band,
        blend_weight_prophet=selection.blend_weight_prophet if selection.model == BLEND else None,
        selected_on=selection.metric,
        folds=selection.folds,
    )


def _final_band(
    model: str, weight: float, history: np.ndarray, forecasters: dict[str, Forecaster]
) -> Band:
    # Prophet is refitted on the full history only when the chosen model uses it.
    if model == BLEND:
        return blend(forecasters[PROPHET](history), forecasters[BASELINE](history), weight)
    return forecasters[model](history)
