"""Instance prices from a CSV price list (source type `csv_prices`), e.g. a colo's fixed rates.

Columns (header row required, extra columns ignored, order free):

- `timestamp`: when the price took effect; ISO 8601 (offset or `Z`; none means UTC) or
  unix seconds.
- `region`: the provider region the price applies to.
- `instance_type`: the provider's name for the machine size.
- `price`: currency units per instance-hour, a finite number ≥ 0.
- `cpu_per_instance`: cores in one instance, > 0 (turns prices into price per cpu-hour).
- `zone` (optional): availability zone; empty or absent means the region itself.
- `product` (optional): product or OS description; empty or absent means `params.product`
  (default `list-price`).
- `mem_gb_per_instance` (optional): GiB of memory in one instance, > 0 (price per GiB-hour).

One request: the source `url` itself. Rows that fail a check, and repeats of a
(zone, instance_type, product, timestamp), go to quarantine.
"""

from __future__ import annotations

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from skyshard.config.providers import Source
from skyshard.sources.base import FetchRequest, Parsed, Window
from skyshard.sources.frames import (
    finite_numbers,
    parse_params,
    parse_timestamps,
    read_csv_strings,
)
from skyshard.sources.prices import price_rows

COLUMNS = ("timestamp", "region", "instance_type", "price", "cpu_per_instance")


class CsvPricesParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    product: str = Field(default="list-price", min_length=1)
    token_env: str | None = None


class CsvPricesAdapter:
    """Source type `csv_prices`."""

    type = "csv_prices"
    tables = ("prices",)
    params_model = CsvPricesParams

    def requests(self, source: Source, window: Window) -> list[FetchRequest]:
        parse_params(CsvPricesParams, source.id, source.url, source.params)
        return [FetchRequest("prices", source.url)]

    def parse(
        self, request: FetchRequest, payload: bytes, source: Source, provider_id: str
    ) -> Parsed:
        params = parse_params(CsvPricesParams, source.id, source.url, source.params)
        text = read_csv_strings(payload, source.id, request.url, COLUMNS)
        optional = {
            name: pl.col(name).str.strip_chars().replace("", None)
            if name in text.columns
            else pl.lit(None, pl.String)
            for name in ("zone", "product")
        }
        mem_text = (
            text["mem_gb_per_instance"]
            if "mem_gb_per_instance" in text.columns
            else pl.Series([None] * text.height, dtype=pl.String)
        )
        typed = text.with_columns(
            ts=parse_timestamps(text["timestamp"]),
            region_name=pl.col("region").str.strip_chars().replace("", None),
            type_name=pl.col("instance_type").str.strip_chars().replace("", None),
            price_value=finite_numbers(text["price"]),
            cpu=finite_numbers(text["cpu_per_instance"]),
            mem=finite_numbers(mem_text).fill_null(
                pl.when(mem_text.str.strip_chars().replace("", None).is_null())
                .then(None)
                # present but not a number: fails the "positive finite number" check
                .otherwise(-1.0)
            ),
        ).with_columns(
            zone_name=optional["zone"].fill_null(pl.col("region_name")),
            product_name=optional["product"].fill_null(pl.lit(params.product)),
            _cpu_problem=pl.lit("cpu_per_instance is not a finite number"),
        )
        return price_rows(typed, provider_id)
