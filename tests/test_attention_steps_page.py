"""The attention lab's steps 3 (Q Kᵀ), 4 (÷ √d_k) and 6 (+ M) on one colour scale, through the page (AppTest):
on scales of their own the scaled scores looked exactly like the unscaled ones."""
import json

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from explorer.ui.attention import VIEW
from explorer.models.toy_tokens import DEFAULT_SENTENCE, tokenize
from explorer.viz.attention import MAX_VALUES_SHOWN
from tests.conftest import ROOT

PAGE = str(ROOT / "labs/attention.py")


def _figures(at) -> dict[str, dict]:
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return {s["layout"].get("title", {}).get("text", ""): s for s in specs}


@pytest.fixture
def at():
    app = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def _scale(fig) -> tuple[float, float]:
    return fig["data"][0]["zmin"], fig["data"][0]["zmax"]


def test_scores_before_and_after_scaling_share_one_scale(at):
    figs = _figures(at)
    qk, scaled, masked = figs["Q Kᵀ"], figs["scaled scores"], figs["scores + M"]
    assert _scale(qk) == _scale(scaled) == _scale(masked)
    zmin, zmax = _scale(qk)
    assert zmin == -zmax and zmax > 0  # diverging around 0
    # The default sentence is short: the numbers are in the cells, so the division by √d_k reads directly.
    assert len(tokenize(DEFAULT_SENTENCE)) <= MAX_VALUES_SHOWN
    assert qk["data"][0]["texttemplate"] == scaled["data"][0]["texttemplate"] == "%{text}"
    qk_text = np.array(qk["data"][0]["text"], dtype=float)
    scaled_text = np.array(scaled["data"][0]["text"], dtype=float)
    np.testing.assert_allclose(scaled_text, qk_text / 4, atol=0.01)  # d_k = 16; two decimals shown
    assert zmax == pytest.approx(np.abs(qk_text).max(), abs=0.005)


def test_the_shared_scale_follows_the_head_and_the_scaling_toggle(at):
    at.toggle(key=VIEW.key("scale")).set_value(False).run()
    figs = _figures(at)
    assert _scale(figs["Q Kᵀ"]) == _scale(figs["scores"])
    at.toggle(key=VIEW.key("scale")).set_value(True).run()
    before = _scale(_figures(at)["Q Kᵀ"])
    at.select_slider(key=VIEW.key("zoom_4")).set_value(3).run()
    figs = _figures(at)
    assert _scale(figs["Q Kᵀ"]) == _scale(figs["scaled scores"]) != before
