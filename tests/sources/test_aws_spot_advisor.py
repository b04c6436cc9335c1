"""AWS Spot Advisor data, written from the shape of spot-advisor-data.json."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skyshard.sources.aws_spot_advisor import AwsSpotAdvisorAdapter
from skyshard.sources.base import FetchRequest, PayloadError
from tests.sources.conftest import make_source

ADAPTER = AwsSpotAdvisorAdapter()
RANGES = [
    {"index": 0, "label": "<5%", "dots": 0, "max": 5},
    {"index": 1, "label": "5-10%", "dots": 1, "max": 11},
    {"index": 2, "label": "10-15%", "dots": 2, "max": 16},
    {"index": 3, "label": "15-20%", "dots": 3, "max": 22},
    {"index": 4, "label": ">20%", "dots": 4, "max": 100},
]
DATA = {
    "global_rate": "<10%",
    "instance_types": {
        "m5.large": {"emr": True, "cores": 2, "ram_gb": 8.0},
        "c5.2xlarge": {"emr": True, "cores": 8, "ram_gb": 16.0},
    },
    "ranges": RANGES,
    "spot_advisor": {
        "us-east-1": {
            "Linux": {"m5.large": {"s": 70, "r": 1}, "c5.2xlarge": {"s": 62, "r": 4}},
            "Windows": {"m5.large": {"s": 45, "r": 0}},
        },
        "eu-west-1": {"Linux": {"m5.large": {"s": 68, "r": 0}}},
    },
}


def parse(document, **params):
    payload = document if isinstance(document, bytes) else orjson.dumps(document)
    source = make_source("aws_spot_advisor", "file:///c/spot-advisor-data.json", **params)
    return ADAPTER.parse(FetchRequest("spot_advisor", source.url), payload, source, "aws-use1")


def test_bands_become_monthly_interruption_rates():
    parsed = parse(DATA, regions={"us-east-1": "us-east-1"})
    rows = parsed.frames["spot_interruption"].select(
        "region", "instance_type", "product", "band", "interruption_pct", "savings_pct"
    )
    assert sorted(rows.rows()) == [
        ("us-east-1", "c5.2xlarge", "Linux", ">20%", 27.0, 62.0),
        ("us-east-1", "m5.large", "Linux", "5-10%", 8.0, 70.0),
    ]


def test_products_and_types_filter():
    parsed = parse(DATA, products=["Windows", "Linux"], instance_types=["m5.large"])
    rows = parsed.frames["spot_interruption"].select("region", "product", "interruption_pct")
    assert sorted(rows.rows()) == [
        ("eu-west-1", "Linux", 2.5),
        ("us-east-1", "Linux", 8.0),
        ("us-east-1", "Windows", 2.5),
    ]


def test_bad_advice_is_quarantined():
    document = {
        "ranges": RANGES,
        "spot_advisor": {
            "us-east-1": {
                "Linux": {
                    "a": {"s": 70, "r": 9},
                    "b": {"s": 170, "r": 1},
                    "c": {"s": True, "r": 1},
                    "d": "junk",
                }
            }
        },
    }
    parsed = parse(document)
    assert parsed.frames["spot_interruption"].height == 0
    assert [q.reason for q in parsed.quarantine] == [
        "interruption range 'r' 9 is not one of [0, 1, 2, 3, 4]",
        "savings 's' 170 is not a percentage",
        "savings 's' True is not a percentage",
        "advice is not an object",
    ]
    assert parsed.quarantine[0].raw_value.startswith("us-east-1/Linux/a: ")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"ranges": RANGES}, "'spot_advisor'"),
        ({"spot_advisor": {}, "ranges": []}, "'ranges'"),
        ({"spot_advisor": {}, "ranges": [{"index": 0, "max": "5"}]}, "'max'"),
        (b"\xff\xfe{", "utf-16 byte-order mark"),
    ],
)
def test_unusable_documents(document, message):
    with pytest.raises(PayloadError, match=message):
        parse(document)


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["us-east-1", "x"]),
        st.dictionaries(
            st.sampled_from(["Linux", "Windows"]),
            st.dictionaries(
                st.text(max_size=5),
                st.fixed_dictionaries(
                    {
                        "s": st.integers(-5, 200) | st.floats() | st.none(),
                        "r": st.integers(-1, 6) | st.text(max_size=2),
                    }
                )
                | st.integers(-(2**63), 2**63 - 1),
                max_size=3,
            )
            | st.none(),
        ),
    ),
    st.integers(0, 20),
)
def test_fuzzed_documents_never_raise_anything_but_payload_errors(advisor, cut):
    payload = orjson.dumps({"ranges": RANGES, "spot_advisor": advisor})
    for candidate in (payload, payload[: len(payload) - cut]):
        try:
            parsed = parse(candidate)
        except PayloadError:
            continue
        pct = parsed.frames["spot_interruption"]["interruption_pct"]
        assert ((pct >= 0) & (pct <= 100)).all()
