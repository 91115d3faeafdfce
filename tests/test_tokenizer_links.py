"""The tokenizer lab as a page (AppTest): in English and in 中文, controls moved, links that open a view and keep it
in the address, and bad values named with the default shown instead."""
from functools import partial

from streamlit.testing.v1 import AppTest

from explorer.corpora import load_corpus
from explorer.i18n import t
from explorer.labs.tokenizer import TokenizerSettings, train
from tests.apptest_helpers import figure as _figure, ok as _ok, open_page, texts, through_router
from tests.conftest import shown_text

KEY = "tokenizer.{}".format


_page = partial(open_page, "labs/tokenizer.py", 300)
_through_router = partial(through_router, "labs/tokenizer.py", 300)


def _texts(at: AppTest) -> str:
    return "\n".join(texts(at, ("markdown", "caption", "warning", "error", "info", "subheader")))


def test_default_page_in_english_and_stepping_forward():
    at = _ok(_page())
    assert at.title[0].value == t("en", "tokenizer.title")
    assert [tab.label for tab in at.tabs] == [t("en", f"tokenizer.tab.{k}") for k in ("build", "compare", "real",
                                                                                      "trade")]
    assert _figure(at, "tokenizer_pairs")["layout"]["title"]["text"] == t("en", "tokenizer.viz.pairs_title", step=1)
    for chart in ("tokenizer_curve", "tokenizer_cost", "tokenizer_trade"):
        _figure(at, chart)
    at.button(key=KEY("_forward")).click()
    at = _ok(at.run())
    assert at.slider(key=KEY("step")).value == 2
    assert _figure(at, "tokenizer_pairs")["layout"]["title"]["text"] == t("en", "tokenizer.viz.pairs_title", step=2)
    assert at.query_params["step"] == "2"
    second = train("tangshi", "", TokenizerSettings().merges, "byte").steps[1]
    chars = len(load_corpus("tangshi"))
    assert t("en", "tokenizer.bpe.numbers", vocab=258, tokens=second.tokens_after, chars=chars,
             saved=second.tokens_before - second.tokens_after, per_char=second.tokens_after / chars) in _texts(at)
    at.button(key=KEY("_back")).click()
    at = _ok(at.run())
    assert at.slider(key=KEY("step")).value == 1 and "step" not in at.query_params


def test_moving_the_alphabet_and_merges_retrains():
    at = _ok(_page())
    at.sidebar.radio(key=KEY("alphabet")).set_value("char")
    at.sidebar.number_input(key=KEY("merges")).set_value(30)
    at = _ok(at.run())
    assert at.query_params["alphabet"] == "char" and at.query_params["merges"] == "30"
    tok = train("tangshi", "", 30, "char")
    first = tok.steps[0]
    said = t("en", "tokenizer.bpe.merge", step=1, pair="PAIR", new="NEW", new_id=first.new_id, count=first.count,
             n_bytes=len(tok.token_bytes([first.new_id])[0]))
    assert said.split("NEW")[1] in _texts(at)  # the new id, the count and the bytes of the char-level merge


def test_a_link_opens_a_later_merge_on_the_sonnets():
    at = _ok(_page(corpus="shakespeare", merges="50", step="12", sentence="Shall I compare thee"))
    assert at.sidebar.selectbox(key=KEY("corpus")).value == "shakespeare"
    assert at.sidebar.number_input(key=KEY("merges")).value == 50
    assert at.slider(key=KEY("step")).value == 12
    assert at.sidebar.text_input(key=KEY("sentence")).value == "Shall I compare thee"
    assert _figure(at, "tokenizer_pairs")["layout"]["title"]["text"] == t("en", "tokenizer.viz.pairs_title", step=12)
    assert at.query_params["corpus"] == "shakespeare" and at.query_params["step"] == "12"


def test_a_pasted_corpus_link_with_a_d_model():
    at = _ok(_page(corpus="custom", text="low lower lowest " * 30, merges="5", d_model="512"))
    assert at.sidebar.text_area(key=KEY("text")).value == "low lower lowest " * 30
    assert at.number_input(key=KEY("d_model")).value == 512
    trade = _figure(at, "tokenizer_trade")
    assert any(t("en", "tokenizer.viz.embedding_params", d_model=512) == d.get("name") for d in trade["data"])


def test_bad_values_are_named_and_replaced():
    at = _ok(_page(merges="99999", alphabet="word", step="-3"))
    warnings = " ".join(w.value for w in at.warning)
    assert "merges" in warnings and "alphabet" in warnings and "step" in warnings
    assert at.sidebar.number_input(key=KEY("merges")).value == TokenizerSettings().merges
    assert at.sidebar.radio(key=KEY("alphabet")).value == "byte"


def test_an_emptied_box_says_so_and_shows_the_default():
    at = _ok(_page())
    at.sidebar.text_input(key=KEY("sentence")).set_value("")
    at = _ok(at.run())
    assert t("en", "tokenizer.error.empty_text", name=t("en", "tokenizer.name.sentence")) in \
        " ".join(shown_text(e.value) for e in at.error)
    assert "床" in _texts(at)  # the default sentence is split instead


def test_the_page_in_chinese_through_a_link():
    at = _ok(_through_router(lang="zh", alphabet="char", step="4"))
    assert at.title[0].value == t("zh", "tokenizer.title")
    assert at.sidebar.radio(key=KEY("alphabet")).label == t("zh", "tokenizer.sidebar.alphabet")
    assert _figure(at, "tokenizer_pairs")["layout"]["title"]["text"] == t("zh", "tokenizer.viz.pairs_title", step=4)
    assert _figure(at, "tokenizer_cost")["layout"]["title"]["text"] == t("zh", "tokenizer.viz.cost_title")
    assert t("zh", "tokenizer.real.table_header") in _texts(at)
    assert at.query_params["lang"] == "zh" and at.query_params["step"] == "4"
