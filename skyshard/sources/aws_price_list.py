"""AWS Price List offer files (source type `aws_price_list`) → on-demand instance prices.

The EC2 offer file (`https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/AmazonEC2/current/
<region>/index.json`): `{"offerCode": "AmazonEC2", "publicationDate", "products": {<sku>:
{"productFamily": "Compute Instance", "attributes": {"instanceType", "vcpu", "memory": "8 GiB",
"operatingSystem", "tenancy", "preInstalledSw", "capacitystatus", "regionCode"}}}, "terms":
{"OnDemand": {<sku>: {<term>: {"effectiveDate", "priceDimensions": {<rate>: {"unit": "Hrs",
"pricePerUnit": {"USD": "0.0960000000"}}}}}}}}`.

Kept: shared-tenancy compute instances without pre-installed software and with capacity status
`Used` (the plain on-demand price), of `params.instance_types` when given. The instance specs
come from the file itself (`vcpu`, `memory`), so no `instance_types` specs are needed. The
product is the operating system (`Linux` → `Linux/UNIX`, as spot histories name it); the
region is `regionCode` (renamed by `params.regions`); the time is the term's `effectiveDate`.
"""

from __future__ import annotations

import re

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
from skyshard.sources.prices import price_rows

PRODUCT_OF_OS = {"Linux": "Linux/UNIX"}
_MEMORY = re.compile(r"^\s*([0-9][0-9,]*(?:\.[0-9]+)?)\s*GiB\s*$")


class PriceListParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    instance_types: list[str] | None = Field(default=None, min_length=1)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    regions: dict[str, str] = Field(default_factory=dict)
    token_env: str | None = None


class AwsPriceListAdapter:
    """Source type `aws_price_list`."""

    type = "aws_price_list"
    tables = ("prices",)
    params_model = PriceListParams

    def requests(self, source: Source, window: Window) -> list[FetchRequest]:
        parse_params(PriceListParams, source.id, source.url, source.params)
        return [FetchRequest("offer", source.url)]

    def parse(
        self, request: FetchRequest, payload: bytes, source: Source, provider_id: str
    ) -> Parsed:
        params = parse_params(PriceListParams, source.id, source.url, source.params)
        document = load_json(payload, source.id, request.url)
        products = document.get("products") if isinstance(document, dict) else None
        terms = document.get("terms") if isinstance(document, dict) else None
        on_demand = terms.get("OnDemand") if isinstance(terms, dict) else None
        if not isinstance(products, dict) or not isinstance(on_demand, dict):
            raise PayloadError(
                source.id,
                request.url,
                "expected an offer file with 'products' and 'terms.OnDemand' objects",
            )
        quarantine: list[QuarantinedRow] = []
        rows: list[dict[str, object]] = []
        for sku, product in products.items():
            attributes = _instance_attributes(product, params)
            if attributes is None:
                continue
            sku_terms = on_demand.get(sku)
            if not isinstance(sku_terms, dict) or not sku_terms:
                quarantine.append(QuarantinedRow("prices", f"sku {sku} has no OnDemand term", sku))
                continue
            for term in sku_terms.values():
                price, problem = _hourly_price(term, params.currency)
                if problem:
                    quarantine.append(
                        QuarantinedRow("prices", f"sku {sku}: {problem}", dumps(term)[:1000])
                    )
                    continue
                rows.append(
                    {
                        **attributes,
                        "Timestamp": term.get("effectiveDate"),
                        "Price": price,
                        "_raw": f"sku={sku} {dumps(attributes)}",
                    }
                )
        text = pl.DataFrame(
            {
                name: text_series([row.get(name) for row in rows])
                for name in ("regionCode", "instanceType", "operatingSystem", "vcpu", "memory")
            }
            | {
                "Timestamp": text_series([row["Timestamp"] for row in rows]),
                "Price": text_series([row["Price"] for row in rows]),
                "_raw": pl.Series([row["_raw"] for row in rows], dtype=pl.String),
            }
        )
        region = pl.col("regionCode").str.strip_chars().replace("", None)
        memory = pl.col("memory").str.extract(_MEMORY.pattern).str.replace_all(",", "")
        typed = text.with_columns(
            ts=parse_timestamps(text["Timestamp"]),
            region_name=region.replace(params.regions) if params.regions else region,
            type_name=pl.col("instanceType").str.strip_chars(),
            product_name=pl.col("operatingSystem").replace(PRODUCT_OF_OS),
            price_value=finite_numbers(text["Price"]),
            cpu=finite_numbers(text["vcpu"]),
            mem=memory.cast(pl.Float64, strict=False),
            _cpu_problem=pl.format("vcpu {} is not a number", pl.col("vcpu").fill_null("(none)")),
        ).with_columns(zone_name=pl.col("region_name"))
        parsed = price_rows(typed, provider_id)
        parsed.quarantine = quarantine + parsed.quarantine
        return parsed


def _instance_attributes(product: object, params: PriceListParams) -> dict | None:
    """The attributes of a plain on-demand compute instance product, or None for the rest."""
    if not isinstance(product, dict) or product.get("productFamily") != "Compute Instance":
        return None
    attributes = product.get("attributes")
    if not isinstance(attributes, dict):
        return None
    plain = (
        attributes.get("tenancy") == "Shared"
        and attributes.get("preInstalledSw", "NA") == "NA"
        and attributes.get("capacitystatus", "Used") == "Used"
    )
    if not plain:
        return None
    if params.instance_types and attributes.get("instanceType") not in params.instance_types:
        return None
    return {
        key: attributes.get(key)
        for key in ("regionCode", "instanceType", "operatingSystem", "vcpu", "memory")
    }


def _hourly_price(term: object, currency: str) -> tuple[str | None, str | None]:
    if not isinstance(term, dict) or not isinstance(term.get("priceDimensions"), dict):
        return None, "term has no priceDimensions"
    hourly = [
        d
        for d in term["priceDimensions"].values()
        if isinstance(d, dict) and d.get("unit") == "Hrs"
    ]
    if len(hourly) != 1:
        return None, f"expected one hourly price dimension, found {len(hourly)}"
    per_unit = hourly[0].get("pricePerUnit")
    price = per_unit.get(currency) if isinstance(per_unit, dict) else None
    if price is None:
        return None, f"no {currency} price"
    return str(price), None
