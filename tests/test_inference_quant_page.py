"""The inference lab's quantization tab as a student opens it (``?tab=quant``): the default view, two links that
set its controls, a bad value, the tab in 中文, and the whole-model comparison behind its button. Numbers on the page
are checked against the library on the same shared model (st.cache_resource is one per process)."""
from __future__ import annotations


from streamlit.testing.v1 import AppTest

from explorer.i18n import t
from explorer.labs.inference_quant import QuantSettings, matrix_view, weight_of
from explorer.quant import QuantFormat
from tests.apptest_helpers import captions as _captions, chart_titles as _titles, ok as _ok, open_page, through_router

KEY = "inference_quant.{}".format
TIMEOUT = 600  # SmolLM2 loads and its 210 matrices are scanned for outliers on the first run, on two shared cores


def _page(**query) -> AppTest:
    return open_page("labs/inference.py", TIMEOUT, **{"tab": "quant", **query})


def _through_router(**query) -> AppTest:
    return through_router("labs/inference.py", TIMEOUT, **{"tab": "quant", **query})


def _hist_title(lang: str, layer: int, matrix: str, shape: tuple[int, int]) -> str:
    return t(lang, "inference_quant.viz.hist_title", layer=layer, matrix=t(lang, f"inference_quant.matrix.{matrix}"),
             rows=shape[0], cols=shape[1])


def _view(fmt, layer: int, matrix: str):
    from explorer.ui.models import shared_model

    return matrix_view(weight_of(shared_model("smollm2-135m").model, layer, matrix), fmt, layer, matrix)


def test_the_default_view_shows_a_matrix_before_and_after_and_the_memory():
    at = _ok(_page())
    d = QuantSettings()
    assert at.selectbox(key=KEY("format")).value == d.format and at.selectbox(key=KEY("bits")).value == d.bits
    view = _view(d.quant_format, d.layer, d.matrix)
    titles = _titles(at)
    assert titles[0] == _hist_title("en", d.layer, d.matrix, view.shape)
    assert t("en", "inference_quant.viz.memory_title") in titles
    assert f"{view.distinct_after:,} distinct values" in _captions(at)
    assert "Q4_1" in _captions(at)  # where SmolLM2's weights come from (the page's facts line)
    assert not at.warning and not at.error
    assert dict(at.query_params) == {}  # quant is the first tab: a default view has an empty address


def test_the_tab_in_chinese():
    at = _ok(_through_router(lang="zh"))
    assert at.selectbox(key=KEY("format")).label == t("zh", "inference_quant.control.format")
    assert "逐通道（行）" in at.selectbox(key=KEY("granularity")).options
    d = QuantSettings()
    assert _titles(at)[0] == _hist_title("zh", d.layer, d.matrix, _view(d.quant_format, d.layer, d.matrix).shape)
    assert t("zh", "inference_quant.outliers.header") in [s.value for s in at.subheader]


def test_a_link_to_two_bit_per_channel_on_the_worst_layer():
    at = _ok(_page(format="min", bits="2", granularity="channel", layer="27", matrix="gate"))
    assert at.selectbox(key=KEY("format")).value == "min"
    assert at.selectbox(key=KEY("bits")).value == 2
    assert at.selectbox(key=KEY("granularity")).value == "channel"
    assert at.selectbox(key=KEY("group_size")).disabled  # no groups per channel
    assert at.selectbox(key=KEY("layer")).value == 27 and at.selectbox(key=KEY("matrix")).value == "gate"
    view = _view(QuantFormat(2, "min", "channel"), 27, "gate")
    assert _titles(at)[0] == _hist_title("en", 27, "gate", view.shape)
    assert f"{100 * view.rel_rms:.2f} %" in _captions(at)
    assert dict(at.query_params) == {"format": "min", "bits": "2", "granularity": "channel",
                                     "layer": "27", "matrix": "gate"}


def test_a_link_to_q4_1_shows_the_lossless_baseline():
    at = _ok(_page(format="q4_1", layer="3", matrix="q"))
    assert at.selectbox(key=KEY("bits")).disabled and at.selectbox(key=KEY("granularity")).disabled
    assert at.info and "gives them back exactly" in at.info[0].value
    assert "relative error 0" in at.info[0].value
    assert dict(at.query_params) == {"format": "q4_1", "layer": "3", "matrix": "q"}


def test_a_bad_value_in_a_link_warns_and_shows_the_default():
    at = _ok(_page(bits="5", layer="3"))
    assert any("bits" in w.value and "5" in w.value for w in at.warning)
    assert at.selectbox(key=KEY("bits")).value == QuantSettings().bits
    assert at.selectbox(key=KEY("layer")).value == 3


def test_a_moved_control_writes_the_address():
    at = _ok(_page())
    at.selectbox(key=KEY("granularity")).set_value("tensor").run()
    _ok(at)
    assert dict(at.query_params) == {"granularity": "tensor"}
    assert at.selectbox(key=KEY("group_size")).disabled


def test_the_button_compares_the_whole_model_q4_1_is_lossless():
    at = _ok(_page(format="q4_1", max_new_tokens="4"))
    assert t("en", "inference_quant.evaluate.press") in _captions(at)
    at.button(key="inference_quant.go").click().run()
    _ok(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[t("en", "inference_quant.evaluate.kl")] == "0.0000"
    ppl = (metrics[t("en", f"inference_quant.evaluate.ppl_{which}")] for which in ("ref", "quant"))
    assert len(set(ppl)) == 1
    assert t("en", "inference_quant.evaluate.same", n=4) in _captions(at)
    assert t("en", "inference_quant.viz.error_title") in _titles(at)
    at.selectbox(key=KEY("layer")).set_value(5).run()  # another matrix shown: the whole-model comparison still holds
    assert t("en", "inference_quant.evaluate.same", n=4) in _captions(at)
    at.selectbox(key=KEY("format")).set_value("symmetric").run()
    assert t("en", "inference_quant.evaluate.other_settings") in _captions(at)
