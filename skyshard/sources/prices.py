"""Checks and output shared by the price sources (`csv_prices`, `aws_spot_price_history`)."""

from __future__ import annotations

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from skyshard.sources.base import Parsed
from skyshard.sources.frames import split_rows, table_frame


class InstanceType(BaseModel):
    """Specs of one instance type, as a price source's `params.instance_types` lists them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cpu: float = Field(gt=0)
    mem_gb: float | None = Field(default=None, gt=0, description="GiB per instance.")


def price_rows(typed: pl.DataFrame, provider_id: str) -> Parsed:
    """Raw price rows from typed columns, bad ones quarantined with their reason.

    Expects `ts`, `region_name`, `zone_name`, `type_name`, `product_name`, `price_value`,
    `cpu`, `mem` (GiB, null when unknown), `_raw`, and `_cpu_problem`: the reason to give
    where `cpu` is null.
    """
    good, quarantine = split_rows(
        typed,
        [
            (pl.col("ts").is_null(), "timestamp is not ISO 8601 or unix seconds"),
            (pl.col("region_name").is_null(), "region is empty"),
            (pl.col("type_name").is_null(), "instance type is empty"),
            (pl.col("price_value").is_null(), "price is not a finite number"),
            (pl.col("price_value") < 0, "price is negative"),
            (pl.col("cpu").is_null(), pl.col("_cpu_problem")),
            (pl.col("cpu") <= 0, "cpu_per_instance is not positive"),
            (pl.col("mem") <= 0, "mem_gb_per_instance is not a positive finite number"),
            (
                ~pl.struct("zone_name", "type_name", "product_name", "ts").is_first_distinct(),
                "repeats an earlier row's zone, instance type, product and timestamp",
            ),
        ],
        "prices",
    )
    frame = good.select(
        pl.lit(provider_id, pl.String).alias("provider_id"),
        pl.col("region_name").alias("region"),
        pl.col("zone_name").alias("zone"),
        pl.col("type_name").alias("instance_type"),
        pl.col("product_name").alias("product"),
        "ts",
        pl.col("price_value").alias("price"),
        pl.col("cpu").alias("cpu_per_instance"),
        pl.col("mem").alias("mem_gb_per_instance"),
    )
    return Parsed(frames={"prices": table_frame("prices", frame.to_dict())}, quarantine=quarantine)
