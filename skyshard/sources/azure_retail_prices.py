"""Azure Retail Prices API answers (source type `azure_retail_prices`) → instance prices.

`GET https://prices.azure.com/api/retail/prices?$filter=...` answers
`{"BillingCurrency", "Items": [{"armRegionName", "armSkuName", "productName", "skuName",
"serviceName", "type", "unitOfMeasure", "retailPrice", "effectiveStartDate", ...}],
"NextPageLink", "Count"}` with 100 items a page; ingest follows `NextPageLink` over HTTP (only
to the same host). A saved page whose `NextPageLink` is set is ingested with a warning that
the capture is partial.

Kept: Virtual Machines items of `params.price_type` (default `Consumption`) priced per
`1 Hour` whose `armSkuName` is in `params.instance_types`; the rest of the catalog is skipped.
The product is the OS (`Windows` when `productName` ends in Windows, else `Linux/UNIX`), with
` Spot` or ` Low Priority` appended for those SKUs. The region is `armRegionName`, renamed by
`params.regions` when given; Azure prices per region, so the zone is the region.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from skyshard.config.providers import Source
from skyshard.sources.base import FetchRequest, Parsed, PayloadError, QuarantinedRow, Window
from skyshard.sources.frames import (
    dumps,
    finite_numbers,
    load_json,
    parse_params,
    parse_timestamps,
    text_series,
)
from skyshard.sources.prices import InstanceType, price_rows

FIELDS = (
    "armRegionName",
    "armSkuName",
    "productName",
    "skuName",
    "serviceName",
    "type",
    "unitOfMeasure",
    "retailPrice",
    "effectiveStartDate",
)


class AzureRetailParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    instance_types: dict[str, InstanceType] = Field(min_length=1)
    price_type: str = "Consumption"
    regions: dict[str, str] = Field(
        default_factory=dict, description="armRegionName → the provider's region name."
    )
    token_env: str | None = None


class AzureRetailPricesAdapter:
    """Source type `azure_retail_prices`."""

    type = "azure_retail_prices"
    tables = ("prices",)
    params_model = AzureRetailParams

    def requests(self, source: Source, window: Window) -> list[FetchRequest]:
        parse_params(AzureRetailParams, source.id, source.url, source.params)
        return [FetchRequest("retail_prices", source.url)]

    def parse(
        self, request: FetchRequest, payload: bytes, source: Source, provider_id: str
    ) -> Parsed:
        params = parse_params(AzureRetailParams, source.id, source.url, source.params)
        document = load_json(payload, source.id, request.url)
        items = document.get("Items") if isinstance(document, dict) else None
        if not isinstance(items, list):
            raise PayloadError(
                source.id, request.url, "expected an object with an 'Items' list (Azure Retail)"
            )
        text = pl.DataFrame(
            {
                **{
                    name: text_series([i.get(name) if isinstance(i, dict) else None for i in items])
                    for name in FIELDS
                },
                "_raw": pl.Series([dumps(i) for i in items], dtype=pl.String),
            }
        )
        sku = pl.col("armSkuName").str.strip_chars()
        wanted = text.filter(
            (pl.col("serviceName") == "Virtual Machines")
            & (pl.col("type") == params.price_type)
            & (pl.col("unitOfMeasure") == "1 Hour")
            & sku.is_in(list(params.instance_types))
        )
        # Items that are not objects or lack the fields that select them are bad rows.
        unselectable = text.filter(
            pl.col("serviceName").is_null()
            | pl.col("type").is_null()
            | pl.col("armSkuName").is_null()
        )
        cpu = {name: spec.cpu for name, spec in params.instance_types.items()}
        mem = {name: spec.mem_gb for name, spec in params.instance_types.items()}
        region = pl.col("armRegionName").str.strip_chars().replace("", None)
        os_name = (
            pl.when(pl.col("productName").str.ends_with("Windows"))
            .then(pl.lit("Windows"))
            .otherwise(pl.lit("Linux/UNIX"))
        )
        suffix = (
            pl.when(pl.col("skuName").str.ends_with(" Spot"))
            .then(pl.lit(" Spot"))
            .when(pl.col("skuName").str.ends_with(" Low Priority"))
            .then(pl.lit(" Low Priority"))
            .otherwise(pl.lit(""))
        )
        typed = wanted.with_columns(
            ts=parse_timestamps(wanted["effectiveStartDate"]),
            region_name=region.replace(params.regions) if params.regions else region,
            type_name=sku,
            product_name=pl.concat_str(os_name, suffix),
            price_value=finite_numbers(wanted["retailPrice"]),
            cpu=sku.replace_strict(cpu, default=None, return_dtype=pl.Float64),
            mem=sku.replace_strict(mem, default=None, return_dtype=pl.Float64),
            _cpu_problem=pl.lit("instance type has no cpu in params.instance_types"),
        ).with_columns(zone_name=pl.col("region_name"))
        parsed = price_rows(typed, provider_id)
        parsed.quarantine += [
            QuarantinedRow("prices", "item lacks serviceName, type or armSkuName", raw)
            for raw in unselectable["_raw"].to_list()
        ]
        parsed.next_request, warning = _next_page(document.get("NextPageLink"), request, source)
        parsed.warnings += [warning] if warning else []
        return parsed


def _next_page(
    link: object, request: FetchRequest, source: Source
) -> tuple[FetchRequest | None, str | None]:
    """The next page to fetch, or a warning why the capture stays partial."""
    if link in (None, ""):
        return None, None
    here = urlsplit(request.url)
    if here.scheme == "file":
        return None, f"{request.url}: partial capture: NextPageLink is set ({link})"
    there = urlsplit(str(link))
    if (there.scheme, there.hostname) != (here.scheme, here.hostname):
        raise PayloadError(
            source.id, request.url, f"NextPageLink {link!r} leaves {here.scheme}://{here.hostname}"
        )
    return FetchRequest(request.name, str(link)), None
