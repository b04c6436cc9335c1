"""Status feeds as RSS 2.0 or Atom (source type `rss_status`): AWS Health, Azure status.

RSS: `<rss><channel><item>` with `title`, `pubDate` (RFC 822), `guid`, `description`; Atom:
`<feed><entry>` with `title`, `published`/`updated` (ISO 8601), `id`, `summary`. A feed item
is one status update, so updates are grouped into incidents by their topic: the title without
its status prefix (`Service is operating normally:`, `Informational message:`, `Performance
issues:`, `Service disruption:`, Azure's `Active -`, `Mitigated -`, `[RESOLVED]`, ...). An
incident starts at its first update and is resolved by an update whose title says so
(operating normally, `[RESOLVED]`, `Resolved`, `Mitigated`); without one it is open.
Impact: a disruption is `major`, an informational message `none`, anything else `minor`.

Regions: `params.region` for a feed about one region (AWS publishes one feed per service and
region), else each `params.region_patterns` entry whose regex matches the title names its
region; no region means the whole provider. Documents with a DTD are refused (no entity
expansion, read with defusedxml).
"""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import defusedxml.ElementTree as DefusedET
from defusedxml import DefusedXmlException
from pydantic import BaseModel, ConfigDict, Field

from skyshard.config.providers import Source
from skyshard.sources.base import FetchRequest, Parsed, PayloadError, QuarantinedRow, Window
from skyshard.sources.frames import (
    EARLIEST,
    LATEST,
    parse_params,
    parse_timestamp,
    rows_frame,
    utf8_payload,
)

ATOM = "{http://www.w3.org/2005/Atom}"
_PREFIX = re.compile(
    r"^\s*(?:\[(?P<tag>[^\]]+)\]\s*|(?P<state>Service is operating normally|Informational "
    r"message|Performance issues|Service disruption|Service impact|Degraded performance|"
    r"Service degradation|Active|Resolved|Mitigated|Investigating|Update)\s*[:\-]\s*)",
    re.IGNORECASE,
)
_RESOLVED = re.compile(r"operating normally|resolved|mitigated", re.IGNORECASE)
_IMPACT = (
    (re.compile(r"disruption|outage|unavailable", re.IGNORECASE), "major"),
    (re.compile(r"informational", re.IGNORECASE), "none"),
    (re.compile(r"performance|degrad|latenc|error rate", re.IGNORECASE), "minor"),
)


class RegionPattern(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    match: str = Field(min_length=1)
    region: str


class RssStatusParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    region: str | None = None
    region_patterns: list[RegionPattern] = Field(default_factory=list)
    token_env: str | None = None


class RssStatusAdapter:
    """Source type `rss_status`."""

    type = "rss_status"
    tables = ("incidents",)
    params_model = RssStatusParams

    def requests(self, source: Source, window: Window) -> list[FetchRequest]:
        parse_params(RssStatusParams, source.id, source.url, source.params)
        return [FetchRequest("feed", source.url)]

    def config_problems(self, source: Source, regions: list[str]) -> list[tuple[str, object, str]]:
        params = RssStatusParams.model_validate(source.params)
        named = [("params.region", params.region)] if params.region else []
        named += [
            (f"params.region_patterns[{i}].region", p.region)
            for i, p in enumerate(params.region_patterns)
        ]
        problems = [
            (where, region, f"one of the provider's regions {regions}")
            for where, region in named
            if region not in regions
        ]
        for i, pattern in enumerate(params.region_patterns):
            try:
                re.compile(pattern.match)
            except re.error as exc:
                problems.append((f"params.region_patterns[{i}].match", pattern.match, str(exc)))
        return problems

    def parse(
        self, request: FetchRequest, payload: bytes, source: Source, provider_id: str
    ) -> Parsed:
        params = parse_params(RssStatusParams, source.id, source.url, source.params)
        payload = utf8_payload(payload, source.id, request.url)
        try:
            root = DefusedET.fromstring(payload, forbid_dtd=True)
        except DefusedXmlException as exc:
            raise PayloadError(source.id, request.url, f"XML refused: {exc!r}") from None
        except ET.ParseError as exc:
            raise PayloadError(source.id, request.url, f"not well-formed XML: {exc}") from None
        if root.tag == "rss":
            entries = [_rss_item(i) for i in root.iterfind("channel/item")]
        elif root.tag == f"{ATOM}feed":
            entries = [_atom_entry(e) for e in root.iterfind(f"{ATOM}entry")]
        else:
            raise PayloadError(
                source.id, request.url, f"expected <rss> or Atom <feed>, got {root.tag}"
            )
        quarantine = []
        updates = []
        for title, published, raw in entries:
            if not title:
                quarantine.append(QuarantinedRow("incidents", "item has no title", raw))
            elif published is None:
                quarantine.append(
                    QuarantinedRow("incidents", "item has no readable publication date", raw)
                )
            else:
                updates.append((published, title))
        rows = _incidents(sorted(updates), source.id, provider_id, params)
        return Parsed(frames={"incidents": rows_frame("incidents", rows)}, quarantine=quarantine)


def _rss_item(item: ET.Element) -> tuple[str, datetime | None, str]:
    title = (item.findtext("title") or "").strip()
    text = (item.findtext("pubDate") or "").strip()
    try:
        published = parsedate_to_datetime(text) if text else None
    except (TypeError, ValueError):
        published = None
    if published is not None and published.tzinfo is not None:
        published = published.astimezone(UTC).replace(tzinfo=None)
    if published is not None and not EARLIEST <= published < LATEST:
        published = None
    return title, published, f"title={title!r} pubDate={text!r}"[:1000]


def _atom_entry(entry: ET.Element) -> tuple[str, datetime | None, str]:
    title = (entry.findtext(f"{ATOM}title") or "").strip()
    text = (entry.findtext(f"{ATOM}published") or entry.findtext(f"{ATOM}updated") or "").strip()
    return title, parse_timestamp(text), f"title={title!r} published={text!r}"[:1000]


def _topic(title: str) -> str:
    while (found := _PREFIX.match(title)) is not None and found.end() < len(title):
        title = title[found.end() :]
    return title.strip()


def _incidents(
    updates: list[tuple[datetime, str]], source_id: str, provider_id: str, params: RssStatusParams
) -> list[dict]:
    """One incident per topic and outage: from its first update to the update resolving it."""
    incidents: list[dict] = []
    open_by_topic: dict[str, dict] = {}
    for published, title in updates:
        topic = _topic(title)
        row = open_by_topic.get(topic)
        if row is None:
            digest = hashlib.sha256(f"{source_id}\n{topic}\n{published}".encode()).hexdigest()
            row = {
                "provider_id": provider_id,
                "incident_id": f"rss-{digest[:20]}",
                "kind": "incident",
                "name": topic[:500],
                "status": "open",
                "impact": _impact(title),
                "started_at": published,
                "resolved_at": None,
                "scheduled_until": None,
                "updated_at": published,
                "components": [],
                "regions": _regions(title, params),
            }
            incidents.append(row)
            open_by_topic[topic] = row
        row["updated_at"] = published
        if _RESOLVED.search(title):
            row["resolved_at"] = published
            row["status"] = "resolved"
            del open_by_topic[topic]
    return incidents


def _impact(title: str) -> str:
    return next((impact for pattern, impact in _IMPACT if pattern.search(title)), "minor")


def _regions(title: str, params: RssStatusParams) -> list[str]:
    if params.region:
        return [params.region]
    return sorted({p.region for p in params.region_patterns if re.search(p.match, title)})
