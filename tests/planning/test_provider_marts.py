"""Provider facts from the marts in a real DuckDB file: None (or list prices) before dbt has
built them, the observed values after."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

from skyshard import db
from skyshard.config import load_sky
from skyshard.scoring.provider_marts import daily_availability, settlement_prices

EXAMPLE = load_sky(Path(__file__).resolve().parents[2] / "config")
MONTHS = [date(2026, 10, 1), date(2026, 11, 1)]


def test_before_the_marts_exist_settlement_charges_list_prices(tmp_path):
    with db.connect(tmp_path / "m.duckdb") as con:
        assert daily_availability(con) is None
        prices = settlement_prices(con, EXAMPLE.providers, MONTHS)
    assert len(prices) == len(EXAMPLE.providers) * len(MONTHS)
    first = EXAMPLE.providers[0]
    assert prices[first.id, MONTHS[1]] == first.contract.price_per_cpu_hour


def test_observed_prices_are_monthly_means(tmp_path):
    with db.connect(tmp_path / "m.duckdb") as con:
        con.execute("CREATE SCHEMA marts")
        con.execute(
            "CREATE TABLE marts.fct_provider_price_hourly (provider_id VARCHAR, hour TIMESTAMP, "
            "price_per_cpu_hour DOUBLE)"
        )
        con.executemany(
            "INSERT INTO marts.fct_provider_price_hourly VALUES (?, ?, ?)",
            [
                ("p1", datetime(2026, 11, 2, 1), 0.10),
                ("p1", datetime(2026, 11, 30, 23), 0.30),
                ("p1", datetime(2026, 10, 5), 0.05),
            ],
        )
        con.execute(
            "CREATE TABLE marts.fct_provider_incidents AS "
            "SELECT 'p1' AS provider_id, DATE '2026-11-02' AS day, 0.99::DOUBLE AS availability"
        )
        prices = settlement_prices(con, EXAMPLE.providers, MONTHS)
        availability = daily_availability(con)
    assert prices == {("p1", date(2026, 11, 1)): 0.2, ("p1", date(2026, 10, 1)): 0.05}
    assert availability.rows() == [("p1", date(2026, 11, 2), 0.99)]
