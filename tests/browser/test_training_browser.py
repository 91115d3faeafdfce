"""The training lab in a real Chromium: a short training starts, its loss curve and a sample appear while it runs
(the page is redrawn from the background job, never blocked by it), Stop stops it, and the model it leaves writes
in the generation lab of the same session."""
import re

import pytest

from explorer.i18n import Msg, t

from .conftest import click_until, expect, rerun, wait_for_app

pytestmark = pytest.mark.browser

# A model that learns in milliseconds per step, and more steps than the test waits for: only Stop ends it.
TINY = "d_model=16&n_head=2&n_kv_head=2&context=32&batch_size=4&steps=5000&warmup=2&eval_every=5&sample_every=10"
WAIT = 60_000


# Points of the training-loss trace of the loss chart, read from plotly's own data in the page (Streamlit's theme
# wraps the title in <b>; a chart being replaced is in the page twice for a moment: the largest count is the newest).
LOSS_POINTS = """(title) => Math.max(0, ...[...document.querySelectorAll('.js-plotly-plot')]
    .filter(p => (p.layout?.title?.text || '').includes(title)).map(p => p.data[0].x.length))"""


def loss_points(page) -> int:
    return page.evaluate(LOSS_POINTS, t("en", "training.fig.loss_title"))


def test_train_watch_stop_and_write_with_my_trained_model(page, app_url):
    page.goto(f"{app_url}/training?lang=en&{TINY}")
    wait_for_app(page)
    # While a run goes the live view redraws itself every few seconds, so the page is never "settled" for long:
    # from here on, each action is a click and the test waits for what it must show.
    page.get_by_role("button", name=t("en", "training.train")).click()
    page.wait_for_function(f"(title) => ({LOSS_POINTS})(title) > 5", arg=t("en", "training.fig.loss_title"),
                           timeout=WAIT)  # the curve grows while the page stays live
    expect(page.get_by_text(re.compile(r"^Step [\d,]+ \(loss \d+\.\d+\):")).first).to_be_visible(timeout=WAIT)
    expect(page.locator('[data-testid="stCode"]').filter(has_text=re.compile(r"\S")).first).to_be_visible()
    expect(page.get_by_text(re.compile(r"^Training: step [\d,]+ of 5,000"))).to_be_visible(timeout=WAIT)
    stop = page.locator('[data-testid="stMain"]').get_by_role("button", name=t("en", "training.stop"))
    stopped = page.get_by_text(re.compile(r"^Stopped at step [\d,]+ of 5,000"))
    click_until(stop, stopped.is_visible, WAIT)  # a second Stop of a stopped run does nothing
    wait_for_app(page)
    assert loss_points(page) > 5
    mine = page.get_by_text(re.compile(r"^Now: My trained model \([\d,]+ steps"))
    expect(mine).to_be_visible(timeout=WAIT)
    kept = mine.inner_text()
    # a file that is not a saved model: one sentence, and the model in place stays
    rerun(page, lambda: page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
        files=[{"name": "model.zip", "mimeType": "application/zip", "buffer": b"not a zip at all"}]), WAIT)
    expect(page.get_by_text(str(Msg("training.lib.upload.not_zip")))).to_be_visible(timeout=WAIT)
    assert page.get_by_text(re.compile(r"^Now: My trained model")).inner_text() == kept
    to_generation = page.get_by_role("link", name=t("en", "training.mine.to_generation"))
    expect(to_generation).to_be_visible(timeout=WAIT)
    rerun(page, to_generation.click, WAIT, again_if_lost=True)
    expect(page.get_by_role("heading", name="Generation lab", exact=True)).to_be_visible(timeout=WAIT)
    expect(page.get_by_role("combobox", name="Model")).to_have_value(t("en", "training.mine.model_label"))
    rerun(page, page.get_by_role("button", name="Generate").click, WAIT)
    expect(page.get_by_text(re.compile(r"^Finished after \d+ tokens"))).to_be_visible(timeout=WAIT)


def test_a_waiting_student_sees_their_place_and_a_closed_tab_frees_the_slot(browser, tmp_path):
    """One training slot on the server: the second student waits with their place shown; the first closes their
    tab, their training stops (Streamlit releases the session, the job is detached and stops after the grace) and
    the second one's starts by itself."""
    from st_server import serve

    env = {"EXPLORER_MAX_TRAININGS": "1", "EXPLORER_TRAINING_GRACE_S": "1"}
    with serve("app.py", log=tmp_path / "server.log", ready_s=90, env=env) as server:
        first_tab, second_tab = browser.new_context(), browser.new_context()
        first, second = first_tab.new_page(), second_tab.new_page()
        for pg in (first, second):
            pg.goto(f"{server.url}/training?lang=en&{TINY}")
            wait_for_app(pg)
        first.get_by_role("button", name=t("en", "training.train")).click()
        expect(first.get_by_text(re.compile(r"^Training: step"))).to_be_visible(timeout=WAIT)
        second.get_by_role("button", name=t("en", "training.train")).click()
        expect(second.get_by_text(t("en", "training.status.queue", place=1, running=1))).to_be_visible(timeout=WAIT)
        first_tab.close()
        expect(second.get_by_text(re.compile(r"^Training: step"))).to_be_visible(timeout=WAIT)
        second.locator('[data-testid="stMain"]').get_by_role("button", name=t("en", "training.stop")).click()
        second_tab.close()
