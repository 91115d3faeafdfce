"""The batching tab as the inference page shows it: before a press the bound alone, a press measures once and the
result stays for the session, links set the prompt and the tokens, a bad value is named, and the tab in 中文.

The tab's model is swapped for a tiny random one here (same engine, same code path): the page's logic is under
test, not SmolLM2's speed (tests/test_inference_batching.py measures with the engine)."""
import json

import pytest
from streamlit.testing.v1 import AppTest

import explorer.ui.inference_batching as tab
from explorer.i18n import t
from explorer.labs.inference_batching import BatchingSettings
from explorer.models.tiny import load_tiny
from tests.apptest_helpers import ok as _ok, open_page, through_router

KEY = "inference_batching.{}".format


@pytest.fixture
def tiny_model(monkeypatch):
    tiny = load_tiny("tiny-llama")
    calls = []
    real = tab.run_batching

    def counted(settings, model, tokenizer):
        calls.append(settings)
        return real(settings, model, tokenizer)

    monkeypatch.setattr(tab, "shared_model", lambda name: tiny)
    monkeypatch.setattr(tab, "run_batching", counted)
    tab._LATEST.clear()
    return calls


def _page(**query) -> AppTest:
    return open_page("labs/inference.py", 120, **{"tab": "batching", **query})


def _through_router(**query) -> AppTest:
    return through_router("labs/inference.py", 120, **{"tab": "batching", **query})


def _chart(at: AppTest) -> dict:
    found = [c for c in at.get("plotly_chart") if c.proto.id.endswith("-batching_throughput")]
    assert len(found) == 1
    return json.loads(found[0].proto.spec)


def test_before_a_press_only_the_bound_is_drawn(tiny_model):
    at = _ok(_page())
    fig = _chart(at)
    assert fig["layout"]["title"]["text"] == t("en", "inference_batching.viz.title")
    assert [d["name"] for d in fig["data"]] == [t("en", "inference_batching.viz.bound")]
    assert t("en", "inference_batching.press") in [c.value for c in at.caption]
    assert not tiny_model and dict(at.query_params) == {"tab": "batching"}


def test_a_press_measures_once_and_the_result_stays(tiny_model):
    at = _ok(_page(prompt="hi"))
    at.slider(key=KEY("new_tokens")).set_value(3).run()
    at.button(key=KEY("go")).click().run()
    _ok(at)
    assert tiny_model == [BatchingSettings("hi", 3)]
    names = [d["name"] for d in _chart(at)["data"]]
    assert names[:2] == [t("en", "inference_batching.viz.total"), t("en", "inference_batching.viz.per_request")]
    assert _chart(at)["data"][0]["x"] == ["1", "2", "4", "8", "16"]
    seen = [c.value for c in at.caption if c.value.startswith(t("en", "inference_batching.engine_batches",
                                                                   seen="").rstrip("."))]
    assert len(seen) == 1 and "×" in seen[0]  # the engine's own counters, as batch size × steps
    at.text_input(key=KEY("prompt")).input("Another prompt").run()  # no press: the bars stay, named as older
    assert len(tiny_model) == 1 and len(_chart(at)["data"]) == 3
    assert t("en", "inference_batching.other_settings") in [c.value for c in at.caption]
    assert dict(at.query_params) == {"tab": "batching", "new_tokens": "3", "prompt": "Another prompt"}


def test_a_link_sets_the_prompt_and_tokens(tiny_model):
    at = _ok(_page(prompt="Hello world", new_tokens="4"))
    assert at.text_input(key=KEY("prompt")).value == "Hello world" and at.slider(key=KEY("new_tokens")).value == 4
    assert not at.warning and dict(at.query_params) == {"tab": "batching", "prompt": "Hello world", "new_tokens": "4"}


def test_a_bad_value_is_named(tiny_model):
    at = _ok(_page(new_tokens="99"))
    assert any("new_tokens" in str(w.value).replace("\\", "") for w in at.warning)
    assert at.slider(key=KEY("new_tokens")).value == BatchingSettings().new_tokens


def test_the_tab_in_chinese(tiny_model):
    at = _ok(_through_router(lang="zh", new_tokens="2"))
    assert _chart(at)["layout"]["title"]["text"] == t("zh", "inference_batching.viz.title")
    assert at.button(key=KEY("go")).label == t("zh", "inference_batching.measure")
    at.button(key=KEY("go")).click().run()
    _ok(at)
    assert any(h.value == t("zh", "inference_batching.bound.header") for h in at.subheader)
    assert any("倍" in m.value for m in at.markdown)  # the summary, in Chinese
