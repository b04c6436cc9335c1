"""Random and mutated payloads: an adapter either raises PayloadError or returns rows."""

from __future__ import annotations

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skyshard.sources.base import FetchRequest, PayloadError
from skyshard.sources.frames import table_schema
from skyshard.sources.raw_tables import BY_NAME
from skyshard.sources.registry import ADAPTERS
from tests.sources.conftest import make_source

SOURCES = {
    "prometheus": make_source(
        "prometheus",
        "file:///c",
        queries=[
            {"name": "u", "kind": "shard_usage", "metric": "cpu", "query": "x"},
            {"name": "l", "kind": "latency", "query": "y", "src_label": "src", "dst_label": "dst"},
        ],
    ),
    "statuspage": make_source("statuspage", "file:///c"),
    "aws_spot_price_history": make_source(
        "aws_spot_price_history", "file:///c/s.json", instance_types={"m5.large": {"cpu": 2}}
    ),
    "csv_usage": make_source("csv_usage", "file:///c/u.csv"),
    "csv_prices": make_source("csv_prices", "file:///c/p.csv"),
}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats()
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
sample = st.one_of(
    st.tuples(
        st.integers(0, 4_000_000_000) | st.floats() | st.text(max_size=5),
        st.text(max_size=6) | st.floats(),
    ).map(list),
    json_values,
)
series = st.fixed_dictionaries(
    {
        "metric": st.dictionaries(
            st.sampled_from(["shard", "src", "dst", "job"]),
            st.sampled_from(["api-000", "cloud-a", "BAD id", ""]) | json_values,
            max_size=3,
        )
        | json_values,
        "values": st.lists(sample, max_size=6) | json_values,
    }
)
prometheus_doc = st.fixed_dictionaries(
    {
        "status": st.sampled_from(["success", "error"]) | json_values,
        "data": st.fixed_dictionaries(
            {
                "resultType": st.sampled_from(["matrix", "vector"]),
                "result": st.lists(series | json_values, max_size=4),
            }
        )
        | json_values,
    }
)
incident = st.fixed_dictionaries(
    {
        "id": st.text(max_size=4) | json_values,
        "created_at": st.sampled_from(["2026-11-27T00:00:00Z", "x"]) | json_values,
    },
    optional={
        "impact": st.sampled_from(["minor", "maintenance", "weird"]) | json_values,
        "scheduled_for": json_values,
        "resolved_at": st.sampled_from(["2026-11-27T01:00:00Z", "nope"]) | json_values,
        "status": st.sampled_from(["resolved", "completed"]) | json_values,
        "components": st.lists(st.fixed_dictionaries({"name": json_values}), max_size=2)
        | json_values,
    },
)
statuspage_doc = st.fixed_dictionaries(
    {
        "incidents": st.lists(incident | json_values, max_size=4) | json_values,
        "components": st.lists(
            st.fixed_dictionaries({"id": json_values, "name": json_values}), max_size=3
        )
        | json_values,
        "scheduled_maintenances": st.lists(incident, max_size=3) | json_values,
    }
)
spot_entry = st.fixed_dictionaries(
    {
        "AvailabilityZone": st.sampled_from(["us-east-1a", ""]) | json_values,
        "InstanceType": st.sampled_from(["m5.large", "x1"]) | json_values,
        "SpotPrice": st.sampled_from(["0.1", "-3", "NaN"]) | json_values,
        "Timestamp": st.sampled_from(["2026-11-27T00:00:00+00:00", "1795737600", "later"])
        | json_values,
    }
)
spot_doc = st.fixed_dictionaries(
    {"SpotPriceHistory": st.lists(spot_entry | json_values, max_size=5) | json_values}
)
csv_cell = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=8)
csv_text = st.lists(st.lists(csv_cell, min_size=1, max_size=6), max_size=6).map(
    lambda rows: "\n".join(",".join(r) for r in rows)
)


def check(type_: str, name: str, payload: bytes) -> None:
    source = SOURCES[type_]
    try:
        parsed = ADAPTERS[type_].parse(
            FetchRequest(name, f"{source.url}/{name}"), payload, source, "cloud-a"
        )
    except PayloadError as exc:
        assert source.id in str(exc)
        return
    for table, frame in parsed.frames.items():
        assert frame.schema == table_schema(table)
    for row in parsed.quarantine:
        assert row.target_table in BY_NAME and row.reason


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(doc=prometheus_doc, name=st.sampled_from(["u", "l"]))
def test_prometheus_never_crashes(doc, name):
    check("prometheus", name, orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS))


@SETTINGS
@given(doc=statuspage_doc, name=st.sampled_from(["summary", "incidents", "scheduled_maintenances"]))
def test_statuspage_never_crashes(doc, name):
    check("statuspage", name, orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS))


@SETTINGS
@given(doc=spot_doc)
def test_spot_json_never_crashes(doc):
    check(
        "aws_spot_price_history",
        "spot_price_history",
        orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS),
    )


@SETTINGS
@given(body=csv_text, header=st.booleans(), type_=st.sampled_from(["csv_usage", "csv_prices"]))
def test_csv_never_crashes(body, header, type_):
    columns = {
        "csv_usage": "timestamp,shard_id,metric,value",
        "csv_prices": "timestamp,region,instance_type,price,cpu_per_instance",
    }[type_]
    text = (columns + "\n" + body) if header else body
    check(type_, "x", text.encode())


@SETTINGS
@given(data=st.binary(max_size=200), type_=st.sampled_from(sorted(SOURCES)))
def test_random_bytes_never_crash(data, type_):
    name = {"prometheus": "u", "statuspage": "incidents"}.get(type_, "x")
    check(type_, name, data)


@SETTINGS
@given(cut=st.integers(0, 400), type_=st.sampled_from(["prometheus", "statuspage"]))
def test_truncated_payloads_never_crash(cut, type_):
    good = {
        "prometheus": orjson.dumps(
            {
                "status": "success",
                "data": {
                    "resultType": "matrix",
                    "result": [
                        {
                            "metric": {"shard": "a-1"},
                            "values": [[1795737600, "1"], [1795737900, "2"]],
                        }
                    ],
                },
            }
        ),
        "statuspage": orjson.dumps(
            {"incidents": [{"id": "i", "created_at": "2026-11-27T00:00:00Z", "impact": "minor"}]}
        ),
    }[type_]
    check(type_, "u" if type_ == "prometheus" else "incidents", good[:cut])
