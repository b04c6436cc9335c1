"""Metadata helpers shared by asset modules: row counts, small previews, charts as PNG images and
column schemas."""

from __future__ import annotations

import base64
import io

import dagster as dg
import duckdb
import polars as pl
from matplotlib.figure import Figure

from skyshard import db
from skyshard.columns import column_description


def preview(frame: pl.DataFrame, rows: int = 10) -> dg.MetadataValue:
    """The first rows of a frame as a Markdown table for the asset page."""
    head = frame.head(rows)
    if head.is_empty():
        return dg.MetadataValue.md("_no rows_")
    header = "| " + " | ".join(head.columns) + " |"
    rule = "| " + " | ".join("---" for _ in head.columns) + " |"
    body = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in head.iter_rows()]
    return dg.MetadataValue.md("\n".join([header, rule, *body]))


def column_schema(con: duckdb.DuckDBPyConnection, qualified: str) -> dg.MetadataValue:
    """The table's columns with their DuckDB types as stored and what each means."""
    schema, name = qualified.split(".")
    columns = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_catalog = current_database() AND table_schema = ? AND table_name = ? "
        "ORDER BY ordinal_position",
        [schema, name],
    ).fetchall()
    return dg.MetadataValue.table_schema(
        dg.TableSchema(
            columns=[
                dg.TableColumn(column, kind, description=column_description(qualified, column))
                for column, kind in columns
            ]
        )
    )


def table_metadata(con: duckdb.DuckDBPyConnection, qualified: str) -> dict:
    """Row count, column schema and table name of a DuckDB table, as asset metadata."""
    return {
        "dagster/row_count": dg.MetadataValue.int(
            db.scalar(con, f"SELECT count(*) FROM {qualified}")
        ),
        "dagster/column_schema": column_schema(con, qualified),
        "dagster/table_name": dg.MetadataValue.text(qualified),
    }


def table_preview(con: duckdb.DuckDBPyConnection, qualified: str, rows: int = 10) -> dict:
    """Row count, column schema and preview of a DuckDB table, as asset metadata."""
    head = con.sql(f"SELECT * FROM {qualified} LIMIT {int(rows)}").pl()
    return {**table_metadata(con, qualified), "preview": preview(head, rows)}


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def markdown_bars(
    title: str, rows: list[tuple[str, float]], *, marks: set[str] = frozenset()
) -> str:
    """A Markdown bar chart, one row per (label, value); the UI renders Markdown, not images.

    Labels in `marks` get a warning sign (e.g. hours past capacity)."""
    top = max((value for _, value in rows), default=0) or 1e-9
    lines = [f"**{title}**", "", "| | | value |", "| --- | --- | ---: |"]
    for label, value in rows:
        bar = "█" * max(1 if value else 0, round(30 * value / top))
        flag = " ⚠" if label in marks else ""
        lines.append(f"| {label}{flag} | `{bar}` | {value:,.2f} |")
    return "\n".join(lines)


def problems_check(
    check_name: str,
    problems: list[str],
    asset_key: dg.AssetKey | str | None = None,
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
) -> dg.AssetCheckResult:
    """An asset check result that passes when there are no problems and lists the first ones."""
    return dg.AssetCheckResult(
        check_name=check_name,
        asset_key=asset_key,
        passed=not problems,
        severity=severity,
        metadata={
            "problems": len(problems),
            "first": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems[:10]) or "_none_"),
        },
    )


def png(figure: Figure, alt: str) -> dg.MetadataValue:
    """A matplotlib figure as a PNG image on the asset page (Markdown with a data URI: the
    UI renders images from Markdown and has no image metadata type)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{encoded})")
