"""The model-internals lab page (AppTest): switching models, ablating heads, zooming, the sequence cap. Links,
Chinese and bad values in a link: tests/test_internals_links.py."""
from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from explorer.labs.internals import DEFAULT_TEXT
from tests.conftest import ROOT

pytestmark = pytest.mark.slow
SMOL, MINI = "smollm2-135m", "minilm-l6"


def chart(at: AppTest, key: str) -> dict:
    """The plotly spec of the chart drawn with ``key``."""
    found = [c for c in at.get("plotly_chart") if c.proto.id.endswith(f"-{key}")]
    assert len(found) == 1, [c.proto.id for c in at.get("plotly_chart")]
    return json.loads(found[0].proto.spec)


def bars(at: AppTest, model: str) -> tuple[list, list, list]:
    data = chart(at, f"ablation_bars_{model}")["data"]
    return data[0]["x"], data[0]["y"], data[1]["y"]


@pytest.fixture
def app() -> AppTest:
    """A fresh page for every test: each one sets widgets, and none may depend on what another left behind (the
    model stays loaded across pages: st.cache_resource lives as long as the test process)."""
    at = AppTest.from_file(str(ROOT / "labs/internals.py"), default_timeout=300).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_default_is_smollm2_with_every_head_and_the_logit_lens(app):
    at = app
    assert at.title[0].value == "Model internals lab"
    assert any("SmolLM2-135M-Instruct" in c.value for c in at.caption)
    summary = chart(at, f"internals.summary_{SMOL}")
    assert [t["type"] for t in summary["data"]] == ["heatmap", "scatter"]
    assert len(summary["data"][1]["customdata"]) == 30 * 9  # one clickable marker per head
    layer = chart(at, f"layer_heads_{SMOL}")  # one layer's heads, each a full map with the tokens on its axes
    assert len(layer["data"]) == 9 and layer["layout"]["title"]["text"] == "layer 0"
    lens = chart(at, f"lens_{SMOL}")["data"][0]
    assert len(lens["y"]) == 31 and len(lens["text"]) == 31 and len(lens["text"][0]) == len(lens["x"])
    assert at.latex, "formulas sit next to what they explain"


def test_ablation_changes_the_bars(app):
    at = app
    labels, before, after = bars(at, SMOL)
    assert before == after  # nothing ablated yet
    kl_intact = at.metric[0].value
    at.multiselect(key="internals.ablated").set_value(["L3.H2", "L10.H0"]).run()
    assert not at.exception
    labels2, before2, after2 = bars(at, SMOL)
    assert before2[: len(before)] == before[: len(before2)] and after2 != before2
    assert at.metric[0].value != kl_intact
    at.selectbox(key="internals.ablated_layer").set_value(0).run()  # a whole layer on top
    assert not at.exception
    assert bars(at, SMOL)[2] != after2
    assert "11 heads zeroed" in chart(at, f"ablation_bars_{SMOL}")["data"][1]["name"]


def test_zoom_follows_the_pickers(app):
    at = app
    at.slider(key="internals.layer").set_value(7)
    at.selectbox(key="internals.head").set_value(4).run()
    assert any(s.value == "Zoom: layer 7, head 4" for s in at.subheader)
    assert chart(at, f"zoom_{SMOL}")["layout"]["title"]["text"] == "layer 7, head 4"
    layer = chart(at, f"layer_heads_{SMOL}")
    assert layer["layout"]["title"]["text"] == "layer 7"
    assert [a["text"] for a in layer["layout"]["annotations"]][4] == "head 4 (zoomed in)"


def test_chat_format_wraps_the_text_in_the_template(app):
    at = app
    at.toggle(key="internals.chat").set_value(True).run()
    assert not at.exception
    tokens = next(m.value for m in at.markdown if m.value.startswith("**Tokens:**"))
    assert "`<|im_start|>`" in tokens and "`user`" in tokens


def test_switching_to_minilm(app):
    at = app
    at.selectbox(key="internals.model").set_value(MINI).run()
    assert not at.exception
    assert any("all-MiniLM-L6-v2" in c.value for c in at.caption)
    assert at.text_area(key="internals.text").value == DEFAULT_TEXT[MINI]  # SmolLM2's example text is replaced
    tokens = next(m.value for m in at.markdown if m.value.startswith("**Tokens:**"))
    assert tokens.split()[1] == "`[CLS]`"
    assert len(chart(at, f"internals.summary_{MINI}")["data"][1]["customdata"]) == 6 * 12
    assert any("needs a decoder" in i.value for i in at.info)  # no logit lens for an encoder
    labels, before, after = bars(at, MINI)
    assert len(labels) == 3 and before == after and at.metric[0].value == "1.0000"
    at.multiselect(key="internals.ablated").set_value(["L0.H1", "L1.H3"]).run()
    assert bars(at, MINI)[2] != before and at.metric[0].value != "1.0000"


def test_empty_and_too_long_texts():
    at = AppTest.from_file(str(ROOT / "labs/internals.py"), default_timeout=300).run()
    at.text_area(key="internals.text").set_value("   ").run()
    assert not at.exception
    assert "Type some text first" in at.error[0].value
    assert any("example text" in w.value for w in at.warning)
    at.text_area(key="internals.text").set_value("attention " * 100).run()
    assert not at.exception
    assert any("shows at most 64" in w.value for w in at.warning)
    assert len(chart(at, f"lens_{SMOL}")["data"][0]["x"]) == 64


def test_comparison_sentences_out_of_bounds_say_what_is_compared_instead(app):
    at = app
    at.selectbox(key="internals.model").set_value(MINI).run()
    at.text_area(key="internals.compare").set_value("\n".join(f"Sentence number {i}." for i in range(12))).run()
    assert not at.exception
    assert "at most 8 comparison sentences" in at.error[0].value
    assert any("first 8 sentences" in w.value for w in at.warning)
    assert bars(at, MINI)[0] == [f"Sentence number {i}." for i in range(8)]
    at.text_area(key="internals.compare").set_value(" \n ").run()
    assert "at least one comparison sentence" in at.error[0].value
    assert any("showing the default ones" in w.value for w in at.warning)
    assert len(bars(at, MINI)[0]) == 3
