"""A figure's numbers as a table a student can open in a spreadsheet: the CSV beside every chart's PNG."""
from __future__ import annotations

import io
from typing import Any

import pandas as pd

CSV_ENCODING = "utf-8-sig"  # with a byte-order mark: spreadsheet programs then read 今天 as text, not mojibake


def _seq(values: Any) -> list:
    if values is None:
        return []
    if hasattr(values, "tolist"):
        values = values.tolist()
    return list(values)


def _trace_rows(index: int, trace: Any) -> list[dict]:
    name = trace.name or f"{trace.type} {index + 1}"
    if trace.type in ("heatmap", "contour", "surface"):
        z = [_seq(row) for row in _seq(trace.z)]
        xs, ys = _seq(trace.x), _seq(trace.y)
        rows = []
        for i, row in enumerate(z):
            for j, value in enumerate(row):
                rows.append({"trace": name, "x": xs[j] if j < len(xs) else j, "y": ys[i] if i < len(ys) else i,
                             "value": value})
        return rows
    xs, ys = _seq(getattr(trace, "x", None)), _seq(getattr(trace, "y", None))
    n = max(len(xs), len(ys))
    return [{"trace": name, "x": xs[i] if i < len(xs) else i, "y": ys[i] if i < len(ys) else None}
            for i in range(n)]


def figure_table(fig) -> pd.DataFrame:
    """Every trace's numbers in long form: heatmaps as (x, y, value) per cell, bars and lines as (x, y)."""
    rows = [row for i, trace in enumerate(fig.data) for row in _trace_rows(i, trace)]
    columns = ["trace", "x", "y"] + (["value"] if any("value" in r for r in rows) else [])
    return pd.DataFrame(rows, columns=columns)


def figure_csv(fig) -> bytes:
    buffer = io.StringIO()
    figure_table(fig).to_csv(buffer, index=False)
    return buffer.getvalue().encode(CSV_ENCODING)
