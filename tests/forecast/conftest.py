from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest

START = datetime(2026, 11, 1, tzinfo=UTC)


def series_frame(values_by_id: dict[str, np.ndarray], start: datetime = START) -> pl.DataFrame:
    """The forecast input frame for hourly values starting at `start` (NaN = missing hour)."""
    parts = []
    for series_id, values in values_by_id.items():
        n = len(values)
        parts.append(
            pl.DataFrame(
                {
                    "series_id": [series_id] * n,
                    "ts": pl.datetime_range(start, start + (n - 1) * HOUR, "1h", eager=True),
                    "value": np.asarray(values, dtype=float),
                }
            )
        )
    return pl.concat(parts)


HOUR = datetime(2026, 1, 1, 1) - datetime(2026, 1, 1, 0)


@pytest.fixture
def make_frame():
    return series_frame
