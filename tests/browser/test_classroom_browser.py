"""Classroom mode across every lab, in a real Chromium (issue 11): every lab opens with its title, the first chart
(and the Generate button) on the first screen of a laptop and of a projector, chart text legible from the back row
when presenting, the language from the browser / the switch / the link, a link that holds the view, reset, and PNG
and CSV downloads; nothing any of these pages asks for leaves the classroom's server, which may have no internet."""
from __future__ import annotations

import io
from contextlib import contextmanager
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


def _outside(urls) -> list[str]:
    # data: and blob: URLs never leave the browser; every other scheme names a host.
    return sorted({u for u in urls if urlparse(u).scheme not in ("data", "blob", "about")
                   and urlparse(u).hostname not in LOCAL_HOSTS})


@contextmanager
def _opened(browser, url: str, size=(1400, 1000), **context_args):
    """A page of its own browser (a fresh context: nothing cached, so every script, font and image is asked for)
    on ``url``, once the app has settled. Every request and websocket is recorded; when the test's body is done and
    the network idle, any host other than the server's own fails the test."""
    context = browser.new_context(viewport={"width": size[0], "height": size[1]}, **context_args)
    context.add_init_script(_WATCHERS)
    requested: list[str] = []
    context.on("request", lambda r: requested.append(r.url))
    page = context.new_page()
    page.on("websocket", lambda ws: requested.append(ws.url))
    try:
        page.goto(url)
        wait_for_app(page, timeout_ms=120_000)
        yield page
        page.wait_for_load_state("networkidle")  # the favicon comes with the page config, after the first run
    finally:
        context.close()
    assert any(urlparse(u).hostname in LOCAL_HOSTS for u in requested), f"{url}: the page requested nothing at all"
    assert not _outside(requested), f"{url}: requests outside the server: {_outside(requested)}"


def _first_chart(page):
    """The lab's first chart; the generation lab draws its charts once a token is generated: one Next token."""
    if page.locator(FIRST_CHART).count() == 0 and page.locator(NEXT_TOKEN).count():
        rerun(page, lambda: page.locator(NEXT_TOKEN).first.click(), timeout_ms=120_000)
    chart = page.locator(FIRST_CHART).first
    chart.wait_for(state="attached", timeout=60_000)
    return chart


def _query(page) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlparse(page.url).query).items()}


def _title(page) -> str:
    return page.locator("h1").first.inner_text().strip()


# ---- (a) the first chart on the first screen, (b) presenting: chart text legible from the back row -----------------
# One page load per lab and mode measures every screen: the page opens at the projector's size and the viewport is
# resized to each screen in turn. A resize re-lays the page out in the browser alone (no script run), so the tops
# read once the layout has settled are those of a fresh load at that size (compared for attention, internals and
# generation, before and after its first token, when this was written).
# An element's top on the first screen, whatever the page has scrolled since (the streaming answer follows its text),
# read twice, two drawn frames apart: a layout still moving reads differently.
_TOPS = """async (selectors) => {
  const top = e => { let top = e.getBoundingClientRect().top + window.scrollY;
    for (let p = e.parentElement; p; p = p.parentElement) top += p.scrollTop;
    return top; };
  const read = () => selectors.map(s => { const e = document.querySelector(s); return e ? top(e) : null; });
  const frame = () => new Promise(r => requestAnimationFrame(() => r(true)));
  const first = read();
  await frame(); await frame();
  return [first, read()];
}"""
SETTLE_READS = 20  # a resize settles in one or two reads; a layout still moving after twenty fails the test


def _show(page, screen: str) -> None:
    width, height = SCREENS[screen]
    page.set_viewport_size({"width": width, "height": height})


def _settled_tops(page, targets: dict[str, str], where: str) -> dict[str, float]:
    """The tops of ``targets`` (name -> selector, first match) once the page has settled: no script running, the DOM
    unchanged for SETTLED_MS, and the same tops across two drawn frames and across two such waits."""
    for selector in targets.values():
        page.locator(selector).first.wait_for(state="attached", timeout=60_000)
    before = None
    for _ in range(SETTLE_READS):
        wait_for_app(page)
        first, now = page.evaluate(_TOPS, list(targets.values()))
        if first == now == before:
            assert None not in now, f"{where}: not on the page: {[n for n, t in zip(targets, now) if t is None]}"
            return dict(zip(targets, now))
        before = now
    raise AssertionError(f"{where}: the layout did not settle over {SETTLE_READS} reads: {dict(zip(targets, now))}")


def _first_screen_tops(page, lab, present: bool) -> dict[str, dict[str, float]]:
    """Screen -> name -> top of the first chart (and, in the generation lab, of the Generate button before anything
    is generated and again with the charts drawn), with a screenshot at each screen."""
    tops: dict[str, dict[str, float]] = {screen: {} for screen in SCREENS}

    def where(screen: str) -> str:
        return f"{lab.url_path} at {screen} {SCREENS[screen][0]}x{SCREENS[screen][1]}, presenting={present}"

    order = ["projector", "laptop"]  # the page opens at the projector's size
    if lab.url_path == "generation":  # every screen before anything is generated, then the charts drawn
        for screen in order:
            _show(page, screen)
            tops[screen] |= _settled_tops(page, {"Generate button": GENERATE}, where(screen))
        _first_chart(page)
        order.reverse()  # the Next token click's screen first
        after = {"first chart": FIRST_CHART, "Generate button, after a token": GENERATE}
    else:
        after = {"first chart": FIRST_CHART}
        _first_chart(page)
    for screen in order:
        _show(page, screen)
        tops[screen] |= _settled_tops(page, after, where(screen))
        page.screenshot(path=ARTIFACTS / f"first-screen-{lab.url_path}-{screen}-{int(present)}.png")
    return tops


def _below_the_fold(tops: dict[str, dict[str, float]]) -> dict[str, dict[str, int]]:
    """Screen ('laptop 1366x768') -> name -> top, for each top at or below that screen's bottom."""
    below = {}
    for screen, named in tops.items():
        width, height = SCREENS[screen]
        late = {name: round(top) for name, top in named.items() if top >= height}
        if late:
            below[f"{screen} {width}x{height}"] = late
    return below


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


def _small_chart_texts(page, lab) -> list[str]:
    """At the projector's size: the chart texts under PROJECTOR_MIN_PX in the first three drawn charts."""
    _show(page, "projector")
    _first_chart(page).locator(".main-svg").first.wait_for(timeout=60_000)
    wait_for_app(page)
    charts, texts = page.evaluate(_CHART_FONTS, 3)
    if not (charts and texts):
        return [f"{lab.url_path}: no chart text drawn"]
    small = [(i, text, size) for i, text, size in texts if size < PROJECTOR_MIN_PX]
    return [f"{lab.url_path}: {len(small)} of {len(texts)} texts under {PROJECTOR_MIN_PX}px "
            f"(chart, text, px): {small[:12]}"] if small else []


@pytest.mark.parametrize("lab", LABS, ids=lambda lab: lab.url_path)
def test_the_lab_opens_with_its_first_chart_on_the_first_screen(browser, app_url, lab):
    """The lab opens (its title, no exception) and, on a laptop's and on a projector's screen, presenter mode off,
    shows its first chart on the first screen."""
    with _opened(browser, f"{app_url}/{lab.url_path}?lang=en", SCREENS["projector"]) as page:
        assert _title(page) == t("en", f"{lab.url_path}.title")
        below = _below_the_fold(_first_screen_tops(page, lab, present=False))
        assert not below, f"{lab.url_path}, presenting=False: top below the fold (screen: name: px): {below}"


@pytest.mark.parametrize("lab", LABS, ids=lambda lab: lab.url_path)
def test_presenting_the_first_chart_is_on_the_first_screen_and_chart_text_is_at_least_18px(browser, app_url, lab):
    """Presenter mode on: the first screen of a laptop and of a projector, and at the projector's size the chart text
    legible from the back row; one page load for both."""
    with _opened(browser, f"{app_url}/{lab.url_path}?lang=en&present=1", SCREENS["projector"]) as page:
        below = _below_the_fold(_first_screen_tops(page, lab, present=True))
        problems = [f"{lab.url_path}, presenting=True: top below the fold (screen: name: px): {below}"] if below else []
        problems += _small_chart_texts(page, lab)
        assert not problems, "\n".join(problems)


# ---- (c) the language: the browser's, the switch's, the link's ----------------------------------------------------
def test_a_chinese_browser_opens_in_chinese_and_the_switch_turns_it_to_english(browser, app_url):
    with _opened(browser, app_url, locale="zh-CN") as page:
        assert _title(page) == t("zh", "home.title")
        assert _query(page).get("lang") == "zh", page.url
        switch = page.locator('[data-testid="stSidebar"] [data-testid="stRadio"]').first
        rerun(page, lambda: switch.get_by_text("English", exact=True).click(), again_if_lost=True)
        assert _title(page) == t("en", "home.title")
        page.wait_for_function("() => new URLSearchParams(location.search).get('lang') === 'en'")


def test_a_link_in_chinese_opens_in_chinese_in_an_english_browser(browser, app_url):
    lab = LABS[0]
    with _opened(browser, f"{app_url}/{lab.url_path}?lang=zh", locale="en-US") as page:
        assert _title(page) == t("zh", f"nav.{lab.url_path}.title") or any("\u4e00" <= c <= "\u9fff"
                                                                          for c in _title(page))
        nav = page.locator('[data-testid="stSidebarNav"]')
        assert nav.get_by_text(t("zh", "nav.home")).count() >= 1


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
    with _opened(browser, f"{app_url}/attention?lang=en&n_head={heads}&mask=none") as page:
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


def test_a_labs_view_survives_the_menu_back_and_forward(browser, app_url):
    view = _attention_view()
    heads = view.controls["n_head"].default * 2
    label = t("en", "attention.sidebar.n_head")
    with _opened(browser, f"{app_url}/attention?lang=en&n_head={heads}") as page:
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


def _query_of(url: str) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlparse(url).query).items()}


# ---- (e) PNG and CSV downloads, offline -----------------------------------------------------------------------------
def test_a_chart_downloads_as_png_and_csv_without_leaving_the_server(browser, app_url):
    with _opened(browser, f"{app_url}/attention?lang=en", accept_downloads=True) as page:
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
