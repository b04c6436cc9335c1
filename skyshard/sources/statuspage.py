"""Atlassian Statuspage v2 JSON (summary, incidents, maintenances) → incidents and components.

Requests `{url}/api/v2/summary.json`, `{url}/api/v2/incidents.json` and
`{url}/api/v2/scheduled-maintenances.json`; a `file://` url is a directory holding the same
relative paths. An incident seen in several payloads has one id, so re-ingesting replaces it.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from skyshard.config.providers import Source
from skyshard.sources.base import FetchRequest, Parsed, PayloadError, QuarantinedRow, Window
from skyshard.sources.frames import (
    dumps,
    load_json,
    parse_params,
    parse_timestamp,
    rows_frame,
)

ENDPOINTS = {
    "summary": "api/v2/summary.json",
    "incidents": "api/v2/incidents.json",
    "scheduled_maintenances": "api/v2/scheduled-maintenances.json",
}
INCIDENT_IMPACTS = ("none", "minor", "major", "critical", "maintenance")


class StatuspageParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    token_env: str | None = None


class StatuspageAdapter:
    """Source type `statuspage`."""

    def requests(self, source: Source, window: Window) -> list[FetchRequest]:
        parse_params(StatuspageParams, source.id, source.url, source.params)
        base = source.url.rstrip("/")
        return [FetchRequest(name, f"{base}/{path}") for name, path in ENDPOINTS.items()]

    def parse(
        self, request: FetchRequest, payload: bytes, source: Source, provider_id: str
    ) -> Parsed:
        document = load_json(payload, source.id, request.url)
        if not isinstance(document, dict):
            raise PayloadError(source.id, request.url, "expected a Statuspage JSON object")
        lists = {"incidents": "incident", "scheduled_maintenances": "maintenance"}
        wanted = {
            "summary": ("components", "incidents", "scheduled_maintenances"),
            "incidents": ("incidents",),
            "scheduled_maintenances": ("scheduled_maintenances",),
        }.get(request.name)
        if wanted is None:
            raise PayloadError(source.id, request.url, f"unknown endpoint {request.name!r}")
        for key in wanted:
            if not isinstance(document.get(key), list):
                raise PayloadError(
                    source.id, request.url, f"expected a list under {key!r} (Statuspage v2)"
                )
        quarantine: list[QuarantinedRow] = []
        incidents: dict[str, dict] = {}
        for key, kind in lists.items():
            if key not in wanted:
                continue
            for item in document[key]:
                row, problem = _incident_row(item, kind, provider_id)
                if problem is not None:
                    quarantine.append(QuarantinedRow("incidents", problem, _short(item)))
                else:
                    incidents[row["incident_id"]] = row
        frames = {"incidents": rows_frame("incidents", list(incidents.values()))}
        if "components" in wanted:
            components: dict[str, dict] = {}
            for item in document["components"]:
                row, problem = _component_row(item, provider_id)
                if problem is not None:
                    quarantine.append(QuarantinedRow("components", problem, _short(item)))
                else:
                    components[row["component_id"]] = row
            frames["components"] = rows_frame("components", list(components.values()))
        return Parsed(frames=frames, quarantine=quarantine)


def _incident_row(item: object, kind: str, provider_id: str) -> tuple[dict, str | None]:
    """One incident or maintenance as a raw row, or the reason it cannot be one."""
    if not isinstance(item, dict):
        return {}, "incident is not an object"
    incident_id = item.get("id")
    if not isinstance(incident_id, str) or not incident_id:
        return {}, "incident has no string 'id'"
    if item.get("scheduled_for") or item.get("impact") == "maintenance":
        kind = "maintenance"
    start_field = "scheduled_for" if kind == "maintenance" else "created_at"
    started_at = parse_timestamp(item.get(start_field)) or parse_timestamp(item.get("created_at"))
    if started_at is None:
        return {}, f"incident {incident_id}: '{start_field}' is not an ISO 8601 timestamp"
    resolved_at, problem = _resolved_at(item, kind)
    if problem:
        return {}, f"incident {incident_id}: {problem}"
    impact = item.get("impact") if kind == "incident" else "maintenance"
    if impact not in INCIDENT_IMPACTS:
        return {}, f"incident {incident_id}: impact {impact!r} is not one of {INCIDENT_IMPACTS}"
    components = item.get("components") or []
    if not isinstance(components, list):
        return {}, f"incident {incident_id}: 'components' is not a list"
    names = [c.get("name") for c in components if isinstance(c, dict)]
    return {
        "provider_id": provider_id,
        "incident_id": incident_id,
        "kind": kind,
        "name": _text(item.get("name")),
        "status": _text(item.get("status")),
        "impact": impact,
        "started_at": started_at,
        "resolved_at": resolved_at,
        "updated_at": parse_timestamp(item.get("updated_at")),
        "components": [n for n in names if isinstance(n, str)],
    }, None


def _resolved_at(item: dict, kind: str) -> tuple[datetime | None, str | None]:
    """When it ended: `resolved_at`, or `scheduled_until` for a completed maintenance."""
    raw = item.get("resolved_at")
    if raw is None and kind == "maintenance" and item.get("status") == "completed":
        raw = item.get("scheduled_until")
    if raw is None:
        return None, None
    parsed = parse_timestamp(raw)
    if parsed is None:
        return None, f"resolved time {raw!r} is not an ISO 8601 timestamp"
    return parsed, None


def _component_row(item: object, provider_id: str) -> tuple[dict, str | None]:
    if not isinstance(item, dict):
        return {}, "component is not an object"
    component_id = item.get("id")
    if not isinstance(component_id, str) or not component_id:
        return {}, "component has no string 'id'"
    return {
        "provider_id": provider_id,
        "component_id": component_id,
        "name": _text(item.get("name")),
        "status": _text(item.get("status")),
        "updated_at": parse_timestamp(item.get("updated_at")),
    }, None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _short(item: object) -> str:
    text = dumps(item)
    return text if len(text) <= 1000 else text[:997] + "..."
