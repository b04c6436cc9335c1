"""EC2 spot price history as `aws ec2 describe-spot-price-history` prints it, or its CSV export.

JSON: `{"SpotPriceHistory": [{"AvailabilityZone", "InstanceType", "ProductDescription",
"SpotPrice", "Timestamp"}, ...], "NextToken": ...}` (the CLI follows NextToken itself, so a
saved capture holds the whole history; a capture with a non-empty NextToken is partial and
ingested with a warning). CSV: a header with those five column names.
The format is `params.format`, else `csv` when the url ends in `.csv`, else `json`.
"""

from __future__ import annotations

from typing import Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from skyshard.config.providers import Source
from skyshard.sources.base import FetchRequest, Parsed, PayloadError, Window, capture_format
from skyshard.sources.frames import (
    dumps,
    finite_numbers,
    load_json,
    parse_params,
    parse_timestamps,
    read_csv_strings,
    text_series,
)
from skyshard.sources.prices import InstanceType, price_rows

FIELDS = ("AvailabilityZone", "InstanceType", "ProductDescription", "SpotPrice", "Timestamp")


class SpotParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    instance_types: dict[str, InstanceType] = Field(min_length=1)
    region: str | None = Field(
        default=None, description="Region of every row; default: the zone without its letter."
    )
    format: Literal["json", "csv"] | None = None
    token_env: str | None = None


class AwsSpotPriceHistoryAdapter:
    """Source type `aws_spot_price_history`."""

    type = "aws_spot_price_history"
    tables = ("prices",)
    params_model = SpotParams

    def requests(self, source: Source, window: Window) -> list[FetchRequest]:
        parse_params(SpotParams, source.id, source.url, source.params)
        return [FetchRequest("spot_price_history", source.url)]

    def parse(
        self, request: FetchRequest, payload: bytes, source: Source, provider_id: str
    ) -> Parsed:
        params = parse_params(SpotParams, source.id, source.url, source.params)
        fmt = capture_format(params.format, request.url)
        warnings = []
        if fmt == "csv":
            text = read_csv_strings(payload, source.id, request.url, FIELDS)
        else:
            text, next_token = _json_strings(payload, source.id, request.url)
            if next_token:
                warnings.append(
                    f"{request.url}: partial capture: NextToken is set, so the history goes on "
                    "in a page this capture lacks (let the aws CLI page, or save every page)"
                )
        cpu_by_type = {name: spec.cpu for name, spec in params.instance_types.items()}
        mem_by_type = {name: spec.mem_gb for name, spec in params.instance_types.items()}
        zone = pl.col("AvailabilityZone").str.strip_chars().replace("", None)
        region = (
            pl.lit(params.region, pl.String)
            if params.region
            else zone.str.extract(r"^(.*\d)[a-z]+$").fill_null(zone)
        )
        instance_type = pl.col("InstanceType").str.strip_chars().replace("", None)
        typed = text.with_columns(
            ts=parse_timestamps(text["Timestamp"]),
            region_name=region,
            zone_name=zone,
            type_name=instance_type,
            product_name=pl.col("ProductDescription").str.strip_chars().replace("", None),
            price_value=finite_numbers(text["SpotPrice"]),
            cpu=instance_type.replace_strict(cpu_by_type, default=None, return_dtype=pl.Float64),
            mem=instance_type.replace_strict(mem_by_type, default=None, return_dtype=pl.Float64),
            _cpu_problem=pl.concat_str(
                pl.lit("instance type "),
                instance_type.fill_null(""),
                pl.lit(f" is not in params.instance_types ({', '.join(cpu_by_type)})"),
            ),
        )
        typed = typed.with_columns(
            zone_name=pl.col("zone_name").fill_null(pl.col("region_name")),
            product_name=pl.col("product_name").fill_null("unknown"),
        )
        parsed = price_rows(typed, provider_id)
        parsed.warnings.extend(warnings)
        return parsed


def _json_strings(payload: bytes, source_id: str, url: str) -> tuple[pl.DataFrame, object]:
    """The JSON entries as string columns plus `_raw` (a non-object entry has only `_raw`),
    and the answer's NextToken."""
    document = load_json(payload, source_id, url)
    entries = document.get("SpotPriceHistory") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise PayloadError(
            source_id, url, "expected an object with a 'SpotPriceHistory' list (aws ec2 JSON)"
        )
    columns = {
        name: text_series([e.get(name) if isinstance(e, dict) else None for e in entries])
        for name in FIELDS
    }
    columns["_raw"] = pl.Series([dumps(e) for e in entries], dtype=pl.String)
    return pl.DataFrame(columns), document.get("NextToken")
