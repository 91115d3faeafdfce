"""The model-internals lab in a real Chromium: SmolLM2's layers x heads grid, and a click on a tile zooms in."""
import re

import pytest

from .conftest import expect, rerun, wait_for_app

pytestmark = pytest.mark.browser


def open_from_home(page, app_url) -> None:
    """Open the lab the way a student does: the home page, then its link in the sidebar."""
    page.goto(app_url)
    wait_for_app(page)
    # The first visitor waits for the weights to load.
    rerun(page, page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Model internals lab").click,
          timeout_ms=180_000, again_if_lost=True)
    expect(page.get_by_role("heading", name="Model internals lab", exact=True)).to_be_visible()


def test_smollm2_grid_and_click_to_zoom(page, app_url):
    open_from_home(page, app_url)
    smollm = page.locator('[data-testid="stRadio"]').get_by_role("radio", name="SmolLM2-135M (LLaMA decoder)")
    expect(smollm).to_be_checked()  # the default model
    expect(page.get_by_text(re.compile(r"All 30 layers × 9 heads"))).to_be_visible()
    # The grid is the chart drawn as one picture (270 maps in a PNG); charts render one after the other.
    grid = page.locator('[data-testid="stPlotlyChart"]').filter(has=page.locator(".imagelayer image"))
    expect(grid).to_have_count(1, timeout=30_000)
    expect(grid.locator(".xtick text")).to_have_count(30)
    ticks = grid.locator(".xtick text").all_text_contents()
    assert ticks[:3] == ["0", "1", "2"] and ticks[-1] == "29", ticks
    expect(page.get_by_role("heading", name="Zoom: layer 0, head 0")).to_be_visible()

    # Click the tile of layer 2, head 1: every tile carries an invisible marker, in order layer by layer.
    marker = grid.locator(".scatterlayer path.point").nth(2 * 9 + 1)
    grid.scroll_into_view_if_needed()
    box = marker.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    rerun(page, lambda: page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2))
    expect(page.get_by_role("heading", name="Zoom: layer 2, head 1")).to_be_visible()
