"""Classroom mode across every lab, in a real Chromium (issue 11): the first chart (and the Generate button) on the
first screen of a laptop and of a projector, chart text legible from the back row when presenting, the language
from the browser / the switch / the link, a link that holds the view, reset, and PNG and CSV downloads that stay
on the classroom's server."""
from __future__ import annotations

import io
from urllib.parse import parse_qs, urlparse

import pandas as pd
import pytest

from explorer.i18n import t
from explorer.ui.nav import LABS
from explorer.viz.projector import PROJECTOR_MIN_PX

from .conftest import _WATCHERS, ARTIFACTS, click_until, expect, rerun, wait_for_app

pytestmark = pytest.mark.browser

SCREENS = {"laptop": (1366, 768), "projector": (1920, 1080)}
FIRST_CHART = '[data-testid="stPlotlyChart"]'
GENERATE = ".st-key-gen_go button"  # the generation lab's Generate button, by its widget key (any language)
NEXT_TOKEN = ".st-key-gen_step button"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def _open(browser, url: str, size=(1400, 1000), **context_args):
    context = browser.new_context(viewport={"width": size[0], "height": size[1]}, **context_args)
    context.add_init_script(_WATCHERS)
    page = context.new_page()
    page.goto(url)
    wait_for_app(page, timeout_ms=120_000)
    return context, page


def _first_chart(page):
    """The lab's first chart; the generation lab draws its charts once a token is generated: one Next token."""
    if page.locator(FIRST_CHART).count() == 0 and page.locator(NEXT_TOKEN).count():
        rerun(page, lambda: page.locator(NEXT_TOKEN).first.click(), timeout_ms=120_000)
    chart = page.locator(FIRST_CHART).first
    chart.wait_for(state="attached", timeout=60_000)
    return chart


def _query(page) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlparse(page.url).query).items()}


# ---- (a) the first chart on the first screen ----------------------------------------------------------------------
# An element's top on the first screen, whatever the page has scrolled since (the streaming answer follows its text).
_TOP = """e => { let top = e.getBoundingClientRect().top + window.scrollY;
  for (let p = e.parentElement; p; p = p.parentElement) top += p.scrollTop;
  return top; }"""


@pytest.mark.parametrize("present", [False, True], ids=["normal", "presenting"])
@pytest.mark.parametrize("screen", SCREENS)
@pytest.mark.parametrize("lab", LABS, ids=lambda lab: lab.url_path)
def test_the_first_chart_is_on_the_first_screen(browser, app_url, lab, screen, present):
    width, height = SCREENS[screen]
    query = "?lang=en" + ("&present=1" if present else "")
    context, page = _open(browser, f"{app_url}/{lab.url_path}{query}", (width, height))
    try:
        tops = {}
        if lab.url_path == "generation":  # before anything is generated, and again with the charts drawn
            tops["Generate button"] = page.locator(GENERATE).first.evaluate(_TOP)
        chart = _first_chart(page)
        tops["first chart"] = chart.evaluate(_TOP)
        if lab.url_path == "generation":
            tops["Generate button, after a token"] = page.locator(GENERATE).first.evaluate(_TOP)
        page.screenshot(path=ARTIFACTS / f"first-screen-{lab.url_path}-{screen}-{int(present)}.png")
        below = {name: round(top) for name, top in tops.items() if top >= height}
        assert not below, f"{lab.url_path} at {width}x{height}, presenting={present}: top below the fold " \
                          f"({height} px): {below}"
    finally:
        context.close()


# ---- (b) presenting: chart text legible from the back row ---------------------------------------------------------
# The svg text of plotly's drawing (ticks, titles, legends, colour bars, annotations, cell text) that is shown
# now: non-empty, with a box; the first few drawn charts of the page.
_CHART_FONTS = """(n) => {
  const charts = [...document.querySelectorAll('[data-testid="stPlotlyChart"]')]
    .filter(c => c.getBoundingClientRect().width > 0).slice(0, n);
  const out = [];
  charts.forEach((chart, i) => chart.querySelectorAll('.main-svg text').forEach(el => {
    const box = el.getBBox();
    const style = getComputedStyle(el);
    if (!el.textContent.trim() || box.width === 0 || style.visibility === 'hidden' || style.display === 'none')
      return;
    out.push([i, el.textContent.trim().slice(0, 30), parseFloat(style.fontSize)]);
  }));
  return [charts.length, out];
}"""


@pytest.mark.parametrize("lab", LABS, ids=lambda lab: lab.url_path)
def test_presenting_chart_text_is_at_least_18px(browser, app_url, lab):
    context, page = _open(browser, f"{app_url}/{lab.url_path}?lang=en&present=1", SCREENS["projector"])
    try:
        _first_chart(page).locator(".main-svg").first.wait_for(timeout=60_000)
        charts, texts = page.evaluate(_CHART_FONTS, 3)
        assert charts and texts, "no chart text drawn"
        small = [(i, text, size) for i, text, size in texts if size < PROJECTOR_MIN_PX]
        assert not small, f"{lab.url_path}: {len(small)} of {len(texts)} texts under {PROJECTOR_MIN_PX}px " \
                          f"(chart, text, px): {small[:12]}"
    finally:
        context.close()


# ---- (c) the language: the browser's, the switch's, the link's ----------------------------------------------------
def _title(page) -> str:
    return page.locator("h1").first.inner_text().strip()


def test_a_chinese_browser_opens_in_chinese_and_the_switch_turns_it_to_english(browser, app_url):
    context, page = _open(browser, app_url, locale="zh-CN")
    try:
        assert _title(page) == t("zh", "home.title")
        assert _query(page).get("lang") == "zh", page.url
        switch = page.locator('[data-testid="stSidebar"] [data-testid="stRadio"]').first
        rerun(page, lambda: switch.get_by_text("English", exact=True).click(), again_if_lost=True)
        assert _title(page) == t("en", "home.title")
        page.wait_for_function("() => new URLSearchParams(location.search).get('lang') === 'en'")
    finally:
        context.close()


def test_a_link_in_chinese_opens_in_chinese_in_an_english_browser(browser, app_url):
    lab = LABS[0]
    context, page = _open(browser, f"{app_url}/{lab.url_path}?lang=zh", locale="en-US")
    try:
        assert _title(page) == t("zh", f"nav.{lab.url_path}.title") or any("\u4e00" <= c <= "\u9fff"
                                                                          for c in _title(page))
        nav = page.locator('[data-testid="stSidebarNav"]')
        assert nav.get_by_text(t("zh", "nav.home")).count() >= 1
    finally:
        context.close()


# ---- (d) copy link and reset --------------------------------------------------------------------------------------
def _attention_view():
    from explorer.ui.attention import VIEW
    return VIEW


def _slider_value(page, label: str) -> str:
    return page.locator('[data-testid="stSlider"]').filter(has_text=label).get_by_role("slider") \
        .get_attribute("aria-valuetext")


def test_the_copy_link_holds_the_view_and_reset_returns_to_the_defaults(browser, app_url):
    view = _attention_view()
    heads = view.controls["n_head"].default * 2
    context, page = _open(browser, f"{app_url}/attention?lang=en&n_head={heads}&mask=none")
    try:
        label = t("en", "attention.sidebar.n_head")
        assert _slider_value(page, label) == str(heads)
        sidebar = page.locator('[data-testid="stSidebar"]')
        link_button = sidebar.get_by_role("button", name=t("en", "common.copy_link"))
        code = page.locator('[data-testid="stPopoverBody"] code, [data-testid="stPopoverBody"] pre').first
        click_until(link_button, lambda: code.is_visible())
        shown = code.inner_text().strip()
        assert urlparse(shown).path == urlparse(page.url).path == "/attention", (shown, page.url)
        assert _query_of(shown) == _query(page) and _query_of(shown)["n_head"] == str(heads), (shown, page.url)
        page.keyboard.press("Escape")
        reset = sidebar.get_by_role("button", name=t("en", "common.reset_lab"))
        rerun(page, lambda: reset.click())
        assert _slider_value(page, label) == str(view.controls["n_head"].default)
        page.wait_for_function("() => !new URLSearchParams(location.search).has('n_head')")
        assert set(_query(page)) <= {"lang", "present"}, page.url
    finally:
        context.close()


def test_a_labs_view_survives_the_menu_back_and_forward(browser, app_url):
    view = _attention_view()
    heads = view.controls["n_head"].default * 2
    label = t("en", "attention.sidebar.n_head")
    context, page = _open(browser, f"{app_url}/attention?lang=en&n_head={heads}")
    try:
        nav = page.locator('[data-testid="stSidebarNav"]')
        rerun(page, lambda: nav.get_by_text(t("en", "nav.sizing.title")).click(), again_if_lost=True)
        assert urlparse(page.url).path == "/sizing" and "n_head" not in _query(page)
        rerun(page, lambda: nav.get_by_text(t("en", "nav.attention.title")).click(), again_if_lost=True)
        assert _slider_value(page, label) == str(heads), "the menu brings back the lab's last view"
        page.wait_for_function(f"() => new URLSearchParams(location.search).get('n_head') === '{heads}'")
        # Streamlit's menu pushes the bare /attention before the view's address is written, so Back may first
        # land there (showing the same view, restored from the session) and reaches /sizing on the next press.
        for _ in range(2):
            page.go_back()
            wait_for_app(page)
            if urlparse(page.url).path == "/sizing":
                break
            assert _slider_value(page, label) == str(heads), "every entry of the lab shows its view"
        assert urlparse(page.url).path == "/sizing"
        page.go_forward()
        wait_for_app(page)
        expect(page.locator('[data-testid="stSlider"]').filter(has_text=label).get_by_role("slider")) \
            .to_have_attribute("aria-valuetext", str(heads))
        assert urlparse(page.url).path == "/attention"
    finally:
        context.close()


def _query_of(url: str) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlparse(url).query).items()}


# ---- (e) PNG and CSV downloads, offline -----------------------------------------------------------------------------
def test_a_chart_downloads_as_png_and_csv_without_leaving_the_server(browser, app_url):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    context.add_init_script(_WATCHERS)
    requested: list[str] = []
    context.on("request", lambda r: requested.append(r.url))
    page = context.new_page()
    try:
        page.goto(f"{app_url}/attention?lang=en")
        wait_for_app(page, timeout_ms=120_000)
        chart = page.locator(FIRST_CHART).first
        chart.hover()
        camera = chart.locator('.modebar-btn[data-title*="png" i], .modebar-btn[data-title*="Download" i]').first
        with page.expect_download(timeout=60_000) as png:
            camera.click()
        head = open(png.value.path(), "rb").read(8)
        assert head == b"\x89PNG\r\n\x1a\n" and png.value.suggested_filename.endswith(".png")

        csv_button = page.locator('[data-testid="stDownloadButton"] button').first
        with page.expect_download(timeout=60_000) as csv:
            csv_button.click()
        assert csv.value.suggested_filename.endswith(".csv")
        table = pd.read_csv(io.BytesIO(open(csv.value.path(), "rb").read()), encoding="utf-8-sig")
        assert len(table) > 0 and {"trace", "x", "y"} <= set(table.columns)
    finally:
        context.close()
    outside = sorted({u for u in requested if urlparse(u).scheme in ("http", "https", "ws", "wss")
                      and urlparse(u).hostname not in LOCAL_HOSTS})
    assert not outside, outside
