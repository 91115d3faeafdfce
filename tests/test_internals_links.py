"""The internals lab in Chinese and from links (issue 11, parts 1 and 2), through the router as a student opens it:
every control under its settings' field name in the address, a link for each model (one in Chinese), and a bad
value that is named and replaced."""
from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from explorer.labs.internals import DEFAULT_TEXT
from explorer.labs.internals_facts import smollm2_weights_note
from tests.conftest import ROOT, shown_text

pytestmark = pytest.mark.slow
SMOL, MINI = "smollm2-135m", "minilm-l6"


def open_link(**query) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.query_params.update(query)
    at.switch_page("labs/internals.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def chart(at: AppTest, key: str) -> dict:
    found = [c for c in at.get("plotly_chart") if c.proto.id.endswith(f"-{key}")]
    assert len(found) == 1, [c.proto.id for c in at.get("plotly_chart")]
    return json.loads(found[0].proto.spec)


def texts(at: AppTest) -> str:
    return "\n".join(str(e.value) for kind in ("markdown", "caption", "info", "warning", "subheader")
                     for e in at.get(kind))


def test_the_page_speaks_chinese():
    at = open_link(lang="zh")
    assert at.title[0].value == "模型内部实验"
    assert [tab.label for tab in at.tabs] == ["所有注意力头", "连线视图", "注意力头消融", "Logit lens", "残差流"]
    assert at.selectbox(key="internals.model").options == ["MiniLM-L6（BERT 编码器）",
                                                           "SmolLM2-135M（LLaMA 解码器，4 比特）"]
    summary = chart(at, f"internals.summary_{SMOL}")
    assert (summary["layout"]["xaxis"]["title"]["text"], summary["layout"]["yaxis"]["title"]["text"]) == ("层", "头")
    assert "最强连接" in summary["data"][1]["hovertext"][0]
    said = texts(at)
    # SmolLM2's numbers come with what they are: the 4-bit release, dequantized to float32, in Chinese too.
    assert "4 比特发布版（Q4_1" in said and "反量化为 float32" in said
    assert smollm2_weights_note().say("zh") in said and "Q4_1" in smollm2_weights_note().say("zh")
    assert "嵌入层那一行" in said  # the logit lens's computed sentence, said in Chinese
    assert "**词元：**" in said and "Tokens" not in said
    assert at.slider(key="internals.layer").label == "层"


def test_a_smollm2_link_opens_its_view():
    at = open_link(layer="7", head="4", statistic="previous", view_layer="3", view_heads="0,5", min_weight="0.3",
                   ablated="L3.H2,L10.H0", query="2")
    assert at.selectbox(key="internals.model").value == SMOL
    assert (at.slider(key="internals.layer").value, at.selectbox(key="internals.head").value) == (7, 4)
    assert at.radio(key="internals.statistic").value == "previous"
    assert at.selectbox(key="internals.view_layer").value == 3
    assert at.multiselect(key="internals.view_heads").value == [0, 5]
    assert at.slider(key="internals.min_weight").value == pytest.approx(0.3)
    assert at.multiselect(key="internals.ablated").value == ["L3.H2", "L10.H0"]
    assert at.selectbox(key="internals.query").value == 2
    assert not at.warning
    assert chart(at, f"zoom_{SMOL}")["layout"]["title"]["text"] == "layer 7, head 4"
    assert chart(at, f"internals.summary_{SMOL}")["layout"]["xaxis"]["title"]["text"] == "layer"
    assert "after (zeroed: L3.H2, L10.H0)" in chart(at, f"ablation_bars_{SMOL}")["data"][1]["name"]
    view = chart(at, f"view_{SMOL}")
    assert [d["name"] for d in view["data"] if d.get("showlegend") is not False] == ["head 0", "head 5"]
    assert dict(at.query_params) == {"lang": "en", "layer": "7", "head": "4", "statistic": "previous",
                                     "view_layer": "3", "view_heads": "0,5", "min_weight": "0.3",
                                     "ablated": "L3.H2,L10.H0", "query": "2"}


def test_a_minilm_link_in_chinese_opens_its_view():
    at = open_link(lang="zh", model=MINI, layer="5", head="11", ablated_layer="2", compare="我爱自然语言处理\nA cat.")
    assert at.selectbox(key="internals.model").value == MINI
    assert at.text_area(key="internals.text").value == DEFAULT_TEXT[MINI]  # the link named no text: MiniLM's example
    assert (at.slider(key="internals.layer").value, at.selectbox(key="internals.head").value) == (5, 11)
    assert at.selectbox(key="internals.ablated_layer").value == 2
    assert at.text_area(key="internals.compare").value == "我爱自然语言处理\nA cat."
    assert not at.warning
    assert chart(at, f"zoom_{MINI}")["layout"]["title"]["text"] == "第 5 层，头 11"
    bars = chart(at, f"ablation_bars_{MINI}")
    assert bars["data"][0]["x"] == ["我爱自然语言处理", "A cat."]
    assert bars["data"][1]["name"] == "消融后（置零 12 个头）"
    assert at.query_params["model"] == MINI and at.query_params["ablated_layer"] == "2"
    assert at.query_params["lang"] == "zh" and at.query_params["text"] == DEFAULT_TEXT[MINI]


@pytest.mark.parametrize("query, control, default, words", [
    ({"layer": "99"}, "layer", 0, "“layer”"),
    ({"model": "gpt-5"}, "model", SMOL, "“model”"),
    ({"model": MINI, "layer": "20"}, "layer", 5, "layer = 20 does not exist in minilm-l6"),
])
def test_a_bad_value_in_a_link_is_named_and_replaced(query, control, default, words):
    at = open_link(**query)
    widget = at.slider(key="internals.layer") if control == "layer" else at.selectbox(key="internals.model")
    assert widget.value == default
    said = [shown_text(w.value) for w in at.warning]
    assert any(words in w for w in said), said
    assert sum(f" {query[control]} " in w or f"'{query[control]}'" in w for w in said) == 1, said  # said once
    # and said in the student's language
    at_zh = open_link(lang="zh", **query)
    said = [shown_text(w.value) for w in at_zh.warning]
    assert said and all("链接" in w for w in said), said
