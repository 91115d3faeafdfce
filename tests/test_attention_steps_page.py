"""The attention lab's step-by-step walk through the page (AppTest): one step at a time, picked with its control,
its ◀ / ▶ buttons or a link (?step=scale), every step and its formula one click away; and steps 3 (Q Kᵀ),
4 (÷ √d_k) and 6 (+ M) on one colour scale, 4 and 6 drawn beside the step they change: on scales of their own the
scaled scores looked exactly like the unscaled ones."""
import json

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from explorer.i18n import t
from explorer.ui.attention import STEPS, VIEW
from explorer.models.toy_tokens import DEFAULT_SENTENCE, tokenize
from explorer.viz.attention import MAX_VALUES_SHOWN
from tests.conftest import ROOT, shown_text
from tests.test_attention_links import open_link

PAGE = str(ROOT / "labs/attention.py")
GRID_START = "Attention weights of all"
# What each step draws at the defaults (head 1): its chart's title, a pair's made of its two panels' titles.
STEP_CHARTS = {"x": "X", "qkv": "", "qk": "Q Kᵀ", "scale": "Q Kᵀ  →  scaled scores", "mask": "M",
               "masked": "M  →  scores + M", "softmax": "attention weights (head 1)", "z": "head 1 output",
               "concat": "concat", "out": "attention output"}
# A formula each step shows with it (LaTeX as the page writes it).
STEP_FORMULAS = {"x": r"\mathrm{Embedding}", "qkv": r"Q_i = X W_i^Q", "qk": r"S = Q_i K_i^\top",
                 "scale": r"\frac{QK^\top}{\sqrt{d_k}}", "mask": r"M_{i,j} = \begin{cases}",
                 "masked": r"\frac{QK^\top}{\sqrt{d_k}} + M", "softmax": r"A_{i,j} = \frac{e^{s_{i,j}}}",
                 "z": r"\mathrm{head}_i = A\,V_i", "concat": r"\mathrm{Concat}(", "out": r"\mathrm{MultiHead}"}


def _specs(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _figures(at) -> dict[str, dict]:
    return {s["layout"].get("title", {}).get("text", ""): s for s in _specs(at)}


def _panels(fig) -> dict[str, dict]:
    """A two-panel figure's main traces by their panel's title (the '−∞' overlays left out)."""
    names = [a["text"] for a in fig["layout"]["annotations"]]
    return {names[0 if d.get("xaxis", "x") == "x" else 1]: d for d in fig["data"] if d.get("name") != "masked"}


def _shows_step(at, step: str, lang: str = "en") -> None:
    """The page shows ``step`` and only it: its title, a formula of its own, and one chart beside the head grid."""
    assert not at.exception, [e.value for e in at.exception]
    assert at.segmented_control(key=VIEW.key("step")).value == step
    assert [s.value for s in at.main.subheader] == [t(lang, f"attention.steps.{step}_title")]
    assert any(STEP_FORMULAS[step] in x.value for x in at.latex), [x.value for x in at.latex]
    titles = [s["layout"].get("title", {}).get("text", "") for s in _specs(at)]
    assert len(titles) == 2, titles
    if lang == "en":
        assert titles[0].startswith(GRID_START) and titles[1] == STEP_CHARTS[step], titles


@pytest.fixture
def at():
    app = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def test_each_step_is_one_pick_away_and_kept_in_the_address(at):
    _shows_step(at, "x")
    assert "step" not in at.query_params  # the first step is the default: a plain link opens it
    labels = at.segmented_control(key=VIEW.key("step")).options
    assert labels == [t("en", f"attention.steps_pick.{s}") for s in STEPS]
    for step in STEPS[1:] + STEPS[:1]:
        at.segmented_control(key=VIEW.key("step")).set_value(step).run()
        _shows_step(at, step)
        assert at.query_params.get("step") == (None if step == "x" else step)


def test_previous_and_next_walk_every_step_in_order(at):
    seen = [at.segmented_control(key=VIEW.key("step")).value]
    assert at.button(key=VIEW.key("_step_back")).disabled  # nothing before the first step
    while not at.button(key=VIEW.key("_step_next")).disabled:
        at.button(key=VIEW.key("_step_next")).click().run()
        seen.append(at.segmented_control(key=VIEW.key("step")).value)
        _shows_step(at, seen[-1])
    assert seen == list(STEPS)
    at.button(key=VIEW.key("_step_back")).click().run()
    _shows_step(at, STEPS[-2])
    assert at.query_params["step"] == STEPS[-2]


@pytest.mark.parametrize("step", STEPS)
def test_a_link_opens_its_step(step):
    at = open_link(step=step)
    _shows_step(at, step)
    assert not at.warning
    assert at.query_params.get("step") == (None if step == "x" else step)


def test_a_chinese_link_opens_its_step_in_chinese():
    at = open_link(step="masked", lang="zh")
    _shows_step(at, "masked", "zh")
    assert at.segmented_control(key=VIEW.key("step")).options[5] == t("zh", "attention.steps_pick.masked")
    pair = _figures(at)[t("zh", "attention.steps_pick.pair", left="M", right=t("zh", "attention.steps.masked_figure"))]
    assert set(_panels(pair)) == {"M", t("zh", "attention.steps.masked_figure")}


def test_a_bad_step_in_a_link_is_named_and_the_first_step_shown():
    at = open_link(step="attention", n_head="2")
    said = [shown_text(w.value) for w in at.warning]
    assert len(said) == 1 and "'attention'" in said[0] and "step" in said[0], said
    assert at.slider(key=VIEW.key("n_head")).value == 2  # the rest of the link still holds
    _shows_step(at, "x")
    assert "step" not in at.query_params and at.query_params["n_head"] == "2"


def _scale(trace) -> tuple[float, float]:
    return trace["zmin"], trace["zmax"]


def test_scores_before_and_after_scaling_share_one_scale(at):
    at.segmented_control(key=VIEW.key("step")).set_value("scale").run()
    panels = _panels(_figures(at)["Q Kᵀ  →  scaled scores"])
    qk, scaled = panels["Q Kᵀ"], panels["scaled scores"]
    assert _scale(qk) == _scale(scaled)
    assert qk["showscale"] is False and scaled.get("showscale") is not False  # one colour bar for both
    zmin, zmax = _scale(qk)
    assert zmin == -zmax and zmax > 0  # diverging around 0
    # The default sentence is short: the numbers are in the cells, so the division by √d_k reads directly.
    assert len(tokenize(DEFAULT_SENTENCE)) <= MAX_VALUES_SHOWN
    assert qk["texttemplate"] == scaled["texttemplate"] == "%{text}"
    qk_text = np.array(qk["text"], dtype=float)
    scaled_text = np.array(scaled["text"], dtype=float)
    np.testing.assert_allclose(scaled_text, qk_text / 4, atol=0.01)  # d_k = 16; two decimals shown
    assert zmax == pytest.approx(np.abs(qk_text).max(), abs=0.005)
    at.segmented_control(key=VIEW.key("step")).set_value("masked").run()
    masked = _panels(_figures(at)["M  →  scores + M"])
    assert _scale(masked["scores + M"]) == (zmin, zmax)
    assert masked["M"]["showscale"] is False  # M's 0 / −∞ have no colour scale of their own


def test_the_shared_scale_follows_the_head_and_the_scaling_toggle(at):
    at.segmented_control(key=VIEW.key("step")).set_value("scale").run()
    at.toggle(key=VIEW.key("scale")).set_value(False).run()
    panels = _panels(_figures(at)["Q Kᵀ  →  scores"])
    assert _scale(panels["Q Kᵀ"]) == _scale(panels["scores"])
    at.toggle(key=VIEW.key("scale")).set_value(True).run()
    before = _scale(_panels(_figures(at)["Q Kᵀ  →  scaled scores"])["Q Kᵀ"])
    at.select_slider(key=VIEW.key("zoom_4")).set_value(3).run()
    panels = _panels(_figures(at)["Q Kᵀ  →  scaled scores"])
    assert _scale(panels["Q Kᵀ"]) == _scale(panels["scaled scores"]) != before
