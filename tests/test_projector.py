"""Presenter mode's figures (explorer.viz.projector): every piece of text plotly can draw is at least 18 px, whether
the figure sets its size or leaves it to plotly's default. full_figure_for_development would resolve the defaults
but needs Kaleido and a browser per figure; instead the projected figure is walked, and the places where plotly
draws text with a default of its own (not the layout's font) are checked to be set."""
from __future__ import annotations

import base64
import numpy as np
import plotly.graph_objects as go
import pytest
from plotly.subplots import make_subplots

from explorer.viz.projector import PROJECTOR_MIN_PX, for_projector


def _sizes(node, path="") -> list[tuple[str, float]]:
    """Every font size set anywhere in a figure's JSON, with where."""
    found = []
    if isinstance(node, dict):
        for name, value in node.items():
            here = f"{path}.{name}"
            if name == "size" and "font" in path.rsplit(".", 1)[-1].lower():
                if isinstance(value, dict) and "bdata" in value:  # a numpy array, as to_plotly_json writes it
                    value = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
                sizes = value.tolist() if hasattr(value, "tolist") else value
                found += [(here, s) for s in (sizes if isinstance(sizes, list) else [sizes])]
            found += _sizes(value, here)
    elif isinstance(node, (list, tuple)):
        for i, item in enumerate(node):
            found += _sizes(item, f"{path}[{i}]")
    return found


def _busy_figure() -> go.Figure:
    """Text in every place the labs put it: small explicit sizes, per-point sizes, subplot titles, annotations,
    colour bars, legends, hover labels, heatmap cell text and bar labels left to plotly's own sizing."""
    fig = make_subplots(rows=1, cols=3, subplot_titles=("weights", "scores", "logits"))
    z = np.arange(12, dtype=float).reshape(3, 4) / 12
    fig.add_trace(go.Heatmap(z=z, x=list("abcd"), y=["今天", "天气", "很好"], texttemplate="%{z:.2f}",
                             colorbar=dict(title=dict(text="p", font=dict(size=9)), tickfont=dict(size=8))),
                  row=1, col=1)
    fig.add_trace(go.Bar(x=["a", "b"], y=[0.3, 0.7], text=["0.30", "0.70"], textposition="inside",
                         name="bars"), row=1, col=2)
    fig.add_trace(go.Scatter(x=[0, 1, 2], y=[1, 2, 3], mode="lines+markers+text", text=["x", "y", "z"],
                             textfont=dict(size=np.array([9.0, 10.0, 30.0])), name="line"), row=1, col=3)
    fig.add_annotation(text="note", x=1, y=1, showarrow=False, font=dict(size=10))
    fig.update_layout(title=dict(text="A figure", font=dict(size=14)), font=dict(size=11),
                      legend=dict(font=dict(size=10), title=dict(text="legend")),
                      xaxis=dict(tickfont=dict(size=9), title=dict(text="x", font=dict(size=10))))
    return fig


@pytest.mark.parametrize("make", [_busy_figure, go.Figure, lambda: go.Figure(go.Heatmap(z=[[1, 2], [3, 4]]))],
                         ids=["busy", "empty", "bare heatmap"])
def test_every_font_size_of_a_projected_figure_is_legible(make):
    spec = for_projector(make()).to_plotly_json()
    small = [(where, size) for where, size in _sizes(spec) if isinstance(size, (int, float)) and
             size < PROJECTOR_MIN_PX]
    assert not small, small
    layout = spec["layout"]
    # The layout's font is the default of titles, ticks, legends, colour bars and annotations left unset.
    assert layout["font"]["size"] >= PROJECTOR_MIN_PX
    # Hover labels default to 13 px and ignore the layout's font size: they must be set.
    assert layout["hoverlabel"]["font"]["size"] >= PROJECTOR_MIN_PX
    # Bar labels inside a bar shrink to fit it unless uniformtext sets a floor.
    assert layout["uniformtext"]["minsize"] >= PROJECTOR_MIN_PX
    # Streamlit's chart theme sets these in rem (15 px colour-bar ticks once presenter mode raises the root font to
    # 20 px): the figure must set each itself.
    axes = [name for name in layout if name[1:5] == "axis"]
    assert {"xaxis", "yaxis"} <= set(axes)
    for name in axes:
        assert layout[name]["tickfont"]["size"] >= PROJECTOR_MIN_PX, name
        assert layout[name]["title"]["font"]["size"] >= PROJECTOR_MIN_PX, name
    for where in (("title",), ("legend",), ("legend", "title")):
        node = layout
        for part in where:
            node = node[part]
        assert node["font"]["size"] >= PROJECTOR_MIN_PX, where
    for trace in spec["data"]:
        if trace["type"] == "heatmap":
            assert trace["colorbar"]["tickfont"]["size"] >= PROJECTOR_MIN_PX
            assert trace["colorbar"]["title"]["font"]["size"] >= PROJECTOR_MIN_PX
    # Heatmap cell text is sized to the cell by plotly.js when its textfont has no size.
    for trace in spec["data"]:
        if trace.get("text") is not None or trace.get("texttemplate"):
            assert trace["textfont"]["size"] is not None, trace["type"]


def test_sizes_already_large_are_kept_and_the_original_figure_is_untouched():
    fig = _busy_figure()
    before = fig.to_plotly_json()
    projected = for_projector(fig).to_plotly_json()
    assert fig.to_plotly_json() == before or str(fig.to_plotly_json()) == str(before)
    assert projected["data"][2]["textfont"]["size"][2] == 30.0
    assert projected["layout"]["title"]["font"]["size"] == PROJECTOR_MIN_PX
    assert projected["data"][0]["z"] == before["data"][0]["z"] or np.array_equal(projected["data"][0]["z"],
                                                                                   before["data"][0]["z"])


def test_the_projected_figure_is_what_plotly_validates():
    """for_projector skips plotly's validation of its copy (a cost on every rerun): the copy must be the figure a
    validated one would be, down to its JSON."""
    import json

    import plotly.io as pio

    projected = for_projector(_busy_figure())
    validated = go.Figure(projected.to_plotly_json())
    assert json.loads(pio.to_json(projected, validate=False)) == json.loads(pio.to_json(validated, validate=False))


@pytest.mark.parametrize("y_title", ["query (attending)", "查询（发出注意力的词元）"])
def test_a_short_heatmap_keeps_room_for_its_upright_axis_title(y_title):
    """Three rows are 39 px of plot; the vertical axis title, turned upright, is 100-170 px long and ran into the
    figure's title, most visibly at the projector's 18 px."""
    from explorer.viz.heatmap import AXIS_TITLE_FONT_PX, heatmap
    from explorer.viz.label_room import text_px

    fig = heatmap(np.zeros((3, 3)), ["a", "b", "c"], ["a", "b", "c"], title="QKᵀ", y_title=y_title)
    for figure, font_px in ((fig, AXIS_TITLE_FONT_PX), (for_projector(fig), PROJECTOR_MIN_PX)):
        layout = figure.layout
        plot_px = layout.height - layout.margin.t - layout.margin.b
        assert plot_px >= text_px(y_title, font_px), (font_px, plot_px)
