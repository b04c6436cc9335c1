"""AWS Spot Instance Advisor data (source type `aws_spot_advisor`) → interruption bands.

`https://spot-bid-advisor.s3.amazonaws.com/spot-advisor-data.json` (what the Spot Instance
Advisor page reads): `{"ranges": [{"index", "label", "max"}, ...], "instance_types":
{...}, "spot_advisor": {"<region>": {"Linux": {"<type>": {"s": <savings %>, "r": <range
index>}}, "Windows": {...}}}}`. Each (region, type, OS) becomes one row, stamped with the time
it was read. A band becomes a monthly interruption rate at its midpoint: `<5%` → 2.5, `5-10%`
(max 11) → 8, and the open top band (`>20%`, max 100) → its lower bound + 5.

Kept: regions in `params.regions` (advisor region → provider region; default: every advisor
region under its own name, of which only the provider's own ever join), OS in
`params.products` (default `Linux`) and, when given, types in `params.instance_types`. The
scorer turns the bands into a risk term (`skyshard.scoring.candidates`).
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

from skyshard.config.providers import Source
from skyshard.sources.base import FetchRequest, Parsed, PayloadError, QuarantinedRow, Window
from skyshard.sources.frames import dumps, load_json, parse_params, rows_frame

OPEN_BAND_WIDTH = 10.0
"""Width assumed for the open top band (`>20%`): its midpoint is its lower bound + 5."""


class SpotAdvisorParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    regions: dict[str, str] | None = Field(
        default=None, description="Advisor region → provider region (default: same names)."
    )
    products: list[str] = Field(default_factory=lambda: ["Linux"], min_length=1)
    instance_types: list[str] | None = None
    token_env: str | None = None


class AwsSpotAdvisorAdapter:
    """Source type `aws_spot_advisor`."""

    type = "aws_spot_advisor"
    tables = ("spot_interruption",)
    params_model = SpotAdvisorParams

    def requests(self, source: Source, window: Window) -> list[FetchRequest]:
        parse_params(SpotAdvisorParams, source.id, source.url, source.params)
        return [FetchRequest("spot_advisor", source.url)]

    def config_problems(self, source: Source, regions: list[str]) -> list[tuple[str, object, str]]:
        params = SpotAdvisorParams.model_validate(source.params)
        return [
            (f"params.regions.{name}", region, f"one of the provider's regions {regions}")
            for name, region in (params.regions or {}).items()
            if region not in regions
        ]

    def parse(
        self, request: FetchRequest, payload: bytes, source: Source, provider_id: str
    ) -> Parsed:
        params = parse_params(SpotAdvisorParams, source.id, source.url, source.params)
        document = load_json(payload, source.id, request.url)
        if not isinstance(document, dict) or not isinstance(document.get("spot_advisor"), dict):
            raise PayloadError(
                source.id, request.url, "expected an object with a 'spot_advisor' mapping"
            )
        bands = _bands(document.get("ranges"), source.id, request.url)
        read_at = datetime.now(UTC).replace(tzinfo=None, minute=0, second=0, microsecond=0)
        rows: list[dict] = []
        quarantine: list[QuarantinedRow] = []
        for advisor_region, by_os in document["spot_advisor"].items():
            region = (
                params.regions.get(advisor_region) if params.regions is not None else advisor_region
            )
            if region is None or not isinstance(by_os, dict):
                continue
            for product in params.products:
                by_type = by_os.get(product)
                if not isinstance(by_type, dict):
                    continue
                for instance_type, advice in by_type.items():
                    if params.instance_types and instance_type not in params.instance_types:
                        continue
                    row, problem = _row(advice, bands)
                    where = f"{advisor_region}/{product}/{instance_type}"
                    if problem:
                        quarantine.append(
                            QuarantinedRow(
                                "spot_interruption", problem, f"{where}: {dumps(advice)}"
                            )
                        )
                        continue
                    rows.append(
                        {
                            "provider_id": provider_id,
                            "region": region,
                            "instance_type": instance_type,
                            "product": product,
                            "ts": read_at,
                            **row,
                        }
                    )
        return Parsed(
            frames={"spot_interruption": rows_frame("spot_interruption", rows)},
            quarantine=quarantine,
        )


def _bands(ranges: object, source_id: str, url: str) -> dict[int, tuple[str, float]]:
    """Range index → (label, interruption % at the band's midpoint)."""
    if not isinstance(ranges, list) or not ranges:
        raise PayloadError(source_id, url, "expected a non-empty 'ranges' list")
    valid = [
        r
        for r in ranges
        if isinstance(r, dict)
        and isinstance(r.get("index"), int)
        and isinstance(r.get("max"), int | float)
        and not isinstance(r.get("max"), bool)
        and 0 < r["max"] <= 100
    ]
    if len(valid) != len(ranges):
        raise PayloadError(source_id, url, "every range needs an integer 'index' and a 'max' %")
    bands = {}
    lower = 0.0
    for item in sorted(valid, key=lambda r: r["max"]):
        upper = float(item["max"])
        if upper >= 100:
            upper = lower + OPEN_BAND_WIDTH
        bands[item["index"]] = (str(item.get("label", item["index"])), (lower + upper) / 2)
        lower = float(item["max"])
    return bands


def _row(advice: object, bands: dict[int, tuple[str, float]]) -> tuple[dict, str | None]:
    if not isinstance(advice, dict):
        return {}, "advice is not an object"
    band = advice.get("r")
    if isinstance(band, bool) or band not in bands:
        return {}, f"interruption range 'r' {band!r} is not one of {sorted(bands)}"
    savings = advice.get("s")
    if isinstance(savings, bool) or not isinstance(savings, int | float) or not 0 <= savings <= 100:
        return {}, f"savings 's' {savings!r} is not a percentage"
    label, pct = bands[band]
    return {"band": label, "interruption_pct": pct, "savings_pct": float(savings)}, None
