"""The attention lab in Chinese and from a link (issue 11): every control is kept in the address under its settings
name, a link opens exactly its view, a bad value is named and replaced by the default, and the reset button goes
back to the defaults. Reached through the router, as a student's browser reaches it."""
import json
import re

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from explorer.i18n import t
from explorer.models.toy_tokens import tokenize
from explorer.ui.attention import VIEW
from explorer.viz.heatmap import unique_labels
from tests.conftest import ROOT, shown_text

PAGE = "labs/attention.py"
SENTENCE = "The cat sat on the mat because it was tired"


def open_link(**params) -> AppTest:
    """The lab opened from an address carrying ``params`` (the router first, then the lab, as a link does)."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    for name, value in params.items():
        at.query_params[name] = value
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def titles(at) -> list[str]:
    return [json.loads(c.proto.spec)["layout"].get("title", {}).get("text", "") for c in at.get("plotly_chart")]


def figure(at, title: str) -> dict:
    return next(json.loads(c.proto.spec) for c in at.get("plotly_chart")
                if json.loads(c.proto.spec)["layout"].get("title", {}).get("text", "") == title)


def weights(fig) -> np.ndarray:
    from tests.test_attention_lab import decode
    return decode(fig["data"][0]["z"])


def widget(at, kind: str, name: str):
    return getattr(at, kind)(key=VIEW.key(name))


def test_the_lab_speaks_chinese():
    at = open_link(lang="zh")
    assert [x.value for x in at.title] == [t("zh", "attention.title")]
    assert at.sidebar.subheader[0].value == t("zh", "attention.sidebar.layer")
    assert widget(at, "slider", "n_head").label == t("zh", "attention.sidebar.n_head")
    assert widget(at, "selectbox", "mask").options[1] == t("zh", "attention.mask.causal") == "因果掩码（GPT：不能偷看后面的词元）"
    assert t("zh", "attention.grid.title", n_head=4) in titles(at)
    assert t("zh", "attention.summary", kind="MHA", d_model=64, n_head=4, d_head=16, n_kv_head=4) in \
        [c.value for c in at.caption]
    assert "X" in titles(at)  # the walk's first step; the others one pick away, named in Chinese
    assert widget(at, "segmented_control", "step").options[6] == t("zh", "attention.steps_pick.softmax")
    widget(at, "segmented_control", "step").set_value("softmax").run()
    assert "注意力权重（第 1 个头）" in titles(at) and at.query_params["step"] == "softmax"
    # the √d_k study is a tab of its own, run when opened (its label is the section's Chinese header)
    assert [tab.label for tab in at.tabs] == [t("zh", "attention.tabs.steps"), t("zh", "attention.sqrt_dk.header"),
                                              t("zh", "attention.params.header")]
    at.session_state[VIEW.key("section")] = t("zh", "attention.sqrt_dk.header")
    assert t("zh", "attention.sqrt_dk.title") in titles(at.run())
    grid = figure(at, t("zh", "attention.grid.title", n_head=4))
    hover = grid["data"][1]["hovertemplate"]  # head 2: head 1's title is bold, the zoomed head
    assert hover.startswith("头 2<br>查询: %{y}<br>键: %{x}<br>权重: "), hover
    assert grid["layout"]["coloraxis"]["colorbar"]["title"]["text"] == "权重"
    # the library's sentences too: ModelConfig's check and the fallback, in Chinese
    widget(at, "number_input", "d_model").set_value(30).run()
    assert not at.exception
    plain = lambda md: re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", md)  # noqa: E731  (messages are Markdown-escaped)
    assert [plain(e.value) for e in at.error] == [t("zh", "config.heads_divide_d_model", d_model=30, n_head=4)]
    assert [plain(w.value) for w in at.warning] == [t("zh", "common.showing_instead", fields="d_model = 32")]


def test_a_link_opens_eight_heads_with_a_sliding_window():
    at = open_link(n_head="8", mask="sliding_window", window="3", sentence=SENTENCE, step="softmax")
    assert widget(at, "slider", "n_head").value == 8
    assert widget(at, "selectbox", "mask").value == "sliding_window"
    assert widget(at, "slider", "window").value == 3
    assert widget(at, "text_input", "sentence").value == SENTENCE
    assert not at.warning and not at.error
    assert len(figure(at, "Attention weights of all 8 heads (rows: queries, columns: keys)")["data"]) == 8
    softmax = figure(at, "attention weights (head 1)")
    assert softmax["data"][0]["x"] == unique_labels(tokenize(SENTENCE).tokens)
    seen = (weights(softmax) > 0).sum(1)
    assert seen.max() == 3 and list(seen[:3]) == [1, 2, 3]  # itself and the two before it
    for name, value in (("n_head", "8"), ("mask", "sliding_window"), ("sentence", SENTENCE), ("step", "softmax")):
        assert at.query_params[name] == value, name  # the address keeps the view
    assert not {"window", "n_kv_head", "d_model"} & set(at.query_params)  # values at their default stay out


def test_a_chinese_link_opens_multi_query_attention_with_a_prefix():
    at = open_link(d_model="128", n_head="2", n_kv_head="1", mask="prefix", prefix_len="3", lang="zh")
    assert widget(at, "number_input", "d_model").value == 128
    assert widget(at, "slider", "n_head").value == 2
    assert widget(at, "selectbox", "n_kv_head").value == 1
    assert widget(at, "selectbox", "mask").value == "prefix"
    assert widget(at, "slider", "prefix_len").value == 3
    assert not at.warning and not at.error
    assert t("zh", "attention.summary", kind="MQA", d_model=128, n_head=2, d_head=64, n_kv_head=1) in \
        [c.value for c in at.caption]
    assert t("zh", "attention.grid.title", n_head=2) in titles(at)
    assert [x.value for x in at.title] == ["注意力实验"]
    for name, value in (("d_model", "128"), ("n_head", "2"), ("n_kv_head", "1"), ("mask", "prefix"),
                        ("prefix_len", "3"), ("lang", "zh")):
        assert at.query_params[name] == value, name


@pytest.mark.parametrize("name, bad, default", [("n_head", "99", 4), ("mask", "diagonal", "causal"),
                                                ("scale", "maybe", True)])
def test_a_bad_value_in_a_link_is_named_and_replaced_by_the_default(name, bad, default):
    at = open_link(**{name: bad})
    kind = {"n_head": "slider", "mask": "selectbox", "scale": "toggle"}[name]
    assert widget(at, kind, name).value == default
    said = [shown_text(w.value) for w in at.warning]
    assert len(said) == 1 and bad in said[0] and name in said[0], said
    assert name not in at.query_params  # the address now holds what is shown: the default, left out
    assert len(figure(at, "Attention weights of all 4 heads (rows: queries, columns: keys)")["data"]) == 4


def test_a_kv_head_count_the_link_heads_cannot_have_is_named():
    at = open_link(n_head="6", n_kv_head="4")
    assert widget(at, "slider", "n_head").value == 6
    assert widget(at, "selectbox", "n_kv_head").value == 0  # MHA: 4 does not divide 6
    assert any("'4'" in shown_text(w.value) and "n_kv_head" in shown_text(w.value) for w in at.warning)
    assert "n_kv_head" not in at.query_params


def test_reset_goes_back_to_the_defaults():
    at = open_link(n_head="8", mask="padding", pad_len="3", seed="7")
    assert widget(at, "slider", "pad_len").value == 3
    at.button(key=VIEW.key("_reset")).click().run()
    assert not at.exception
    assert widget(at, "slider", "n_head").value == 4 and widget(at, "selectbox", "mask").value == "causal"
    assert widget(at, "number_input", "seed").value == 0
    assert not {"n_head", "mask", "pad_len", "seed"} & set(at.query_params)
