from __future__ import annotations

import datetime as dt

import orjson
import pytest

from skyshard.sources.base import FetchRequest, PayloadError
from skyshard.sources.statuspage import StatuspageAdapter
from tests.sources.conftest import WINDOW, make_source

ADAPTER = StatuspageAdapter()
SOURCE = make_source("statuspage", "https://status.example.com")
COMPONENT = {
    "id": "c1",
    "name": "Compute",
    "status": "operational",
    "updated_at": "2026-11-27T10:00:00.000Z",
}
INCIDENT = {
    "id": "inc1",
    "name": "Elevated errors",
    "status": "resolved",
    "impact": "major",
    "created_at": "2026-11-26T08:00:00.000-05:00",
    "updated_at": "2026-11-26T10:00:00.000-05:00",
    "resolved_at": "2026-11-26T09:30:00.000-05:00",
    "components": [COMPONENT],
}
MAINTENANCE = {
    "id": "m1",
    "name": "Power work",
    "status": "completed",
    "impact": "maintenance",
    "created_at": "2026-11-20T00:00:00Z",
    "updated_at": "2026-11-25T06:00:00Z",
    "resolved_at": None,
    "scheduled_for": "2026-11-25T02:00:00Z",
    "scheduled_until": "2026-11-25T06:00:00Z",
    "components": [],
}


def parse(name: str, document) -> object:
    payload = document if isinstance(document, bytes) else orjson.dumps(document)
    return ADAPTER.parse(
        FetchRequest(name, f"https://status.example.com/{name}"), payload, SOURCE, "edge-a"
    )


def test_requests_are_the_three_v2_endpoints():
    assert [r.url for r in ADAPTER.requests(SOURCE, WINDOW)] == [
        "https://status.example.com/api/v2/summary.json",
        "https://status.example.com/api/v2/incidents.json",
        "https://status.example.com/api/v2/scheduled-maintenances.json",
    ]


def test_incident_times_become_naive_utc():
    parsed = parse("incidents", {"page": {}, "incidents": [INCIDENT]})
    (row,) = parsed.frames["incidents"].to_dicts()
    assert row["kind"] == "incident"
    assert row["impact"] == "major"
    assert row["started_at"] == dt.datetime(2026, 11, 26, 13, 0)
    assert row["resolved_at"] == dt.datetime(2026, 11, 26, 14, 30)
    assert row["components"] == ["Compute"]
    assert row["provider_id"] == "edge-a"


def test_completed_maintenance_ends_at_scheduled_until():
    parsed = parse("scheduled_maintenances", {"scheduled_maintenances": [MAINTENANCE]})
    (row,) = parsed.frames["incidents"].to_dicts()
    assert row["kind"] == "maintenance"
    assert row["started_at"] == dt.datetime(2026, 11, 25, 2)
    assert row["resolved_at"] == dt.datetime(2026, 11, 25, 6)


def test_summary_gives_components_and_open_items():
    summary = {
        "page": {"id": "p"},
        "components": [COMPONENT, {"name": "no id"}],
        "incidents": [dict(INCIDENT, resolved_at=None, status="investigating")],
        "scheduled_maintenances": [dict(MAINTENANCE, id="m2", status="scheduled")],
    }
    parsed = parse("summary", summary)
    assert parsed.frames["components"]["component_id"].to_list() == ["c1"]
    rows = parsed.frames["incidents"].to_dicts()
    assert [(r["incident_id"], r["resolved_at"]) for r in rows] == [("inc1", None), ("m2", None)]
    assert [q.reason for q in parsed.quarantine] == ["component has no string 'id'"]


def test_bad_incidents_are_quarantined():
    incidents = [
        INCIDENT,
        dict(INCIDENT, id="bad-time", created_at="last tuesday"),
        dict(INCIDENT, id="bad-impact", impact="apocalyptic"),
        {"name": "no id"},
        42,
    ]
    parsed = parse("incidents", {"incidents": incidents})
    assert parsed.frames["incidents"]["incident_id"].to_list() == ["inc1"]
    reasons = [q.reason for q in parsed.quarantine]
    assert "bad-time" in reasons[0] and "created_at" in reasons[0]
    assert "apocalyptic" in reasons[1]
    assert reasons[2:] == ["incident has no string 'id'", "incident is not an object"]
    assert '"last tuesday"' in parsed.quarantine[0].raw_value


@pytest.mark.parametrize(
    ("name", "payload", "message"),
    [
        ("incidents", b"not json", "not valid JSON"),
        ("incidents", orjson.dumps({"page": {}}), "'incidents'"),
        ("summary", orjson.dumps({"components": [], "incidents": []}), "'scheduled_maintenances'"),
        ("incidents", orjson.dumps([INCIDENT]), "Statuspage JSON object"),
    ],
)
def test_unusable_payloads(name, payload, message):
    with pytest.raises(PayloadError, match=message) as caught:
        parse(name, payload)
    assert "test-statuspage" in str(caught.value)
    assert "https://status.example.com/" in str(caught.value)
