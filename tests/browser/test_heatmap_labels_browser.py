"""Heatmap labels as Chromium draws them, at a 1366-px projector and a 1920-px screen (issue 9, section 4): in the
attention lab at 8 heads and in the positional lab, no tick label overlaps another label, a panel, a panel title
or the colour bar, and every row keeps its label."""
from urllib.parse import quote

import pytest

from explorer.models.toy_tokens import DEFAULT_SENTENCE, tokenize

from .conftest import ARTIFACTS, open_lab, wait_for_app

pytestmark = pytest.mark.browser

SIZES = [(1366, 768), (1920, 1080)]
SENTENCE = "The quick brown fox jumps over the lazy dog and then some more words here ok"  # 16 words

# Pixel boxes of one plotly figure: its subplots (from Plotly's own axis offsets), tick labels per axis, panel
# titles and the colour bar, relative to the figure's top-left corner.
BOXES_JS = """(plot) => {
  const origin = plot.getBoundingClientRect();
  const box = el => { const b = el.getBoundingClientRect();
    return [b.left - origin.left, b.top - origin.top, b.right - origin.left, b.bottom - origin.top]; };
  const fl = plot._fullLayout;
  const subplots = Object.values(fl._plots).map(p => [p.xaxis._offset, p.yaxis._offset,
    p.xaxis._offset + p.xaxis._length, p.yaxis._offset + p.yaxis._length]);
  const ticks = {};
  plot.querySelectorAll('g.xaxislayer-above > g, g.yaxislayer-above > g').forEach(g => {
    const t = g.querySelector('text');
    if (!t || !t.textContent.trim()) return;
    (ticks[g.getAttribute('class')] ||= []).push({text: t.textContent, box: box(t)});
  });
  return {size: [origin.width, origin.height], subplots, ticks,
          titles: [...plot.querySelectorAll('g.annotation')].map(box),
          colorbars: [...plot.querySelectorAll('g.colorbar')].map(box)};
}"""


def _overlap(a, b, tol=1.0) -> bool:
    return min(a[2], b[2]) - max(a[0], b[0]) > tol and min(a[3], b[3]) - max(a[1], b[1]) > tol


def layout_problems(info) -> list[str]:
    problems = []
    labels = [(axis, t["text"], t["box"]) for axis, ts in info["ticks"].items() for t in ts]
    for i, (axis, text, b) in enumerate(labels):
        for axis2, text2, b2 in labels[i + 1:]:
            if _overlap(b, b2):
                problems.append(f"{axis} '{text}' overlaps {axis2} '{text2}'")
        for s in info["subplots"]:
            if _overlap(b, s):
                problems.append(f"{axis} '{text}' lies on a panel")
        for t in info["titles"]:
            if _overlap(b, t):
                problems.append(f"{axis} '{text}' lies on a panel title")
        for c in info["colorbars"]:
            if _overlap(b, c):
                problems.append(f"{axis} '{text}' lies on the colour bar")
        w, h = info["size"]
        if b[0] < -1 or b[1] < -1 or b[2] > w + 1 or b[3] > h + 1:
            problems.append(f"{axis} '{text}' is cut off by the figure's edge")
    return problems


def _top_to_bottom(ticks) -> list[str]:
    return [t["text"] for t in sorted(ticks, key=lambda t: t["box"][1])]


def _figure(page, has_text: str):
    plot = page.locator(".js-plotly-plot").filter(has_text=has_text).first
    plot.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    return plot.evaluate(BOXES_JS)


def _open_with_heads(page, app_url, n: int, step: str) -> None:
    """The lab from a link with SENTENCE, n heads and the step walk at ``step`` (the link holds every setting: no
    key presses to race)."""
    page.goto(f"{app_url}/attention?lang=en&n_head={n}&sentence={quote(SENTENCE)}&step={step}")
    wait_for_app(page)
    page.wait_for_function("() => [...document.querySelectorAll('.js-plotly-plot')]"
                           f".some(p => p.textContent.includes('all {n} heads'))", timeout=60_000)


@pytest.mark.parametrize("width, height", SIZES)
def test_attention_lab_labels_at_8_heads(browser, app_url, width, height):
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    try:
        _open_with_heads(page, app_url, 8, "qkv")  # the step walk shows one step at a time
        page.wait_for_timeout(1500)
        grid = _figure(page, "Attention weights of all 8 heads")
        qkv = _figure(page, "Q (head 1)")
        _open_with_heads(page, app_url, 8, "qk")
        page.wait_for_timeout(1500)
        step3 = _figure(page, "Q Kᵀ")
        page.screenshot(path=str(ARTIFACTS / f"attention_8_heads_{width}.png"), full_page=True)
    finally:
        context.close()
    for name, info in (("head grid", grid), ("Q, K, V", qkv), ("step 3", step3)):
        assert not layout_problems(info), (name, width, layout_problems(info)[:10])
    rows = _top_to_bottom(grid["ticks"]["ytick"])
    n = len(tokenize(SENTENCE))  # the tokenizer decides how many rows there are
    assert n >= 12 and len(rows) == n and rows[0].strip().lower() == "the", rows  # every query keeps its label
    assert len(grid["subplots"]) == 8
    assert set(qkv["ticks"]) >= {"ytick"} and not {"y2tick", "y3tick"} & set(qkv["ticks"])  # K, V share Q's


@pytest.mark.parametrize("width, height", SIZES)
def test_positional_lab_labels_every_position(browser, app_url, width, height):
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    try:
        open_lab(page, app_url, "positional")
        page.wait_for_timeout(1000)
        table = _figure(page, "PE table")
        similarity = _figure(page, "cos(PE(p), PE(p'))")
    finally:
        context.close()
    for name, info in (("PE table", table), ("similarity", similarity)):
        assert not layout_problems(info), (name, width, layout_problems(info)[:10])
        rows = _top_to_bottom(info["ticks"]["ytick"])
        first = tokenize(DEFAULT_SENTENCE).tokens[:2]  # positions past the sentence are labelled by number alone
        assert rows[:2] == [f"0 {first[0]}", f"1 {first[1]}"] and len(rows) == 32, rows  # row 1 used to be skipped


def test_masked_cells_read_as_masked_in_the_dark_theme(browser, app_url):
    from explorer.viz.heatmap import MASKED_COLOUR, MASKED_TEXT

    context = browser.new_context(viewport={"width": 1366, "height": 768}, color_scheme="dark")
    page = context.new_page()
    try:
        page.goto(f"{app_url}/attention?lang=en&step=masked")
        wait_for_app(page)
        plot = page.locator(".js-plotly-plot").filter(has_text="scores + M").first
        plot.scroll_into_view_if_needed()
        page.wait_for_timeout(500)
        drawn = plot.evaluate("""(plot) => ({
            grid: [...plot.querySelectorAll('.gridlayer path')].filter(p => p.getAttribute('d')).length,
            bg: getComputedStyle(plot.querySelector('.bglayer rect.bg')).fill,
            cells: [...plot.querySelectorAll('g.textpoint text, .hm text, text')].map(t => t.textContent)})""")
        theme_bg = page.evaluate("getComputedStyle(document.querySelector('[data-testid=\"stApp\"]')).backgroundColor")
    finally:
        context.close()
    r, g, b = (int(MASKED_COLOUR[i:i + 2], 16) for i in (1, 3, 5))
    assert theme_bg != "rgb(255, 255, 255)", "the page did not switch to the dark theme"
    assert drawn["grid"] == 0, "grid lines cross the masked cells (they looked struck through)"
    assert drawn["bg"] == f"rgb({r}, {g}, {b})"
    n = len(tokenize(DEFAULT_SENTENCE))
    # Causal: the cells above the diagonal, each −∞, in both panels of the step (M beside scores + M).
    assert drawn["cells"].count(MASKED_TEXT) == 2 * (n * (n - 1) // 2)
