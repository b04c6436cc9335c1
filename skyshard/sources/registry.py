"""Adapters by source type, as named in `providers.yaml`."""

from __future__ import annotations

from skyshard.sources.aws_spot_price_history import AwsSpotPriceHistoryAdapter
from skyshard.sources.base import Adapter
from skyshard.sources.csv_prices import CsvPricesAdapter
from skyshard.sources.csv_usage import CsvUsageAdapter
from skyshard.sources.prometheus import PrometheusAdapter
from skyshard.sources.simulated import SimulatedAdapter
from skyshard.sources.ssh_probe import SshProbeAdapter
from skyshard.sources.statuspage import StatuspageAdapter

ADAPTERS: dict[str, Adapter] = {
    "prometheus": PrometheusAdapter(),
    "statuspage": StatuspageAdapter(),
    "aws_spot_price_history": AwsSpotPriceHistoryAdapter(),
    "csv_usage": CsvUsageAdapter(),
    "csv_prices": CsvPricesAdapter(),
    "simulated": SimulatedAdapter(),
    "ssh_probe": SshProbeAdapter(),
}
