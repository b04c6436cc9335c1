"""AWS Health and Azure status feeds (RSS 2.0, Atom), written from the RSS and Atom specs."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skyshard.sources.base import FetchRequest, PayloadError
from skyshard.sources.rss_status import RssStatusAdapter
from tests.sources.conftest import make_source

ADAPTER = RssStatusAdapter()


def rss(items: list[tuple[str, str]]) -> bytes:
    body = "".join(
        f"<item><title>{title}</title><link>https://health.aws.amazon.com/health/status</link>"
        f"<pubDate>{date}</pubDate><guid isPermaLink='false'>g{i}</guid>"
        f"<description>details</description></item>"
        for i, (title, date) in enumerate(items)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        "<title>Amazon Elastic Compute Cloud (N. Virginia) Service Status</title>"
        f"<link>https://health.aws.amazon.com/</link>{body}</channel></rss>"
    ).encode()


def parse(payload: bytes, **params):
    source = make_source("rss_status", "file:///c/ec2-us-east-1.rss", **params)
    return ADAPTER.parse(FetchRequest("feed", source.url), payload, source, "aws-use1")


AWS_ITEMS = [
    ("Informational message: Increased API Error Rates", "Thu, 26 Nov 2026 14:05:00 PST"),
    ("Informational message: Increased API Error Rates", "Thu, 26 Nov 2026 14:40:00 PST"),
    (
        "Service is operating normally: [RESOLVED] Increased API Error Rates",
        "Thu, 26 Nov 2026 15:35:00 PST",
    ),
    ("Service disruption: Instance launch failures", "Fri, 27 Nov 2026 08:00:00 GMT"),
]


def test_aws_updates_group_into_incidents_in_the_feed_region():
    parsed = parse(rss(AWS_ITEMS), region="us-east-1")
    rows = parsed.frames["incidents"].sort("started_at").to_dicts()
    assert [(r["name"], r["impact"], r["status"]) for r in rows] == [
        ("Increased API Error Rates", "none", "resolved"),
        ("Instance launch failures", "major", "open"),
    ]
    assert rows[0]["started_at"] == dt.datetime(2026, 11, 26, 22, 5)
    assert rows[0]["resolved_at"] == dt.datetime(2026, 11, 26, 23, 35)
    assert rows[1]["resolved_at"] is None
    assert {tuple(r["regions"]) for r in rows} == {("us-east-1",)}
    assert parsed.quarantine == []
    again = parse(rss(AWS_ITEMS), region="us-east-1")
    assert again.frames["incidents"]["incident_id"].to_list() == [r["incident_id"] for r in rows]


def test_atom_with_region_patterns():
    atom = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Azure status</title><id>urn:azure-status</id><updated>2026-11-27T10:00:00Z</updated>
  <entry><id>urn:1</id><title>Degraded performance - Virtual Machines - West Europe</title>
    <updated>2026-11-27T09:00:00Z</updated><summary>...</summary></entry>
  <entry><id>urn:2</id><title>Mitigated - Virtual Machines - West Europe</title>
    <published>2026-11-27T09:45:00Z</published><summary>...</summary></entry>
  <entry><id>urn:3</id><title>Storage errors</title><updated>yesterday</updated></entry>
</feed>"""
    parsed = parse(atom, region_patterns=[{"match": "West Europe", "region": "eu-west"}])
    (row,) = parsed.frames["incidents"].to_dicts()
    assert row["name"] == "Virtual Machines - West Europe"
    assert row["impact"] == "minor" and row["regions"] == ["eu-west"]
    assert (row["started_at"], row["resolved_at"]) == (
        dt.datetime(2026, 11, 27, 9),
        dt.datetime(2026, 11, 27, 9, 45),
    )
    assert [q.reason for q in parsed.quarantine] == ["item has no readable publication date"]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa">]><rss>&a;</rss>', "refused"),
        (b"<rss><channel><item>", "not well-formed"),
        (b"<html></html>", "expected <rss> or Atom"),
        (b"\xef\xbb\xbf<rss><channel/></rss>", None),
    ],
)
def test_documents_refused_or_read(payload, message):
    if message is None:
        assert parse(payload).frames["incidents"].height == 0
        return
    with pytest.raises(PayloadError, match=message):
        parse(payload)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["Service disruption: X", "[RESOLVED] X", "", "Y &amp; Z"]),
            st.sampled_from(["Thu, 26 Nov 2026 14:05:00 PST", "soon", "", "Fri, 31 Dec 2199"]),
        ),
        max_size=6,
    ),
    st.integers(0, 40),
)
def test_fuzzed_feeds_never_raise_anything_but_payload_errors(items, cut):
    payload = rss(items)
    for candidate in (payload, payload[: len(payload) - cut]):
        try:
            parse(candidate)
        except PayloadError:
            continue
