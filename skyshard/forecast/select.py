"""Per-series model choice among Prophet, the seasonal-naive baseline and their blend.

Each model's backtest error is its mean MASE over the cut-offs (mean MAE where MASE is
undefined, e.g. a perfectly periodic training window). The blend weights the two models
inversely to their errors. A challenger replaces the baseline only when strictly better, so
the chosen error is never above the baseline's, and neither is the median over series.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from skyshard.forecast.backtest import Fold, mean_mase, with_blend

BASELINE = "seasonal_naive"
PROPHET = "prophet"
BLEND = "blend"


@dataclass(frozen=True)
class Selection:
    model: str
    blend_weight_prophet: float
    errors: dict[str, float]
    metric: str  # "mase" or "mae"
    folds: list[Fold]  # including the blend's bands


def backtest_error(folds: list[Fold], model: str) -> tuple[float, str]:
    """The error a model is selected on, and which metric it is."""
    error = mean_mase(folds, model)
    if error is not None:
        return error, "mase"
    maes = [s.mae for s in (f.scores(model) for f in folds) if s.mae is not None]
    return (float(np.mean(maes)) if maes else float("inf")), "mae"


def inverse_error_weight(error_first: float, error_second: float) -> float:
    """Weight of the first model when weights are inversely proportional to error."""
    if error_first == 0.0:
        return 1.0
    if error_second == 0.0:
        return 0.0
    inverse_first, inverse_second = 1.0 / error_first, 1.0 / error_second
    return inverse_first / (inverse_first + inverse_second)


def choose_model(folds: list[Fold]) -> Selection:
    """Pick the model with the lowest backtest error; the baseline wins ties."""
    baseline_error, metric = backtest_error(folds, BASELINE)
    prophet_error, _ = backtest_error(folds, PROPHET)
    weight = inverse_error_weight(prophet_error, baseline_error)
    folds = with_blend(folds, BLEND, PROPHET, BASELINE, weight)
    errors = {
        BASELINE: baseline_error,
        PROPHET: prophet_error,
        BLEND: backtest_error(folds, BLEND)[0],
    }
    chosen = BASELINE
    for challenger in (PROPHET, BLEND):
        if errors[challenger] < errors[chosen]:
            chosen = challenger
    return Selection(chosen, weight, errors, metric, folds)
