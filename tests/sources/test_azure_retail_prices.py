"""Azure Retail Prices answers, written from the API's documented response shape."""

from __future__ import annotations

import datetime as dt

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skyshard.sources.azure_retail_prices import AzureRetailPricesAdapter
from skyshard.sources.base import FetchRequest, PayloadError
from skyshard.sources.ingest import collect_source
from tests.sources.conftest import WINDOW, make_source

ADAPTER = AzureRetailPricesAdapter()
TYPES = {"Standard_D2s_v3": {"cpu": 2, "mem_gb": 8}, "Standard_D4s_v3": {"cpu": 4, "mem_gb": 16}}
ITEM = {
    "currencyCode": "USD",
    "tierMinimumUnits": 0.0,
    "retailPrice": 0.096,
    "unitPrice": 0.096,
    "armRegionName": "westeurope",
    "location": "EU West",
    "effectiveStartDate": "2020-06-01T00:00:00Z",
    "meterId": "00000000-0000-0000-0000-000000000001",
    "meterName": "D2s v3",
    "productId": "DZH318Z0BQ4T",
    "skuId": "DZH318Z0BQ4T/00H3",
    "productName": "Virtual Machines DSv3 Series",
    "skuName": "D2s v3",
    "serviceName": "Virtual Machines",
    "serviceId": "DZH313Z7MMC8",
    "serviceFamily": "Compute",
    "unitOfMeasure": "1 Hour",
    "type": "Consumption",
    "isPrimaryMeterRegion": True,
    "armSkuName": "Standard_D2s_v3",
}


def page(items: list, next_link: str | None = None) -> bytes:
    return orjson.dumps(
        {
            "BillingCurrency": "USD",
            "CustomerEntityId": "Default",
            "CustomerEntityType": "Retail",
            "Items": items,
            "NextPageLink": next_link,
            "Count": len(items),
        }
    )


def parse(payload: bytes, url: str = "file:///c/azure.json", **params):
    source = make_source("azure_retail_prices", url, instance_types=TYPES, **params)
    return ADAPTER.parse(FetchRequest("retail_prices", url), payload, source, "azure")


def test_vm_items_become_prices_with_os_product():
    items = [
        ITEM,
        dict(ITEM, productName="Virtual Machines DSv3 Series Windows", retailPrice=0.188),
        dict(ITEM, skuName="D2s v3 Spot", retailPrice=0.0192),
        dict(ITEM, type="Reservation", retailPrice=500.0, unitOfMeasure="1 Hour"),
        dict(ITEM, serviceName="Storage", armSkuName="Standard_LRS"),
        dict(ITEM, armSkuName="Standard_M416ms_v2"),  # not configured: skipped
    ]
    parsed = parse(page(items), regions={"westeurope": "eu-west"})
    frame = parsed.frames["prices"]
    assert frame.select("product", "price").rows() == [
        ("Linux/UNIX", 0.096),
        ("Windows", 0.188),
        ("Linux/UNIX Spot", 0.0192),
    ]
    assert set(frame["region"]) == {"eu-west"} and set(frame["zone"]) == {"eu-west"}
    assert frame["ts"][0] == dt.datetime(2020, 6, 1)
    assert frame["mem_gb_per_instance"][0] == 8.0
    assert parsed.quarantine == [] and parsed.warnings == []


def test_bad_items_are_quarantined_with_reasons():
    items = [
        ITEM,
        dict(ITEM, retailPrice="NaN"),
        dict(ITEM, retailPrice=-1),
        dict(ITEM, effectiveStartDate="yesterday"),
        dict(ITEM, armSkuName=None),
        "junk",
        ITEM,
    ]
    parsed = parse(page(items))
    assert parsed.frames["prices"].height == 1
    reasons = sorted(q.reason for q in parsed.quarantine)
    assert reasons == sorted(
        [
            "price is not a finite number",
            "price is negative",
            "timestamp is not ISO 8601 or unix seconds",
            "item lacks serviceName, type or armSkuName",
            "item lacks serviceName, type or armSkuName",
            "repeats an earlier row's zone, instance type, product and timestamp",
        ]
    )


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b'{"Items": [', "not valid JSON"),
        (orjson.dumps({"items": []}), "'Items' list"),
        (orjson.dumps([ITEM]), "'Items' list"),
    ],
)
def test_unusable_answers(payload, message):
    with pytest.raises(PayloadError, match=message):
        parse(payload)


def test_saved_page_with_a_next_link_is_partial():
    parsed = parse(page([ITEM], "https://prices.azure.com:443/api/retail/prices?$skip=100"))
    assert parsed.frames["prices"].height == 1
    assert "partial capture: NextPageLink is set" in parsed.warnings[0]


def test_http_pages_are_followed(http_server):
    second = dict(ITEM, armSkuName="Standard_D4s_v3", retailPrice=0.192)
    http_server.answer(200, page([ITEM], f"{http_server.url}/api/retail/prices?$skip=100"))
    http_server.answer(200, page([second], None))
    source = make_source(
        "azure_retail_prices", f"{http_server.url}/api/retail/prices", instance_types=TYPES
    )
    collected = collect_source(source, "azure", WINDOW)
    assert collected.ok, collected.error
    assert collected.frames["prices"]["instance_type"].to_list() == [
        "Standard_D2s_v3",
        "Standard_D4s_v3",
    ]
    assert [r["path"] for r in http_server.requests] == [
        "/api/retail/prices",
        "/api/retail/prices?$skip=100",
    ]


def test_next_link_to_another_host_is_refused(http_server):
    http_server.answer(200, page([ITEM], "https://elsewhere.example/steal"))
    source = make_source("azure_retail_prices", http_server.url, instance_types=TYPES)
    collected = collect_source(source, "azure", WINDOW)
    assert "leaves http://127.0.0.1" in collected.error


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.floats()
    | st.integers(-(2**63), 2**63 - 1)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries({}, optional={k: JSON_VALUES for k in ITEM}).map(
            lambda d: {**ITEM, **d}
        )
        | JSON_VALUES,
        max_size=6,
    ),
    st.sampled_from([b"", b"\xef\xbb\xbf"]),
    st.integers(min_value=0, max_value=40),
)
def test_fuzzed_pages_never_raise_anything_but_payload_errors(items, bom, cut):
    payload = bom + page(items)
    for candidate in (payload, payload[: len(payload) - cut]):
        try:
            parsed = parse(candidate)
        except PayloadError:
            continue
        frame = parsed.frames["prices"]
        assert frame["price"].is_finite().all() and (frame["price"] >= 0).all()
        assert frame.height + len(parsed.quarantine) <= len(items)
