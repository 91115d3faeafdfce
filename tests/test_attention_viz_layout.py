"""Layout of the heatmap figures, checked in pixels from the figure itself (issue 9, section 4): every row label is
shown, column labels and panel titles have rooms of their own, labels of one panel never sit on another, -inf cells
are a grey of their own in both themes, and steps 3 and 4 share one colour scale.

Label widths use label_room.text_px, an upper estimate; tests/browser/test_heatmap_labels_browser.py measures the
rendered labels in Chromium at 1366 and 1920 px.
"""
import numpy as np
import pytest

from explorer.viz.attention import head_grid, matrix_figure, shared_bound, vectors_grid
from explorer.viz.grid import panel_grid
from explorer.viz.heatmap import MASKED_COLOUR, MASKED_TEXT, heatmap, unique_labels
from explorer.viz.label_room import COLORBAR_PX, FULL_WIDTH_PX, LINE_PX, STEP_WIDTH_PX, text_px, widest_px
from explorer.viz.positional import permutation_figure, similarity_figure, table_figure
from explorer.labs.positional import PermutationResult

WORDS = "The quick brown fox jumps over the lazy dog and then some more words here ok".split()
LONG = ["[PAD]", "tokenisation", "今天", "天气", "##ing"] * 7  # 35: past the lab's 32 tokens, with [PAD]s


def _axes(fig, letter):
    lay = fig.layout.to_plotly_json()
    return {k: v for k, v in lay.items() if k.startswith(f"{letter}axis")}


def _plot_height(fig) -> float:
    m = fig.layout.margin
    return fig.layout.height - m.t - m.b


def _rng(seed, *shape):
    return np.random.default_rng(seed).random(shape)


@pytest.mark.parametrize("labels", [WORDS[:9], WORDS, LONG])
@pytest.mark.parametrize("n_head", [4, 8, 16])
def test_head_grid_keeps_every_row_label_with_a_line_of_its_own(n_head, labels):
    T = len(labels)
    fig = head_grid(_rng(0, n_head, T, T), labels)
    ys = _axes(fig, "y")
    first_column = [a for a in ys.values() if a["showticklabels"]]
    assert len(first_column) == -(-n_head // 4)  # one labelled axis per row of panels
    for axis in first_column:
        assert axis["tickvals"] == unique_labels(labels)  # all of them: Plotly skipped every other one
        rows_px = (axis["domain"][1] - axis["domain"][0]) * _plot_height(fig)
        assert rows_px / T >= axis["tickfont"]["size"] * 1.2


@pytest.mark.parametrize("labels", [WORDS[:9], WORDS, LONG])
def test_rows_of_panels_leave_room_for_column_labels_and_the_next_titles(labels):
    T = len(labels)
    fig = head_grid(_rng(1, 8, T, T), labels)
    ys, xs = _axes(fig, "y"), _axes(fig, "x")
    tops = sorted({round(a["domain"][1], 9) for a in ys.values()}, reverse=True)
    bottoms = sorted({round(a["domain"][0], 9) for a in ys.values()}, reverse=True)
    assert len(tops) == 2
    gap_px = (bottoms[0] - tops[1]) * _plot_height(fig)
    font = next(iter(xs.values()))["tickfont"]["size"]
    title_px = 11 * LINE_PX  # the panel titles' font
    assert gap_px >= widest_px(unique_labels(labels), font) + title_px  # upright labels, then a title line
    assert all(set(a["autotickangles"]) <= {0, 90} for a in xs.values())  # never slanted across a neighbour
    below_last_px = bottoms[-1] * _plot_height(fig) + fig.layout.margin.b
    assert below_last_px >= widest_px(unique_labels(labels), font)


def test_shared_row_labels_sit_once_at_the_left_within_the_margin():
    labels = WORDS
    for fig in (head_grid(_rng(2, 8, 16, 16), labels),
                vectors_grid([_rng(3, 16, 8)] * 3, labels, ["Q", "K", "V"])):
        ys = list(_axes(fig, "y").values())
        xs = list(_axes(fig, "x").values())
        labelled = [y for y, x in zip(ys, xs) if y["showticklabels"]]
        assert all(x["domain"][0] == 0 for y, x in zip(ys, xs) if y["showticklabels"])
        assert len(labelled) < len(ys)
        assert fig.layout.margin.l >= widest_px(unique_labels(labels), labelled[0]["tickfont"]["size"])


@pytest.mark.parametrize("min_width", [FULL_WIDTH_PX, STEP_WIDTH_PX])
def test_panels_with_their_own_row_labels_hold_them_between_panels(min_width):
    labels = ["tokenisation", "今天天气", "[PAD] (2)", "x"]
    other = list(reversed(labels))
    fig = panel_grid([_rng(4, 4, 4)] * 3, [labels, other, labels], [labels, other, labels], ["a", "b", "c"],
                     cols=3, min_width=min_width)
    xs = list(_axes(fig, "x").values())
    assert all(y["showticklabels"] for y in _axes(fig, "y").values())
    assert fig.layout.margin.r >= COLORBAR_PX  # the colour bar's room is the right margin: Plotly adds none
    plot_px = min_width - fig.layout.margin.l - fig.layout.margin.r
    for left, right in zip(xs, xs[1:]):
        gap_px = (right["domain"][0] - left["domain"][1]) * plot_px
        assert gap_px >= widest_px(labels + other, 10)


def test_permutation_figure_labels_each_panel_with_its_own_order():
    labels = ("今", "天", "天 (2)", "气")
    res = PermutationResult(labels=labels, shuffled_labels=labels[::-1], order=(3, 2, 1, 0),
                            original=_rng(5, 2, 4, 4), shuffled=_rng(6, 2, 4, 4), unshuffled=_rng(5, 2, 4, 4),
                            max_abs_diff=0.0)
    ys = list(_axes(permutation_figure(res, 0, "en"), "y").values())
    assert [y["tickvals"] for y in ys] == [list(labels), list(labels[::-1]), list(labels)]
    assert all(y["showticklabels"] for y in ys)


@pytest.mark.parametrize("n_pos", [16, 32, 64])
def test_positional_tables_label_every_position(n_pos):
    pos = [f"{p} {t}" for p, t in zip(range(n_pos), "今天天气很好")] + [str(p) for p in range(6, n_pos)]
    for fig in (table_figure(_rng(7, n_pos, 64) * 2 - 1, pos, title="PE", lang="en"),
                similarity_figure(_rng(8, n_pos, n_pos), pos, title="cos", lang="en")):
        y = fig.layout.yaxis
        assert list(y.tickvals) == pos  # '1 天' was skipped
        assert _plot_height(fig) / n_pos >= y.tickfont.size * 1.2
        assert fig.layout.margin.b >= widest_px(list(fig.data[0].x), fig.layout.xaxis.tickfont.size)


def test_steps_3_and_4_share_one_colour_scale_with_numbers_in_small_matrices():
    qk = _rng(9, 6, 6) * 20 - 10
    scaled = qk / 4
    bound = shared_bound(qk, scaled)
    assert bound == pytest.approx(np.abs(qk).max())
    figs = [matrix_figure(m, WORDS[:6], WORDS[:6], title=t, bound=bound) for m, t in ((qk, "QK"), (scaled, "s"))]
    assert {(f.data[0].zmin, f.data[0].zmax) for f in figs} == {(-bound, bound)}
    assert all(f.data[0].texttemplate == "%{text}" for f in figs)
    big = matrix_figure(_rng(9, 11, 11), WORDS[:11], WORDS[:11], title="QK", bound=bound)
    assert big.data[0].texttemplate is None  # 11 x 11 numbers no longer fit a projected cell


def _contrast(a: str, b: str) -> float:
    def lum(hex_):
        rgb = [int(hex_[i:i + 2], 16) / 255 for i in (1, 3, 5)]
        lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_masked_cells_are_grey_without_grid_lines_in_both_themes():
    z = np.triu(np.full((5, 5), -np.inf), 1) + _rng(10, 5, 5)
    single = heatmap(z, WORDS[:5], WORDS[:5], colorscale="RdBu_r", show_values=True)
    grid = panel_grid([z, z], [WORDS[:5]] * 2, [WORDS[:5]] * 2, ["a", "b"], colorscale="Reds_r", zmin=-1, zmax=0)
    for fig in (single, grid):
        assert fig.layout.plot_bgcolor == MASKED_COLOUR
        assert fig.layout.margin.pad == 0  # Streamlit's theme pads by 8 px: a grey frame
        for axis in list(_axes(fig, "x").values()) + list(_axes(fig, "y").values()):
            assert axis["showgrid"] is False and axis["zeroline"] is False  # dark theme: struck-through cells
    # apart from Streamlit's light and dark backgrounds, and white text on it is legible
    assert _contrast(MASKED_COLOUR, "#ffffff") >= 4.5 and _contrast(MASKED_COLOUR, "#0e1117") >= 3
    r, g, b = (int(MASKED_COLOUR[i:i + 2], 16) for i in (1, 3, 5))
    assert r == g == b  # no hue: it cannot be read as a value on any colour scale
    overlay = single.data[1]
    masked = ~np.isnan(np.array(overlay.z, dtype=float))
    assert (masked == np.isneginf(z)).all() and not overlay.showscale
    assert (np.array(overlay.text) == np.where(np.isneginf(z), MASKED_TEXT, "")).all()
    assert not (np.array(single.data[0].text)[np.isneginf(z)] != "").any()  # nothing written under the '−∞'

    no_mask = heatmap(_rng(11, 3, 3), show_values=True)
    assert len(no_mask.data) == 1 and no_mask.layout.plot_bgcolor != MASKED_COLOUR


def test_text_width_estimate_is_an_upper_bound_for_cjk_and_latin():
    assert text_px("今天") == 2 * text_px("今")
    assert text_px("mmmm") >= 4 * 10 * 0.6


@pytest.mark.parametrize("labels", [WORDS[:4], LONG[:32]])
def test_a_pair_of_steps_keeps_both_panels_with_their_own_room(labels):
    from explorer.viz.attention import PANEL_GAP_PX, pair_figure

    n = len(labels)
    mask = np.where(np.tril(np.ones((n, n))) > 0, 0.0, -np.inf)
    scores = _rng(3, n, n) * 8 - 4
    bound = shared_bound(scores)
    left = matrix_figure(mask, labels, labels, title="M", kind="mask")
    right = matrix_figure(scores + mask, labels, labels, title="scores + M", bound=bound)
    pair = pair_figure(left, right, "M -> scores + M")
    (x0, x1), (x2, x3) = pair.layout.xaxis.domain, pair.layout.xaxis2.domain
    assert x0 == 0 and x3 == 1 and x1 < x2 and x1 - x0 == pytest.approx(x3 - x2)  # two equal panels, apart
    plot_px = FULL_WIDTH_PX - pair.layout.margin.l - pair.layout.margin.r
    assert (x2 - x1) * plot_px == pytest.approx(PANEL_GAP_PX)
    assert pair.layout.yaxis2.showticklabels is False  # the rows' labels once, at the left, within the margin
    assert pair.layout.margin.l == left.layout.margin.l
    assert pair.layout.margin.b == max(left.layout.margin.b, right.layout.margin.b)
    # each matrix row keeps at least the height it had in a figure of its own
    assert _plot_height(pair) >= min(_plot_height(left), _plot_height(right))
    assert [a.text for a in pair.layout.annotations] == ["M", "scores + M"]
    by_axis = {d.xaxis or "x": d for d in pair.data if d.name != "masked"}
    assert by_axis["x"].showscale is False and by_axis["x2"].showscale is not False  # one colour bar: the scores'
    assert (by_axis["x2"].zmin, by_axis["x2"].zmax) == (-bound, bound)


def test_projector_margins_grow_with_the_fonts_so_plotly_need_not_draw_twice():
    from explorer.viz.projector import PROJECTOR_MIN_PX, for_projector

    fig = matrix_figure(_rng(4, 8, 8), WORDS[:8], WORDS[:8], title="QK")
    shown = for_projector(fig)
    tick = fig.layout.yaxis.tickfont.size  # the 10 px the margins were sized for
    growth = PROJECTOR_MIN_PX / tick
    for side in "lb":
        assert getattr(shown.layout.margin, side) >= growth * getattr(fig.layout.margin, side)
    assert shown.layout.margin.r >= fig.layout.margin.r * PROJECTOR_MIN_PX / 12  # colour-bar ticks: 12 px
    # the rows keep their height, unless the upright axis title needs a taller plot at 18 px
    from explorer.viz.label_room import upright_title_px
    title_px = upright_title_px(fig.layout.yaxis.title.text, PROJECTOR_MIN_PX)
    assert max(_plot_height(fig), title_px) <= _plot_height(shown) <= max(_plot_height(fig), title_px) + 1
    grid = for_projector(head_grid(_rng(5, 4, 6, 6), WORDS[:6], title="grid"))
    assert grid.layout.margin.l > head_grid(_rng(5, 4, 6, 6), WORDS[:6], title="grid").layout.margin.l
