"""The speculative-decoding tab as the inference page shows it: nothing heavy until Run, then both runs' numbers
and charts (their titles computed from the run's own rounds); two links open their views, bad values are named and
replaced, and the tab in 中文."""

from streamlit.testing.v1 import AppTest

from explorer.i18n import t
from explorer.labs.inference_speculative import SpeculativeSettings
from tests.apptest_helpers import captions as _captions, figure as _figure, ok as _ok, open_page, through_router

KEY = "inference_speculative.{}".format
DEFAULT = SpeculativeSettings()


def _page(**query) -> AppTest:
    return open_page("labs/inference.py", 240, **{"tab": "speculative", **query})


def _through_router(**query) -> AppTest:
    return through_router("labs/inference.py", 240, **{"tab": "speculative", **query})


def _title(at: AppTest, key: str) -> str:
    return _figure(at, key)["layout"]["title"]["text"]


def _run(at: AppTest) -> AppTest:
    return _ok(at.button(key=KEY("run")).click().run())


def _rounds_title_from_chart(at: AppTest, lang: str) -> str:
    """The rounds chart's title as the catalog writes it from the chart's own bars: tokens = accepted + 1 a round."""
    fig = _figure(at, "speculative_rounds")
    accepted = fig["data"][0]["y"]
    return t(lang, "inference_speculative.fig.rounds_title", n=sum(accepted) + len(accepted),
             forwards=len(accepted), k=at.slider(key=KEY("k")).value)


def test_nothing_runs_before_the_button_then_both_runs_are_shown():
    at = _ok(_page(max_new_tokens="12"))
    assert at.text_area(key=KEY("prompt")).value == DEFAULT.prompt
    assert at.selectbox(key=KEY("draft")).value == "prompt_lookup" and at.slider(key=KEY("k")).value == 4
    assert t("en", "inference_speculative.press_run") in _captions(at)
    assert not at.get("plotly_chart")
    at = _run(at)
    assert at.metric[0].label == t("en", "inference_speculative.metric.identical")
    assert at.metric[0].value == t("en", "inference_speculative.metric.yes")
    assert _title(at, "speculative_rounds") == _rounds_title_from_chart(at, "en")
    assert _title(at, "speculative_speed").startswith("Tokens per second: plain greedy ")
    assert dict(at.query_params) == {"tab": "speculative", "max_new_tokens": "12"}
    # another setting: the last results are no longer this view's, so they go until the next click
    at.slider(key=KEY("k")).set_value(2)
    at = _ok(at.run())
    assert not at.get("plotly_chart") and at.query_params["k"] in ("2", ["2"])


def test_an_early_exit_link():
    query = dict(draft="early_exit", exit_layers="6", k="2", max_new_tokens="6")
    at = _ok(_page(**query))
    assert at.selectbox(key=KEY("draft")).value == "early_exit"
    assert at.slider(key=KEY("exit_layers")).value == 6 and at.slider(key=KEY("k")).value == 2
    assert at.slider(key=KEY("exit_layers")).label == t("en", "inference_speculative.control.exit_layers", n_layer=30)
    assert not at.warning
    assert dict(at.query_params) == {"tab": "speculative", **query}
    at = _run(at)
    assert at.metric[0].value == t("en", "inference_speculative.metric.yes")
    assert _title(at, "speculative_rounds") == _rounds_title_from_chart(at, "en")


def test_a_prompt_lookup_link_with_its_own_prompt():
    query = dict(prompt="1, 2, 3, 1, 2, 3, 1, 2,", chat="0", ngram="2", k="6", max_new_tokens="8")
    at = _ok(_page(**query))
    assert at.text_area(key=KEY("prompt")).value == "1, 2, 3, 1, 2, 3, 1, 2,"
    assert at.checkbox(key=KEY("chat")).value is False and at.slider(key=KEY("ngram")).value == 2
    assert at.slider(key=KEY("k")).value == 6
    assert dict(at.query_params) == {"tab": "speculative", **query}


def test_bad_values_are_named_and_replaced():
    at = _ok(_page(k="99", draft="oracle", model="trained"))
    warnings = " ".join(str(w.value) for w in at.warning).replace("\\", "")  # markdown-escaped on the page
    assert "k" in warnings and "draft" in warnings
    assert t("en", "inference_speculative.no_trained_link") in warnings
    assert at.slider(key=KEY("k")).value == DEFAULT.k and at.selectbox(key=KEY("draft")).value == DEFAULT.draft
    assert at.selectbox(key=KEY("model")).value == "smollm2-135m"


def test_the_tab_in_chinese():
    at = _ok(_through_router(lang="zh", max_new_tokens="8"))
    assert at.selectbox(key=KEY("draft")).label == t("zh", "inference_speculative.control.draft")
    assert at.button(key=KEY("run")).label == t("zh", "inference_speculative.run")
    at = _run(at)
    assert at.metric[1].label == t("zh", "inference_speculative.metric.alpha")
    assert _title(at, "speculative_rounds") == _rounds_title_from_chart(at, "zh")
    assert _title(at, "speculative_speed").startswith("每秒词元数：普通贪心解码 ")
