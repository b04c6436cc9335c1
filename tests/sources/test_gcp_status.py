"""Google Cloud status incidents.json, written from the feed's published shape."""

from __future__ import annotations

import datetime as dt

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skyshard.sources.base import FetchRequest, PayloadError
from skyshard.sources.gcp_status import GcpStatusAdapter
from tests.sources.conftest import make_source

ADAPTER = GcpStatusAdapter()
INCIDENT = {
    "id": "5feV12qHeQoD3VdD8byK",
    "number": "4392948192849",
    "begin": "2026-11-26T14:05:00+00:00",
    "created": "2026-11-26T14:20:11+00:00",
    "end": "2026-11-26T15:35:00+00:00",
    "modified": "2026-11-26T16:00:00+00:00",
    "external_desc": "Elevated latency for Compute Engine API calls",
    "updates": [],
    "most_recent_update": {},
    "status_impact": "SERVICE_OUTAGE",
    "severity": "high",
    "service_key": "L3ggmi3Jy4xJmgodFA9K",
    "service_name": "Google Compute Engine",
    "affected_products": [{"title": "Google Compute Engine", "id": "L3ggmi3Jy4xJmgodFA9K"}],
    "uri": "incidents/5feV12qHeQoD3VdD8byK",
    "currently_affected_locations": [],
    "previously_affected_locations": [
        {"title": "Iowa (us-central1)", "id": "us-central1"},
        {"title": "Oregon (us-west1)", "id": "us-west1"},
    ],
}


def parse(document, **params):
    payload = document if isinstance(document, bytes) else orjson.dumps(document)
    source = make_source("gcp_status", "file:///c/incidents.json", **params)
    return ADAPTER.parse(FetchRequest("incidents", source.url), payload, source, "gcp")


def test_incidents_with_locations_as_regions():
    ongoing = dict(
        INCIDENT,
        id="open1",
        end=None,
        status_impact="SERVICE_DISRUPTION",
        currently_affected_locations=[{"title": "Global", "id": "global"}],
    )
    parsed = parse([INCIDENT, ongoing], regions={"us-west1": "oregon"})
    rows = {r["incident_id"]: r for r in parsed.frames["incidents"].to_dicts()}
    first = rows["5feV12qHeQoD3VdD8byK"]
    assert first["impact"] == "critical"
    assert first["started_at"] == dt.datetime(2026, 11, 26, 14, 5)
    assert first["resolved_at"] == dt.datetime(2026, 11, 26, 15, 35)
    assert first["regions"] == ["oregon", "us-central1"]
    assert first["components"] == ["Google Compute Engine"]
    assert rows["open1"]["resolved_at"] is None and rows["open1"]["regions"] == []
    assert rows["open1"]["impact"] == "minor"


def test_products_filter_and_bad_incidents():
    storage = dict(INCIDENT, id="gcs", affected_products=[{"title": "Cloud Storage", "id": "x"}])
    bad = [
        dict(INCIDENT, id="b1", begin="tomorrow"),
        dict(INCIDENT, id="b2", end=17),
        dict(INCIDENT, id="b3", status_impact="SERVICE_APOCALYPSE"),
        {"begin": "2026-11-26T14:05:00+00:00"},
        [],
    ]
    parsed = parse([INCIDENT, storage, *bad], products=["Google Compute Engine"])
    assert parsed.frames["incidents"]["incident_id"].to_list() == ["5feV12qHeQoD3VdD8byK"]
    reasons = [q.reason for q in parsed.quarantine]
    assert len(reasons) == 5
    assert "'begin'" in reasons[0] and "'end'" in reasons[1]
    assert "SERVICE_APOCALYPSE" in reasons[2]


@pytest.mark.parametrize("payload", [b"{}", b"[", b'{"incidents": []}'])
def test_unusable_payloads(payload):
    with pytest.raises(PayloadError):
        parse(payload)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                key: st.none()
                | st.integers(-(2**63), 2**63 - 1)
                | st.text(max_size=6)
                | st.sampled_from([INCIDENT[key]])
                for key in INCIDENT
            },
        )
        | st.integers(-(2**63), 2**63 - 1),
        max_size=5,
    ),
    st.integers(0, 20),
)
def test_fuzzed_feeds_never_raise_anything_but_payload_errors(items, cut):
    payload = orjson.dumps(items)
    for candidate in (payload, payload[: len(payload) - cut]):
        try:
            parse(candidate)
        except PayloadError:
            continue
