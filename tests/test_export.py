"""A chart's numbers as CSV (explorer.viz.export): the table holds exactly the numbers plotly draws, cell by cell
for a heatmap and point by point for bars and lines, and the file opens in pandas (and a spreadsheet) with its
Chinese labels intact."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from explorer.viz.export import CSV_ENCODING, figure_csv, figure_table

TOKENS = ["今天", "天气", "很", "好"]


def _heatmap() -> go.Figure:
    rng = np.random.default_rng(0)
    z = rng.random((3, 4))  # rows are y, columns are x, as plotly draws them
    return go.Figure(go.Heatmap(z=z, x=TOKENS, y=TOKENS[:3], name="weights"))


def test_a_heatmaps_cells_are_the_ones_plotly_draws():
    fig = _heatmap()
    table = figure_table(fig)
    trace = fig.data[0]
    # plotly is the reference: the value drawn at (x[j], y[i]) is z[i][j]
    expected = {(trace.x[j], trace.y[i]): trace.z[i][j] for i in range(len(trace.y)) for j in range(len(trace.x))}
    got = {(row.x, row.y): row.value for row in table.itertuples()}
    assert got == expected
    assert len(table) == trace.z.size and set(table["trace"]) == {"weights"}


def test_a_heatmap_without_axes_is_indexed_like_plotly():
    fig = go.Figure(go.Heatmap(z=[[1, 2, 3], [4, 5, 6]]))
    table = figure_table(fig)
    assert sorted(zip(table.x, table.y, table.value)) == [(0, 0, 1), (0, 1, 4), (1, 0, 2), (1, 1, 5), (2, 0, 3),
                                                          (2, 1, 6)]


def test_bars_and_lines_keep_their_points_and_trace_names():
    fig = go.Figure([go.Bar(x=TOKENS, y=np.array([0.1, 0.2, 0.3, 0.4]), name="p"),
                     go.Scatter(x=np.arange(5), y=np.arange(5) ** 2, mode="lines", name="曲线"),
                     go.Bar(y=["a", "b"], x=[3, 4], orientation="h")])
    table = figure_table(fig)
    for k, trace in enumerate(fig.data):
        name = trace.name or table["trace"].unique()[k]
        rows = table[table["trace"] == name]
        assert list(rows.x) == list(trace.x) and list(rows.y) == list(trace.y), name
    assert "value" not in table.columns, "no heatmap: no value column"
    assert list(table["trace"].unique()) == ["p", "曲线", "bar 3"]


def test_the_csv_opens_in_pandas_and_keeps_the_chinese():
    fig = _heatmap()
    data = figure_csv(fig)
    assert data.startswith("\ufeff".encode("utf-8")), "a byte-order mark: spreadsheets then read UTF-8"
    back = pd.read_csv(io.BytesIO(data), encoding=CSV_ENCODING)
    assert "今天" in set(back["x"]) and "今天" in set(back["y"])
    table = figure_table(fig)
    assert list(back.columns) == list(table.columns)
    np.testing.assert_array_equal(back["value"].to_numpy(), table["value"].to_numpy())  # repr round-trips floats
