"""AWS Price List EC2 offer files, written from the offer file's documented structure."""

from __future__ import annotations

import datetime as dt

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skyshard.sources.aws_price_list import AwsPriceListAdapter
from skyshard.sources.base import FetchRequest, PayloadError
from tests.sources.conftest import make_source

ADAPTER = AwsPriceListAdapter()


def product(sku: str, itype: str, os_name: str = "Linux", **attributes) -> dict:
    return {
        "sku": sku,
        "productFamily": "Compute Instance",
        "attributes": {
            "servicecode": "AmazonEC2",
            "location": "US East (N. Virginia)",
            "regionCode": "us-east-1",
            "instanceType": itype,
            "vcpu": {"m5.large": "2", "c5.2xlarge": "8"}.get(itype, "4"),
            "memory": {"m5.large": "8 GiB", "c5.2xlarge": "16 GiB"}.get(itype, "1,024 GiB"),
            "operatingSystem": os_name,
            "tenancy": "Shared",
            "preInstalledSw": "NA",
            "licenseModel": "No License required",
            "capacitystatus": "Used",
            **attributes,
        },
    }


def term(sku: str, usd: str, unit: str = "Hrs") -> dict:
    """`terms.OnDemand` entry of one sku: {sku: {term code: term}}."""
    return {
        sku: {
            f"{sku}.JRTCKXETXF": {
                "offerTermCode": "JRTCKXETXF",
                "sku": sku,
                "effectiveDate": "2026-11-01T00:00:00Z",
                "priceDimensions": {
                    f"{sku}.JRTCKXETXF.6YS6EN2CT7": {
                        "unit": unit,
                        "pricePerUnit": {"USD": usd},
                        "description": "$0.096 per On Demand Linux m5.large Instance Hour",
                    }
                },
                "termAttributes": {},
            }
        }
    }


def offer(products: dict, on_demand: dict) -> bytes:
    return orjson.dumps(
        {
            "formatVersion": "v1.0",
            "offerCode": "AmazonEC2",
            "version": "20261101000000",
            "publicationDate": "2026-11-01T00:00:00Z",
            "products": products,
            "terms": {"OnDemand": on_demand, "Reserved": {}},
        }
    )


def parse(payload: bytes, **params):
    source = make_source("aws_price_list", "file:///c/index.json", **params)
    return ADAPTER.parse(FetchRequest("offer", source.url), payload, source, "aws-use1")


def test_plain_on_demand_instances_with_specs_from_the_file():
    products = {
        "A": product("A", "m5.large"),
        "B": product("B", "m5.large", "Windows"),
        "C": product("C", "m5.large", tenancy="Dedicated"),
        "D": product("D", "m5.large", capacitystatus="UnusedCapacityReservation"),
        "E": {"sku": "E", "productFamily": "Storage", "attributes": {}},
        "F": product("F", "c5.2xlarge"),
    }
    on_demand = {**term("A", "0.0960000000"), **term("B", "0.1880000000"), **term("F", "0.34")}
    parsed = parse(offer(products, on_demand))
    frame = parsed.frames["prices"].sort("instance_type", "product")
    assert frame.select(
        "region",
        "instance_type",
        "product",
        "ts",
        "price",
        "cpu_per_instance",
        "mem_gb_per_instance",
    ).rows() == [
        ("us-east-1", "c5.2xlarge", "Linux/UNIX", dt.datetime(2026, 11, 1), 0.34, 8.0, 16.0),
        ("us-east-1", "m5.large", "Linux/UNIX", dt.datetime(2026, 11, 1), 0.096, 2.0, 8.0),
        ("us-east-1", "m5.large", "Windows", dt.datetime(2026, 11, 1), 0.188, 2.0, 8.0),
    ]
    assert parsed.quarantine == []


def test_bad_products_and_terms_are_quarantined():
    products = {
        "A": product("A", "m5.large"),
        "B": product("B", "m5.large", vcpu="many"),
        "C": product("C", "c5.2xlarge", memory="lots"),
        "D": product("D", "m5.large"),
        "E": product("E", "m5.large"),
    }
    on_demand = {**term("A", "0.096"), **term("B", "0.1"), **term("C", "0.1"), **term("E", "NaN")}
    parsed = parse(offer(products, on_demand), instance_types=["m5.large", "c5.2xlarge"])
    assert parsed.frames["prices"].height == 2  # A, and C without memory (mem stays NULL)
    reasons = sorted(q.reason for q in parsed.quarantine)
    assert reasons == [
        "price is not a finite number",
        "sku D has no OnDemand term",
        "vcpu many is not a number",
    ]


@pytest.mark.parametrize("payload", [b"{}", b'{"products": {}, "terms": []}', b"[", b"null"])
def test_unusable_offer_files(payload):
    with pytest.raises(PayloadError, match=r"offer file|JSON"):
        parse(payload)


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["A", "B"]),
        st.sampled_from([product("A", "m5.large")])
        | st.fixed_dictionaries(
            {
                "productFamily": st.just("Compute Instance"),
                "attributes": st.dictionaries(
                    st.sampled_from(["vcpu", "memory", "tenancy", "instanceType"]),
                    st.text(max_size=5) | st.integers(-(2**63), 2**63 - 1) | st.none(),
                ),
            }
        ),
    ),
    st.sampled_from(["0.1", "NaN", "-1", "1e308", ""]),
    st.integers(0, 30),
)
def test_fuzzed_offer_files_never_raise_anything_but_payload_errors(products, usd, cut):
    payload = offer(products, {**term("A", usd), **term("B", usd)})
    for candidate in (payload, payload[: len(payload) - cut]):
        try:
            parsed = parse(candidate)
        except PayloadError:
            continue
        prices = parsed.frames["prices"]["price"]
        assert prices.is_finite().all() and (prices >= 0).all()
