"""The sizing lab in Chinese and from links (issue 11): ?preset=Llama-2-70B opens that model, a custom architecture
in Chinese opens its fields, a bad value is named and replaced by the default, and a pasted config.json, which a link
cannot carry, says so."""
import pytest
from streamlit.testing.v1 import AppTest

from explorer.i18n import t
from explorer.presets import REAL_MODELS
from explorer.sizing import count_params
from tests.conftest import ROOT, shown_text

PAGE = str(ROOT / "labs/sizing.py")


def _page(lang: str | None = None, **query) -> AppTest:
    """The page as a link opens it; ``lang`` is what the app's shell (app.py) makes of ?lang=, which a page run
    alone does not have."""
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params.update(query)
    if lang:
        at.session_state["app.lang"] = lang
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _metric(at, key: str, lang: str = "en") -> str:
    return next(m.value for m in at.metric if m.label == t(lang, key))


def test_the_page_speaks_chinese():
    at = _page(lang="zh")
    assert at.title[0].value == t("zh", "sizing.title")
    assert [tab.label for tab in at.tabs][:5] == [t("zh", f"sizing.tab.{k}")
                                                  for k in ("breakdown", "compare", "memory", "compute", "course")]
    assert at.radio(key="sizing.source").label == "模型"
    assert _metric(at, "sizing.metric.exact", "zh") == f"{REAL_MODELS['GPT-2 small'].total:,}"
    frames = [df.value for df in at.dataframe]
    assert any("单份参数量" in f.columns and "词嵌入" in list(f["部分"]) for f in frames)
    assert any("精确参数量" in f.columns and "注意力 %" in f.columns for f in frames)
    # a library sentence (an encoder keeps no KV cache) and a config.json error, said in Chinese
    at.selectbox(key="sizing.preset").set_value("BERT-base").run()
    assert any("KV cache" in c.value and "编码器" in c.value for c in at.caption)
    at.radio(key="sizing.source").set_value("config").run()
    at.text_area(key="config_text_BERT-base").set_value('{"model_type": "mixtral"}').run()
    assert not at.exception
    shown = [e.value.replace("\\", "") for e in at.error]  # the page escapes Markdown (explorer/safe_text.py)
    assert any("不支持 model_type" in e and "混合专家" in e for e in shown), shown


def test_a_link_to_a_preset_opens_it_and_stays_in_the_address():
    at = _page(preset="Llama-2-70B", zero_stage="3", seq_len="512")
    assert at.selectbox(key="sizing.preset").value == "Llama-2-70B"
    assert at.selectbox(key="sizing.zero_stage").value == 3
    assert at.number_input(key="sizing.seq_len").value == 512
    assert _metric(at, "sizing.metric.exact") == f"{REAL_MODELS['Llama-2-70B'].total:,}"
    assert not [w.value for w in at.warning if "link" in w.value]  # the course tab's remarks are warnings too
    assert at.query_params["preset"] == ["Llama-2-70B"] or at.query_params["preset"] == "Llama-2-70B"
    assert dict((k, v if isinstance(v, str) else v[0]) for k, v in at.query_params.items()) == \
        {"preset": "Llama-2-70B", "zero_stage": "3", "seq_len": "512"}


def test_a_link_to_a_custom_architecture_in_chinese_opens_its_fields():
    at = _page(lang="zh", source="fields", preset="LLaMA-7B", n_layer="16", n_head="16", n_kv_head="4")
    assert at.radio(key="sizing.source").value == "fields"
    assert at.number_input(key="sizing.n_layer").value == 16
    assert at.number_input(key="sizing.n_head").value == 16
    assert at.selectbox(key="sizing.n_kv_head").value == 4
    assert at.number_input(key="sizing.d_model").value == REAL_MODELS["LLaMA-7B"].cfg.d_model  # not in the link
    expected = REAL_MODELS["LLaMA-7B"].cfg.replace(n_layer=16, n_head=16, n_kv_head=4, d_head=None)
    assert _metric(at, "sizing.metric.exact", "zh") == f"{count_params(expected).total:,}"
    assert at.number_input(key="sizing.n_layer").label == t("zh", "sizing.field.n_layer.label")
    kept = {k: v if isinstance(v, str) else v[0] for k, v in at.query_params.items()}
    assert {"source": "fields", "n_layer": "16", "n_head": "16", "n_kv_head": "4"}.items() <= kept.items()
    assert "d_model" not in kept  # at the model's own value: left out


@pytest.mark.parametrize("name, bad, widget, default", [
    ("preset", "GPT-5", "selectbox", "GPT-2 small"),
    ("kv_dtype", "fp64", "selectbox", "bf16"),
    ("batch", "0", "number_input", 1),
])
def test_a_bad_value_in_a_link_gets_a_sentence_and_the_default(name, bad, widget, default):
    at = _page(**{name: bad})
    assert getattr(at, widget)(key=f"sizing.{name}").value == default
    assert any(bad in shown_text(w.value) and name in shown_text(w.value) for w in at.warning), [shown_text(w.value) for w in at.warning]
    assert name not in at.query_params


def test_a_pasted_config_is_not_in_the_link_and_the_page_says_so():
    at = _page(source="config", preset="BERT-base")
    assert at.radio(key="sizing.source").value == "config"
    assert any(t("en", "sizing.config_not_in_link", preset="BERT-base") == c.value for c in at.caption)
    assert _metric(at, "sizing.metric.exact") == f"{REAL_MODELS['BERT-base'].total:,}"  # the example config
