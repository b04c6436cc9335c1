"""Hand-computed price marts: series carried forward one by one, products kept apart."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.marts.conftest import START, build_marts, query


def price(zone: str, itype: str, product: str, minutes: int, value: float) -> dict:
    cpu = {"m5.large": 2.0, "c5.2xlarge": 8.0}[itype]
    mem = {"m5.large": 8.0, "c5.2xlarge": 16.0}[itype]
    return {
        "provider_id": "aws-use1",
        "region": "us-east-1",
        "zone": zone,
        "instance_type": itype,
        "product": product,
        "ts": START + timedelta(minutes=minutes),
        "price": value,
        "cpu_per_instance": cpu,
        "mem_gb_per_instance": mem,
    }


# Spot history records changes only. m5.large Linux changes at 03:20 (0.04 → 0.05), and
# briefly to 0.09 at 03:40 inside the same hour before settling at 0.05 at 03:50; the c5
# series never changes; Windows and SUSE prices (licence surcharges) must not leak in.
PRICES = [
    price("us-east-1a", "m5.large", "Linux/UNIX", 10, 0.04),
    price("us-east-1a", "m5.large", "Linux/UNIX", 200, 0.05),
    price("us-east-1a", "m5.large", "Linux/UNIX", 220, 0.09),
    price("us-east-1a", "m5.large", "Linux/UNIX", 230, 0.05),
    price("us-east-1b", "c5.2xlarge", "Linux/UNIX", 30, 0.16),
    price("us-east-1a", "m5.large", "Windows", 15, 0.132),
    price("us-east-1a", "m5.large", "SUSE Linux", 15, 0.101),
    price("us-east-1a", "m5.large", "Windows", 300, 0.2),
]


@pytest.fixture(scope="module")
def prices_built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("marts")
    database = folder / "skyshard.duckdb"
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("SKYSHARD_DUCKDB", str(database))
        build_marts(database, {"prices": PRICES}, folder / "target")
    return database


def provider_prices(database):
    return query(
        database,
        "select hour, price_per_cpu_hour, price_per_cpu_hour_max, price_per_gb_hour, "
        "instance_series from marts.fct_provider_price_hourly "
        "where provider_id = 'aws-use1' order by hour",
    )


def test_region_price_changes_only_when_a_linux_series_did(prices_built):
    frame = provider_prices(prices_built)
    by_hour = {(row["hour"] - START).total_seconds() / 3600: row for row in frame.to_dicts()}
    # hour 0: both series priced at 0.02 per cpu-hour (0.04 / 2, 0.16 / 8)
    assert by_hour[0]["price_per_cpu_hour"] == pytest.approx(0.02)
    assert by_hour[1]["price_per_cpu_hour"] == pytest.approx(0.02)
    assert by_hour[2]["price_per_cpu_hour"] == pytest.approx(0.02)
    # hour 3: m5.large ends the hour at 0.05 → 0.025 per cpu; mean with c5's 0.02
    assert by_hour[3]["price_per_cpu_hour"] == pytest.approx(0.0225)
    assert by_hour[3]["price_per_cpu_hour_max"] == pytest.approx(0.045)  # the 0.09 blip
    # the Windows change at 05:00 moves nothing
    values = frame["price_per_cpu_hour"].to_list()
    changes = [i for i in range(1, len(values)) if values[i] != pytest.approx(values[i - 1])]
    assert changes == [3]
    assert frame.height == 72  # the whole telemetry window
    assert set(frame["instance_series"].to_list()) == {2}
    # per GiB: mean of 0.04/8 and 0.16/16, then 0.05/8 and 0.01
    assert by_hour[0]["price_per_gb_hour"] == pytest.approx((0.005 + 0.01) / 2)
    assert by_hour[4]["price_per_gb_hour"] == pytest.approx((0.00625 + 0.01) / 2)


def test_no_spike_without_a_price_change(prices_built):
    spikes = query(
        prices_built,
        "select count(*) as n from marts.fct_provider_price_hourly "
        "where provider_id = 'aws-use1' and is_spike",
    )
    assert spikes["n"][0] == 0


def test_instance_mart_keeps_each_series_and_product(prices_built):
    frame = query(
        prices_built,
        "select product, hour, price_per_instance_hour, is_observed "
        "from marts.fct_instance_price_hourly "
        "where zone = 'us-east-1a' and instance_type = 'm5.large' order by product, hour",
    )
    windows = frame.filter(frame["product"] == "Windows")
    assert windows["price_per_instance_hour"][0] == pytest.approx(0.132)
    assert windows["price_per_instance_hour"][4] == pytest.approx(0.132)
    assert windows["price_per_instance_hour"][5] == pytest.approx(0.2)
    assert windows["price_per_instance_hour"][-1] == pytest.approx(0.2)
    linux = frame.filter(frame["product"] == "Linux/UNIX")
    assert linux["is_observed"].to_list()[:5] == [True, False, False, True, False]


def test_price_products_var_selects_other_products(tmp_path, monkeypatch):
    database = tmp_path / "skyshard.duckdb"
    monkeypatch.setenv("SKYSHARD_DUCKDB", str(database))
    build_marts(
        database, {"prices": PRICES}, tmp_path / "target", dbt_vars="{price_products: [Windows]}"
    )
    frame = provider_prices(database)
    assert frame["price_per_cpu_hour"][0] == pytest.approx(0.066)
    assert frame["price_per_cpu_hour"][5] == pytest.approx(0.1)
