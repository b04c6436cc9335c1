"""Shared parsing helpers: JSON loading, timestamp and number columns, raw-table frames, params."""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TypeVar

import orjson
import polars as pl
from pydantic import BaseModel, ValidationError

from skyshard.config.errors import yaml_path
from skyshard.sources.base import PayloadError, QuarantinedRow
from skyshard.sources.raw_tables import BY_NAME, INGEST_COLUMNS

Params = TypeVar("Params", bound=BaseModel)

_POLARS_TYPES = {
    "VARCHAR": pl.String,
    "TIMESTAMP": pl.Datetime("us"),
    "DOUBLE": pl.Float64,
    "VARCHAR[]": pl.List(pl.String),
}
_INGEST_NAMES = {name for name, _ in INGEST_COLUMNS}

# Timestamps outside this range are typos or unit mistakes (milliseconds sent as seconds).
EARLIEST = datetime(1990, 1, 1)
LATEST = datetime(2200, 1, 1)
_EARLIEST_S = EARLIEST.replace(tzinfo=UTC).timestamp()
_LATEST_S = LATEST.replace(tzinfo=UTC).timestamp()


def table_schema(table_name: str) -> dict[str, pl.DataType]:
    """Polars schema of a raw table as adapters produce it (without the ingestion columns)."""
    return {
        name: _POLARS_TYPES[sql_type]
        for name, sql_type in BY_NAME[table_name].columns
        if name not in _INGEST_NAMES
    }


def table_frame(table_name: str, columns: Mapping[str, object]) -> pl.DataFrame:
    """A frame with exactly the adapter columns of `table_name`, in table order and types."""
    schema = table_schema(table_name)
    missing = set(schema) - set(columns)
    if missing:
        raise KeyError(f"{table_name}: no values for columns {sorted(missing)}")
    return pl.DataFrame({name: columns[name] for name in schema}, schema=schema)


def rows_frame(table_name: str, rows: list[dict]) -> pl.DataFrame:
    """A raw-table frame from row dicts keyed by column name."""
    schema = table_schema(table_name)
    return pl.DataFrame({name: [row[name] for row in rows] for name in schema}, schema=schema)


_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def utf8_payload(payload: bytes, source_id: str, url: str) -> bytes:
    """`payload` as UTF-8 without a byte-order mark.

    Captures saved on Windows start with one (PowerShell 5's `>` even writes UTF-16), so a BOM
    names the encoding and is dropped; bytes that are not UTF-8 at all are refused by offset."""
    for bom, encoding in _BOMS:
        if payload.startswith(bom):
            try:
                return payload.decode(encoding).encode()
            except UnicodeDecodeError as exc:
                raise PayloadError(
                    source_id,
                    url,
                    f"starts with a {encoding} byte-order mark but {exc.reason} "
                    f"at byte {exc.start}",
                ) from None
    return payload


def load_json(payload: bytes, source_id: str, url: str) -> object:
    payload = utf8_payload(payload, source_id, url)
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        try:
            payload.decode()
        except UnicodeDecodeError as bad:
            raise PayloadError(
                source_id, url, f"not UTF-8: invalid byte at offset {bad.start}"
            ) from None
        raise PayloadError(source_id, url, f"not valid JSON: {exc}") from None


def parse_params(model: type[Params], source_id: str, url: str, params: Mapping) -> Params:
    """Validate a source's `params` mapping; problems name `params.<path>` and the value."""
    try:
        return model.model_validate(dict(params))
    except ValidationError as exc:
        problems = "; ".join(
            f"params.{yaml_path(tuple(e['loc']))}: got {e.get('input')!r}: {e['msg']}"
            for e in exc.errors()
        )
        raise PayloadError(source_id, url, f"invalid params: {problems}") from None


def unix_seconds_to_datetime(seconds: pl.Series) -> pl.Series:
    """Unix seconds (Float64) as naive UTC Datetime('us'); out-of-range or null stays null."""
    in_range = seconds.is_between(_EARLIEST_S, _LATEST_S) & seconds.is_not_null()
    micros = (seconds * 1_000_000).round(0)
    return (
        pl.select(
            pl.when(in_range).then(micros).otherwise(None).cast(pl.Int64).cast(pl.Datetime("us"))
        )
        .to_series()
        .rename(seconds.name)
    )


def parse_timestamps(text: pl.Series) -> pl.Series:
    """ISO 8601 (offset, `Z`, or none meaning UTC) or unix seconds → naive UTC; bad → null."""
    text = text.cast(pl.String, strict=False).str.strip_chars()
    # The common `...Z` form parses several times faster with a fixed format; the rest
    # (offsets, fractions, unix seconds) take the general path.
    parsed = text.str.to_datetime("%Y-%m-%dT%H:%M:%SZ", strict=False, time_unit="us").cast(
        pl.Datetime("us")
    )
    missing = parsed.is_null() & text.is_not_null()
    if missing.any():
        parsed = parsed.scatter(missing.arg_true(), _parse_any_timestamp(text.filter(missing)))
    in_range = parsed.is_between(EARLIEST, LATEST)
    return pl.select(pl.when(in_range).then(parsed).otherwise(None)).to_series()


def _parse_any_timestamp(text: pl.Series) -> pl.Series:
    normal = text.str.replace(r"[zZ]$", "+00:00").str.replace(" ", "T", literal=True)
    with_offset = (
        normal.str.to_datetime(
            "%Y-%m-%dT%H:%M:%S%.f%#z", strict=False, time_unit="us", time_zone="UTC"
        )
        .dt.replace_time_zone(None)
        .cast(pl.Datetime("us"))
    )
    without_offset = normal.str.to_datetime(
        "%Y-%m-%dT%H:%M:%S%.f", strict=False, time_unit="us"
    ).cast(pl.Datetime("us"))
    numeric = unix_seconds_to_datetime(text.cast(pl.Float64, strict=False))
    return pl.select(pl.coalesce(with_offset, without_offset, numeric)).to_series()


def parse_timestamp(value: object) -> datetime | None:
    """One ISO 8601 timestamp (as Statuspage writes them) → naive UTC, or None if not one."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed if EARLIEST <= parsed < LATEST else None


def finite_numbers(text: pl.Series) -> pl.Series:
    """Strings or numbers → Float64; non-numeric, NaN and infinite values become null."""
    numbers = text.cast(pl.String, strict=False).str.strip_chars().cast(pl.Float64, strict=False)
    return pl.select(pl.when(numbers.is_finite()).then(numbers).otherwise(None)).to_series()


def quarantine_rows(target_table: str, reasons: pl.Series, raw: pl.Series) -> list[QuarantinedRow]:
    """QuarantinedRow objects from parallel columns of reasons and raw text."""
    return [
        QuarantinedRow(target_table, reason, raw_value)
        for reason, raw_value in zip(reasons.to_list(), raw.to_list(), strict=True)
    ]


def dumps(value: object) -> str:
    """Compact JSON text of a raw value for the quarantine table (never raises)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return repr(value)


def read_csv_strings(
    payload: bytes, source_id: str, url: str, required: Sequence[str]
) -> pl.DataFrame:
    """A CSV payload as string columns plus `_raw` (the row's text, for quarantine)."""
    payload = utf8_payload(payload, source_id, url)
    # polars renames a repeated header name (`a_duplicated_0`), so repeats are found here.
    header = payload.split(b"\n", 1)[0].split(b"\r", 1)[0].decode("utf-8", "replace")
    try:
        stated = [name.strip() for name in next(csv.reader([header]), [])]
    except csv.Error as exc:
        raise PayloadError(source_id, url, f"not a readable CSV header: {exc}") from None
    _refuse_repeats(stated, source_id, url)
    try:
        frame = pl.read_csv(
            io.BytesIO(payload),
            infer_schema=False,
            encoding="utf8-lossy",
            raise_if_empty=False,
        )
    except pl.exceptions.PolarsError as exc:
        raise PayloadError(source_id, url, f"not a readable CSV: {exc}") from None
    names = [name.strip() for name in frame.columns]
    _refuse_repeats(names, source_id, url)
    frame = frame.rename(dict(zip(frame.columns, names, strict=True)))
    missing = [name for name in required if name not in frame.columns]
    if missing:
        raise PayloadError(
            source_id,
            url,
            f"CSV lacks required columns {missing} (found {frame.columns[:20]})",
        )
    return frame.with_columns(
        pl.concat_str(pl.all(), separator=",", ignore_nulls=True).alias("_raw")
    )


def _refuse_repeats(names: list[str], source_id: str, url: str) -> None:
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise PayloadError(source_id, url, f"CSV header repeats column names {repeated}")


def split_rows(
    frame: pl.DataFrame, checks: Sequence[tuple[pl.Expr, str | pl.Expr]], target_table: str
) -> tuple[pl.DataFrame, list[QuarantinedRow]]:
    """Rows passing every check, and the others as QuarantinedRow (first failed check's reason).

    Each check is (condition that marks a row bad, reason); the frame needs a `_raw` column.
    """
    if not checks or frame.height == 0:
        return frame, []
    reason = pl.when(checks[0][0]).then(_as_expr(checks[0][1]))
    for condition, text in checks[1:]:
        reason = reason.when(condition).then(_as_expr(text))
    marked = frame.with_columns(reason.alias("_reason"))
    bad = marked.filter(pl.col("_reason").is_not_null())
    quarantine = quarantine_rows(target_table, bad["_reason"], bad["_raw"].fill_null(""))
    return marked.filter(pl.col("_reason").is_null()).drop("_reason"), quarantine


def _as_expr(text: str | pl.Expr) -> pl.Expr:
    return pl.lit(text) if isinstance(text, str) else text


def text_series(values: list) -> pl.Series:
    """Strings as they are, numbers as text, anything else (objects, lists, bools) null."""
    return pl.Series(
        [v if isinstance(v, str) else str(v) if _is_number(v) else None for v in values],
        dtype=pl.String,
    )


def number_series(values: list) -> pl.Series:
    """Numbers as Float64, anything else null."""
    return pl.Series([float(v) if _is_number(v) else None for v in values], dtype=pl.Float64)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
