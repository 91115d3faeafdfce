"""The model-internals lab in a real Chromium: SmolLM2's every-head summary, and a click on a cell draws that layer's
heads and zooms into the head."""
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


def test_smollm2_every_head_summary_and_click_to_zoom(page, app_url):
    open_from_home(page, app_url)
    model = page.get_by_role("combobox", name="Model", exact=True)
    expect(model).to_have_value("SmolLM2-135M (LLaMA decoder, 4-bit)")  # the default model
    # Every head is one cell of the summary (30 layers x 9 heads), each with a clickable marker.
    summary = page.locator('[data-testid="stPlotlyChart"]').filter(has=page.locator(".heatmaplayer")).first
    expect(summary.locator(".xtick text")).to_have_count(30, timeout=30_000)
    ticks = summary.locator(".xtick text").all_text_contents()
    assert ticks[:3] == ["0", "1", "2"] and ticks[-1] == "29", ticks
    expect(page.get_by_role("heading", name="Zoom: layer 0, head 0")).to_be_visible()

    # Click the cell of layer 2, head 1: every cell carries an invisible marker, in order layer by layer.
    marker = summary.locator(".scatterlayer path.point").nth(2 * 9 + 1)
    summary.scroll_into_view_if_needed()
    box = marker.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    rerun(page, lambda: page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2))
    expect(page.get_by_role("heading", name="Zoom: layer 2, head 1")).to_be_visible()
    # the layer's heads are drawn in full, with the clicked head named
    expect(page.locator(".gtitle", has_text=re.compile(r"^layer 2$"))).to_have_count(1)
    expect(page.locator(".annotation-text", has_text="head 1 (zoomed in)")).to_have_count(1)
    assert "layer=2" in page.url and "head=1" in page.url  # the click is part of the view's link
