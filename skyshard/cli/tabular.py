"""Query results as text for the command line: an aligned table (one block per row when too
wide for the terminal), CSV, JSON or Markdown. Nothing is ever cut short."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import date, datetime, time
from decimal import Decimal

FORMATS = ("table", "csv", "json", "markdown")
GAP = "  "


def cell(value: object) -> str:
    """How one value reads in a table: NULL as empty, floats to 4 significant digits."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, datetime | date | time):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    return str(value)


def _json_value(value: object) -> object:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return str(value)


def aligned(columns: Sequence[str], rows: Sequence[Sequence[object]], width: int | None) -> str:
    """Columns padded to their widest cell; when that is wider than `width` (None: no limit),
    each row becomes a block of `column  value` lines instead, so no cell is cut or folded."""
    cells = [[cell(v).replace("\n", " ") for v in row] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    if width is None or sum(widths) + len(GAP) * (len(widths) - 1) <= width:
        lines = [GAP.join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
        lines.append(GAP.join("-" * w for w in widths))
        lines += [GAP.join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
        return "\n".join(line.rstrip() for line in lines)
    label = max(len(c) for c in columns)
    blocks = [
        "\n".join(
            [f"-[ row {n} ]" + "-" * max(0, label - 8)]
            + [f"{c.ljust(label)}{GAP}{v}".rstrip() for c, v in zip(columns, r, strict=True)]
        )
        for n, r in enumerate(cells, start=1)
    ]
    return "\n".join(blocks)


def render(
    columns: Sequence[str], rows: Sequence[Sequence[object]], fmt: str, width: int | None = None
) -> str:
    """`rows` under `columns` in `fmt` (one of FORMATS); `width` only shapes `table`."""
    if fmt == "table":
        return aligned(columns, rows, width)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(["" if v is None else v for v in row] for row in rows)
        return buffer.getvalue().rstrip("\n")
    if fmt == "json":
        records = [dict(zip(columns, row, strict=True)) for row in rows]
        return json.dumps(records, indent=2, default=_json_value)
    if fmt == "markdown":

        def escape(value: object) -> str:
            return cell(value).replace("|", "\\|").replace("\n", " ")

        lines = ["| " + " | ".join(escape(c) for c in columns) + " |"]
        lines.append("|" + "|".join(" --- " for _ in columns) + "|")
        lines += ["| " + " | ".join(escape(v) for v in row) + " |" for row in rows]
        return "\n".join(lines)
    raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
