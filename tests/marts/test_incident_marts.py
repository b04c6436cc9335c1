"""Hand-computed incident marts: minutes per region, maintenance windows that end."""

from __future__ import annotations

import shutil
from datetime import date, datetime

import pytest
import yaml

from tests.marts.conftest import ROOT, build_marts, query


def incident(incident_id: str, start: str, end: str | None, regions=(), **extra) -> dict:
    return {
        "provider_id": "aws-use1",
        "incident_id": incident_id,
        "kind": "incident",
        "name": incident_id,
        "status": "resolved" if end else "investigating",
        "impact": "major",
        "started_at": datetime.fromisoformat(start),
        "resolved_at": datetime.fromisoformat(end) if end else None,
        "regions": list(regions),
        **extra,
    }


def maintenance(incident_id: str, start: str, until: str) -> dict:
    return incident(
        incident_id,
        start,
        None,
        kind="maintenance",
        impact="maintenance",
        status="in_progress",
        scheduled_until=datetime.fromisoformat(until),
    )


# Telemetry covers 2026-11-27 00:00 .. 2026-11-29 23:00 (the newest sample).
INCIDENTS = [
    incident("east", "2026-11-27T10:00", "2026-11-27T11:30", ["us-east-1"]),
    incident("everywhere", "2026-11-28T00:00", "2026-11-28T00:30"),
    incident("west-open", "2026-11-29T22:00", None, ["us-west-2"]),
    maintenance("window", "2026-11-28T02:00", "2026-11-28T04:00"),
    maintenance("later", "2026-12-05T02:00", "2026-12-05T04:00"),
]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("incidents")
    home = folder / "home"
    shutil.copytree(ROOT / "config", home)
    document = yaml.safe_load((home / "providers.yaml").read_text())
    aws = next(p for p in document["providers"] if p["id"] == "aws-use1")
    aws["regions"].append("us-west-2")
    (home / "providers.yaml").write_text(yaml.safe_dump(document))
    database = folder / "skyshard.duckdb"
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("SKYSHARD_DUCKDB", str(database))
        build_marts(database, {"incidents": INCIDENTS}, folder / "target", home=home)
    return database


def by_region(database) -> dict[tuple[str, date], tuple]:
    frame = query(
        database,
        "select region, day, incident_minutes, maintenance_minutes, has_open_incident, "
        "availability from marts.fct_region_incidents where provider_id = 'aws-use1'",
    )
    return {(r[0], r[1]): r[2:] for r in frame.rows()}


def test_incident_minutes_count_in_the_regions_they_name(built):
    rows = by_region(built)
    assert rows[("us-east-1", date(2026, 11, 27))][0] == pytest.approx(90)
    assert rows[("us-west-2", date(2026, 11, 27))][0] == 0
    assert rows[("us-east-1", date(2026, 11, 28))][0] == pytest.approx(30)
    assert rows[("us-west-2", date(2026, 11, 28))][0] == pytest.approx(30)
    assert rows[("us-east-1", date(2026, 11, 27))][3] == pytest.approx(1 - 90 / 1440)


def test_open_incident_runs_to_the_newest_sample_in_its_region(built):
    rows = by_region(built)
    assert rows[("us-west-2", date(2026, 11, 29))][0] == pytest.approx(60)
    assert rows[("us-west-2", date(2026, 11, 29))][2] is True
    assert rows[("us-east-1", date(2026, 11, 29))][:3] == (0, 0, False)


def test_maintenance_counts_its_window_only(built):
    rows = by_region(built)
    assert rows[("us-east-1", date(2026, 11, 28))][1] == pytest.approx(120)
    assert rows[("us-east-1", date(2026, 11, 29))][1] == 0
    assert rows[("us-east-1", date(2026, 11, 28))][2] is False  # maintenance is not an incident
    provider = query(
        built,
        "select day, incident_minutes, maintenance_minutes, has_open_incident "
        "from marts.fct_provider_incidents where provider_id = 'aws-use1' order by day",
    ).rows()
    assert provider == [
        (date(2026, 11, 27), 90, 0, False),
        (date(2026, 11, 28), 30, 120, False),
        (date(2026, 11, 29), 60, 0, True),
    ]
