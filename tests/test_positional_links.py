"""The positional-encoding lab in Chinese and from links: every control under its settings' name in the address
(``?positional=rope&theta=100``), a bad value named and replaced by the default, and the page in 中文 from
``?lang=zh`` (titles, controls, figures and the library's computed captions)."""
import json
from functools import partial

import pytest
from streamlit.testing.v1 import AppTest

from explorer.i18n import render, t
from explorer.labs.positional import rope_score_by_distance
from explorer.models.toy_tokens import tokenize
from explorer.positional_facts import alibi_rule, rope_decay_facts
from tests.apptest_helpers import (chart_titles as _titles, figure as _figure, ok as _ok, open_page, texts,
                                   through_router)

KEY = "positional.{}".format


_page = partial(open_page, "labs/positional.py")
_through_router = partial(through_router, "labs/positional.py")


def _texts(at: AppTest) -> str:
    return "\n".join(texts(at, ("markdown", "caption", "warning", "success", "header")))


def test_a_rope_link_opens_that_view_and_stays_in_the_address():
    query = dict(positional="rope", theta="100", d_head="16", pair="5", seed="3", effect_head="2")
    at = _ok(_page(**query))
    sidebar = at.sidebar
    assert sidebar.radio(key=KEY("positional")).value == "rope"
    assert sidebar.select_slider(key=KEY("theta")).value == 100.0
    assert sidebar.select_slider(key=KEY("d_head")).value == 16
    assert sidebar.slider(key=KEY("pair")).value == 5 and sidebar.number_input(key=KEY("seed")).value == 3
    assert at.slider(key=KEY("effect_head")).value == 2
    assert not at.warning
    assert dict(at.query_params) == query
    titles = _titles(at)
    assert t("en", "positional.viz.rotation_title", pair=5, degrees=0).split(":")[0] in " ".join(titles)
    assert t("en", "positional.viz.effect_title", head=2) in titles
    names = [d["name"] for d in _figure(at, "rope_dist")["data"]]
    assert t("en", "positional.viz.curve_ones", theta=100.0) in names  # the link's θ, beside the original one
    facts = rope_decay_facts(rope_score_by_distance(16, 100.0, 128, 3), 100.0, 16)
    assert str(facts.text) in _texts(at)


def test_a_moved_control_writes_the_address_and_the_default_leaves_it():
    at = _ok(_page())
    assert dict(at.query_params) == {}
    at.sidebar.radio(key=KEY("positional")).set_value("alibi").run()
    at.sidebar.slider(key=KEY("alibi_heads")).set_value(6).run()
    assert dict(at.query_params) == {"positional": "alibi", "alibi_heads": "6"}
    at.sidebar.slider(key=KEY("alibi_heads")).set_value(8).run()
    assert dict(at.query_params) == {"positional": "alibi"}


def test_a_chinese_link_opens_the_lab_in_chinese():
    sentence = "我爱自然语言处理"
    at = _ok(_through_router(lang="zh", positional="alibi", alibi_heads="6", effect_head="3", sentence=sentence))
    assert at.title[0].value == t("zh", "positional.title")
    assert at.sidebar.radio(key=KEY("positional")).label == t("zh", "positional.sidebar.positional")
    assert at.sidebar.radio(key=KEY("positional")).value == "alibi"
    assert at.sidebar.slider(key=KEY("alibi_heads")).value == 6
    assert at.text_input(key=KEY("sentence")).value == sentence
    assert at.query_params["lang"] == "zh" and at.query_params["alibi_heads"] == "6"
    assert _figure(at, "slopes")["layout"]["title"]["text"] == render(alibi_rule(6).title, "zh")
    assert render(alibi_rule(6).text, "zh") in _texts(at)
    effect = _figure(at, "effect")
    assert effect["layout"]["title"]["text"] == t("zh", "positional.viz.effect_title", head=3)
    assert [a["text"] for a in effect["layout"]["annotations"]] == [
        t("zh", f"positional.encoding.{e}") for e in ("sinusoidal", "learned", "rope", "alibi", "none")]
    assert effect["data"][0]["x"] == list(tokenize(sentence).tokens)
    assert any(h.value == t("zh", "positional.alibi.header") for h in at.header)


@pytest.mark.parametrize("positional", ["sinusoidal", "learned", "rope", "alibi", "none"])
def test_every_section_speaks_chinese(positional):
    at = _ok(_through_router(lang="zh", positional=positional))
    assert any(h.value == t("zh", f"positional.{'sin' if positional == 'sinusoidal' else positional}.header")
               for h in at.header)
    english = [title for title in _titles(at) if any(w in title for w in ("Head", "head", "Pair", "table", "Slope"))]
    assert not english, english
    for chart in at.get("plotly_chart"):
        layout = json.loads(chart.proto.spec)["layout"]
        for axis in ("xaxis", "yaxis"):
            title = layout.get(axis, {}).get("title", {}).get("text", "")
            assert not any(w in title for w in ("position", "dimension", "distance", "slope", "query")), title


def test_a_bad_value_in_a_link_is_named_and_the_default_shown():
    at = _ok(_page(positional="wavelet", n_pos="16"))
    warnings = [w.value for w in at.warning]
    assert len(warnings) == 1 and "positional" in warnings[0] and "wavelet" in warnings[0], warnings
    assert at.sidebar.radio(key=KEY("positional")).value == "sinusoidal"
    assert at.sidebar.slider(key=KEY("n_pos")).value == 16, "the good value of the link is kept"
    assert dict(at.query_params) == {"n_pos": "16"}
    assert t("en", "positional.sin.table_title", n_pos=16, d_model=64) in _titles(at)


def test_a_pair_the_links_width_does_not_have_is_named_in_chinese():
    at = _ok(_through_router(lang="zh", positional="rope", d_head="8", pair="9"))
    warnings = [w.value for w in at.warning]
    assert any("pair" in w and "9" in w and "默认" in w for w in warnings), warnings
    assert at.sidebar.slider(key=KEY("pair")).value == 0 and "pair" not in at.query_params
