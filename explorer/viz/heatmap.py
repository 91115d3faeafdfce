"""The heatmap every lab uses: axes labelled with the actual tokens, values on hover, -inf shown as such."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import torch


def unique_labels(tokens: Sequence[str]) -> list[str]:
    """Plotly merges equal category labels; number repeated tokens so 'the' twice stays two rows."""
    seen: dict[str, int] = {}
    out = []
    for tok in tokens:
        n = seen.get(tok, 0)
        seen[tok] = n + 1
        out.append(tok if n == 0 else f"{tok} ({n + 1})")
    return out


def to_numpy(m) -> np.ndarray:
    if isinstance(m, torch.Tensor):
        m = m.detach().float().cpu().numpy()
    return np.asarray(m, dtype=float)


def heatmap(
    matrix,
    x_labels: Sequence[str] | None = None,
    y_labels: Sequence[str] | None = None,
    *,
    title: str = "",
    x_title: str = "key (attended to)",
    y_title: str = "query (attending)",
    colorscale: str = "Blues",
    zmin: float | None = None,
    zmax: float | None = None,
    zmid: float | None = None,
    show_values: bool = False,
    height: int | None = None,
    value_format: str = ".3f",
) -> go.Figure:
    """A labelled heatmap. Cells equal to -inf are drawn blank and read '-inf' on hover and in the cell text."""
    z = to_numpy(matrix)
    rows, cols = z.shape
    x = unique_labels(x_labels) if x_labels is not None else [str(i) for i in range(cols)]
    y = unique_labels(y_labels) if y_labels is not None else [str(i) for i in range(rows)]
    neg_inf = np.isneginf(z)
    text = np.where(neg_inf, "-inf", np.vectorize(lambda v: format(v, value_format))(np.where(neg_inf, 0, z)))
    shown = np.where(neg_inf, np.nan, z)
    # One constructor call: plotly validates every update_* pass again, and that costs several ms per figure,
    # which adds up on pages that draw a dozen heatmaps per slider move.
    return go.Figure(
        data=[go.Heatmap(
            z=shown, x=x, y=y, text=text, colorscale=colorscale, zmin=zmin, zmax=zmax, zmid=zmid,
            texttemplate="%{text}" if show_values else None,
            hovertemplate=f"{y_title}: %{{y}}<br>{x_title}: %{{x}}<br>value: %{{text}}<extra></extra>",
            hoverongaps=True,
        )],
        layout=dict(
            title=dict(text=title), height=height or max(260, 40 + 24 * rows),
            xaxis=dict(title=dict(text=x_title), type="category", tickangle=-45 if cols > 8 else 0),
            yaxis=dict(title=dict(text=y_title), type="category", autorange="reversed"),
            margin=dict(l=10, r=10, t=40 if title else 10, b=10),
            plot_bgcolor="#eeeeee",  # masked (-inf) cells show this grey
        ),
    )
