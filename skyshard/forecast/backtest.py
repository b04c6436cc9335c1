"""Rolling-origin backtest: refit each model at several cut-offs, forecast the next horizon and
score it against the observed hours (MASE, MAPE, interval coverage).

Cut-offs sit one horizon apart, the last one a horizon before the end of the series, each
keeping at least `min_train` hours of training data. Models train on the gap-filled series;
scores use observed hours only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from skyshard.forecast.bounds import Band, blend
from skyshard.forecast.metrics import coverage, mae, mape, mase, mase_scale

Forecaster = Callable[[np.ndarray], Band]  # gap-free training values -> band over the horizon


@dataclass(frozen=True)
class Scores:
    mase: float | None
    mape: float | None
    coverage: float | None
    mae: float | None
    n_points: int


@dataclass(frozen=True)
class Fold:
    """One cut-off: training length, the observed values that followed, each model's band."""

    cutoff: int  # number of training hours; the forecast starts at this index
    actual: np.ndarray
    scale: float | None  # MASE denominator from the training part
    bands: Mapping[str, Band]

    def scores(self, model: str) -> Scores:
        band = self.bands[model]
        return Scores(
            mase=mase(self.actual, band.yhat, self.scale),
            mape=mape(self.actual, band.yhat),
            coverage=coverage(self.actual, band.lower, band.upper),
            mae=mae(self.actual, band.yhat),
            n_points=int(np.isfinite(self.actual).sum()),
        )


def rolling_cutoffs(n_hours: int, horizon: int, count: int, min_train: int) -> list[int]:
    """Training lengths of up to `count` cut-offs spaced by `horizon`, oldest first."""
    candidates = (n_hours - k * horizon for k in range(count, 0, -1))
    return [c for c in candidates if c >= min_train]


def run_folds(
    observed: np.ndarray,
    filled: np.ndarray,
    forecasters: Mapping[str, Forecaster],
    horizon: int,
    season: int,
    cutoffs: list[int],
) -> list[Fold]:
    """Fit every forecaster at every cut-off."""
    return [
        Fold(
            cutoff=c,
            actual=observed[c : c + horizon],
            scale=mase_scale(observed[:c], season),
            bands={name: forecast(filled[:c]) for name, forecast in forecasters.items()},
        )
        for c in cutoffs
    ]


def with_blend(folds: list[Fold], name: str, first: str, second: str, weight: float) -> list[Fold]:
    """The folds with one more band, `name`: `weight` × `first` + (1 − weight) × `second`."""
    return [
        Fold(
            cutoff=f.cutoff,
            actual=f.actual,
            scale=f.scale,
            bands={**f.bands, name: blend(f.bands[first], f.bands[second], weight)},
        )
        for f in folds
    ]


def mean_mase(folds: list[Fold], model: str) -> float | None:
    """Mean MASE over the folds where it is defined (the same folds for every model)."""
    values = [s.mase for s in (f.scores(model) for f in folds) if s.mase is not None]
    return float(np.mean(values)) if values else None
