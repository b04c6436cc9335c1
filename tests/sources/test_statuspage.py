from __future__ import annotations

import datetime as dt

import orjson
import pytest

from skyshard.sources.base import FetchRequest, PayloadError
from skyshard.sources.fetch import file_url_path
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
        ("summary", orjson.dumps({"incidents": []}), "'components'"),
        ("summary", orjson.dumps({"components": [], "incidents": {}}), "'incidents'"),
        ("incidents", orjson.dumps([INCIDENT]), "Statuspage JSON object"),
    ],
)
def test_unusable_payloads(name, payload, message):
    with pytest.raises(PayloadError, match=message) as caught:
        parse(name, payload)
    assert "test-statuspage" in str(caught.value)
    assert "https://status.example.com/" in str(caught.value)


def write(folder, relative: str, document) -> None:
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(document))


def ingest_folder(url: str, **params):
    source = make_source("statuspage", url, **params)
    requests = ADAPTER.requests(source, WINDOW)
    parsed = [
        ADAPTER.parse(r, (file_url_path(r.url)).read_bytes(), source, "edge-a") for r in requests
    ]
    return requests, parsed


def test_summary_alone_is_a_whole_capture(tmp_path):
    summary = {
        "page": {"id": "p"},
        "components": [COMPONENT],
        "incidents": [dict(INCIDENT, resolved_at=None, status="investigating")],
    }
    write(tmp_path, "api/v2/summary.json", summary)
    requests, (parsed,) = ingest_folder(tmp_path.as_uri())
    assert [r.name for r in requests] == ["summary"]
    assert parsed.frames["components"]["component_id"].to_list() == ["c1"]
    assert parsed.frames["incidents"]["incident_id"].to_list() == ["inc1"]


def test_single_saved_files_name_their_endpoint(tmp_path):
    write(tmp_path, "components.json", {"page": {}, "components": [COMPONENT]})
    write(tmp_path, "unresolved.json", {"page": {}, "incidents": [INCIDENT]})
    (request,), (parsed,) = ingest_folder((tmp_path / "components.json").as_uri())
    assert request.name == "components"
    assert list(parsed.frames) == ["components"]
    (request,), (parsed,) = ingest_folder((tmp_path / "unresolved.json").as_uri())
    assert request.name == "unresolved"
    assert parsed.frames["incidents"]["incident_id"].to_list() == ["inc1"]


def test_every_endpoint_present_in_a_folder_is_read(tmp_path):
    write(tmp_path, "api/v2/components.json", {"components": [COMPONENT]})
    write(tmp_path, "api/v2/incidents/unresolved.json", {"incidents": [INCIDENT]})
    write(tmp_path, "api/v2/scheduled-maintenances.json", {"scheduled_maintenances": [MAINTENANCE]})
    requests, _ = ingest_folder(tmp_path.as_uri())
    assert [r.name for r in requests] == ["components", "unresolved", "scheduled_maintenances"]


@pytest.mark.parametrize(
    ("make", "params", "message"),
    [
        (lambda p: p / "empty", {}, "no Statuspage capture under"),
        (lambda p: p, {"endpoints": ["incidents"]}, "capture lacks"),
        (lambda p: p / "status.json", {}, "status.json"),
    ],
)
def test_captures_that_cannot_be_read_say_why(tmp_path, make, params, message):
    (tmp_path / "status.json").write_bytes(b"{}")
    (tmp_path / "empty").mkdir()
    path = make(tmp_path)
    with pytest.raises(PayloadError, match=message):
        ADAPTER.requests(make_source("statuspage", path.as_uri(), **params), WINDOW)


def test_http_endpoints_are_configurable():
    source = make_source("statuspage", "https://s.example.com/", endpoints=["unresolved"])
    assert [r.url for r in ADAPTER.requests(source, WINDOW)] == [
        "https://s.example.com/api/v2/incidents/unresolved.json"
    ]


def test_incidents_map_named_components_to_regions():
    source = make_source(
        "statuspage",
        "https://status.example.com",
        component_regions={"Compute": "eu-west", "c9": "eu-east"},
    )
    other = {"id": "c9", "name": "Storage (east)"}
    incidents = [
        INCIDENT,
        dict(INCIDENT, id="both", components=[COMPONENT, other]),
        dict(INCIDENT, id="unmapped", components=[{"id": "c3", "name": "DNS"}]),
        dict(INCIDENT, id="odd", components=[{"id": ["x"], "name": {"a": 1}}]),
    ]
    parsed = ADAPTER.parse(
        FetchRequest("incidents", "https://status.example.com/x"),
        orjson.dumps({"incidents": incidents}),
        source,
        "edge-a",
    )
    regions = dict(parsed.frames["incidents"].select("incident_id", "regions").rows())
    assert regions == {
        "inc1": ["eu-west"],
        "both": ["eu-east", "eu-west"],
        "unmapped": [],
        "odd": [],
    }


def test_maintenance_keeps_its_scheduled_end():
    active = dict(MAINTENANCE, status="in_progress")
    parsed = parse("scheduled_maintenances", {"scheduled_maintenances": [active]})
    (row,) = parsed.frames["incidents"].to_dicts()
    assert row["resolved_at"] is None
    assert row["scheduled_until"] == dt.datetime(2026, 11, 25, 6)
    broken = dict(active, scheduled_until="after lunch")
    parsed = parse("scheduled_maintenances", {"scheduled_maintenances": [broken]})
    assert "scheduled_until" in parsed.quarantine[0].reason
