from __future__ import annotations

import polars as pl
import pytest

from skyshard.forecast.run import FORECAST_SCHEMA
from skyshard.scoring.trust_inputs import neutral_trust_scores


@pytest.fixture
def no_forecasts() -> pl.DataFrame:
    """An empty forecast table: the outlook falls back to the last observations."""
    return pl.DataFrame(schema=FORECAST_SCHEMA)


@pytest.fixture
def neutral_trust() -> pl.DataFrame:
    return neutral_trust_scores(["cheap", "pricey"], 0.5)
