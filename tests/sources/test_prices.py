from __future__ import annotations

import datetime as dt

import orjson
import pytest

from skyshard.sources.aws_spot_price_history import AwsSpotPriceHistoryAdapter
from skyshard.sources.base import PayloadError
from skyshard.sources.csv_prices import CsvPricesAdapter
from tests.sources.conftest import WINDOW, make_source

SPOT = AwsSpotPriceHistoryAdapter()
TYPES = {"m5.large": {"cpu": 2, "mem_gb": 8}, "m5.xlarge": {"cpu": 4}}
ENTRY = {
    "AvailabilityZone": "us-east-1a",
    "InstanceType": "m5.large",
    "ProductDescription": "Linux/UNIX",
    "SpotPrice": "0.034100",
    "Timestamp": "2026-11-27T23:00:00+00:00",
}


def spot(payload: bytes, url="file:///c/spot.json", **params):
    source = make_source("aws_spot_price_history", url, instance_types=TYPES, **params)
    (request,) = SPOT.requests(source, WINDOW)
    return SPOT.parse(request, payload, source, "cloud-a")


def test_spot_json_rows():
    second = dict(ENTRY, InstanceType="m5.xlarge", Timestamp="2026-11-27T18:30:00-05:00")
    parsed = spot(orjson.dumps({"SpotPriceHistory": [ENTRY, second], "NextToken": ""}))
    rows = parsed.frames["prices"].rows()
    assert rows == [
        (
            "cloud-a",
            "us-east-1",
            "us-east-1a",
            "m5.large",
            "Linux/UNIX",
            dt.datetime(2026, 11, 27, 23),
            0.0341,
            2.0,
            8.0,
        ),
        (
            "cloud-a",
            "us-east-1",
            "us-east-1a",
            "m5.xlarge",
            "Linux/UNIX",
            dt.datetime(2026, 11, 27, 23, 30),
            0.0341,
            4.0,
            None,
        ),
    ]
    assert parsed.quarantine == []


def test_spot_csv_export_by_extension_and_region_param():
    csv = (
        b"AvailabilityZone,InstanceType,ProductDescription,SpotPrice,Timestamp\n"
        b"us-east-1b,m5.large,Linux/UNIX,0.0350,2026-11-27T22:00:00Z\n"
    )
    parsed = spot(csv, url="https://bucket.example/spot.csv", region="virginia")
    assert parsed.frames["prices"]["region"].to_list() == ["virginia"]
    assert parsed.frames["prices"]["price"].to_list() == [0.035]


def test_spot_bad_rows_are_quarantined():
    entries = [
        ENTRY,
        dict(ENTRY, InstanceType="p4d.24xlarge"),
        dict(ENTRY, SpotPrice="free"),
        dict(ENTRY, Timestamp="soon"),
        dict(ENTRY, Timestamp="2026-11-27T22:00:00+00:00", SpotPrice="-1"),
        "junk",
    ]
    parsed = spot(orjson.dumps({"SpotPriceHistory": entries}))
    assert parsed.frames["prices"].height == 1
    reasons = [q.reason for q in parsed.quarantine]
    assert reasons[0].startswith("instance type p4d.24xlarge is not in params.instance_types")
    assert reasons[1:] == [
        "price is not a finite number",
        "timestamp is not ISO 8601 or unix seconds",
        "price is negative",
        "timestamp is not ISO 8601 or unix seconds",
    ]
    assert "p4d.24xlarge" in parsed.quarantine[0].raw_value


@pytest.mark.parametrize(
    ("payload", "url", "message"),
    [
        (b"{", "file:///c/spot.json", "not valid JSON"),
        (orjson.dumps({"Reservations": []}), "file:///c/spot.json", "SpotPriceHistory"),
        (b"zone,price\nx,1\n", "file:///c/spot.csv", "lacks required columns"),
    ],
)
def test_spot_unusable_payloads(payload, url, message):
    with pytest.raises(PayloadError, match=message) as caught:
        spot(payload, url=url)
    assert url in str(caught.value)


def test_spot_params_are_checked():
    source = make_source(
        "aws_spot_price_history", "file:///s.json", instance_types={"m5.large": {"cpu": 0}}
    )
    with pytest.raises(PayloadError, match=r"params\.instance_types\.m5\.large\.cpu"):
        SPOT.requests(source, WINDOW)


def test_csv_prices_with_optional_columns_and_quarantine():
    adapter = CsvPricesAdapter()
    source = make_source("csv_prices", "file:///c/prices.csv")
    payload = (
        b"timestamp,region,instance_type,price,cpu_per_instance,zone\n"
        b"2026-11-27T00:00:00Z,fra-dc1,colo.small,0.10,4,\n"
        b"1795737600,fra-dc1,colo.large,0.40,16,fra-dc1-b\n"
        b"2026-11-27T00:00:00Z,fra-dc1,colo.small,0.11,4,\n"
        b"2026-11-27T00:00:00Z,,colo.small,0.10,4,\n"
        b"2026-11-27T00:00:00Z,fra-dc1,colo.tiny,0.10,0,\n"
    )
    (request,) = adapter.requests(source, WINDOW)
    parsed = adapter.parse(request, payload, source, "colo-a")
    rows = parsed.frames["prices"].to_dicts()
    assert [(r["zone"], r["product"], r["price"], r["cpu_per_instance"]) for r in rows] == [
        ("fra-dc1", "list-price", 0.10, 4.0),
        ("fra-dc1-b", "list-price", 0.40, 16.0),
    ]
    assert rows[1]["ts"] == dt.datetime(2026, 11, 27)
    assert [q.reason for q in parsed.quarantine] == [
        "repeats an earlier row's zone, instance type, product and timestamp",
        "region is empty",
        "cpu_per_instance is not positive",
    ]
    assert parsed.quarantine[0].raw_value == "2026-11-27T00:00:00Z,fra-dc1,colo.small,0.11,4"


@pytest.mark.parametrize(
    "encode",
    [
        lambda text: b"\xef\xbb\xbf" + text.encode(),
        lambda text: text.encode("utf-16"),  # PowerShell 5: `aws ... > file`
        lambda text: text.replace("\n", "\r\n").encode(),
    ],
)
def test_spot_json_saved_on_windows_parses(encode):
    text = orjson.dumps({"SpotPriceHistory": [ENTRY]}, option=orjson.OPT_INDENT_2).decode()
    parsed = spot(encode(text))
    assert parsed.frames["prices"]["price"].to_list() == [0.0341]


def test_spot_json_with_invalid_utf8_names_the_offset():
    payload = orjson.dumps({"SpotPriceHistory": [ENTRY]}).replace(b"Linux", b"L\xffnux")
    with pytest.raises(PayloadError, match=r"not UTF-8: invalid byte at offset \d+"):
        spot(payload)


def test_spot_partial_capture_warns():
    parsed = spot(orjson.dumps({"SpotPriceHistory": [ENTRY], "NextToken": "eyJ2IjoiMiJ9"}))
    assert parsed.frames["prices"].height == 1
    (warning,) = parsed.warnings
    assert "partial capture: NextToken is set" in warning
    assert spot(orjson.dumps({"SpotPriceHistory": [ENTRY], "NextToken": ""})).warnings == []
