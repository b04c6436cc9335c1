"""Series ids: `<kind>/<owner>/<name>`, one type to build and parse them.

- `shard/<shard id>/<metric>`: a shard's demand (`cpu`, `mem_gb`, `net_mbps`);
- `host/<host id>/<resource>_free`: a host's free capacity;
- `capacity/<provider id>/cpu`: a provider's total cpu capacity;
- `price/<provider id>/<region>`: a provider's price per cpu hour in a region.

Owners are configuration ids (no `/`, see `skyshard.config.base.Identifier`), so the format
parses unambiguously. `SeriesId.name` is the metric, resource or region; the `_free` of a
host series exists only in the text. `series_id_expr` and `parse_series_ids` do the same for
polars columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import polars as pl

SEPARATOR = "/"
FREE_SUFFIX = "_free"


class SeriesKind(StrEnum):
    SHARD = "shard"
    HOST = "host"
    CAPACITY = "capacity"
    PRICE = "price"


@dataclass(frozen=True)
class SeriesId:
    kind: SeriesKind
    owner: str
    name: str

    def __post_init__(self) -> None:
        for field, value in (("owner", self.owner), ("name", self.name)):
            if not value or SEPARATOR in value:
                raise ValueError(
                    f"series id {field} must be non-empty without {SEPARATOR!r}, got {value!r}"
                )

    def __str__(self) -> str:
        suffix = FREE_SUFFIX if self.kind == SeriesKind.HOST else ""
        return SEPARATOR.join((self.kind.value, self.owner, self.name + suffix))

    @classmethod
    def parse(cls, text: str) -> SeriesId:
        parts = text.split(SEPARATOR)
        kinds = [k.value for k in SeriesKind]
        host = parts[0] == SeriesKind.HOST and parts[-1].endswith(FREE_SUFFIX)
        if len(parts) != 3 or parts[0] not in kinds or (parts[0] == SeriesKind.HOST) != host:
            raise ValueError(
                f"series id {text!r} is not <kind>/<owner>/<name> with kind one of {kinds} "
                f"(a host's name ends in {FREE_SUFFIX!r})"
            )
        name = parts[2].removesuffix(FREE_SUFFIX) if host else parts[2]
        return cls(SeriesKind(parts[0]), parts[1], name)

    @classmethod
    def shard(cls, shard_id: str, metric: str) -> SeriesId:
        return cls(SeriesKind.SHARD, shard_id, metric)

    @classmethod
    def host(cls, host_id: str, resource: str) -> SeriesId:
        return cls(SeriesKind.HOST, host_id, resource)

    @classmethod
    def capacity(cls, provider_id: str) -> SeriesId:
        return cls(SeriesKind.CAPACITY, provider_id, "cpu")

    @classmethod
    def price(cls, provider_id: str, region: str) -> SeriesId:
        return cls(SeriesKind.PRICE, provider_id, region)

    @property
    def group(self) -> str:
        """Series alike enough to share one pool of forecast errors, e.g. `shard/cpu`."""
        return f"{self.kind.value}{SEPARATOR}{self.name if self.kind != SeriesKind.PRICE else '*'}"


def series_group(text: str) -> str:
    """The `SeriesId.group` of an id, or "other" for an id outside this format (forecasting
    accepts any id)."""
    try:
        return SeriesId.parse(text).group
    except ValueError:
        return "other"


def series_id_expr(kind: SeriesKind, owner: str | pl.Expr, name: str | pl.Expr) -> pl.Expr:
    """The `series_id` of a frame's rows: `owner` is a column name or an expression, `name` a
    literal or an expression."""
    owner_expr = pl.col(owner) if isinstance(owner, str) else owner
    name_expr = pl.lit(name) if isinstance(name, str) else name
    if kind == SeriesKind.HOST:
        name_expr = name_expr + pl.lit(FREE_SUFFIX)
    return pl.concat_str([pl.lit(kind.value), owner_expr, name_expr], separator=SEPARATOR).alias(
        "series_id"
    )


def parse_series_ids(column: str = "series_id") -> list[pl.Expr]:
    """Expressions for the `kind`, `owner` and `name` of a series id column (as `SeriesId`)."""
    parts = pl.col(column).str.split(SEPARATOR)
    kind = parts.list.get(0, null_on_oob=True)
    name = parts.list.get(2, null_on_oob=True)
    host = kind == SeriesKind.HOST.value
    return [
        kind.alias("kind"),
        parts.list.get(1, null_on_oob=True).alias("owner"),
        pl.when(host).then(name.str.strip_suffix(FREE_SUFFIX)).otherwise(name).alias("name"),
    ]
