"""The settings that shape every forecast, validated once, and the model version they imply."""

from __future__ import annotations

from dataclasses import asdict, dataclass

# Bump when forecasting logic changes so that stored fingerprints no longer match and every
# series is refitted with the new code.
MODEL_VERSION = "forecast-2"


@dataclass(frozen=True)
class ForecastConfig:
    """Horizon in hours, central interval of the bounds, number of backtest cut-offs, and the
    Prophet budget: at most `prophet_max_series` series per run, screened by risk, where a
    forecast upper bound above `capacity_share` of its capacity counts as risky."""

    horizon_h: int = 24
    interval: float = 0.9
    cutoffs: int = 3
    prophet_max_series: int = 24
    capacity_share: float = 0.8

    def __post_init__(self) -> None:
        if not isinstance(self.horizon_h, int) or isinstance(self.horizon_h, bool):
            raise ValueError(f"forecast horizon_h must be an integer, got {self.horizon_h!r}")
        if self.horizon_h < 1:
            raise ValueError(f"forecast horizon_h must be at least 1 hour, got {self.horizon_h}")
        if not 0.0 < float(self.interval) < 1.0:
            raise ValueError(f"forecast interval must be in (0, 1), got {self.interval!r}")
        if not isinstance(self.cutoffs, int) or isinstance(self.cutoffs, bool):
            raise ValueError(f"forecast cutoffs must be an integer, got {self.cutoffs!r}")
        if self.cutoffs < 1:
            raise ValueError(f"forecast cutoffs must be at least 1, got {self.cutoffs}")
        budget = self.prophet_max_series
        if not isinstance(budget, int) or isinstance(budget, bool) or budget < 0:
            raise ValueError(f"forecast prophet_max_series must be an integer >= 0, got {budget!r}")
        if not 0.0 < float(self.capacity_share) <= 1.0:
            raise ValueError(
                f"forecast capacity_share must be in (0, 1], got {self.capacity_share!r}"
            )

    def as_key(self) -> str:
        """A canonical text form, part of every input fingerprint."""
        fields = asdict(self)
        return MODEL_VERSION + ";" + ";".join(f"{k}={fields[k]!r}" for k in sorted(fields))
