"""Google Cloud status incidents (source type `gcp_status`) → incidents.

`https://status.cloud.google.com/incidents.json` is a list of incidents: `{"id", "begin",
"end" (absent while ongoing), "modified", "external_desc", "severity" (low, medium, high),
"status_impact" (SERVICE_OUTAGE, SERVICE_DISRUPTION, SERVICE_INFORMATION),
"affected_products": [{"title", "id"}], "currently_affected_locations",
"previously_affected_locations": [{"title", "id"}]}`.

Impact: an outage is `major` (`critical` at high severity), a disruption `minor`, information
`none`. Components are the product titles; `params.products` keeps only incidents naming one
of them (default: all). Regions are the affected location ids renamed by `params.regions`
(default: the id itself); an incident at location `global`, or naming none, counts against
the whole provider.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from skyshard.config.providers import Source
from skyshard.sources.base import FetchRequest, Parsed, PayloadError, QuarantinedRow, Window
from skyshard.sources.frames import dumps, load_json, parse_params, parse_timestamp, rows_frame

IMPACTS = {"SERVICE_OUTAGE": "major", "SERVICE_DISRUPTION": "minor", "SERVICE_INFORMATION": "none"}
LOCATION_LISTS = ("currently_affected_locations", "previously_affected_locations")


class GcpStatusParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    products: list[str] | None = Field(default=None, min_length=1)
    regions: dict[str, str] = Field(default_factory=dict)
    token_env: str | None = None


class GcpStatusAdapter:
    """Source type `gcp_status`."""

    type = "gcp_status"
    tables = ("incidents",)
    params_model = GcpStatusParams

    def requests(self, source: Source, window: Window) -> list[FetchRequest]:
        parse_params(GcpStatusParams, source.id, source.url, source.params)
        return [FetchRequest("incidents", source.url)]

    def parse(
        self, request: FetchRequest, payload: bytes, source: Source, provider_id: str
    ) -> Parsed:
        params = parse_params(GcpStatusParams, source.id, source.url, source.params)
        document = load_json(payload, source.id, request.url)
        if not isinstance(document, list):
            raise PayloadError(source.id, request.url, "expected a JSON list of incidents")
        rows: dict[str, dict] = {}
        quarantine = []
        for item in document:
            row, problem = _incident_row(item, provider_id, params)
            if problem:
                quarantine.append(QuarantinedRow("incidents", problem, dumps(item)[:1000]))
            elif row:
                rows[row["incident_id"]] = row
        return Parsed(
            frames={"incidents": rows_frame("incidents", list(rows.values()))},
            quarantine=quarantine,
        )


def _incident_row(
    item: object, provider_id: str, params: GcpStatusParams
) -> tuple[dict | None, str | None]:
    """The raw row of one incident; (None, None) when `params.products` filters it out."""
    if not isinstance(item, dict):
        return None, "incident is not an object"
    incident_id = item.get("id")
    if not isinstance(incident_id, str) or not incident_id:
        return None, "incident has no string 'id'"
    products = _titles(item.get("affected_products"))
    if params.products and not set(products) & set(params.products):
        return None, None
    started_at = parse_timestamp(item.get("begin"))
    if started_at is None:
        return None, f"incident {incident_id}: 'begin' is not an ISO 8601 timestamp"
    resolved_at = parse_timestamp(item.get("end"))
    if item.get("end") is not None and resolved_at is None:
        return None, f"incident {incident_id}: 'end' is not an ISO 8601 timestamp"
    impact = IMPACTS.get(item.get("status_impact"))  # type: ignore[arg-type]
    if impact is None:
        return None, (
            f"incident {incident_id}: status_impact {item.get('status_impact')!r} "
            f"is not one of {sorted(IMPACTS)}"
        )
    if impact == "major" and item.get("severity") == "high":
        impact = "critical"
    locations = [i for key in LOCATION_LISTS for i in _ids(item.get(key))]
    regions = [] if "global" in locations else sorted({params.regions.get(i, i) for i in locations})
    return {
        "provider_id": provider_id,
        "incident_id": incident_id,
        "kind": "incident",
        "name": item.get("external_desc") if isinstance(item.get("external_desc"), str) else None,
        "status": "resolved" if resolved_at else "ongoing",
        "impact": impact,
        "started_at": started_at,
        "resolved_at": resolved_at,
        "scheduled_until": None,
        "updated_at": parse_timestamp(item.get("modified")),
        "components": products,
        "regions": regions,
    }, None


def _titles(entries: object) -> list[str]:
    return [e["title"] for e in _objects(entries) if isinstance(e.get("title"), str)]


def _ids(entries: object) -> list[str]:
    return [e["id"] for e in _objects(entries) if isinstance(e.get("id"), str)]


def _objects(entries: object) -> list[dict]:
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []
