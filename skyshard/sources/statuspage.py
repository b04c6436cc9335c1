"""Atlassian Statuspage v2 JSON → incidents and components, from any combination of endpoints.

Endpoints (`params.endpoints`, in this order): `summary` (`api/v2/summary.json`: components,
open incidents, upcoming and active maintenances), `components` (`api/v2/components.json`),
`incidents` (`api/v2/incidents.json`, the latest 50), `unresolved`
(`api/v2/incidents/unresolved.json`) and `scheduled_maintenances`
(`api/v2/scheduled-maintenances.json`). Over HTTP the default is summary, incidents and
scheduled maintenances. A `file://` url is either one saved file (its name says which
endpoint: `summary.json`, `components.json`, `incidents.json`, `unresolved.json`,
`scheduled-maintenances.json`) or a folder holding the same relative paths as the site, of
which every endpoint present is read: a git-scraped `summary.json` alone is a whole capture.

`params.component_regions` maps component names (or ids) to the provider's regions: an
incident naming mapped components counts against those regions only; one naming none (or
only unmapped ones) counts against the whole provider. An incident seen in several payloads
has one id, so re-ingesting replaces it.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import PurePosixPath
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from skyshard.config.providers import Source
from skyshard.sources.base import FetchRequest, Parsed, PayloadError, QuarantinedRow, Window
from skyshard.sources.fetch import file_url_path
from skyshard.sources.frames import (
    dumps,
    load_json,
    parse_params,
    parse_timestamp,
    rows_frame,
)

Endpoint = Literal["summary", "components", "incidents", "unresolved", "scheduled_maintenances"]
ENDPOINTS: dict[str, str] = {
    "summary": "api/v2/summary.json",
    "components": "api/v2/components.json",
    "incidents": "api/v2/incidents.json",
    "unresolved": "api/v2/incidents/unresolved.json",
    "scheduled_maintenances": "api/v2/scheduled-maintenances.json",
}
HTTP_DEFAULT: tuple[Endpoint, ...] = ("summary", "incidents", "scheduled_maintenances")
FILE_NAMES = {PurePosixPath(path).name: name for name, path in ENDPOINTS.items()}
# The lists each endpoint's answer holds: required ones first, then those it may hold.
_LISTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "summary": (("components",), ("incidents", "scheduled_maintenances")),
    "components": (("components",), ()),
    "incidents": (("incidents",), ()),
    "unresolved": (("incidents",), ()),
    "scheduled_maintenances": (("scheduled_maintenances",), ()),
}
_KIND = {"incidents": "incident", "scheduled_maintenances": "maintenance"}
INCIDENT_IMPACTS = ("none", "minor", "major", "critical", "maintenance")


class StatuspageParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoints: list[Endpoint] | None = Field(default=None, min_length=1)
    component_regions: dict[str, str] = Field(default_factory=dict)
    token_env: str | None = None


class StatuspageAdapter:
    """Source type `statuspage`."""

    type = "statuspage"
    tables = ("incidents", "components")
    params_model = StatuspageParams

    def config_problems(self, source: Source, regions: list[str]) -> list[tuple[str, object, str]]:
        params = StatuspageParams.model_validate(source.params)
        return [
            (f"params.component_regions.{name}", region, f"one of the provider's regions {regions}")
            for name, region in params.component_regions.items()
            if region not in regions
        ]

    def requests(self, source: Source, window: Window) -> list[FetchRequest]:
        params = parse_params(StatuspageParams, source.id, source.url, source.params)
        base = source.url.rstrip("/")
        if urlsplit(source.url).scheme != "file":
            return [
                FetchRequest(name, f"{base}/{ENDPOINTS[name]}")
                for name in params.endpoints or HTTP_DEFAULT
            ]
        try:
            path = file_url_path(source.url)
        except ValueError as exc:
            raise PayloadError(source.id, source.url, str(exc)) from None
        if path.is_file():
            name = FILE_NAMES.get(path.name)
            if name is None:
                raise PayloadError(
                    source.id,
                    source.url,
                    f"cannot tell which Statuspage endpoint {path.name!r} is; "
                    f"expected one of {sorted(FILE_NAMES)}",
                )
            return [FetchRequest(name, source.url)]
        wanted = params.endpoints or list(ENDPOINTS)
        present = [name for name in wanted if (path / ENDPOINTS[name]).is_file()]
        if params.endpoints and present != wanted:
            missing = [ENDPOINTS[n] for n in wanted if n not in present]
            raise PayloadError(source.id, source.url, f"capture lacks {missing} under {path}")
        if not present:
            raise PayloadError(
                source.id,
                source.url,
                f"no Statuspage capture under {path} (expected any of {list(ENDPOINTS.values())})",
            )
        return [FetchRequest(name, f"{base}/{ENDPOINTS[name]}") for name in present]

    def parse(
        self, request: FetchRequest, payload: bytes, source: Source, provider_id: str
    ) -> Parsed:
        params = parse_params(StatuspageParams, source.id, source.url, source.params)
        document = load_json(payload, source.id, request.url)
        if not isinstance(document, dict):
            raise PayloadError(source.id, request.url, "expected a Statuspage JSON object")
        if request.name not in _LISTS:
            raise PayloadError(source.id, request.url, f"unknown endpoint {request.name!r}")
        required, optional = _LISTS[request.name]
        for key in (*required, *optional):
            if (key in required or key in document) and not isinstance(document.get(key), list):
                raise PayloadError(
                    source.id, request.url, f"expected a list under {key!r} (Statuspage v2)"
                )
        present = [key for key in (*required, *optional) if key in document]
        quarantine: list[QuarantinedRow] = []
        frames = {}
        incident_lists = [key for key in present if key in _KIND]
        if incident_lists:
            incidents: dict[str, dict] = {}
            for key in incident_lists:
                for item in document[key]:
                    row, problem = _incident_row(item, _KIND[key], provider_id, params)
                    if problem is not None:
                        quarantine.append(QuarantinedRow("incidents", problem, _short(item)))
                    else:
                        incidents[row["incident_id"]] = row
            frames["incidents"] = rows_frame("incidents", list(incidents.values()))
        if "components" in present:
            components: dict[str, dict] = {}
            for item in document["components"]:
                row, problem = _component_row(item, provider_id)
                if problem is not None:
                    quarantine.append(QuarantinedRow("components", problem, _short(item)))
                else:
                    components[row["component_id"]] = row
            frames["components"] = rows_frame("components", list(components.values()))
        return Parsed(frames=frames, quarantine=quarantine)


def _incident_row(
    item: object, kind: str, provider_id: str, params: StatuspageParams
) -> tuple[dict, str | None]:
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
    named = [c for c in components if isinstance(c, dict)]
    names = [c.get("name") for c in named]
    mapped = (
        params.component_regions.get(_text(c.get("name")) or "")
        or params.component_regions.get(_text(c.get("id")) or "")
        for c in named
    )
    scheduled_until = parse_timestamp(item.get("scheduled_until"))
    if kind == "maintenance" and item.get("scheduled_until") and scheduled_until is None:
        return {}, f"incident {incident_id}: 'scheduled_until' is not an ISO 8601 timestamp"
    return {
        "provider_id": provider_id,
        "incident_id": incident_id,
        "kind": kind,
        "name": _text(item.get("name")),
        "status": _text(item.get("status")),
        "impact": impact,
        "started_at": started_at,
        "resolved_at": resolved_at,
        "scheduled_until": scheduled_until,
        "updated_at": parse_timestamp(item.get("updated_at")),
        "components": [n for n in names if isinstance(n, str)],
        "regions": sorted({region for region in mapped if region}),
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
